"""Seeded random draws the synthetic populations are built from (one stream per purpose)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from model.synthetic_setup import (
    COLUMNS,
    SENSITIVE_ATTRIBUTES,
    SHARES_BY_UNIT,
    UNIT_CODE,
    LabelUnderRecording,
    ProxyOverMeasurement,
    SmallGroup,
    Unit,
)


def streams(seed: int, unit: Unit) -> dict[str, np.random.Generator]:
    """Independent random streams, one per component.

    Knobs draw only from their own streams, so a population with a knob on shares every other
    draw with the same seed's population with the knob off (paired comparisons are exact).
    """
    names = (
        "attributes",
        "structure",
        "need",
        "effects",
        "counts",
        "timing",
        "crises",
        "under_labels",
        "under_features",
        "proxy",
        "area",
        "outreach",  # after the others, so that adding it changed no other stream's seed
        "gaps",  # likewise
    )
    code = UNIT_CODE[unit]
    return {name: np.random.default_rng([seed, code, i]) for i, name in enumerate(names)}


def period_labels(start: str, periods: int) -> list[str]:
    """The ``periods`` consecutive months from ``start``, each as ``"YYYY-MM"``."""
    year, month = (int(part) for part in start.split("-"))
    months = year * 12 + (month - 1) + np.arange(periods)
    return [f"{m // 12:04d}-{m % 12 + 1:02d}" for m in months]


def attribute_shares(unit: Unit, attribute: str, small: SmallGroup | None) -> np.ndarray:
    """The shares of ``attribute``'s groups, with the small-group knob's group set to its share.

    The other groups keep their relative sizes and the shares still sum to 1.
    """
    table = SHARES_BY_UNIT[unit][attribute]
    shares = np.array(list(table.values()), dtype=np.float64)
    if small is not None and small.attribute == attribute:
        index = list(table).index(small.group)
        others = np.arange(len(shares)) != index
        shares[others] *= (1.0 - float(small.share)) / shares[others].sum()
        shares[index] = float(small.share)
    return shares


def draw_codes(uniform: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Categorical draw: the index of the group each uniform number falls in, by ``shares``."""
    edges = np.cumsum(shares)
    edges[-1] = np.inf
    return np.searchsorted(edges, uniform, side="right").astype(np.int8)


def draw_codes_rowwise(uniform: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Categorical draw with one probability vector per row (``probabilities`` is n x k)."""
    edges = np.cumsum(probabilities, axis=1)
    return (uniform[:, None] >= edges[:, :-1]).sum(axis=1).astype(np.int8)


def as_strings(
    codes: np.ndarray, categories: tuple[str, ...] | list[str]
) -> pd.api.extensions.ExtensionArray:
    """String column of ``categories[code]`` for every code (flattened)."""
    # Arrow's take is ~10x faster than building Python strings for million-row columns.
    taken = pa.array(list(categories), type=pa.large_string()).take(pa.array(codes.ravel()))
    return pd.array(taken, dtype="str")


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, elementwise."""
    return 1.0 / (1.0 + np.exp(-x))


def ar1(rng: np.random.Generator, n: int, months: int, rho: float, sd: float) -> np.ndarray:
    """Stationary AR(1) paths, ``n`` x ``months``, with marginal standard deviation ``sd``."""
    shocks = rng.standard_normal((n, months))
    paths = np.empty((n, months))
    paths[:, 0] = sd * shocks[:, 0]
    innovation = sd * math.sqrt(1.0 - rho * rho)
    for m in range(1, months):
        paths[:, m] = rho * paths[:, m - 1] + innovation * shocks[:, m]
    return paths


def window_sums(values: np.ndarray, first: int, ends: np.ndarray, window: int) -> np.ndarray:
    """Sums over the ``window`` months ending at each month in ``ends``.

    ``values`` is n x L and covers internal months ``first .. first + L - 1``.
    """
    cumulative = np.zeros((values.shape[0], values.shape[1] + 1), dtype=values.dtype)
    np.cumsum(values, axis=1, out=cumulative[:, 1:])
    return cumulative[:, ends - first + 1] - cumulative[:, ends - first + 1 - window]


def members(
    attributes: Mapping[str, np.ndarray],
    unit: Unit,
    knob: LabelUnderRecording | ProxyOverMeasurement | None,
) -> np.ndarray:
    """Boolean mask of the ids in the knob's group (all false when the knob is off)."""
    if knob is None:
        return np.zeros(next(iter(attributes.values())).shape, dtype=bool)
    code = SENSITIVE_ATTRIBUTES[unit][knob.attribute].index(knob.group)
    return attributes[knob.attribute] == code


def thin(rng: np.random.Generator, counts: np.ndarray, members: np.ndarray, keep: float) -> None:
    """Keep each recorded event of a member with probability ``keep`` (in place)."""
    if keep >= 1.0 or not members.any():
        return
    counts[members] = rng.binomial(counts[members], keep)


def scale(
    rng: np.random.Generator,
    counts: np.ndarray,
    expected: np.ndarray,
    members: np.ndarray,
    factor: float,
) -> None:
    """Scale members' expected recorded counts by ``factor`` and keep them integers (in place).

    Above 1, extra events are Poisson with mean ``(factor - 1) * expected``; below 1, events are
    binomially thinned. Either way the expected count is multiplied by exactly ``factor``.
    """
    if factor == 1.0 or not members.any():
        return
    if factor > 1.0:
        counts[members] += rng.poisson((factor - 1.0) * expected[members]).astype(counts.dtype)
    else:
        counts[members] = rng.binomial(counts[members], factor)


def flip_positives(
    rng: np.random.Generator, truth: np.ndarray, members: np.ndarray, rate: float
) -> np.ndarray:
    """Record each true positive of a member as 0 with probability ``rate``."""
    recorded = truth.copy()
    lost = members & (truth == 1) & (rng.random(truth.shape) < rate)
    recorded[lost] = 0
    return recorded


def frame(columns: dict[str, object], unit: Unit) -> pd.DataFrame:
    """The population's frame: ``columns`` in the order ``COLUMNS[unit]`` gives them."""
    return pd.DataFrame({name: columns[name] for name in COLUMNS[unit]}, copy=False)
