"""The gate's decisions judged by their error rates on audits whose truth is known.

Each scenario draws people (with the shipped group shares, persistent need and persistent
treatment) and runs the audit's own code; fixed seeds and tolerances that leave room for the
replicates' noise. The larger tables are in ``bench/gate_bench.py`` and docs/gate-and-policy.md.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from audits.audit import run_audit
from audits.gate import tail
from audits.group_metrics import interval, significance, tail_p_values
from audits.operating_characteristics import AuditShape, GroupShape, operating_characteristics
from audits.policy import Policy, parse_policy
from audits.shrinkage import pooled_estimates
from bench.gate_scenarios import Scenario, draw, independent, run
from outreach.cli import main
from tests.support.specs import DEFAULT_POLICY

RACE = "race_ethnicity"


def shipped(**changes: object) -> Policy:
    raw = tomllib.loads(DEFAULT_POLICY.read_text())
    raw.update(changes)
    return parse_policy(raw, sha256="test")


def race_only(**changes: object) -> Policy:
    return shipped(sensitive_attributes=[RACE], intersections=[], **changes)


# ----------------------------------------------------------------------------- construction


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.one_of(st.floats(0.0, 3.0), st.just(math.nan)), min_size=1, max_size=400),
    limit=st.floats(0.0, 3.0),
    level=st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_interval_p_value_and_decision_agree_by_construction(
    values: list[float], limit: float, level: float
) -> None:
    draws = np.array(values)[:, None]
    low, high = interval(draws, level)[:, 0]
    below, above = (float(x[0]) for x in tail_p_values(draws, limit))
    alpha = significance(level) / 2
    if math.isnan(high):  # too few resamples to reach the level: no test can reject either
        assert not (below <= alpha) and not (above <= alpha)
        return
    assert (high < limit) == (below <= alpha)
    assert (low > limit) == (above <= alpha)


def test_resampled_p_values_never_reach_zero() -> None:
    draws = np.full((1000, 1), 0.3)
    below, above = tail_p_values(draws, 0.8)
    assert below[0] == pytest.approx(1 / 1001) and above[0] == 1.0


# ----------------------------------------------------------------------------- error rates


def test_a_fair_model_on_the_shipped_audit_window_passes_with_few_questions() -> None:
    tally = run(Scenario(), shipped(), replicates=24, seed=11, coverage=True)
    assert tally.share("FAIL") <= 0.05
    assert tally.share("PASS") >= 0.60  # 72% over 100 audits: python -m bench gate
    assert tally.mean_questions <= 3
    # 95% intervals covered 94.7% of the truth over 400 audits (1,519 of 1,604); 96 intervals
    # of 24 audits, correlated within an audit, leave about three standard errors either side.
    assert 0.88 <= tally.covered / tally.intervals <= 0.99


@pytest.mark.parametrize("ratio", [0.80, 0.82])
def test_a_compliant_group_near_the_limit_is_not_failed(ratio: float) -> None:
    table = operating_characteristics(
        race_only(),
        AuditShape(
            groups=(GroupShape(RACE, "g", 20_000, 4_000, 1.0, 1.0),),
            total_people=200_000,
            total_people_in_need=40_000,
            rows_per_person=1.0,
            rows_per_person_in_need=1.0,
            rates={"recall": 0.45},
            persistence=0.0,
        ),
        replicates=400,
        seed=5,
    )
    assert table is not None
    cell = table.groups[0].cells[0.8]
    assert cell.fail <= 0.05
    assert table.groups[0].cells[1.0].passed >= 0.95


def test_a_material_group_at_six_tenths_is_caught_even_when_it_is_the_largest() -> None:
    shares = {RACE: {"Largest": 0.6, "B": 0.3, "C": 0.1}}
    for group in ("Largest", "C"):
        tally = run(
            independent(200_000, shares, {(RACE, group): 0.6}),
            race_only(),
            replicates=6,
            seed=2,
        )
        assert tally.group_share(f"{group} ({RACE})", "fail") == 1.0
        assert tally.group_share(f"{group} ({RACE})", "pass") == 0.0


def test_a_tiny_under_served_group_is_never_passed_unnamed() -> None:
    shares = {RACE: {"Big": 0.98, "Tiny": 0.02}}
    tally = run(
        Scenario(people=8_333, shares=shares, ratios={(RACE, "Tiny"): 0.5}),
        race_only(),
        replicates=12,
        seed=4,
    )
    assert tally.group_share(f"Tiny ({RACE})", "pass") == 0.0
    assert tally.group_share(f"Tiny ({RACE})", "not_assessable") > 0


def test_many_comparisons_of_a_fair_model_rarely_fail() -> None:
    shares = {RACE: {f"g{i:03d}": 1.0 for i in range(120)}}
    tally = run(
        independent(240_000, shares, at_risk=0.25),
        race_only(min_group_positives=80),
        replicates=8,
        seed=9,
    )
    assert tally.share("FAIL") <= 1 / 8


def test_a_group_with_nobody_in_need_is_not_assessable_never_a_pass() -> None:
    rows = draw(Scenario(people=4_000), np.random.default_rng(0))
    race = rows["sensitive"][RACE].copy()
    empty = np.flatnonzero(rows["labels"] == 0)[:3_000]
    race[empty] = "Nobody in need"
    outcome = run_audit(
        race_only(),
        labels=rows["labels"],
        selected=rows["selected"],
        scores=None,
        sensitive={RACE: race},
        clusters=rows["clusters"],
        periods=rows["periods"],
    )
    (named,) = [n for n in outcome.decision.not_assessable if n.group == "Nobody in need"]
    assert named.people_in_need == 0 and "nobody in need" in named.why


def test_a_decision_that_needs_more_resamples_gets_them() -> None:
    # 40 groups: Holm's first cut-off (0.025 / 40) is below what 1,000 resamples can show.
    shares = {RACE: {f"g{i:02d}": 1.0 for i in range(40)}}
    rows = draw(
        independent(80_000, shares, {(RACE, "g00"): 0.4}, at_risk=0.25),
        np.random.default_rng(1),
    )
    outcome = run_audit(
        race_only(),
        labels=rows["labels"],
        selected=rows["selected"],
        scores=None,
        sensitive={RACE: rows["sensitive"][RACE]},
    )
    assert outcome.audit.resamples > 1000
    assert [b.group for b in outcome.decision.breaches] == ["g00"]


def test_pooling_keeps_at_least_a_third_of_a_groups_own_weight() -> None:
    table = np.array([[2, 0, 3, 95], [300, 20, 300, 9000], [280, 15, 310, 8800]], dtype=float)
    effective = {"recall": np.array([5.0, 600.0, 590.0])}
    parent = {m: np.full(3, 0.5) for m in ("selection_rate", "recall", "precision")}
    parent |= {m: np.full(3, 0.05) for m in ("false_positive_rate", "false_negative_rate")}
    pooled = pooled_estimates(table, effective, parent, level=0.95)
    estimate = pooled["recall"][0][0]
    own, prior = 2 / 5, 0.5
    # The estimate is a weighted mean of its own rate and the prior's (plus the half counts).
    weight = (estimate - prior) / (own - prior)
    assert weight >= 1 / 3 - 0.1


def test_the_default_tail_is_half_the_interval_level() -> None:
    assert tail(shipped()) == pytest.approx(0.025)


# ----------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def predictions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = draw(Scenario(people=3_000), np.random.default_rng(3))
    frame = pd.DataFrame(
        {
            "crisis": rows["labels"],
            "offered": rows["selected"].astype(int),
            "person": rows["clusters"],
            "month": np.tile(np.arange(6), 3_000),
            RACE: rows["sensitive"][RACE],
            "sex": rows["sensitive"]["sex"],
        }
    )
    path = tmp_path_factory.mktemp("predictions") / "predictions.csv"
    frame.to_csv(path, index=False)
    return path


def _audit(path: Path, tmp: Path, *extra: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        main,
        [
            "--home",
            str(tmp / "home"),
            "audit",
            "--predictions",
            str(path),
            "--label",
            "crisis",
            "--sensitive",
            f"{RACE},sex",
            *extra,
        ],
    )
    return result.exit_code, result.stdout, result.stderr


def test_an_external_audit_with_ids_resamples_whole_people(
    predictions: Path, tmp_path: Path
) -> None:
    code, out, _ = _audit(
        predictions,
        tmp_path,
        "--decision",
        "offered",
        "--id",
        "person",
        "--period",
        "month",
        "--out",
        str(tmp_path / "with"),
        "--json",
    )
    assert code in (0, 3)
    clustered = json.loads(out)
    code, out, _ = _audit(
        predictions, tmp_path, "--decision", "offered", "--out", str(tmp_path / "without"), "--json"
    )
    rows = json.loads(out)

    def width(doc: dict) -> float:
        (d,) = [
            d
            for d in doc["disparities"]
            if (d["group"], d["metric"], d["kind"]) == ("female", "recall", "ratio")
        ]
        return d["ci"][1] - d["ci"][0]

    assert clustered["evidence"]["clusters"] == 3_000 and clustered["evidence"]["periods"] == 6
    assert width(clustered) > 1.2 * width(rows)
    for item in clustered["not_assessable"]:
        assert {"group", "attribute", "people", "people_in_need", "why"} <= set(item)


@pytest.mark.parametrize(
    ("rows", "extra", "message"),
    [
        ("all", ["--score", "offered", "--threshold", "nan"], "--threshold must be a finite"),
        ("one", ["--decision", "offered"], "needs at least 2"),
        ("none_in_need", ["--decision", "offered"], "nobody has the outcome"),
        ("continuous", ["--decision", "offered"], "group a continuous column"),
        ("all", ["--decision", "offered", "--out", "/dev/null"], "not a folder"),
    ],
)
def test_external_audits_refuse_what_they_cannot_judge(
    predictions: Path, tmp_path: Path, rows: str, extra: list[str], message: str
) -> None:
    frame = pd.read_csv(predictions)
    if rows == "one":
        frame = frame.head(1)
    elif rows == "none_in_need":
        frame = frame.assign(crisis=0)
    elif rows == "continuous":
        frame = frame.assign(sex=np.random.default_rng(0).random(len(frame)))
    path = tmp_path / "in.csv"
    frame.to_csv(path, index=False)
    code, _, err = _audit(path, tmp_path, *extra)
    assert code == 2, err
    assert message in err and "Traceback" not in err


def test_policy_simulate_reads_a_report_and_prints_its_table(
    predictions: Path, tmp_path: Path
) -> None:
    lower = tmp_path / "policy.toml"
    lower.write_text(
        DEFAULT_POLICY.read_text().replace("min_group_positives = 200", "min_group_positives = 60")
    )
    code, _, err = _audit(
        predictions,
        tmp_path,
        "--decision",
        "offered",
        "--id",
        "person",
        "--policy",
        str(lower),
        "--out",
        str(tmp_path / "report"),
    )
    assert code in (0, 3), err
    report = json.loads((tmp_path / "report" / "audit.json").read_text())
    assert report["operating_characteristics"]["groups"]
    html = (tmp_path / "report" / "audit.html").read_text()
    assert "How reliable this gate is" in html
    result = CliRunner().invoke(
        main,
        [
            "policy",
            "simulate",
            str(lower),
            "--like",
            str(tmp_path / "report" / "audit.json"),
            "--reps",
            "40",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    table = json.loads(result.stdout)
    assert table["ratios"] == [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    for group in table["groups"]:
        for cell in group["rates"]:
            assert cell["fail"] + cell["question"] + cell["pass"] == pytest.approx(1.0)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = CliRunner().invoke(
        main, ["policy", "simulate", str(DEFAULT_POLICY), "--like", str(broken)]
    )
    assert result.exit_code == 2 and "cannot read the report" in result.stderr
