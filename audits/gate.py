"""The release gate: a policy and an audit's numbers in, a decision with its evidence out.

Each group is tested against the policy's **limit**, not against parity, and only groups the
policy judges on their own (enough people, and people in need, counted as people) are tested:

- **FAIL**: the evidence shows a group beyond a blocking limit: the one-sided test of "within the
  limit" is rejected at the interval's tail level (2.5% for 95% intervals), after Holm's
  adjustment over the gate's family of judged groups. A group truly *at* the limit fails at
  most that often.
- **REVIEW** (an open question a person answers): a group whose estimate is beyond the limit
  without clear evidence, a group not shown within the limit when the policy's pass rule asks for
  that evidence, a not-assessable group whose own data show a breach, every not-assessable group
  when the policy sends them to review, or a gate no group could be judged under.
- **PASS**: no breach and no open question. Groups too small to be judged are never passed
  silently: each is named under ``not_assessable`` (with its people and people in need) in every
  report, JSON document and approval text.

Interval, p-value and decision agree by construction: a group FAILs exactly when its interval
(at the level the adjustment leaves it) lies wholly beyond the limit. Pure: no I/O, no MLflow.
The same inputs always give the same decision, whatever the row order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from audits.group_metrics import DisparityResult, GroupAudit, significance
from audits.policy import Gate, Policy
from audits.proxies import MISSINGNESS_ALPHA, MISSINGNESS_RATIO, MissingnessResult
from model.words import PEOPLE, UnitWords

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
    #: Groups the policy could not judge on their own with this data (never silently passed).
    not_assessable: tuple[NotAssessable, ...] = ()
    #: The families of tests Holm's adjustment ran over.
    families: tuple[Family, ...] = ()

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


#: What the policy does with groups it cannot judge, in words.
NOT_ASSESSABLE_WORDS = {"review": "sends them to a person", "disclose": "discloses them"}


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


Judgement = Literal["breach", "review", "ok"]
PassRule = Literal["estimate", "interval"]


def tail(policy: Policy) -> float:
    """The one-sided level of each test: half of one minus the interval level (0.025)."""
    return significance(policy.interval_level) / 2


def limit_p_values(gate: Gate, disparity: DisparityResult) -> tuple[float, float]:
    """(p_beyond, p_within): the one-sided evidence that the disparity is beyond the gate's
    limit, and that it is within it. NaN when the audit did not test this limit."""
    beyond: list[float] = []
    within: list[float] = []
    if gate.min is not None:
        below, above = disparity.limit_p(gate.min)
        beyond.append(below)
        within.append(above)
    if gate.max is not None:
        below, above = disparity.limit_p(gate.max)
        beyond.append(above)
        within.append(below)
    return min(beyond), max(within)


def judge(
    gate: Gate,
    disparity: DisparityResult,
    rule: str,
    *,
    p_beyond: float,
    p_within: float,
    alpha: float,
    pass_rule: PassRule = "estimate",
) -> Judgement:
    """One judged group's comparison against one gate.

    ``p_beyond`` is the (adjusted) one-sided p-value of "within the limit": at most ``alpha``
    is evidence of a breach. ``p_within`` is the one-sided p-value of "beyond the limit": at
    most ``alpha`` is evidence that the group is within it (needed to pass under the ``interval``
    pass rule). Under the ``point_estimate`` rule an estimate beyond the limit is a breach.
    """
    value = disparity.value
    if not math.isfinite(value):
        return "review"
    beyond = gate.outside(value)
    if rule == "point_estimate" or not math.isfinite(p_beyond):
        breach = beyond
    else:
        breach = p_beyond <= alpha
    if breach:
        return "breach"
    if beyond:
        return "review"
    if pass_rule == "interval" and not (math.isfinite(p_within) and p_within <= alpha):
        return "review"
    return "ok"


@dataclass(frozen=True)
class NotAssessable:
    """A group the policy does not judge on its own with this data (too few people or people in
    need, or a gated metric that cannot be computed): never a silent pass."""

    attribute: str
    group: str
    people: int
    people_in_need: int
    why: str
    #: The group's own estimate of the first blocking gate's disparity (NaN when undefined).
    estimate: float = math.nan
    ci: tuple[float, float] = (math.nan, math.nan)
    #: Whether that own estimate lies beyond the gate's limit.
    beyond: bool = False

    @property
    def name(self) -> str:
        return f"{self.group} ({self.attribute})"

    def as_dict(self) -> dict[str, object]:
        return {
            "group": self.group,
            "attribute": self.attribute,
            "people": self.people,
            "people_in_need": self.people_in_need,
            "why": self.why,
            "estimate": _clean(self.estimate),
            "ci": [_clean(self.ci[0]), _clean(self.ci[1])],
            "beyond_limit": self.beyond,
        }


@dataclass(frozen=True)
class Family:
    """One family of tests Holm's adjustment runs over: a gate's judged groups on one set of
    labels."""

    gate: str
    labels: str
    comparisons: int
    adjustment: str
    alpha: float

    def as_dict(self) -> dict[str, object]:
        return {
            "gate": self.gate,
            "labels": self.labels,
            "comparisons": self.comparisons,
            "adjustment": self.adjustment,
            "alpha": round(self.alpha, 6),
        }


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


def judged(audit: GroupAudit, gate: Gate) -> list[DisparityResult]:
    """The comparisons a gate judges: groups judged on their own with a defined estimate."""
    return [d for d in _compared(audit, gate, sufficient=True) if math.isfinite(d.value)]


def worst_disparity(audit: GroupAudit, gate: Gate) -> DisparityResult | None:
    """The most extreme judged comparison for a gate (lowest for min, highest for max)."""
    values = judged(audit, gate)
    if not values:
        return None
    if gate.min is not None:
        return min(values, key=lambda d: d.value)
    return max(values, key=lambda d: d.value)


def _adjust(policy: Policy, p_values: list[float]) -> list[float]:
    return holm(p_values) if policy.multiple_comparisons == "holm" else list(p_values)


def _judge_sufficient(
    policy: Policy, audit: GroupAudit, gate: Gate, alpha: float, counted: UnitWords
) -> tuple[list[Breach], list[Breach]]:
    breaches: list[Breach] = []
    review: list[Breach] = []
    compared = judged(audit, gate)
    tests = [limit_p_values(gate, d) for d in compared]
    adjusted = _adjust(policy, [t[0] for t in tests])
    pass_rule = policy.evidence.pass_rule
    for d, (raw, within), p_value in zip(compared, tests, adjusted, strict=True):
        verdict = judge(
            gate,
            d,
            policy.decision_rule,
            p_beyond=p_value,
            p_within=within,
            alpha=alpha,
            pass_rule=pass_rule,
        )
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
        )
        people = f"{d.people:,} {counted.many}, {d.people_in_need:,} in need"
        numbers = (
            f"{d.group} ({d.attribute}; {people}) has a {_words(gate)} of {d.value:.3f} against "
            f"{d.reference} (interval {d.ci[0]:.3f} to {d.ci[1]:.3f})"
        )
        test = f"p {raw:.3g} that it is within the limit" + (
            f", {p_value:.3g} after Holm's adjustment over {len(compared)} groups"
            if policy.multiple_comparisons == "holm"
            else ""
        )
        if verdict == "breach":
            breaches.append(
                replace(
                    common,
                    message=f"{numbers}; beyond the limit ({test}); the policy requires "
                    f"{gate.describe()}",
                )
            )
            continue
        settle = _settle(gate, d, audit.periods)
        if verdict == "review" and gate.outside(d.value):
            review.append(
                replace(
                    common,
                    kind="apparent_breach",
                    settle=settle,
                    message=(
                        f"{numbers}: the estimate is beyond the limit ({gate.describe()}) but the "
                        f"evidence does not show it beyond doubt ({test}); {settle}"
                    ),
                )
            )
        elif verdict == "review":
            review.append(
                replace(
                    common,
                    kind="underpowered",
                    settle=settle,
                    message=(
                        f"{numbers}: the estimate is within the limit, but the interval reaches "
                        f"beyond it and the policy's pass rule asks for the whole interval "
                        f"within {gate.describe()}; {settle}"
                    ),
                )
            )
    return breaches, review


def _settle(gate: Gate, disparity: DisparityResult, months: int) -> str:
    """What would settle an open question: about how many more months of data like this would
    bring the interval's reach to the limit, or a person's judgement."""
    low, high = disparity.ci
    value = disparity.value
    limit = gate.min if gate.min is not None else gate.max
    if limit is None or not all(map(math.isfinite, (low, high, value))):
        return "a person decides"
    if gate.disparity == "ratio":
        if min(low, high, value, limit) <= 0:
            return "a person decides"
        half, gap = (math.log(high) - math.log(low)) / 2, abs(math.log(value) - math.log(limit))
    else:
        half, gap = (high - low) / 2, abs(value - limit)
    if gap <= 0 or half <= 0:
        return "a person decides"
    more = months * ((half / gap) ** 2 - 1)
    if more <= 0:
        return "a person decides"
    if more > 24:
        return "more data than two years would bring: a person decides"
    return f"about {math.ceil(more)} more month(s) of data like this, or a person decides"


def _not_assessable(
    policy: Policy, audit: GroupAudit, gate: Gate, alpha: float, counted: UnitWords
) -> tuple[list[NotAssessable], list[Breach]]:
    """Groups a gate cannot judge on their own, and the open questions they raise."""
    found: list[NotAssessable] = []
    review: list[Breach] = []
    small = [
        d
        for d in audit.disparities
        if d.metric == gate.metric
        and d.kind == gate.disparity
        and gate.applies_to(d.attribute)
        and (not d.sufficient or not math.isfinite(d.value))
    ]
    # The same evidence a FAIL needs (Holm over these groups), but sent to a person: these
    # groups are below the size the policy judges on its own.
    tests = [limit_p_values(gate, d)[0] for d in small]
    adjusted = _adjust(policy, tests)
    for d, p_value in zip(small, adjusted, strict=True):
        if not math.isfinite(d.value):
            why = (
                "nobody in need was recorded"
                if d.people_in_need == 0
                else f"its {_words(gate)} cannot be computed"
            )
        else:
            why = (
                f"{d.people:,} {counted.many}, {d.people_in_need:,} in need: the policy judges "
                f"a group on its own from {policy.min_group_size:,} {counted.many} and "
                f"{policy.positives_needed(d.attribute):,} in need"
            )
        item = NotAssessable(
            attribute=d.attribute,
            group=d.group,
            people=d.people,
            people_in_need=d.people_in_need,
            why=why,
            estimate=d.value,
            ci=d.ci,
            beyond=math.isfinite(d.value) and gate.outside(d.value),
        )
        found.append(item)
        common = Breach(
            metric=f"{gate.metric} {gate.disparity}",
            attribute=d.attribute,
            group=d.group,
            value=d.value,
            ci=d.ci,
            limit=gate.describe(),
            blocking=gate.action == "block",
            p_value=p_value,
            kind="not_assessable",
        )
        own_breach = (
            policy.decision_rule != "point_estimate"
            and math.isfinite(p_value)
            and p_value <= alpha
            and item.beyond
        )
        if own_breach:
            review.append(
                replace(
                    common,
                    message=(
                        f"{item.name}: too small to be judged on its own ({why}), but its own "
                        f"data show its {_words(gate)} ({d.value:.3f}, interval {d.ci[0]:.3f} to "
                        f"{d.ci[1]:.3f}) beyond the limit {gate.describe()}"
                        + ("; a person decides" if gate.action == "block" else "")
                    ),
                )
            )
        elif policy.not_assessable_action == "review":
            review.append(
                replace(
                    common,
                    message=(
                        f"{item.name}: not assessable with this data ({why}); the policy sends "
                        "such groups to a person"
                    ),
                )
            )
    return found, review


def evaluate(
    policy: Policy,
    audit: GroupAudit,
    *,
    production: GroupAudit | None = None,
    proxy_findings: Sequence[tuple[str, float]] = (),
    missingness: Sequence[MissingnessResult] = (),
    looks: int = 1,
    labels: str = "recorded outcomes",
    counted: UnitWords = PEOPLE,
) -> Decision:
    """Apply a policy to an audit.

    Parameters
    ----------
    policy : Policy
    audit : GroupAudit
        The candidate's group metrics at the operating point, tested against the policy's
        limits (``audit_groups(..., limits=policy_limits(policy))``).
    production : GroupAudit, optional
        The production model's audit on the same data; a candidate worse than it on a gated
        metric by more than the policy's tolerance fails.
    proxy_findings : sequence of (attribute, auc)
        Sensitive attributes predictable from the features above the policy's limit.
    missingness : sequence of MissingnessResult
        Missingness by group of the features that may be missing; each flagged group warns,
        asks for review or blocks, as the policy's ``[missingness] action`` says.
    looks : int
        How many decisions on different labels of the same rows combine into one (2 when the
        ground truth is judged beside the recorded labels): each gets its share of the level
        (Bonferroni), so the combined FAIL error stays within it.
    labels : str
        Which labels this look judges (named in the report's families).
    counted : UnitWords, default people
        What the audit's groups count, in the reasons (people, or areas: :mod:`model.words`).
    """
    breaches: list[Breach] = []
    warnings: list[Breach] = []
    review: list[Breach] = []
    notes: list[str] = list(policy.changed_meanings)
    alpha = tail(policy) / max(looks, 1)
    not_assessable: dict[tuple[str, str], NotAssessable] = {}
    families: list[Family] = []
    for gate in policy.gates:
        found, doubts = _judge_sufficient(policy, audit, gate, alpha, counted)
        small, small_doubts = _not_assessable(policy, audit, gate, alpha, counted)
        count = len(judged(audit, gate))
        families.append(
            Family(
                gate=gate.describe(),
                labels=labels,
                comparisons=count,
                adjustment=policy.multiple_comparisons,
                alpha=alpha,
            )
        )
        if gate.action == "block":
            breaches += found
            review += doubts + small_doubts
            for item in small:
                not_assessable.setdefault((item.attribute, item.group), item)
            if not count and audit.disparities:
                review.append(
                    Breach(
                        metric=f"{gate.metric} {gate.disparity}",
                        attribute="(all)",
                        group="(no group)",
                        value=math.nan,
                        ci=(math.nan, math.nan),
                        limit=gate.describe(),
                        kind="nothing_judged",
                        message=(
                            f"no group could be judged on its own under {gate.describe()}: "
                            "the data are too thin for this gate; a person decides"
                        ),
                    )
                )
        else:
            warnings += found + doubts + small_doubts
        if production is not None:
            regression = _regression(policy, gate, audit, production)
            if regression is not None:
                (breaches if gate.action == "block" else warnings).append(regression)
    insufficient = tuple(f"{item.name}: {item.why}" for item in not_assessable.values())
    if insufficient:
        notes.append(
            f"{len(insufficient)} group(s) could not be judged on their own with this data "
            f"(the policy {NOT_ASSESSABLE_WORDS[policy.not_assessable_action]})"
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
        verdict,
        tuple(breaches),
        tuple(warnings),
        insufficient,
        tuple(notes),
        tuple(review),
        tuple(not_assessable.values()),
        tuple(families),
    )


def disclosures_to_approve(
    policy: Policy, decision: Decision, people: int
) -> tuple[NotAssessable, ...]:
    """Groups too small to judge, holding at least the policy's share of the ``people``
    audited, whose own estimate is beyond a blocking limit: a PASS with any of them waits for
    an oversight approval that accepts them (``[approval] disclosed_beyond_share``)."""
    share = policy.approval.disclosed_beyond_share
    if share <= 0 or people <= 0:
        return ()
    return tuple(n for n in decision.not_assessable if n.beyond and n.people >= share * people)


def policy_limits(policy: Policy) -> list[tuple[str, str, float]]:
    """The (metric, kind, value) limits an audit must test for this policy's gates."""
    out: list[tuple[str, str, float]] = []
    for gate in policy.gates:
        for value in (gate.min, gate.max):
            if value is not None:
                out.append((gate.metric, gate.disparity, float(value)))
    return out


def resolution_needed(policy: Policy, audit: GroupAudit, *, looks: int = 1) -> int:
    """Resamples the decision needs, or 0 when the audit's are enough.

    A resampled p-value cannot fall below ``1 / (B + 1)``. When a judged group's unadjusted
    p-value of "within the limit" is at the test's level, Holm's adjustment over the family may
    ask for a smaller one than the resamples can show: the audit is then redrawn with enough
    resamples for about ten beyond the smallest cut-off.
    """
    alpha = tail(policy) / max(looks, 1)
    needed = 0
    for gate in policy.blocking_gates:
        compared = judged(audit, gate)
        m = len(compared) if policy.multiple_comparisons == "holm" else 1
        if not any(limit_p_values(gate, d)[0] <= alpha for d in compared):
            continue
        enough = math.ceil(10 * max(m, 1) / alpha)
        if audit.resamples < enough:
            needed = max(needed, min(enough, MAX_RESAMPLES))
    return needed


#: The most resamples a redrawn audit uses.
MAX_RESAMPLES = 50_000


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
