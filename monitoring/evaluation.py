"""The evaluation arm: a lottery at the margin, and the estimates its randomisation allows.

Each period the top ``k`` eligible people by score are offered outreach (the list: selection
probability 1). When the board turns the evaluation arm on, ``m`` *extra* places are drawn by
lottery among the people ranked just below the cut-off, the *margin band* (ranks ``k + 1`` to
``band_end``, ``B`` people): each is offered with probability ``π`` (``m / B`` for the uniform
lottery of :func:`draw_lottery`). Everyone else has ``π = 0``. The lottery never takes places
from the list.

Labels come back months later. An offered person's label is their outcome *with* help; a person
not offered shows their outcome *without* it. Only the band has both kinds of people, chosen by
chance, so only the band answers questions the list alone cannot.

Estimators (Horvitz–Thompson)
-----------------------------
Each band member's observed label is weighted by the inverse of the chance that it was observed
in its arm: ``1 / π`` if offered, ``1 / (1 - π)`` if not. Summed over the band and divided by the
band's size, that is an unbiased estimate of the band's mean outcome with an offer, and without
one, for *any* selection probabilities in (0, 1) (uniform or not, e.g. more places near the
cut-off), as long as the lottery really drew with those probabilities.

* ``untreated_rate``: how often people just below the cut-off have the crisis without an offer,
  with the model's expected rate there (the band's mean score) beside it: how well the model
  ranks and calibrates around the cut-off.
* ``treated_rate``: the same, with an offer.
* ``effect``: their difference, the effect of an offer near the margin (negative: fewer crises).
* ``margin_recall``: of the crises without an offer among everyone ranked below the cut-off (the
  band's, estimated, plus those observed directly beyond the band, who are never offered), the
  share the model ranked in the band. Without the lottery this is unknowable: every band member
  is either always helped (their untreated outcome unseen) or never (then the band is just more
  of "beyond").

Intervals
---------
Each arm gets a Jeffreys posterior, Beta(x + 1/2, n - x + 1/2), on its *effective* counts: ``n``
is Kish's effective number of the arm's observations, ``(sum w)^2 / sum w^2`` for its weights
``w``, and ``x = n`` times the arm's estimate. For the uniform lottery this is exactly the arm's
people and crises (the plain Jeffreys interval); with unequal probabilities it accounts for the
weights' variance inflation. ``margin_recall`` draws the band's crises from the untreated
posterior and the crises beyond the band from their own Jeffreys posterior.

The intervals are for the rates of the process that produces each period's people near the
cut-off (independent arms, as in Neyman's conservative variance for the effect); for this
period's particular people they are conservative (no finite-population correction).

The effect's interval and test are one computation: the interval is the central range of the
posterior draws of the difference, the two-sided p-value twice the smaller share of draws on
either side of 0, and the interval is cut so that it excludes 0 exactly when the p-value is below
``1 - level`` (see :func:`central_interval`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audits.group_metrics import significance
from kernel.errors import BadInputError

#: Posterior draws per estimate.
DRAWS = 20_000
NAMES = ("untreated_rate", "treated_rate", "effect", "margin_recall")
DESCRIPTIONS = {
    "untreated_rate": (
        "How often people ranked just below the cut-off have the crisis without an offer; "
        "model_expected is the model's expected rate for them (their mean score)."
    ),
    "treated_rate": "How often people ranked just below the cut-off have the crisis with an offer.",
    "effect": (
        "The change in the crisis rate an offer makes near the cut-off (with minus without; "
        "negative means fewer crises)."
    ),
    "margin_recall": (
        "Of the crises without an offer among everyone below the cut-off, the share the model "
        "ranked just below it (in the margin band); model_expected is the share the scores "
        "predict."
    ),
}


@dataclass(frozen=True)
class Estimate:
    """One estimate with its interval, the people it used and (where it has one) its test."""

    value: float
    low: float
    high: float
    #: People whose labels it used.
    n: int
    #: Observed crises among them.
    crises: int
    #: What the model's scores predict, where the model predicts it.
    model_expected: float | None = None
    #: The two-sided test of "no difference" that agrees with the interval (effect only).
    p_value: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "crises": self.crises,
        }
        if self.model_expected is not None:
            out["model_expected"] = self.model_expected
            out["model_expected_inside"] = self.low <= self.model_expected <= self.high
        if self.p_value is not None:
            out["p_value"] = self.p_value
        return out


@dataclass(frozen=True)
class EvaluationEstimate:
    """What one period's evaluation arm shows; ``None`` estimates say why in ``reasons``."""

    level: float
    k: int
    band_end: int
    band_size: int
    offered_in_band: int
    untreated_rate: Estimate | None
    treated_rate: Estimate | None
    effect: Estimate | None
    margin_recall: Estimate | None
    #: Why the lottery gave no estimates at all (``None`` when it gave some).
    reason: str | None = None
    #: Why each missing estimate is missing.
    reasons: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types: every estimate (or ``None``), the reasons, and plain descriptions."""
        estimates = {name: getattr(self, name) for name in NAMES}
        return {
            "level": self.level,
            "k": self.k,
            "band_end": self.band_end,
            "band_size": self.band_size,
            "offered_in_band": self.offered_in_band,
            "reason": self.reason,
            "reasons": dict(self.reasons),
            "estimates": {n: None if e is None else e.as_dict() for n, e in estimates.items()},
            "descriptions": dict(DESCRIPTIONS),
            "weights": "inverse selection probability (Horvitz–Thompson)",
        }


def draw_lottery(band_size: int, places: int, seed: int | np.random.SeedSequence) -> np.ndarray:
    """The margin band's lottery: ``places`` distinct positions in the band, uniformly drawn.

    Parameters
    ----------
    band_size : int
        People in the margin band.
    places : int
        Extra places to give (0 to ``band_size``).
    seed : int or SeedSequence
        The draw's seed: the same seed always gives the same draw, so the lottery can be
        re-run and checked.

    Returns
    -------
    ndarray of int
        Sorted positions ``0 .. band_size - 1`` in the band (by rank) of the people drawn; each
        has probability ``places / band_size``.

    Raises
    ------
    BadInputError
        If the sizes are negative or there are more places than people.
    """
    if isinstance(band_size, bool) or not isinstance(band_size, int | np.integer):
        raise BadInputError(f"band_size must be a whole number (got {band_size!r})")
    if isinstance(places, bool) or not isinstance(places, int | np.integer):
        raise BadInputError(f"places must be a whole number (got {places!r})")
    if band_size < 0 or not 0 <= places <= band_size:
        raise BadInputError(
            f"the lottery needs 0 <= places <= band_size (got places={places}, "
            f"band_size={band_size})"
        )
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(int(band_size), size=int(places), replace=False)).astype(np.intp)


def central_interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    """The central ``level`` range of draws, cut to agree with :func:`two_sided_p_value`.

    With ``c = ceil(R (1 - level) / 2)`` for ``R`` draws, the interval runs from the ``c``-th
    smallest to the ``c``-th largest draw. It excludes a value ``v`` exactly when fewer than
    ``c`` draws are ``<= v`` or fewer than ``c`` are ``>= v``, which is exactly when the
    p-value, twice the smaller of those shares, is below ``1 - level``.
    """
    ordered = np.sort(np.asarray(draws, dtype=float))
    cut = _cut(len(ordered), level)
    return float(ordered[cut - 1]), float(ordered[len(ordered) - cut])


def two_sided_p_value(draws: np.ndarray, null: float = 0.0) -> float:
    """Twice the smaller share of draws on either side of ``null`` (ties on both), at most 1."""
    values = np.asarray(draws, dtype=float)
    smaller = min(int((values <= null).sum()), int((values >= null).sum()))
    return min(1.0, 2 * smaller / len(values))


def _cut(draws: int, level: float) -> int:
    # significance() rounds 1 - level to 12 decimals, so the product is never a hair off an
    # integer: the cut and the p-value's comparison round the same way.
    return max(math.ceil(significance(level) * draws / 2 - 1e-9), 1)


def _posterior(
    labels: np.ndarray, weights: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[float, np.ndarray]:
    """An arm's Horvitz–Thompson mean over the band, and Jeffreys draws on effective counts."""
    value = float(labels @ weights) / size
    effective = float(weights.sum()) ** 2 / float((weights**2).sum())
    crises = min(max(value, 0.0), 1.0) * effective
    return value, rng.beta(crises + 0.5, effective - crises + 0.5, size=DRAWS)


def _contained(value: float, low: float, high: float) -> tuple[float, float]:
    # A rate's interval always holds its estimate (Jeffreys' convention at zero crises).
    return min(low, value), max(high, value)


def _as_array(name: str, values: Any, problems: list[str]) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        problems.append(f"{name} must be one-dimensional (got shape {array.shape})")
    return array


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _validated(
    labels: Any,
    rank: Any,
    offered: Any,
    probability: Any,
    scores: Any,
    k: int,
    band_end: int,
    level: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    problems: list[str] = []
    arrays = {
        "labels": _as_array("labels", labels, problems),
        "rank": _as_array("rank", rank, problems),
        "offered": _as_array("offered", offered, problems),
        "probability": _as_array("probability", probability, problems),
        "scores": _as_array("scores", scores, problems),
    }
    lengths = {name: len(a) for name, a in arrays.items() if a.ndim == 1}
    if len(set(lengths.values())) > 1:
        problems.append(f"arrays must have one value per person; lengths: {lengths}")
    for name, value in (("k", k), ("band_end", band_end)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            problems.append(f"{name} must be a whole number >= 0 (got {value!r})")
    if not problems and band_end < k:
        problems.append(f"band_end ({band_end}) must be at least k ({k})")
    if not 0 < level < 1:
        problems.append(f"level must be between 0 and 1 (got {level!r})")
    if problems:
        raise BadInputError("cannot estimate from the evaluation arm", details=problems)
    y, r, o, pi, s = arrays.values()
    for name, values, allowed in (("labels", y, (0, 1)), ("offered", o, (0, 1))):
        if values.dtype != bool and not np.isin(values, allowed).all():
            problems.append(f"{name} must be 0/1 (position {_first(~np.isin(values, allowed))})")
    try:
        r_float = r.astype(float)
        pi = pi.astype(float)
        s = s.astype(float)
    except (TypeError, ValueError) as err:
        raise BadInputError(
            "cannot estimate from the evaluation arm",
            details=[f"rank, probability and scores must be numbers ({err})"],
        ) from err
    if not np.all(np.isfinite(r_float) & (r_float >= 0) & (r_float == np.round(r_float))):
        problems.append("rank must be whole numbers >= 0 (0: not ranked)")
    elif len(np.unique(r_float[r_float > 0])) != int((r_float > 0).sum()):
        problems.append("ranks must be distinct among ranked people")
    for name, values in (("probability", pi), ("scores", s)):
        bad = ~(np.isfinite(values) & (values >= 0) & (values <= 1))
        if bad.any():
            problems.append(f"{name} must be in [0, 1] (position {_first(bad)}: {values[bad][0]})")
    if problems:
        raise BadInputError("cannot estimate from the evaluation arm", details=problems)
    y, o, r = y.astype(int), o.astype(bool), r_float.astype(np.int64)
    checks = (
        (o & (pi == 0), "offered people must have a selection probability above 0"),
        (~o & (pi == 1), "people with selection probability 1 must be offered"),
        ((r >= 1) & (r <= k) & (pi != 1), "people on the list (rank 1..k) must have probability 1"),
        (
            ((r == 0) | (r > band_end)) & (pi != 0),
            "people outside the list and the margin band must have probability 0",
        ),
    )
    for bad, message in checks:
        if bad.any():
            problems.append(f"{message} ({int(bad.sum())} do not; position {_first(bad)})")
    band_pi = pi[(r > k) & (r <= band_end)]
    mixed = band_pi.size and not (
        (band_pi == 0).all() or (band_pi == 1).all() or ((band_pi > 0) & (band_pi < 1)).all()
    )
    if mixed:
        problems.append(
            "with the lottery on, everyone in the margin band needs a selection probability "
            "strictly between 0 and 1 (some have 0 or 1)"
        )
    if problems:
        raise BadInputError("cannot estimate from the evaluation arm", details=problems)
    return y, r, o, pi, s


def evaluation_estimates(
    labels: np.ndarray,
    rank: np.ndarray,
    offered: np.ndarray,
    probability: np.ndarray,
    scores: np.ndarray,
    k: int,
    band_end: int,
    *,
    level: float = 0.95,
    seed: int = 0,
) -> EvaluationEstimate:
    """Inverse-probability estimates from one period's lottery at the margin.

    Parameters
    ----------
    labels : ndarray of 0/1
        Each person's observed outcome (with help if offered, without otherwise).
    rank : ndarray of int
        Rank by score among eligible people, from 1; 0 for people not ranked (opted out).
    offered : ndarray of bool
        Offered outreach, from the list or the lottery.
    probability : ndarray of float
        Each person's selection probability: 1 on the list, the lottery's in the margin band,
        0 elsewhere.
    scores : ndarray of float
        Each person's calibrated score (the model's probability of the crisis).
    k : int
        The list's size (the cut-off rank).
    band_end : int
        The margin band's last rank (``k + B``).
    level : float
        Interval level.
    seed : int
        Seed of the posterior draws: the same inputs give the same intervals.

    Returns
    -------
    EvaluationEstimate
        With no lottery (no one in the band offered, or everyone), every estimate is ``None``
        and ``reason`` says why; an estimate that is undefined on its own (no crisis below the
        cut-off, for ``margin_recall``) is ``None`` with its reason in ``reasons``.

    Raises
    ------
    BadInputError
        If lengths differ, a probability or score is outside [0, 1], labels are not 0/1, an
        offered person has probability 0 (or a person with probability 1 is not offered), the
        probabilities contradict the list and band, or ranks repeat. Every problem is listed.
    """
    y, r, o, pi, s = _validated(labels, rank, offered, probability, scores, k, band_end, level)
    band = (r > k) & (r <= band_end)
    beyond = r > band_end
    size = int(band.sum())
    offered_in_band = int((band & o).sum())
    reason = None
    if size == 0:
        reason = f"no one was ranked in the margin band (ranks {k + 1} to {band_end})"
    elif offered_in_band == 0:
        reason = "no lottery: no one in the margin band was offered (the evaluation arm was off)"
    elif offered_in_band == size:
        reason = "no lottery: everyone in the margin band was offered, so none went without"
    if reason is not None:
        return EvaluationEstimate(
            level=level,
            k=k,
            band_end=band_end,
            band_size=size,
            offered_in_band=offered_in_band,
            untreated_rate=None,
            treated_rate=None,
            effect=None,
            margin_recall=None,
            reason=reason,
            reasons=dict.fromkeys(NAMES, reason),
        )
    rng = np.random.default_rng(seed)
    treated, untreated = band & o, band & ~o
    value0, draws0 = _posterior(y[untreated], 1 / (1 - pi[untreated]), size, rng)
    value1, draws1 = _posterior(y[treated], 1 / pi[treated], size, rng)
    crises0, crises1 = int(y[untreated].sum()), int(y[treated].sum())
    untreated_rate = Estimate(
        value0,
        *_contained(value0, *central_interval(draws0, level)),
        n=int(untreated.sum()),
        crises=crises0,
        model_expected=float(s[band].mean()),
    )
    treated_rate = Estimate(
        value1,
        *_contained(value1, *central_interval(draws1, level)),
        n=offered_in_band,
        crises=crises1,
    )
    difference = draws1 - draws0
    effect = Estimate(
        value1 - value0,
        *central_interval(difference, level),
        n=size,
        crises=crises0 + crises1,
        p_value=two_sided_p_value(difference),
    )
    margin_recall, reasons = _margin_recall(
        y, s, band, beyond, untreated_rate, draws0, level=level, rng=rng
    )
    return EvaluationEstimate(
        level=level,
        k=k,
        band_end=band_end,
        band_size=size,
        offered_in_band=offered_in_band,
        untreated_rate=untreated_rate,
        treated_rate=treated_rate,
        effect=effect,
        margin_recall=margin_recall,
        reasons=reasons,
    )


def _margin_recall(
    y: np.ndarray,
    s: np.ndarray,
    band: np.ndarray,
    beyond: np.ndarray,
    untreated: Estimate,
    draws0: np.ndarray,
    *,
    level: float,
    rng: np.random.Generator,
) -> tuple[Estimate | None, dict[str, str]]:
    """Share of the untreated crises below the cut-off that the model ranked in the band.

    Uses the band's people without an offer (through the untreated rate) and everyone beyond
    the band, whose outcomes without an offer are observed directly.
    """
    size, far = int(band.sum()), int(beyond.sum())
    far_crises = int(y[beyond].sum())
    band_crises = untreated.value * size
    if band_crises + far_crises <= 0:
        reason = "no crisis without an offer was seen below the cut-off, in the band or beyond"
        return None, {"margin_recall": reason}
    value = band_crises / (band_crises + far_crises)
    band_draws = draws0 * size
    far_draws = np.zeros(DRAWS)
    if far:
        far_draws = rng.beta(far_crises + 0.5, far - far_crises + 0.5, size=DRAWS) * far
    total = band_draws + far_draws
    shares = np.divide(band_draws, total, out=np.full(DRAWS, value), where=total > 0)
    predicted = float(s[band].sum() + s[beyond].sum())
    estimate = Estimate(
        value,
        *_contained(value, *central_interval(shares, level)),
        n=untreated.n + far,
        crises=untreated.crises + far_crises,
        model_expected=float(s[band].sum()) / predicted if predicted > 0 else None,
    )
    return estimate, {}
