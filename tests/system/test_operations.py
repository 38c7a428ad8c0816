"""Operations: service-wide metrics, owner-only files, workers starting on one home at once, a
/readyz that tells nobody where things live, and API responses no cache keeps.

The metrics run the real ``outreach serve`` (gunicorn, several workers) on a free loopback port
(:class:`Served`, also used by ``test_clean_starts``); everything else goes through real apps,
real SQLite files and real processes.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import stat
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from kernel.files import create_once, write_atomically
from kernel.home import Home
from model.data import Dataset
from outreach.cli import main
from service import create_app
from store.accounts import add_user
from store.db import Database
from tests.support.homes import TwoReleases
from tests.support.homes import copy_home as copy_home_folder
from tests.support.migration_worker import upgrade_when_released
from tests.support.servers import Served, open_entries


@pytest.fixture(scope="module")
def served_home(tmp_path_factory: pytest.TempPathFactory, two_releases: TwoReleases) -> Home:
    """A released model in a home built by this (test) process: its files are as open as the
    process's umask made them, as in a home made before the owner-only rule."""
    return copy_home_folder(two_releases.home.root, tmp_path_factory.mktemp("ops") / "home")


def copy_home(home: Home, to: Path, *, fresh_database: bool = False) -> Home:
    return copy_home_folder(home.root, to, fresh_database=fresh_database)


def test_workers_migrating_a_fresh_database_at_once_all_succeed(tmp_path: Path) -> None:
    """Gunicorn's master migrates first, but the app migrates too (under other servers, and in
    every worker): eight processes upgrading one new database at the same moment."""
    # Not forked from this process: it runs threads (earlier tests' access-log signers), and a
    # child forked while one of them held SQLite's allocator mutex waits on it forever. A fork
    # server is a clean single-threaded process; it loads the worker's module once.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.support.migration_worker", "store.db"])
    for attempt in range(3):
        url = f"sqlite:///{tmp_path / f'race{attempt}.db'}"
        barrier, errors = context.Barrier(8), context.Queue()
        processes = [
            context.Process(target=upgrade_when_released, args=(url, barrier, errors))
            for _ in range(8)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join(600)  # a correctness check, not a timing one: a loaded machine is slow
        for process in processes:
            if process.is_alive():  # never left behind to hang the run's exit
                process.kill()
        failures = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
        codes = [p.exitcode for p in processes]
        assert failures == [] and codes == [0] * 8, (failures, codes)
        with Database(url).engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert len(versions) == 1


KEY_ROUNDS = 300  # the old code gave an empty read in a few rounds in a hundred
COPY_ROUNDS = 40


def _create(folder: Path, barrier: Any, results: Any) -> None:
    for number in range(KEY_ROUNDS):
        path = folder / f"key{number}"
        barrier.wait()
        create_once(path, os.urandom(32))
        results.put((number, path.read_bytes()))


def _rewrite(folder: Path, barrier: Any, results: Any) -> None:
    path, size = folder / "copy", 200_000
    barrier.wait(timeout=300)
    for _ in range(COPY_ROUNDS):
        write_atomically(path, bytes([os.getpid() % 250 + 1]) * size)
        seen = path.read_bytes()
        results.put((0, bytes([len(seen) == size and len(set(seen)) == 1])))


def at_once(job: Callable[..., None], folder: Path, rounds: int) -> list[tuple[int, bytes]]:
    """``job`` in eight processes released together; what each read."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(8), context.Queue()
    processes = [context.Process(target=job, args=(folder, barrier, results)) for _ in range(8)]
    for process in processes:
        process.start()
    seen = [results.get(timeout=60) for _ in range(8 * rounds)]
    for process in processes:
        process.join(60)
    for process in processes:
        if process.is_alive():  # never left behind to hang the run's exit
            process.kill()
    assert all(p.exitcode == 0 for p in processes)
    return seen


def test_a_key_created_by_many_processes_at_once_is_one_whole_key(tmp_path: Path) -> None:
    """The session key and the signing keys: eight workers create the same file at the same
    moment, 300 times over. Each reads the winner's 32 bytes, never an empty or partial
    file (the old exclusive create, then write, gave an empty read in a few rounds in a hundred)."""
    seen = at_once(_create, tmp_path, KEY_ROUNDS)
    for number in range(KEY_ROUNDS):
        keys = {key for round_, key in seen if round_ == number}
        assert len(keys) == 1 and len(keys.pop()) == 32, f"round {number}: {keys}"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"key{n}" for n in range(KEY_ROUNDS)
    )
    assert {stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()} == {0o600}


def test_a_copy_replaced_by_many_processes_at_once_is_always_whole(tmp_path: Path) -> None:
    """The last-known-good copy: eight processes replacing one file; every read is one writer's
    whole file, and no temporary file is left behind."""
    seen = at_once(_rewrite, tmp_path, COPY_ROUNDS)
    assert all(whole == b"\x01" for _, whole in seen)
    assert [p.name for p in tmp_path.iterdir()] == ["copy"]
    assert stat.S_IMODE((tmp_path / "copy").stat().st_mode) == 0o600


# -- metrics -----------------------------------------------------------------------------------


def samples(body: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name:
                key = tuple(sorted(sample.labels.items()))
                found[key] = found.get(key, 0.0) + sample.value
    return found


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.fixture
def two_workers(served_home: Home, tmp_path: Path) -> Iterator[Served]:
    server = Served(copy_home(served_home, tmp_path / "metrics"), 2, tmp_path / "serve.log")
    server.start()
    yield server
    server.stop()


def test_metrics_count_every_worker(two_workers: Served) -> None:
    requests, refused = 400, 30
    with ThreadPoolExecutor(8) as pool:  # concurrent clients: both workers answer
        healthy = list(pool.map(lambda _: get(f"{two_workers.base}/healthz")[0], range(requests)))
        denied = list(pool.map(lambda _: get(f"{two_workers.base}/model")[0], range(refused)))
    assert set(healthy) == {200} and set(denied) == {401}
    files = list((two_workers.home.root / "service" / "metrics").glob("counter_*.db"))
    assert len(files) >= 2, "only one worker answered; the test proves nothing"

    for _ in range(6):  # whichever worker answers the scrape, it reports the whole service
        status, body = get(f"{two_workers.base}/metrics")
        assert status == 200
        text_ = body.decode()
        counts = samples(text_, "outreach_requests_total")
        health = sum(v for k, v in counts.items() if ("endpoint", "api.healthz") in k)
        assert health >= requests
        refusals = samples(text_, "outreach_refusals_total")
        assert refusals[(("reason", "unauthenticated"),)] >= refused
        assert samples(text_, "outreach_access_log_write_failures_total") == {(): 0.0}
        latency = samples(text_, "outreach_request_seconds_count")
        assert sum(v for k, v in latency.items() if ("endpoint", "api.healthz") in k) >= requests


# -- file modes --------------------------------------------------------------------------------


def test_the_service_and_the_cli_keep_the_home_owner_only(
    served_home: Home, tmp_path: Path, dataset: Dataset
) -> None:
    # A home made before the rule (this process's umask): found open, made owner-only.
    old = copy_home(served_home, tmp_path / "old")
    old.root.chmod(0o755)
    (old.root / "mlflow.db").chmod(0o644)
    app = create_app({"HOME": old, "WATCH_SECONDS": 0})
    token = add_user(app.extensions["outreach.db"], "mode coordinator", "coordinator")
    client = app.test_client()
    assert client.get("/api/v1/readyz").json["status"] == "ready"
    row = dataset.frame.iloc[0]
    record: dict[str, Any] = {"id": str(row["person_id"])}
    for feature in dataset.spec.features:
        value = row[feature.name]
        record[feature.name] = value if feature.kind == "category" else float(value)
    scored = client.post(
        "/api/v1/score",
        json={"purpose": "outreach", "records": [record]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert scored.status_code == 200, scored.json
    assert client.get("/login").status_code == 200  # the pages: session key
    assert open_entries(old.root) == []

    # A fresh home through the command line (its process's umask is not the CLI's concern).
    fresh = tmp_path / "fresh"
    before = os.umask(0o022)
    try:
        result = CliRunner().invoke(
            main, ["--home", str(fresh), "users", "add", "mode analyst", "--role", "analyst"]
        )
        assert result.exit_code == 0, result.output
        assert os.umask(0o022) == 0o022  # the command's umask was given back
    finally:
        os.umask(before)
    create_app({"HOME": Home(fresh), "WATCH_SECONDS": 0})
    assert (fresh / "service.db").exists() and (fresh / "service" / "session_key").exists()
    assert open_entries(fresh) == []


# -- /readyz -----------------------------------------------------------------------------------


def assert_nothing_internal(body: str, home: Home, *also: str) -> None:
    for secret in (str(home.root), home.tracking_uri, "sqlite", "file:", "mlflow", *also):
        assert secret.lower() not in body.lower(), f"{secret!r} in {body}"


def test_readyz_gives_public_reasons_and_logs_the_detail(
    served_home: Home, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="outreach.service")
    empty = Home(tmp_path / "empty")
    app = create_app({"HOME": empty, "WATCH_SECONDS": 0})
    answer = app.test_client().get("/api/v1/readyz")
    assert answer.status_code == 503
    assert answer.json == {"status": "not ready", "problem": "no verified model"}
    assert_nothing_internal(answer.get_data(as_text=True), empty)
    assert any("not serving" in r.getMessage() for r in caplog.records)

    unreachable = "http://127.0.0.1:9"
    caplog.clear()
    nothing_kept = create_app(
        {"HOME": Home(tmp_path / "empty2"), "TRACKING_URI": unreachable, "WATCH_SECONDS": 0}
    )
    answer = nothing_kept.test_client().get("/api/v1/readyz")
    assert answer.status_code == 503
    assert answer.json["problem"] == "no verified model; the model registry cannot be reached"
    assert_nothing_internal(answer.get_data(as_text=True), Home(tmp_path / "empty2"), "127.0.0.1")
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "cannot be reached" in logged and "127.0.0.1:9" in logged  # the detail, for operators

    kept = copy_home(served_home, tmp_path / "kept")
    create_app({"HOME": kept, "WATCH_SECONDS": 0})  # keeps a verified copy
    degraded = create_app({"HOME": kept, "TRACKING_URI": unreachable, "WATCH_SECONDS": 0})
    answer = degraded.test_client().get("/api/v1/readyz")
    assert answer.status_code == 200 and answer.json["status"] == "degraded"
    assert answer.json["problem"] == (
        "the model registry cannot be reached; serving the last verified copy"
    )
    assert_nothing_internal(answer.get_data(as_text=True), kept, "127.0.0.1")
    assert degraded.extensions["outreach.model"].problem.count("127.0.0.1:9")  # kept for the log


# -- responses ---------------------------------------------------------------------------------


@pytest.fixture
def app(served_home: Home, tmp_path: Path) -> Flask:
    return create_app(
        {
            "HOME": served_home,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}",
            "WATCH_SECONDS": 0,
            "TESTING": True,
        }
    )


def test_api_responses_are_never_stored(app: Flask) -> None:
    client = app.test_client()
    token = add_user(app.extensions["outreach.db"], "cache analyst", "analyst")
    for path, headers in (
        ("/api/v1/model", {"Authorization": f"Bearer {token}"}),  # personal-data routes' kin
        ("/api/v1/model", {}),  # a refusal
        ("/api/v1/readyz", {}),
        ("/api/v1/nope", {}),
    ):
        answer = client.get(path, headers=headers)
        assert answer.headers["Cache-Control"] == "no-store", (path, answer.status_code)


def test_an_access_log_row_that_cannot_be_written_is_counted(app: Flask, dataset: Dataset) -> None:
    db: Database = app.extensions["outreach.db"]
    token = add_user(db, "count coordinator", "coordinator")
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TRIGGER refuse_rows BEFORE INSERT ON access_log "
                "BEGIN SELECT RAISE(ABORT, 'the disk is full'); END"
            )
        )
    row = dataset.frame.iloc[0]
    record: dict[str, Any] = {"id": str(row["person_id"])}
    for feature in dataset.spec.features:
        value = row[feature.name]
        record[feature.name] = value if feature.kind == "category" else float(value)
    client = app.test_client()
    answer = client.post(
        "/api/v1/score",
        json={"purpose": "outreach", "records": [record]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 503 and answer.json["error"]["code"] == "access_log_unavailable"
    body = client.get("/api/v1/metrics").get_data(as_text=True)
    assert samples(body, "outreach_access_log_write_failures_total") == {(): 1.0}
