"""Metrics at outreach capacity: who would be offered help, and how well that list does.

The decision actually taken is "offer outreach to the top k of each period", so precision and
recall are measured on exactly that list. Ties are broken by id, never by row order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


def top_k_mask(
    scores: np.ndarray,
    periods: np.ndarray,
    ids: np.ndarray,
    k_for: Callable[[int], int],
) -> np.ndarray:
    """Flag the top ``k_for(n)`` records of each period by score (ties broken by id).

    Parameters
    ----------
    scores, periods, ids : ndarray of shape (n,)
        One entry per record.
    k_for : callable
        The capacity for a period with ``n`` records.

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    scores = np.asarray(scores, dtype=float)
    order = np.lexsort((np.asarray(ids), -scores, np.asarray(periods)))
    sorted_periods = np.asarray(periods)[order]
    starts = np.flatnonzero(np.r_[True, sorted_periods[1:] != sorted_periods[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    rank = np.arange(len(order)) - np.repeat(starts, sizes)
    limits = np.repeat([k_for(int(n)) for n in sizes], sizes)
    mask = np.zeros(len(order), dtype=bool)
    mask[order] = rank < limits
    return mask


@dataclass(frozen=True)
class CapacityMetrics:
    """How a ranking does at capacity, and overall."""

    n: int
    k: int
    positives: int
    precision_at_k: float
    recall_at_k: float
    roc_auc: float | None
    average_precision: float | None
    brier: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "n": self.n,
            "k": self.k,
            "positives": self.positives,
            "precision_at_k": self.precision_at_k,
            "recall_at_k": self.recall_at_k,
            "roc_auc": self.roc_auc,
            "average_precision": self.average_precision,
            "brier": self.brier,
        }


def capacity_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    selected: np.ndarray,
    *,
    probabilities: bool = True,
) -> CapacityMetrics:
    """Precision and recall of the selected list, plus ranking and calibration metrics.

    ``brier`` is only computed when ``scores`` are probabilities.
    """
    labels = np.asarray(labels, dtype=int)
    selected = np.asarray(selected, dtype=bool)
    positives = int(labels.sum())
    k = int(selected.sum())
    hits = int(labels[selected].sum())
    both_classes = 0 < positives < len(labels)
    return CapacityMetrics(
        n=len(labels),
        k=k,
        positives=positives,
        precision_at_k=hits / k if k else 0.0,
        recall_at_k=hits / positives if positives else 0.0,
        roc_auc=float(roc_auc_score(labels, scores)) if both_classes else None,
        average_precision=float(average_precision_score(labels, scores)) if both_classes else None,
        brier=float(brier_score_loss(labels, scores)) if probabilities else None,
    )


def random_baseline(labels: np.ndarray, selected_count: int) -> CapacityMetrics:
    """The expected metrics of choosing ``selected_count`` records uniformly at random.

    Expectations, not one random draw: precision equals the base rate, recall the share chosen,
    ROC AUC 0.5, average precision the base rate, and the Brier score of predicting the base rate.
    """
    labels = np.asarray(labels, dtype=int)
    n = len(labels)
    base = float(labels.mean()) if n else 0.0
    return CapacityMetrics(
        n=n,
        k=selected_count,
        positives=int(labels.sum()),
        precision_at_k=base,
        recall_at_k=selected_count / n if n else 0.0,
        roc_auc=0.5,
        average_precision=base,
        brier=base * (1 - base),
    )


def mean_metrics(items: list[CapacityMetrics]) -> dict[str, float | None]:
    """The mean of each metric over splits (``None`` where any split lacks it)."""
    out: dict[str, float | None] = {}
    for key in ("precision_at_k", "recall_at_k", "roc_auc", "average_precision", "brier"):
        values = [getattr(m, key) for m in items]
        out[key] = None if any(v is None for v in values) else float(np.mean(values))
    return out
