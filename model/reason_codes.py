"""Exact explanations: fitted pipelines turned into additive models, and reason codes.

:func:`compile_additive` reads a fitted, calibrated candidate and returns its
:class:`~model.additive.AdditiveModel`. Logistic terms come from the coefficients; boosted terms
from the trees' split thresholds, with each interval's value read back through the estimator's
own ``decision_function``, so the result equals scikit-learn's output (tests check 1e-9).
A pipeline trained with the treatment indicator (``training.treated = "indicator"``) is compiled
with the indicator fixed at 0: the additive model is the untreated risk, exactly, and has no term
for the indicator, so it is never a reason and never an input.

A gap (a feature with ``missing = "allowed"``) is attributed to its own feature like any other
value: logistic terms carry ``slope * median + indicator weight`` (numbers) or the weight of the
missing level (categories) as their ``missing`` value; boosted terms read the trees' value at NaN
back from ``decision_function``. Contributions plus the base still equal the log-odds exactly.

A :class:`Reason` is one feature that raised a score, in the spec's plain words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kernel.errors import SpecError
from model.additive import AdditiveModel, Term
from model.spec import ExperimentSpec, is_missing

if TYPE_CHECKING:  # scikit-learn only where a fitted pipeline is compiled (training), not scoring
    import pandas as pd
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.pipeline import Pipeline

TOP_REASONS = 3


def _indicator_inputs(pipeline: Pipeline) -> int:
    """1 if the pipeline passes the treatment indicator to its model (as the last input), else 0."""
    preprocess = pipeline.named_steps["features"]
    return sum(1 for name, _, _ in preprocess.transformers if name == "treatment")


def _logistic_terms(pipeline: Pipeline, spec: ExperimentSpec) -> tuple[list[Term], float]:
    from sklearn.pipeline import Pipeline

    from model.candidates import category_features, gap_numeric_features, numeric_features

    preprocess, estimator = pipeline.named_steps["features"], pipeline.named_steps["model"]
    coef = estimator.coef_.ravel()
    # The treatment indicator's coefficient, last, is left out: at 0 it adds nothing.
    expected = len(preprocess.get_feature_names_out())
    if coef.size != expected:
        raise SpecError(f"the model has {coef.size} inputs where {expected} were expected")
    numbers = preprocess.named_transformers_["numbers"]
    scaler, medians = numbers, None
    if isinstance(numbers, Pipeline):  # a spec with gaps: median imputation before scaling
        scaler = numbers.named_steps["scale"]
        medians = np.nan_to_num(numbers.named_steps["impute"].statistics_)
    numeric = numeric_features(spec)
    categorical = category_features(spec)
    # Layout: numbers, category levels (a gap the last level), missing indicators, treatment.
    indicators = len(numeric) + sum(
        len(spec.feature(name).categories) + spec.feature(name).allows_missing
        for name in categorical
    )
    indicator_of = {name: indicators + i for i, name in enumerate(gap_numeric_features(spec))}
    terms: list[Term] = []
    for i, name in enumerate(numeric):
        slope = coef[i] / scaler.scale_[i]
        offset = -slope * scaler.mean_[i]
        missing = None
        if name in indicator_of and medians is not None:
            missing = float(slope * medians[i] + offset + coef[indicator_of[name]])
        terms.append(Term(name, "linear", slope=slope, offset=offset, missing=missing))
    position = len(numeric)
    for name in categorical:
        feature = spec.feature(name)
        categories = feature.categories
        values = coef[position : position + len(categories)]
        position += len(categories)
        missing = None
        if feature.allows_missing:
            missing = float(coef[position])
            position += 1
        terms.append(
            Term(name, "table", categories=categories, values=tuple(values), missing=missing)
        )
    return terms, float(estimator.intercept_[0])


def _tree_thresholds(estimator: object, n_columns: int) -> list[np.ndarray]:
    found: list[set[float]] = [set() for _ in range(n_columns)]
    for iteration in estimator._predictors:  # type: ignore[attr-defined]
        (tree,) = iteration
        nodes = tree.nodes[~tree.nodes["is_leaf"].astype(bool)]
        used = set(nodes["feature_idx"].tolist())
        if len(used) > 1:
            raise SpecError("a tree splits on several features; the model is not additive")
        for column, threshold in zip(nodes["feature_idx"], nodes["num_threshold"], strict=True):
            # An infinite threshold is the split "gaps apart from every value": every number
            # goes left, which the grid's last probe (inf) already reads.
            if np.isfinite(threshold):
                found[int(column)].add(float(threshold))
    return [np.array(sorted(t)) for t in found]


def _boosted_terms(pipeline: Pipeline, spec: ExperimentSpec) -> tuple[list[Term], float]:
    from model.candidates import category_features, numeric_features

    estimator = pipeline.named_steps["model"]
    numeric = numeric_features(spec)
    categorical = category_features(spec)
    columns = numeric + categorical
    inputs = len(columns) + _indicator_inputs(pipeline)
    if estimator.n_features_in_ != inputs:
        raise SpecError(
            f"the model has {estimator.n_features_in_} inputs where {inputs} were expected"
        )
    thresholds = _tree_thresholds(estimator, inputs)
    # Probe the estimator one feature at a time around a reference row; additivity makes
    # raw(x) = raw(ref) + sum_j [raw(ref with x_j) - raw(ref)] exact. The treatment indicator,
    # after the features, stays 0 in every probe: the terms and base are the untreated risk.
    # A feature that may be missing gets one more probe, at NaN: the trees' learned gap value.
    reference = np.zeros(inputs)
    grids: list[np.ndarray] = []
    gaps = [spec.feature(name).allows_missing for name in columns]
    for j, name in enumerate(columns):
        if name in categorical:
            grid = np.arange(len(spec.feature(name).categories), dtype=float)
        else:
            grid = np.append(thresholds[j], np.inf)
        grids.append(np.append(grid, np.nan) if gaps[j] else grid)
    probes = np.repeat(reference[None, :], sum(len(g) for g in grids) + 1, axis=0)
    row = 1
    for j, grid in enumerate(grids):
        probes[row : row + len(grid), j] = grid
        row += len(grid)
    raw = estimator.decision_function(probes)
    base = float(raw[0])
    terms: list[Term] = []
    row = 1
    for j, (name, grid) in enumerate(zip(columns, grids, strict=True)):
        values = tuple(float(v) for v in raw[row : row + len(grid)] - base)
        row += len(grid)
        missing = None
        if gaps[j]:
            values, missing = values[:-1], values[-1]
        if name in categorical:
            categories = spec.feature(name).categories
            terms.append(Term(name, "table", categories=categories, values=values, missing=missing))
        else:
            cuts = tuple(thresholds[j].tolist())
            terms.append(Term(name, "step", thresholds=cuts, values=values, missing=missing))
    return terms, base


def compile_additive(
    pipeline: Pipeline,
    calibrator: CalibratedClassifierCV | None,
    spec: ExperimentSpec,
    *,
    family: str,
    background: pd.DataFrame,
) -> AdditiveModel:
    """The exact additive form of a fitted candidate.

    Parameters
    ----------
    pipeline : Pipeline
        A fitted candidate from :func:`model.candidates.build_pipeline`.
    calibrator : CalibratedClassifierCV, optional
        A sigmoid calibration fitted on the frozen pipeline; ``None`` keeps raw log-odds.
    spec : ExperimentSpec
        The experiment; gives feature order and categories.
    family : str
        The candidate family.
    background : DataFrame
        The training population; terms are centred on its mean so contributions read as
        "compared with a typical person in the training data".

    A pipeline that reads the treatment indicator is compiled with the indicator at 0 (its
    calibration should then be fitted on untreated rows): the result scores the risk without
    help, has a term for each spec feature only, and its base value is that risk at the
    background's centre, so contributions still add up exactly to every served score.
    """
    if family == "logistic":
        terms, intercept = _logistic_terms(pipeline, spec)
    elif family == "boosted_additive":
        terms, intercept = _boosted_terms(pipeline, spec)
    else:
        raise SpecError(f"cannot explain model family {family!r} exactly")
    slope, offset = 1.0, 0.0
    if calibrator is not None:
        (calibrated,) = calibrator.calibrated_classifiers_
        (sigmoid_fit,) = calibrated.calibrators
        # scikit-learn's Platt form is p = 1 / (1 + exp(a * f + b)).
        slope, offset = -float(sigmoid_fit.a_), -float(sigmoid_fit.b_)
    order = {name: i for i, name in enumerate(spec.feature_names)}
    terms.sort(key=lambda t: order[t.feature])
    model = AdditiveModel(
        terms=tuple(terms),
        intercept=intercept,
        calibration_slope=slope,
        calibration_intercept=offset,
        family=family,
    )
    return model.with_centers(background)


@dataclass(frozen=True)
class Reason:
    """One feature that raised a score, in plain words."""

    feature: str
    value: object
    contribution: float
    text: str
    service: str | None

    def to_dict(self) -> dict[str, object]:
        value = None if is_missing(self.value) else self.value  # a gap is JSON null
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return {
            "feature": self.feature,
            "value": value,
            "contribution": round(self.contribution, 6),
            "text": self.text,
            "service": self.service,
        }
