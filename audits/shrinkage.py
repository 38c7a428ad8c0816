"""Partial pooling for small groups: empirical-Bayes beta-binomial shrinkage.

A small intersection (say, one ethnicity and one sex) has too few people in need for its own
rate to mean much. Its pooled estimate borrows strength from its parent group (the intersection's
first attribute's group; for a single attribute, the whole population): the group's rate is given
a Beta prior centred on the parent's rate, with a strength (``kappa``, in people) estimated from
how much the sibling groups really differ from their parents (method of moments). Groups that
differ little from their parents are pulled strongly towards them; when siblings differ a lot,
each group mostly keeps its own rate. The prior is never stronger than twice the group's own
effective size, so every group keeps at least a third of its own evidence's weight (a test
checks it). The gate never decides on a pooled estimate: it is shown for groups too small to be
judged on their own, for information.

Counts are taken at their effective size (after clustering), so repeated months do not make a
group look more certain than it is. The credible interval is the Beta posterior's central range.
"""

from __future__ import annotations

import numpy as np

#: Numerators and denominators of the proportion metrics, as cell indices (TP, FP, FN, TN).
_PARTS = {
    "selection_rate": ((0, 1), (0, 1, 2, 3)),
    "recall": ((0,), (0, 2)),
    "precision": ((0,), (0, 1)),
    "false_positive_rate": ((1,), (1, 3)),
    "false_negative_rate": ((2,), (0, 2)),
}


def kappa(successes: np.ndarray, trials: np.ndarray, prior_mean: np.ndarray) -> float:
    """The prior's strength from the siblings' excess spread around their parents' rates.

    Method of moments: E[(r - m)^2] = m (1 - m) [1/n + (1 - 1/n) rho] with rho = 1 / (kappa + 1).
    """
    use = trials >= 1
    if use.sum() < 2:
        return float(np.median(trials[use])) if use.any() else 0.0
    n, m = trials[use], np.clip(prior_mean[use], 1e-9, 1 - 1e-9)
    r = successes[use] / n
    excess = float(np.sum((r - m) ** 2 - m * (1 - m) / n))
    scale = float(np.sum(m * (1 - m) * (1 - 1 / n)))
    cap = float(np.median(n))
    if scale <= 0 or excess <= 0:
        return cap
    rho = min(excess / scale, 1.0)
    return min(1 / rho - 1, cap)


def own_weight(strength: np.ndarray, size: np.ndarray) -> np.ndarray:
    """The share of a pooled estimate's weight that comes from the group's own data."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(size + strength > 0, size / (size + strength), 1.0)


def pooled_estimates(
    table: np.ndarray,
    effective: dict[str, np.ndarray],
    parent: dict[str, np.ndarray],
    *,
    level: float,
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Pooled estimate, and its credible interval, of each proportion metric per group.

    Parameters
    ----------
    table : ndarray (groups, 4)
        Confusion counts.
    effective : mapping of metric to ndarray
        Each group's effective sample size for the metric's denominator.
    parent : mapping of metric to ndarray
        The rate each group is pulled towards.
    level : float
        Credible interval level.
    """
    from scipy.stats import beta  # here: scoring imports this module's package, not the Beta

    out = {}
    tail = (1 - level) / 2
    for metric, (top, bottom) in _PARTS.items():
        x = table[:, list(top)].sum(axis=1).astype(float)
        n = table[:, list(bottom)].sum(axis=1).astype(float)
        size = np.minimum(effective.get(metric, n), n)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(n > 0, size / n, 0.0)
        xe, ne = x * scale, n * scale
        mean = np.clip(np.nan_to_num(parent[metric], nan=0.5), 1e-6, 1 - 1e-6)
        # At most twice the group's own effective size: its own data keep >= 1/3 of the weight.
        strength = np.minimum(kappa(xe, ne, mean), 2.0 * ne)
        a = strength * mean + xe + 0.5
        b = strength * (1 - mean) + (ne - xe) + 0.5
        out[metric] = (a / (a + b), beta.ppf(tail, a, b), beta.ppf(1 - tail, a, b))
    return out
