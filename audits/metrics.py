"""Group metrics at the operating point, disparities, and bootstrap confidence intervals.

Every count-based metric (selection rate, recall, precision, false-positive and false-negative
rates, share flagged against share in need) is a function of each group's confusion counts. The
point estimates are computed from those counts, which gives exactly Fairlearn ``MetricFrame``'s
values (tests check 1e-9). For intervals, drawing the whole group-by-cell count table from a
multinomial is exactly a row bootstrap of the data, at a cost independent of the number of rows
(tests compare its intervals with ``MetricFrame``'s own bootstrap).

Calibration (observed rate against mean score) and ROC AUC per group carry analytic intervals
(normal approximation and Hanley-McNeil), stated as such in reports.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.stats import norm

from audits.groups import Grouping
from audits.policy import COUNT_METRICS

Interval = tuple[float, float]
#: z-values for a two-sided 5% test with 80% power: the "smallest detectable disparity".
_Z_ALPHA, _Z_POWER = 1.959964, 0.841621


def count_table(
    labels: np.ndarray, selected: np.ndarray, codes: np.ndarray, groups: int
) -> np.ndarray:
    """Confusion counts per group, shape (groups, 4): TP, FP, FN, TN."""
    labels = np.asarray(labels, dtype=np.intp)
    selected = np.asarray(selected, dtype=np.intp)
    # cells: TP=0, FP=1, FN=2, TN=3
    cell = np.where(labels == 1, np.where(selected == 1, 0, 2), np.where(selected == 1, 1, 3))
    table = np.bincount(codes * 4 + cell, minlength=groups * 4)
    return table.reshape(groups, 4)


def metrics_from_counts(table: np.ndarray) -> dict[str, np.ndarray]:
    """Count metrics for tables of shape (..., groups, 4); NaN where undefined."""
    tp, fp, fn, tn = (table[..., i].astype(float) for i in range(4))
    n = tp + fp + fn + tn
    flagged, positives, negatives = tp + fp, tp + fn, fp + tn
    with np.errstate(divide="ignore", invalid="ignore"):
        share_flagged = flagged / flagged.sum(axis=-1, keepdims=True)
        share_in_need = positives / positives.sum(axis=-1, keepdims=True)
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
    detectable: dict[str, float]
    reference: bool = False


@dataclass(frozen=True)
class DisparityResult:
    """One group against its attribute's reference group on one metric."""

    attribute: str
    group: str
    reference: str
    metric: str
    kind: Literal["ratio", "difference"]
    value: float
    ci: Interval
    sufficient: bool
    p_value: float = float("nan")


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

    def group(self, attribute: str, group: str) -> GroupResult:
        return next(g for g in self.groups if g.attribute == attribute and g.group == group)

    def disparity(self, attribute: str, group: str, metric: str, kind: str) -> DisparityResult:
        return next(
            d
            for d in self.disparities
            if (d.attribute, d.group, d.metric, d.kind) == (attribute, group, metric, kind)
        )


def _interval(draws: np.ndarray, level: float) -> np.ndarray:
    """Percentile intervals along axis 0, ignoring draws where the metric is undefined."""
    tail = (1 - level) / 2
    with warnings.catch_warnings():
        # An undefined metric (a group with nobody in need, say) has no interval: NaN, silently.
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanquantile(draws, [tail, 1 - tail], axis=0)


def _p_values(estimate: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Two-sided p-values against parity (0 on this scale), from the bootstrap standard error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = np.nanstd(np.where(np.isfinite(draws), draws, np.nan), axis=0)
        z = np.abs(estimate) / spread
    p = 2.0 * norm.sf(z)
    return np.where(np.isfinite(p), p, np.where(np.abs(estimate) > 0, 0.0, 1.0))


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
    order = score_order[np.argsort(codes[score_order], kind="stable")]
    sorted_codes, sorted_scores = codes[order], scores[order]
    sorted_labels = labels[order].astype(float)
    n = len(order)
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    sizes = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, sizes) + 1.0
    tie_break = np.r_[
        True, (sorted_codes[1:] != sorted_codes[:-1]) | (sorted_scores[1:] != sorted_scores[:-1])
    ]
    run = np.cumsum(tie_break) - 1
    mid = np.bincount(run, weights=rank) / np.bincount(run)
    ranks = mid[run]
    pos = np.bincount(sorted_codes, weights=sorted_labels, minlength=groups)
    total = np.bincount(sorted_codes, minlength=groups).astype(float)
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


def _detectable(reference_rate: float, n_group: int, n_reference: int) -> float:
    """The smallest difference from the reference rate detectable at 5%/80% with these sizes."""
    if not np.isfinite(reference_rate) or n_group == 0 or n_reference == 0:
        return float("nan")
    p = min(max(reference_rate, 1e-6), 1 - 1e-6)
    return float((_Z_ALPHA + _Z_POWER) * np.sqrt(p * (1 - p) * (1 / n_group + 1 / n_reference)))


def _reference_index(grouping: Grouping, rule: str | dict[str, str]) -> int:
    if isinstance(rule, dict) and grouping.attribute in rule:
        wanted = rule[grouping.attribute]
        if wanted in grouping.levels:
            return grouping.levels.index(wanted)
    return int(np.argmax(grouping.sizes))


def audit_groups(
    labels: np.ndarray,
    selected: np.ndarray,
    scores: np.ndarray | None,
    groupings: Sequence[Grouping],
    *,
    reference_rule: str | dict[str, str] = "largest",
    min_group_size: int = 100,
    min_group_positives: int = 20,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> GroupAudit:
    """Metrics per group, disparities to each attribute's reference group, and intervals.

    Parameters
    ----------
    labels : ndarray of 0/1
        Observed outcomes.
    selected : ndarray of bool
        Whether each record was offered outreach (flagged) at the operating point.
    scores : ndarray, optional
        Scores, for calibration and ROC AUC per group.
    groupings : sequence of Grouping
    reference_rule : "largest" or mapping of attribute to group
    min_group_size, min_group_positives : int
        Groups below either are reported as insufficient data.
    resamples : int
        Bootstrap resamples (0 for no count-metric intervals).
    level : float
        Interval level.
    seed : int
        Bootstrap seed: the same inputs give the same intervals.
    """
    labels = np.asarray(labels, dtype=np.intp)
    selected = np.asarray(selected, dtype=bool)
    rng = np.random.default_rng(seed)
    overall_table = count_table(labels, selected, np.zeros(len(labels), dtype=np.intp), 1)
    overall = {k: float(v[0]) for k, v in metrics_from_counts(overall_table).items()}
    overall.update(n=len(labels), positives=int(labels.sum()), flagged=int(selected.sum()))
    audit = GroupAudit(overall=overall, resamples=resamples, level=level)
    score_order = None if scores is None else np.argsort(scores, kind="stable")
    for grouping in groupings:
        _audit_grouping(
            audit,
            grouping,
            labels,
            selected,
            scores,
            rng=rng,
            score_order=score_order,
            reference_rule=reference_rule,
            min_group_size=min_group_size,
            min_group_positives=min_group_positives,
        )
    return audit


def _audit_grouping(
    audit: GroupAudit,
    grouping: Grouping,
    labels: np.ndarray,
    selected: np.ndarray,
    scores: np.ndarray | None,
    *,
    rng: np.random.Generator,
    score_order: np.ndarray | None,
    reference_rule: str | dict[str, str],
    min_group_size: int,
    min_group_positives: int,
) -> None:
    n_groups = len(grouping.levels)
    table = count_table(labels, selected, grouping.codes, n_groups)
    point = metrics_from_counts(table)
    total = int(table.sum())
    draws: dict[str, np.ndarray] = {}
    if audit.resamples:
        sampled = rng.multinomial(total, table.ravel() / total, size=audit.resamples)
        draws = metrics_from_counts(sampled.reshape(audit.resamples, n_groups, 4))
    intervals = {k: _interval(v, audit.level) for k, v in draws.items()}
    ref = _reference_index(grouping, reference_rule)
    sizes = table.sum(axis=1)
    positives = table[:, 0] + table[:, 2]
    sufficient = (sizes >= min_group_size) & (positives >= min_group_positives)
    mean_scores = aucs = None
    if scores is not None:
        mean_scores = np.bincount(grouping.codes, weights=scores, minlength=n_groups) / np.maximum(
            sizes, 1
        )
        aucs = group_auc(labels, scores, grouping.codes, n_groups, score_order=score_order)
    for g, level_name in enumerate(grouping.levels):
        metrics = {k: float(v[g]) for k, v in point.items()}
        ci = {k: _pair(v, g) for k, v in intervals.items()}
        if mean_scores is not None and aucs is not None:
            observed = metrics["base_rate"]
            half = 1.959964 * float(np.sqrt(observed * (1 - observed) / max(sizes[g], 1)))
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
                f"insufficient data: {int(sizes[g])} people and {int(positives[g])} in need "
                f"(the policy asks for at least {min_group_size} and {min_group_positives})"
            )
        detectable = {
            "recall": _detectable(
                float(point["recall"][ref]), int(positives[g]), int(positives[ref])
            ),
            "selection_rate": _detectable(
                float(point["selection_rate"][ref]), int(sizes[g]), int(sizes[ref])
            ),
        }
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
                detectable=detectable,
                reference=g == ref,
            )
        )
    _disparities(audit, grouping, point, draws, ref, sufficient)


def _disparities(
    audit: GroupAudit,
    grouping: Grouping,
    point: dict[str, np.ndarray],
    draws: dict[str, np.ndarray],
    ref: int,
    sufficient: np.ndarray,
) -> None:
    reference = grouping.levels[ref]
    for metric in COUNT_METRICS:
        values = point[metric]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = values / values[ref]
            differences = values - values[ref]
            if draws:
                sample = draws[metric]
                ratio_draws = sample / sample[:, [ref]]
                diff_draws = sample - sample[:, [ref]]
                ratio_ci = _interval(ratio_draws, audit.level)
                diff_ci = _interval(diff_draws, audit.level)
                ratio_p = _p_values(
                    np.log(np.clip(ratios, 1e-9, None)), np.log(np.clip(ratio_draws, 1e-9, None))
                )
                diff_p = _p_values(differences, diff_draws)
        for g, name in enumerate(grouping.levels):
            if g == ref:
                continue
            for kind, value, ci, p_values in (
                ("ratio", ratios[g], ratio_ci if draws else None, ratio_p if draws else None),
                (
                    "difference",
                    differences[g],
                    diff_ci if draws else None,
                    diff_p if draws else None,
                ),
            ):
                audit.disparities.append(
                    DisparityResult(
                        attribute=grouping.attribute,
                        group=name,
                        reference=reference,
                        metric=metric,
                        kind=kind,  # type: ignore[arg-type]
                        value=float(value),
                        ci=_pair(ci, g) if ci is not None else (float("nan"), float("nan")),
                        sufficient=bool(sufficient[g]),
                        p_value=float(p_values[g]) if p_values is not None else float("nan"),
                    )
                )
        usable = np.flatnonzero(sufficient & np.isfinite(values))
        if len(usable) < 2:
            continue
        worst, best = usable[np.argmin(values[usable])], usable[np.argmax(values[usable])]
        spread_ratio_ci: Interval = (float("nan"), float("nan"))
        spread_diff_ci: Interval = (float("nan"), float("nan"))
        if draws:
            sample = draws[metric]
            with np.errstate(divide="ignore", invalid="ignore"):
                r = _interval(sample[:, worst] / sample[:, best], audit.level)
                d = _interval(sample[:, best] - sample[:, worst], audit.level)
            spread_ratio_ci, spread_diff_ci = (float(r[0]), float(r[1])), (float(d[0]), float(d[1]))
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
                ratio_ci=spread_ratio_ci,
                difference_ci=spread_diff_ci,
            )
        )
