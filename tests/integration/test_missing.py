"""Missing values, honestly handled: features with ``missing = "allowed"`` train, explain exactly,
release, serve and are audited for missingness by group; every other feature refuses gaps with a
message that says how to allow them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st

from audits.gate import evaluate
from audits.policy import Missingness
from audits.proxies import MISSINGNESS_ALPHA, MISSINGNESS_RATIO, check_missingness
from kernel.errors import DataValidationError, SpecError
from kernel.home import Home
from lifecycle.reaudit import reaudit
from lifecycle.release import ReleaseResult, release
from lifecycle.verified_loading import trust_for
from model.data import read_table, validate
from model.records import check_records
from model.registry import connect
from model.spec import ALLOW_MISSING_HINT, MISSING_LEVEL, ExperimentSpec, parse_spec
from model.synthetic import GAP_COLUMNS, generate_preset
from model.train import CandidateResult, TrainingResult, train
from outreach.cli import main
from service import create_app
from store.accounts import add_user, set_areas
from store.queue import ALL_AREAS
from tests.support.specs import INDIVIDUAL_SPEC, LENIENT, fast_mapping, policy_text, write_toml

#: Plain words for the gaps of ``GAP_COLUMNS`` (the "gaps" synthetic preset).
GAP_REASONS = {
    "income_band": "no income record on file",
    "employment_status": "no employment record on file",
    "months_since_last_service": "no record of a recent service contact",
}


def allow_gaps(raw: dict[str, Any], reasons: dict[str, str] = GAP_REASONS) -> dict[str, Any]:
    """The spec mapping with ``missing = "allowed"`` on the features named in ``reasons``."""
    features = [
        {**f, "missing": "allowed", "reason_missing": reasons[f["name"]]}
        if f["name"] in reasons
        else f
        for f in raw["features"]
    ]
    return {**raw, "features": features}


@pytest.fixture(scope="module")
def gaps_spec() -> ExperimentSpec:
    """The fast individual spec whose ``GAP_COLUMNS`` may be missing."""
    assert set(GAP_REASONS) == set(GAP_COLUMNS)
    return parse_spec(allow_gaps(fast_mapping()), source_path=str(INDIVIDUAL_SPEC))


@pytest.fixture(scope="module")
def gaps_population() -> pd.DataFrame:
    """The ``population`` fixture's people with the "gaps" preset's missing values."""
    return generate_preset(unit="individual", rows=40_000, seed=3, periods=20, preset="gaps")


@pytest.fixture(scope="module")
def gaps_trained(gaps_spec: ExperimentSpec, gaps_population: pd.DataFrame) -> TrainingResult:
    return train(gaps_spec, validate(gaps_population, gaps_spec))


@pytest.fixture(scope="module", params=["logistic", "boosted"])
def candidate(request: pytest.FixtureRequest, gaps_trained: TrainingResult) -> CandidateResult:
    return next(c for c in gaps_trained.candidates if c.config.name == request.param)


# --- the spec -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda f: f.update(missing="allowed"),
            "'reason_missing' is required",
        ),
        (
            lambda f: f.update(reason_missing="no record"),
            "'reason_missing' is only for features with missing = \"allowed\"",
        ),
        (
            lambda f: f.update(
                categories=[*f["categories"], MISSING_LEVEL],
                missing="allowed",
                reason_missing="no record",
            ),
            f"'categories' cannot list {MISSING_LEVEL!r}",
        ),
        (lambda f: f.update(missing="sometimes"), "missing: Input should be"),
    ],
)
def test_a_spec_states_gaps_with_their_words(change, expected: str) -> None:
    raw = fast_mapping()
    index = next(i for i, f in enumerate(raw["features"]) if f["name"] == "income_band")
    change(raw["features"][index])
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    details = caught.value.details
    assert [d for d in details if d.startswith(f"features[{index}]") and expected in d], details


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_allowed_gaps_pass_validation_in_every_file_type(
    tmp_path: Path, suffix: str, gaps_spec: ExperimentSpec, gaps_population: pd.DataFrame
) -> None:
    frame = gaps_population.head(2000)
    path = tmp_path / f"data{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path, index=False)
    dataset = validate(read_table(path), gaps_spec)
    for column in GAP_COLUMNS:
        gaps = frame[column].isna().to_numpy()
        assert gaps.any()
        assert np.array_equal(pd.isna(dataset.frame[column]).to_numpy(), gaps)


@pytest.mark.parametrize("column", GAP_COLUMNS)
def test_features_that_refuse_gaps_say_how_to_allow_them(
    column: str, small_spec: ExperimentSpec, gaps_population: pd.DataFrame
) -> None:
    frame = gaps_population.head(2000)
    rows = np.flatnonzero(frame[column].isna().to_numpy())
    with pytest.raises(DataValidationError) as caught:
        validate(frame, small_spec)
    shown = ", ".join(str(r + 1) for r in rows[:5])
    assert f"column '{column}': missing in rows {shown}" in "\n".join(caught.value.details)
    assert ALLOW_MISSING_HINT in "\n".join(caught.value.details)


def test_train_refuses_gaps_with_exit_2(
    tmp_path: Path, small_spec: ExperimentSpec, gaps_population: pd.DataFrame
) -> None:
    spec = write_toml(fast_mapping(), tmp_path / "experiment.toml")
    data = tmp_path / "gaps.csv"
    gaps_population.head(2000).to_csv(data, index=False)
    home = tmp_path / "home"
    result = CliRunner().invoke(
        main, ["--home", str(home), "train", str(spec), "--data", str(data)]
    )
    assert result.exit_code == 2, result.output
    assert "column 'income_band': missing in rows" in result.output
    assert 'set missing = "allowed" and reason_missing' in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("container", [dict, lambda r: json.loads(json.dumps(r))])
def test_null_is_a_gap_only_where_allowed(
    container, gaps_spec: ExperimentSpec, small_spec: ExperimentSpec
) -> None:
    record = container(
        {f.name: (f.categories[0] if f.kind == "category" else 1.0) for f in gaps_spec.features}
    )
    for column in GAP_COLUMNS:
        record[column] = None
    problems, columns = check_records([record], gaps_spec.features)
    assert problems == []
    assert all(pd.isna(columns[c][0]) for c in GAP_COLUMNS)
    problems, _ = check_records([record], small_spec.features)
    assert sorted(problems) == sorted(
        f"records[0].{c}: is missing (null); {ALLOW_MISSING_HINT}" for c in GAP_COLUMNS
    )


# --- exact explanations -------------------------------------------------------------------------


@st.composite
def records_with_gaps(draw: st.DrawFn, spec: ExperimentSpec) -> pd.DataFrame:
    n = draw(st.integers(1, 20))
    columns: dict[str, list[Any]] = {}
    for f in spec.features:
        if f.kind == "category":
            values: st.SearchStrategy[Any] = st.sampled_from(f.categories)
        elif f.kind == "binary":
            values = st.sampled_from([0.0, 1.0])
        elif f.kind == "count":
            values = st.integers(int(f.lower or 0), int(f.upper or 1000)).map(float)
        else:
            values = st.floats(f.lower or 0.0, f.upper or 1000.0, allow_nan=False)
        if f.allows_missing:
            values = st.one_of(values, st.just(math.nan))
        columns[f.name] = draw(st.lists(values, min_size=n, max_size=n))
    frame = pd.DataFrame(columns)
    for f in spec.features:
        if f.kind == "category":
            frame[f.name] = frame[f.name].astype(object)
    return frame


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_contributions_with_gaps_add_up_to_the_log_odds(
    candidate: CandidateResult, gaps_spec: ExperimentSpec, data
) -> None:
    frame = data.draw(records_with_gaps(gaps_spec))
    model = candidate.final.additive
    total = model.base_value + model.contributions(frame).sum(axis=1)
    raw = candidate.final.pipeline.decision_function(frame)
    expected = model.calibration_slope * raw + model.calibration_intercept
    assert np.abs(total - expected).max() < 1e-9


def test_a_gap_has_its_own_learned_value(candidate: CandidateResult) -> None:
    terms = {t.feature: t for t in candidate.final.additive.terms}
    assert all(terms[c].missing is not None for c in GAP_COLUMNS)
    assert all(t.missing is None for name, t in terms.items() if name not in GAP_COLUMNS)
    assert any(terms[c].missing != 0.0 for c in GAP_COLUMNS)


def test_a_gap_that_raises_a_score_reads_reason_missing(
    candidate: CandidateResult, gaps_population: pd.DataFrame
) -> None:
    model = candidate.scoring_model
    frame = gaps_population.head(4000)
    batch = model.score_frame(frame)
    many = model.reason_dicts(batch)
    one_by_one = [[r.to_dict() for r in model.reasons(batch, i)] for i in range(len(frame))]
    assert many == one_by_one
    gap_reasons = [r for rs in many for r in rs if r["value"] is None]
    assert gap_reasons
    for reason in gap_reasons:
        assert reason["feature"] in GAP_COLUMNS
        assert reason["text"] == GAP_REASONS[reason["feature"]]


# --- release, serve, audit ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def gaps_released(
    tmp_path_factory: pytest.TempPathFactory,
    gaps_spec: ExperimentSpec,
    gaps_population: pd.DataFrame,
) -> tuple[Home, ReleaseResult]:
    home = Home(tmp_path_factory.mktemp("gaps") / "home")
    dataset = validate(gaps_population, gaps_spec)
    result = release(
        gaps_spec, dataset, connect(home), policy=policy_text(**LENIENT), trust=trust_for(home)
    )
    assert result.promoted, result.decision
    return home, result


def test_a_model_with_gaps_is_served_and_scores_a_null(
    gaps_released: tuple[Home, ReleaseResult], tmp_path: Path, gaps_spec: ExperimentSpec
) -> None:
    home, _ = gaps_released
    app = create_app(
        {
            "HOME": home,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}",
            "WATCH_SECONDS": 0,
            "TESTING": True,
        }
    )
    client: FlaskClient = app.test_client()
    db = app.extensions["outreach.db"]
    token = add_user(db, "coordinator user", "coordinator")
    set_areas(db, "coordinator user", [ALL_AREAS])
    headers = {"Authorization": f"Bearer {token}"}
    record: dict[str, Any] = {"id": "1"}
    for f in gaps_spec.features:
        record[f.name] = f.categories[0] if f.kind == "category" else 1.0
    record["income_band"] = None
    record["months_since_last_service"] = None
    response = client.post(
        "/api/v1/score", json={"purpose": "outreach", "records": [record]}, headers=headers
    )
    assert response.status_code == 200, response.json
    result = response.json["results"][0]
    serving = app.extensions["outreach.model"].current.model
    expected = serving.score_records([record], allowed_extra={"id"}).scores[0]
    assert result["score"] == pytest.approx(expected, abs=1e-6)
    for reason in result["reasons"]:
        if reason["feature"] in ("income_band", "months_since_last_service"):
            assert reason["value"] is None and reason["text"] == GAP_REASONS[reason["feature"]]
    schema = {e["name"]: e["nullable"] for e in serving.input_schema()}
    assert {name for name, nullable in schema.items() if nullable} == set(GAP_COLUMNS)
    refused = dict(record, er_visits_90d=None)
    bad = client.post(
        "/api/v1/score", json={"purpose": "outreach", "records": [refused]}, headers=headers
    )
    assert bad.status_code == 400
    assert "er_visits_90d" in json.dumps(bad.json) and "missing = " in json.dumps(bad.json)


def test_the_report_shows_missingness_per_group(
    gaps_released: tuple[Home, ReleaseResult],
) -> None:
    _, result = gaps_released
    report = result.chosen.report
    section = report["missingness"]
    assert "chi-square" in section["rule"]
    found = {(m["feature"], m["attribute"]): m for m in section["features"]}
    assert {(c, "race_ethnicity") for c in GAP_COLUMNS} <= set(found)
    for column in GAP_COLUMNS:
        by_race = found[(column, "race_ethnicity")]
        assert 0.03 < by_race["share"] < 0.12 and by_race["counted"] == "people"
        groups = {g["group"]: g for g in by_race["groups"]}
        assert groups["Hispanic or Latino"]["finding"]
        assert groups["Hispanic or Latino"]["share"] > 2 * groups["White"]["share"]
    assert any("Hispanic or Latino" in f for f in section["findings"])
    html = result.chosen.written.html_path.read_text()
    assert "Are records missing more often for some groups?" in html
    assert "no income record on file" in html


def test_the_default_policy_lists_missingness_findings_among_the_warnings(
    gaps_released: tuple[Home, ReleaseResult],
) -> None:
    _, result = gaps_released
    assert result.policy.missingness.action == "warn" and result.promoted
    warnings = result.summary()["warnings"]
    gaps = [w for w in warnings if w["kind"] == "missingness"]
    assert {(w["group"], w["attribute"]) for w in gaps} >= {
        ("Hispanic or Latino", "race_ethnicity")
    }
    assert all("may stand in for the group" in w["message"] for w in gaps)
    assert {w["message"].split("'")[1] for w in gaps} <= set(GAP_COLUMNS)
    flagged = result.chosen.report["missingness"]["findings"]
    assert len(gaps) == len(flagged)  # every finding of the report, no other
    assert [w for w in result.chosen.report["warnings"] if w["kind"] == "missingness"]


@pytest.mark.parametrize(
    ("action", "verdict", "where"),
    [("warn", None, "warnings"), ("review", "REVIEW", "review"), ("block", "FAIL", "breaches")],
)
def test_the_policy_s_missingness_action_decides_what_a_finding_does(
    gaps_released: tuple[Home, ReleaseResult],
    gaps_spec: ExperimentSpec,
    action: str,
    verdict: str | None,
    where: str,
) -> None:
    """The chosen candidate's audit judged again, with the findings of its own audit data."""
    _, result = gaps_released
    data = result.training.validation
    sensitive = {a: data.sensitive(a) for a in result.policy.sensitive_attributes}
    results = check_missingness(data.features, sensitive, gaps_spec, clusters=data.ids)
    findings = [group for m in results for group, _ in m.flagged]
    assert findings and all(g.ratio >= MISSINGNESS_RATIO for g in findings)
    assert all(g.p_value < MISSINGNESS_ALPHA for g in findings)
    policy = result.policy.model_copy(update={"missingness": Missingness(action=action)})
    audit = result.chosen.outcome.audit
    without = evaluate(policy, audit)
    decided = evaluate(policy, audit, missingness=results)
    assert decided.verdict == (verdict or without.verdict)
    placed = [b for b in getattr(decided, where) if b.kind == "missingness"]
    assert len(placed) == len(findings)
    assert all(b.blocking == (action == "block") for b in placed)
    others = {"warnings", "review", "breaches"} - {where}
    assert not [b for name in others for b in getattr(decided, name) if b.kind == "missingness"]
    if action == "review":
        named = {f"Hispanic or Latino (race_ethnicity), gaps in '{c}'" for c in GAP_COLUMNS}
        assert named & set(decided.review_groups)


def test_a_reaudit_judges_missingness_by_the_policy_too(
    gaps_released: tuple[Home, ReleaseResult], gaps_population: pd.DataFrame, tmp_path: Path
) -> None:
    """``outreach audit --model NAME/VERSION`` on the same data under a policy that blocks on
    missingness: the flagged groups are its breaches."""
    home, result = gaps_released
    data = tmp_path / "population.parquet"
    gaps_population.to_parquet(data, index=False)
    policy = result.policy.model_copy(update={"missingness": Missingness(action="block")})
    reference = f"{result.spec.name}/{result.chosen.candidate.version}"
    report = reaudit(connect(home), reference, str(data), policy=policy)
    gaps = [b for b in report["breaches"] if b["kind"] == "missingness"]
    assert report["decision"] == "FAIL" and gaps
    assert len(gaps) == len(report["missingness"]["findings"])
    assert ("Hispanic or Latino", "race_ethnicity") in {(b["group"], b["attribute"]) for b in gaps}


def test_the_gaps_preset_blanks_people_more_in_one_group() -> None:
    plain = generate_preset(unit="individual", rows=48_000, seed=1)
    gaps = generate_preset(unit="individual", rows=48_000, seed=1, preset="gaps")
    others = [c for c in plain.columns if c not in GAP_COLUMNS]
    assert plain[others].equals(gaps[others])  # the knob draws only from its own stream
    for column in GAP_COLUMNS:
        blank = gaps[column].isna()
        assert 0.045 < blank.mean() < 0.075
        by_group = blank.groupby(gaps["race_ethnicity"]).mean()
        assert by_group["Hispanic or Latino"] > 2 * by_group["White"]
        kept = ~blank
        assert (gaps.loc[kept, column] == plain.loc[kept, column]).all()
