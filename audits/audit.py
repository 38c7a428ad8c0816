"""Auditing one scored population against a policy: the step shared by releases and re-audits.

Pure apart from the report files: given labels, the decision taken (who was offered outreach),
scores and sensitive attributes, it computes the group audit and the gate's decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from audits.gate import Decision, evaluate
from audits.groups import build_groupings
from audits.metrics import GroupAudit, audit_groups
from audits.policy import Policy
from audits.proxies import ProxyResult


@dataclass(frozen=True)
class AuditOutcome:
    """A group audit and the gate's decision on it."""

    audit: GroupAudit
    decision: Decision

    def worst_ratio(self, metric: str = "recall") -> float | None:
        values = [
            d.value
            for d in self.audit.disparities
            if d.metric == metric and d.kind == "ratio" and d.sufficient and np.isfinite(d.value)
        ]
        return min(values) if values else None


def applicable_intersections(policy: Policy, attributes: Sequence[str]) -> list[tuple[str, ...]]:
    """The policy's intersections whose attributes are all present."""
    return [combo for combo in policy.intersections if all(a in attributes for a in combo)]


def run_audit(
    policy: Policy,
    *,
    labels: np.ndarray,
    selected: np.ndarray,
    scores: np.ndarray | None,
    sensitive: Mapping[str, np.ndarray],
    production: GroupAudit | None = None,
    proxies: Sequence[ProxyResult] = (),
    seed: int = 0,
) -> AuditOutcome:
    """Audit one decision (who was offered outreach) against a policy.

    Parameters
    ----------
    policy : Policy
    labels : ndarray of 0/1
        Observed outcomes on the audit period.
    selected : ndarray of bool
        Who was offered outreach at the operating point.
    scores : ndarray, optional
        Scores, for calibration and ROC AUC per group.
    sensitive : mapping of attribute to values
        The policy's sensitive attributes (intersections are formed from them).
    production : GroupAudit, optional
        The production model's audit on the same rows, for the no-regression check.
    proxies : sequence of ProxyResult
        Findings above the policy's limit become warnings or breaches.
    seed : int
        Bootstrap seed.
    """
    attributes = [a for a in policy.sensitive_attributes if a in sensitive]
    groupings = build_groupings(
        sensitive,
        attributes=attributes,
        intersections=applicable_intersections(policy, attributes),
    )
    audit = audit_groups(
        labels,
        selected,
        scores,
        groupings,
        reference_rule=policy.reference_group,
        min_group_size=policy.min_group_size,
        min_group_positives=policy.min_group_positives,
        resamples=policy.bootstrap_resamples,
        level=policy.interval_level,
        seed=seed,
    )
    findings = [(p.attribute, p.roc_auc) for p in proxies if p.roc_auc > policy.proxies.max_auc]
    decision = evaluate(policy, audit, production=production, proxy_findings=findings)
    return AuditOutcome(audit, decision)
