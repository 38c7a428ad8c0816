"""The release gate: a policy and an audit's numbers in, a decision with every breach out.

Pure: no I/O, no MLflow. The same inputs always give the same decision, whatever the row order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from audits.metrics import DisparityResult, GroupAudit
from audits.policy import Gate, Policy

Verdict = Literal["PASS", "FAIL"]


@dataclass(frozen=True)
class Breach:
    """One limit a candidate does not meet."""

    metric: str
    attribute: str
    group: str
    value: float
    ci: tuple[float, float]
    limit: str
    kind: str = "disparity"
    blocking: bool = True
    message: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "attribute": self.attribute,
            "group": self.group,
            "value": _clean(self.value),
            "ci": [_clean(self.ci[0]), _clean(self.ci[1])],
            "limit": self.limit,
            "kind": self.kind,
            "blocking": self.blocking,
            "message": self.message,
        }


def _clean(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


@dataclass(frozen=True)
class Decision:
    """The gate's verdict: PASS only if nothing blocking was found."""

    verdict: Verdict
    breaches: tuple[Breach, ...] = ()
    warnings: tuple[Breach, ...] = ()
    insufficient: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return self.verdict == "PASS"


def _beyond(gate: Gate, low: float, high: float) -> bool:
    """True if the whole range [low, high] lies outside the gate's limits."""
    if gate.min is not None and high < gate.min:
        return True
    return gate.max is not None and low > gate.max


def _within(gate: Gate, low: float, high: float) -> bool:
    """True if the whole range [low, high] lies inside the gate's limits."""
    if gate.min is not None and low < gate.min:
        return False
    return not (gate.max is not None and high > gate.max)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN)."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if math.isfinite(p))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    m = len(indexed)
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def breaches_limit(
    gate: Gate, disparity: DisparityResult, rule: str, *, p_value: float, alpha: float
) -> bool:
    """Whether one disparity breaches one gate under the policy's decision rule.

    ``p_value`` is the disparity's (possibly adjusted) p-value against parity; the
    ``significant_breach`` rule needs it below ``alpha``.
    """
    value = disparity.value
    if not math.isfinite(value):
        return False
    low, high = disparity.ci
    beyond = not _within(gate, value, value)
    if rule == "point_estimate" or not (math.isfinite(low) and math.isfinite(high)):
        return beyond
    if rule == "significant_breach":
        # Beyond the limit, and significantly different from parity: a real gap, not noise.
        return beyond and math.isfinite(p_value) and p_value < alpha
    if rule == "confident_breach":
        return _beyond(gate, low, high)
    return not _within(gate, low, high)  # confident_pass


def _limit_text(gate: Gate) -> str:
    return gate.describe()


def _worst(audit: GroupAudit, gate: Gate) -> float | None:
    """The most extreme sufficient disparity for a gate (lowest for min, highest for max)."""
    values = [
        d.value
        for d in audit.disparities
        if d.metric == gate.metric
        and d.kind == gate.disparity
        and d.sufficient
        and gate.applies_to(d.attribute)
        and math.isfinite(d.value)
    ]
    if not values:
        return None
    return min(values) if gate.min is not None else max(values)


def evaluate(
    policy: Policy,
    audit: GroupAudit,
    *,
    production: GroupAudit | None = None,
    proxy_findings: Sequence[tuple[str, float]] = (),
) -> Decision:
    """Apply a policy to an audit.

    Parameters
    ----------
    policy : Policy
    audit : GroupAudit
        The candidate's group metrics at the operating point.
    production : GroupAudit, optional
        The production model's audit on the same data; a candidate worse than it on a gated
        metric by more than the policy's tolerance fails.
    proxy_findings : sequence of (attribute, auc)
        Sensitive attributes predictable from the features above the policy's limit.
    """
    breaches: list[Breach] = []
    warnings: list[Breach] = []
    notes: list[str] = []
    alpha = 1.0 - policy.interval_level
    for gate in policy.gates:
        found = breaches if gate.action == "block" else warnings
        compared = [
            d
            for d in audit.disparities
            if d.metric == gate.metric
            and d.kind == gate.disparity
            and d.sufficient
            and gate.applies_to(d.attribute)
        ]
        raw_p = [d.p_value for d in compared]
        adjusted = holm(raw_p) if policy.multiple_comparisons == "holm" else raw_p
        for disparity, p_value in zip(compared, adjusted, strict=True):
            if breaches_limit(gate, disparity, policy.decision_rule, p_value=p_value, alpha=alpha):
                found.append(
                    Breach(
                        metric=f"{gate.metric} {gate.disparity}",
                        attribute=disparity.attribute,
                        group=disparity.group,
                        value=disparity.value,
                        ci=disparity.ci,
                        limit=_limit_text(gate),
                        blocking=gate.action == "block",
                        message=(
                            f"{disparity.group} ({disparity.attribute}) has a {gate.metric} "
                            f"{gate.disparity} of {disparity.value:.3f} against "
                            f"{disparity.reference} (interval {disparity.ci[0]:.3f} to "
                            f"{disparity.ci[1]:.3f}, adjusted p {p_value:.3g}); "
                            f"the policy requires {_limit_text(gate)}"
                        ),
                    )
                )
        if production is not None:
            mine, theirs = _worst(audit, gate), _worst(production, gate)
            if mine is not None and theirs is not None:
                tolerance = policy.no_regression.tolerance
                worse = theirs - mine if gate.min is not None else mine - theirs
                if worse > tolerance:
                    found.append(
                        Breach(
                            metric=f"{gate.metric} {gate.disparity}",
                            attribute="(worst group)",
                            group="(worst group)",
                            value=mine,
                            ci=(math.nan, math.nan),
                            limit=f"no worse than production ({theirs:.3f}) by more than "
                            f"{tolerance:g}",
                            kind="regression",
                            blocking=gate.action == "block",
                            message=(
                                f"the worst group's {gate.metric} {gate.disparity} is {mine:.3f}, "
                                f"worse than the production model's {theirs:.3f} by more than "
                                f"the tolerance {tolerance:g}"
                            ),
                        )
                    )
    insufficient = tuple(
        f"{g.group} ({g.attribute}): {g.note}" for g in audit.groups if not g.sufficient
    )
    if insufficient:
        if policy.small_groups == "block":
            for g in audit.groups:
                if not g.sufficient:
                    breaches.append(
                        Breach(
                            metric="group size",
                            attribute=g.attribute,
                            group=g.group,
                            value=float(g.n),
                            ci=(math.nan, math.nan),
                            limit=f">= {policy.min_group_size} people and >= "
                            f"{policy.min_group_positives} in need",
                            kind="insufficient_data",
                            message=f"{g.group} ({g.attribute}): {g.note}",
                        )
                    )
        else:
            notes.append(
                f"{len(insufficient)} group(s) are too small to audit reliably and are reported "
                "as insufficient data (the policy does not let them block)"
            )
    for attribute, auc in proxy_findings:
        proxy = Breach(
            metric="proxy ROC AUC",
            attribute=attribute,
            group="(all)",
            value=auc,
            ci=(math.nan, math.nan),
            limit=f"<= {policy.proxies.max_auc:g}",
            kind="proxy",
            blocking=policy.proxies.action == "block",
            message=(
                f"{attribute} can be predicted from the model's features with ROC AUC "
                f"{auc:.3f} (limit {policy.proxies.max_auc:g})"
            ),
        )
        (breaches if proxy.blocking else warnings).append(proxy)
    verdict: Verdict = "FAIL" if breaches else "PASS"
    return Decision(verdict, tuple(breaches), tuple(warnings), insufficient, tuple(notes))
