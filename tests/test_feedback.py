"""The feedback-loop guard: treated rows found, reported, validated, and kept out of training.

The headline test trains on a ``feedback`` population (a past programme helped families with
children and prevented most of their crises) and scores a later population generated without any
programme: naive retraining under-scores families against their untreated crisis rate; with the
guard the model scores them as one trained on the same people without the programme does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from model.data import validate
from model.errors import BadInputError, DataValidationError, SpecError
from model.feedback import treated_mask
from model.spec import ExperimentSpec, parse_spec
from model.synthetic import (
    ACCEPTED_COLUMN,
    BiasKnobs,
    PastOutreach,
    generate,
    generate_preset,
)
from model.train import train
from tests.conftest import fast_mapping

ROWS, PERIODS, SEED = 120_000, 20, 13


def guarded_spec(treated: str | None = "exclude", **data: Any) -> ExperimentSpec:
    raw = fast_mapping()
    raw["data"] = {**raw["data"], "accepted_column": ACCEPTED_COLUMN, **data}
    if treated is not None:
        raw["training"] = {"treated": treated}
    # One split, one candidate: the model kept is the latest split's, which is what is measured.
    raw["validation"] = {"splits": 1, "step_months": 1, "min_train_periods": 4, "audit_months": 1}
    raw["candidates"] = [
        {
            "name": "boosted",
            "family": "boosted_additive",
            "grid": {"max_iter": [40], "max_leaf_nodes": [6]},
        }
    ]
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


def test_naive_retraining_under_scores_the_helped_group_and_the_guard_does_not(
    helped: pd.DataFrame,
) -> None:
    spec = guarded_spec()
    reference = family_calibration(_untreated_twin(), spec, "exclude")
    naive = family_calibration(helped, spec, "keep")
    guarded = family_calibration(helped, spec, "exclude")
    assert naive < reference - 0.15, "naive retraining should under-score the helped families"
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


def small_helped() -> pd.DataFrame:
    knobs = BiasKnobs(past_outreach=PastOutreach(share=0.05))
    return generate(unit="individual", rows=20_000, seed=3, periods=16, knobs=knobs)


@pytest.mark.parametrize("handled", ["exclude", "keep"])
def test_training_reports_the_treated_rows(handled: str) -> None:
    frame = small_helped()
    spec = guarded_spec(handled)
    dataset = validate(frame, spec)
    mask = treated_mask(dataset.ids, dataset.periods, frame[ACCEPTED_COLUMN].to_numpy())
    result = train(spec, dataset)
    summary = result.treatment
    assert summary.handling == handled
    assert summary.treated_rows == int(mask.sum()) > 0
    assert summary.treated_people == int(frame.loc[mask, "person_id"].nunique())
    in_training = np.isin(dataset.periods, result.splits[-1].train_periods) & mask
    assert summary.excluded_rows == (int(in_training.sum()) if handled == "exclude" else 0)
    assert ACCEPTED_COLUMN not in result.candidates[0].scoring_model.feature_names


def test_without_an_accepted_column_nothing_is_treated() -> None:
    spec = guarded_spec(None, accepted_column=None)
    result = train(spec, validate(small_helped().drop(columns=[ACCEPTED_COLUMN]), spec))
    assert result.treatment.as_dict() == {
        "handling": "none",
        "treated_rows": 0,
        "treated_people": 0,
        "excluded_rows": 0,
    }


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
        ({}, "indicator", "training.treated: Input should be 'exclude' or 'keep'"),
    ],
)
def test_spec_checks_the_guard(data: dict[str, str], treated: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        guarded_spec(treated, **data)
    assert any(message in d for d in caught.value.details), caught.value.details


def test_treated_handling_needs_an_accepted_column() -> None:
    raw = fast_mapping()
    raw["training"] = {"treated": "keep"}
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
