"""Expected precision and recall at capacity before the labels arrive, with sampling bands.

The model's scores are calibrated probabilities ``p`` of a crisis. If calibration holds, each
person's outcome is an independent Bernoulli(``p``) draw, so a scored period already says what
its precision and recall at capacity should be, months before the labels come back:

* expected precision = (sum of ``p`` over the people on the list) / (people on the list);
* expected recall = (sum of ``p`` over the list) / (sum of ``p`` over everyone).

Each comes with a *sampling band*: the central ``level`` range of the value the **realised**
metric will take when the labels are drawn from the scores. It is a prediction interval for one
period's outcome, not a confidence interval for a mean: a realised value outside it says the
scores were not calibrated for that period (or that outreach changed the outcomes; see below).

Method: exact distributions, not simulation
-------------------------------------------
In each group the number of crises on the list, ``A``, and among everyone else, ``B``, are
independent Poisson-binomial counts. Their distributions are computed exactly by inverting the
characteristic function ``prod(1 - p + p e^{-it})`` with one real FFT on a window of
``mean ± (8 sd + 25)`` counts (Bernstein's inequality puts less than 1e-13 of the mass outside
it, so the wrap-around of the discrete transform is negligible; small sets use their whole
support and are exact).

* Sets of up to 256 people use every person's own probability: the distribution is exact.
* Larger sets are grouped into 64 equal-width probability bins, each a Binomial(people in the
  bin, the bin's mean probability). This keeps the expected count exact and makes the variance
  larger by ``sum((p_i - bin mean)^2) <= people * width^2 / 4`` (a binomial is never less
  spread than the Poisson-binomial with the same mean): a conservative, negligible change
  (under 0.1% of the variance for realistic scores).

Precision's band comes from ``A / selected``. Recall's band is the distribution of
``A / (A + B)`` *given at least one crisis in the group* (with none, the realised recall is
undefined; the chance of that is reported as ``no_crisis_probability``). Its quantiles are found
by bisection on the exact distribution function ``P(A/(A+B) <= r) = sum_a P(A=a) P(B >= a(1-r)/r)``
and snapped to the attainable value ``a / (a + b)``, so a band's ends are values the realised
metric can actually take (a realised value equal to an end is inside).

The band is central and discrete-safe: the realised value falls below it with probability
under ``(1 - level) / 2``, and above it likewise, so the band holds it with probability at least
``level`` (more in small groups, where the counts are lumpy).

Why not simulate (bin, then draw binomials a few thousand times)? The simulated band moves with
the seed (in a small group an end flips between neighbouring counts), and 1,000,000 people in
40 groups need about a second of binomial draws; the exact computation is deterministic and
takes a fraction of that. Why not a normal approximation? With 3 expected crises in a group the
counts are few and skewed, and a normal band would be wrong in both tails.

Outreach changes outcomes
-------------------------
The bands describe outcomes *without* help. If outreach prevents crises among the people it
reaches, the realised precision and recall fall below the bands even when the scores are
calibrated; a flag from :func:`compare_with_realised` is a prompt to look, not a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from kernel.errors import BadInputError

#: The name of the whole population's row, as attribute and as group.
OVERALL = "overall"
#: Joins attribute names, and group names, of an intersection (as :mod:`audits.groups`).
JOIN = " × "
METRICS = ("precision", "recall")
ASSUMPTION = (
    "These estimates assume the scores stay calibrated: of people given a score of 0.2, about "
    "2 in 10 have the crisis. They describe outcomes without help: if outreach prevents crises "
    "among the people on the list, the realised precision and recall fall below the bands even "
    "when the scores are calibrated."
)
METHOD = (
    "Exact distributions of the crisis counts (Poisson-binomial, by Fourier inversion); groups "
    "of more than 256 people use 64 probability bins, which widens the bands by a negligible, "
    "conservative amount."
)

_BINS = 64
_EXACT_MAX = 256
_TAIL_SDS = 8.0
_TAIL_MARGIN = 25.0
#: Tolerance for counts computed in floating point (a(1-r)/r is an integer at the atoms).
_COUNT_TOLERANCE = 1e-9
#: Tolerance for probabilities summed in floating point when picking a discrete quantile.
_PROBABILITY_TOLERANCE = 1e-12
#: Below this chance of any crisis in a group, its recall band is undefined (None).
_DEFINED_MIN = 1e-9
#: Attainable shares a / (a + b) and a' / (a' + b') differ by at least 1 / ((a + b)(a' + b')),
#: far more than this for any group with fewer than a million crises.
_BISECTION_TOLERANCE = 1e-14
#: A realised value this close to a band's end counts as inside (its arithmetic may differ).
_REALISED_TOLERANCE = 1e-9


def band_meaning(level: float) -> str:
    """The band, in plain words, at an interval level."""
    share = round(100 * level, 1)
    shown = f"{share:g}"
    return (
        f"If the assumption holds, the realised value falls inside the band in about {shown} of "
        f"100 periods like this one; outside it, calibration (or the assumption) did not hold."
    )


@dataclass(frozen=True)
class GroupEstimate:
    """One group's expected precision and recall at capacity, with sampling bands.

    ``None`` marks a value that is undefined: precision with no one on the list, recall when
    the group (almost) surely has no crisis (every score is 0, or the chance of any crisis is
    below one in a billion).
    """

    attribute: str
    group: str
    people: int
    selected: int
    #: Expected crises in the group (the sum of its scores).
    expected_positives: float
    #: Expected crises among the group's people on the list.
    expected_reached: float
    precision_expected: float | None
    precision_low: float | None
    precision_high: float | None
    recall_expected: float | None
    recall_low: float | None
    recall_high: float | None
    #: The chance that no one in the group has the crisis (its realised recall is undefined).
    no_crisis_probability: float

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types (``None`` where undefined, never NaN)."""
        return asdict(self)


@dataclass(frozen=True)
class PerformanceEstimate:
    """Expected performance at capacity of one scored period, overall and per group."""

    groups: tuple[GroupEstimate, ...]
    level: float

    @property
    def overall(self) -> GroupEstimate:
        return self.groups[0]

    def group(self, attribute: str, group: str) -> GroupEstimate:
        """One group's estimate (``("overall", "overall")`` for the whole population).

        Raises
        ------
        KeyError
            If there is no such group.
        """
        for row in self.groups:
            if (row.attribute, row.group) == (attribute, group):
                return row
        raise KeyError(f"no estimate for group {group!r} of {attribute!r}")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the assumption in plain words, the level, and one row per group."""
        return {
            "assumption": ASSUMPTION,
            "band": band_meaning(self.level),
            "method": METHOD,
            "level": self.level,
            "groups": [row.as_dict() for row in self.groups],
        }


@dataclass(frozen=True)
class _Grouping:
    attribute: str
    levels: tuple[str, ...]
    codes: np.ndarray


def count_distribution(
    probabilities: np.ndarray, trials: np.ndarray | None = None
) -> tuple[int, np.ndarray]:
    """The exact distribution of a sum of independent binomial counts.

    Parameters
    ----------
    probabilities : ndarray of float in [0, 1]
        Each term's success probability.
    trials : ndarray of int, optional
        Each term's number of trials (1 each by default: a Poisson-binomial sum).

    Returns
    -------
    offset : int
        The smallest count of the window the distribution is given on.
    pmf : ndarray
        ``pmf[j]`` is the probability that the sum equals ``offset + j``; it sums to 1. Counts
        outside the window (more than 8 sd + 25 from the mean) have probability below 1e-13.
    """
    p = np.asarray(probabilities, dtype=float)
    n = np.ones(len(p)) if trials is None else np.asarray(trials, dtype=float)
    certain = round(float(n[p >= 1].sum()))  # p = 1 adds a fixed count: shift instead
    keep = (n > 0) & (p > 0) & (p < 1)
    p, n = p[keep], n[keep]
    total = round(float(n.sum()))
    if total == 0:
        return certain, np.ones(1)
    mean = float(n @ p)
    sd = math.sqrt(float(n @ (p * (1 - p))))
    width = _TAIL_SDS * sd + _TAIL_MARGIN
    low = max(0, math.floor(mean - width))
    size = min(total, math.ceil(mean + width)) - low + 1
    theta = 2 * np.pi * np.arange(size // 2 + 1) / size
    half = np.sin(theta / 2) ** 2
    # |1 - p + p e^{-it}|^2 = 1 - 4 p (1 - p) sin^2(t/2); its argument, shifted by the window.
    with np.errstate(divide="ignore"):
        log_modulus = 0.5 * (n @ np.log1p(-4 * np.outer(p * (1 - p), half)))
    angle = n @ np.arctan2(-np.outer(p, np.sin(theta)), 1 - 2 * np.outer(p, half)) + theta * low
    spectrum = np.exp(log_modulus) * (np.cos(angle) + 1j * np.sin(angle))
    pmf = np.clip(np.fft.irfft(spectrum, n=size), 0.0, None)
    return certain + low, pmf / pmf.sum()


def _count_band(offset: int, pmf: np.ndarray, tail: float) -> tuple[int, int]:
    """The central band of a count: each side's excluded tail has probability below ``tail``."""
    below = np.cumsum(pmf)
    above = np.cumsum(pmf[::-1])[::-1]
    low = int(np.searchsorted(below, tail - _PROBABILITY_TOLERANCE, side="left"))
    high = int(np.flatnonzero(above >= tail - _PROBABILITY_TOLERANCE)[-1])
    return offset + low, offset + high


def _lower_share_quantile(
    numerator: tuple[int, np.ndarray], other: tuple[int, np.ndarray], tail: float
) -> tuple[int, int]:
    """The ``tail`` quantile of X / (X + Y) given X + Y > 0, as the attaining pair (x, y).

    The smallest attainable share r with ``P(X / (X + Y) <= r | X + Y > 0) >= tail``. The
    caller makes sure that X + Y > 0 has a probability well above rounding error.
    """
    x0, px = numerator
    y0, py = other
    x = x0 + np.arange(len(px), dtype=float)
    y_max = y0 + len(py) - 1
    # survival[j] = P(Y >= y0 + j), with 0 past the window.
    survival = np.r_[np.cumsum(py[::-1])[::-1], 0.0]
    none = px[0] * py[0] if x0 == 0 and y0 == 0 else 0.0
    target = (tail - _PROBABILITY_TOLERANCE) * (1.0 - none)

    def needed(r: float) -> np.ndarray:
        # X / (X + Y) <= r  <=>  Y >= X (1 - r) / r
        raw = np.ceil(x * ((1 - r) / r) - _COUNT_TOLERANCE)
        return np.clip(raw - y0, 0, len(py)).astype(np.intp)

    def mass_at_most(r: float) -> float:
        if r <= 0:
            zero_x = px[0] if x0 == 0 else 0.0
            return float(zero_x * (1 - (py[0] if y0 == 0 else 0.0)))
        return float(px @ survival[needed(r)]) - none

    if mass_at_most(0.0) >= target:
        return (0, max(y0, 1))
    lo, hi = 0.0, 1.0
    while hi - lo > _BISECTION_TOLERANCE:
        mid = 0.5 * (lo + hi)
        if mass_at_most(mid) >= target:
            hi = mid
        else:
            lo = mid
    # Snap to the largest attainable share at most ``hi`` (the distribution jumps there).
    ys = np.maximum(np.ceil(x * ((1 - hi) / hi) - _COUNT_TOLERANCE), y0)
    usable = (px > 0) & (ys <= y_max) & (x + ys > 0)
    shares = np.where(usable, x / np.where(x + ys > 0, x + ys, 1.0), -1.0)
    best = int(np.argmax(shares))
    return int(x[best]), int(ys[best])


def _group_estimate(
    attribute: str,
    group: str,
    selected_set: tuple[np.ndarray, np.ndarray],
    other_set: tuple[np.ndarray, np.ndarray],
    tail: float,
) -> GroupEstimate:
    """One group's estimate from its selected and other people's (probability, trials) terms."""
    reached = float(selected_set[0] @ selected_set[1])
    missed = float(other_set[0] @ other_set[1])
    n_selected = round(float(selected_set[1].sum()))
    people = n_selected + round(float(other_set[1].sum()))
    crises_on_list = count_distribution(*selected_set)
    crises_elsewhere = count_distribution(*other_set)
    precision: tuple[float | None, float | None, float | None] = (None, None, None)
    if n_selected:
        low, high = _count_band(*crises_on_list, tail)
        precision = (reached / n_selected, low / n_selected, high / n_selected)
    recall: tuple[float | None, float | None, float | None] = (None, None, None)
    expected = reached + missed
    with np.errstate(divide="ignore"):
        log_no_crisis = sum(float(n @ np.log1p(-q)) for q, n in (selected_set, other_set))
    if expected > 0 and -math.expm1(log_no_crisis) >= _DEFINED_MIN:
        a_low, b_low = _lower_share_quantile(crises_on_list, crises_elsewhere, tail)
        # The lower quantile of B / (A + B) is recall's upper end.
        b_high, a_high = _lower_share_quantile(crises_elsewhere, crises_on_list, tail)
        recall = (reached / expected, a_low / (a_low + b_low), a_high / (a_high + b_high))
    return GroupEstimate(
        attribute=attribute,
        group=group,
        people=people,
        selected=n_selected,
        expected_positives=expected,
        expected_reached=reached,
        precision_expected=precision[0],
        precision_low=precision[1],
        precision_high=precision[2],
        recall_expected=recall[0],
        recall_low=recall[1],
        recall_high=recall[2],
        no_crisis_probability=math.exp(log_no_crisis),
    )


def _factorize(attribute: str, values: Any) -> _Grouping:
    """Levels as sorted text, and each person's level (values equal as text share one).

    The same levels and codes as :func:`audits.groups.build_groupings` (tests hold them
    equal), without converting every value to a Python object first.
    """
    if not isinstance(values, np.ndarray | pd.Series | pd.Index | pd.api.extensions.ExtensionArray):
        values = np.asarray(values, dtype=object)  # a list or tuple of labels
    codes, uniques = pd.factorize(values, sort=False)
    if (codes < 0).any():
        raise BadInputError(
            f"sensitive attribute '{attribute}' has missing values",
            details=[f"first missing value at position {int(np.argmax(codes < 0))}"],
        )
    names = [str(u) for u in uniques]
    levels = sorted(set(names))
    position = {name: i for i, name in enumerate(levels)}
    mapping = np.array([position[name] for name in names], dtype=np.intp)
    return _Grouping(attribute, tuple(levels), mapping[codes])


def _intersection(parts: Sequence[_Grouping]) -> _Grouping:
    combined = np.zeros(len(parts[0].codes), dtype=np.int64)
    for part in parts:
        combined = combined * len(part.levels) + part.codes
    codes, present = pd.factorize(combined, sort=True)
    levels = []
    for packed in present.tolist():
        names = []
        rest = int(packed)
        for part in reversed(parts):
            rest, code = divmod(rest, len(part.levels))
            names.append(part.levels[code])
        levels.append(JOIN.join(reversed(names)))
    return _Grouping(JOIN.join(p.attribute for p in parts), tuple(levels), codes.astype(np.intp))


def _validated(
    probabilities: Any,
    selected: Any,
    sensitive: Mapping[str, Any],
    intersections: Sequence[tuple[str, ...]],
    level: float,
) -> tuple[np.ndarray, np.ndarray]:
    problems: list[str] = []
    p = np.asarray(probabilities, dtype=float)
    chosen = np.asarray(selected)
    if p.ndim != 1:
        problems.append(f"probabilities must be one-dimensional (got shape {p.shape})")
    elif not np.all(np.isfinite(p) & (p >= 0) & (p <= 1)):
        bad = int(np.flatnonzero(~(np.isfinite(p) & (p >= 0) & (p <= 1)))[0])
        problems.append(f"probabilities must be in [0, 1] (position {bad}: {p[bad]!r})")
    if chosen.shape != p.shape:
        problems.append(f"selected has shape {chosen.shape}, probabilities {p.shape}")
    elif chosen.dtype != bool and not np.isin(chosen, (0, 1)).all():
        problems.append("selected must be boolean (or 0/1)")
    for attribute, values in sensitive.items():
        if attribute == OVERALL:
            problems.append(f"'{OVERALL}' names the whole population; rename that attribute")
        if len(values) != len(p):
            problems.append(
                f"sensitive attribute '{attribute}' has {len(values)} values, not {len(p)}"
            )
    for combo in intersections:
        if len(combo) < 2 or len(set(combo)) != len(combo):
            problems.append(f"an intersection needs two or more distinct attributes: {combo!r}")
        missing = [a for a in combo if a not in sensitive]
        if missing:
            problems.append(f"intersection {combo!r} names unknown attributes {missing}")
    if not 0 < level < 1:
        problems.append(f"level must be between 0 and 1 (got {level!r})")
    if problems:
        raise BadInputError("cannot estimate performance at capacity", details=problems)
    return p, chosen.astype(bool)


def _cells(p: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Each person's probability bin: ``_BINS`` equal-width bins for the selected, then the rest."""
    cells = np.zeros(len(p), dtype=np.intp)
    for offset, mask in ((0, chosen), (_BINS, ~chosen)):
        if mask.any():
            values = p[mask]
            lo, hi = float(values.min()), float(values.max())
            scaled = (values - lo) * (_BINS / (hi - lo)) if hi > lo else np.zeros(len(values))
            cells[mask] = offset + np.minimum(scaled.astype(np.intp), _BINS - 1)
    return cells


def _terms(
    p: np.ndarray, chosen: np.ndarray, cells: np.ndarray, codes: np.ndarray, groups: int
) -> list[tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]]:
    """Each group's (probabilities, trials) terms for its selected people and its others.

    Sets of up to ``_EXACT_MAX`` people give one term per person; larger sets give one
    binomial term per non-empty probability bin (see :func:`_cells`).
    """
    keys = codes * (2 * _BINS) + cells
    width = groups * 2 * _BINS
    count = np.bincount(keys, minlength=width).reshape(groups * 2, _BINS)
    mass = np.bincount(keys, weights=p, minlength=width).reshape(groups * 2, _BINS)
    sizes = count.sum(axis=1)
    small = (sizes > 0) & (sizes <= _EXACT_MAX)
    exact: dict[int, np.ndarray] = {}
    if small.any():
        sets = codes * 2 + (~chosen)  # each person's (group, on the list or not) set
        members = np.flatnonzero(small[sets])
        order = members[np.argsort(sets[members], kind="stable")]
        owners = sets[order]
        starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
        for start, values in zip(starts, np.split(p[order], starts[1:]), strict=True):
            exact[int(owners[start])] = values
    out = []
    for g in range(groups):
        pair = []
        for s in (2 * g, 2 * g + 1):
            if s in exact:
                pair.append((exact[s], np.ones(len(exact[s]))))
                continue
            used = count[s] > 0
            pair.append((mass[s, used] / count[s, used], count[s, used].astype(float)))
        out.append((pair[0], pair[1]))
    return out


def estimate_performance(
    probabilities: np.ndarray,
    selected: np.ndarray,
    sensitive: Mapping[str, np.ndarray],
    *,
    intersections: Sequence[tuple[str, ...]] = (),
    level: float = 0.95,
    seed: int = 0,
) -> PerformanceEstimate:
    """Expected precision and recall at capacity, with sampling bands, overall and per group.

    Parameters
    ----------
    probabilities : ndarray of float in [0, 1]
        Each person's calibrated score for the period.
    selected : ndarray of bool
        Whether each person is on the list (the top k by score).
    sensitive : mapping of attribute to ndarray
        Each person's group for each sensitive attribute (text; no missing values).
    intersections : sequence of tuples of attribute names
        Intersections to report too, e.g. ``[("race_ethnicity", "sex")]``: named
        ``"race_ethnicity × sex"``, with groups such as ``"Black × female"``.
    level : float
        The sampling band's level: the share of periods whose realised value it holds.
    seed : int
        Accepted for interface stability; unused, because the bands are computed exactly
        (the same inputs always give the same bands).

    Returns
    -------
    PerformanceEstimate
        The whole population's row first (attribute and group ``"overall"``), then every
        group of every attribute in the order given (groups sorted by name), then the
        intersections.

    Raises
    ------
    BadInputError
        If the arrays' lengths differ, a probability is outside [0, 1], a sensitive value is
        missing, an intersection names an unknown attribute, or the level is not in (0, 1).
        Every problem is listed in ``details``.
    """
    del seed  # exact computation: nothing is drawn
    p, chosen = _validated(probabilities, selected, sensitive, intersections, level)
    tail = round(1.0 - level, 12) / 2
    singles = {a: _factorize(a, values) for a, values in sensitive.items()}
    groupings = [_Grouping(OVERALL, (OVERALL,), np.zeros(len(p), dtype=np.intp))]
    groupings += list(singles.values())
    groupings += [_intersection([singles[a] for a in combo]) for combo in intersections]
    cells = _cells(p, chosen)
    rows = []
    for grouping in groupings:
        terms = _terms(p, chosen, cells, grouping.codes, len(grouping.levels))
        for name, (on_list, others) in zip(grouping.levels, terms, strict=True):
            rows.append(_group_estimate(grouping.attribute, name, on_list, others, tail))
    return PerformanceEstimate(groups=tuple(rows), level=level)


def compare_with_realised(
    estimate: Mapping[str, Any],
    realised: Mapping[tuple[str, str], Mapping[str, float | None]],
) -> list[dict[str, Any]]:
    """Set each group's realised precision and recall against its estimate's sampling band.

    Parameters
    ----------
    estimate : mapping
        :meth:`PerformanceEstimate.as_dict` of the period.
    realised : mapping of (attribute, group) to {"precision": value, "recall": value}
        The period's realised metrics once its labels are in; ``("overall", "overall")`` for
        the whole population. A metric may be missing or ``None`` (undefined).

    Returns
    -------
    list of dict
        One row per (attribute, group, metric) of the estimate: ``attribute``, ``group``,
        ``metric``, ``estimate``, ``low``, ``high``, ``realised``, ``judged`` (whether both the
        band and the realised value are defined), ``outside_band`` (the realised value is
        outside [low, high]; False when not judged) and ``direction`` ("below", "above" or
        ``None``).

    Raises
    ------
    BadInputError
        If ``realised`` names a group the estimate does not have, or a metric that is not
        precision or recall, or a value that is not a number in [0, 1].
    """
    rows = {(g["attribute"], g["group"]): g for g in estimate["groups"]}
    problems = []
    for key, values in realised.items():
        if key not in rows:
            problems.append(f"no estimate for group {key[1]!r} of {key[0]!r}")
            continue
        for metric, value in values.items():
            if metric not in METRICS:
                problems.append(f"{key}: unknown metric {metric!r} (expected {METRICS})")
            elif value is not None and not (math.isfinite(value) and 0 <= value <= 1):
                problems.append(f"{key}: realised {metric} must be in [0, 1] (got {value!r})")
    if problems:
        raise BadInputError("cannot compare realised metrics with the estimate", details=problems)
    out = []
    for key, row in rows.items():
        given = realised.get(key, {})
        for metric in METRICS:
            value = given.get(metric)
            low, high = row[f"{metric}_low"], row[f"{metric}_high"]
            judged = value is not None and low is not None and high is not None
            direction = None
            if judged:
                if value < low - _REALISED_TOLERANCE:
                    direction = "below"
                elif value > high + _REALISED_TOLERANCE:
                    direction = "above"
            out.append(
                {
                    "attribute": key[0],
                    "group": key[1],
                    "metric": metric,
                    "estimate": row[f"{metric}_expected"],
                    "low": low,
                    "high": high,
                    "realised": None if value is None else float(value),
                    "judged": judged,
                    "outside_band": direction is not None,
                    "direction": direction,
                }
            )
    return out
