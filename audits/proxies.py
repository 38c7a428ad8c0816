"""Proxy check: how well can a sensitive attribute be predicted from the model's features?

A model that never sees a sensitive attribute can still act on it through features that carry it.
For each attribute a simple classifier (logistic regression on the model's own features) is
cross-validated; its ROC AUC (one-vs-rest, macro-averaged across groups) says how recoverable the
attribute is, and its largest standardised coefficients say which features carry it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline

from model.candidates import CandidateConfig, FeatureSchema, build_pipeline

_MAX_ROWS = 30_000
_TOP_FEATURES = 3


@dataclass(frozen=True)
class ProxyResult:
    """How recoverable one sensitive attribute is from the features."""

    attribute: str
    roc_auc: float
    carriers: tuple[tuple[str, float], ...]
    rows: int

    def as_dict(self) -> dict[str, object]:
        return {
            "attribute": self.attribute,
            "roc_auc": round(self.roc_auc, 6),
            "carried_by": [{"feature": f, "weight": round(w, 6)} for f, w in self.carriers],
            "rows": self.rows,
        }


def _carriers(pipeline: Pipeline, spec: FeatureSchema) -> tuple[tuple[str, float], ...]:
    preprocess, model = pipeline.named_steps["features"], pipeline.named_steps["model"]
    names = list(preprocess.get_feature_names_out())
    weight = np.abs(model.coef_).max(axis=0)
    per_feature: dict[str, float] = {}
    for column, value in zip(names, weight, strict=True):
        feature = next(
            (f.name for f in spec.features if column == f.name or column.startswith(f.name + "_")),
            column,
        )
        per_feature[feature] = max(per_feature.get(feature, 0.0), float(value))
    ranked = sorted(per_feature.items(), key=lambda item: -item[1])
    return tuple(ranked[:_TOP_FEATURES])


def check_proxies(
    features: pd.DataFrame,
    sensitive: dict[str, np.ndarray],
    spec: FeatureSchema,
    *,
    seed: int = 0,
) -> list[ProxyResult]:
    """Cross-validated recoverability of each sensitive attribute from ``features``.

    Attributes whose every group has fewer than three rows in the sample are skipped (they cannot
    be cross-validated); rare groups are folded into one "other" class for the classifier.
    """
    rng = np.random.default_rng(seed)
    rows = np.arange(len(features))
    if len(rows) > _MAX_ROWS:
        rows = np.sort(rng.choice(rows, _MAX_ROWS, replace=False))
    sample = features.iloc[rows].reset_index(drop=True)
    out = []
    for attribute, values in sensitive.items():
        target = pd.Series(np.asarray(values, dtype=str)[rows])
        counts = target.value_counts()
        target = target.where(target.map(counts) >= 10, "(other)")
        if target.nunique() < 2:
            continue
        config = CandidateConfig("proxy", "logistic", {"C": 1.0})
        pipeline = build_pipeline(config, spec, seed=seed)
        pipeline.set_params(model=LogisticRegression(C=1.0, max_iter=1000))
        folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
        probabilities = cross_val_predict(
            pipeline, sample, target, cv=folds, method="predict_proba"
        )
        classes = np.unique(target)
        if len(classes) == 2:
            auc = roc_auc_score(target == classes[1], probabilities[:, 1])
        else:
            auc = roc_auc_score(target, probabilities, multi_class="ovr", average="macro")
        pipeline.fit(sample, target)
        out.append(ProxyResult(attribute, float(auc), _carriers(pipeline, spec), len(sample)))
    return out
