"""Group metrics at the operating point, comparisons, and their intervals and tests.

Every count-based metric (selection rate, recall, precision, false-positive and false-negative
rates, share flagged against share in need) is a function of each group's confusion counts. The
point estimates are computed from those counts, which gives exactly Fairlearn ``MetricFrame``'s
values (tests check 1e-9, and every release checks it again).

Comparisons. By default each group is compared with *everyone else* (the rest of the
population), so an under-served largest group is caught and no group is measured against the
luckiest of many noisy groups. The largest group, or a named one per attribute, can be chosen
instead.

Intervals and tests come from one method, so they always agree. The counts are resampled with a
Bayesian cluster bootstrap (:mod:`audits.resampling`: whole people or areas, so repeated months
never narrow an interval), and each compared cell gets the Jeffreys prior's half count, so a
group (or reference) with no one flagged still has an honest, non-degenerate spread.

Tests and intervals are one construction. A one-sided p-value against a value ``v`` counts the
resamples on the far side: ``(b + 1) / (B + 1)``, so it never reaches 0 with finite resamples.
The interval's ends are where that p-value crosses the level's tail, so a 95% interval lies
wholly below ``v`` exactly when the one-sided p-value of "at least ``v``" is at most 0.025, and
wholly above it exactly when the p-value of "at most ``v``" is (a property test checks it).
The gate tests each group against the policy's *limit*, not against parity
(:func:`limit_tests`); the two-sided p-value against parity is reported as information.

Evidence. Sizes are counted in people (clusters), not rows: each group's people and people in
need decide whether the policy judges it on its own. For every group and metric the audit
reports the effective sample size (the size of an independent sample with the same spread,
after clustering). Small groups additionally get a partially pooled estimate
(:mod:`audits.shrinkage`), shown for information only: the gate never decides on it.

Calibration (observed rate against mean score) and ROC AUC per group carry analytic intervals
(normal approximation and Hanley-McNeil), stated as such in reports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from audits.groups import Grouping
from audits.limit_check import Materiality
from audits.policy import COUNT_METRICS
from audits.resampling import ClusterBootstrap, confusion_cells, fine_cells, grouping_draws
from audits.shrinkage import pooled_estimates
from model.words import PEOPLE, UnitWords

Interval = tuple[float, float]
#: z-value of a two-sided 95% normal interval (the AUC and calibration intervals).
_Z_ALPHA = 1.959964
ReferenceRule = str | dict[str, str]
#: The comparison named "everyone else" in reports.
REST = "everyone else"
#: Metrics that are proportions (a count over a count of the same people).
PROPORTIONS = (
    "selection_rate",
    "recall",
    "precision",
    "false_positive_rate",
    "false_negative_rate",
)


def count_table(
    labels: np.ndarray, selected: np.ndarray, codes: np.ndarray, groups: int
) -> np.ndarray:
    """Confusion counts per group, shape (groups, 4): TP, FP, FN, TN."""
    cell = confusion_cells(labels, selected)
    table = np.bincount(np.asarray(codes) * 4 + cell, minlength=groups * 4)
    return table.reshape(groups, 4)


def rates(cells: np.ndarray, flagged_total: np.ndarray, positives_total: np.ndarray) -> dict:
    """Count metrics of cells (..., 4) given the population's flagged and in-need totals."""
    tp, fp, fn, tn = (cells[..., i].astype(float) for i in range(4))
    n = tp + fp + fn + tn
    flagged, positives, negatives = tp + fp, tp + fn, fp + tn
    with np.errstate(divide="ignore", invalid="ignore"):
        share_flagged = flagged / flagged_total
        share_in_need = positives / positives_total
        return {
            "selection_rate": flagged / n,
            "recall": tp / positives,
            "precision": tp / flagged,
            "false_positive_rate": fp / negatives,
            "false_negative_rate": fn / positives,
            "flagged_to_need": share_flagged / share_in_need,
            "base_rate": positives / n,
            "share_flagged": share_flagged,
            "share_in_need": share_in_need,
        }


def metrics_from_counts(table: np.ndarray) -> dict[str, np.ndarray]:
    """Count metrics for tables of shape (..., groups, 4); NaN where undefined."""
    flagged = (table[..., 0] + table[..., 1]).sum(axis=-1, keepdims=True)
    positives = (table[..., 0] + table[..., 2]).sum(axis=-1, keepdims=True)
    return rates(table, flagged, positives)


@dataclass(frozen=True)
class GroupResult:
    """One group's metrics, intervals and data sufficiency."""

    attribute: str
    group: str
    n: int
    positives: int
    flagged: int
    metrics: dict[str, float]
    ci: dict[str, Interval]
    sufficient: bool
    note: str
    #: Effective sample size of each metric's denominator (after clustering).
    effective_n: dict[str, float]
    reference: bool = False
    #: People (clusters) with rows in the group, and people with at least one row in need.
    people: int = 0
    people_in_need: int = 0


@dataclass(frozen=True)
class DisparityResult:
    """One group against its reference (everyone else, by default) on one metric."""

    attribute: str
    group: str
    reference: str
    metric: str
    kind: Literal["ratio", "difference"]
    value: float
    ci: Interval
    sufficient: bool
    p_value: float = float("nan")
    effective_n: float = float("nan")
    #: The partially pooled (empirical-Bayes) estimate and its credible interval.
    pooled: float = float("nan")
    pooled_ci: Interval = (float("nan"), float("nan"))
    #: The group's own and the reference's metric values.
    group_value: float = float("nan")
    reference_value: float = float("nan")
    #: One-sided tests against each limit the audit was asked about: (limit, p_below, p_above),
    #: where p_below is the evidence that the disparity is below the limit and p_above that it
    #: is above (each ``(b + 1) / (B + 1)``).
    limit_tests: tuple[tuple[float, float, float], ...] = ()
    people: int = 0
    people_in_need: int = 0

    def limit_p(self, limit: float) -> tuple[float, float]:
        """(p_below, p_above) of the test against ``limit`` (NaN when it was not tested)."""
        for value, below, above in self.limit_tests:
            if value == limit:
                return below, above
        return float("nan"), float("nan")


@dataclass(frozen=True)
class WorstToBest:
    """The spread of a metric across an attribute's sufficient groups."""

    attribute: str
    metric: str
    worst_group: str
    best_group: str
    ratio: float
    difference: float
    ratio_ci: Interval
    difference_ci: Interval


@dataclass
class GroupAudit:
    """All group metrics of one audit."""

    overall: dict[str, float]
    groups: list[GroupResult] = field(default_factory=list)
    disparities: list[DisparityResult] = field(default_factory=list)
    spreads: list[WorstToBest] = field(default_factory=list)
    resamples: int = 0
    level: float = 0.95
    reference_rule: ReferenceRule = "rest"
    clusters: int = 0
    periods: int = 1

    def group(self, attribute: str, group: str) -> GroupResult:
        return next(g for g in self.groups if g.attribute == attribute and g.group == group)

    def disparity(self, attribute: str, group: str, metric: str, kind: str) -> DisparityResult:
        return next(
            d
            for d in self.disparities
            if (d.attribute, d.group, d.metric, d.kind) == (attribute, group, metric, kind)
        )


def significance(level: float) -> float:
    """The test's level for an interval level (0.95 -> 0.05, without float noise)."""
    return round(1.0 - level, 12)


def _tail_count(level: float, valid: np.ndarray) -> np.ndarray:
    """How many resamples may lie beyond an interval's end: ``floor(tail (B + 1)) - 1``."""
    tail = significance(level) / 2
    return np.floor(tail * (valid + 1) + 1e-9).astype(np.intp) - 1


def interval(draws: np.ndarray, level: float) -> np.ndarray:
    """Central intervals along axis 0, the inversion of :func:`tail_p_values`.

    The lower end is the (c+1)-th smallest valid resample and the upper end the (c+1)-th
    largest, with ``c = floor(tail (B + 1)) - 1``: the interval lies wholly below ``v`` exactly
    when ``tail_p_values(draws, v)[0] <= tail`` (and wholly above when ``[1] <= tail``). NaN
    where no resample is defined, or too few to reach the level.
    """
    ordered = np.sort(draws, axis=0)  # NaN sorts last
    valid = (~np.isnan(draws)).sum(axis=0)
    c = _tail_count(level, valid)
    last = max(draws.shape[0] - 1, 0)
    low = np.clip(c, 0, last)
    high = np.clip(valid - 1 - c, 0, last)
    picked = np.take_along_axis(ordered, np.stack([low, high]), axis=0)
    return np.where((valid > 0) & (c >= 0), picked, np.nan)


def tail_p_values(draws: np.ndarray, value: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-sided p-values against ``value`` along axis 0: ``(p_below, p_above)``.

    ``p_below`` is the evidence that the quantity is below ``value`` (the share of resamples at
    or above it, as ``(b + 1) / (B + 1)``); ``p_above`` the evidence that it is above.
    """
    valid = ~np.isnan(draws)
    count = valid.sum(axis=0)
    at_or_above = ((draws >= value) & valid).sum(axis=0)
    at_or_below = ((draws <= value) & valid).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        below = np.where(count > 0, (at_or_above + 1) / (count + 1), np.nan)
        above = np.where(count > 0, (at_or_below + 1) / (count + 1), np.nan)
    return below, above


def p_values(draws: np.ndarray, parity: float) -> np.ndarray:
    """Two-sided p-values against parity: twice the smaller one-sided p-value (at most 1)."""
    below, above = tail_p_values(draws, parity)
    return np.minimum(1.0, 2.0 * np.minimum(below, above))


def _pair(values: np.ndarray, i: int) -> Interval:
    return (float(values[0, i]), float(values[1, i]))


def group_auc(
    labels: np.ndarray,
    scores: np.ndarray,
    codes: np.ndarray,
    groups: int,
    *,
    score_order: np.ndarray | None = None,
) -> np.ndarray:
    """ROC AUC within each group (Mann-Whitney with mid-ranks for ties), NaN where undefined.

    Equals ``sklearn.metrics.roc_auc_score`` on each group's rows. ``score_order`` (a stable
    argsort of ``scores``) can be shared between groupings so the scores are sorted only once.
    """
    if score_order is None:
        score_order = np.argsort(scores, kind="stable")
    ranked_codes = codes[score_order]
    if groups < 2**15:  # small integers sort by radix: much faster than a comparison sort
        ranked_codes = ranked_codes.astype(np.int16)
    order = score_order[np.argsort(ranked_codes, kind="stable")]
    sorted_codes = codes[order]
    sorted_labels = labels[order].astype(float)
    n = len(order)
    total = np.bincount(sorted_codes, minlength=groups).astype(float)
    starts = np.r_[0, np.cumsum(total)[:-1]].astype(np.intp)
    rank = np.arange(n) - starts[sorted_codes] + 1.0
    by_score = scores[score_order]
    if np.any(by_score[1:] == by_score[:-1]):  # ties: mid-ranks within each run of equal scores
        sorted_scores = scores[order]
        tie_break = np.r_[
            True,
            (sorted_codes[1:] != sorted_codes[:-1]) | (sorted_scores[1:] != sorted_scores[:-1]),
        ]
        run = np.cumsum(tie_break) - 1
        mid = np.bincount(run, weights=rank) / np.bincount(run)
        ranks = mid[run]
    else:
        ranks = rank
    pos = np.bincount(sorted_codes, weights=sorted_labels, minlength=groups)
    rank_sum = np.bincount(sorted_codes, weights=ranks * sorted_labels, minlength=groups)
    neg = total - pos
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sum - pos * (pos + 1) / 2) / (pos * neg)
    return np.where((pos > 0) & (neg > 0), auc, np.nan)


def _auc_interval(auc: float, positives: int, negatives: int) -> Interval:
    """Hanley-McNeil normal interval for an AUC."""
    if not np.isfinite(auc) or positives == 0 or negatives == 0:
        return (float("nan"), float("nan"))
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / (positives * negatives)
    half = _Z_ALPHA * float(np.sqrt(max(variance, 0.0)))
    return (max(0.0, auc - half), min(1.0, auc + half))


def reference_index(grouping: Grouping, rule: ReferenceRule) -> int | None:
    """The reference group's index, or ``None`` when each group is compared with the rest."""
    if isinstance(rule, dict):
        wanted = rule.get(grouping.attribute)
        if wanted is not None and wanted in grouping.levels:
            return grouping.levels.index(wanted)
        if wanted is None and rule.get("*", "rest") == "rest":
            return None
        return int(np.argmax(grouping.sizes))
    if rule == "largest":
        return int(np.argmax(grouping.sizes))
    return None


def audit_groups(
    labels: np.ndarray,
    selected: np.ndarray,
    scores: np.ndarray | None,
    groupings: Sequence[Grouping],
    *,
    clusters: np.ndarray | None = None,
    periods: int = 1,
    reference_rule: ReferenceRule = "rest",
    min_group_size: int = 100,
    min_group_positives: int | Callable[[str], int] = 20,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    limits: Sequence[tuple[str, str, float]] = (),
    counted: UnitWords = PEOPLE,
) -> GroupAudit:
    """Metrics per group, comparisons with each group's reference, intervals and evidence.

    Parameters
    ----------
    labels : ndarray of 0/1
        Observed outcomes.
    selected : ndarray of bool
        Whether each record was offered outreach (flagged) at the operating point.
    scores : ndarray, optional
        Scores, for calibration and ROC AUC per group.
    groupings : sequence of Grouping
    clusters : ndarray, optional
        Each row's person or area: resampled as a whole (rows of one cluster are not
        independent). ``None``: every row is its own cluster.
    periods : int
        Months the audit data spans (reports say how many more would settle a question).
    reference_rule : "rest", "largest", or mapping of attribute to group
        What each group is compared with: everyone else (default), the attribute's largest
        group, or a named group.
    min_group_size, min_group_positives : int (or, for the second, a function of the grouping)
        People, and people in need (clusters, not rows), a group needs to be judged on its own
        evidence; below either it is reported as not assessable (with a pooled estimate for
        information).
    resamples : int
        Bootstrap resamples (0 for point estimates only).
    level : float
        Interval level.
    seed : int
        Bootstrap seed: the same inputs give the same intervals.
    limits : sequence of (metric, kind, value)
        Values each comparison is tested against one-sidedly (the policy's limits).
    counted : UnitWords, default people
        What the rows count, in a group's note (people, or areas: :mod:`model.words`).
    """
    labels = np.asarray(labels, dtype=np.intp)
    selected = np.asarray(selected, dtype=bool)
    rng = np.random.default_rng(seed)
    overall_table = count_table(labels, selected, np.zeros(len(labels), dtype=np.intp), 1)
    overall = {k: float(v[0]) for k, v in metrics_from_counts(overall_table).items()}
    overall.update(n=len(labels), positives=int(labels.sum()), flagged=int(selected.sum()))
    n_clusters = len(labels) if clusters is None else len(np.unique(np.asarray(clusters)))
    audit = GroupAudit(
        overall=overall,
        resamples=resamples,
        level=level,
        reference_rule=reference_rule,
        clusters=n_clusters,
        periods=periods,
    )
    fine_draws = None
    cells = fine_cells(groupings, len(labels))
    if resamples:
        bootstrap = ClusterBootstrap(cells, confusion_cells(labels, selected), clusters)
        fine_draws = bootstrap.draw(resamples, rng)
    score_order = None if scores is None else np.argsort(scores, kind="stable")
    cluster_codes = None if clusters is None else pd.factorize(np.asarray(clusters))[0]
    parents: dict[str, tuple[Grouping, dict[str, np.ndarray]]] = {}
    for index, grouping in enumerate(groupings):
        draws = None
        if fine_draws is not None:
            draws = grouping_draws(fine_draws, cells.group_of[index], len(grouping.levels))
        table = count_table(labels, selected, grouping.codes, len(grouping.levels))
        people = people_counts(grouping.codes, len(grouping.levels), labels, cluster_codes)
        pooled = _audit_grouping(
            audit,
            grouping,
            table,
            draws,
            labels,
            scores,
            rng=rng,
            score_order=score_order,
            reference_rule=reference_rule,
            min_group_size=min_group_size,
            min_group_positives=min_group_positives(grouping.attribute)
            if callable(min_group_positives)
            else min_group_positives,
            parents=parents,
            people=people,
            limits=limits,
            counted=counted,
        )
        parents[grouping.attribute] = (grouping, pooled)
    return audit


def people_counts(
    codes: np.ndarray, groups: int, labels: np.ndarray, clusters: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """People per group, and people with at least one row in need (clusters, not rows).

    A person whose rows fall in two groups (an age band crossed between months) counts in both.
    Without clusters every row is its own person.
    """
    codes = np.asarray(codes, dtype=np.int64)
    need = np.asarray(labels) == 1
    if clusters is None:
        return (
            np.bincount(codes, minlength=groups),
            np.bincount(codes[need], minlength=groups),
        )
    key = np.asarray(clusters, dtype=np.int64) * groups + codes
    everyone = pd.unique(key) % groups
    in_need = pd.unique(key[need]) % groups
    return np.bincount(everyone, minlength=groups), np.bincount(in_need, minlength=groups)


def _parent_rates(
    grouping: Grouping,
    parents: dict[str, tuple[Grouping, dict[str, np.ndarray]]],
    overall: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """The rates each group is pulled towards: for an intersection, the pooled estimate of its
    first attribute's group (itself pulled towards everyone); otherwise everyone's rate."""
    attribute = grouping.attribute.split(" × ")[0]
    size = len(grouping.levels)
    if attribute != grouping.attribute and attribute in parents:
        parent, pooled = parents[attribute]
        index = np.array([parent.levels.index(level.split(" × ")[0]) for level in grouping.levels])
        return {k: v[index] for k, v in pooled.items()}
    return {k: np.repeat(v, size) for k, v in overall.items()}


def _audit_grouping(
    audit: GroupAudit,
    grouping: Grouping,
    table: np.ndarray,
    draws: np.ndarray | None,
    labels: np.ndarray,
    scores: np.ndarray | None,
    *,
    rng: np.random.Generator,
    score_order: np.ndarray | None,
    reference_rule: ReferenceRule,
    min_group_size: int,
    min_group_positives: int,
    parents: dict[str, tuple[Grouping, dict[str, np.ndarray]]],
    people: tuple[np.ndarray, np.ndarray],
    limits: Sequence[tuple[str, str, float]],
    counted: UnitWords,
) -> dict[str, np.ndarray]:
    """Audit one grouping into ``audit``; returns its pooled estimates (for its children)."""
    n_groups = len(grouping.levels)
    point = metrics_from_counts(table)
    ref = reference_index(grouping, reference_rule)
    total = table.sum(axis=0)
    reference_table = (total - table) if ref is None else np.repeat(table[[ref]], n_groups, axis=0)
    reference_name = REST if ref is None else grouping.levels[ref]
    flagged_total = total[0] + total[1]
    positives_total = total[0] + total[2]
    mine = rates(table, flagged_total, positives_total)
    theirs = rates(reference_table, flagged_total, positives_total)
    sizes = table.sum(axis=1)
    positives = table[:, 0] + table[:, 2]
    persons, persons_in_need = people
    # The one sufficiency rule (audits.limit_check), on people and people in need.
    sufficient = Materiality(min_group_size, min_group_positives).sufficient(
        persons, persons_in_need
    )

    # Resampled comparisons: each compared cell gets the Jeffreys prior's half count.
    mine_draws: dict[str, np.ndarray] = {}
    theirs_draws: dict[str, np.ndarray] = {}
    group_draws: dict[str, np.ndarray] = {}
    if draws is not None:
        drawn_total = draws.sum(axis=1)
        own = draws + rng.standard_gamma(0.5, size=draws.shape)
        if ref is None:
            other = drawn_total[:, None, :] - draws + rng.standard_gamma(0.5, size=draws.shape)
            flagged = own[..., 0] + own[..., 1] + other[..., 0] + other[..., 1]
            needed = own[..., 0] + own[..., 2] + other[..., 0] + other[..., 2]
        else:
            other = np.repeat(own[:, [ref], :], n_groups, axis=1)
            flagged = (drawn_total[:, 0] + drawn_total[:, 1])[:, None]
            needed = (drawn_total[:, 0] + drawn_total[:, 2])[:, None]
        mine_draws = rates(own, flagged, needed)
        theirs_draws = rates(other, flagged, needed)
        group_draws = metrics_from_counts(draws)
    intervals = {k: interval(v, audit.level) for k, v in group_draws.items()}
    effective = _effective_sizes(mine_draws, table)
    pooled = pooled_estimates(
        table,
        effective,
        _parent_rates(grouping, parents, metrics_from_counts(total[None, :])),
        level=audit.level,
    )
    mean_scores = aucs = None
    if scores is not None:
        mean_scores = np.bincount(grouping.codes, weights=scores, minlength=n_groups) / np.maximum(
            sizes, 1
        )
        aucs = group_auc(labels, scores, grouping.codes, n_groups, score_order=score_order)
    comparisons = _comparisons(audit, mine_draws, theirs_draws, limits)
    for g, level_name in enumerate(grouping.levels):
        metrics = {k: float(v[g]) for k, v in point.items()}
        ci = {k: _pair(v, g) for k, v in intervals.items()}
        if mean_scores is not None and aucs is not None:
            observed = metrics["base_rate"]
            half = _Z_ALPHA * float(np.sqrt(observed * (1 - observed) / max(sizes[g], 1)))
            metrics["mean_score"] = float(mean_scores[g])
            metrics["calibration_gap"] = observed - float(mean_scores[g])
            ci["calibration_gap"] = (
                metrics["calibration_gap"] - half,
                metrics["calibration_gap"] + half,
            )
            metrics["roc_auc"] = float(aucs[g])
            ci["roc_auc"] = _auc_interval(
                float(aucs[g]), int(positives[g]), int(sizes[g] - positives[g])
            )
        note = ""
        if not sufficient[g]:
            note = (
                f"not assessable with this data: {int(persons[g])} {counted.many}, "
                f"{int(persons_in_need[g])} of them in need "
                f"(the policy judges a group on its own from {min_group_size} {counted.many} and "
                f"{min_group_positives} in need)"
            )
        audit.groups.append(
            GroupResult(
                attribute=grouping.attribute,
                group=level_name,
                n=int(sizes[g]),
                positives=int(positives[g]),
                flagged=int(table[g, 0] + table[g, 1]),
                metrics=metrics,
                ci=ci,
                sufficient=bool(sufficient[g]),
                note=note,
                effective_n={k: float(v[g]) for k, v in effective.items()},
                reference=ref == g,
                people=int(persons[g]),
                people_in_need=int(persons_in_need[g]),
            )
        )
        if ref == g:
            continue
        for metric in COUNT_METRICS:
            for kind in ("ratio", "difference"):
                found = comparisons.get((metric, kind))
                shrunk, shrunk_ci = float("nan"), (float("nan"), float("nan"))
                if metric in pooled:
                    estimate, low, high = (np.float64(x[g]) for x in pooled[metric])
                    base = np.float64(theirs[metric][g])
                    with np.errstate(divide="ignore", invalid="ignore"):
                        if kind == "ratio":
                            values = (estimate / base, low / base, high / base)
                        else:
                            values = (estimate - base, low - base, high - base)
                    shrunk, shrunk_ci = float(values[0]), (float(values[1]), float(values[2]))
                with np.errstate(divide="ignore", invalid="ignore"):
                    value = (
                        mine[metric][g] / theirs[metric][g]
                        if kind == "ratio"
                        else mine[metric][g] - theirs[metric][g]
                    )
                audit.disparities.append(
                    DisparityResult(
                        attribute=grouping.attribute,
                        group=level_name,
                        reference=reference_name,
                        metric=metric,
                        kind=kind,
                        value=float(value),
                        ci=_pair(found["ci"], g) if found else (float("nan"), float("nan")),
                        sufficient=bool(sufficient[g]),
                        p_value=float(found["p"][g]) if found else float("nan"),
                        effective_n=float(effective.get(metric, np.full(n_groups, np.nan))[g]),
                        pooled=shrunk,
                        pooled_ci=shrunk_ci,
                        group_value=float(mine[metric][g]),
                        reference_value=float(theirs[metric][g]),
                        limit_tests=tuple(
                            (value, float(below[g]), float(above[g]))
                            for value, (below, above) in (found or {}).get("limits", {}).items()
                        ),
                        people=int(persons[g]),
                        people_in_need=int(persons_in_need[g]),
                    )
                )
    _spreads(audit, grouping, point, draws, sufficient)
    return {metric: values[0] for metric, values in pooled.items()}


def _effective_sizes(draws: dict[str, np.ndarray], table: np.ndarray) -> dict[str, np.ndarray]:
    """The size of an independent sample with the resampled spread, per metric and group.

    For a proportion with mean m and resampled variance v, ``m (1 - m) / v``; without
    resamples, the plain denominator count.
    """
    tp, fp, fn, tn = (table[:, i].astype(float) for i in range(4))
    plain = {
        "selection_rate": tp + fp + fn + tn,
        "recall": tp + fn,
        "precision": tp + fp,
        "false_positive_rate": fp + tn,
        "false_negative_rate": tp + fn,
    }
    if not draws:
        out = dict(plain)
    else:
        out = {}
        for metric in PROPORTIONS:
            values = draws[metric]
            mean, variance = values.mean(axis=0), values.var(axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                size = mean * (1 - mean) / variance
            # Never more than the count itself (the prior's half counts add a little spread).
            out[metric] = np.minimum(np.where(np.isfinite(size), size, 0.0), plain[metric])
    out["flagged_to_need"] = out["recall"]
    return out


def _comparisons(
    audit: GroupAudit,
    mine_draws: dict[str, np.ndarray],
    theirs_draws: dict[str, np.ndarray],
    limits: Sequence[tuple[str, str, float]] = (),
) -> dict[tuple[str, str], dict[str, Any]]:
    """Intervals and p-values (against parity, and one-sided against each limit) of every
    metric's ratio and difference."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    if not mine_draws:
        return out
    for metric in COUNT_METRICS:
        a, b = mine_draws[metric], theirs_draws[metric]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio, difference = a / b, a - b
        # Ratio and difference are on the same side of parity in every resample: one p-value.
        p = p_values(difference, 0.0)
        out[(metric, "ratio")] = {
            "ci": interval(ratio, audit.level),
            "p": p,
        }
        out[(metric, "difference")] = {
            "ci": interval(difference, audit.level),
            "p": p,
        }
        for kind, draws in (("ratio", ratio), ("difference", difference)):
            wanted = sorted({v for m, k, v in limits if (m, k) == (metric, kind)})
            out[(metric, kind)]["limits"] = {v: tail_p_values(draws, v) for v in wanted}
    return out


def _spreads(
    audit: GroupAudit,
    grouping: Grouping,
    point: dict[str, np.ndarray],
    draws: np.ndarray | None,
    sufficient: np.ndarray,
) -> None:
    """Worst against best sufficient group of each metric (as Fairlearn's between-groups)."""
    sampled = metrics_from_counts(draws) if draws is not None else {}
    for metric in COUNT_METRICS:
        values = point[metric]
        usable = np.flatnonzero(sufficient & np.isfinite(values))
        if len(usable) < 2:
            continue
        worst, best = usable[np.argmin(values[usable])], usable[np.argmax(values[usable])]
        ratio_ci: Interval = (float("nan"), float("nan"))
        diff_ci: Interval = (float("nan"), float("nan"))
        if sampled:
            sample = sampled[metric]
            with np.errstate(divide="ignore", invalid="ignore"):
                r = interval(sample[:, worst] / sample[:, best], audit.level)
                d = interval(sample[:, best] - sample[:, worst], audit.level)
            ratio_ci, diff_ci = (float(r[0]), float(r[1])), (float(d[0]), float(d[1]))
        with np.errstate(divide="ignore", invalid="ignore"):
            spread_ratio = float(values[worst] / values[best])
        audit.spreads.append(
            WorstToBest(
                attribute=grouping.attribute,
                metric=metric,
                worst_group=grouping.levels[worst],
                best_group=grouping.levels[best],
                ratio=spread_ratio,
                difference=float(values[best] - values[worst]),
                ratio_ci=ratio_ci,
                difference_ci=diff_ci,
            )
        )
