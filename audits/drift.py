"""Drift after release: a reference profile recorded at release, and a scored period against it.

At release, :func:`reference_profile` summarises the data the release audited (the raw feature
values the served model reads, the chosen model's scores, and the sensitive attributes) into a
small JSON document stored in the signed audit report under ``"reference_profile"``. After
release, :func:`drift` compares a scored period with that profile, overall and within every
group of every sensitive attribute, and says in plain words where the population moved.

Bins. Numeric features (``count``, ``number``) and the score are cut at their reference deciles
(at most nine edges, observed values, deduplicated, rounded to six decimals as reports store
numbers) into right-closed bins ``(-inf, e1], (e1, e2], ..., (ek, inf)``: the outer bins are open,
so a period's values beyond the reference's range still land somewhere. ``binary`` and
``category`` features keep one bucket per value seen in the reference and one ``(unseen)``
bucket for values it never saw. Every feature has a ``(missing)`` bucket (NaN, None, or for
numeric features a value that is not a number). The profile keeps counts, not shares, overall
and per group, so that two-sample tests are possible.

Comparisons. Each comparison reports:

- the population stability index ``PSI = sum((p - q) * ln(p / q))`` over the bins, with ``q`` the
  reference's and ``p`` the period's shares; shares below :data:`PSI_FLOOR` are raised to it
  (without renormalising) so that an empty bin adds a finite amount. Every term is non-negative,
  so PSI is too. Bands: ``stable`` below 0.1, ``moderate`` from 0.1, ``major`` from 0.25;
- a two-sample distribution test suited to the kind: Pearson's chi-square test of homogeneity
  on the bin counts (no continuity correction; bins empty on both sides are dropped) for
  ``count``, ``binary`` and ``category``; for ``number`` and the score a Kolmogorov-Smirnov test
  whose statistic is the largest gap between the two empirical CDFs at the reference's 101
  quantile points (0%, 1%, ..., 100%; observed values, with the reference's counts between them
  overall and per group). The gap never exceeds the exact two-sample statistic and falls short
  of it by at most the reference's mass between two neighbouring points (1% overall; a group's
  own share there within a group), so no raw value is stored and the test still sees shifts
  inside a decile that the PSI bins hide. It is a two-sample test (the reference is a sample
  too, not a known CDF); its p-value is the asymptotic one SciPy's
  ``ks_2samp(method="asymp")`` gives.

Reading them. The PSI band drives every warning; the test only says whether a shift could be
chance. With a large period (a million rows) every p-value is tiny even for a negligible shift,
and rows are person-months (one person appears in several months of the reference), which makes
the p-values optimistic still; with hundreds of comparisons a few small p-values are expected by
chance. So a test's rejection alone never warns; it matters in small groups, where it says
whether a large PSI could be noise. Groups with fewer than ``min_group_size`` people in the
reference or in the period are reported as too few people to judge and never warn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal

import numpy as np
import pandas as pd

from audits.tails import chi2_sf, kstwo_sf
from kernel.errors import BadInputError
from model.words import unit_words

__all__ = [
    "CONTINUOUS",
    "KINDS",
    "MAJOR",
    "MODERATE",
    "PSI_FLOOR",
    "Comparison",
    "DistributionTest",
    "DriftReport",
    "FeatureDrift",
    "drift",
    "psi",
    "psi_band",
    "reference_profile",
]

Band = Literal["stable", "moderate", "major"]

#: The profile layout :func:`drift` reads.
PROFILE_VERSION = 1
#: Feature kinds (as in experiment specs), and the kinds compared as continuous.
KINDS = ("count", "number", "binary", "category")
CONTINUOUS = ("number", "score")
_CATEGORICAL = ("binary", "category")
#: Quantile levels of the bin edges (deciles) and of the CDF points the KS test reads.
_BIN_LEVELS = np.arange(1, 10) / 10
_CDF_LEVELS = np.linspace(0.0, 1.0, 101)
#: Reports round numbers to six decimals; edges are rounded first so that the stored counts are
#: the counts of the stored edges.
_DECIMALS = 6
#: The smallest share PSI uses for a bin (an empty bin counts as 0.01% of the rows).
PSI_FLOOR = 1e-4
#: PSI band limits: moderate from 0.1, major from 0.25.
MODERATE, MAJOR = 0.1, 0.25
#: p-values below this are said to show a shift that is not chance.
_ALPHA = 0.05
MISSING, UNSEEN = "(missing)", "(unseen)"
CHI_SQUARE, KOLMOGOROV_SMIRNOV = "chi-square", "Kolmogorov-Smirnov"
SCORE = "score"
_EXAMPLES = 5


# ----------------------------------------------------------------------------- values


def _key(value: Any) -> str:
    """A value as the profile names it: whole numbers plainly (1.0 and 1 are "1"), text as is."""
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    return str(value)


def _codes(values: Any) -> tuple[np.ndarray, list[str]]:
    """Integer codes into distinct keys (``-1`` for missing), factorised once, not per row."""
    # A plain array is factorised as it is (a Series of Python strings would first be converted).
    codes, uniques = pd.factorize(values if isinstance(values, pd.Series) else np.asarray(values))
    keys = [_key(u) for u in uniques]
    index: dict[str, int] = {}
    remap = np.array([index.setdefault(k, len(index)) for k in keys], dtype=np.int64)
    merged = np.where(codes >= 0, remap[np.maximum(codes, 0)] if len(remap) else 0, -1)
    return merged.astype(np.int64), list(index)


def _numbers(values: Any) -> np.ndarray:
    """Floats, NaN for missing values and for anything that is not a number."""
    series = pd.to_numeric(pd.Series(values, copy=False), errors="coerce")
    return series.to_numpy(dtype=float, na_value=np.nan)


def _rounded(values: np.ndarray) -> list[float]:
    return sorted({round(float(v), _DECIMALS) for v in values})


def _quantile_points(values: np.ndarray, levels: np.ndarray) -> list[float]:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return []
    return _rounded(np.quantile(finite, levels, method="inverted_cdf"))


def _numeric_buckets(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Right-closed bins of ``edges`` (open outer bins); the last bucket is missing."""
    buckets = np.searchsorted(np.asarray(edges, dtype=float), values, side="left")
    buckets[np.isnan(values)] = len(edges) + 1
    return buckets


def _category_buckets(values: Any, categories: Sequence[str]) -> tuple[np.ndarray, dict[str, int]]:
    """Bucket per reference category, then unseen, then missing; and the unseen values' counts."""
    codes, keys = _codes(values)
    unseen, missing = len(categories), len(categories) + 1
    index = {c: i for i, c in enumerate(categories)}
    lookup = np.array([index.get(k, unseen) for k in keys] + [missing], dtype=np.int64)
    buckets = lookup[codes]  # code -1 (missing) reads the last entry
    found = np.bincount(codes[codes >= 0], minlength=len(keys)) if keys else np.zeros(0, int)
    others = {k: int(found[i]) for i, k in enumerate(keys) if k not in index and found[i]}
    return buckets, others


@dataclass(frozen=True)
class _Groups:
    """One sensitive attribute's rows as group codes."""

    codes: np.ndarray
    names: list[str]
    sizes: np.ndarray


def _groups(values: Any, order: Sequence[str] = ()) -> _Groups:
    """Group codes, ``order``'s groups first (the reference's), then any others in sorted order;
    missing values form the group ``(missing)``."""
    codes, keys = _codes(values)
    if (codes < 0).any():
        if MISSING not in keys:
            keys.append(MISSING)
        codes = np.where(codes < 0, keys.index(MISSING), codes)
    names = list(order) + sorted(k for k in keys if k not in set(order))
    position = {name: i for i, name in enumerate(names)}
    lookup = np.array([position[k] for k in keys], dtype=np.int64)
    codes = lookup[codes] if len(lookup) else codes
    return _Groups(codes, names, np.bincount(codes, minlength=len(names)))


def _counts(buckets: np.ndarray, width: int, groups: _Groups) -> np.ndarray:
    """Bucket counts per group, shape (groups, width), in one pass over the rows."""
    flat = np.bincount(groups.codes * width + buckets, minlength=len(groups.names) * width)
    return flat.reshape(len(groups.names), width)


def _check_lengths(rows: int, scores: np.ndarray, sensitive: Mapping[str, Any]) -> None:
    problems = []
    if len(scores) != rows:
        problems.append(f"scores: {len(scores)} values for {rows} rows")
    problems += [
        f"sensitive attribute '{a}': {len(v)} values for {rows} rows"
        for a, v in sensitive.items()
        if len(v) != rows
    ]
    if problems:
        raise BadInputError("the inputs do not line up row by row", details=problems)


# ----------------------------------------------------------------------------- the profile


def _labels(edges: Sequence[float]) -> list[str]:
    if not edges:
        return ["any value", MISSING]
    inner = [f"({a:g}, {b:g}]" for a, b in pairwise(edges)]
    return [f"≤ {edges[0]:g}", *inner, f"> {edges[-1]:g}", MISSING]


def _by_group(table: np.ndarray, groups: _Groups) -> dict[str, list[int]]:
    return {name: [int(c) for c in table[i]] for i, name in enumerate(groups.names)}


def _entry(kind: str, column: Any, groups: Mapping[str, _Groups]) -> dict[str, Any]:
    """One feature's (or the score's) reference bins, counts, and CDF points."""
    entry: dict[str, Any] = {"kind": kind}
    values: np.ndarray | None = None
    if kind in _CATEGORICAL:
        _, keys = _codes(column)
        categories = sorted(keys)
        buckets, _ = _category_buckets(column, categories)
        entry |= {"categories": categories, "labels": [*categories, UNSEEN, MISSING]}
    else:
        values = _numbers(column)
        edges = _quantile_points(values, _BIN_LEVELS)
        buckets = _numeric_buckets(values, edges)
        entry |= {"edges": edges, "labels": _labels(edges)}
    width = len(entry["labels"])
    entry["counts"] = [int(c) for c in np.bincount(buckets, minlength=width)]
    entry["by_group"] = {a: _by_group(_counts(buckets, width, g), g) for a, g in groups.items()}
    if kind in CONTINUOUS and values is not None:
        grid = _quantile_points(values, _CDF_LEVELS)
        points = _numeric_buckets(values, grid)
        # counts[j]: values in (points[j-1], points[j]], then those above the last point; the
        # missing ones (the last bucket) are left out.
        entry["cdf"] = {
            "points": grid,
            "counts": [int(c) for c in np.bincount(points, minlength=len(grid) + 2)[:-1]],
            "by_group": {
                a: {n: c[:-1] for n, c in _by_group(_counts(points, len(grid) + 2, g), g).items()}
                for a, g in groups.items()
            },
        }
    return entry


def reference_profile(
    features: pd.DataFrame,
    kinds: Mapping[str, str],
    scores: np.ndarray,
    sensitive: Mapping[str, np.ndarray],
) -> dict[str, Any]:
    """The drift reference of the data a release audited: bins and counts, no raw values.

    Parameters
    ----------
    features : DataFrame
        The raw feature values as the served model receives them (``Dataset.features`` of the
        audited validation data); other columns are ignored.
    kinds : mapping of str to str
        Each profiled feature's kind (``count``, ``number``, ``binary`` or ``category``), in
        the experiment's feature order.
    scores : ndarray
        The released model's scores on the same rows.
    sensitive : mapping of str to ndarray
        Each sensitive attribute's value per row: every bin is also counted per group.

    Returns
    -------
    dict
        JSON-ready: ``version``, ``rows``, ``attributes`` (each attribute's groups and their
        sizes), ``features`` (keyed by name: each feature's ``kind``; ``edges`` or
        ``categories``; bucket ``labels``; ``counts`` overall and ``by_group``; for ``number``
        a ``cdf`` of 101 quantile points with counts overall and by group) and ``score`` (as a
        ``number`` feature, of kind ``score``). About 40 kB (compact JSON) for 21 features and
        20 groups.

    Raises
    ------
    BadInputError
        If there are no rows, a kind is unknown, a feature column is absent, or the inputs
        differ in length.
    """
    rows = len(features)
    _check_lengths(rows, np.asarray(scores), sensitive)
    problems = [
        f"features.{name}: unknown kind '{kind}' (expected one of {', '.join(KINDS)})"
        for name, kind in kinds.items()
        if kind not in KINDS
    ]
    problems += [f"features.{name}: no such column" for name in kinds if name not in features]
    if rows == 0:
        problems.append("no rows: a drift reference needs the data the release audited")
    if problems:
        raise BadInputError("cannot build the drift reference profile", details=problems)
    groups = {a: _groups(v) for a, v in sensitive.items()}
    return {
        "version": PROFILE_VERSION,
        "rows": rows,
        "attributes": {
            a: {"groups": g.names, "rows": [int(n) for n in g.sizes]} for a, g in groups.items()
        },
        "features": {name: _entry(kind, features[name], groups) for name, kind in kinds.items()},
        SCORE: _entry(SCORE, np.asarray(scores, dtype=float), groups),
    }


# ----------------------------------------------------------------------------- statistics


def psi(reference: Sequence[float] | np.ndarray, period: Sequence[float] | np.ndarray) -> float:
    """Population stability index of two count (or share) vectors over the same bins.

    ``sum((p - q) * ln(p / q))`` with ``q`` the reference's and ``p`` the period's shares, each
    share raised to at least :data:`PSI_FLOOR` (no renormalisation), so that a bin empty on one
    side adds a finite amount. Each term is non-negative, and so is the sum.

    Raises
    ------
    ValueError
        If the vectors differ in length or either sums to zero.
    """
    q, p = np.asarray(reference, dtype=float), np.asarray(period, dtype=float)
    if q.shape != p.shape:
        raise ValueError(f"bins differ: {q.shape} against {p.shape}")
    if q.sum() <= 0 or p.sum() <= 0:
        raise ValueError("PSI needs at least one row on each side")
    q = np.maximum(q / q.sum(), PSI_FLOOR)
    p = np.maximum(p / p.sum(), PSI_FLOOR)
    return float(np.sum((p - q) * np.log(p / q)))


def psi_band(value: float) -> Band:
    """``stable`` below 0.1, ``moderate`` from 0.1, ``major`` from 0.25."""
    if value >= MAJOR:
        return "major"
    return "moderate" if value >= MODERATE else "stable"


@dataclass(frozen=True)
class DistributionTest:
    """A two-sample test of one comparison: its name, statistic, p-value (and degrees of
    freedom for the chi-square)."""

    name: str
    statistic: float
    p_value: float
    dof: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "statistic": _finite(self.statistic),
            "p_value": _finite(self.p_value),
            "dof": self.dof,
        }


def _chi_square(reference: np.ndarray, period: np.ndarray) -> DistributionTest:
    """Pearson's chi-square test of homogeneity of two count vectors (bins empty on both
    sides dropped; no continuity correction)."""
    table = np.vstack([reference, period]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:  # both in one bin: the binned distributions are the same
        return DistributionTest(CHI_SQUARE, 0.0, 1.0, 0)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    dof = table.shape[1] - 1
    return DistributionTest(CHI_SQUARE, statistic, chi2_sf(statistic, dof), dof)


def _kolmogorov_smirnov(reference: np.ndarray, period: np.ndarray) -> DistributionTest | None:
    """Two-sample KS from counts at the reference's CDF points (the last entry counts values
    above the last point); ``None`` when either side has no values."""
    n, m = int(reference.sum()), int(period.sum())
    if n == 0 or m == 0 or len(reference) < 2:
        return None
    gaps = np.cumsum(reference[:-1]) / n - np.cumsum(period[:-1]) / m
    statistic = float(np.abs(gaps).max())
    effective = max(1, round(n * m / (n + m)))
    return DistributionTest(KOLMOGOROV_SMIRNOV, statistic, kstwo_sf(statistic, effective))


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


# ----------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class Comparison:
    """A period against the reference, overall (``attribute`` None) or within one group."""

    attribute: str | None
    group: str | None
    n_reference: int
    n_period: int
    judged: bool
    psi: float | None
    band: Band | None
    test: DistributionTest | None
    note: str | None = None

    @property
    def scope(self) -> str:
        return "overall" if self.attribute is None else f"for {self.attribute} “{self.group}”"

    def as_dict(self) -> dict[str, Any]:
        return {
            "attribute": self.attribute,
            "group": self.group,
            "n_reference": self.n_reference,
            "n_period": self.n_period,
            "judged": self.judged,
            "psi": _finite(self.psi),
            "band": self.band,
            "test": self.test.as_dict() if self.test else None,
            "note": self.note,
        }


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's (or the score's) comparisons; ``present`` False when the period lacks it."""

    name: str
    kind: str
    present: bool
    overall: Comparison | None = None
    groups: tuple[Comparison, ...] = ()
    #: Period rows with a value the reference never saw, and the commonest such values.
    unseen: int = 0
    unseen_examples: tuple[str, ...] = ()
    #: Period rows with a missing value (or, for numeric features, not a number).
    missing: int = 0

    @property
    def comparisons(self) -> tuple[Comparison, ...]:
        return ((self.overall,) if self.overall else ()) + self.groups

    @property
    def subject(self) -> str:
        return "the score" if self.kind == SCORE else f"feature {self.name}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "present": self.present,
            "overall": self.overall.as_dict() if self.overall else None,
            "groups": [c.as_dict() for c in self.groups],
            "unseen": self.unseen,
            "unseen_examples": list(self.unseen_examples),
            "missing": self.missing,
        }


@dataclass(frozen=True)
class DriftReport:
    """A period's drift from the release's reference, with the board's warnings and notes.

    ``warnings`` name every judged major shift (PSI ≥ 0.25) and every feature the period lacks;
    ``notes`` name moderate shifts, values never seen in the reference and attributes the period
    lacks.
    """

    reference_rows: int
    period_rows: int
    min_group_size: int
    score: FeatureDrift
    features: tuple[FeatureDrift, ...]
    warnings: tuple[str, ...]
    notes: tuple[str, ...]
    missing_attributes: tuple[str, ...] = ()

    @property
    def any_major(self) -> bool:
        """Whether any judged comparison (overall or a large enough group) shifted majorly."""
        return any(
            c.judged and c.band == "major"
            for f in (self.score, *self.features)
            for c in f.comparisons
        )

    @property
    def missing_features(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if not f.present)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (None, never NaN)."""
        return {
            "version": PROFILE_VERSION,
            "reference_rows": self.reference_rows,
            "period_rows": self.period_rows,
            "min_group_size": self.min_group_size,
            "psi_bands": {"moderate": MODERATE, "major": MAJOR},
            "psi_floor": PSI_FLOOR,
            "any_major": self.any_major,
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            "missing_features": list(self.missing_features),
            "missing_attributes": list(self.missing_attributes),
            "score": self.score.as_dict(),
            "features": {f.name: f.as_dict() for f in self.features},
        }


def _p_words(test: DistributionTest | None) -> str:
    if test is None:
        return "no distribution test was possible"
    p = test.p_value
    shown = "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
    if p < _ALPHA:
        return f"the distribution test agrees ({shown})"
    return f"the distribution test cannot rule out chance ({shown})"


def _feature_drift(
    name: str,
    entry: Mapping[str, Any],
    column: Any,
    attributes: Mapping[str, tuple[Mapping[str, Any], _Groups]],
    min_group_size: int,
    many: str = "people",
) -> FeatureDrift:
    """One feature's period counts (overall and per group, one pass each) against the profile."""
    kind = entry["kind"]
    width = len(entry["labels"])
    others: dict[str, int] = {}
    cdf = entry.get("cdf")
    points: np.ndarray | None = None
    if kind in _CATEGORICAL:
        buckets, others = _category_buckets(column, entry["categories"])
    else:
        values = _numbers(column)
        buckets = _numeric_buckets(values, entry["edges"])
        if cdf is not None:
            points = _numeric_buckets(values, cdf["points"])
    # The CDF counts: one per point, one above the last point (the missing bucket is dropped).
    cdf_width = len(cdf["points"]) + 2 if cdf is not None else 0

    def compare(
        attribute: str | None,
        group: str | None,
        sizes: tuple[int, int],
        counts: tuple[Sequence[int] | np.ndarray, np.ndarray],
        cdf_counts: tuple[Sequence[int] | None, np.ndarray | None],
    ) -> Comparison:
        n_reference, n_period = sizes
        judged = n_reference >= min_group_size and n_period >= min_group_size
        note = None
        if not judged:
            note = (
                f"too few {many} to judge (fewer than {min_group_size} {many}: {n_reference} in "
                f"the reference, {n_period} in the period)"
            )
        reference, period = np.asarray(counts[0], dtype=np.int64), counts[1]
        value: float | None = None
        test: DistributionTest | None = None
        if reference.sum() > 0 and period.sum() > 0:
            value = psi(reference, period)
            if kind not in CONTINUOUS:
                test = _chi_square(reference, period)
            elif cdf_counts[1] is not None:
                stored = cdf_counts[0]
                test = _kolmogorov_smirnov(
                    np.zeros(cdf_width - 1, np.int64) if stored is None else np.asarray(stored),
                    cdf_counts[1][: cdf_width - 1],
                )
        band = psi_band(value) if judged and value is not None else None
        return Comparison(attribute, group, n_reference, n_period, judged, value, band, test, note)

    overall = np.bincount(buckets, minlength=width)
    whole = compare(
        None,
        None,
        (int(sum(entry["counts"])), len(buckets)),
        (entry["counts"], overall),
        (
            cdf["counts"] if cdf is not None else None,
            np.bincount(points, minlength=cdf_width) if points is not None else None,
        ),
    )
    comparisons = []
    for attribute, (info, groups) in attributes.items():
        table = _counts(buckets, width, groups)
        cdf_table = _counts(points, cdf_width, groups) if points is not None else None
        reference_sizes = dict(zip(info["groups"], info["rows"], strict=True))
        by_group = entry["by_group"].get(attribute, {})
        cdf_by_group = cdf["by_group"].get(attribute, {}) if cdf is not None else {}
        for i, (group, size) in enumerate(zip(groups.names, groups.sizes, strict=True)):
            comparisons.append(
                compare(
                    attribute,
                    group,
                    (int(reference_sizes.get(group, 0)), int(size)),
                    (by_group.get(group, np.zeros(width, np.int64)), table[i]),
                    (cdf_by_group.get(group), None if cdf_table is None else cdf_table[i]),
                )
            )
    examples = sorted(others, key=lambda k: (-others[k], k))[:_EXAMPLES]
    return FeatureDrift(
        name,
        kind,
        True,
        whole,
        tuple(comparisons),
        unseen=sum(others.values()),
        unseen_examples=tuple(examples),
        missing=int(overall[-1]),
    )


def _sentences(item: FeatureDrift, rows: int) -> tuple[list[str], list[str]]:
    """The board's warnings and notes about one feature (or the score)."""
    if not item.present:
        return [
            f"{item.subject}: absent from the period's data; it could not be compared (and the "
            "model cannot score without it)"
        ], []
    warnings: list[str] = []
    notes: list[str] = []
    for c in item.comparisons:
        if not c.judged or c.band in (None, "stable"):
            continue
        line = f"{item.subject}: PSI {c.psi:.2f} ({c.band} shift) {c.scope}; {_p_words(c.test)}"
        (warnings if c.band == "major" else notes).append(line)
    if item.unseen:
        shown = ", ".join(repr(v) for v in item.unseen_examples)
        notes.append(
            f"{item.subject}: {item.unseen:,} of the period's {rows:,} rows "
            f"({item.unseen / max(rows, 1):.1%}) have values the reference never saw "
            f"(commonest: {shown})"
        )
    return warnings, notes


def drift(
    profile: Mapping[str, Any],
    features: pd.DataFrame,
    scores: np.ndarray,
    sensitive: Mapping[str, np.ndarray],
    *,
    min_group_size: int = 100,
    unit: str | None = None,
) -> DriftReport:
    """Compare a scored period with a release's reference profile, overall and per group.

    The PSI band drives the board's warnings (major) and notes (moderate); the distribution
    test beside it says whether a shift could be chance. With a large period every p-value is
    tiny, even for shifts too small to matter (and rows repeated per person make them smaller
    still), so a rejection alone never warns; in small groups a large PSI with a large p-value
    may be noise. Groups with fewer than ``min_group_size`` people in the reference or the
    period are "too few people to judge" and never warn.

    Parameters
    ----------
    profile : mapping
        A :func:`reference_profile` (as built, or as read back from a report's JSON).
    features : DataFrame
        The period's raw feature values. A profiled feature that is absent is reported as
        missing (a warning), not an error; values of a category never seen in the reference go
        to its ``(unseen)`` bucket (and a note names them); NaN to its ``(missing)`` bucket.
    scores : ndarray
        The period's scores from the released model.
    sensitive : mapping of str to ndarray
        The period's sensitive attributes; profiled attributes not given are named in a note,
        others are ignored, and groups the reference never saw are too few to judge.
    min_group_size : int
        The fewest people a group needs, on each side, to be judged.
    unit : str or None
        What the rows count (``"neighbourhood"``: areas), for the notes' words; people when
        ``None``.

    Returns
    -------
    DriftReport

    Raises
    ------
    BadInputError
        If the profile is of an unknown version, or the inputs differ in length.
    """
    if profile.get("version") != PROFILE_VERSION:
        raise BadInputError(
            f"drift reference profile version {profile.get('version')!r} is not supported "
            f"(expected {PROFILE_VERSION})"
        )
    rows = len(features)
    many = unit_words(unit).many
    _check_lengths(rows, np.asarray(scores), sensitive)
    attributes = {
        a: (info, _groups(sensitive[a], info["groups"]))
        for a, info in profile["attributes"].items()
        if a in sensitive
    }
    missing_attributes = tuple(a for a in profile["attributes"] if a not in sensitive)
    score = _feature_drift(
        SCORE, profile[SCORE], np.asarray(scores, dtype=float), attributes, min_group_size, many
    )
    items = tuple(
        _feature_drift(name, entry, features[name], attributes, min_group_size, many)
        if name in features
        else FeatureDrift(name, entry["kind"], False)
        for name, entry in profile["features"].items()
    )
    warnings: list[str] = []
    notes: list[str] = []
    for item in (score, *items):
        found, noted = _sentences(item, rows)
        warnings += found
        notes += noted
    notes += [
        f"sensitive attribute {a}: not given for the period; its groups were not compared"
        for a in missing_attributes
    ]
    return DriftReport(
        reference_rows=int(profile["rows"]),
        period_rows=rows,
        min_group_size=min_group_size,
        score=score,
        features=items,
        warnings=tuple(warnings),
        notes=tuple(notes),
        missing_attributes=missing_attributes,
    )
