"""Candidate model families: scikit-learn pipelines that are additive in their log-odds.

``logistic``: one-hot categories and standardised numbers into an L2 logistic regression.
``boosted_additive``: ordinal-coded categories and raw numbers into gradient-boosted trees with
``interaction_cst="no_interactions"``, so every tree reads one feature and the model stays a sum
of per-feature functions (a boosted generalised additive model) that can be explained exactly.

Sensitive attributes never reach these pipelines: they select the spec's features by name.
Under ``training.treated = "indicator"`` a pipeline also reads the treatment indicator column,
passed through unchanged as the last model input (see :mod:`model.feedback`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from model.errors import SpecError
from model.spec import TREATMENT_INDICATOR, ExperimentSpec, Feature


class FeatureSchema(Protocol):
    """Anything that lists features and finds one by name (a spec, a scoring model)."""

    @property
    def features(self) -> Sequence[Feature]: ...

    def feature(self, name: str) -> Feature: ...


@dataclass(frozen=True)
class CandidateConfig:
    """One grid point of one spec candidate."""

    name: str
    family: str
    params: dict[str, Any]

    @property
    def label(self) -> str:
        if not self.params:
            return self.name
        settings = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.name}[{settings}]"


def expand(spec: ExperimentSpec) -> list[CandidateConfig]:
    """Every grid point of every candidate in the spec, named uniquely."""
    out = []
    for candidate in spec.candidates:
        points = candidate.points()
        for i, params in enumerate(points):
            name = candidate.name if len(points) == 1 else f"{candidate.name}_{i + 1}"
            out.append(CandidateConfig(name, candidate.family, params))
    return out


def numeric_features(spec: FeatureSchema) -> list[str]:
    return [f.name for f in spec.features if f.kind != "category"]


def category_features(spec: FeatureSchema) -> list[str]:
    return [f.name for f in spec.features if f.kind == "category"]


def build_pipeline(
    config: CandidateConfig, spec: FeatureSchema, *, seed: int, treatment_indicator: bool = False
) -> Pipeline:
    """An unfitted pipeline for one candidate, reading only the spec's features.

    Parameters
    ----------
    config : CandidateConfig
    spec : FeatureSchema
    seed : int
        Random seed of the boosted family.
    treatment_indicator : bool
        Also read :data:`~model.spec.TREATMENT_INDICATOR` and pass it unchanged to the model as
        its last input (every input frame must then have that column, at fit and predict time).
    """
    numeric = numeric_features(spec)
    categorical = category_features(spec)
    categories = [list(spec.feature(name).categories) for name in categorical]
    # Unscaled (0 to 1) in both families: at 0 it adds nothing to a logistic model's log-odds.
    indicator = [("treatment", "passthrough", [TREATMENT_INDICATOR])] if treatment_indicator else []
    if config.family == "logistic":
        params = {"C": 1.0, **config.params}
        class_weight = params.pop("class_weight", None)
        preprocess = ColumnTransformer(
            [
                ("numbers", StandardScaler(), numeric),
                ("categories", OneHotEncoder(categories=categories, dtype=float), categorical),
                *indicator,
            ],
            verbose_feature_names_out=False,
        )
        estimator: Any = LogisticRegression(
            C=float(params["C"]),
            class_weight=None if class_weight in (None, "none") else class_weight,
            max_iter=2000,
        )
    elif config.family == "boosted_additive":
        params = {"learning_rate": 0.1, "max_iter": 150, "max_leaf_nodes": 8, **config.params}
        preprocess = ColumnTransformer(
            [
                ("numbers", "passthrough", numeric),
                ("categories", OrdinalEncoder(categories=categories, dtype=float), categorical),
                *indicator,
            ],
            verbose_feature_names_out=False,
        )
        estimator = HistGradientBoostingClassifier(
            interaction_cst="no_interactions",
            early_stopping=False,
            categorical_features=None,
            random_state=seed,
            **params,
        )
    else:
        raise SpecError(f"unknown model family {config.family!r}")
    return Pipeline([("features", preprocess), ("model", estimator)])
