"""A person's rules hold on every path: one rule table (``model.rules``) for record values, ids,
names and months, applied by the API, the command line, batch scoring, files, the registered
pyfunc (what the Spark job runs) and ``queue load``; and an opt-out that means not scored, not
queued and not kept, walked through every path on a real release, database and Flask app."""

from __future__ import annotations

import json
import math
import re
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from jobs.batch import load_period, score_file
from jobs.spark_batch import PERIOD_COLUMN
from kernel.errors import DataValidationError, OutreachError
from lifecycle.model_source import ModelSource, Serving
from model.data import parse_periods, read_table
from model.rules import MAX_ID, month_problem, name_problem
from model.scorer import OutreachPyfunc, scored_frame
from monitoring.periods import load_snapshot
from outreach.cli import main
from service import create_app
from store.accounts import add_user, set_areas
from store.db import Database, QueueEntry, ScoredPeriod
from store.queue import ALL_AREAS
from tests.support.homes import Released, copy_released, labels_for, on_both_databases
from tests.support.postgres import Cluster, copy_rows

PASSWORD = "person-rules-password"
#: The month the property test's files name (not one the release scored).
MONTH = "2031-05"


@pytest.fixture(scope="module")
def mine(released: Released, tmp_path_factory: pytest.TempPathFactory) -> Released:
    return copy_released(released, tmp_path_factory.mktemp("person-rules"))


@pytest.fixture(scope="module")
def app(mine: Released) -> Flask:
    return create_app(
        {
            "HOME": mine.home,
            "DATABASE_URL": mine.database_url,
            "WATCH_SECONDS": 0,
            "TESTING": True,
            "MODEL_NAME": mine.name,
            "RATE_LIMIT": 10**9,
        }
    )


@pytest.fixture(scope="module")
def headers(app: Flask) -> dict[str, dict[str, str]]:
    db: Database = app.extensions["outreach.db"]
    tokens = {
        role: add_user(db, f"rules-{role}", role, password=PASSWORD)
        for role in ("coordinator", "analyst", "oversight", "admin")
    }
    set_areas(db, "rules-coordinator", [ALL_AREAS])
    return {role: {"Authorization": f"Bearer {token}"} for role, token in tokens.items()}


def _serving(released: Released) -> Serving:
    source = ModelSource(released.home, released.name)
    source.refresh()
    assert source.current is not None, source.problem
    return source.current


def _base_record(released: Released) -> dict[str, Any]:
    """A valid record: the features of one real row, as plain Python values."""
    model = _serving(released).model
    row = released.frame.iloc[0]
    out: dict[str, Any] = {}
    for feature in model.features:
        value = row[feature.name]
        if feature.kind == "category":
            out[feature.name] = str(value)
        elif isinstance(value, float) and math.isnan(value):
            out[feature.name] = None
        else:
            number = float(value)
            out[feature.name] = int(number) if number.is_integer() else number
    return out


@pytest.fixture(scope="module")
def serving(mine: Released) -> Serving:
    """``mine``'s verified production model, loaded once for the property tests (it does not
    change between their examples)."""
    return _serving(mine)


@pytest.fixture(scope="module")
def base_record(mine: Released) -> dict[str, Any]:
    """:func:`_base_record` of ``mine``, made once: each example changes a copy."""
    return _base_record(mine)


# ------------------------------------------------------------------- one verdict on every path


def _api_verdict(app: Flask, headers: dict[str, str], record: dict[str, Any]) -> str | None:
    """``None`` if the API scored it, else the details of its 400."""
    response = app.test_client().post(
        "/api/v1/score",
        json={"purpose": "outreach", "records": [record]},
        headers=headers,
    )
    if response.status_code == 200:
        return None
    assert response.status_code == 400, response.get_json()
    return "\n".join(response.get_json()["error"]["details"])


def _file_verdicts(
    released: Released, serving: Serving, record: dict[str, Any], folder: Path
) -> list[str | None]:
    """The same record through a Parquet file: ``score --out`` (the CLI's file path), the
    registered pyfunc (what the Spark UDF calls on each batch) and ``queue load`` (a scoring
    job's output folder). ``None`` for scored, else the problems."""
    frame = pd.DataFrame({"period": [MONTH], **{k: [v] for k, v in record.items()}})
    path = folder / "record.parquet"
    frame.to_parquet(path)
    read = read_table(path)
    verdicts: list[str | None] = []
    try:
        score_file(released.db, serving, read)
        verdicts.append(None)
    except DataValidationError as err:
        verdicts.append("\n".join(err.details))
    pyfunc = OutreachPyfunc()
    pyfunc.model = serving.model
    features = read.drop(columns=["period", "person_id"])
    try:
        scored = pyfunc.predict(None, features)
        verdicts.append(None)
    except DataValidationError as err:
        verdicts.append("\n".join(err.details))
        scored = None
    job = read.assign(
        score=0.5 if scored is None else scored["score"].to_numpy(),
        percentile=50.0 if scored is None else scored["percentile"].to_numpy(),
        band="standard" if scored is None else scored["band"].to_numpy(),
        reasons="[]" if scored is None else scored["reasons"].to_numpy(),
        model_name=serving.name,
        model_version=serving.version,
        audit_id=serving.audit_id,
    )
    try:
        load_period(released.db, serving, job, period=MONTH)
        verdicts.append(None)
    except DataValidationError as err:
        verdicts.append("\n".join(err.details))
    return verdicts


_ODD_VALUES = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
    st.booleans(),
    st.none(),
    st.sampled_from(["3", "0", "1.5", "", "none", "low", "employed", "unemployed", " low"]),
    st.text(max_size=4),
)


#: The property tests' settings: 60 examples, each through the API and every file path.
EVERY_PATH = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@given(data=st.data())
@EVERY_PATH
def test_a_value_gets_one_verdict_on_every_path(
    data: st.DataObject,
    mine: Released,
    serving: Serving,
    base_record: dict[str, Any],
    app: Flask,
    headers: dict[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    record = dict(base_record)
    feature = data.draw(st.sampled_from([f.name for f in serving.model.features]), "feature")
    record[feature] = data.draw(_ODD_VALUES, "value")
    api = _api_verdict(app, headers["coordinator"], {"id": "rule-1", **record})
    files = _file_verdicts(mine, serving, {"person_id": "rule-1", **record}, tmp_path)
    verdicts = [api, *files]
    assert len({v is None for v in verdicts}) == 1, (feature, record[feature], verdicts)
    if api is not None:  # every path names the field
        assert all(feature in v for v in verdicts if v is not None), verdicts


_ODD_IDS = st.one_of(
    st.text(max_size=MAX_ID + 10),
    st.integers(min_value=-(2**62), max_value=2**62),
    st.booleans(),
    # JSON has one number type: 45.0 is the id 45 there (service.api.json_body._number); a
    # typed file's float column is refused. Floats that JSON reads as whole numbers are left out.
    st.floats(allow_nan=False, allow_infinity=False).filter(
        lambda f: not (f.is_integer() and abs(f) <= 2**53)
    ),
    st.sampled_from(["x" * MAX_ID, "x" * (MAX_ID + 1), "a\x1bb", "a\u202eb", "", " "]),
)


@given(person=_ODD_IDS)
@EVERY_PATH
def test_an_id_gets_one_verdict_on_every_path(
    person: Any,
    mine: Released,
    serving: Serving,
    base_record: dict[str, Any],
    app: Flask,
    headers: dict[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    record = dict(base_record)
    api = _api_verdict(app, headers["coordinator"], {"id": person, **record})
    files = _file_verdicts(mine, serving, {"person_id": person, **record}, tmp_path)
    verdicts = [api, files[0], files[2]]  # the pyfunc sees features only
    assert len({v is None for v in verdicts}) == 1, (person, verdicts)
    if api is not None:
        assert "id" in api and all("person_id" in v for v in files if v is not None)
    if api is None:  # an id that can be scored can be shown (no 400 invalid_id)
        response = app.test_client().get(
            f"/api/v1/people/{quote(str(person), safe='')}/explanation",
            query_string={"purpose": "outreach"},
            headers=headers["coordinator"],
        )
        assert response.status_code in (200, 404), (person, response.get_json())


_MONTHS = st.one_of(
    st.from_regex(r"\A[0-9]{4}-[0-9]{2}\Z"),
    st.sampled_from(["0000-01", "9999-12", "2024-13", "2024-00", "1899-12", "1900-01", "2999-12"]),
    st.text(max_size=8),
)


@given(month=_MONTHS)
@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_a_month_gets_one_verdict_on_every_path(
    month: str, app: Flask, headers: dict[str, dict[str, str]], mine: Released
) -> None:
    good = month_problem(month) is None
    client = app.test_client()
    paths = ("/api/v1/review-requests", "/api/v1/monitoring") if month else ()  # "": no filter
    for path in paths:
        key = "month" if "review" in path else "period"
        response = client.get(
            path,
            query_string={key: month, "purpose": "outreach"},
            headers=headers["oversight"],
        )
        assert response.status_code != 500, (path, month)
        if good:
            assert response.status_code in (200, 404), (path, month, response.get_json())
        else:
            assert response.status_code == 400, (path, month, response.get_json())
    cli = CliRunner().invoke(
        main,
        [
            "--home",
            str(mine.home.root),
            "queue",
            "load",
            "--from",
            "/nonexistent",
            "--period",
            month,
        ],
    )
    assert cli.exit_code == 2
    assert ("Invalid value for '--period'" in cli.output) is not good, cli.output
    problems, _ = parse_periods(pd.Series([month]), "period")
    if not good and re.fullmatch(r"[0-9]{4}-[0-9]{2}", month):  # a file's months, same rule
        assert problems, month


def test_the_issue_s_months_are_refused_not_errors(
    app: Flask, headers: dict[str, dict[str, str]]
) -> None:
    client = app.test_client()
    for month in ("0000-01", "9999-12", "2024-13"):
        response = client.get(
            "/api/v1/review-requests", query_string={"month": month}, headers=headers["oversight"]
        )
        assert response.status_code == 400, response.get_json()
        assert response.is_json and response.get_json()["error"]["code"] == "invalid_month"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("a\x1bb", "printable"),
        ("bell\x07", "printable"),
        ("a\u202eb", "printable"),
        ("x" * 5000, "at most 120"),
        (None, "text"),
    ],
)
def test_names_follow_one_rule(value: Any, problem: str) -> None:
    assert problem in str(name_problem(value))


def test_labels_ingest_by_follows_the_users_add_rule(mine: Released, tmp_path: Path) -> None:
    labels = labels_for(mine, mine.periods[-1])
    path = tmp_path / "labels.csv"
    labels.to_csv(path, index=False)
    base = ["--home", str(mine.home.root), "labels", "ingest", str(path), "--model", mine.name]
    for bad in ("", "a\x1bb", "bell\x07", "a\u202eb", "x" * 5000):
        outcome = CliRunner().invoke(main, [*base, "--by", bad])
        assert outcome.exit_code == 2, outcome.output
        assert "who ingests" in outcome.output
        added = CliRunner().invoke(
            main, ["--home", str(mine.home.root), "users", "add", bad, "--role", "analyst"]
        )
        assert added.exit_code == 2, added.output


def test_a_file_refuses_text_numbers_booleans_and_numbered_categories(
    mine: Released, tmp_path: Path
) -> None:
    serving = _serving(mine)
    rows = mine.frame.loc[mine.frame["period"].astype(str) == mine.periods[-1]].head(20)
    numeric = next(f.name for f in serving.model.features if f.kind == "count")
    category = next(f.name for f in serving.model.features if f.kind == "category")
    for column, values in (
        (numeric, rows[numeric].astype(str)),  # "3"
        (numeric, rows[numeric] > 0),  # True
        (category, pd.Series(np.arange(len(rows)), index=rows.index)),  # 1
    ):
        path = tmp_path / "bad.parquet"
        rows.assign(**{column: values}).to_parquet(path)
        outcome = CliRunner().invoke(
            main,
            [
                "--home", str(mine.home.root), "score", "--data", str(path),
                "--out", str(tmp_path / "out.csv"), "--model", mine.name,
            ],
        )  # fmt: skip
        assert outcome.exit_code == 2, outcome.output
        assert f"column '{column}'" in outcome.output
    ids = rows["person_id"].astype(str).tolist()
    long = rows.assign(person_id=["p" * (MAX_ID + 1), *ids[1:]])
    long.to_parquet(tmp_path / "long.parquet")
    outcome = CliRunner().invoke(
        main,
        [
            *("--home", str(mine.home.root), "score", "--data", str(tmp_path / "long.parquet")),
            *("--model", mine.name, "--period", mine.periods[-1]),
        ],
    )
    assert outcome.exit_code == 2 and "1 to 120 characters" in outcome.output, outcome.output


# ---------------------------------------------------------------- one scored-file contract


def test_a_scored_file_names_each_row_s_month_model_and_audit(
    mine: Released, tmp_path: Path
) -> None:
    serving = _serving(mine)
    data = tmp_path / "months.parquet"
    mine.frame.loc[mine.frame["period"].astype(str).isin(mine.periods)].to_parquet(data)
    out = tmp_path / "scored.parquet"
    base = ["--home", str(mine.home.root), "score", "--data", str(data), "--model", mine.name]
    outcome = CliRunner().invoke(main, [*base, "--out", str(out)])
    assert outcome.exit_code == 0, outcome.output
    assert "validation population, the same in every month" in outcome.output
    scored = pd.read_parquet(out)
    for column in ("score", "percentile", "band", "reasons", PERIOD_COLUMN):
        assert column in scored
    assert set(scored[PERIOD_COLUMN]) == set(mine.periods)
    assert set(scored["model_name"]) == {serving.name}
    assert set(scored["model_version"]) == {serving.version}
    assert set(scored["audit_id"]) == {serving.audit_id}
    assert (scored[PERIOD_COLUMN] == scored["period"].astype(str)).all()
    # Each month as if scored alone: the file's rows of one month equal that month's file.
    one = tmp_path / "one.parquet"
    outcome = CliRunner().invoke(main, [*base, "--out", str(one), "--period", mine.periods[0]])
    assert outcome.exit_code == 0, outcome.output
    alone = pd.read_parquet(one)
    both = scored.loc[scored[PERIOD_COLUMN] == mine.periods[0]].reset_index(drop=True)
    pd.testing.assert_frame_equal(both, alone)
    for month in ("2001-01", "2024-13"):
        outcome = CliRunner().invoke(main, [*base, "--out", str(one), "--period", month])
        assert outcome.exit_code == 2, outcome.output


# ------------------------------------------------------------ one opted-out person, every path


def _person(released: Released) -> str:
    """The top of the latest list."""
    with released.db.session() as session:
        entry = session.scalars(
            select(QueueEntry)
            .where(QueueEntry.period == released.periods[-1], QueueEntry.rank == 1)
            .limit(1)
        ).one()
        return entry.person_id


@on_both_databases
def test_an_opted_out_person_is_not_scored_queued_or_kept_anywhere(
    released: Released,
    tmp_path: Path,
    backend: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    own = copy_released(released, tmp_path / "walk")
    if backend == "postgresql":  # the same rows in a PostgreSQL database, for app and CLI
        cluster: Cluster = request.getfixturevalue("postgres")
        url = cluster.create_database()
        target = Database(url)
        target.upgrade()
        target.engine.dispose()
        copy_rows(own.database_url, url)
        own = Released(own.home, url, own.frame, own.periods, own.name)
        monkeypatch.setenv("OUTREACH_DATABASE_URL", url)
    app = create_app(
        {
            "HOME": own.home,
            "DATABASE_URL": own.database_url,
            "WATCH_SECONDS": 0,
            "TESTING": True,
            "MODEL_NAME": own.name,
            "RATE_LIMIT": 10**9,
        }
    )
    db: Database = app.extensions["outreach.db"]
    tokens = {r: add_user(db, f"walk-{r}", r) for r in ("coordinator", "oversight", "analyst")}
    set_areas(db, "walk-coordinator", [ALL_AREAS])
    auth = {r: {"Authorization": f"Bearer {t}"} for r, t in tokens.items()}
    client = app.test_client()
    person = _person(own)
    period = own.periods[-1]
    earlier = own.periods[0]  # scored before the opt-out, with the person in it
    with own.db.session() as session:
        before = session.scalars(select(ScoredPeriod).where(ScoredPeriod.period == earlier)).one()
        assert person in set(load_snapshot(before, own.home.monitoring)["person_id"])
    month = own.frame.loc[own.frame["period"].astype(str) == period]
    row = month.loc[month["person_id"].astype(str) == person]
    assert len(row) == 1

    opted = client.post(
        "/api/v1/opt-outs",
        json={"purpose": "outreach", "person_id": person, "reason": "asked by phone"},
        headers=auth["coordinator"],
    )
    assert opted.status_code == 201, opted.get_json()

    # The API scores no one who opted out: 409 naming the opt-out.
    record = {"id": person, **_base_record(own)}
    refused = client.post(
        "/api/v1/score",
        json={"purpose": "outreach", "records": [record]},
        headers=auth["coordinator"],
    )
    assert refused.status_code == 409, refused.get_json()
    body = refused.get_json()["error"]
    assert body["code"] == "opted_out" and body["details"] == ["records[0].id: opted out"]
    assert "X-Request-ID" in refused.headers

    # CLI score into the queue: left out before scoring, counted, kept nowhere.
    data = tmp_path / "month.parquet"
    month.to_parquet(data)
    home = ["--home", str(own.home.root)]
    scored = CliRunner().invoke(
        main, [*home, "score", "--data", str(data), "--period", period, "--model", own.name]
    )
    assert scored.exit_code == 0, scored.output
    assert "1 opted out" in scored.output
    with own.db.session() as session:
        queued = set(
            session.scalars(
                select(QueueEntry.person_id).where(QueueEntry.period == period, QueueEntry.rank > 0)
            )
        )
        kept = session.scalars(select(ScoredPeriod).where(ScoredPeriod.period == period)).one()
    assert person not in queued
    snapshot = load_snapshot(kept, own.home.monitoring)
    assert person not in set(snapshot.iloc[:, 0].astype(str)) | set(
        snapshot.get("person_id", pd.Series(dtype=str)).astype(str)
    )
    assert kept.population == len(month) - 1
    with own.db.session() as session:  # the period scored before the opt-out forgets them too
        before = session.scalars(select(ScoredPeriod).where(ScoredPeriod.period == earlier)).one()
        forgotten = load_snapshot(before, own.home.monitoring)
    assert person not in set(forgotten["person_id"]) and len(forgotten) == before.population - 1

    # CLI score --out: not in the file.
    out = tmp_path / "scored.parquet"
    to_file = CliRunner().invoke(
        main, [*home, "score", "--data", str(data), "--out", str(out), "--model", own.name]
    )
    assert to_file.exit_code == 0, to_file.output
    assert "1 opted out, not scored" in to_file.output
    written = pd.read_parquet(out)
    assert person not in set(written["person_id"].astype(str))

    # queue load of a scoring job's output that still holds the person: left out, not queued.
    job = tmp_path / "job"
    serving = _serving(own)
    folder = job / f"{PERIOD_COLUMN}={period}"
    folder.mkdir(parents=True)
    with_person = scored_frame(serving.model, month)
    month.assign(
        score=with_person["score"].to_numpy(),
        percentile=with_person["percentile"].to_numpy(),
        band=with_person["band"].to_numpy(),
        reasons=with_person["reasons"].to_numpy(),
        model_name=serving.name,
        model_version=serving.version,
        audit_id=serving.audit_id,
    ).to_parquet(folder / "part-0.parquet")
    loaded = CliRunner().invoke(
        main, [*home, "queue", "load", "--from", str(job), "--period", period, "--model", own.name]
    )
    assert loaded.exit_code == 0, loaded.output
    assert "1 opted out" in loaded.output
    with own.db.session() as session:
        queued = set(
            session.scalars(
                select(QueueEntry.person_id).where(QueueEntry.period == period, QueueEntry.rank > 0)
            )
        )
        kept = session.scalars(select(ScoredPeriod).where(ScoredPeriod.period == period)).one()
    assert person not in queued
    assert person not in set(load_snapshot(kept, own.home.monitoring).astype(str).iloc[:, 0])

    # Labels: their label is not kept (not in the scored population), and it is counted.
    labels = labels_for(own, period)
    assert person in set(labels["person_id"].astype(str))
    path = tmp_path / "labels.csv"
    labels.to_csv(path, index=False)
    ingested = CliRunner().invoke(
        main,
        [*home, "labels", "ingest", str(path), "--model", own.name, "--by", "analyst", "--json"],
    )
    assert ingested.exit_code == 0, ingested.output
    done = json.loads(ingested.output[ingested.output.index("{") :])["periods"]
    assert next(p for p in done if p["period"] == period)["unknown"] >= 1

    # Monitoring, transparency, the list and the pages: the id appears nowhere.
    for path_, headers_ in (
        (f"/api/v1/monitoring?period={period}", auth["oversight"]),
        ("/api/v1/queue?purpose=outreach&limit=1000", auth["coordinator"]),
        ("/transparency.json", {}),
        ("/transparency", {}),
    ):
        response = client.get(path_, headers=headers_)
        assert response.status_code == 200, (path_, response.status_code)
        assert f'"{person}"' not in response.get_data(as_text=True), path_
    shown = client.get(
        f"/api/v1/people/{person}/explanation",
        query_string={"purpose": "outreach"},
        headers=auth["coordinator"],
    )
    assert shown.status_code in (200, 404, 409), shown.get_json()
    assert shown.status_code != 200 or shown.get_json().get("opted_out") in (True, None)


def test_the_cli_refuses_a_bad_period_before_any_work(mine: Released, tmp_path: Path) -> None:
    for month in ("2024-13", "0000-01", "9999-12", "24-01", "2024-1"):
        outcome = CliRunner().invoke(
            main,
            [
                *("--home", str(mine.home.root), "score", "--data", str(tmp_path / "x.csv")),
                *("--period", month, "--out", str(tmp_path / "f.csv")),
            ],
        )
        assert outcome.exit_code == 2 and "--period" in outcome.output, outcome.output


# ------------------------------------------------------------------------ passwords not on argv


def test_a_password_is_never_taken_from_the_command_line(tmp_path: Path) -> None:
    from store.accounts import check_password
    from store.db import default_url

    home = ["--home", str(tmp_path / "home")]
    add = [*home, "users", "add"]
    refused = CliRunner().invoke(
        main, [*add, "lead", "--role", "admin", "--password", "a secret on argv"]
    )
    assert refused.exit_code == 2, refused.output
    assert "never given on the command line" in refused.output
    assert "--password-stdin" in refused.output and "--password-file" in refused.output
    piped = CliRunner().invoke(
        main, [*add, "piped", "--role", "analyst", "--password-stdin"], input="piped passphrase\n"
    )
    assert piped.exit_code == 0, piped.output
    secret = tmp_path / "secret.txt"
    secret.write_text("filed passphrase\n")
    filed = CliRunner().invoke(
        main, [*add, "filed", "--role", "analyst", "--password-file", str(secret)]
    )
    assert filed.exit_code == 0, filed.output
    asked = CliRunner().invoke(
        main, [*add, "asked", "--role", "analyst", "--password"], input="asked passphrase\n" * 2
    )
    assert asked.exit_code == 0, asked.output
    db = Database(default_url(tmp_path / "home"))
    assert check_password(db, "piped", "piped passphrase") is not None
    assert check_password(db, "filed", "filed passphrase") is not None
    assert check_password(db, "asked", "asked passphrase") is not None
    assert check_password(db, "lead", "a secret on argv") is None
    both = CliRunner().invoke(
        main, [*add, "two", "--role", "analyst", "--password-stdin", "--password-file", str(secret)]
    )
    assert both.exit_code == 2 and "one of" in both.output


# ------------------------------------------------------------------- users' ids are never reused


@on_both_databases
def test_a_deleted_user_s_token_never_comes_back(database_url: str, tmp_path: Path) -> None:
    """The issue's reproduction: a coordinator's row deleted by hand (no foreign keys, as
    SQLite's own shell runs), a new admin added; the old token must not work for admin routes."""
    from store.accounts import authenticate
    from store.db import Token, User, UserArea

    db = Database(database_url)
    db.upgrade()
    add_user(db, "first", "coordinator")
    old = add_user(db, "coordinator-1", "coordinator")
    assert authenticate(db, old) is not None
    if db.engine.dialect.name == "sqlite":  # as SQLite's own shell does: no foreign keys
        shell = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        with shell:
            shell.execute("DELETE FROM users WHERE name = 'coordinator-1'")
        shell.close()
    else:  # a superuser's session that skips the foreign-key triggers
        with db.engine.begin() as connection:
            connection.exec_driver_sql("SET session_replication_role = replica")
            connection.exec_driver_sql("DELETE FROM users WHERE name = 'coordinator-1'")
            connection.exec_driver_sql("SET session_replication_role = DEFAULT")
    new = add_user(db, "newadmin", "admin")
    assert authenticate(db, old) is None  # the old coordinator token is refused
    found = authenticate(db, new)
    assert found is not None and found.role == "admin"
    with db.session() as session:
        ids = [u.id for u in session.scalars(select(User))]
        orphan = session.scalar(select(Token.user_id).where(Token.user_uid.is_not(None)).limit(1))
        assert len(set(ids)) == len(ids)
        assert session.scalar(select(UserArea.user_id).limit(1)) is None
    assert orphan is not None
    assert max(ids) > 2  # never the deleted user's id again
    db.engine.dispose()


def test_users_delete_revokes_first(tmp_path: Path) -> None:
    from store.accounts import authenticate
    from store.db import default_url

    home = ["--home", str(tmp_path / "home")]
    added = CliRunner().invoke(main, [*home, "users", "add", "gone", "--role", "coordinator"])
    token = added.output.strip().splitlines()[-1]
    deleted = CliRunner().invoke(main, [*home, "users", "delete", "gone"])
    assert deleted.exit_code == 0, deleted.output
    assert "1 API token revoked" in deleted.output
    again = CliRunner().invoke(main, [*home, "users", "add", "gone", "--role", "admin"])
    assert again.exit_code == 0, again.output
    db = Database(default_url(tmp_path / "home"))
    assert authenticate(db, token) is None
    unknown = CliRunner().invoke(main, [*home, "users", "delete", "nobody"])
    assert unknown.exit_code == 2 and "no user named" in unknown.output


# ------------------------------------------------------------ the OpenAPI patterns = the server


@pytest.mark.parametrize(
    "reason",
    ["\u0000b", "b\u0000", "\x1c", " \t", "\u3000", "\ufeff", "b", " why ", "\u00a0x", ""],
)
def test_the_opt_in_reason_pattern_admits_what_the_server_takes(
    app: Flask, headers: dict[str, dict[str, str]], reason: str
) -> None:
    """DELETE /opt-outs/{id}: the documented pattern and the server agree on every reason."""
    from store.queue import free_text

    document = app.test_client().get("/api/v1/openapi.json", headers=headers["coordinator"])
    operation = document.get_json()["paths"]["/api/v1/opt-outs/{person_id}"]["delete"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    pattern = schema["properties"]["reason"]["pattern"]
    documented = re.search(pattern, reason) is not None
    try:
        free_text(reason, field="reason", required=True)
        served = True
    except OutreachError:
        served = False
    assert documented == served, (reason, pattern)


def test_the_pages_take_months_by_the_same_rule(
    app: Flask, headers: dict[str, dict[str, str]]
) -> None:
    """The issue's 500s on /oversight/reviews: a month of year 0 or 9999 is a bad month there."""
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    signed = client.post(
        "/login",
        data={"csrf_token": token[1], "username": "rules-oversight", "password": PASSWORD},
    )
    assert signed.status_code == 302, signed.get_data(as_text=True)
    for month in ("0000-01", "9999-12", "2024-13"):
        reviews = client.get("/oversight/reviews", query_string={"month": month})
        assert reviews.status_code == 200  # the filter is dropped, as for any bad month
        monitoring = client.get("/oversight/monitoring", query_string={"period": month})
        assert monitoring.status_code == 400, monitoring.status_code
