"""Drift: the release's reference profile, and a period compared with it overall and per group."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2_contingency, ks_2samp

from audits.drift import PSI_FLOOR, DriftReport, drift, psi, psi_band, reference_profile
from kernel.errors import BadInputError
from model.spec import ExperimentSpec
from tests.support.homes import TwoReleases

KINDS = {
    "eviction_filings_12m": "count",
    "months_since_last_service": "number",
    "snap_enrolled": "binary",
    "income_band": "category",
}
INCOMES = ["none", "very_low", "low", "moderate"]
GROUPS, GROUP_SHARES = ["a", "b", "small"], [0.6, 0.3975, 0.0025]


def sample(
    seed: int,
    n: int = 20_000,
    *,
    evictions: float = 0.4,
    months_in_b: float = 1.0,
) -> tuple[pd.DataFrame, np.ndarray, dict[str, np.ndarray]]:
    """A seeded population: ``evictions`` is the mean eviction count; ``months_in_b`` stretches
    group b's months since the last service (a shift in one group only)."""
    rng = np.random.default_rng(seed)
    group = rng.choice(GROUPS, n, p=GROUP_SHARES)
    months = rng.exponential(6.0, n) * np.where(group == "b", months_in_b, 1.0)
    frame = pd.DataFrame(
        {
            "eviction_filings_12m": rng.poisson(evictions, n).astype(float),
            "months_since_last_service": months,
            "snap_enrolled": (rng.random(n) < 0.5).astype(float),
            "income_band": rng.choice(INCOMES, n, p=[0.1, 0.3, 0.4, 0.2]),
        }
    )
    scores = rng.beta(1.0, 9.0, n)
    return frame, scores, {"group": group, "sex": rng.choice(["female", "male"], n)}


@pytest.fixture(scope="module")
def profile() -> dict:
    return reference_profile(*_with_kinds(sample(1)))


def _with_kinds(drawn):
    frame, scores, sensitive = drawn
    return frame, KINDS, scores, sensitive


def _comparison(report: DriftReport, feature: str, group: str | None = None):
    item = (
        report.score
        if feature == "score"
        else next(f for f in report.features if f.name == feature)
    )
    if group is None:
        return item.overall
    return next(c for c in item.groups if c.group == group)


# ----------------------------------------------------------------------------- the profile


def test_profile_layout_and_json_round_trip(profile: dict) -> None:
    loaded = json.loads(json.dumps(profile, allow_nan=False))
    assert loaded == profile
    assert profile["version"] == 1 and profile["rows"] == 20_000
    assert set(profile["features"]) == set(KINDS)
    assert list(profile["attributes"]["group"]["groups"]) == sorted(GROUPS)
    assert sum(profile["attributes"]["group"]["rows"]) == 20_000
    evictions = profile["features"]["eviction_filings_12m"]
    assert evictions["labels"][-1] == "(missing)"
    assert len(evictions["edges"]) <= 9 and evictions["edges"] == sorted(set(evictions["edges"]))
    assert sum(evictions["counts"]) == 20_000
    income = profile["features"]["income_band"]
    assert income["labels"] == [*sorted(INCOMES), "(unseen)", "(missing)"]
    for entry in (*profile["features"].values(), profile["score"]):
        by_group = entry["by_group"]["group"]
        assert np.array_equal(np.sum(list(by_group.values()), axis=0), entry["counts"])
    # Only the continuous kinds carry the CDF points the KS test reads.
    assert {n for n, e in profile["features"].items() if "cdf" in e} == {
        "months_since_last_service"
    }
    assert len(profile["score"]["cdf"]["points"]) <= 101
    assert len(json.dumps(profile)) < 100_000


def test_drift_from_the_loaded_copy_equals_drift_from_the_profile(profile: dict) -> None:
    period = sample(2, 5_000, evictions=1.2)
    direct = drift(profile, *period).as_dict()
    loaded = drift(json.loads(json.dumps(profile)), *period).as_dict()
    assert direct == loaded
    json.dumps(direct, allow_nan=False)


def test_profile_refuses_what_it_cannot_describe() -> None:
    frame, scores, sensitive = sample(1, 200)
    with pytest.raises(BadInputError) as err:
        reference_profile(
            frame, {**KINDS, "absent": "count", "snap_enrolled": "flag"}, scores, sensitive
        )
    assert "features.absent: no such column" in str(err.value)
    assert "features.snap_enrolled: unknown kind 'flag'" in str(err.value)
    with pytest.raises(BadInputError, match="scores: 199 values for 200 rows"):
        reference_profile(frame, KINDS, scores[:-1], sensitive)
    with pytest.raises(BadInputError, match="version 2 is not supported"):
        drift({"version": 2}, frame, scores, sensitive)


# ----------------------------------------------------------------------------- detection


def test_a_shifted_feature_and_a_shifted_group_are_warned_about(profile: dict) -> None:
    frame, scores, sensitive = sample(2, evictions=1.2, months_in_b=2.5)
    report = drift(profile, frame, scores, sensitive)
    evictions = _comparison(report, "eviction_filings_12m")
    assert evictions.band == "major" and evictions.test.name == "chi-square"
    assert evictions.test.p_value < 0.001
    in_b = _comparison(report, "months_since_last_service", "b")
    assert in_b.band == "major" and in_b.test.name == "Kolmogorov-Smirnov"
    assert in_b.test.p_value < 0.001
    # Group a's months did not move.
    assert _comparison(report, "months_since_last_service", "a").band == "stable"
    assert report.any_major
    assert any(
        w.startswith("feature eviction_filings_12m: PSI ")
        and "(major shift) overall; the distribution test agrees (p < 0.001)" in w
        for w in report.warnings
    )
    assert any(
        w.startswith("feature months_since_last_service: PSI ") and "for group “b”" in w
        for w in report.warnings
    )
    assert report.as_dict()["any_major"] is True


def test_an_unshifted_period_from_the_same_population_is_stable(profile: dict) -> None:
    report = drift(profile, *sample(2))
    judged = [c for f in (report.score, *report.features) for c in f.comparisons if c.judged]
    assert judged and all(c.band == "stable" for c in judged)
    assert max(c.psi for c in judged) < 0.02
    assert report.warnings == () and report.notes == () and not report.any_major


def test_a_moderate_shift_is_a_note_not_a_warning(profile: dict) -> None:
    report = drift(profile, *sample(2, evictions=0.75))
    assert _comparison(report, "eviction_filings_12m").band == "moderate"
    assert any("(moderate shift) overall" in n for n in report.notes)
    assert not any("eviction" in w for w in report.warnings)


def test_a_group_too_small_to_judge_never_warns(profile: dict) -> None:
    frame, scores, sensitive = sample(2)
    small = sensitive["group"] == "small"
    frame.loc[small, "eviction_filings_12m"] = 9.0  # an enormous shift, in 50 people
    report = drift(profile, frame, scores, sensitive)
    comparison = _comparison(report, "eviction_filings_12m", "small")
    assert 0 < comparison.n_reference < 100 and not comparison.judged
    assert comparison.band is None and "too few people to judge" in comparison.note
    assert comparison.psi is not None and comparison.psi > 0.25  # shown, never a warning
    assert not any("“small”" in line for line in report.warnings + report.notes)
    assert not report.any_major


def test_a_neighbourhood_models_small_group_counts_areas(profile: dict) -> None:
    report = drift(profile, *sample(2), unit="neighbourhood")
    comparison = _comparison(report, "eviction_filings_12m", "small")
    assert not comparison.judged and comparison.note is not None
    assert comparison.note.startswith("too few areas to judge (fewer than 100 areas:")
    assert "people" not in comparison.note


def test_a_group_only_the_period_has_is_too_few_to_judge(profile: dict) -> None:
    frame, scores, sensitive = sample(2)
    sensitive["group"] = np.where(sensitive["group"] == "b", "new", sensitive["group"])
    report = drift(profile, frame, scores, sensitive)
    new = _comparison(report, "score", "new")
    assert new.n_reference == 0 and new.n_period > 100 and not new.judged
    gone = _comparison(report, "score", "b")
    assert gone.n_period == 0 and not gone.judged and gone.psi is None


# ----------------------------------------------------------------------------- unusual values


def test_unseen_categories_and_missing_values(profile: dict) -> None:
    frame, scores, sensitive = sample(2, 2_000)
    frame["income_band"] = frame["income_band"].astype(object)
    frame.loc[:299, "income_band"] = "unknown"
    frame.loc[300:349, "income_band"] = None
    frame.loc[:99, "eviction_filings_12m"] = np.nan
    frame.loc[:99, "months_since_last_service"] = np.nan
    report = drift(profile, frame, scores, sensitive)
    income = next(f for f in report.features if f.name == "income_band")
    assert income.unseen == 300 and income.unseen_examples == ("unknown",)
    assert income.missing == 50
    assert any(
        "feature income_band: 300 of the period's 2,000 rows (15.0%)" in n and "'unknown'" in n
        for n in report.notes
    )
    evictions = next(f for f in report.features if f.name == "eviction_filings_12m")
    assert evictions.missing == 100 and evictions.overall.psi > 0.01
    months = next(f for f in report.features if f.name == "months_since_last_service")
    assert months.missing == 100 and months.overall.test is not None  # NaN left out of the KS
    json.dumps(report.as_dict(), allow_nan=False)


def test_missing_values_in_the_reference_have_their_own_bucket() -> None:
    frame, scores, sensitive = sample(1, 1_000)
    frame.loc[:9, "months_since_last_service"] = np.nan
    entry = reference_profile(frame, KINDS, scores, sensitive)["features"][
        "months_since_last_service"
    ]
    assert entry["counts"][-1] == 10
    assert sum(entry["cdf"]["counts"]) == 990


def test_a_feature_or_attribute_the_period_lacks_is_reported_not_a_crash(profile: dict) -> None:
    frame, scores, sensitive = sample(2, 1_000)
    del sensitive["sex"]
    report = drift(profile, frame.drop(columns=["snap_enrolled"]), scores, sensitive)
    assert report.missing_features == ("snap_enrolled",)
    assert any(w.startswith("feature snap_enrolled: absent") for w in report.warnings)
    assert report.missing_attributes == ("sex",)
    assert report.as_dict()["features"]["snap_enrolled"]["overall"] is None


def test_binary_values_read_the_same_whatever_their_type(profile: dict) -> None:
    frame, scores, sensitive = sample(2, 1_000)
    as_floats = drift(profile, frame, scores, sensitive).as_dict()
    for values in (frame["snap_enrolled"].astype(int), frame["snap_enrolled"].astype(bool)):
        as_other = drift(profile, frame.assign(snap_enrolled=values), scores, sensitive)
        assert (
            as_other.as_dict()["features"]["snap_enrolled"]
            == as_floats["features"]["snap_enrolled"]
        )


# ----------------------------------------------------------------------------- the statistics


def test_psi_matches_a_hand_computation() -> None:
    reference, period = [50, 30, 20, 0], [40, 30, 25, 5]
    q = [0.5, 0.3, 0.2, PSI_FLOOR]
    p = [0.4, 0.3, 0.25, 0.05]
    expected = sum((pi - qi) * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))
    assert psi(reference, period) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.0223144 + 0.0111572 + 0.0499 * math.log(500), rel=1e-6)
    assert [psi_band(v) for v in (0.0, 0.099, 0.1, 0.249, 0.25, 3.0)] == [
        "stable",
        "stable",
        "moderate",
        "moderate",
        "major",
        "major",
    ]


def test_psi_of_a_category_feature_matches_its_counts_by_hand() -> None:
    reference = pd.DataFrame({"income_band": ["low"] * 60 + ["none"] * 40})
    period = pd.DataFrame({"income_band": ["low"] * 30 + ["none"] * 50 + ["new"] * 20})
    kinds = {"income_band": "category"}
    profile = reference_profile(reference, kinds, np.zeros(100), {})
    report = drift(profile, period, np.zeros(100), {}, min_group_size=10)
    # Buckets low, none, (unseen), (missing): shares 0.6/0.4/0/0 against 0.3/0.5/0.2/0.
    by_hand = (
        (0.3 - 0.6) * math.log(0.3 / 0.6)
        + (0.5 - 0.4) * math.log(0.5 / 0.4)
        + (0.2 - PSI_FLOOR) * math.log(0.2 / PSI_FLOOR)
    )
    assert _comparison(report, "income_band").psi == pytest.approx(by_hand, rel=1e-12)


@pytest.mark.parametrize("feature", ["eviction_filings_12m", "snap_enrolled", "income_band"])
def test_chi_square_matches_scipy(profile: dict, feature: str) -> None:
    reference = sample(1)[0][feature]
    frame, scores, sensitive = sample(2, 3_000, evictions=0.5)
    report = drift(profile, frame, scores, sensitive)
    # The same table built independently: reference bins from the stored edges, or the values.
    entry = profile["features"][feature]
    if "edges" in entry:
        cut = [-np.inf, *entry["edges"], np.inf]
        ref = pd.cut(reference, cut).value_counts(sort=False).to_numpy()
        per = pd.cut(frame[feature], cut).value_counts(sort=False).to_numpy()
    else:
        ref = reference.value_counts().sort_index().to_numpy()
        per = frame[feature].value_counts().sort_index().to_numpy()
    table = np.vstack([ref, per])
    table = table[:, table.sum(axis=0) > 0]
    expected = chi2_contingency(table, correction=False)
    test = _comparison(report, feature).test
    assert test.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert test.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert test.dof == expected.dof


def test_ks_matches_scipy_when_the_points_hold_every_value() -> None:
    rng = np.random.default_rng(5)
    reference = rng.integers(0, 20, 10_000).astype(float)  # 20 values, each 5% of the rows
    period = rng.integers(3, 20, 4_000).astype(float)
    kinds = {"months_since_last_service": "number"}
    profile = reference_profile(
        pd.DataFrame({"months_since_last_service": reference}), kinds, np.zeros(10_000), {}
    )
    assert profile["features"]["months_since_last_service"]["cdf"]["points"] == list(
        np.arange(20.0)
    )
    report = drift(
        profile, pd.DataFrame({"months_since_last_service": period}), np.zeros(4_000), {}
    )
    test = _comparison(report, "months_since_last_service").test
    expected = ks_2samp(reference, period, method="asymp")
    assert test.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert test.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    scale=st.floats(0.5, 2.0),
    shift=st.floats(-1.0, 1.0),
)
def test_ks_on_the_points_is_within_one_step_below_the_exact_statistic(
    seed: int, scale: float, shift: float
) -> None:
    rng = np.random.default_rng(seed)
    reference, period = rng.normal(0, 1, 3_000), rng.normal(shift, scale, 2_000)
    profile = reference_profile(pd.DataFrame(index=range(3_000)), {}, reference, {})
    report = drift(profile, pd.DataFrame(index=range(2_000)), period, {})
    statistic = report.score.overall.test.statistic
    exact = ks_2samp(reference, period).statistic
    # Never above the exact statistic; short of it by at most the mass between two points (1%).
    assert exact - 0.0101 <= statistic <= exact + 1e-12


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(0, 1_000), min_size=2, max_size=12).flatmap(
        lambda r: st.tuples(
            st.just(r), st.lists(st.integers(0, 1_000), min_size=len(r), max_size=len(r))
        )
    )
)
def test_psi_is_never_negative(pair: tuple[list[int], list[int]]) -> None:
    reference, period = pair
    if sum(reference) == 0 or sum(period) == 0:
        with pytest.raises(ValueError, match="at least one row"):
            psi(reference, period)
        return
    assert psi(reference, period) >= 0.0


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(300, 3_000))
def test_a_sample_against_its_own_profile_has_no_drift(seed: int, rows: int) -> None:
    frame, scores, sensitive = sample(seed, rows)
    report = drift(reference_profile(frame, KINDS, scores, sensitive), frame, scores, sensitive)
    for comparison in (c for f in (report.score, *report.features) for c in f.comparisons):
        if comparison.n_period:
            assert comparison.psi == pytest.approx(0.0, abs=1e-12)
            assert comparison.test.statistic == pytest.approx(0.0, abs=1e-12)
    assert report.warnings == () and report.notes == ()


def test_row_order_does_not_change_the_report(profile: dict) -> None:
    frame, scores, sensitive = sample(2, 5_000, evictions=1.0)
    order = np.random.default_rng(0).permutation(len(frame))
    shuffled = drift(
        profile,
        frame.iloc[order].reset_index(drop=True),
        scores[order],
        {a: v[order] for a, v in sensitive.items()},
    )
    assert shuffled.as_dict() == drift(profile, frame, scores, sensitive).as_dict()


# ----------------------------------------------------------------------------- the release


def test_a_release_report_carries_the_reference_profile(
    small_spec: ExperimentSpec, two_releases: TwoReleases
) -> None:
    result = two_releases.good
    validation = result.training.validation
    for item in result.candidates:
        stored = json.loads(item.written.json_path.read_text())["reference_profile"]
        assert stored == item.report["reference_profile"]
        assert stored["version"] == 1 and stored["rows"] == len(validation.frame)
        assert set(stored["features"]) == set(small_spec.feature_names)  # reports sort keys
        assert set(stored["attributes"]) == set(result.policy.sensitive_attributes)
    # The served model's own audited data against the stored profile: no drift at all.
    chosen = result.chosen.candidate
    sensitive = {a: validation.sensitive(a) for a in result.policy.sensitive_attributes}
    stored = json.loads(result.chosen.written.json_path.read_text())["reference_profile"]
    report = drift(stored, validation.features, chosen.final.validation_scores, sensitive)
    assert report.warnings == () and not report.any_major
    assert report.score.overall.psi == pytest.approx(0.0, abs=1e-12)
