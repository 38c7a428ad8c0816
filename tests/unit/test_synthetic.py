"""Properties of the seeded synthetic populations and their bias knobs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from kernel.errors import BadInputError
from model.synthetic import (
    COLUMNS,
    FEATURES,
    ID_COLUMN,
    LABEL,
    OVER_MEASURABLE_FEATURES,
    PRESETS,
    SENSITIVE_ATTRIBUTES,
    TRUE_LABEL,
    UNDER_RECORDED_FEATURES,
    UNITS,
    BiasKnobs,
    LabelUnderRecording,
    ProxyOverMeasurement,
    SmallGroup,
    Unit,
    generate,
    generate_preset,
    write_population,
)

INDIVIDUAL_DTYPES = {
    "person_id": "int64",
    "period": "str",
    "service_area": "str",
    **{name: "int64" for name in FEATURES["individual"]},
    "income_band": "str",
    "employment_status": "str",
    "months_since_last_service": "float64",
    **{name: "str" for name in SENSITIVE_ATTRIBUTES["individual"]},
    "crisis_6m": "int64",
    "crisis_6m_true": "int64",
    "need_probability": "float64",
}
NEIGHBOURHOOD_DTYPES = {
    "area_id": "str",
    "period": "str",
    **{name: "float64" for name in FEATURES["neighbourhood"]},
    "population": "int64",
    **{name: "str" for name in SENSITIVE_ATTRIBUTES["neighbourhood"]},
    "crisis_above_expected": "int64",
    "crisis_above_expected_true": "int64",
    "need_probability": "float64",
}
DTYPES: dict[Unit, dict[str, str]] = {
    "individual": INDIVIDUAL_DTYPES,
    "neighbourhood": NEIGHBOURHOOD_DTYPES,
}
# The group each unit's biased preset under-records.
UNDER_RECORDED_GROUP: dict[Unit, tuple[str, str]] = {
    "individual": ("race_ethnicity", "Hispanic or Latino"),
    "neighbourhood": ("majority_group", "Hispanic or Latino"),
}

units = st.sampled_from(UNITS)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
small_settings = settings(max_examples=20, deadline=None)


def within_binomial(observed: float, p: float, n: int, sigmas: float = 4.0) -> bool:
    """Whether an observed share is within ``sigmas`` binomial standard errors of ``p``."""
    return abs(observed - p) <= sigmas * math.sqrt(max(p * (1.0 - p), 1e-12) / n) + 1e-9


def in_group(df: pd.DataFrame, attribute: str, group: str) -> np.ndarray:
    return (df[attribute] == group).to_numpy()


@pytest.fixture(scope="module")
def individual() -> pd.DataFrame:
    return generate(unit="individual", rows=96_000, seed=11)


@pytest.fixture(scope="module")
def neighbourhood() -> pd.DataFrame:
    return generate(unit="neighbourhood", rows=96_000, seed=11)


@pytest.fixture(scope="module")
def populations(individual: pd.DataFrame, neighbourhood: pd.DataFrame) -> dict[Unit, pd.DataFrame]:
    return {"individual": individual, "neighbourhood": neighbourhood}


# ---------------------------------------------------------------------------------------------
# Reproducibility
# ---------------------------------------------------------------------------------------------


@small_settings
@given(unit=units, seed=seeds, preset=st.sampled_from(sorted(PRESETS)))
def test_same_seed_gives_identical_frames(unit: Unit, seed: int, preset: str) -> None:
    assume(unit in PRESETS[preset])  # the feedback preset is for individuals only
    first = generate_preset(unit=unit, rows=480, seed=seed, preset=preset, periods=12)
    second = generate_preset(unit=unit, rows=480, seed=seed, preset=preset, periods=12)
    pd.testing.assert_frame_equal(first, second)


@small_settings
@given(unit=units, seed=seeds)
def test_different_seeds_give_different_frames(unit: Unit, seed: int) -> None:
    first = generate(unit=unit, rows=480, seed=seed, periods=12)
    second = generate(unit=unit, rows=480, seed=seed + 1, periods=12)
    assert not first.equals(second)


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_same_seed_writes_identical_bytes(unit: Unit, suffix: str, tmp_path: Path) -> None:
    paths = []
    for attempt in ("a", "b"):
        frame = generate_preset(unit=unit, rows=2_400, seed=5, preset="biased")
        path = tmp_path / f"{attempt}{suffix}"
        write_population(frame, path)
        paths.append(path)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"a{suffix}", f"b{suffix}"]


@pytest.mark.parametrize("unit", UNITS)
def test_parquet_round_trip_is_exact(unit: Unit, tmp_path: Path) -> None:
    frame = generate(unit=unit, rows=2_400, seed=2)
    write_population(frame, tmp_path / "population.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "population.parquet"), frame)


@pytest.mark.parametrize("unit", UNITS)
def test_csv_round_trip_keeps_rows_and_columns(unit: Unit, tmp_path: Path) -> None:
    frame = generate(unit=unit, rows=2_400, seed=2)
    write_population(frame, tmp_path / "population.csv")
    back = pd.read_csv(tmp_path / "population.csv")
    assert list(back.columns) == list(frame.columns)
    assert len(back) == len(frame)
    assert back[LABEL[unit]].tolist() == frame[LABEL[unit]].tolist()
    np.testing.assert_allclose(back["need_probability"], frame["need_probability"], rtol=1e-12)


def test_write_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "population.csv"
    path.write_text("old contents\n")
    frame = generate(unit="neighbourhood", rows=240, seed=1)
    write_population(frame, str(path))
    assert path.read_text().startswith(",".join(COLUMNS["neighbourhood"]))
    assert [p.name for p in tmp_path.iterdir()] == ["population.csv"]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_failed_write_leaves_no_partial_file(suffix: str, tmp_path: Path) -> None:
    class Unprintable:
        def __repr__(self) -> str:
            raise RuntimeError("cannot be written")

        __str__ = __repr__

    path = tmp_path / f"population{suffix}"
    path.write_text("previous population\n")
    frame = pd.DataFrame({"x": [1, 2], "y": pd.Series([Unprintable(), "a"], dtype=object)})
    with pytest.raises((RuntimeError, TypeError, ValueError)):
        write_population(frame, path)
    assert path.read_text() == "previous population\n"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


# ---------------------------------------------------------------------------------------------
# Shape and schema
# ---------------------------------------------------------------------------------------------


@small_settings
@given(
    unit=units,
    seed=seeds,
    periods=st.integers(min_value=8, max_value=30),
    ids=st.integers(min_value=1, max_value=40),
    extra=st.integers(min_value=0, max_value=29),
    start_year=st.integers(min_value=1990, max_value=2030),
    start_month=st.integers(min_value=1, max_value=12),
)
def test_shape_schema_and_periods(
    unit: Unit,
    seed: int,
    periods: int,
    ids: int,
    extra: int,
    start_year: int,
    start_month: int,
) -> None:
    extra = extra % periods  # rows that do not make a full history are dropped
    start = f"{start_year:04d}-{start_month:02d}"
    frame = generate(unit=unit, rows=ids * periods + extra, seed=seed, periods=periods, start=start)

    assert len(frame) == ids * periods
    assert tuple(frame.columns) == COLUMNS[unit]
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == DTYPES[unit]
    assert not frame.isna().any().any()
    assert isinstance(frame.index, pd.RangeIndex)
    id_column = ID_COLUMN[unit]
    assert not frame.duplicated([id_column, "period"]).any()
    assert frame[id_column].nunique() == ids

    expected = pd.period_range(start, periods=periods, freq="M").strftime("%Y-%m").tolist()
    for _, history in frame.groupby(id_column, sort=False):
        assert history["period"].tolist() == expected
    assert frame[id_column].is_monotonic_increasing


def test_ids_are_numbered_from_one() -> None:
    people = generate(unit="individual", rows=240, seed=0, periods=12)
    assert people["person_id"].unique().tolist() == list(range(1, 21))
    areas = generate(unit="neighbourhood", rows=240, seed=0, periods=12)
    assert areas["area_id"].unique().tolist()[:3] == ["A0001", "A0002", "A0003"]


def test_period_labels_cross_the_year() -> None:
    frame = generate(unit="individual", rows=16, seed=0, periods=8, start="2023-11")
    assert frame["period"].tolist()[:4] == ["2023-11", "2023-12", "2024-01", "2024-02"]


def test_individual_values_are_in_range(individual: pd.DataFrame) -> None:
    for name in OVER_MEASURABLE_FEATURES["individual"]:
        assert (individual[name] >= 0).all(), name
    for name in ("snap_enrolled", "medicaid_enrolled", "housing_waitlist"):
        assert set(individual[name].unique()) == {0, 1}, name
    assert individual["household_size"].between(1, 8).all()
    assert individual["children_in_household"].between(0, 6).all()
    assert (individual["children_in_household"] < individual["household_size"]).all()
    assert individual["months_since_last_service"].between(0.0, 60.0).all()
    assert set(individual["income_band"]) == {"none", "very_low", "low", "moderate"}
    assert set(individual["employment_status"]) == {
        "employed",
        "unemployed",
        "not_in_labour_force",
    }
    for attribute, groups in SENSITIVE_ATTRIBUTES["individual"].items():
        assert set(individual[attribute]) == set(groups), attribute
    assert individual["need_probability"].between(0.0, 1.0).all()


def test_recent_service_contacts_agree_with_months_since_last_service(
    individual: pd.DataFrame,
) -> None:
    seen_recently = individual["er_visits_90d"] > 0
    assert (individual.loc[seen_recently, "months_since_last_service"] <= 3.0).all()


def test_person_level_columns_do_not_change_over_time(individual: pd.DataFrame) -> None:
    fixed = [
        "income_band",
        "household_size",
        "children_in_household",
        "employment_status",
        *SENSITIVE_ATTRIBUTES["individual"],
    ]
    assert (individual.groupby("person_id")[fixed].nunique() == 1).all().all()


def test_neighbourhood_values_are_in_range(neighbourhood: pd.DataFrame) -> None:
    for name in (*OVER_MEASURABLE_FEATURES["neighbourhood"], "prior_crisis_rate"):
        assert (neighbourhood[name] >= 0).all(), name
    assert (neighbourhood["population"] > 0).all()
    assert neighbourhood["unemployment_rate"].between(0.0, 1.0).all()
    assert neighbourhood["rent_burden_share"].between(0.0, 1.0).all()
    for attribute, groups in SENSITIVE_ATTRIBUTES["neighbourhood"].items():
        assert set(neighbourhood[attribute]) == set(groups), attribute
    quintiles = neighbourhood.groupby("income_quintile")["area_id"].nunique()
    assert quintiles.max() - quintiles.min() <= 1  # exact quintiles of the areas
    assert neighbourhood["need_probability"].between(0.0, 1.0).all()


def test_presets_cover_both_units() -> None:
    assert {"default", "biased"} <= set(PRESETS)
    for unit in UNITS:
        assert PRESETS["default"][unit] == BiasKnobs()
        biased = PRESETS["biased"][unit]
        assert biased.label_under_recording is not None
        assert biased.proxy_over_measurement is not None
        assert biased.small_group is not None


# ---------------------------------------------------------------------------------------------
# Ground truth, base rates and learnable signal
# ---------------------------------------------------------------------------------------------


@small_settings
@given(unit=units, seed=seeds)
def test_knobs_off_labels_equal_truth(unit: Unit, seed: int) -> None:
    frame = generate(unit=unit, rows=960, seed=seed)
    assert frame[LABEL[unit]].equals(frame[TRUE_LABEL[unit]])


@pytest.mark.parametrize(
    ("unit", "low", "high"), [("individual", 0.04, 0.08), ("neighbourhood", 0.10, 0.20)]
)
def test_base_rates(
    populations: dict[Unit, pd.DataFrame], unit: Unit, low: float, high: float
) -> None:
    assert low <= populations[unit][LABEL[unit]].mean() <= high


@pytest.mark.parametrize("unit", UNITS)
def test_need_probability_is_calibrated(populations: dict[Unit, pd.DataFrame], unit: Unit) -> None:
    frame = populations[unit]
    truth = frame[TRUE_LABEL[unit]]
    # Rows of one id share months, so allow for clustering with a wide tolerance.
    assert frame["need_probability"].mean() == pytest.approx(truth.mean(), abs=0.01)
    bins = pd.qcut(frame["need_probability"].rank(method="first"), 5, labels=False)
    by_bin = frame.groupby(bins).agg(
        predicted=("need_probability", "mean"), observed=(TRUE_LABEL[unit], "mean")
    )
    assert by_bin["observed"].is_monotonic_increasing
    np.testing.assert_allclose(by_bin["observed"], by_bin["predicted"], atol=0.025)


def design(frame: pd.DataFrame, unit: Unit, *, with_sensitive: bool = False) -> pd.DataFrame:
    columns = [*FEATURES[unit], *(SENSITIVE_ATTRIBUTES[unit] if with_sensitive else ())]
    return pd.get_dummies(frame[columns], dtype=float)


def split(
    frame: pd.DataFrame, *, train_periods: int, test_periods: int
) -> tuple[np.ndarray, np.ndarray]:
    periods = sorted(frame["period"].unique())
    train = frame["period"].isin(periods[:train_periods]).to_numpy()
    test = frame["period"].isin(periods[-test_periods:]).to_numpy()
    return train, test


def fit_scores(
    frame: pd.DataFrame, unit: Unit, *, with_sensitive: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Train a logistic regression on the first 12 periods; score the last 6."""
    x = design(frame, unit, with_sensitive=with_sensitive)
    train, test = split(frame, train_periods=12, test_periods=6)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2_000))
    model.fit(x[train], frame.loc[train, LABEL[unit]])
    return model.predict_proba(x[test])[:, 1], test


def top_share(frame: pd.DataFrame, score: np.ndarray, share: float = 0.05) -> np.ndarray:
    """Mask of the top ``share`` of rows by score within each period (the outreach capacity)."""
    ranked = pd.DataFrame({"period": frame["period"].to_numpy(), "score": score})
    rank = ranked.groupby("period")["score"].rank(ascending=False, method="first")
    size = ranked.groupby("period")["score"].transform("size")
    return (rank <= np.floor(share * size)).to_numpy()


HEURISTIC: dict[Unit, str] = {
    "individual": "shelter_contacts_12m",
    "neighbourhood": "eviction_rate",
}


@pytest.mark.parametrize("unit", UNITS)
def test_features_carry_learnable_signal(populations: dict[Unit, pd.DataFrame], unit: Unit) -> None:
    frame = populations[unit]
    score, test = fit_scores(frame, unit)
    truth = frame.loc[test, TRUE_LABEL[unit]].to_numpy()
    auc = roc_auc_score(truth, score)
    assert 0.74 <= auc <= 0.87
    top = top_share(frame.loc[test], score)
    assert truth[top].mean() >= 3.0 * truth.mean()

    heuristic = frame.loc[test, HEURISTIC[unit]].to_numpy(dtype=float)
    heuristic_auc = roc_auc_score(truth, heuristic)
    assert 0.58 <= heuristic_auc <= auc - 0.04


@pytest.mark.parametrize("unit", UNITS)
def test_sensitive_attributes_add_little_beyond_features(
    populations: dict[Unit, pd.DataFrame], unit: Unit
) -> None:
    frame = populations[unit]
    without, test = fit_scores(frame, unit)
    with_attributes, _ = fit_scores(frame, unit, with_sensitive=True)
    truth = frame.loc[test, TRUE_LABEL[unit]]
    assert roc_auc_score(truth, with_attributes) <= roc_auc_score(truth, without) + 0.01


# ---------------------------------------------------------------------------------------------
# Bias knobs
# ---------------------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(unit=units, seed=seeds, rate=st.floats(min_value=0.0, max_value=1.0), data=st.data())
def test_under_recording_only_drops_positives_of_the_group(
    unit: Unit, seed: int, rate: float, data: st.DataObject
) -> None:
    attribute = data.draw(st.sampled_from(sorted(SENSITIVE_ATTRIBUTES[unit])))
    group = data.draw(st.sampled_from(SENSITIVE_ATTRIBUTES[unit][attribute]))
    knobs = BiasKnobs(label_under_recording=LabelUnderRecording(attribute, group, rate))
    off = generate(unit=unit, rows=1_200, seed=seed)
    on = generate(unit=unit, rows=1_200, seed=seed, knobs=knobs)

    label, truth = LABEL[unit], TRUE_LABEL[unit]
    pd.testing.assert_series_equal(on[truth], off[truth])
    pd.testing.assert_series_equal(on["need_probability"], off["need_probability"])
    changed = (on[label] != on[truth]).to_numpy()
    assert (on.loc[changed, truth] == 1).all()
    assert (on.loc[changed, label] == 0).all()
    members = in_group(on, attribute, group)
    assert not (changed & ~members).any()

    # Outside the group nothing changes; inside, service contacts can only be thinned.
    outside = on.loc[~members].drop(columns=[label])
    pd.testing.assert_frame_equal(outside, off.loc[~members].drop(columns=[label]))
    for name in UNDER_RECORDED_FEATURES[unit]:
        assert (on.loc[members, name] <= off.loc[members, name]).all(), name


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("rate", [0.0, 0.3, 0.5, 1.0])
def test_under_recording_rate_is_as_stated(unit: Unit, rate: float) -> None:
    attribute, group = UNDER_RECORDED_GROUP[unit]
    knobs = BiasKnobs(label_under_recording=LabelUnderRecording(attribute, group, rate))
    frame = generate(unit=unit, rows=96_000, seed=4, knobs=knobs)
    members = in_group(frame, attribute, group)
    positives = frame.loc[members & (frame[TRUE_LABEL[unit]] == 1).to_numpy()]
    lost = (positives[LABEL[unit]] == 0).mean()
    assert within_binomial(lost, rate, len(positives))


@pytest.mark.parametrize("unit", UNITS)
def test_under_recording_thins_service_contacts_at_the_same_rate(unit: Unit) -> None:
    attribute, group = UNDER_RECORDED_GROUP[unit]
    knobs = BiasKnobs(label_under_recording=LabelUnderRecording(attribute, group, 0.5))
    off = generate(unit=unit, rows=96_000, seed=4)
    on = generate(unit=unit, rows=96_000, seed=4, knobs=knobs)
    members = in_group(on, attribute, group)
    for name in UNDER_RECORDED_FEATURES[unit]:
        ratio = on.loc[members, name].mean() / off.loc[members, name].mean()
        # Windowed counts repeat each event in many rows; 0.07 is about four standard errors.
        assert ratio == pytest.approx(0.5, abs=0.07), name


@settings(max_examples=15, deadline=None)
@given(
    unit=units,
    seed=seeds,
    factor=st.floats(min_value=0.1, max_value=5.0),
    data=st.data(),
)
def test_over_measurement_touches_only_the_feature_of_the_group(
    unit: Unit, seed: int, factor: float, data: st.DataObject
) -> None:
    feature = data.draw(st.sampled_from(OVER_MEASURABLE_FEATURES[unit]))
    attribute = data.draw(st.sampled_from(sorted(SENSITIVE_ATTRIBUTES[unit])))
    group = data.draw(st.sampled_from(SENSITIVE_ATTRIBUTES[unit][attribute]))
    knobs = BiasKnobs(
        proxy_over_measurement=ProxyOverMeasurement(feature, attribute, group, factor)
    )
    off = generate(unit=unit, rows=1_200, seed=seed)
    on = generate(unit=unit, rows=1_200, seed=seed, knobs=knobs)

    members = in_group(on, attribute, group)
    pd.testing.assert_frame_equal(on.loc[~members], off.loc[~members])
    # A recorded service contact is still a contact, so the months since the last one follow.
    unchanged = [feature, "months_since_last_service"] if unit == "individual" else [feature]
    pd.testing.assert_frame_equal(on.drop(columns=unchanged), off.drop(columns=unchanged))
    if factor >= 1.0:
        assert (on.loc[members, feature] >= off.loc[members, feature]).all()
    else:
        assert (on.loc[members, feature] <= off.loc[members, feature]).all()
    assert on[feature].dtype == off[feature].dtype


@pytest.mark.parametrize(
    ("unit", "feature", "attribute", "group", "factor"),
    [
        ("individual", "jail_bookings_12m", "race_ethnicity", "Black", 2.5),
        ("individual", "ems_calls_12m", "sex", "female", 0.5),
        ("neighbourhood", "service_call_rate", "majority_group", "Black", 2.0),
        ("neighbourhood", "eviction_rate", "majority_group", "White", 0.6),
    ],
)
def test_over_measurement_scales_the_group_mean_by_the_factor(
    unit: Unit, feature: str, attribute: str, group: str, factor: float
) -> None:
    knobs = BiasKnobs(
        proxy_over_measurement=ProxyOverMeasurement(feature, attribute, group, factor)
    )
    off = generate(unit=unit, rows=96_000, seed=8)
    on = generate(unit=unit, rows=96_000, seed=8, knobs=knobs)
    members = in_group(on, attribute, group)
    ratio = on.loc[members, feature].mean() / off.loc[members, feature].mean()
    assert ratio == pytest.approx(factor, rel=0.12)  # about four standard errors for rare counts


@pytest.mark.parametrize(
    ("unit", "attribute", "group", "share"),
    [
        ("individual", "race_ethnicity", "American Indian or Alaska Native", 0.005),
        ("individual", "disability", "yes", 0.05),
        ("neighbourhood", "majority_group", "Asian", 0.02),
        ("neighbourhood", "income_quintile", "Q1", 0.05),
    ],
)
def test_small_group_has_the_stated_share(
    unit: Unit, attribute: str, group: str, share: float
) -> None:
    knobs = BiasKnobs(small_group=SmallGroup(attribute, group, share))
    frame = generate(unit=unit, rows=240_000, seed=6, knobs=knobs)
    ids = frame.drop_duplicates(ID_COLUMN[unit])
    observed = (ids[attribute] == group).mean()
    if attribute == "income_quintile":  # quintiles are cut from exact ranks
        assert observed == pytest.approx(share, abs=1.0 / len(ids))
    else:
        assert within_binomial(observed, share, len(ids))
    # The other groups keep their relative sizes.
    others = ids.loc[ids[attribute] != group, attribute].value_counts(normalize=True)
    baseline = generate(unit=unit, rows=240_000, seed=6).drop_duplicates(ID_COLUMN[unit])
    expected = baseline.loc[baseline[attribute] != group, attribute].value_counts(normalize=True)
    pd.testing.assert_series_equal(
        others.sort_index(), expected.sort_index(), atol=0.02, check_names=False
    )


def recall_at_capacity(frame: pd.DataFrame, unit: Unit, attribute: str, group: str) -> float:
    """Recall against the true label for a group, at the top 5% per period.

    A plain logistic regression is trained on the recorded label of the first six periods and
    evaluated on the last twelve, as outreach would use it.
    """
    x = design(frame, unit)
    train, test = split(frame, train_periods=6, test_periods=12)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2_000))
    model.fit(x[train], frame.loc[train, LABEL[unit]])
    evaluated = frame.loc[test]
    selected = top_share(evaluated, model.predict_proba(x[test])[:, 1])
    positives = (evaluated[TRUE_LABEL[unit]] == 1).to_numpy() & in_group(
        evaluated, attribute, group
    )
    return float(selected[positives].mean())


@pytest.mark.slow
@pytest.mark.parametrize("unit", UNITS)
def test_biased_preset_lowers_recall_for_the_under_recorded_group(unit: Unit) -> None:
    attribute, group = UNDER_RECORDED_GROUP[unit]
    fair = generate_preset(unit=unit, rows=160_000, seed=21, preset="default")
    biased = generate_preset(unit=unit, rows=160_000, seed=21, preset="biased")
    fair_recall = recall_at_capacity(fair, unit, attribute, group)
    biased_recall = recall_at_capacity(biased, unit, attribute, group)
    assert biased_recall <= fair_recall - 0.03, (fair_recall, biased_recall)


# ---------------------------------------------------------------------------------------------
# Bad arguments
# ---------------------------------------------------------------------------------------------

GOOD = {"unit": "individual", "rows": 240, "seed": 0, "periods": 12}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"unit": "household"}, "unit: must be one of 'individual', 'neighbourhood'"),
        ({"rows": 0}, "rows: must be a positive integer (got 0)"),
        ({"rows": -5}, "rows: must be a positive integer (got -5)"),
        ({"rows": 2.5}, "rows: must be a positive integer (got 2.5)"),
        ({"rows": True}, "rows: must be a positive integer (got True)"),
        ({"rows": 11}, "rows: must be >= periods so every id has a full history"),
        ({"periods": 7}, "periods: must be an integer >= 8 (got 7)"),
        ({"periods": "12"}, "periods: must be an integer >= 8 (got '12')"),
        ({"seed": -1}, "seed: must be a non-negative integer (got -1)"),
        ({"start": "2023-13"}, "start: must be a month as 'YYYY-MM' (got '2023-13')"),
        ({"start": "Jan 2023"}, "start: must be a month as 'YYYY-MM'"),
        ({"knobs": {"small_group": None}}, "knobs: must be a BiasKnobs (got dict)"),
    ],
)
def test_bad_arguments_are_named(changes: dict[str, object], message: str) -> None:
    with pytest.raises(BadInputError) as caught:
        generate(**{**GOOD, **changes})
    assert message in str(caught.value)
    assert caught.value.details


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        (
            BiasKnobs(label_under_recording=LabelUnderRecording("race", "Black", 0.5)),
            "knobs.label_under_recording.attribute: unknown attribute 'race' for individual",
        ),
        (
            BiasKnobs(label_under_recording=LabelUnderRecording("race_ethnicity", "Latino", 0.5)),
            "knobs.label_under_recording.group: unknown group 'Latino' of 'race_ethnicity'",
        ),
        (
            BiasKnobs(label_under_recording=LabelUnderRecording("sex", "female", 1.5)),
            "knobs.label_under_recording.rate: must be a number in [0, 1] (got 1.5)",
        ),
        (
            BiasKnobs(label_under_recording=LabelUnderRecording("sex", "female", -0.1)),
            "knobs.label_under_recording.rate: must be a number in [0, 1] (got -0.1)",
        ),
        (
            BiasKnobs(
                proxy_over_measurement=ProxyOverMeasurement("income_band", "sex", "male", 2.0)
            ),
            "knobs.proxy_over_measurement.feature: 'income_band' is not an over-measurable",
        ),
        (
            BiasKnobs(
                proxy_over_measurement=ProxyOverMeasurement("jail_bookings_12m", "sex", "x", 2.0)
            ),
            "knobs.proxy_over_measurement.group: unknown group 'x' of 'sex'",
        ),
        (
            BiasKnobs(
                proxy_over_measurement=ProxyOverMeasurement("jail_bookings_12m", "sex", "male", 0)
            ),
            "knobs.proxy_over_measurement.factor: must be a number > 0 (got 0)",
        ),
        (
            BiasKnobs(
                proxy_over_measurement=ProxyOverMeasurement(
                    "jail_bookings_12m", "sex", "male", float("nan")
                )
            ),
            "knobs.proxy_over_measurement.factor: must be a number > 0 (got nan)",
        ),
        (
            BiasKnobs(small_group=SmallGroup("majority_group", "Asian", 0.02)),
            "knobs.small_group.attribute: unknown attribute 'majority_group' for individual",
        ),
        (
            BiasKnobs(small_group=SmallGroup("age_band", "65+", 1.0)),
            "knobs.small_group.share: must be a number strictly between 0 and 1 (got 1.0)",
        ),
    ],
)
def test_bad_knobs_are_named(knobs: BiasKnobs, message: str) -> None:
    with pytest.raises(BadInputError) as caught:
        generate(**GOOD, knobs=knobs)
    assert message in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    knobs = BiasKnobs(
        label_under_recording=LabelUnderRecording("sex", "female", 2.0),
        small_group=SmallGroup("sex", "nobody", 0.1),
    )
    with pytest.raises(BadInputError) as caught:
        generate(unit="individual", rows=0, seed=-1, periods=3, start="x", knobs=knobs)
    fields = [detail.split(":")[0] for detail in caught.value.details]
    assert fields == [
        "periods",
        "rows",
        "seed",
        "start",
        "knobs.label_under_recording.rate",
        "knobs.small_group.group",
    ]
    assert "(and 5 more problem(s))" in caught.value.message


@small_settings
@given(rate=st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1.0 + 1e-9)))
def test_any_rate_outside_the_unit_interval_is_rejected(rate: float) -> None:
    knobs = BiasKnobs(label_under_recording=LabelUnderRecording("sex", "male", rate))
    with pytest.raises(BadInputError, match=r"label_under_recording\.rate"):
        generate(**GOOD, knobs=knobs)


def test_unknown_preset_is_named() -> None:
    with pytest.raises(BadInputError, match="unknown preset 'unfair'; expected one of"):
        generate_preset(unit="individual", rows=240, seed=0, preset="unfair")


def test_preset_checks_the_other_arguments() -> None:
    with pytest.raises(BadInputError, match="rows: must be >= periods"):
        generate_preset(unit="neighbourhood", rows=10, seed=0, preset="biased")
    with pytest.raises(BadInputError, match="unit: must be one of"):
        generate_preset(unit="county", rows=240, seed=0)


@pytest.mark.parametrize("name", ["population.json", "population.parquet.gz", "population"])
def test_write_rejects_unknown_extensions(name: str, tmp_path: Path) -> None:
    frame = generate(**GOOD)
    with pytest.raises(BadInputError, match="unsupported extension") as caught:
        write_population(frame, tmp_path / name)
    suffix = Path(name).suffix
    assert (repr(suffix) if suffix else "no extension") in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_write_names_a_missing_folder(tmp_path: Path) -> None:
    frame = generate(**GOOD)
    with pytest.raises(BadInputError, match="does not exist"):
        write_population(frame, tmp_path / "missing" / "population.csv")
