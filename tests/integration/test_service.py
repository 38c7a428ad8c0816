"""The service through a real Flask test client, a real SQLite database and a real MLflow store."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from jobs.batch import score_period
from kernel.home import Home
from lifecycle.release import approve
from lifecycle.verified_loading import trust_for
from model.data import Dataset
from model.registry import connect
from model.spec import ExperimentSpec
from service import create_app
from store import access_log
from store.access_log import SqliteAppender, verify
from store.accounts import ROUTE_ROLES, add_user, set_areas
from store.db import AccessLogRow, Database
from store.queue import ALL_AREAS
from tests.support.access_log_rows import (
    append_any,
    append_fast,
    append_in_transaction,
    appends_in_a_process,
    log_row,
)
from tests.support.homes import Site, TwoReleases, copy_home, copy_site, on_both_databases
from tests.support.postgres import lift_update_guard

ROLES = ("coordinator", "analyst", "oversight", "admin")


@pytest.fixture(scope="module")
def served_home(tmp_path_factory: pytest.TempPathFactory, two_releases: TwoReleases) -> Home:
    """A copy of the shared store: a promoted release (production) and a failed one."""
    return copy_home(two_releases.home.root, tmp_path_factory.mktemp("served") / "home")


@pytest.fixture
def app(served_home: Home, database_url: str) -> Flask:
    return create_app(
        {
            "HOME": served_home,
            "DATABASE_URL": database_url,
            "WATCH_SECONDS": 0,
            "TESTING": True,
        }
    )


@pytest.fixture
def db(app: Flask) -> Database:
    return app.extensions["outreach.db"]


@pytest.fixture
def tokens(db: Database) -> dict[str, str]:
    tokens = {role: add_user(db, f"{role} user", role) for role in ROLES}
    set_areas(db, "coordinator user", [ALL_AREAS])
    return tokens


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def records(dataset: Dataset) -> list[dict[str, Any]]:
    frame = dataset.frame.head(5)
    out = []
    for _, row in frame.iterrows():
        record: dict[str, Any] = {"id": str(row["person_id"])}
        for feature in dataset.spec.features:
            value = row[feature.name]
            record[feature.name] = value if feature.kind == "category" else float(value)
        out.append(record)
    return out


def log_rows(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(AccessLogRow)) or 0)


@on_both_databases
def test_score_returns_scores_reasons_and_the_model_and_logs_first(
    client: FlaskClient,
    tokens: dict[str, str],
    records: list[dict],
    db: Database,
    app: Flask,
    backend: str,
) -> None:
    response = client.post(
        "/api/v1/score",
        json={"purpose": "outreach", "records": records},
        headers=auth(tokens["coordinator"]),
    )
    assert response.status_code == 200, response.json
    body = response.json
    serving = app.extensions["outreach.model"].current
    assert body["model"]["version"] == serving.version and body["model"]["audit_id"]
    expected = serving.model.score_records(records, allowed_extra={"id"})
    for i, result in enumerate(body["results"]):
        assert result["id"] == records[i]["id"]
        assert result["score"] == pytest.approx(expected.scores[i], abs=1e-6)
        assert result["band"] in ("priority", "elevated", "standard")
        assert 0 <= result["percentile"] <= 100
        for reason in result["reasons"]:
            assert {"feature", "value", "contribution", "text", "service"} <= set(reason)
            assert reason["feature"] not in ("race_ethnicity", "sex", "age_band", "disability")
    assert "race_ethnicity" not in json.dumps(body)
    assert log_rows(db) == 1
    assert verify(db).ok
    # written by the plain-SQLite path on SQLite, through SQLAlchemy elsewhere
    assert (app.extensions["outreach.appender"] is not None) == (backend == "sqlite")


def _nan_record(records: list[dict]) -> str:
    record = dict(records[0], er_visits_90d=math.nan)
    return json.dumps({"purpose": "outreach", "records": [record]})


@pytest.mark.parametrize(
    ("make", "status", "needle"),
    [
        (lambda r: ("{not json", "application/json"), 400, "not valid JSON"),
        (
            lambda r: (json.dumps({"purpose": "outreach", "records": r}), "text/plain"),
            415,
            "JSON body",
        ),
        (
            lambda r: (
                json.dumps({"purpose": "outreach", "records": [dict(r[0], er_visits_90d="three")]}),
                "application/json",
            ),
            400,
            "records[0].er_visits_90d: must be a number",
        ),
        (
            lambda r: (
                json.dumps(
                    {
                        "purpose": "outreach",
                        "records": [{k: v for k, v in r[0].items() if k != "income_band"}],
                    }
                ),
                "application/json",
            ),
            400,
            "records[0].income_band: is required",
        ),
        (
            lambda r: (
                json.dumps({"purpose": "outreach", "records": [dict(r[0], colour="red")]}),
                "application/json",
            ),
            400,
            "records[0].colour: unknown field",
        ),
        (lambda r: (_nan_record(r), "application/json"), 400, "must be a finite number"),
        (
            lambda r: (_nan_record(r).replace("NaN", "Infinity"), "application/json"),
            400,
            "must be a finite number",
        ),
        (
            lambda r: (
                json.dumps({"purpose": "outreach", "records": [dict(r[0], er_visits_90d=10**400)]}),
                "application/json",
            ),
            400,
            "records[0].er_visits_90d: must be a finite number",
        ),
        (
            lambda r: (
                json.dumps({"purpose": "outreach", "records": [dict(r[0], income_band="rich")]}),
                "application/json",
            ),
            400,
            "unknown category 'rich'",
        ),
        (
            lambda r: (
                json.dumps({"purpose": "outreach", "records": [dict(r[0], er_visits_90d=-2)]}),
                "application/json",
            ),
            400,
            "must be at least 0",
        ),
        (
            lambda r: (
                json.dumps({"purpose": "outreach", "records": [dict(r[0], id=None)]}),
                "application/json",
            ),
            400,
            "records[0].id: required",
        ),
        (
            lambda r: (
                json.dumps({"purpose": "outreach", "records": r * 201}),
                "application/json",
            ),
            400,
            "at most 1000 records",
        ),
        (lambda r: ("x" * (10 * 1024 * 1024), "application/json"), 413, "larger than the limit"),
        (
            lambda r: (
                json.dumps({"purpose": "outreach", "records": r * 2000}),
                "application/json",
            ),
            413,
            "larger than the limit",
        ),
        (lambda r: (json.dumps({"records": r}), "application/json"), 400, "purpose"),
        (
            lambda r: (json.dumps({"purpose": "outreach", "records": []}), "application/json"),
            400,
            "non-empty list",
        ),
    ],
)
def test_bad_input_gets_a_named_4xx_and_writes_nothing(
    client: FlaskClient,
    tokens: dict[str, str],
    records: list[dict],
    db: Database,
    make,
    status: int,
    needle: str,
) -> None:
    data, content_type = make(records)
    response = client.post(
        "/api/v1/score", data=data, content_type=content_type, headers=auth(tokens["coordinator"])
    )
    assert response.status_code == status
    body = response.json
    assert set(body) == {"error", "request_id"}
    text = body["error"]["message"] + " " + " ".join(body["error"]["details"])
    assert needle in text, text
    assert log_rows(db) == 0


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic abc"])
def test_missing_or_wrong_token_is_401(client: FlaskClient, records: list[dict], header) -> None:
    headers = {"Authorization": header} if header else {}
    response = client.post(
        "/api/v1/score", json={"purpose": "outreach", "records": records}, headers=headers
    )
    assert response.status_code == 401 and response.json["error"]["code"] == "unauthenticated"


@on_both_databases
def test_a_forbidden_purpose_is_refused_and_recorded(
    client: FlaskClient, tokens: dict[str, str], records: list[dict], db: Database
) -> None:
    response = client.post(
        "/api/v1/score",
        json={"purpose": "enforcement", "records": records},
        headers=auth(tokens["coordinator"]),
    )
    assert response.status_code == 403 and response.json["error"]["code"] == "purpose_refused"
    with db.session() as session:
        (row,) = session.scalars(select(AccessLogRow)).all()
        assert row.allowed is False and row.purpose == "enforcement"


ROUTES = [
    ("score", "post", "/api/v1/score"),
    ("queue", "get", "/api/v1/queue?purpose=outreach"),
    ("outcome", "post", "/api/v1/queue/999999/outcome"),
    ("opt_out", "post", "/api/v1/opt-outs"),
    ("model", "get", "/api/v1/model"),
    ("audits", "get", "/api/v1/audits"),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("route", "method", "path"), ROUTES)
def test_role_matrix(
    client: FlaskClient, tokens: dict[str, str], role: str, route: str, method: str, path: str
) -> None:
    response = getattr(client, method)(path, json={}, headers=auth(tokens[role]))
    if role in ROUTE_ROLES[route]:
        assert response.status_code != 403, (route, role, response.json)
    else:
        assert response.status_code == 403, (route, role)
        assert response.json["error"]["code"] == "forbidden"


@on_both_databases
def test_queue_outcomes_and_opt_outs(
    client: FlaskClient, tokens: dict[str, str], app: Flask, db: Database, dataset: Dataset
) -> None:
    serving = app.extensions["outreach.model"].current
    raw = dataset.frame.rename(columns={"__period": "ordinal"})
    raw["period"] = [
        str(p) for p in __import__("pandas").PeriodIndex.from_ordinals(raw["ordinal"], freq="M")
    ]
    frame = raw.drop(columns=["ordinal"])
    result = score_period(db, serving, frame)
    assert result.queued == serving.model.k_for(result.scored)
    headers = auth(tokens["coordinator"])
    listed = client.get("/api/v1/queue?purpose=outreach&limit=5", headers=headers).json
    entries = listed["entries"]
    assert [e["rank"] for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0]["score"] >= entries[1]["score"] and entries[0]["reasons"]
    first = entries[0]
    response = client.post(
        f"/api/v1/queue/{first['entry_id']}/outcome",
        headers=headers,
        json={"purpose": "outreach", "status": "contacted", "note": "left a message"},
    )
    assert response.status_code == 201
    bad = client.post(
        f"/api/v1/queue/{first['entry_id']}/outcome",
        headers=headers,
        json={"purpose": "outreach", "status": "arrested"},
    )
    assert bad.status_code == 400 and "status: must be one of" in bad.json["error"]["details"][0]
    again = client.get("/api/v1/queue?purpose=outreach&limit=1", headers=headers).json
    assert again["entries"][0]["last_outcome"]["status"] == "contacted"
    person = first["person_id"]
    assert (
        client.post(
            "/api/v1/opt-outs", headers=headers, json={"purpose": "outreach", "person_id": person}
        ).status_code
        == 201
    )
    after = client.get("/api/v1/queue?purpose=outreach&limit=1000", headers=headers).json
    assert person not in {e["person_id"] for e in after["entries"]}
    assert (
        client.delete(
            f"/api/v1/opt-outs/{person}",
            headers=headers,
            json={"purpose": "outreach", "reason": "asked again by phone"},
        ).status_code
        == 204
    )
    back = client.get("/api/v1/queue?purpose=outreach&limit=1000", headers=headers).json
    assert person in {e["person_id"] for e in back["entries"]}
    assert client.get("/api/v1/queue", headers=headers).status_code == 400
    assert verify(db).ok


@on_both_databases
def test_a_failed_batch_leaves_the_previous_queue(
    app: Flask,
    db: Database,
    dataset: Dataset,
    monkeypatch: pytest.MonkeyPatch,
    client: FlaskClient,
    tokens: dict[str, str],
) -> None:
    import pandas as pd

    from jobs import batch
    from kernel.errors import DataValidationError

    serving = app.extensions["outreach.model"].current
    frame = dataset.frame.rename(columns={"__period": "ordinal"})
    frame["period"] = [str(p) for p in pd.PeriodIndex.from_ordinals(frame["ordinal"], freq="M")]
    frame = frame.drop(columns=["ordinal"])
    score_period(db, serving, frame)
    headers = auth(tokens["coordinator"])
    before = client.get("/api/v1/queue?purpose=outreach&limit=1000", headers=headers).json
    latest = frame["period"].max()
    broken = frame.copy()
    last_row = broken.index[broken["period"] == latest][-1]
    broken.loc[last_row, "er_visits_90d"] = -5
    monkeypatch.setattr(batch, "CHUNK", 100)  # the bad row sits in a late chunk
    with pytest.raises(DataValidationError):
        score_period(db, serving, broken)
    after = client.get("/api/v1/queue?purpose=outreach&limit=1000", headers=headers).json
    assert [e["person_id"] for e in after["entries"]] == [e["person_id"] for e in before["entries"]]


@on_both_databases
def test_access_log_tampering_is_found(
    client: FlaskClient, tokens: dict[str, str], records: list[dict], db: Database
) -> None:
    for _ in range(3):
        client.post(
            "/api/v1/score",
            json={"purpose": "outreach", "records": records},
            headers=auth(tokens["coordinator"]),
        )
    assert verify(db).ok and verify(db).rows == 3
    with db.session() as session:
        second = session.scalars(select(AccessLogRow).order_by(AccessLogRow.id)).all()[1]
        # The table refuses updates (migration 0003, grants); someone with full rights lifts it.
        lift_update_guard(session.connection())
        session.execute(
            update(AccessLogRow).where(AccessLogRow.id == second.id).values(user="someone else")
        )
    broken = verify(db)
    assert not broken.ok and broken.first_broken == second.id


def test_model_health_and_metrics(
    client: FlaskClient, tokens: dict[str, str], records: list[dict]
) -> None:
    info = client.get("/api/v1/model", headers=auth(tokens["analyst"])).json
    names = [f["name"] for f in info["input_schema"]]
    assert "er_visits_90d" in names and "race_ethnicity" not in names
    income = next(f for f in info["input_schema"] if f["name"] == "income_band")
    assert income["categories"] == ["none", "very_low", "low", "moderate"]
    assert client.get("/api/v1/healthz").status_code == 200
    assert client.get("/api/v1/readyz").json["status"] == "ready"
    client.post(
        "/api/v1/score",
        json={"purpose": "outreach", "records": records},
        headers=auth(tokens["coordinator"]),
    )
    text = client.get("/api/v1/metrics").get_data(as_text=True)
    assert "outreach_requests_total" in text and "outreach_scores_served_total" in text
    audits = client.get("/api/v1/audits", headers=auth(tokens["oversight"])).json["audits"]
    one = client.get(f"/api/v1/audits/{audits[0]['audit_id']}", headers=auth(tokens["oversight"]))
    assert one.status_code == 200 and one.json["schema"] == "outreach.audit/2"
    assert client.get("/api/v1/audits/nope", headers=auth(tokens["oversight"])).status_code == 404


def test_rate_limit(served_home: Home, tmp_path: Path) -> None:
    app = create_app(
        {
            "HOME": served_home,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}",
            "WATCH_SECONDS": 0,
            "RATE_LIMIT": 3,
        }
    )
    token = add_user(app.extensions["outreach.db"], "analyst", "analyst")
    client = app.test_client()
    codes = [client.get("/api/v1/model", headers=auth(token)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = client.get("/api/v1/model", headers=auth(token))
    assert int(limited.headers["Retry-After"]) >= 1


def test_unreachable_registry_serves_the_last_known_good_copy(
    served_home: Home, tmp_path: Path
) -> None:
    create_app(
        {"HOME": served_home, "DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}", "WATCH_SECONDS": 0}
    )
    offline = create_app(
        {
            "HOME": served_home,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}",
            "WATCH_SECONDS": 0,
            "TRACKING_URI": "http://127.0.0.1:9",
        }
    )
    ready = offline.test_client().get("/api/v1/readyz").json
    assert ready["status"] == "degraded" and ready["model"]["degraded"] is True


def test_a_hand_moved_alias_to_a_failed_version_is_not_served(
    served_home: Home, small_spec: ExperimentSpec, two_releases: TwoReleases, tmp_path: Path
) -> None:
    registry = connect(served_home)
    failed = two_releases.failed
    good = registry.client.get_model_version_by_alias(small_spec.name, "production").version
    app = create_app(
        {"HOME": served_home, "DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}", "WATCH_SECONDS": 0}
    )
    source = app.extensions["outreach.model"]
    assert source.current.version == str(good)
    registry.client.set_registered_model_alias(
        small_spec.name, "production", str(failed.chosen.candidate.version)
    )
    try:
        assert source.refresh() is False
        assert source.current.version == str(good)  # still the audited one
        assert "decided FAIL" in source.problem
        fresh = create_app(
            {
                "HOME": Home(tmp_path / "empty"),
                "MODEL_NAME": small_spec.name,
                "TRACKING_URI": registry.tracking_uri,
                "DATABASE_URL": f"sqlite:///{tmp_path / 'd.db'}",
                "WATCH_SECONDS": 0,
            }
        )
        assert fresh.test_client().get("/api/v1/readyz").status_code == 503
    finally:
        registry.client.set_registered_model_alias(small_spec.name, "production", str(good))


def test_hot_swap_under_concurrent_requests(
    site: Site, tmp_path: Path, records: list[dict]
) -> None:
    """The site's version awaiting approval is approved (promoted) while requests are served:
    each is answered by the version before or the one after, and the next refresh serves it."""
    from concurrent.futures import ThreadPoolExecutor

    own = copy_site(site, tmp_path)
    app = create_app(
        {"HOME": own.home, "DATABASE_URL": f"sqlite:///{tmp_path / 'h.db'}", "WATCH_SECONDS": 0}
    )
    token = add_user(app.extensions["outreach.db"], "coordinator", "coordinator")
    source = app.extensions["outreach.model"]
    before = source.current.version
    name, newer = own.awaiting
    assert newer != before
    registry = connect(own.home)
    assert approve(
        registry, name, newer, by="oversight", note="promoted", trust=trust_for(registry.home)
    )

    def call(_: int) -> tuple[int, str]:
        response = app.test_client().post(
            "/api/v1/score", json={"purpose": "outreach", "records": records}, headers=auth(token)
        )
        return response.status_code, response.json["model"]["version"]

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(call, i) for i in range(40)]
        assert source.refresh() is True
        results = [f.result() for f in futures]
    assert all(code == 200 for code, _ in results)
    assert {v for _, v in results} <= {before, newer}
    assert source.current.version == newer


def test_openapi_documents_every_route(app: Flask, client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").json
    documented = {(path, method.upper()) for path, item in spec["paths"].items() for method in item}
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)  # <conv:name> -> {name}
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((path, method))
    assert documented == served
    record = spec["components"]["schemas"]["Record"]
    assert record["properties"]["income_band"]["enum"] == ["none", "very_low", "low", "moderate"]
    assert "race_ethnicity" not in record["properties"]


def test_the_fast_access_log_writes_the_rows_the_library_path_writes(db: Database) -> None:
    appender = SqliteAppender.for_database(db)
    assert appender is not None
    for i in range(6):  # interleaved: each path extends the other's chain
        if i % 2:
            append_fast(appender, i)
        else:
            with db.session() as session:
                access_log.append(session, **log_row(i, "library"))
    with db.session() as session:
        rows = session.scalars(select(AccessLogRow).order_by(AccessLogRow.id)).all()
        assert [r.user for r in rows] == ["library", "fast"] * 3
        for i, row in enumerate(rows):
            assert row.subject_ids == [f"p{i}", str(i)]
            assert row.allowed is (i % 2 == 0)
            assert (row.action, row.model_version, row.request_id) == ("score", "3", f"r{i}")
        assert [r.previous_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]
    assert verify(db).ok and verify(db).rows == 6


@on_both_databases
def test_workers_appending_at_once_keep_one_chain(database_url: str, backend: str) -> None:
    import multiprocessing

    url = database_url
    db = Database(url)
    db.upgrade()
    appender = SqliteAppender.for_database(db)
    assert (appender is not None) == (backend == "sqlite")
    append_any(db, appender, 0, "fast")
    # Fresh processes, as gunicorn's workers are (forked from a master that never opened the
    # database): forked from a fork server, a clean single-threaded process that imports the
    # store once. Forking this test process instead could copy a SQLite mutex held by one of its
    # threads (another app's checkpointer) and hang the child. All four writers (three
    # processes and this one) start appending together.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.support.access_log_rows"])
    barrier = context.Barrier(4)
    workers = [
        context.Process(target=appends_in_a_process, args=(url, 40, barrier)) for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    barrier.wait(timeout=300)
    for i in range(40):
        if i % 2:
            append_any(db, appender, i, "fast")
        else:
            access_log.retrying(lambda i=i: append_in_transaction(db, i, "parent"))
    for worker in workers:
        worker.join(600)  # a correctness check, not a timing one: a loaded machine is slow
    for worker in workers:
        if worker.is_alive():  # never left behind to hang the run's exit
            worker.kill()
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    result = verify(db)
    assert result.ok and result.rows == 1 + 40 + 3 * 40


@on_both_databases
def test_no_score_is_shown_when_the_access_log_cannot_be_written(
    client: FlaskClient, tokens: dict[str, str], records: list[dict], db: Database
) -> None:
    with db.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE access_log RENAME TO access_log_moved")
    response = client.post(
        "/api/v1/score",
        json={"purpose": "outreach", "records": records},
        headers=auth(tokens["coordinator"]),
    )
    assert response.status_code == 503
    assert response.json["error"]["code"] == "access_log_unavailable"
    assert "results" not in response.json and "score" not in response.get_data(as_text=True)


def test_a_long_write_ahead_log_is_started_over_off_the_request_path(tmp_path: Path) -> None:
    import sqlite3
    import time

    db = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    db.upgrade()
    appender = SqliteAppender(
        str(tmp_path / "wal.db"),
        f"{tmp_path / 'wal.db'}.lock",
        checkpoint_every=0.01,
        wal_frames=40,
    )
    for i in range(200):
        append_fast(appender, i)
    probe = sqlite3.connect(tmp_path / "wal.db")
    deadline = time.monotonic() + 30
    frames = -1
    while time.monotonic() < deadline:
        append_fast(appender, 1)  # the first write after a restart starts the log over
        # -1: the checkpointer was busy at that moment
        _, frames, _ = probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if 0 <= frames < 40:
            break
        time.sleep(0.02)
    probe.close()
    assert 0 <= frames < 40
    assert verify(db).ok


@on_both_databases
def test_rescoring_a_period_keeps_entries_with_outcomes_and_lists_the_top_k(
    app: Flask, db: Database, dataset: Dataset
) -> None:
    import numpy as np

    from store.db import EntryGroup, OptOut, Outcome, PeriodGroup, QueueEntry

    serving = app.extensions["outreach.model"].current
    model = serving.model
    frame = dataset.source_frame()
    latest = str(frame["period"].max())
    score_period(db, serving, frame, attributes=["sex", "age_band"])
    with db.session() as session:
        before = {
            e.rank: (e.person_id, e.id)
            for e in session.scalars(select(QueueEntry).where(QueueEntry.period == latest))
        }
        session.add(Outcome(entry_id=before[1][1], status="contacted", recorded_by="test"))
        session.add(OptOut(person_id=before[3][0], recorded_by="test"))
    changed = frame.copy()
    for rank in (1, 2):  # the two highest scores drop to the lowest possible
        row = (changed["period"] == latest) & (changed["person_id"].astype(str) == before[rank][0])
        for feature in model.features:
            if feature.kind != "category":
                changed.loc[row, feature.name] = feature.lower or 0.0
    changed.loc[changed["period"] == latest, "er_visits_90d"] = 1.0  # many ties
    result = score_period(db, serving, changed, attributes=["sex", "age_band"])

    rows = changed[changed["period"] == latest].reset_index(drop=True)
    batch = model.score_frame(rows)
    ids = rows["person_id"].astype(str).to_numpy()
    typed = rows["person_id"].to_numpy()  # ties are broken by the id as typed (here: numbers)
    ranked = sorted(range(len(rows)), key=lambda i: (-batch.scores[i], typed[i]))
    # The person who opted out is not scored: capacity is that of the others.
    expected = [i for i in ranked if ids[i] != before[3][0]][: model.k_for(len(rows) - 1)]
    with db.session() as session:
        listed = list(
            session.scalars(
                select(QueueEntry)
                .where(QueueEntry.period == latest, QueueEntry.rank > 0)
                .order_by(QueueEntry.rank)
            )
        )
        assert result.queued == len(listed) == len(expected)
        assert [e.person_id for e in listed] == [ids[i] for i in expected]
        assert [e.rank for e in listed] == list(range(1, len(expected) + 1))
        for entry, i in zip(listed, expected, strict=True):
            assert entry.score == batch.scores[i] and entry.band == batch.bands[i]
            assert entry.reasons == [r.to_dict() for r in model.reasons(batch, i)]
            assert entry.area == rows["service_area"].iloc[i]
        kept = {p: i for p, i in before.values()}
        for entry in listed:  # still listed: the same entry (and id) as before
            if entry.person_id in kept:
                assert entry.id == kept[entry.person_id]
        left = session.get(QueueEntry, before[1][1])
        assert left is not None and left.rank == 0  # off the list, kept for its outcome
        assert session.get(QueueEntry, before[2][1]) is None
        groups = session.execute(
            select(EntryGroup.entry_id, EntryGroup.attribute, EntryGroup.group_name)
        ).all()
        by_entry = {(e, a): g for e, a, g in groups}
        # the listed entries', and the one kept for its outcome (for outcome aggregates)
        assert len(groups) == 2 * (len(listed) + 1)
        assert {e for e, _, _ in groups} == {e.id for e in listed} | {left.id}
        sexes = dict(zip(ids, rows["sex"].astype(str), strict=True))
        assert all(by_entry[(e.id, "sex")] == sexes[e.person_id] for e in listed)
        counts = session.execute(
            select(PeriodGroup.attribute, PeriodGroup.population, PeriodGroup.selected).where(
                PeriodGroup.period == latest
            )
        ).all()
        for attribute in ("sex", "age_band"):
            assert sum(p for a, p, _ in counts if a == attribute) == len(rows) - 1  # opted out
            assert sum(s for a, _, s in counts if a == attribute) == len(listed)
    assert np.isin([before[3][0]], [e.person_id for e in listed]).sum() == 0


@pytest.mark.parametrize("seed", range(20))
def test_the_top_k_equals_the_head_of_a_full_sort(seed: int) -> None:
    import numpy as np

    from model.capacity_metrics import top_k_rows

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    scores = rng.integers(0, 12, n) / 11.0  # many ties
    ids = np.array([f"p{int(i)}" for i in rng.permutation(n)])
    eligible = rng.random(n) > 0.2
    k = int(rng.integers(0, n + 2))
    full = sorted(np.flatnonzero(eligible), key=lambda i: (-scores[i], ids[i]))[:k]
    assert top_k_rows(scores, ids, k, eligible=eligible).tolist() == full


def test_the_queue_is_the_audited_list_when_scores_tie(
    app: Flask, db: Database, dataset: Dataset
) -> None:
    """Batch scoring and the audit pick the same people, integer ids tied at every score."""
    import numpy as np

    from model.capacity_metrics import top_k_mask
    from store.db import QueueEntry

    serving = app.extensions["outreach.model"].current
    model = serving.model
    frame = dataset.source_frame()
    latest = str(frame["period"].max())
    tied = frame[frame["period"] == latest].reset_index(drop=True)
    for feature in model.features:  # two score levels only: ties everywhere
        if feature.kind != "category":
            tied[feature.name] = (feature.lower or 0.0) + (tied["person_id"] % 2)
    score_period(db, serving, tied)
    scores = model.score_frame(tied).scores
    audited = top_k_mask(
        scores, tied["period"].to_numpy(), tied["person_id"].to_numpy(), model.k_for
    )
    with db.session() as session:
        queued = set(
            session.scalars(
                select(QueueEntry.person_id).where(QueueEntry.period == latest, QueueEntry.rank > 0)
            )
        )
    cut = np.sort(scores)[::-1][model.k_for(len(tied)) - 1]
    tied_at_cut = scores == cut
    assert (tied_at_cut & audited).any() and (tied_at_cut & ~audited).any()  # ids decide
    assert queued == set(tied.loc[audited, "person_id"].astype(str))


@on_both_databases
def test_a_batch_replacing_the_queue_never_shows_a_mixed_list(
    app: Flask, db: Database, dataset: Dataset, client: FlaskClient, tokens: dict[str, str]
) -> None:
    """While a period's queue is replaced again and again, every read sees one whole list: the
    one before or the one after, never a mix, and its total agrees with its entries."""
    import threading

    import pandas as pd

    serving = app.extensions["outreach.model"].current
    frame = dataset.frame.rename(columns={"__period": "ordinal"})
    frame["period"] = [str(p) for p in pd.PeriodIndex.from_ordinals(frame["ordinal"], freq="M")]
    frame = frame.drop(columns=["ordinal"])
    latest = frame["period"].max()
    frame = frame.loc[frame["period"] == latest].reset_index(drop=True)
    other = frame.copy()
    other["shelter_contacts_12m"] = other["shelter_contacts_12m"].iloc[::-1].to_numpy()
    headers = auth(tokens["coordinator"])
    url = f"/api/v1/queue?purpose=outreach&period={latest}&limit=1000"

    def listed() -> tuple[frozenset[str], int]:
        body = client.get(url, headers=headers).json
        return frozenset(e["person_id"] for e in body["entries"]), body["total"]

    score_period(db, serving, frame, period=latest)
    first, _ = listed()
    score_period(db, serving, other, period=latest)
    second, _ = listed()
    assert first != second, "the two batches must list different people"
    done = threading.Event()
    failures: list[BaseException] = []

    def replace() -> None:
        try:
            for turn in range(6):
                score_period(db, serving, frame if turn % 2 == 0 else other, period=latest)
        except BaseException as error:  # reported by the test, not lost in the thread
            failures.append(error)
        finally:
            done.set()

    writer = threading.Thread(target=replace)
    writer.start()
    seen = 0
    while not done.is_set() or seen < 3:
        people, total = listed()
        assert people in (first, second), "a read saw a mix of two lists"
        assert total == len(people)
        seen += 1
    writer.join()
    assert not failures, failures
