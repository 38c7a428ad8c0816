"""Exact explanations: compiled additive models equal scikit-learn's output, and add up."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.additive import AdditiveModel, sigmoid
from model.scorer import ScoringModel, scored_frame
from model.train import CandidateResult, TrainingResult


@pytest.fixture(params=["logistic", "boosted"])
def candidate(request: pytest.FixtureRequest, trained: TrainingResult) -> CandidateResult:
    return next(c for c in trained.candidates if c.config.name == request.param)


def test_compiled_model_equals_the_pipeline(candidate: CandidateResult, dataset) -> None:
    features = dataset.features
    raw = candidate.final.pipeline.decision_function(features)
    assert np.abs(candidate.final.additive.raw(features) - raw).max() < 1e-9


def test_scores_are_calibrated_probabilities_of_the_pipeline(
    candidate: CandidateResult, trained: TrainingResult
) -> None:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    data = trained.validation
    calibrator = CalibratedClassifierCV(FrozenEstimator(candidate.final.pipeline), method="sigmoid")
    cal_rows = data.frame.head(2000)
    calibrator.fit(cal_rows[list(data.spec.feature_names)], cal_rows[data.spec.label.column])
    (fitted,) = calibrator.calibrated_classifiers_
    (platt,) = fitted.calibrators
    model = candidate.final.additive
    rebuilt = AdditiveModel(model.terms, model.intercept, -platt.a_, -platt.b_, model.family)
    expected = calibrator.predict_proba(data.features)[:, 1]
    assert np.abs(rebuilt.score(data.features) - expected).max() < 1e-9


@st.composite
def records(draw: st.DrawFn, spec) -> pd.DataFrame:
    n = draw(st.integers(1, 20))
    columns = {}
    for f in spec.features:
        if f.kind == "category":
            columns[f.name] = draw(st.lists(st.sampled_from(f.categories), min_size=n, max_size=n))
        elif f.kind == "binary":
            columns[f.name] = draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n))
        else:
            low, high = f.lower or 0.0, f.upper if f.upper is not None else 1000.0
            integers = f.kind == "count"
            values = (
                st.integers(int(low), int(high)).map(float)
                if integers
                else st.floats(low, high, allow_nan=False)
            )
            columns[f.name] = draw(st.lists(values, min_size=n, max_size=n))
    return pd.DataFrame(columns)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_contributions_add_up_to_the_log_odds(trained: TrainingResult, data) -> None:
    frame = data.draw(records(trained.spec))
    for candidate in trained.candidates:
        model = candidate.final.additive
        contributions = model.contributions(frame)
        total = model.base_value + contributions.sum(axis=1)
        raw = candidate.final.pipeline.decision_function(frame)
        expected = model.calibration_slope * raw + model.calibration_intercept
        assert np.abs(total - expected).max() < 1e-6
        assert np.allclose(sigmoid(total), model.score(frame))


def test_one_hot_columns_fold_back_into_their_feature(trained: TrainingResult) -> None:
    model = next(c for c in trained.candidates if c.config.family == "logistic").final.additive
    assert model.features == trained.spec.feature_names
    assert next(t for t in model.terms if t.feature == "income_band").kind == "table"


def test_contributions_are_centred_on_the_training_population(
    trained: TrainingResult, dataset
) -> None:
    fit_rows = np.isin(dataset.periods, trained.splits[-1].fit_periods)
    for candidate in trained.candidates:
        contributions = candidate.final.additive.contributions(dataset.features.loc[fit_rows])
        assert np.abs(contributions.mean(axis=0)).max() < 1e-9


def test_changing_a_sensitive_attribute_does_not_change_a_score(trained: TrainingResult) -> None:
    frame = trained.validation.frame.head(50).copy()
    model = trained.candidates[0].scoring_model
    before = model.score_frame(frame).scores
    for attribute in trained.spec.sensitive_attributes:
        frame[attribute] = frame[attribute].iloc[::-1].to_numpy()
    assert np.array_equal(before, model.score_frame(frame).scores)


def test_json_round_trip_scores_identically(trained: TrainingResult, tmp_path) -> None:
    for candidate in trained.candidates:
        path = tmp_path / f"{candidate.config.name}.json"
        candidate.scoring_model.save(path)
        loaded = ScoringModel.load(path)
        frame = trained.validation.frame.head(200)
        assert np.array_equal(
            loaded.score_frame(frame).scores, candidate.scoring_model.score_frame(frame).scores
        )


def test_reasons_are_plain_words_from_the_spec(trained: TrainingResult) -> None:
    model = trained.candidates[0].scoring_model
    frame = trained.validation.frame
    batch = model.score_frame(frame)
    top = int(np.argmax(batch.scores))
    reasons = model.reasons(batch, top)
    assert 1 <= len(reasons) <= 3
    contributions = [r.contribution for r in reasons]
    assert contributions == sorted(contributions, reverse=True) and min(contributions) > 0
    for reason in reasons:
        feature = trained.spec.feature(reason.feature)
        assert reason.text == feature.render_reason(reason.value)
        assert reason.service == feature.service
        assert reason.feature not in trained.spec.sensitive_attributes


def test_bands_and_percentiles_follow_capacity(trained: TrainingResult) -> None:
    candidate = trained.candidates[0]
    model = candidate.scoring_model
    batch = model.score_frame(trained.validation.frame)
    share = (batch.bands == "priority").mean()
    assert share == pytest.approx(model.capacity_share, abs=0.01)
    assert batch.percentiles.min() >= 0 and batch.percentiles.max() == 100
    top = batch.scores >= model.cutoffs["priority"]
    assert batch.percentiles[top].min() >= 100 * (1 - model.capacity_share) - 1


def test_scored_frame_has_ids_and_json_reasons(trained: TrainingResult) -> None:
    frame = trained.validation.frame.head(5)
    out = scored_frame(trained.candidates[0].scoring_model, frame)
    assert list(out.columns) == ["person_id", "score", "percentile", "band", "reasons"]
    assert out["reasons"].map(lambda r: r.startswith("[")).all()


def test_unknown_category_is_refused_by_the_scorer(trained: TrainingResult) -> None:
    from kernel.errors import DataValidationError

    frame = trained.validation.frame.head(3).copy()
    frame.loc[frame.index[1], "income_band"] = "rich"
    with pytest.raises(DataValidationError) as caught:
        trained.candidates[0].scoring_model.score_frame(frame)
    assert "unknown categories 'rich' in row 2" in "\n".join(caught.value.details)


def test_reasons_for_many_records_equal_reasons_one_at_a_time(
    candidate: CandidateResult, trained: TrainingResult
) -> None:
    from dataclasses import replace

    model = candidate.scoring_model
    batch = model.score_frame(trained.validation.frame.head(600))
    odd = batch.contributions.copy()
    odd[:20] = -np.abs(odd[:20])  # nothing raises these scores
    odd[20:60] = np.round(odd[20:60], 1)  # ties
    odd[60:70] = 0.0
    rows = [*np.random.default_rng(0).permutation(len(batch))[:300].tolist(), 0, 0]
    for scored in (batch, replace(batch, contributions=odd)):
        one_at_a_time = [[r.to_dict() for r in model.reasons(scored, i)] for i in range(600)]
        assert model.reason_dicts(scored) == one_at_a_time
        assert model.reason_dicts(scored, rows) == [one_at_a_time[i] for i in rows]
        assert model.reason_dicts(scored, rows[:3]) == [one_at_a_time[i] for i in rows[:3]]
        assert model.reason_dicts(scored, rows, top=1) == [one_at_a_time[i][:1] for i in rows]
    assert not model.reason_dicts(replace(batch, contributions=odd), [5])[0]


NUMBER_BREAKAGES = ("three", None, True, float("nan"), float("inf"), -1e9, 1e300, 10**400, 0.5)
CATEGORY_BREAKAGES = (3, None, True, "", "unknown", "LOW", "low ", ["low"], {"a": 1})


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_column_wise_checks_accept_exactly_what_the_record_checks_accept(
    trained: TrainingResult, seed: int
) -> None:
    import random

    from kernel.errors import DataValidationError
    from model.records import check_records

    rng = random.Random(seed)
    model = trained.candidates[0].scoring_model
    frame = trained.validation.frame
    start = rng.randrange(len(frame) - 40)
    rows: list = [
        {"id": str(i), **{f: row[f] for f in model.feature_names}}
        for i, row in enumerate(frame.iloc[start : start + rng.randint(8, 40)].to_dict("records"))
    ]
    for row in rows:  # as JSON gives them: numbers as floats (or ints), categories as text
        for feature in model.features:
            if feature.kind != "category":
                row[feature.name] = float(row[feature.name])
    changes = rng.choice([0, 0, 1, 1, 2, 3])
    for _ in range(changes):
        i, feature = rng.randrange(len(rows)), rng.choice(model.features)
        how = rng.choice(["break", "drop", "extra", "not a dict", "int"])
        if not isinstance(rows[i], dict):
            continue
        if how == "break":
            broken = CATEGORY_BREAKAGES if feature.kind == "category" else NUMBER_BREAKAGES
            rows[i][feature.name] = rng.choice(broken)
        elif how == "drop":
            rows[i].pop(feature.name, None)
        elif how == "extra":
            rows[i]["colour"] = "red"
        elif how == "not a dict":
            rows[i] = list(rows[i].items())
        elif feature.kind != "category" and _finite_float(rows[i].get(feature.name)):
            rows[i][feature.name] = int(rows[i][feature.name])  # an int is valid too
    problems, columns = check_records(rows, model.features, allowed_extra={"id"})
    plain = model._plain_columns(rows, {"id"})
    if problems:
        assert plain is None
        with pytest.raises(DataValidationError) as caught:
            model.score_records(rows, allowed_extra={"id"})
        assert list(caught.value.details) == problems
        return
    assert plain is not None  # valid dicts of plain values take the column-wise path
    assert plain.keys() == columns.keys()
    for name, values in columns.items():
        assert plain[name].dtype == values.dtype and np.array_equal(plain[name], values)
    scored = model.score_records(rows, allowed_extra={"id"})
    assert np.array_equal(scored.scores, model.score_columns(columns).scores)


def _finite_float(value: object) -> bool:
    """A float an int can stand for (an earlier change may have broken it to NaN or infinity)."""
    return isinstance(value, float) and math.isfinite(value)
