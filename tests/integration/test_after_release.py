"""After release: the evaluation lottery, scored-period snapshots, labels ingest, the realised
gate, the funnel and the monitoring API and page, on a real release, database and Flask app."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom
from sqlalchemy import delete, select, update

from audits.policy import Evaluation
from kernel.errors import CheckFailedError, DataValidationError
from monitoring.funnel import log_ratio_interval
from monitoring.labels import LabelColumns, ingest, read_labels
from monitoring.periods import load_snapshot, select_people
from outreach.cli import main
from service import create_app
from store.accounts import add_user
from store.db import Database, PeriodLabels, QueueEntry, ScoredPeriod, default_url
from tests.support.homes import Released, copy_released, labels_for

PASSWORD = "after-release-password"


def _labels(released: Released, period: str) -> pd.DataFrame:
    return labels_for(released, period)


def _ingest(released: Released, frame: pd.DataFrame):  # type: ignore[no-untyped-def]
    from lifecycle.catalogue import read_report
    from model.registry import connect

    registry = connect(released.home)
    return ingest(
        released.db,
        name=released.name,
        frame=frame,
        columns=LabelColumns("person_id", "period", "crisis_6m"),
        report_for=lambda audit_id: read_report(registry, audit_id),
        folder=released.home.monitoring,
        by="analyst",
    )


@pytest.fixture(scope="module")
def mine(released: Released, tmp_path_factory: pytest.TempPathFactory) -> Released:
    """This module's copy of the released site."""
    return copy_released(released, tmp_path_factory.mktemp("after-release"))


@pytest.fixture
def fresh(mine: Released) -> Iterator[Released]:
    """This module's copy, without any ingested labels after the test."""
    yield mine
    with mine.db.session() as session:
        session.execute(delete(PeriodLabels))
        session.execute(update(QueueEntry).values(label=None))


# ----------------------------------------------------------------------------- the lottery


@given(
    n=st.integers(min_value=1, max_value=400),
    k=st.integers(min_value=0, max_value=60),
    share=st.sampled_from([0.0, 0.05, 0.1, 0.5]),
    band=st.sampled_from([0.5, 1.0, 2.0]),
    opted=st.integers(min_value=0, max_value=20),
)
@settings(max_examples=80, deadline=None)
def test_the_lottery_never_takes_a_place_from_the_list(
    n: int, k: int, share: float, band: float, opted: int
) -> None:
    rng = np.random.default_rng(n * 1000 + k)
    scores = rng.random(n)
    ids = np.arange(n)
    eligible = np.ones(n, dtype=bool)
    eligible[rng.choice(n, size=min(opted, n), replace=False)] = False
    design = Evaluation(share=min(share, band), band=band)
    chosen = select_people(scores, ids, eligible, k, design, "ab" * 32)
    from model.capacity_metrics import top_k_rows

    # The list is exactly the audited top-k rule, untouched by the lottery.
    assert chosen.listed.tolist() == top_k_rows(scores, ids, k, eligible=eligible).tolist()
    assert not set(chosen.lottery.tolist()) & set(chosen.listed.tolist())
    assert eligible[chosen.lottery].all() and eligible[chosen.listed].all()
    ranks = chosen.rank[chosen.lottery]
    assert ((ranks > len(chosen.listed)) & (ranks <= chosen.band_end)).all()
    assert len(chosen.lottery) <= design.places(k)
    assert (chosen.probability[chosen.listed] == 1).all()
    if len(chosen.lottery):
        band_rows = np.flatnonzero(
            (chosen.rank > len(chosen.listed)) & (chosen.rank <= chosen.band_end)
        )
        assert np.allclose(chosen.probability[band_rows], len(chosen.lottery) / len(band_rows))
    assert (chosen.rank[~eligible] == 0).all()
    assert sorted(chosen.rank[eligible].tolist()) == list(range(1, int(eligible.sum()) + 1))
    again = select_people(scores, ids, eligible, k, design, "ab" * 32)
    assert again.lottery.tolist() == chosen.lottery.tolist()  # the seed fixes the draw


def test_the_lottery_is_uniform_over_the_band() -> None:
    """Each band member's chance of a place is places / band (a binomial check over seeds)."""
    n, k = 200, 20
    scores = np.linspace(1, 0, n)
    design = Evaluation(share=0.25, band=1.0)  # 5 places among ranks 21-40
    hits = np.zeros(n)
    trials = 400
    for seed in range(trials):
        drawn = select_people(scores, np.arange(n), np.ones(n, bool), k, design, f"{seed:064x}")
        hits[drawn.lottery] += 1
    band = hits[k : 2 * k]
    assert hits[:k].sum() == 0 and hits[2 * k :].sum() == 0
    low, high = binom.ppf([0.0005, 0.9995], trials, 5 / 20)
    assert ((band >= low) & (band <= high)).all(), band


def test_scoring_records_the_lottery_on_the_queue(released: Released) -> None:
    with released.db.session() as session:
        row = session.scalars(
            select(ScoredPeriod).where(ScoredPeriod.period == released.periods[-1])
        ).one()
        entries = list(
            session.scalars(
                select(QueueEntry).where(
                    QueueEntry.period == released.periods[-1], QueueEntry.rank > 0
                )
            )
        )
    listed = [e for e in entries if e.source == "list"]
    drawn = [e for e in entries if e.source == "lottery"]
    assert len(listed) == row.capacity and len(drawn) == row.lottery_places > 0
    assert {e.selection_probability for e in listed} == {1.0}
    band = row.band_end - row.capacity
    assert all(math.isclose(e.selection_probability, row.lottery_places / band) for e in drawn)
    assert all(row.capacity < e.rank <= row.band_end for e in drawn)
    snapshot = load_snapshot(row, released.home.monitoring)
    assert len(snapshot) == row.population
    assert int(snapshot["offered"].sum()) == len(entries)
    assert set(snapshot.loc[snapshot["source"] == "lottery", "person_id"]) == {
        e.person_id for e in drawn
    }
    assert row.estimates and row.estimates.get("groups")
    assert row.drift is not None and "features" in row.drift


def test_a_changed_snapshot_is_refused(mine: Released) -> None:
    released = mine
    with released.db.session() as session:
        row = session.scalars(
            select(ScoredPeriod).where(ScoredPeriod.period == released.periods[0])
        ).one()
    path = released.home.monitoring / row.snapshot
    original = path.read_bytes()
    frame = pd.read_parquet(path)
    frame.loc[0, "score"] = 0.0  # someone with the file lowers one person's score
    frame.to_parquet(path, index=False)
    try:
        with pytest.raises(CheckFailedError, match="not the one recorded"):
            load_snapshot(row, released.home.monitoring)
    finally:
        path.write_bytes(original)
    assert len(load_snapshot(row, released.home.monitoring)) == row.population


# ----------------------------------------------------------------------------- labels ingest


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda f: f.drop(columns=["crisis_6m"]), "missing columns: crisis_6m"),
        (
            lambda f: f.assign(crisis_6m=f["crisis_6m"].astype(float).where(f.index != 3)),
            "not 0 or 1 in row 4",
        ),
        (lambda f: f.assign(crisis_6m=2), "not 0 or 1"),
        (lambda f: pd.concat([f, f.iloc[:1]], ignore_index=True), "duplicate (person_id, period)"),
        (lambda f: f.assign(period="2031-13"), "period"),
        (lambda f: f.assign(period="2030-01"), "no scored population"),
        (lambda f: f.iloc[:0], "no rows"),
    ],
)
def test_bad_label_files_are_refused_whole(fresh: Released, change, expected: str) -> None:  # type: ignore[no-untyped-def]
    good = _labels(fresh, fresh.periods[-1])
    with pytest.raises(DataValidationError) as caught:
        _ingest(fresh, change(good))
    assert expected in str(caught.value) + " ".join(caught.value.details)
    with fresh.db.session() as session:
        assert session.scalars(select(PeriodLabels)).first() is None
        assert (
            session.scalars(select(QueueEntry).where(QueueEntry.label.is_not(None))).first() is None
        )


def _ingest_cli(released: Released, path: Path, *extra: str):  # type: ignore[no-untyped-def]
    home = ["--home", str(released.home.root)]
    ingest_args = ["labels", "ingest", str(path), "--model", released.name, "--by", "analyst"]
    return CliRunner().invoke(main, [*home, *ingest_args, *extra])


def test_the_cli_refuses_a_bad_file_with_exit_2(fresh: Released, tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    _labels(fresh, fresh.periods[-1]).drop(columns=["period"]).to_csv(path, index=False)
    result = _ingest_cli(fresh, path)
    assert result.exit_code == 2, result.output
    assert "missing columns: period" in result.output
    assert "Traceback" not in result.output


def test_labels_are_stored_against_the_queue_and_the_population(
    fresh: Released, tmp_path: Path
) -> None:
    period = fresh.periods[-1]
    labels = _labels(fresh, period)
    path = tmp_path / "labels.parquet"
    labels.to_parquet(path)
    result = _ingest_cli(fresh, path, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    [done] = document["periods"]
    assert done["period"] == period and done["labelled"] == len(labels)
    assert done["positives"] == int(labels["crisis_6m"].sum())
    truth = dict(zip(labels["person_id"], labels["crisis_6m"], strict=True))
    with fresh.db.session() as session:
        stored = session.scalars(select(PeriodLabels).where(PeriodLabels.period == period)).one()
        entries = list(session.scalars(select(QueueEntry).where(QueueEntry.period == period)))
    assert all(e.label == truth[e.person_id] for e in entries)
    assert stored.realised and stored.realised["decision"]["verdict"] in ("PASS", "REVIEW", "FAIL")
    assert stored.realised["labelled"] == len(labels)


def test_read_labels_splits_periods_and_keeps_ids_as_text() -> None:
    frame = pd.DataFrame(
        {"id": [1, 2, 1], "month": ["2024-01", "2024-01", "2024-02"], "y": [0, 1, 1]}
    )
    found = read_labels(frame, LabelColumns("id", "month", "y"))
    assert list(found) == ["2024-01", "2024-02"]
    assert found["2024-01"]["person_id"].tolist() == ["1", "2"]


def test_a_realised_breach_warns_the_board_and_recommends_a_reaudit(fresh: Released) -> None:
    """A labelled month in which one group's crises all fell off the list: the release gate's
    rule finds the breach, the board is warned and a re-audit is recommended."""
    period = fresh.periods[-1]
    with fresh.db.session() as session:
        row = session.scalars(select(ScoredPeriod).where(ScoredPeriod.period == period)).one()
    snapshot = load_snapshot(row, fresh.home.monitoring)
    on_list = (snapshot["source"] == "list").to_numpy()
    women = (snapshot["sex"] == "female").to_numpy()
    rng = np.random.default_rng(0)
    label = np.zeros(len(snapshot), dtype=int)
    # Everyone else: most crises were on the list. Women: every crisis was off it.
    others_listed = np.flatnonzero(on_list & ~women)
    label[rng.choice(others_listed, size=min(60, len(others_listed)), replace=False)] = 1
    label[rng.choice(np.flatnonzero(~on_list & ~women), size=15, replace=False)] = 1
    label[rng.choice(np.flatnonzero(~on_list & women), size=80, replace=False)] = 1
    frame = pd.DataFrame({"person_id": snapshot["person_id"], "period": period, "crisis_6m": label})
    [done] = _ingest(fresh, frame)
    assert done.verdict == "FAIL"
    assert any("female" in w for w in done.warnings), done.warnings
    from monitoring.period_report import period_document

    with fresh.db.session() as session:
        document = period_document(session, fresh.name, period, _reports(fresh))
    assert document["reaudit_recommended"] is True
    assert any("female" in r for r in document["reaudit_reasons"])
    assert any("female" in w for w in document["warnings"])


def _reports(released: Released):  # type: ignore[no-untyped-def]
    from lifecycle.catalogue import read_report
    from model.registry import connect

    registry = connect(released.home)
    return lambda audit_id: read_report(registry, audit_id)


# ----------------------------------------------------------------------------- the funnel


@given(
    hits=st.integers(0, 60),
    extra=st.integers(1, 60),
    ref_hits=st.integers(1, 200),
    ref_extra=st.integers(1, 200),
)
@settings(max_examples=200, deadline=None)
def test_the_funnel_interval_and_test_agree(
    hits: int, extra: int, ref_hits: int, ref_extra: int
) -> None:
    ratio, low, high, p_value = log_ratio_interval(
        hits, hits + extra, ref_hits, ref_hits + ref_extra, 0.95
    )
    assert ratio is not None and low is not None and high is not None and p_value is not None
    excludes_one = high < 1 or low > 1
    assert excludes_one == (p_value < 0.05) or math.isclose(p_value, 0.05, abs_tol=1e-9)


def test_the_funnel_interval_covers_the_true_ratio() -> None:
    """Katz's interval holds its level on binomial draws (cross-checked by simulation)."""
    rng = np.random.default_rng(4)
    n, m, p, q = 300, 900, 0.3, 0.5
    covered = 0
    for _ in range(600):
        a, b = rng.binomial(n, p), rng.binomial(m, q)
        _, low, high, _ = log_ratio_interval(int(a), n, int(b), m, 0.95)
        covered += low <= p / q <= high  # type: ignore[operator]
    assert 0.92 <= covered / 600 <= 0.98


def test_the_funnel_counts_outcomes_by_group(released: Released) -> None:
    from monitoring.funnel import funnel

    period = released.periods[-1]
    with released.db.session() as session:
        # threshold=1: every count in full (the small-cell rule is tested in test_small_cells).
        flow = funnel(session, released.name, period, level=0.95, limit=0.8, threshold=1)
    sex = next(a for a in flow["attributes"] if a["attribute"] == "sex")
    total = sum(g["offered"] for g in sex["groups"])
    with released.db.session() as session:
        on_lists = len(
            list(
                session.scalars(
                    select(QueueEntry).where(QueueEntry.period == period, QueueEntry.rank > 0)
                )
            )
        )
    assert total == on_lists
    for group in sex["groups"]:
        assert group["offered"] == sum(group[s] for s in flow["statuses"])


# ----------------------------------------------------------------------------- API and page


@pytest.fixture(scope="module")
def app(mine: Released) -> Flask:
    released = mine
    return create_app(
        {
            "HOME": released.home,
            "DATABASE_URL": default_url(released.home.root),
            "WATCH_SECONDS": 0,
            "TESTING": True,
            "MODEL_NAME": released.name,
        }
    )


@pytest.fixture(scope="module")
def tokens(app: Flask) -> dict[str, str]:
    db: Database = app.extensions["outreach.db"]
    return {
        role: add_user(db, f"monitor-{role}", role, password=PASSWORD)
        for role in ("oversight", "analyst", "coordinator", "admin")
    }


@pytest.mark.parametrize(
    ("role", "status"), [("oversight", 200), ("analyst", 200), ("coordinator", 403), ("admin", 403)]
)
def test_monitoring_api_is_for_oversight_and_analysts(
    app: Flask, tokens: dict[str, str], role: str, status: int
) -> None:
    response = app.test_client().get(
        "/api/v1/monitoring", headers={"Authorization": f"Bearer {tokens[role]}"}
    )
    assert response.status_code == status, response.get_json()


def test_monitoring_api_lists_periods_and_documents_one(
    app: Flask, tokens: dict[str, str], mine: Released
) -> None:
    released = mine
    client = app.test_client()
    headers = {"Authorization": f"Bearer {tokens['analyst']}"}
    index = client.get("/api/v1/monitoring", headers=headers).get_json()
    assert [p["period"] for p in index["periods"]] == sorted(released.periods, reverse=True)
    document = client.get(
        f"/api/v1/monitoring?period={released.periods[-1]}", headers=headers
    ).get_json()
    assert document["period"] == released.periods[-1]
    assert document["lottery"]["places"] > 0
    assert document["estimates"]["groups"]
    assert document["funnel"]["attributes"]
    assert "person_id" not in json.dumps(document)  # aggregates only
    assert client.get("/api/v1/monitoring?period=2024-13", headers=headers).status_code == 400
    missing = client.get("/api/v1/monitoring?period=1999-01", headers=headers)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "period_not_found"


def test_the_next_release_audit_carries_the_months_after_release(fresh: Released) -> None:
    """The labelled months (realised verdict, calibration, the evaluation arm with intervals)
    reach the next release's report, and its HTML shows them."""
    from audits.report import render_html
    from lifecycle.catalogue import read_report
    from model.registry import connect
    from monitoring.period_report import after_release_evidence

    with fresh.db.session() as session:
        assert after_release_evidence(session, fresh.name) is None
    period = fresh.periods[0]
    _ingest(fresh, _labels(fresh, period))
    with fresh.db.session() as session:
        evidence = after_release_evidence(session, fresh.name)
        scored = session.scalars(select(ScoredPeriod).where(ScoredPeriod.period == period)).one()
    assert evidence is not None
    [month] = evidence["months"]
    assert month["period"] == period and month["lottery_places"] == scored.lottery_places > 0
    untreated = month["evaluation"]["untreated_rate"]
    assert untreated["low"] <= untreated["value"] <= untreated["high"]
    report = read_report(connect(fresh.home), scored.audit_id)
    html = render_html({**report, "after_release": evidence})
    assert "Since the earlier release: the months with labels" in html
    assert period in html.split('id="after-release"', 1)[1]
    json.dumps(evidence)  # JSON-ready


def test_the_demo_months_after_release_are_scored_offered_and_labelled(
    released: Released, small_spec, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The demo's loop on a copy of the released site: each later month scored with the
    lottery, outcomes recorded, labels ingested, and the monitoring document complete."""
    from monitoring.funnel import funnel
    from monitoring.period_report import period_document
    from outreach.cli.demo import demo_after_release

    own = copy_released(released, tmp_path)
    later = own.frame.loc[own.frame["period"].astype(str) == own.periods[-1]].copy()
    later["period"] = "2031-01"
    demo_after_release(own.home, small_spec, later.reset_index(drop=True))
    with own.db.session() as session:
        labels = session.scalars(select(PeriodLabels).where(PeriodLabels.period == "2031-01")).one()
        document = period_document(session, own.name, "2031-01", _reports(own))
        # The document withholds small counts (test_small_cells); here every count in full.
        flow = funnel(session, own.name, "2031-01", level=0.95, limit=None, threshold=1)
    assert labels.labelled == len(later)
    assert document["lottery"]["places"] > 0
    assert document["realised"]["evaluation"]["estimates"]["untreated_rate"] is not None
    assert document["funnel"]["attributes"]
    offered = sum(g["offered"] for g in flow["attributes"][0]["groups"])
    recorded = sum(
        g[s]
        for g in flow["attributes"][0]["groups"]
        for s in ("contacted", "accepted", "declined", "unreachable")
    )
    assert offered == recorded > 0  # the demo coordinator answered every offer


def test_estimates_beyond_a_limit_recommend_a_reaudit() -> None:
    """Before any label: a group whose people at risk the list passes over has an estimated
    recall far below everyone else's, and the policy's limit makes a re-audit recommended."""
    from monitoring.estimates import estimate_performance
    from monitoring.period_report import estimated_disparities
    from tests.support.specs import LENIENT, policy_text

    rng = np.random.default_rng(3)
    n = 4000
    group = np.where(rng.random(n) < 0.5, "a", "b")
    p = rng.beta(1, 12, n)
    ranked = np.where(group == "b", p * 0.2, p)  # the list reads group b's risk as a fifth
    selected = np.zeros(n, dtype=bool)
    selected[np.argsort(-ranked)[:400]] = True
    estimates = estimate_performance(p, selected, {"sex": group}).as_dict()
    policy = policy_text(**{k: v for k, v in LENIENT.items() if k != "min = 0.8"})  # limit 0.8
    rows, reasons = estimated_disparities(estimates, policy)
    b = next(r for r in rows if r["group"] == "b" and r["metric"] == "recall")
    assert b["beyond_limit"] and b["value"] < 0.5
    assert any("sex = b" in r for r in reasons)
    fair = estimate_performance(p, np.argsort(np.argsort(-p)) < 400, {"sex": group}).as_dict()
    assert estimated_disparities(fair, policy)[1] == []


def test_outreach_score_queues_a_month_with_the_lottery(released: Released, tmp_path: Path) -> None:
    own = copy_released(released, tmp_path)
    data = tmp_path / "month.parquet"
    own.frame.to_parquet(data)
    period = own.periods[-1]
    args = ["--home", str(own.home.root), "score", "--data", str(data), "--period", period]
    result = CliRunner().invoke(main, [*args, "--model", own.name])
    assert result.exit_code == 0, result.output
    assert f"{period}: scored {len(own.frame[own.frame['period'].astype(str) == period]):,}" in (
        result.output
    )
    assert "by the evaluation lottery" in result.output
