"""Additive models: a score that is a sum of one function per feature, explained exactly.

Every candidate family the project trains (regularised logistic regression, gradient-boosted trees
without feature interactions) is additive in its log-odds. :class:`AdditiveModel` is that
model in its plain form: one term per original feature, an intercept, and the Platt calibration
fitted after training. Its contributions add up, with the base value, to the calibrated log-odds
exactly, and it scores with numpy alone (no pandas, no pipeline) so one record costs microseconds.

It is stored as JSON, so loading a served model never executes code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Literal

import numpy as np

from kernel.errors import BadInputError
from model.spec import is_missing

TermKind = Literal["linear", "step", "table"]
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Term:
    """One feature's additive function, centred on the training population's mean.

    ``linear``: ``slope * x + offset``. ``step``: ``values[i]`` where ``i`` counts the thresholds
    strictly below ``x`` (the trees' "go left when x <= threshold" rule). ``table``: one value per
    category, in ``categories`` order.

    ``missing`` is the term's value at a gap (NaN, or a missing category) for a feature with
    ``missing = "allowed"``: its own learned value, attributed to the feature like any other;
    ``None`` when the feature refuses gaps.
    """

    feature: str
    kind: TermKind
    center: float = 0.0
    slope: float = 0.0
    offset: float = 0.0
    thresholds: tuple[float, ...] = ()
    values: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    missing: float | None = None

    @cached_property
    def index(self) -> dict[str, int]:
        """Category to position, for tables."""
        return {c: i for i, c in enumerate(self.categories)}

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """The centred term at ``x`` (floats with NaN for gaps, or category codes for tables,
        where a gap's code is ``len(categories)``)."""
        if self.kind == "table":
            gap = () if self.missing is None else (self.missing,)
            return np.asarray((*self.values, *gap), dtype=float)[x] - self.center
        if self.kind == "linear":
            out = self.slope * x + (self.offset - self.center)
        else:
            table = np.asarray(self.values, dtype=float) - self.center
            out = table[np.searchsorted(np.asarray(self.thresholds), x, side="left")]
        if self.missing is not None:
            out = np.where(np.isnan(x), self.missing - self.center, out)
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"feature": self.feature, "kind": self.kind, "center": self.center}
        if self.kind == "linear":
            out.update(slope=self.slope, offset=self.offset)
        elif self.kind == "step":
            out.update(thresholds=list(self.thresholds), values=list(self.values))
        else:
            out.update(categories=list(self.categories), values=list(self.values))
        if self.missing is not None:
            out["missing"] = self.missing
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Term:
        return cls(
            feature=str(raw["feature"]),
            kind=raw["kind"],
            center=float(raw.get("center", 0.0)),
            slope=float(raw.get("slope", 0.0)),
            offset=float(raw.get("offset", 0.0)),
            thresholds=tuple(float(t) for t in raw.get("thresholds", ())),
            values=tuple(float(v) for v in raw.get("values", ())),
            categories=tuple(str(c) for c in raw.get("categories", ())),
            missing=None if raw.get("missing") is None else float(raw["missing"]),
        )


@dataclass(frozen=True)
class AdditiveModel:
    """An exact glass-box form of a trained, calibrated candidate.

    ``logit(score) = calibration_slope * (intercept + sum(terms)) + calibration_intercept``,
    which is ``base_value + sum(contributions)``.
    """

    terms: tuple[Term, ...]
    intercept: float
    calibration_slope: float = 1.0
    calibration_intercept: float = 0.0
    family: str = ""

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(t.feature for t in self.terms)

    @property
    def base_value(self) -> float:
        """The calibrated log-odds at the centre of the training population."""
        raw = self.intercept + sum(t.center for t in self.terms)
        return self.calibration_slope * raw + self.calibration_intercept

    def encode(self, term: Term, column: Any) -> np.ndarray:
        """A feature's raw values as ``term`` reads them: floats (NaN for gaps), or category
        codes for a table (a gap's code is ``len(categories)``)."""
        if term.kind != "table":
            return np.asarray(column, dtype=float)
        # A dict lookup: faster than pd.Categorical at every size measured (100 to 100,000
        # records: 0.02 against 0.9 ms, 13 against 31 ms), as pandas now infers Arrow strings.
        index = term.index
        try:
            return np.fromiter((index[c] for c in column), dtype=np.intp, count=len(column))
        except KeyError as err:
            if term.missing is None or not is_missing(err.args[0]):
                raise BadInputError(f"'{term.feature}': unknown category {err.args[0]!r}") from err
        gap = len(term.categories)  # a column with gaps: the slower lookup, gaps to their code
        values = list(column)
        codes = [gap if is_missing(c) else index.get(c, -1) for c in values]
        if -1 in codes:
            bad = values[codes.index(-1)]
            raise BadInputError(f"'{term.feature}': unknown category {bad!r}")
        return np.asarray(codes, dtype=np.intp)

    def contributions(self, columns: Mapping[str, Any]) -> np.ndarray:
        """Per-record, per-feature contributions to the calibrated log-odds.

        Parameters
        ----------
        columns : mapping of feature name to array-like
            One array per feature (a DataFrame works); categories as strings.

        Returns
        -------
        ndarray of shape (n_records, n_features)
            Columns in :attr:`features` order; each row sums, with :attr:`base_value`, to the
            record's calibrated log-odds.
        """
        parts = [t.evaluate(self.encode(t, columns[t.feature])) for t in self.terms]
        return self.calibration_slope * np.column_stack(parts)

    def log_odds(self, columns: Mapping[str, Any]) -> np.ndarray:
        """Calibrated log-odds per record."""
        return self.base_value + self.contributions(columns).sum(axis=1)

    def raw(self, columns: Mapping[str, Any]) -> np.ndarray:
        """The uncalibrated model output (the trained estimator's decision function)."""
        parts = [t.evaluate(self.encode(t, columns[t.feature])) for t in self.terms]
        return self.intercept + sum(t.center for t in self.terms) + np.sum(parts, axis=0)

    def score(self, columns: Mapping[str, Any]) -> np.ndarray:
        """Calibrated probabilities per record."""
        return sigmoid(self.log_odds(columns))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "family": self.family,
            "intercept": self.intercept,
            "calibration": {
                "slope": self.calibration_slope,
                "intercept": self.calibration_intercept,
            },
            "terms": [t.to_dict() for t in self.terms],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> AdditiveModel:
        if raw.get("format_version") != FORMAT_VERSION:
            raise BadInputError(f"unsupported additive model format {raw.get('format_version')!r}")
        return cls(
            terms=tuple(Term.from_dict(t) for t in raw["terms"]),
            intercept=float(raw["intercept"]),
            calibration_slope=float(raw["calibration"]["slope"]),
            calibration_intercept=float(raw["calibration"]["intercept"]),
            family=str(raw.get("family", "")),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AdditiveModel:
        return cls.from_dict(json.loads(text))

    def with_centers(self, columns: Mapping[str, Any]) -> AdditiveModel:
        """A copy whose terms are centred on the mean over ``columns`` (the training population)."""
        centred = []
        for term in self.terms:
            raw_term = replace(term, center=0.0)  # fields only (not the cached category index)
            mean = float(np.mean(raw_term.evaluate(self.encode(term, columns[term.feature]))))
            centred.append(replace(term, center=mean))
        return AdditiveModel(
            terms=tuple(centred),
            intercept=self.intercept,
            calibration_slope=self.calibration_slope,
            calibration_intercept=self.calibration_intercept,
            family=self.family,
        )


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, stable for large magnitudes."""
    return np.exp(-np.logaddexp(0.0, -x))
