"""Pictures of a candidate's behaviour: calibration, and precision/recall as capacity varies."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; never a window

import numpy as np
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve


def calibration_figure(labels: np.ndarray, scores: np.ndarray, *, title: str) -> Figure:
    """Mean predicted score against the observed rate, in ten quantile bins."""
    observed, predicted = calibration_curve(labels, scores, n_bins=10, strategy="quantile")
    figure = Figure(figsize=(5, 4.5))
    axes = figure.subplots()
    top = float(max(observed.max(), predicted.max(), 0.05)) * 1.05
    axes.plot([0, top], [0, top], color="#888888", linestyle="--", label="perfectly calibrated")
    axes.plot(predicted, observed, marker="o", color="#1f5a96", label="model")
    axes.set_xlabel("mean predicted probability")
    axes.set_ylabel("observed rate")
    axes.set_title(title, fontsize=10)
    axes.legend(loc="upper left")
    figure.tight_layout()
    return figure


def capacity_curve_figure(
    labels: np.ndarray, scores: np.ndarray, *, capacity_share: float, title: str
) -> Figure:
    """Precision and recall of the top share of records, for shares up to five times capacity."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    hits = np.cumsum(np.asarray(labels)[order])
    n = len(order)
    positives = max(int(hits[-1]), 1)
    shares = np.linspace(1 / n, min(1.0, 5 * capacity_share), 200)
    counts = np.maximum((shares * n).astype(int), 1)
    precision = hits[counts - 1] / counts
    recall = hits[counts - 1] / positives
    figure = Figure(figsize=(5, 4.5))
    axes = figure.subplots()
    axes.plot(
        shares * 100, precision, color="#1f5a96", label="precision (share helped who needed it)"
    )
    axes.plot(
        shares * 100,
        recall,
        color="#b35900",
        linestyle="-.",
        label="recall (share of need reached)",
    )
    axes.axvline(capacity_share * 100, color="#444444", linestyle=":", label="capacity")
    axes.set_xlabel("share of population offered outreach (%)")
    axes.set_ylim(0, 1)
    axes.set_title(title, fontsize=10)
    axes.legend(loc="center right", fontsize=8)
    figure.tight_layout()
    return figure
