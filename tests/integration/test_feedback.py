"""The feedback-loop guard: treated rows found, reported, validated, and kept out of training
(``exclude``) or fitted with a treatment indicator that scoring fixes at 0 (``indicator``).

The headline test trains on a ``feedback`` population (a past programme helped families with
children and prevented most of their crises) and scores a later population generated without any
programme: naive retraining under-scores families against their untreated crisis rate; with
either guard the model scores them as one trained on the same people without the programme does.
"""

from __future__ import annotations

import json
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from kernel.errors import BadInputError, DataValidationError, SpecError
from kernel.home import Home
from model.data import Dataset, validate
from model.feedback import TREATMENT_INDICATOR, treated_mask, treatment_exposure
from model.registry import connect, fluent, log_training
from model.scorer import scored_frame
from model.spec import ExperimentSpec, parse_spec
from model.synthetic import (
    ACCEPTED_COLUMN,
    BiasKnobs,
    PastOutreach,
    generate,
    generate_preset,
)
from model.train import TrainingResult, train
from tests.support.specs import fast_mapping

ROWS, PERIODS, SEED = 120_000, 20, 13
BOOSTED = {
    "name": "boosted",
    "family": "boosted_additive",
    "grid": {"max_iter": [40], "max_leaf_nodes": [6]},
}
LOGISTIC = {"name": "logistic", "family": "logistic", "grid": {"C": [1.0]}}


def guarded_spec(
    treated: str | None = "exclude",
    *,
    candidates: tuple[dict[str, Any], ...] = (BOOSTED,),
    **data: Any,
) -> ExperimentSpec:
    raw = fast_mapping()
    raw["data"] = {**raw["data"], "accepted_column": ACCEPTED_COLUMN, **data}
    if treated is not None:
        raw["training"] = {"treated": treated}
    # One split, one candidate: the model kept is the latest split's, which is what is measured.
    raw["validation"] = {"splits": 1, "step_months": 1, "min_train_periods": 4, "audit_months": 1}
    raw["candidates"] = list(candidates)
    return parse_spec(raw)


@pytest.fixture(scope="module")
def helped() -> pd.DataFrame:
    return generate_preset(
        unit="individual", rows=ROWS, seed=SEED, periods=PERIODS, preset="feedback"
    )


def _untreated_twin() -> pd.DataFrame:
    """The same people (same seed) had no programme run: same features, untreated outcomes."""
    frame = generate(unit="individual", rows=ROWS, seed=SEED, periods=PERIODS)
    frame[ACCEPTED_COLUMN] = 0
    return frame


def family_calibration(frame: pd.DataFrame, spec: ExperimentSpec, handled: str) -> float:
    """Families' mean predicted risk over their true crisis rate, on a later population that no
    programme touched (1 is right; below 1 is under-scoring)."""
    result = train(guarded_spec(handled), validate(frame, guarded_spec(handled)))
    later = generate(unit="individual", rows=ROWS // 2, seed=SEED + 1, periods=PERIODS)
    scores = result.candidates[0].final.additive.score(later[list(spec.feature_names)])
    families = later["children_in_household"].to_numpy() > 0
    truth = later["crisis_6m_true"].to_numpy()
    return float(scores[families].mean() / truth[families].mean())


@pytest.fixture(scope="module")
def reference_and_naive(helped: pd.DataFrame) -> tuple[float, float]:
    """Families' calibration without the programme, and under naive retraining with it."""
    spec = guarded_spec()
    reference = family_calibration(_untreated_twin(), spec, "exclude")
    return reference, family_calibration(helped, spec, "keep")


@pytest.mark.parametrize("guard", ["exclude", "indicator"])
def test_naive_retraining_under_scores_the_helped_group_and_the_guards_do_not(
    helped: pd.DataFrame, reference_and_naive: tuple[float, float], guard: str
) -> None:
    reference, naive = reference_and_naive
    assert naive < reference - 0.15, "naive retraining should under-score the helped families"
    guarded = family_calibration(helped, guarded_spec(), guard)
    assert abs(guarded - reference) < 0.5 * (reference - naive), "the guard closes the gap"


def test_treated_rows_start_at_the_first_acceptance() -> None:
    ids = np.array([1, 1, 1, 1, 2, 2, 2, 2, 3, 3])
    periods = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    accepted = np.array([0, 1, 0, 1, 0, 0, 0, 1, 0, 0])
    expected = [False, True, True, True, False, False, False, True, False, False]
    assert treated_mask(ids, periods, accepted).tolist() == expected
    order = np.random.default_rng(0).permutation(ids.size)  # row order does not matter
    assert treated_mask(ids[order], periods[order], accepted[order]).tolist() == [
        expected[i] for i in order
    ]


def test_the_indicator_is_the_share_of_the_label_window_after_the_first_acceptance() -> None:
    ids = np.array([1, 1, 1, 1, 1, 1, 2, 2, 3, 3])
    periods = np.array([0, 1, 2, 3, 4, 5, 0, 1, 0, 1])
    accepted = np.array([0, 0, 0, 1, 0, 1, 0, 1, 0, 0])
    share = treatment_exposure(ids, periods, accepted, horizon=3)
    assert share.tolist() == [0.0, 1 / 3, 2 / 3, 1.0, 1.0, 1.0, 2 / 3, 1.0, 0.0, 0.0]
    assert ((share == 1) == treated_mask(ids, periods, accepted)).all()


def small_helped() -> pd.DataFrame:
    knobs = BiasKnobs(past_outreach=PastOutreach(share=0.05))
    return generate(unit="individual", rows=20_000, seed=3, periods=16, knobs=knobs)


@pytest.mark.parametrize("handled", ["exclude", "indicator", "keep"])
def test_training_reports_the_treated_rows(handled: str) -> None:
    frame = small_helped()
    spec = guarded_spec(handled)
    dataset = validate(frame, spec)
    accepted = frame[ACCEPTED_COLUMN].to_numpy()
    mask = treated_mask(dataset.ids, dataset.periods, accepted)
    share = treatment_exposure(dataset.ids, dataset.periods, accepted, horizon=6)
    result = train(spec, dataset)
    summary = result.treatment
    latest = result.splits[-1]
    fitting = np.isin(dataset.periods, latest.fit_periods)
    calibration = dataset.periods == latest.calibration_period
    expected = {"excluded_rows": 0, "indicator_rows": 0, "partial_rows": 0}
    if handled == "exclude":
        expected["excluded_rows"] = int(((fitting | calibration) & mask).sum())
    if handled == "indicator":
        expected = {
            "excluded_rows": int((calibration & (share > 0)).sum()),
            "indicator_rows": int((fitting & mask).sum()),
            "partial_rows": int((fitting & (share > 0) & ~mask).sum()),
        }
        assert min(expected.values()) > 0
    assert summary.handling == handled
    assert summary.treated_rows == int(mask.sum()) > 0
    assert summary.treated_people == int(frame.loc[mask, "person_id"].nunique())
    assert {key: summary.as_dict()[key] for key in expected} == expected
    assert ACCEPTED_COLUMN not in result.candidates[0].scoring_model.feature_names


def test_without_an_accepted_column_nothing_is_treated() -> None:
    spec = guarded_spec(None, accepted_column=None)
    result = train(spec, validate(small_helped().drop(columns=[ACCEPTED_COLUMN]), spec))
    assert result.treatment.as_dict() == {
        "handling": "none",
        "treated_rows": 0,
        "treated_people": 0,
        "excluded_rows": 0,
        "indicator_rows": 0,
        "partial_rows": 0,
    }


@pytest.fixture(scope="module")
def indicated() -> TrainingResult:
    """Both families trained with the treatment indicator on a population with past outreach."""
    spec = guarded_spec("indicator", candidates=(BOOSTED, LOGISTIC))
    return train(spec, validate(small_helped(), spec))


def _with_indicator(features: pd.DataFrame, value: float) -> pd.DataFrame:
    return features.assign(**{TREATMENT_INDICATOR: value})


@pytest.mark.parametrize("family", ["boosted_additive", "logistic"])
def test_the_served_model_is_the_fitted_one_with_the_indicator_at_0(
    indicated: TrainingResult, family: str
) -> None:
    candidate = next(c for c in indicated.candidates if c.config.family == family)
    features = indicated.validation.features
    pipeline, additive = candidate.final.pipeline, candidate.final.additive
    untreated = pipeline.decision_function(_with_indicator(features, 0.0))
    assert np.allclose(additive.raw(features), untreated, rtol=0, atol=1e-9)
    # The model learned from the indicator: help lowers the fitted risk.
    with_help = pipeline.decision_function(_with_indicator(features, 1.0))
    assert (with_help - untreated).mean() < -0.1


def test_the_indicator_is_never_an_input_a_reason_or_settable(
    indicated: TrainingResult,
) -> None:
    names = set(indicated.spec.feature_names)
    frame = indicated.validation.source_frame()
    for candidate in indicated.candidates:
        model = candidate.scoring_model
        assert set(model.feature_names) == names == set(candidate.final.additive.features)
        assert {entry["name"] for entry in model.input_schema()} == names
        plain = scored_frame(model, frame)
        reasons = [r["feature"] for row in plain["reasons"] for r in json.loads(row)]
        assert reasons and set(reasons) <= names
        sent = frame.assign(**{TREATMENT_INDICATOR: 1, ACCEPTED_COLUMN: 1})
        pd.testing.assert_frame_equal(scored_frame(model, sent), plain)
        record = {**frame[list(names)].iloc[0].to_dict(), TREATMENT_INDICATOR: 1}
        with pytest.raises(DataValidationError) as caught:
            model.score_records([record])
        assert f"records[0].{TREATMENT_INDICATOR}: unknown field" in caught.value.details


def test_the_registered_model_has_no_indicator_and_the_run_counts_its_rows(
    indicated: TrainingResult, home: Home
) -> None:
    registry = connect(home)
    run_id = log_training(registry, indicated)
    params = registry.client.get_run(run_id).data.params
    assert params["treated_handling"] == "indicator"
    assert params["treated_indicator_rows"] == str(indicated.treatment.indicator_rows)
    assert params["treated_partial_rows"] == str(indicated.treatment.partial_rows)
    candidate = indicated.candidates[0]
    with fluent(registry):
        info = mlflow.models.get_model_info(f"models:/{indicated.spec.name}/{candidate.version}")
    assert info.signature is not None and info.signature.inputs is not None
    assert info.signature.inputs.input_names() == list(indicated.spec.feature_names)


def test_custom_fitting_steps_see_the_indicator() -> None:
    spec = guarded_spec("indicator", candidates=(LOGISTIC,))
    seen: list[list[str]] = []

    def fitter(pipeline: Pipeline, dataset: Dataset, mask: np.ndarray) -> None:
        seen.append(list(dataset.features.columns))
        pipeline.fit(dataset.features.loc[mask], dataset.labels[mask])

    train(spec, validate(small_helped(), spec), fitters={"logistic": fitter})
    assert seen == [[*spec.feature_names, TREATMENT_INDICATOR]]


@pytest.mark.parametrize(
    ("value", "message"),
    [(2, "column 'outreach_accepted': not 0 or 1 in row 3"), (np.nan, "not 0 or 1 in row 3")],
)
def test_the_accepted_column_must_be_0_or_1(value: float, message: str) -> None:
    frame = small_helped()
    frame[ACCEPTED_COLUMN] = frame[ACCEPTED_COLUMN].astype(float)
    frame.loc[2, ACCEPTED_COLUMN] = value
    with pytest.raises(DataValidationError) as caught:
        validate(frame, guarded_spec())
    assert any(message in d for d in caught.value.details)


def test_training_data_needs_the_accepted_column_and_scoring_data_does_not() -> None:
    frame = small_helped().drop(columns=[ACCEPTED_COLUMN])
    with pytest.raises(DataValidationError) as caught:
        validate(frame, guarded_spec())
    assert "missing columns: outreach_accepted" in caught.value.details
    validate(frame, guarded_spec(), require_label=False)


@pytest.mark.parametrize(
    ("data", "treated", "message"),
    [
        (
            {"accepted_column": "shelter_contacts_12m"},
            "exclude",
            "data.accepted_column: 'shelter_contacts_12m' is already used by the spec",
        ),
        ({"accepted_column": "race_ethnicity"}, "exclude", "can never be a model feature"),
        ({}, "always", "training.treated: Input should be 'exclude', 'indicator' or 'keep'"),
        (
            {"area_column": TREATMENT_INDICATOR},
            "indicator",
            f"training.treated: the spec already uses the column '{TREATMENT_INDICATOR}'",
        ),
    ],
)
def test_spec_checks_the_guard(data: dict[str, Any], treated: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        guarded_spec(treated, **data)
    assert any(message in d for d in caught.value.details), caught.value.details


@pytest.mark.parametrize("handled", ["exclude", "indicator", "keep"])
def test_treated_handling_needs_an_accepted_column(handled: str) -> None:
    raw = fast_mapping()
    raw["training"] = {"treated": handled}
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    assert any(
        d.startswith("training.treated: needs data.accepted_column") for d in caught.value.details
    )


def test_the_feedback_preset_is_for_individuals_only() -> None:
    with pytest.raises(BadInputError, match="has no neighbourhood population"):
        generate_preset(unit="neighbourhood", rows=1_000, seed=1, preset="feedback")


def test_the_feedback_preset_changes_only_outcomes(helped: pd.DataFrame) -> None:
    twin = generate(unit="individual", rows=ROWS, seed=SEED, periods=PERIODS)
    outcomes = ["crisis_6m", "crisis_6m_true", "need_probability"]
    pd.testing.assert_frame_equal(
        helped[twin.columns].drop(columns=outcomes), twin.drop(columns=outcomes)
    )
    families = helped["children_in_household"] > 0
    assert helped.loc[~families, ACCEPTED_COLUMN].sum() == 0
    assert helped.groupby("person_id")[ACCEPTED_COLUMN].sum().max() == 1
    assert (
        helped.loc[families, "crisis_6m_true"].mean()
        < 0.8 * twin.loc[families, "crisis_6m_true"].mean()
    )
