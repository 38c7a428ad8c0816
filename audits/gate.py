"""The release gate: a policy and an audit's numbers in, a decision with its evidence out.

Three outcomes, and the burden of proof is on the model:

- **FAIL**: the evidence shows a breach (a blocking limit broken, beyond noise).
- **REVIEW**: an apparent breach that is not significant, or a group the audit cannot judge with
  useful power (it could not have detected a disparity at the limit), or a small group whose
  pooled estimate is beyond a limit. A person decides; nothing is promoted automatically.
- **PASS**: every group was judged with enough evidence and is within every blocking limit.

Pure: no I/O, no MLflow. The same inputs always give the same decision, whatever the row order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from audits.metrics import DisparityResult, GroupAudit, significance
from audits.policy import Gate, Policy
from audits.proxies import MISSINGNESS_ALPHA, MISSINGNESS_RATIO, MissingnessResult

Verdict = Literal["PASS", "REVIEW", "FAIL"]
#: Worst first: a combined decision takes the earliest of its parts.
SEVERITY: tuple[Verdict, ...] = ("FAIL", "REVIEW", "PASS")


def worst(*verdicts: Verdict) -> Verdict:
    """The most severe of several verdicts."""
    return min(verdicts, key=SEVERITY.index)


@dataclass(frozen=True)
class Breach:
    """One limit a candidate does not meet, or one question the audit could not settle."""

    metric: str
    attribute: str
    group: str
    value: float
    ci: tuple[float, float]
    limit: str
    kind: str = "disparity"
    blocking: bool = True
    message: str = ""
    p_value: float = math.nan
    effective_n: float = math.nan
    detectable: float = math.nan
    settle: str = ""

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
            "p_value": _clean(self.p_value),
            "effective_n": _clean(self.effective_n),
            "detectable": _clean(self.detectable),
            "settle": self.settle,
        }


def _clean(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


@dataclass(frozen=True)
class Decision:
    """The gate's verdict: FAIL on any breach, else REVIEW on any open question, else PASS."""

    verdict: Verdict
    breaches: tuple[Breach, ...] = ()
    warnings: tuple[Breach, ...] = ()
    insufficient: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    review: tuple[Breach, ...] = ()

    @property
    def passed(self) -> bool:
        return self.verdict == "PASS"

    @property
    def review_groups(self) -> tuple[str, ...]:
        """The groups a person must judge, named as ``group (attribute)``; a missingness
        question adds which gaps (``group (attribute), gaps in 'feature'``)."""
        return tuple(
            dict.fromkeys(
                f"{r.group} ({r.attribute})" + (f", {r.metric}" if r.kind == "missingness" else "")
                for r in self.review
            )
        )


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


def _beyond(gate: Gate, low: float, high: float) -> bool:
    """True if the whole range [low, high] lies outside the gate's limits."""
    if gate.min is not None and high < gate.min:
        return True
    return gate.max is not None and low > gate.max


def _within(gate: Gate, low: float, high: float) -> bool:
    """True if the whole range [low, high] lies inside the gate's limits."""
    return not (gate.outside(low) or gate.outside(high))


Judgement = Literal["breach", "review", "ok"]


def judge(
    gate: Gate, disparity: DisparityResult, rule: str, *, p_value: float, alpha: float
) -> Judgement:
    """One group's comparison against one gate, under the policy's decision rule.

    ``p_value`` is the comparison's (possibly adjusted) p-value against parity.
    """
    value = disparity.value
    low, high = disparity.ci
    if not math.isfinite(value):
        return "review"
    beyond = gate.outside(value)
    intervals = math.isfinite(low) and math.isfinite(high)
    if rule == "point_estimate" or not intervals:
        breach = beyond
    elif rule == "confident_breach":
        breach = _beyond(gate, low, high)
    else:  # significant_breach, confident_pass: beyond the limit and a real gap
        breach = beyond and math.isfinite(p_value) and p_value < alpha
    if breach:
        return "breach"
    if beyond:
        return "review"
    if rule == "confident_pass" and not _within(gate, low, high):
        return "review"
    return "ok"


def powered(gate: Gate, disparity: DisparityResult) -> bool:
    """Whether the audit could detect a disparity at the gate's limit with 80% power."""
    below, above = disparity.detectable
    if not (math.isfinite(below) and math.isfinite(above)):
        return False
    if gate.min is not None and below < gate.min:
        return False
    return not (gate.max is not None and above > gate.max)


def months_to_settle(gate: Gate, disparity: DisparityResult, months: int) -> float:
    """About how many more months of data would let the audit detect a breach at the limit."""
    below, above = disparity.detectable
    parity = 1.0 if gate.disparity == "ratio" else 0.0
    factors = []
    for limit, reach in ((gate.min, below), (gate.max, above)):
        if limit is None or not math.isfinite(reach):
            continue
        if gate.disparity == "ratio":
            if limit <= 0 or reach <= 0:
                continue
            have, need = abs(math.log(reach)), abs(math.log(limit))
        else:
            have, need = abs(reach - parity), abs(limit - parity)
        if need > 0 and have > need:
            factors.append((have / need) ** 2)
    if not factors:
        return 0.0
    return max(months * (max(factors) - 1), 1.0)


def _adjusted(policy: Policy, p_value: float) -> str:
    if policy.multiple_comparisons != "holm":
        return ""
    return f"{p_value:.3g} after Holm's adjustment for the many groups compared, "


def _words(gate: Gate) -> str:
    return f"{gate.metric.replace('_', ' ')} {gate.disparity}"


def _compared(audit: GroupAudit, gate: Gate, *, sufficient: bool) -> list[DisparityResult]:
    return [
        d
        for d in audit.disparities
        if d.metric == gate.metric
        and d.kind == gate.disparity
        and d.sufficient == sufficient
        and gate.applies_to(d.attribute)
    ]


def worst_disparity(audit: GroupAudit, gate: Gate) -> DisparityResult | None:
    """The most extreme sufficient comparison for a gate (lowest for min, highest for max)."""
    values = [d for d in _compared(audit, gate, sufficient=True) if math.isfinite(d.value)]
    if not values:
        return None
    if gate.min is not None:
        return min(values, key=lambda d: d.value)
    return max(values, key=lambda d: d.value)


def _judge_sufficient(
    policy: Policy, audit: GroupAudit, gate: Gate, alpha: float
) -> tuple[list[Breach], list[Breach]]:
    breaches: list[Breach] = []
    review: list[Breach] = []
    compared = _compared(audit, gate, sufficient=True)
    raw_p = [d.p_value for d in compared]
    adjusted = holm(raw_p) if policy.multiple_comparisons == "holm" else raw_p
    for d, p_value in zip(compared, adjusted, strict=True):
        verdict = judge(gate, d, policy.decision_rule, p_value=p_value, alpha=alpha)
        reach = d.detectable[0] if gate.min is not None else d.detectable[1]
        common = Breach(
            metric=f"{gate.metric} {gate.disparity}",
            attribute=d.attribute,
            group=d.group,
            value=d.value,
            ci=d.ci,
            limit=gate.describe(),
            blocking=gate.action == "block",
            p_value=p_value,
            effective_n=d.effective_n,
            detectable=reach,
        )
        numbers = (
            f"{d.group} ({d.attribute}) has a {_words(gate)} of {d.value:.3f} against "
            f"{d.reference} (interval {d.ci[0]:.3f} to {d.ci[1]:.3f}, p {d.p_value:.3g}, "
            f"{_adjusted(policy, p_value)}effective size {d.effective_n:.0f})"
        )
        if verdict == "breach":
            breaches.append(
                replace(common, message=f"{numbers}; the policy requires {gate.describe()}")
            )
            continue
        months = months_to_settle(gate, d, audit.periods)
        settle = (
            f"about {math.ceil(months)} more month(s) of data like this"
            if months
            else "more data, or a person's judgement"
        )
        if verdict == "review":
            review.append(
                replace(
                    common,
                    kind="apparent_breach",
                    settle=settle,
                    message=(
                        f"{numbers}: beyond the limit ({gate.describe()}) but not clearly beyond "
                        f"noise; {settle} would settle it, or a person decides"
                    ),
                )
            )
        elif policy.evidence.underpowered == "review" and not powered(gate, d):
            review.append(
                replace(
                    common,
                    kind="underpowered",
                    settle=settle,
                    message=(
                        f"{numbers}: within the limit, but this audit could only detect a "
                        f"{_words(gate)} beyond {reach:.3f} (80% power), not one at the limit "
                        f"{gate.describe()}; {settle} would settle it"
                    ),
                )
            )
    return breaches, review


def _judge_small(
    policy: Policy, audit: GroupAudit, gate: Gate
) -> tuple[list[Breach], list[Breach]]:
    """Small groups judged on their partially pooled estimate."""
    breaches: list[Breach] = []
    review: list[Breach] = []
    for d in _compared(audit, gate, sufficient=False):
        estimate, (low, high) = d.pooled, d.pooled_ci
        common = Breach(
            metric=f"{gate.metric} {gate.disparity}",
            attribute=d.attribute,
            group=d.group,
            value=estimate,
            ci=(low, high),
            limit=gate.describe(),
            blocking=gate.action == "block",
            effective_n=d.effective_n,
            kind="small_group",
        )
        if not math.isfinite(estimate):
            if policy.small_groups == "block":
                review.append(
                    replace(common, message=f"{d.group} ({d.attribute}): too small to estimate")
                )
            continue
        pooled = (
            f"{d.group} ({d.attribute}) is a small group; its pooled {_words(gate)} is "
            f"{estimate:.3f} (credible interval {low:.3f} to {high:.3f}; own estimate "
            f"{d.value:.3f})"
        )
        if _beyond(gate, low, high):
            breaches.append(
                replace(
                    common,
                    kind="small_group",
                    message=f"{pooled}: beyond {gate.describe()} even after pooling",
                )
            )
        elif gate.outside(estimate):
            review.append(
                replace(
                    common,
                    kind="small_group",
                    message=f"{pooled}: beyond {gate.describe()}; a person decides",
                )
            )
        elif policy.small_groups == "block":
            review.append(
                replace(
                    common,
                    kind="small_group",
                    message=f"{pooled}: the policy asks a person to judge every small group",
                )
            )
    return breaches, review


def evaluate(
    policy: Policy,
    audit: GroupAudit,
    *,
    production: GroupAudit | None = None,
    proxy_findings: Sequence[tuple[str, float]] = (),
    missingness: Sequence[MissingnessResult] = (),
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
    missingness : sequence of MissingnessResult
        Missingness by group of the features that may be missing; each flagged group warns,
        asks for review or blocks, as the policy's ``[missingness] action`` says.
    """
    breaches: list[Breach] = []
    warnings: list[Breach] = []
    review: list[Breach] = []
    notes: list[str] = list(policy.changed_meanings)
    alpha = significance(policy.interval_level)
    for gate in policy.gates:
        found, doubts = _judge_sufficient(policy, audit, gate, alpha)
        small_found, small_doubts = _judge_small(policy, audit, gate)
        if gate.action == "block":
            breaches += found + small_found
            review += doubts + small_doubts
        else:
            warnings += found + small_found + doubts + small_doubts
        if production is not None:
            regression = _regression(policy, gate, audit, production)
            if regression is not None:
                (breaches if gate.action == "block" else warnings).append(regression)
    insufficient = tuple(
        f"{g.group} ({g.attribute}): {g.note}" for g in audit.groups if not g.sufficient
    )
    if insufficient:
        notes.append(
            f"{len(insufficient)} group(s) are below the minimum sizes and were judged on their "
            "partially pooled estimates"
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
    action = policy.missingness.action
    where = {"block": breaches, "review": review, "warn": warnings}[action]
    for result in missingness:
        for group, sentence in result.flagged:
            where.append(
                Breach(
                    metric=f"gaps in '{result.feature}'",
                    attribute=result.attribute,
                    group=group.group,
                    value=group.ratio,
                    ci=(math.nan, math.nan),
                    limit=f"under {MISSINGNESS_RATIO:g}x, or chi-square p >= {MISSINGNESS_ALPHA:g}",
                    kind="missingness",
                    blocking=action == "block",
                    message=f"{sentence} (policy: {action})",
                    p_value=group.p_value,
                )
            )
    verdict: Verdict = "FAIL" if breaches else "REVIEW" if review else "PASS"
    return Decision(
        verdict, tuple(breaches), tuple(warnings), insufficient, tuple(notes), tuple(review)
    )


def _regression(
    policy: Policy, gate: Gate, audit: GroupAudit, production: GroupAudit
) -> Breach | None:
    mine, theirs = worst_disparity(audit, gate), worst_disparity(production, gate)
    if mine is None or theirs is None:
        return None
    tolerance = policy.no_regression.tolerance
    worse = theirs.value - mine.value if gate.min is not None else mine.value - theirs.value
    if worse <= tolerance:
        return None
    return Breach(
        metric=f"{gate.metric} {gate.disparity}",
        attribute="(worst group)",
        group="(worst group)",
        value=mine.value,
        ci=mine.ci,
        limit=f"no worse than production ({theirs.value:.3f}) by more than {tolerance:g}",
        kind="regression",
        blocking=gate.action == "block",
        message=(
            f"the worst group's {gate.metric} {gate.disparity} is {mine.value:.3f} "
            f"({mine.group}, {mine.attribute}), worse than the production model's "
            f"{theirs.value:.3f} by more than the tolerance {tolerance:g}"
        ),
    )
