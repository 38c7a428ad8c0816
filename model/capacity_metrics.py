"""Metrics at outreach capacity: who would be offered help, and how well that list does.

The decision actually taken is "offer outreach to the top k of each period", so precision and
recall are measured on exactly that list. Ties are broken by id, never by row order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def top_k_rows(
    scores: np.ndarray, ids: np.ndarray, k: int, *, eligible: np.ndarray | None = None
) -> np.ndarray:
    """The rows of the ``k`` highest scores, best first; ties broken by id as typed.

    The one top-k rule: the audit, training metrics, batch scoring and monitoring all select
    through it, so the list the audit judged is the list coordinators get. Ids compare in their
    own type (integers numerically, strings as text). Only the rows scoring at least the k-th
    highest are sorted (with their ties), so a million rows cost one partition.

    Parameters
    ----------
    scores, ids : ndarray of shape (n,)
    k : int
    eligible : ndarray of bool, optional
        Rows that may be chosen (for example, not opted out).

    Returns
    -------
    ndarray of int: row positions, at most ``k``.
    """
    scores = np.asarray(scores, dtype=float)
    ids = np.asarray(ids)
    pool = np.arange(len(scores)) if eligible is None else np.flatnonzero(eligible)
    if len(pool) > k > 0:
        cut = np.partition(scores[pool], len(pool) - k)[len(pool) - k]
        pool = pool[scores[pool] >= cut]
    order = pool[np.lexsort((ids[pool], -scores[pool]))]
    return order[: max(k, 0)]


def top_k_mask(
    scores: np.ndarray,
    periods: np.ndarray,
    ids: np.ndarray,
    k_for: Callable[[int], int],
) -> np.ndarray:
    """Flag the top ``k_for(n)`` records of each period by score (:func:`top_k_rows`).

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
    ids = np.asarray(ids)
    periods = np.asarray(periods)
    mask = np.zeros(len(scores), dtype=bool)
    levels, codes = np.unique(periods, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(levels) + 1))
    for start, end in itertools.pairwise(bounds):
        rows = order[start:end]
        mask[rows[top_k_rows(scores[rows], ids[rows], k_for(len(rows)))]] = True
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
    # Here, not at the top: scoring a period imports this module for its top-k rule only.
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

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
