"""What would change a listing: the smallest single-feature changes that cross the cut-off.

Every served model is additive (:mod:`model.additive`), so how a score moves when one feature
moves is known exactly from that feature's term alone; no search library and no optimiser is
needed. For each feature a spec marks ``actionable = true`` (a circumstance help can change, never
a fact about who someone is or a count of the past) this module finds the smallest change of that
feature alone that moves a record across the cut-off:

* ``linear`` terms: solved analytically, then the exact smallest value in the feature's range
  and kind (the next whole number for counts and binaries, the next representable float for
  numbers) is pinned down by bisection on the scorer's own arithmetic, starting from the
  analytic answer; the search only removes floating-point rounding.
* ``step`` terms (trees' ``x <= threshold`` goes left): each interval between thresholds is
  entered at its nearest valid point (for an interval above the current value, the smallest
  value strictly above its lower threshold: the next float for numbers, the next whole number
  for counts; for one below, its upper threshold itself, or the whole number at or below it).
  The nearest interval whose value crosses is the answer.
* ``table`` terms (categories): of the other categories whose value crosses, the one with the
  smallest change in contribution.

Only single-feature changes are computed, ranked by the size of their change in the log-odds
(smallest first); the smallest combined change over two or more features is not computed.

The cut-off is the model's recorded capacity cut-off score, ``ScoringModel.cutoffs["priority"]``:
the score at which the band becomes "within this period's outreach capacity". A scored month's
list is its own top k, which can differ slightly from that score; the cut-off is used because it
is what the band says, the same for every month and every record, so an explanation never
depends on who else was scored. A record at or above it is asked what would take it *off* the
list (``direction = "off"``); one below, what would bring it *on* (``"on"``).

A gap (a missing value, for features with ``missing = "allowed"``) is never a candidate and a
record whose value is a gap is not considered for that feature: filling a gap corrects the record
of a fact that already exists, which is not a change of circumstance.

The texts are written for coordinators, to explain the model's listing; they are never advice to
the person to change their life. Sensitive attributes are never features, so they are never
involved; :func:`actionable_features` refuses a feature named as one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from kernel.errors import BadInputError
from model.additive import AdditiveModel, Term, sigmoid
from model.scorer import ScoringModel
from model.spec import Feature, is_missing

Direction = Literal["on", "off"]
#: The cut-off band: a score at or above the model's ``priority`` cut-off is within capacity.
CUTOFF_BAND = "priority"
#: Bisection steps allowed (a float range needs at most about 2,100; counts about 64).
_MAX_STEPS = 2_200
#: Log-odds margins this close to the cut-off are re-checked in the scorer's exact arithmetic.
_TIE = 1e-9
#: The largest whole number a count may be moved to when it has no 'max'.
_COUNT_CEILING = float(2**53)

DIRECTION_WORDS = {
    "on": "would be within this period's outreach capacity (at or above the cut-off)",
    "off": "would fall below the outreach cut-off",
}


@dataclass(frozen=True)
class Change:
    """The smallest change of one feature alone that moves a record across the cut-off.

    ``required`` is ``None`` when no value in the feature's valid range crosses (or the current
    value is a gap); ``contribution_change`` and ``score`` are then ``None`` too.
    """

    feature: str
    direction: Direction
    current: float | str | None
    required: float | str | None
    contribution_change: float | None
    score: float | None
    text: str

    @property
    def crosses(self) -> bool:
        return self.required is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "direction": self.direction,
            "current": self.current,
            "required": self.required,
            "contribution_change": None
            if self.contribution_change is None
            else round(self.contribution_change, 6),
            "score": None if self.score is None else round(self.score, 6),
            "crosses": self.crosses,
            "text": self.text,
        }


@dataclass(frozen=True)
class Crossings:
    """One feature's answer for many records at once (arrays aligned with the records).

    ``required`` holds floats (NaN where nothing crosses) or, for categories, category names
    (``None`` where nothing crosses); ``log_odds`` the record's calibrated log-odds after the
    change (NaN where nothing crosses); ``considered`` is False where the value is a gap.
    """

    feature: str
    required: np.ndarray
    log_odds: np.ndarray
    crosses: np.ndarray
    considered: np.ndarray


def actionable_features(
    features: Sequence[Feature], *, sensitive: Collection[str] = ()
) -> list[Feature]:
    """The features marked ``actionable``, refusing any named as a sensitive attribute.

    Raises
    ------
    BadInputError
        If an actionable feature is also a sensitive attribute (never a lever, never a feature).
    """
    chosen = [f for f in features if f.actionable]
    clash = sorted(f.name for f in chosen if f.name in set(sensitive))
    if clash:
        raise BadInputError(
            f"sensitive attribute(s) {', '.join(clash)} cannot be considered for what would "
            "change a listing"
        )
    return chosen


def logit(score: float) -> float:
    """The calibrated log-odds of a score (for distances; crossing is judged on scores)."""
    return float(np.log(score) - np.log1p(-score))


# ----------------------------------------------------------------------------- arithmetic


class _Arithmetic:
    """The log-odds after replacing one feature's contribution, in the scorer's own arithmetic.

    With every feature's contribution known (``contributions``), the new log-odds is the base
    plus the row sum with one column replaced: bit for bit what :class:`ScoringModel` computes
    for the changed record. With only the log-odds and a few features known (a stored listing),
    it is the log-odds minus the old contribution plus the new one.
    """

    def __init__(
        self,
        additive: AdditiveModel,
        log_odds: np.ndarray,
        contributions: np.ndarray | None,
        current: Mapping[str, np.ndarray],
    ) -> None:
        self.additive = additive
        self.log_odds = log_odds
        self.contributions = contributions
        self.current = current  # feature -> its current calibrated contribution per record
        self.column = {name: j for j, name in enumerate(additive.features)}

    def fast(self, feature: str, rows: np.ndarray, new: np.ndarray) -> np.ndarray:
        """Approximate new log-odds (within a few ulps): for screening many candidates."""
        return self.log_odds[rows] + (new - self.current[feature][rows])

    def exact(self, feature: str, rows: np.ndarray, new: np.ndarray) -> np.ndarray:
        if self.contributions is None:
            return self.fast(feature, rows, new)
        changed = self.contributions[rows].copy()
        changed[:, self.column[feature]] = new
        return self.additive.base_value + changed.sum(axis=1)


def _within(log_odds: np.ndarray, cutoff: float) -> np.ndarray:
    """The band's own rule: within capacity when the score is at least the cut-off."""
    return np.asarray(sigmoid(log_odds) >= cutoff)


def _contribution(additive: AdditiveModel, term: Term, values: np.ndarray) -> np.ndarray:
    """Calibrated contributions of ``term`` at float values (exactly as the scorer computes)."""
    return np.asarray(additive.calibration_slope * term.evaluate(np.asarray(values, dtype=float)))


# ----------------------------------------------------------------------------- per term kind


def _linear(
    additive: AdditiveModel,
    term: Term,
    feature: Feature,
    x: np.ndarray,
    upward: np.ndarray,
    arithmetic: _Arithmetic,
    cutoff: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Smallest crossing value per record for a linear term (NaN where none in range)."""
    n = len(x)
    required = np.full(n, np.nan)
    a = additive.calibration_slope * term.slope
    if a == 0 or not np.isfinite(a):
        return required, np.full(n, np.nan)
    integer = feature.kind in ("count", "binary")
    target = logit(cutoff)
    # The direction each record's value must move: up raises the log-odds when a > 0.
    sign = np.where(upward, 1.0, -1.0) * np.sign(a)
    top, bottom = feature.upper, feature.lower
    if integer:
        far = np.where(
            sign > 0, _COUNT_CEILING if top is None else top, 0.0 if bottom is None else bottom
        )
    else:
        biggest = float(np.finfo(float).max)
        far = np.where(
            sign > 0, biggest if top is None else top, -biggest if bottom is None else bottom
        )
    rows = np.flatnonzero(np.isfinite(x) & (sign * (far - x) > 0))

    def crosses(r: np.ndarray, values: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):  # an unbounded number's far end may overflow to inf
            log_odds = arithmetic.exact(term.feature, r, _contribution(additive, term, values))
        return _within(log_odds, cutoff) == upward[r]

    reach = crosses(rows, far[rows])
    rows = rows[reach]  # the others cannot cross anywhere in range
    if not len(rows):
        return required, np.full(n, np.nan)
    s, x_r, far_r = sign[rows], x[rows], far[rows]
    with np.errstate(over="ignore", invalid="ignore"):
        guess = x_r + (target - arithmetic.log_odds[rows]) / a
    guess = np.where(np.isfinite(guess), guess, far_r)
    if integer:
        guess = np.where(s > 0, np.ceil(guess), np.floor(guess))
        guess = np.where(s * (guess - x_r) < 1, x_r + s, guess)
    guess = np.where(s * (guess - far_r) > 0, far_r, guess)  # not beyond the range
    guess = np.where(s * (guess - x_r) > 0, guess, far_r)
    # A bracket around the analytic answer: lo never crosses, hi always does.
    hit = crosses(rows, guess)
    lo, hi = x_r.copy(), far_r.copy()
    hi[hit] = guess[hit]
    lo[~hit] = guess[~hit]
    step = np.where(integer, 1.0, np.abs(guess) * 1e-9 + 1e-300)
    probe = np.where(hit, guess - s * step, guess + s * step)
    inside = (s * (probe - lo) > 0) & (s * (hi - probe) > 0)
    if inside.any():
        picked = np.flatnonzero(inside)
        found = crosses(rows[picked], probe[picked])
        hi[picked[found]] = probe[picked[found]]
        lo[picked[~found]] = probe[picked[~found]]
    hi = _bisect(lo, hi, lambda i, v: crosses(rows[i], v), integer=integer)
    required[rows] = hi
    return required, _new_log_odds(arithmetic, additive, term, required)


def _bisect(
    lo: np.ndarray,
    hi: np.ndarray,
    crosses: Callable[[np.ndarray, np.ndarray], np.ndarray],
    *,
    integer: bool,
) -> np.ndarray:
    """The value next to ``lo`` (the next float, or the next whole number) that still crosses,
    for monotone predicates with ``crosses(lo)`` false and ``crosses(hi)`` true."""
    lo, hi = lo.copy(), hi.copy()
    for _ in range(_MAX_STEPS):
        open_ = np.abs(hi - lo) > 1 if integer else np.nextafter(lo, hi) != hi
        rows = np.flatnonzero(open_)
        if not len(rows):
            return hi
        low, high = lo[rows], hi[rows]
        mid = low + np.trunc((high - low) / 2) if integer else low / 2 + high / 2
        stuck = (mid == low) | (mid == high)
        mid[stuck] = np.nextafter(low[stuck], high[stuck])
        found = crosses(rows, mid)
        hi[rows[found]] = mid[found]
        lo[rows[~found]] = mid[~found]
    raise AssertionError("bisection did not settle")  # pragma: no cover (bounded by floats)


def _new_log_odds(
    arithmetic: _Arithmetic, additive: AdditiveModel, term: Term, required: np.ndarray
) -> np.ndarray:
    out = np.full(len(required), np.nan)
    rows = np.flatnonzero(~np.isnan(required))
    if len(rows):
        new = _contribution(additive, term, required[rows])
        out[rows] = arithmetic.exact(term.feature, rows, new)
    return out


def _step_points(term: Term, feature: Feature) -> tuple[np.ndarray, np.ndarray]:
    """Per interval ``k`` of a step term (``low_edge[k] < v <= high_edge[k]``), its smallest and
    its largest valid value (NaN where it holds none): a record below the interval enters it at
    the smallest, one above it at the largest."""
    integer = feature.kind in ("count", "binary")
    t = np.asarray(term.thresholds, dtype=float)
    m = len(t)
    lower = -np.inf if feature.lower is None else feature.lower
    upper = np.inf if feature.upper is None else feature.upper
    low_edge = np.concatenate([[-np.inf], t])  # interval k: low_edge[k] < v <= high_edge[k]
    high_edge = np.concatenate([t, [np.inf]])
    if integer:
        smallest = np.floor(low_edge) + 1
        largest = np.floor(high_edge)
    else:
        smallest = np.nextafter(low_edge, np.inf)
        largest = high_edge.copy()
    smallest = np.maximum(smallest, lower)
    largest = np.minimum(largest, upper)
    empty = (smallest > largest) | (smallest > high_edge) | (largest <= low_edge)
    smallest[empty] = np.nan
    largest[empty] = np.nan
    assert len(smallest) == m + 1
    return smallest, largest


def _discrete(
    term: Term,
    upward: np.ndarray,
    values: np.ndarray,
    distance: np.ndarray,
    arithmetic: _Arithmetic,
    cutoff: float,
    tiebreak: np.ndarray | None = None,
) -> np.ndarray:
    """The candidate with the smallest distance among those that cross, per record (-1: none).

    ``values``: (n, K) candidate contributions; ``distance``: (n, K), NaN where not a candidate;
    ``tiebreak``: (n, K), the smaller wins among candidates whose distances are equal as floats
    (a step just past a threshold of 1e-132 is as far from 1.0 as the step past 0.0).
    Screened with the fast arithmetic; records with a candidate within a rounding of the cut-off
    are decided in the exact one.
    """
    rows = np.arange(len(distance))
    target = logit(cutoff)
    fast = (arithmetic.log_odds - arithmetic.current[term.feature])[:, None] + values
    crosses = np.where(upward[:, None], fast >= target, fast < target)
    close = np.abs(fast - target) <= _TIE * (1 + abs(target))
    candidate = ~np.isnan(distance)
    for r in np.flatnonzero((close & candidate).any(axis=1)):
        ks = np.flatnonzero(candidate[r])
        exact = arithmetic.exact(term.feature, np.full(len(ks), r), values[r, ks])
        crosses[r, ks] = _within(exact, cutoff) == upward[r]
    usable = candidate & crosses
    ranked = np.where(usable, distance, np.inf)
    if tiebreak is not None:
        tied = ranked == ranked.min(axis=1, keepdims=True)
        ranked = np.where(tied & usable, tiebreak, np.inf)
    best = np.argmin(ranked, axis=1)
    best[~usable[rows, best]] = -1
    return best


def _step(
    additive: AdditiveModel,
    term: Term,
    feature: Feature,
    x: np.ndarray,
    upward: np.ndarray,
    arithmetic: _Arithmetic,
    cutoff: float,
) -> tuple[np.ndarray, np.ndarray]:
    smallest, largest = _step_points(term, feature)
    n, k = len(x), len(smallest)
    interval = np.searchsorted(np.asarray(term.thresholds, dtype=float), x, side="left")
    above = np.arange(k)[None, :] > interval[:, None]
    nearest = np.where(above, smallest[None, :], largest[None, :])  # (n, k)
    nearest[np.arange(k)[None, :] == interval[:, None]] = np.nan
    nearest[np.isnan(x)] = np.nan
    contrib = np.where(
        np.isnan(nearest), 0.0, _contribution(additive, term, np.nan_to_num(nearest))
    )
    distance = np.abs(nearest - x[:, None])
    # Among equal distances, the interval nearest the current one: the smallest real change.
    gap = np.abs(np.arange(k)[None, :] - interval[:, None]).astype(float)
    best = _discrete(term, upward, contrib, distance, arithmetic, cutoff, tiebreak=gap)
    required = np.full(n, np.nan)
    found = best >= 0
    required[found] = nearest[np.flatnonzero(found), best[found]]
    return required, _new_log_odds(arithmetic, additive, term, required)


def _table(
    additive: AdditiveModel,
    term: Term,
    codes: np.ndarray,
    upward: np.ndarray,
    arithmetic: _Arithmetic,
    cutoff: float,
) -> tuple[np.ndarray, np.ndarray]:
    n, k = len(codes), len(term.categories)
    levels = additive.calibration_slope * (np.asarray(term.values, dtype=float) - term.center)
    contrib = np.broadcast_to(levels, (n, k))
    distance = np.abs(contrib - arithmetic.current[term.feature][:, None])
    distance[np.arange(k)[None, :] == codes[:, None]] = np.nan  # not the current category
    distance[codes >= k] = np.nan  # a gap: not considered
    best = _discrete(term, upward, contrib, distance, arithmetic, cutoff)
    required = np.full(n, None, dtype=object)
    log_odds = np.full(n, np.nan)
    rows = np.flatnonzero(best >= 0)
    if len(rows):
        required[rows] = np.asarray(term.categories, dtype=object)[best[rows]]
        log_odds[rows] = arithmetic.exact(term.feature, rows, levels[best[rows]])
    return required, log_odds


# ----------------------------------------------------------------------------- entry points


@dataclass(frozen=True)
class Answer:
    """:func:`crossings` for many records: their log-odds now, whether each is within capacity
    (so its direction is "off"), and one :class:`Crossings` per actionable feature."""

    log_odds: np.ndarray
    within: np.ndarray
    features: list[Crossings]

    def direction(self, index: int) -> Direction:
        return "off" if self.within[index] else "on"


def crossings(
    additive: AdditiveModel,
    features: Sequence[Feature],
    columns: Mapping[str, Any],
    cutoff: float,
    *,
    log_odds: np.ndarray | None = None,
    sensitive: Collection[str] = (),
) -> Answer:
    """For every actionable feature, each record's smallest crossing change (vectorised).

    Parameters
    ----------
    additive : AdditiveModel
        The model.
    features : sequence of Feature
        The model's features (kinds, ranges, ``actionable``).
    columns : mapping of feature name to array-like
        Clean values (as :meth:`ScoringModel.check` returns; NaN or ``None`` for a gap). Either
        every feature of the model, or, with ``log_odds``, only the actionable ones of interest
        (a stored listing).
    cutoff : float
        The cut-off score; a record at or above it is asked to move below, and the reverse.
    log_odds : ndarray, optional
        The records' calibrated log-odds; needed when ``columns`` lacks some feature.
    sensitive : collection of str
        Sensitive attribute names, refused as actionable features.

    Returns
    -------
    Answer
        One :class:`Crossings` per actionable feature present in ``columns``, in the model's
        feature order.

    Raises
    ------
    BadInputError
        If a feature is missing without ``log_odds``, or an actionable feature is sensitive.
    """
    chosen = actionable_features(features, sensitive=sensitive)
    terms = {t.feature: t for t in additive.terms}
    contributions: np.ndarray | None = None
    if all(t.feature in columns for t in additive.terms):
        contributions = additive.contributions(columns)
        total = additive.base_value + contributions.sum(axis=1)
    elif log_odds is None:
        raise BadInputError("without every feature's value, the records' log-odds are needed")
    else:
        total = np.asarray(log_odds, dtype=float)
    wanted = [f for f in chosen if f.name in columns]
    raw: dict[str, np.ndarray] = {}
    current: dict[str, np.ndarray] = {}
    for feature in wanted:
        term = terms[feature.name]
        raw[feature.name] = additive.encode(term, columns[feature.name])
        current[feature.name] = additive.calibration_slope * term.evaluate(raw[feature.name])
    arithmetic = _Arithmetic(additive, total, contributions, current)
    within = _within(total, cutoff)
    upward = ~within
    out = []
    for feature in wanted:
        term = terms[feature.name]
        x = raw[feature.name]
        if term.kind == "table":
            considered = x < len(term.categories)
            required, new = _table(additive, term, x, upward, arithmetic, cutoff)
            crosses = np.asarray([r is not None for r in required], dtype=bool)
        else:
            considered = ~np.isnan(x)
            solve = _linear if term.kind == "linear" else _step
            required, new = solve(additive, term, feature, x, upward, arithmetic, cutoff)
            crosses = ~np.isnan(required)
        out.append(Crossings(feature.name, required, new, crosses, considered))
    return Answer(total, within, out)


def _shown(feature: Feature, value: object) -> str:
    """A value as a coordinator reads it: a category's or binary's own words, else the number."""
    if feature.kind in ("category", "binary"):
        return f"“{feature.render_reason(value)}”"
    number = float(value)  # type: ignore[arg-type]
    if number.is_integer():
        return str(int(number))
    return f"{number:.4g}"


def describe(
    feature: Feature,
    direction: Direction,
    current: object,
    required: object,
    *,
    subject: str = "this person",
) -> str:
    """The coordinator's sentence for one change: how the model's listing would differ, never
    advice to the person."""
    name = feature.name.replace("_", " ")
    if is_missing(current):
        return f"{name.capitalize()} is not recorded, so it is not considered."
    if required is None:
        return f"No change in {name} alone would cross the cut-off."
    words = DIRECTION_WORDS[direction]
    if feature.kind in ("category", "binary"):
        return (
            f"With {_shown(feature, required)} instead of {_shown(feature, current)}, "
            f"{subject} {words}."
        )
    return (
        f"If {name} were {_shown(feature, required)} instead of {_shown(feature, current)}, "
        f"{subject} {words}."
    )


def _plain(value: object) -> float | str | None:
    """A value for JSON and text: a whole number as int, a gap as ``None``."""
    if value is None or is_missing(value):
        return None
    if isinstance(value, str):
        return value
    number = float(value)  # type: ignore[arg-type]
    return int(number) if number.is_integer() else number


def changes_of(
    model: ScoringModel, answer: Answer, columns: Mapping[str, Any], index: int
) -> list[Change]:
    """Record ``index``'s changes from :func:`crossings`, ranked: those that cross first, the
    smallest change in the log-odds first; then the rest in feature order."""
    subject = "this area" if model.unit == "neighbourhood" else "this person"
    direction = answer.direction(index)
    before = float(answer.log_odds[index])
    changes = []
    for item in answer.features:
        current = _plain(np.asarray(columns[item.feature], dtype=object)[index])
        crosses = bool(item.crosses[index])
        required = _plain(item.required[index]) if crosses else None
        after = float(item.log_odds[index]) if crosses else None
        changes.append(
            Change(
                feature=item.feature,
                direction=direction,
                current=current,
                required=required,
                contribution_change=None if after is None else after - before,
                score=None if after is None else float(sigmoid(np.asarray(after))),
                text=describe(
                    model.feature(item.feature), direction, current, required, subject=subject
                ),
            )
        )
    return sorted(changes, key=lambda c: (not c.crosses, abs(c.contribution_change or 0.0)))


def what_would_change(model: ScoringModel, record: Mapping[str, Any]) -> list[Change]:
    """For one record with every feature, each actionable feature's smallest crossing change.

    Raises
    ------
    DataValidationError
        If the record does not match the model's input schema.
    """
    columns = model.score_records([dict(record)]).values
    answer = crossings(model.additive, model.features, columns, model.cutoffs[CUTOFF_BAND])
    return changes_of(model, answer, columns, 0)


def from_listing(
    model: ScoringModel, *, score: float, reasons: Sequence[Mapping[str, Any]]
) -> list[Change]:
    """What would change a stored listing, from what the queue keeps: the score and the
    reasons' features and values.

    The queue keeps no other feature values, so only actionable features among the listing's
    reasons are considered (the facts that weighed most); the listing's log-odds come from its
    score. A reason whose value is no longer valid for the model (another version's listing) is
    left out.
    """
    actionable = {f.name for f in actionable_features(model.features)}
    columns: dict[str, Any] = {}
    for reason in reasons:
        name = reason.get("feature")
        if name in actionable and name not in columns:
            feature = model.feature(str(name))
            value = reason.get("value")
            if feature.kind == "category":
                if value is None or value in feature.categories:
                    columns[str(name)] = np.asarray([value], dtype=object)
            elif value is None or isinstance(value, int | float):
                columns[str(name)] = np.asarray([np.nan if value is None else value], float)
    if not columns or not 0.0 < score < 1.0:
        return []
    log_odds = np.asarray([logit(score)])
    answer = crossings(
        model.additive, model.features, columns, model.cutoffs[CUTOFF_BAND], log_odds=log_odds
    )
    return changes_of(model, answer, columns, 0)
