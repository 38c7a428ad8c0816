"""Candidate model families: scikit-learn pipelines that are additive in their log-odds.

``logistic``: one-hot categories and standardised numbers into an L2 logistic regression.
``boosted_additive``: ordinal-coded categories and raw numbers into gradient-boosted trees with
``interaction_cst="no_interactions"``, so every tree reads one feature and the model stays a sum
of per-feature functions (a boosted generalised additive model) that can be explained exactly.

Gaps (features with ``missing = "allowed"``; when a spec has none, the pipelines are exactly as
before): the logistic family imputes a number's gap with its training median and adds a missing
indicator (0/1, unscaled) for it, so a gap's effect is ``slope * median + indicator weight``;
a category's gap becomes its own one-hot level, :data:`~model.spec.MISSING_LEVEL`, which is the
indicator. The boosted family uses the trees' native missing-value support: NaN numbers and
NaN category codes are passed through, and each split learns on which side gaps go (including the
split "gaps apart from every value"), so a gap has its own learned value in every tree.

Sensitive attributes never reach these pipelines: they select the spec's features by name.
Under ``training.treated = "indicator"`` a pipeline also reads the treatment indicator column,
passed through unchanged as the last model input (see :mod:`model.feedback`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from kernel.errors import SpecError
from model.spec import MISSING_LEVEL, TREATMENT_INDICATOR, ExperimentSpec, Feature


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


def gap_numeric_features(spec: FeatureSchema) -> list[str]:
    """Numeric features that may be missing (each has a missing indicator if logistic)."""
    return [f.name for f in spec.features if f.kind != "category" and f.allows_missing]


def _encoded_categories(feature: Feature) -> list[str]:
    """A category feature's one-hot levels in the logistic family (a gap is the last level)."""
    extra = [MISSING_LEVEL] if feature.allows_missing else []
    return [*feature.categories, *extra]


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
    gap_numeric = gap_numeric_features(spec)
    gap_categories = any(spec.feature(name).allows_missing for name in categorical)
    if config.family == "logistic":
        params = {"C": 1.0, **config.params}
        class_weight = params.pop("class_weight", None)
        numbers: Any = StandardScaler()
        if gap_numeric:  # median first (a no-op on complete columns), then the same scaling
            impute = SimpleImputer(strategy="median", keep_empty_features=True)
            numbers = Pipeline([("impute", impute), ("scale", numbers)])
        levels = [_encoded_categories(spec.feature(name)) for name in categorical]
        encode: Any = OneHotEncoder(categories=levels, dtype=float)
        if gap_categories:
            fill = SimpleImputer(strategy="constant", fill_value=MISSING_LEVEL)
            encode = Pipeline([("impute", fill), ("encode", encode)])
        gaps = [("missing", MissingIndicator(features="all"), gap_numeric)] if gap_numeric else []
        preprocess = ColumnTransformer(
            [
                ("numbers", numbers, numeric),
                ("categories", encode, categorical),
                *gaps,
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
        # Gaps stay NaN (validation has refused every unknown category, so only gaps are
        # "unknown" here) and the trees route them natively.
        unknown: dict[str, Any] = (
            {"handle_unknown": "use_encoded_value", "unknown_value": np.nan}
            if gap_categories
            else {}
        )
        ordinal = OrdinalEncoder(categories=categories, dtype=float, **unknown)
        preprocess = ColumnTransformer(
            [
                ("numbers", "passthrough", numeric),
                ("categories", ordinal, categorical),
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
