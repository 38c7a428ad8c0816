"""Training: every candidate on every rolling temporal split, calibrated, measured at capacity.

For each split the candidate is fitted on the earlier training periods, Platt-calibrated on the
last training period, and measured on the later validation period. The model kept for release is
the one trained on the latest split, so its validation period is the held-out later data that
the audit reads. Baselines (random and a one-feature heuristic) are measured on the same lists.

Rows a past accepted offer may have changed (:mod:`model.feedback`) are handled as the spec's
``training.treated`` says: ``"exclude"`` leaves them out of fitting and calibration;
``"indicator"`` fits every row with a treatment indicator (1 on treated rows, a share on the rows
just before them, see :func:`model.feedback.treatment_exposure`), calibrates where it is 0 and
compiles the served model with it at 0, so scores and their calibration are those of untreated
people; ``"keep"`` fits and calibrates on them as if untreated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from kernel.errors import BadInputError
from model.additive import AdditiveModel
from model.candidates import CandidateConfig, build_pipeline, expand
from model.capacity_metrics import (
    CapacityMetrics,
    capacity_metrics,
    mean_metrics,
    random_baseline,
    top_k_mask,
)
from model.data import Dataset, TemporalSplit, temporal_splits
from model.feedback import TreatmentSummary, treated_rows, treatment_indicator, with_indicator
from model.reason_codes import compile_additive
from model.scorer import ScoringModel
from model.spec import ExperimentSpec

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class FittedCandidate:
    """A candidate trained on one split."""

    pipeline: Pipeline
    additive: AdditiveModel
    validation_scores: np.ndarray
    metrics: CapacityMetrics


@dataclass
class CandidateResult:
    """One candidate across all splits; ``final`` is the latest split's model."""

    config: CandidateConfig
    per_split: list[CapacityMetrics]
    final: FittedCandidate
    scoring_model: ScoringModel
    version: str | None = None
    #: The registered model folder's manifest (path -> sha256), once registered.
    files: dict[str, str] | None = None

    @property
    def mean(self) -> dict[str, float | None]:
        return mean_metrics(self.per_split)


@dataclass
class BaselineResult:
    name: str
    per_split: list[CapacityMetrics]

    @property
    def mean(self) -> dict[str, float | None]:
        return mean_metrics(self.per_split)


@dataclass
class TrainingResult:
    """Everything a training run produced, ready to log and to audit."""

    spec: ExperimentSpec
    data_fingerprint: str
    splits: list[TemporalSplit]
    candidates: list[CandidateResult]
    baselines: dict[str, BaselineResult]
    validation: Dataset
    treatment: TreatmentSummary

    def best(self) -> CandidateResult:
        """The candidate with the highest mean precision at capacity (ties: mean recall)."""
        return max(
            self.candidates,
            key=lambda c: (c.mean["precision_at_k"] or 0.0, c.mean["recall_at_k"] or 0.0),
        )


def _labels_ok(labels: np.ndarray, where: str) -> None:
    if labels.min() == labels.max():
        raise BadInputError(
            f"{where} has only label {int(labels[0])}; the model needs both outcomes to learn from"
        )


#: A custom fitting step: fits ``pipeline`` in place on the rows of ``dataset`` in ``mask``.
Fitter = Callable[[Pipeline, Dataset, np.ndarray], None]


def fit_candidate(
    config: CandidateConfig,
    spec: ExperimentSpec,
    dataset: Dataset,
    split: TemporalSplit,
    *,
    fitter: Fitter | None = None,
    exclude: np.ndarray | None = None,
    indicator: np.ndarray | None = None,
) -> FittedCandidate:
    """Fit, calibrate, compile and measure one candidate on one split.

    Parameters
    ----------
    fitter : callable, optional
        Fits the pipeline on the split's fit rows instead of a plain ``pipeline.fit`` (used by
        fairness mitigations that reweight or constrain training). The fitted pipeline must stay
        in its family's form so that it can be explained exactly.
    exclude : array of bool, optional
        Rows left out of fitting and calibration (the feedback-loop guard's treated rows);
        validation still reads every row of its periods.
    indicator : array of float, optional
        The treatment indicator per row (:func:`model.feedback.treatment_indicator`): fitting
        reads it as one more input, calibration reads only the rows where it is 0, and the
        compiled model scores with it at 0, so its scores are calibrated for untreated people.
        A ``fitter`` then receives a dataset whose ``features`` end with the indicator column
        (:class:`model.feedback.IndicatedDataset`).
    """
    periods = dataset.periods
    fit_mask = np.isin(periods, split.fit_periods)
    cal_mask = periods == split.calibration_period
    if exclude is not None:
        fit_mask &= ~exclude
        cal_mask &= ~exclude
    if indicator is not None:
        # Calibrate where the indicator is 0, as it always is when the model is served.
        cal_mask &= indicator == 0
        dataset = with_indicator(dataset, indicator)
    val_mask = np.isin(periods, split.validation_periods)
    features = dataset.features
    labels = dataset.labels
    _labels_ok(labels[fit_mask], f"the training data ({split.describe()})")
    _labels_ok(labels[cal_mask], "the calibration period")
    pipeline = build_pipeline(
        config, spec, seed=spec.seed, treatment_indicator=indicator is not None
    )
    if fitter is None:
        pipeline.fit(features.loc[fit_mask], labels[fit_mask])
    else:
        fitter(pipeline, dataset, fit_mask)
    calibrator = CalibratedClassifierCV(FrozenEstimator(pipeline), method="sigmoid")
    calibrator.fit(features.loc[cal_mask], labels[cal_mask])
    if indicator is not None:
        features = features[list(spec.feature_names)]  # what is compiled, measured and served
    additive = compile_additive(
        pipeline,
        calibrator,
        spec,
        family=config.family,
        background=features.loc[fit_mask],
    )
    validation = features.loc[val_mask]
    scores = additive.score(validation)
    selected = top_k_mask(scores, periods[val_mask], dataset.ids[val_mask], spec.capacity.k_for)
    metrics = capacity_metrics(labels[val_mask], scores, selected)
    return FittedCandidate(pipeline, additive, scores, metrics)


def _heuristic(spec: ExperimentSpec, dataset: Dataset, split: TemporalSplit) -> CapacityMetrics:
    val_mask = np.isin(dataset.periods, split.validation_periods)
    values = dataset.frame.loc[val_mask, spec.baselines.heuristic_feature].to_numpy(dtype=float)
    selected = top_k_mask(
        values, dataset.periods[val_mask], dataset.ids[val_mask], spec.capacity.k_for
    )
    return capacity_metrics(dataset.labels[val_mask], values, selected, probabilities=False)


def _random(spec: ExperimentSpec, dataset: Dataset, split: TemporalSplit) -> CapacityMetrics:
    val_mask = np.isin(dataset.periods, split.validation_periods)
    counts = np.unique(dataset.periods[val_mask], return_counts=True)[1]
    selected = sum(spec.capacity.k_for(int(n)) for n in counts)
    return random_baseline(dataset.labels[val_mask], selected)


def _fit_each(
    tasks: list[tuple[CandidateConfig, TemporalSplit]],
    spec: ExperimentSpec,
    dataset: Dataset,
    *,
    fitters: dict[str, Fitter],
    exclude: np.ndarray | None,
    indicator: np.ndarray | None,
    workers: int,
    progress: Progress,
) -> Iterator[FittedCandidate]:
    """Each (candidate, split) fitted, in order, with a line of progress before and after each;
    with ``workers`` > 1, in that many processes of one native thread each (the results come
    back in order, so the lines read as in one process)."""
    total = len(tasks)

    def fit(config: CandidateConfig, split: TemporalSplit) -> FittedCandidate:
        return fit_candidate(
            config,
            spec,
            dataset,
            split,
            fitter=fitters.get(config.name),
            exclude=exclude,
            indicator=indicator,
        )

    def measured(fitted: FittedCandidate) -> str:
        return (
            f"        precision@k {fitted.metrics.precision_at_k:.3f}  "
            f"recall@k {fitted.metrics.recall_at_k:.3f}  "
            f"AUC {fitted.metrics.roc_auc or float('nan'):.3f}"
        )

    if workers <= 1 or total <= 1:
        for step, (config, split) in enumerate(tasks, start=1):
            progress(f"[{step}/{total}] {config.label}: {split.describe()}")
            fitted = fit(config, split)
            progress(measured(fitted))
            yield fitted
        return
    from joblib import Parallel, delayed, parallel_config

    progress(f"fitting {total} candidate splits in {workers} processes")
    with parallel_config(backend="loky", inner_max_num_threads=1):
        done = Parallel(n_jobs=workers, return_as="generator")(
            delayed(fit_candidate)(
                config,
                spec,
                dataset,
                split,
                fitter=fitters.get(config.name),
                exclude=exclude,
                indicator=indicator,
            )
            for config, split in tasks
        )
        for step, ((config, split), fitted) in enumerate(zip(tasks, done, strict=True), 1):
            progress(f"[{step}/{total}] {config.label}: {split.describe()}")
            progress(measured(fitted))
            yield fitted


def train(
    spec: ExperimentSpec,
    dataset: Dataset,
    *,
    progress: Progress = _quiet,
    configs: list[CandidateConfig] | None = None,
    fitters: dict[str, Fitter] | None = None,
    workers: int = 1,
) -> TrainingResult:
    """Train every candidate of ``spec`` on rolling temporal splits of ``dataset``.

    Parameters
    ----------
    spec : ExperimentSpec
    dataset : Dataset
        Validated data with labels.
    progress : callable
        Receives one line per step (the CLI prints them on stderr).
    configs : list of CandidateConfig, optional
        Candidates to train instead of the spec's grid.
    fitters : dict, optional
        Custom fitting steps by candidate name (see :func:`fit_candidate`).
    workers : int
        Processes fitting the candidates' splits at once (1: in this process). Each fit is
        independent and seeded: the results are those of one process.

    Rows whose outcome a past accepted offer may have changed (see :mod:`model.feedback`) are
    left out of fitting and calibration when the spec's ``training.treated`` is ``"exclude"``,
    and fitted with a treatment indicator (left out of calibration, fixed at 0 when scoring) when
    it is ``"indicator"``; the result's ``treatment`` says how many there were and what was done.

    Raises
    ------
    BadInputError
        If the data spans too few periods or a period lacks one of the outcomes.
    """
    splits = temporal_splits(
        dataset.periods,
        splits=spec.validation.splits,
        horizon=spec.label.horizon_months,
        step=spec.validation.step_months,
        min_train_periods=spec.validation.min_train_periods,
        window=spec.validation.window_months,
        latest_window=spec.validation.audit_months,
    )
    configs = expand(spec) if configs is None else configs
    baselines = {
        "random": BaselineResult("random", [_random(spec, dataset, s) for s in splits]),
        "heuristic": BaselineResult("heuristic", [_heuristic(spec, dataset, s) for s in splits]),
    }
    latest = splits[-1]
    validation = dataset.subset(np.isin(dataset.periods, latest.validation_periods))
    treated = treated_rows(dataset)
    handling = spec.training.treated
    exclude = treated if handling == "exclude" else None
    indicator = treatment_indicator(dataset) if handling == "indicator" and treated.any() else None
    excluded, indicated, partial = 0, 0, 0
    if exclude is not None:
        excluded = int((np.isin(dataset.periods, latest.train_periods) & treated).sum())
    if indicator is not None:
        fitting = np.isin(dataset.periods, latest.fit_periods)
        excluded = int(((dataset.periods == latest.calibration_period) & (indicator > 0)).sum())
        indicated = int((fitting & (indicator == 1)).sum())
        partial = int((fitting & (indicator > 0) & (indicator < 1)).sum())
    treatment = TreatmentSummary(
        handling="none" if dataset.accepted is None else handling,
        treated_rows=int(treated.sum()),
        treated_people=int(np.unique(dataset.ids[treated]).size),
        excluded_rows=excluded,
        indicator_rows=indicated,
        partial_rows=partial,
    )
    if treatment.treated_rows:
        done = {
            "exclude": "left out of training",
            "indicator": "fitted with a treatment indicator that scoring fixes at 0",
            "keep": "kept as if untreated",
        }[handling]
        progress(
            f"{treatment.treated_rows:,} rows of {treatment.treated_people:,} people follow an "
            f"accepted offer: {done}"
        )
    tasks = [(config, split) for config in configs for split in splits]
    fits = iter(
        _fit_each(
            tasks,
            spec,
            dataset,
            fitters=fitters or {},
            exclude=exclude,
            indicator=indicator,
            workers=workers,
            progress=progress,
        )
    )
    results = []
    for config in configs:
        per_split = []
        fitted: FittedCandidate | None = None
        for _ in splits:
            fitted = next(fits)
            per_split.append(fitted.metrics)
        assert fitted is not None
        scoring = ScoringModel.build(
            spec,
            fitted.additive,
            validation_scores=fitted.validation_scores,
            capacity_share=fitted.metrics.k / fitted.metrics.n,
            candidate=config.label,
        )
        results.append(CandidateResult(config, per_split, fitted, scoring))
    return TrainingResult(
        spec=spec,
        data_fingerprint=dataset.fingerprint,
        splits=splits,
        candidates=results,
        baselines=baselines,
        validation=validation,
        treatment=treatment,
    )


def start_workers(workers: int) -> None:
    """Start the processes parallel fits use (``workers`` > 1, one native thread each, as
    :func:`train` runs them), each with this module and the libraries it fits with loaded: a
    fit that follows finds them ready instead of waiting seconds for them. For a caller with
    other work meanwhile (the demo generates its population); not at the same time as a fit."""
    if workers <= 1:
        return
    from joblib import Parallel, delayed, parallel_config

    with parallel_config(backend="loky", inner_max_num_threads=1):
        Parallel(n_jobs=workers)(delayed(_loaded)() for _ in range(workers))


def _loaded() -> None:
    """Nothing: a worker unpickling this call has imported this module."""


def stop_workers() -> None:
    """Stop the processes that parallel fits (``workers`` > 1, here and in the proxy check) left
    waiting for more work: joblib keeps them, and their memory, for up to five minutes. A later
    parallel fit starts new ones."""
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)
