"""Auditing one scored population against a policy: the step shared by releases and re-audits.

Pure apart from the report files: given labels, the decision taken (who was offered outreach),
scores and sensitive attributes, it computes the group audit and the gate's decision. When the
data also carries ground-truth outcomes (synthetic data, or a study that measured them), the
audit is repeated on them and the worse decision stands: an audit on recorded labels cannot see
needs that were never recorded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from audits.gate import (
    Breach,
    Decision,
    evaluate,
    policy_limits,
    resolution_needed,
    worst,
    worst_disparity,
)
from audits.group_metrics import GroupAudit, audit_groups
from audits.groups import build_groupings
from audits.limit_check import check, judged
from audits.policy import Policy
from audits.proxies import MissingnessResult, ProxyResult
from model.words import PEOPLE, UnitWords, unit_words


@dataclass(frozen=True)
class AuditOutcome:
    """A group audit and the gate's decision on it (and on the ground truth, when known)."""

    audit: GroupAudit
    decision: Decision
    truth: GroupAudit | None = None
    truth_decision: Decision | None = None
    fairlearn: dict[str, Any] = field(default_factory=dict)

    def worst_ratio(self, metric: str = "recall") -> float | None:
        values = [
            d.value
            for d in self.audit.disparities
            if d.metric == metric and d.kind == "ratio" and judged(d.value, sufficient=d.sufficient)
        ]
        return min(values) if values else None


def applicable_intersections(policy: Policy, attributes: Sequence[str]) -> list[tuple[str, ...]]:
    """The policy's intersections whose attributes are all present."""
    return [combo for combo in policy.intersections if all(a in attributes for a in combo)]


def _on_truth(item: Breach) -> Breach:
    return replace(
        item,
        metric=f"{item.metric} (ground truth)",
        message=f"on the ground-truth outcomes: {item.message}",
    )


def _combine(recorded: Decision, truth: Decision) -> Decision:
    """The worse of two decisions, with both sets of findings (truth's marked as such)."""
    # One entry per group; where only the ground truth shows its estimate beyond the limit, that
    # look's entry is the one named.
    named = {(n.attribute, n.group): n for n in recorded.not_assessable}
    for item in truth.not_assessable:
        key = (item.attribute, item.group)
        if key not in named or (item.beyond and not named[key].beyond):
            named[key] = replace(item, why=f"{item.why} (on the ground-truth outcomes)")
    return Decision(
        worst(recorded.verdict, truth.verdict),
        recorded.breaches + tuple(_on_truth(b) for b in truth.breaches),
        recorded.warnings + tuple(_on_truth(b) for b in truth.warnings),
        recorded.insufficient,
        recorded.notes,
        recorded.review + tuple(_on_truth(b) for b in truth.review),
        tuple(named.values()),
        recorded.families + truth.families,
    )


def _audit_resolved(
    policy: Policy,
    labels: np.ndarray,
    selected: np.ndarray,
    scores: np.ndarray | None,
    groupings: list[Any],
    options: dict[str, Any],
    looks: int,
) -> GroupAudit:
    """The group audit, redrawn with more resamples when a decision turns on a p-value the
    first draw cannot resolve (:func:`audits.gate.resolution_needed`)."""
    audit = audit_groups(labels, selected, scores, groupings, **options)
    more = resolution_needed(policy, audit, looks=looks)
    if more:
        audit = audit_groups(labels, selected, scores, groupings, **{**options, "resamples": more})
    return audit


def run_audit(
    policy: Policy,
    *,
    labels: np.ndarray,
    selected: np.ndarray,
    scores: np.ndarray | None,
    sensitive: Mapping[str, np.ndarray],
    clusters: np.ndarray | None = None,
    periods: int = 1,
    truth: np.ndarray | None = None,
    production: GroupAudit | None = None,
    production_truth: GroupAudit | None = None,
    proxies: Sequence[ProxyResult] = (),
    missingness: Sequence[MissingnessResult] = (),
    fairlearn: bool = False,
    seed: int = 0,
    unit: str | None = None,
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
    clusters : ndarray, optional
        Each row's person or area, resampled as a whole.
    periods : int
        Months the audit data spans.
    truth : ndarray of 0/1, optional
        Ground-truth outcomes: audited too, and judged when the policy says so (unless they
        equal the recorded labels, when there is nothing more to learn).
    production, production_truth : GroupAudit, optional
        The production model's audits on the same rows, for the no-regression check.
    proxies : sequence of ProxyResult
        Findings above the policy's limit become warnings or breaches.
    missingness : sequence of MissingnessResult
        Groups flagged there become warnings, review items or breaches, as the policy's
        ``[missingness] action`` says.
    fairlearn : bool
        Recompute the gated metrics with Fairlearn's MetricFrame and refuse to decide on a
        mismatch (:mod:`audits.crosscheck`).
    seed : int
        Bootstrap seed.
    unit : str, optional
        The spec's unit (``"individual"`` or ``"neighbourhood"``): the reasons count people or
        areas. ``None`` (an external audit) counts people.
    """
    attributes = [a for a in policy.sensitive_attributes if a in sensitive]
    groupings = build_groupings(
        sensitive,
        attributes=attributes,
        intersections=applicable_intersections(policy, attributes),
    )
    options = {
        "clusters": clusters,
        "periods": periods,
        "reference_rule": policy.reference_group,
        "min_group_size": policy.min_group_size,
        "min_group_positives": policy.positives_needed,
        "resamples": policy.bootstrap_resamples,
        "level": policy.interval_level,
        "seed": seed,
        "limits": policy_limits(policy),
        "counted": unit_words(unit),
    }
    with_truth = truth is not None and not np.array_equal(np.asarray(truth), np.asarray(labels))
    looks = 2 if with_truth and policy.evidence.judge_truth else 1
    audit = _audit_resolved(policy, labels, selected, scores, groupings, options, looks)
    checked: dict[str, Any] = {}
    if fairlearn:
        # Fairlearn (and scikit-learn with it) only where an audit runs: the service imports
        # this module for its release commands, and its processes start without them.
        from audits.crosscheck import crosscheck

        checked = crosscheck(
            audit,
            labels=labels,
            selected=selected,
            sensitive=sensitive,
            metrics=[g.metric for g in policy.gates],
        )
    findings = [(p.attribute, p.roc_auc) for p in proxies if p.roc_auc > policy.proxies.max_auc]
    decision = evaluate(
        policy,
        audit,
        production=production,
        proxy_findings=findings,
        missingness=missingness,
        looks=looks,
        counted=unit_words(unit),
    )
    truth_audit = truth_decision = None
    if truth is not None and with_truth:
        truth_audit = _audit_resolved(policy, truth, selected, scores, groupings, options, looks)
        truth_decision = evaluate(
            policy,
            truth_audit,
            production=production_truth,
            looks=looks,
            labels="ground-truth outcomes",
            counted=unit_words(unit),
        )
        if policy.evidence.judge_truth:
            decision = _combine(decision, truth_decision)
    return AuditOutcome(audit, decision, truth_audit, truth_decision, checked)


def headlines(policy: Policy, audit: GroupAudit) -> list[dict[str, Any]]:
    """For each gate: its worst sufficient group, with comparison and interval."""
    out = []
    for gate in policy.gates:
        found = worst_disparity(audit, gate)
        if found is None:
            continue
        out.append(
            {
                "gate": gate.describe(),
                "metric": gate.metric,
                "disparity": gate.disparity,
                "action": gate.action,
                "attribute": found.attribute,
                "group": found.group,
                "reference": found.reference,
                "value": found.value,
                "ci": list(found.ci),
                "p_value": found.p_value,
                "group_value": found.group_value,
                "reference_value": found.reference_value,
                "effective_n": found.effective_n,
                "within_limit": check(gate, found.value, sufficient=found.sufficient) == "within",
            }
        )
    return out


def label_bias_sensitivity(
    policy: Policy, audit: GroupAudit, counted: UnitWords = PEOPLE
) -> list[dict[str, Any]]:
    """How much unrecorded need in each group would turn its recall result into a breach.

    If a share ``u`` of a group's people in need never had their outcome recorded, and the model
    offered them nothing (the worst case: their records are thin too), the group's true recall is
    ``(1 - u)`` times the measured one, and so is its recall ratio. The breaking share is
    ``1 - limit / ratio``. ``counted`` names what the groups count (people, or areas).
    """
    out = []
    for gate in policy.gates:
        if gate.metric != "recall" or gate.disparity != "ratio" or gate.min is None:
            continue
        for d in audit.disparities:
            if (d.metric, d.kind) != ("recall", "ratio") or not gate.applies_to(d.attribute):
                continue
            if not math.isfinite(d.value) or d.value <= 0:
                continue
            share = max(0.0, 1.0 - gate.min / d.value)
            status = check(gate, d.value, sufficient=d.sufficient)
            if status == "beyond":
                sentence = f"{d.group} ({d.attribute}): already beyond the limit"
            elif status == "too_few":
                sentence = f"{d.group} ({d.attribute}): too few to judge on its own" + (
                    f"; if more than {share:.0%} of this group's outcomes went unrecorded, "
                    f"its recall ratio would fall below {gate.min:g}"
                    if share > 0
                    else ""
                )
            else:
                sentence = (
                    f"{d.group} ({d.attribute}): if more than {share:.0%} of this "
                    f"group's outcomes went unrecorded (and those {counted.many} were not offered "
                    f"outreach), its recall ratio would fall below {gate.min:g}"
                )
            out.append(
                {
                    "attribute": d.attribute,
                    "group": d.group,
                    "ratio": d.value,
                    "breaking_share": share,
                    "status": status,
                    "sentence": sentence,
                }
            )
    return out
