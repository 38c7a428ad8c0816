"""The scoring model that is registered and served: score, percentile, band and reasons.

A :class:`ScoringModel` carries everything needed to score a record the way it was audited:
the exact additive model, the feature schema with its reason templates and services, the
validation population's score distribution (for percentiles) and the capacity cut-offs (for
bands). It is stored as one JSON document, so loading it never executes code.

:class:`OutreachPyfunc` adapts it to MLflow's ``pyfunc`` interface.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from model.additive import AdditiveModel, sigmoid
from model.data import validate_features
from model.errors import DataValidationError
from model.explain import TOP_REASONS, Reason
from model.records import check_records
from model.spec import Capacity, ExperimentSpec, Feature

FORMAT_VERSION = 1
QUANTILES = 1001
BANDS = ("priority", "elevated", "standard")
BAND_TEXT = {
    "priority": "within this period's outreach capacity",
    "elevated": "just above the capacity cut-off; consider if capacity allows",
    "standard": "no outreach suggested this period",
}
ARTIFACT_NAME = "scoring_model.json"


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

    def percentile(self, scores: np.ndarray) -> np.ndarray:
        """Percent of the validation population scoring at or below each score."""
        position = np.searchsorted(np.asarray(self.quantiles), scores, side="right")
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
        problems, columns = check_records(records, self.features, allowed_extra=allowed_extra)
        if problems:
            raise DataValidationError(
                "the records do not match the model's input schema", details=problems
            )
        return self.score_columns(columns)

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
            "features": [f.model_dump() for f in self.features],
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
        """The features a record needs: names, kinds, ranges, allowed categories."""
        out = []
        for f in self.features:
            entry: dict[str, Any] = {"name": f.name, "kind": f.kind, "description": f.description}
            if f.kind == "category":
                entry["categories"] = list(f.categories)
            else:
                entry["min"], entry["max"] = f.lower, f.upper
            out.append(entry)
        return out


def scored_frame(model: ScoringModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Score a frame and return one row per record: id, score, percentile, band, reasons (JSON)."""
    batch = model.score_frame(frame)
    reasons = [
        json.dumps([r.to_dict() for r in model.reasons(batch, i)]) for i in range(len(batch))
    ]
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


class OutreachPyfunc(PythonModel):
    """MLflow pyfunc adapter: loads the JSON scoring model, returns scored rows."""

    def load_context(self, context: Any) -> None:
        self.model = ScoringModel.load(context.artifacts["scoring_model"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return scored_frame(self.model, model_input)
