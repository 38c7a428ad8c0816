"""Training: candidates beat the baselines on the seeded population, and splits never leak."""

from __future__ import annotations

import numpy as np

from model.train import TrainingResult, fit_candidate


def test_every_candidate_is_measured_on_every_split(trained: TrainingResult) -> None:
    assert len(trained.candidates) == 2
    for candidate in trained.candidates:
        assert len(candidate.per_split) == len(trained.splits) == 2
        for metrics in candidate.per_split:
            assert metrics.k == trained.spec.capacity.k_for(metrics.n)


def test_candidates_beat_random_and_the_heuristic(trained: TrainingResult) -> None:
    random_p = trained.baselines["random"].mean["precision_at_k"]
    heuristic_p = trained.baselines["heuristic"].mean["precision_at_k"]
    best = trained.best().mean["precision_at_k"]
    assert best >= 3 * random_p
    assert best > heuristic_p


def test_validation_is_the_latest_period_and_held_out(trained: TrainingResult) -> None:
    latest = trained.splits[-1]
    assert set(trained.validation.periods) == set(latest.validation_periods)
    assert min(latest.validation_periods) > max(latest.train_periods)


def test_validation_rows_do_not_influence_the_model(trained: TrainingResult, dataset) -> None:
    """Scrambling the validation period's labels leaves the fitted model unchanged."""
    split = trained.splits[-1]
    frame = dataset.frame.copy()
    later = frame["__period"] >= min(split.validation_periods)
    column = trained.spec.label.column
    frame.loc[later, column] = 1 - frame.loc[later, column]
    scrambled = type(dataset)(frame, dataset.spec, dataset.fingerprint)
    config = trained.candidates[0].config
    refit = fit_candidate(config, trained.spec, scrambled, split)
    original = trained.candidates[0].final
    assert np.allclose(refit.validation_scores, original.validation_scores)
