"""Fairness mitigations that need no sensitive attribute at scoring time.

``reweighing``: Kamiran and Calders' reweighing. Each (group, outcome) cell of the training rows is
weighted so that outcome and group are independent in the weighted data; a group whose crises are
under-recorded has its recorded crises weighted up. The model is an ordinary logistic regression.

``exponentiated_gradient``: Fairlearn's ``ExponentiatedGradient`` reduction with
``TruePositiveRateParity`` (equal opportunity) over class-balanced logistic regressions. Its
solution is a weighted mixture of linear models; the served model is the mixture's weighted mean
of their log-odds (itself one linear model), so it stays deterministic and exactly explainable.
Being a different classifier from the randomized mixture, it is audited like every candidate.

``equal_opportunity``: label-bias reweighting at the operating point (after Jiang and Nachum,
"Identifying and Correcting Label Bias in Machine Learning", 2020). Starting from reweighing, the
recorded crises of each group are weighted up or down, refit after refit, until every group's
recall among the top k of each training period matches the overall recall. It targets the
decision actually taken (top k at capacity), which the reductions above, built for a fixed
threshold, do not; Fairlearn has no method for it, so it is written here and audited like the rest.

All are trained as extra candidates of the logistic family and go through the same calibration,
compilation, metrics, audit and gate as the plain ones.
"""

from __future__ import annotations

import numpy as np
from fairlearn.reductions import ExponentiatedGradient, TruePositiveRateParity
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from audits.groups import JOIN
from model.candidates import CandidateConfig
from model.capacity_metrics import top_k_mask
from model.data import Dataset
from model.spec import ExperimentSpec
from model.train import Fitter


def reweighing_weights(groups: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Weights making outcome independent of group: P(group) P(label) / P(group, label).

    Parameters
    ----------
    groups : ndarray
        Each row's group.
    labels : ndarray of 0/1

    Returns
    -------
    ndarray of float, mean 1 over the rows.
    """
    _, codes = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    labels = np.asarray(labels, dtype=np.intp)
    n = len(labels)
    cells = np.bincount(codes * 2 + labels, minlength=(codes.max() + 1) * 2).astype(float)
    p_group = np.bincount(codes).astype(float) / n
    p_label = np.bincount(labels, minlength=2).astype(float) / n
    expected = p_group[codes] * p_label[labels]
    observed = cells[codes * 2 + labels] / n
    return expected / observed


def joint_groups(dataset: Dataset, attributes: tuple[str, ...], mask: np.ndarray) -> np.ndarray:
    """Each row's group in the intersection of ``attributes``."""
    parts = [np.asarray(dataset.sensitive(a)[mask], dtype=str) for a in attributes]
    joined = parts[0]
    for part in parts[1:]:
        joined = np.char.add(np.char.add(joined, JOIN), part)
    return joined


def _reweighing_fitter(attributes: tuple[str, ...]) -> Fitter:
    def fit(pipeline: Pipeline, dataset: Dataset, mask: np.ndarray) -> None:
        labels = dataset.labels[mask]
        weights = reweighing_weights(joint_groups(dataset, attributes, mask), labels)
        pipeline.fit(dataset.features.loc[mask], labels, model__sample_weight=weights)

    return fit


def _exponentiated_gradient_fitter(attributes: tuple[str, ...]) -> Fitter:
    def fit(pipeline: Pipeline, dataset: Dataset, mask: np.ndarray) -> None:
        preprocess = pipeline.named_steps["features"]
        model: LogisticRegression = pipeline.named_steps["model"]
        transformed = preprocess.fit_transform(dataset.features.loc[mask])
        labels = dataset.labels[mask]
        reduction = ExponentiatedGradient(
            LogisticRegression(C=model.C, class_weight="balanced", max_iter=2000),
            constraints=TruePositiveRateParity(difference_bound=0.01),
            max_iter=30,
        )
        reduction.fit(
            transformed, labels, sensitive_features=joint_groups(dataset, attributes, mask)
        )
        weights = np.asarray(reduction.weights_, dtype=float)
        predictors = list(reduction.predictors_)
        coef = sum(w * p.coef_ for w, p in zip(weights, predictors, strict=True))
        intercept = sum(w * p.intercept_ for w, p in zip(weights, predictors, strict=True))
        # The collapsed mixture is itself a fitted logistic model: same classes, averaged terms.
        model.classes_ = np.array([0, 1])
        model.coef_ = np.asarray(coef, dtype=float).reshape(1, -1)
        model.intercept_ = np.asarray(intercept, dtype=float).reshape(1)
        model.n_features_in_ = transformed.shape[1]
        model.n_iter_ = np.array([0])

    return fit


def _equal_opportunity_fitter(
    attributes: tuple[str, ...], spec: ExperimentSpec, *, rounds: int = 8, min_positives: int = 20
) -> Fitter:
    def fit(pipeline: Pipeline, dataset: Dataset, mask: np.ndarray) -> None:
        features = dataset.features.loc[mask]
        labels = dataset.labels[mask]
        periods, ids = dataset.periods[mask], dataset.ids[mask]
        base = reweighing_weights(joint_groups(dataset, attributes, mask), labels)
        # One multiplier per group of each attribute; a crisis's weight is their product
        # (raking), so every attribute's groups are balanced at once.
        coded = []
        for attribute in attributes:
            groups = np.asarray(dataset.sensitive(attribute)[mask], dtype=str)
            levels, codes = np.unique(groups, return_inverse=True)
            positives = np.bincount(codes, weights=labels, minlength=len(levels))
            coded.append((codes, positives, positives >= min_positives, np.ones(len(levels))))

        def weights() -> np.ndarray:
            factor = np.ones(len(labels))
            for codes, _, _, multiplier in coded:
                factor *= multiplier[codes]
            return base * np.where(labels == 1, factor, 1.0)

        for _ in range(rounds):
            pipeline.fit(features, labels, model__sample_weight=weights())
            selected = top_k_mask(
                pipeline.decision_function(features), periods, ids, spec.capacity.k_for
            )
            settled = True
            for codes, positives, adjustable, multiplier in coded:
                hits = np.bincount(codes, weights=labels * selected, minlength=len(positives))
                with np.errstate(divide="ignore", invalid="ignore"):
                    recall = hits / positives
                overall = hits.sum() / positives.sum()
                gap = np.where(adjustable & (recall > 0), overall / recall, 1.0)
                settled &= bool(np.all(np.abs(gap - 1.0) < 0.03))
                np.clip(multiplier * gap, 0.25, 8.0, out=multiplier)
            if settled:
                return
        pipeline.fit(features, labels, model__sample_weight=weights())

    return fit


def mitigated_candidates(spec: ExperimentSpec) -> tuple[list[CandidateConfig], dict[str, Fitter]]:
    """The spec's mitigation methods as extra candidates with their fitting steps."""
    if spec.mitigation is None:
        return [], {}
    attributes = spec.mitigation.all_attributes
    configs: list[CandidateConfig] = []
    fitters: dict[str, Fitter] = {}
    for method in spec.mitigation.methods:
        name = f"logistic_{method}"
        configs.append(CandidateConfig(name, "logistic", {"C": 1.0}))
        if method == "reweighing":
            fitters[name] = _reweighing_fitter(attributes)
        elif method == "equal_opportunity":
            fitters[name] = _equal_opportunity_fitter(attributes, spec)
        else:
            fitters[name] = _exponentiated_gradient_fitter(attributes)
    return configs, fitters
