"""The scoring model that is registered and served: score, percentile, band and reasons.

A :class:`ScoringModel` carries everything needed to score a record the way it was audited:
the exact additive model, the feature schema with its reason templates and services, the
validation population's score distribution (for percentiles) and the capacity cut-offs (for
bands). It is stored as one JSON document, so loading it never executes code.

:class:`model.pyfunc_wrapper.OutreachPyfunc` adapts it to MLflow's ``pyfunc`` interface; it lives
in its own module so that scoring does not import MLflow's pyfunc machinery. The name
``model.scorer.OutreachPyfunc`` still resolves (lazily), for model folders logged with it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kernel.errors import DataValidationError
from model.additive import AdditiveModel, sigmoid
from model.data import validate_features
from model.reason_codes import TOP_REASONS, Reason
from model.records import check_records
from model.spec import Capacity, ExperimentSpec, Feature, is_missing

FORMAT_VERSION = 1
QUANTILES = 1001
BANDS = ("priority", "elevated", "standard")
BAND_TEXT = {
    "priority": "within this period's outreach capacity",
    "elevated": "just above the capacity cut-off; consider if capacity allows",
    "standard": "no outreach suggested this period",
}
ARTIFACT_NAME = "scoring_model.json"
#: The pyfunc as code (MLflow "models from code"): the file MLflow runs to load the model.
PYFUNC_CODE = Path(__file__).with_name("pyfunc_code.py")
_TEXT_CACHE = 100_000  # rendered reasons kept per model (feature, value) before starting over
_COLUMNAR = 8  # from this many records on, checking and explaining column-wise is cheaper


@dataclass(frozen=True)
class ScoredBatch:
    """Scores and explanations for a batch, as arrays (rendering reasons is left to callers)."""

    scores: np.ndarray
    percentiles: np.ndarray
    bands: np.ndarray
    contributions: np.ndarray
    values: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class ScoringModel:
    """What is registered, audited and served for one candidate."""

    experiment: str
    candidate: str
    unit: str
    id_column: str
    time_column: str
    label_column: str
    label_description: str
    capacity: dict[str, float]
    features: tuple[Feature, ...]
    additive: AdditiveModel
    quantiles: tuple[float, ...]
    capacity_share: float
    cutoffs: dict[str, float]
    area_column: str | None = None

    @classmethod
    def build(
        cls,
        spec: ExperimentSpec,
        additive: AdditiveModel,
        *,
        validation_scores: np.ndarray,
        capacity_share: float,
        candidate: str,
    ) -> ScoringModel:
        """Assemble the served model from a compiled candidate and its validation scores.

        ``capacity_share`` is the share of the validation population within capacity. The band
        cut-offs are the scores at capacity (``priority``) and at three times capacity
        (``elevated``) in the validation population.
        """
        scores = np.sort(np.asarray(validation_scores, dtype=float))
        n = len(scores)
        share = capacity_share
        k = max(1, round(share * n))

        def cut(count: int) -> float:
            count = min(max(count, 1), n)
            return float(scores[n - count])

        return cls(
            experiment=spec.name,
            candidate=candidate,
            unit=spec.unit,
            id_column=spec.data.id_column,
            time_column=spec.data.time_column,
            label_column=spec.label.column,
            label_description=spec.label.description,
            capacity=spec.capacity.model_dump(exclude_none=True),
            features=spec.features,
            additive=additive,
            quantiles=tuple(np.quantile(scores, np.linspace(0, 1, QUANTILES)).tolist()),
            capacity_share=share,
            cutoffs={"priority": cut(k), "elevated": cut(3 * k)},
            area_column=spec.data.area_column,
        )

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def feature(self, name: str) -> Feature:
        return next(f for f in self.features if f.name == name)

    def check(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Validate a frame's feature columns; returns clean arrays.

        Raises
        ------
        DataValidationError
            Naming missing columns, and rows with wrong types, ranges or categories.
        """
        missing = [f for f in self.feature_names if f not in frame.columns]
        if missing:
            raise DataValidationError(
                "the records do not match the model's input schema",
                details=[f"missing columns: {', '.join(missing)}"],
            )
        problems, columns = validate_features(frame, self.features)
        if problems:
            raise DataValidationError(
                "the records do not match the model's input schema", details=problems
            )
        return columns

    def k_for(self, population: int) -> int:
        """Capacity for a period of ``population`` records, as in the experiment spec."""
        return Capacity.model_validate(self.capacity).k_for(population)

    @cached_property
    def _quantile_array(self) -> np.ndarray:
        return np.asarray(self.quantiles, dtype=float)

    @cached_property
    def _reason_texts(self) -> dict[tuple[int, object], tuple[object, str]]:
        return {}

    def percentile(self, scores: np.ndarray) -> np.ndarray:
        """Percent of the validation population scoring at or below each score."""
        position = np.searchsorted(self._quantile_array, scores, side="right")
        return np.clip(100.0 * (position - 1) / (QUANTILES - 1), 0.0, 100.0)

    def band(self, scores: np.ndarray) -> np.ndarray:
        out = np.full(len(scores), "standard", dtype=object)
        out[scores >= self.cutoffs["elevated"]] = "elevated"
        out[scores >= self.cutoffs["priority"]] = "priority"
        return out

    def score_columns(self, columns: Mapping[str, np.ndarray]) -> ScoredBatch:
        """Score already-validated columns."""
        contributions = self.additive.contributions(columns)
        scores = sigmoid(self.additive.base_value + contributions.sum(axis=1))
        return ScoredBatch(
            scores=scores,
            percentiles=self.percentile(scores),
            bands=self.band(scores),
            contributions=contributions,
            values={f: np.asarray(columns[f]) for f in self.feature_names},
        )

    def score_records(
        self, records: Sequence[Any], *, allowed_extra: Collection[str] = ()
    ) -> ScoredBatch:
        """Validate and score records given as mappings (the fast path for a few records).

        Raises
        ------
        DataValidationError
            With one detail per problem, ``records[i].field: ...``.
        """
        columns = self._plain_columns(records, allowed_extra) if len(records) >= _COLUMNAR else None
        if columns is None:  # something is off: the record-by-record check names every problem
            problems, columns = check_records(records, self.features, allowed_extra=allowed_extra)
            if problems:
                raise DataValidationError(
                    "the records do not match the model's input schema", details=problems
                )
        return self.score_columns(columns)

    def _plain_columns(
        self, records: Sequence[Any], allowed_extra: Collection[str]
    ) -> dict[str, np.ndarray] | None:
        """Columns for records that pass every check of :func:`check_records`, a column at a time.

        Returns ``None`` as soon as anything is unusual (a missing or unknown field, a wrong type,
        a value out of range, a record that is not a dict); the caller then runs
        :func:`check_records`, which accepts exactly what this accepts and names each problem.
        """
        known = set(self.feature_names).union(allowed_extra)
        for record in records:
            if type(record) is not dict or not record.keys() <= known:
                return None
        columns: dict[str, np.ndarray] = {}
        for feature in self.features:
            name = feature.name
            try:
                raw = [record[name] for record in records]
            except KeyError:
                return None
            if feature.kind == "category":
                try:
                    if not all(type(v) is str for v in raw) or not set(raw) <= set(
                        feature.categories
                    ):
                        return None
                except TypeError:
                    return None
                columns[name] = np.array(raw, dtype=object)
                continue
            if not {type(v) for v in raw} <= {int, float}:  # bool is neither
                return None
            try:
                values = np.array(raw, dtype=float)
            except OverflowError:
                return None
            if not np.isfinite(values).all():
                return None
            if feature.kind in ("count", "binary") and not (values == np.floor(values)).all():
                return None
            lower, upper = feature.lower, feature.upper
            if (lower is not None and (values < lower).any()) or (
                upper is not None and (values > upper).any()
            ):
                return None
            columns[name] = values
        return columns

    def score_frame(self, frame: pd.DataFrame) -> ScoredBatch:
        """Validate and score a frame of records."""
        return self.score_columns(self.check(frame))

    def reasons(self, batch: ScoredBatch, index: int, *, top: int = TOP_REASONS) -> list[Reason]:
        """The features that raised record ``index``'s score most, in plain words."""
        row = batch.contributions[index]
        order = np.argsort(-row, kind="stable")[:top]
        out = []
        for j in order:
            if row[j] <= 0:
                break
            feature = self.features[j]
            value = batch.values[feature.name][index]
            value = value.item() if isinstance(value, np.generic) else value
            out.append(
                Reason(
                    feature=feature.name,
                    value=value,
                    contribution=float(row[j]),
                    text=feature.render_reason(value),
                    service=feature.service,
                )
            )
        return out

    def reason_dicts(
        self,
        batch: ScoredBatch,
        rows: Sequence[int] | np.ndarray | None = None,
        *,
        top: int = TOP_REASONS,
    ) -> list[list[dict[str, object]]]:
        """:meth:`reasons` as dicts for many records at once (all of ``batch``, or ``rows``).

        Equal to ``[[r.to_dict() for r in self.reasons(batch, i)] for i in rows]``: the top
        features are picked for every record at once and each (feature, value) is rendered once.
        """
        index = np.arange(len(batch)) if rows is None else np.asarray(rows, dtype=np.intp)
        if len(index) < _COLUMNAR:
            return [[r.to_dict() for r in self.reasons(batch, i, top=top)] for i in index]
        contributions = batch.contributions[index]
        order = np.argsort(-contributions, axis=1, kind="stable")[:, :top]
        picked = np.take_along_axis(contributions, order, axis=1)
        positive = picked > 0  # sorted descending: the positive ones come first
        texts = self._reason_texts
        if len(texts) > _TEXT_CACHE:
            texts.clear()
        # Every (record, place) with a positive contribution, record by record, and what its
        # feature's value says: each distinct value of a feature rendered (or looked up) once.
        records, places = np.nonzero(positive)
        features = order[records, places]
        chosen = np.empty(len(records), dtype=np.intp)
        said: list[tuple[str, object, str, str | None]] = []
        for j in np.unique(features).tolist():
            at = np.flatnonzero(features == j)
            column = np.asarray(batch.values[self.features[j].name])[index[records[at]]]
            codes, distinct = pd.factorize(column, use_na_sentinel=False)
            chosen[at] = len(said) + codes
            said.extend(self._said(texts, j, value) for value in distinct.tolist())
        made = [
            {
                "feature": feature,
                "value": value,
                "contribution": round(amount, 6),
                "text": text,
                "service": service,
            }
            for (feature, value, text, service), amount in zip(
                map(said.__getitem__, chosen.tolist()),
                picked[records, places].tolist(),
                strict=True,
            )
        ]
        out: list[list[dict[str, object]]] = []
        start = 0
        for count in positive.sum(axis=1).tolist():
            out.append(made[start : start + count])
            start += count
        return out

    def _said(
        self, texts: dict[tuple[int, object], tuple[object, str]], j: int, value: object
    ) -> tuple[str, object, str, str | None]:
        """Feature ``j``'s name, its value as a reason shows it, the reason's text, and its
        service, for one value (rendered once per model and value)."""
        if is_missing(value):  # one key for every gap (NaN is not equal to itself)
            value = None
        key = (j, value)
        feature = self.features[j]
        found = texts.get(key)
        if found is None:
            reason = Reason(feature.name, value, 0.0, feature.render_reason(value), None)
            found = texts[key] = (reason.to_dict()["value"], reason.text)
        return feature.name, found[0], found[1], feature.service

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "experiment": self.experiment,
            "candidate": self.candidate,
            "unit": self.unit,
            "id_column": self.id_column,
            "time_column": self.time_column,
            "label_column": self.label_column,
            "label_description": self.label_description,
            "capacity": dict(self.capacity),
            "features": [_feature_dict(f) for f in self.features],
            "additive": self.additive.to_dict(),
            "quantiles": list(self.quantiles),
            "capacity_share": self.capacity_share,
            "cutoffs": dict(self.cutoffs),
            "area_column": self.area_column,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ScoringModel:
        if raw.get("format_version") != FORMAT_VERSION:
            raise DataValidationError(
                f"unsupported scoring model format {raw.get('format_version')!r}"
            )
        return cls(
            experiment=raw["experiment"],
            candidate=raw["candidate"],
            unit=raw["unit"],
            id_column=raw["id_column"],
            time_column=raw["time_column"],
            label_column=raw["label_column"],
            label_description=raw["label_description"],
            capacity={k: float(v) for k, v in raw["capacity"].items()},
            features=tuple(Feature.model_validate(f) for f in raw["features"]),
            additive=AdditiveModel.from_dict(raw["additive"]),
            quantiles=tuple(float(q) for q in raw["quantiles"]),
            capacity_share=float(raw["capacity_share"]),
            cutoffs={k: float(v) for k, v in raw["cutoffs"].items()},
            area_column=raw.get("area_column"),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True))

    @classmethod
    def load(cls, path: str | Path) -> ScoringModel:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def input_schema(self) -> list[dict[str, Any]]:
        """The features a record needs: names, kinds, ranges, allowed categories, and whether
        the value may be ``null`` (``nullable``: the feature has ``missing = "allowed"``)."""
        out = []
        for f in self.features:
            entry: dict[str, Any] = {
                "name": f.name,
                "kind": f.kind,
                "description": f.description,
                "nullable": f.allows_missing,
            }
            if f.kind == "category":
                entry["categories"] = list(f.categories)
            else:
                entry["min"], entry["max"] = f.lower, f.upper
            out.append(entry)
        return out


def _feature_dict(feature: Feature) -> dict[str, Any]:
    """A feature as the artifact stores it; the gap keys only when gaps are allowed, and
    ``actionable``/``source`` only when set, so models of specs without them keep the bytes they
    always had."""
    exclude = {"actionable", "source"} - {
        k for k in ("actionable", "source") if getattr(feature, k)
    }
    if not feature.allows_missing:
        exclude |= {"missing", "reason_missing"}
    return feature.model_dump(exclude=exclude)


def scored_frame(model: ScoringModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Score a frame and return one row per record: id, score, percentile, band, reasons (JSON)."""
    batch = model.score_frame(frame)
    reasons = [json.dumps(r) for r in model.reason_dicts(batch)]
    out = pd.DataFrame(
        {
            "score": batch.scores,
            "percentile": batch.percentiles,
            "band": batch.bands.astype(str),
            "reasons": reasons,
        }
    )
    if model.id_column in frame.columns:
        out.insert(0, model.id_column, frame[model.id_column].to_numpy())
    return out


def __getattr__(name: str) -> Any:
    """``OutreachPyfunc``, imported on first use: model folders logged before it moved to
    :mod:`model.pyfunc_wrapper` run ``from model.scorer import OutreachPyfunc`` when loaded."""
    if name == "OutreachPyfunc":
        from model.pyfunc_wrapper import OutreachPyfunc

        return OutreachPyfunc
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
