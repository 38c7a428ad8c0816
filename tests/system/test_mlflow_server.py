"""A real deployment's registry: an MLflow tracking server with a PostgreSQL backend store.

``mlflow server`` runs on loopback against a database in the run's throwaway PostgreSQL cluster
(``tests/postgres.py``), serving artifacts from a local folder. Through the home's tracking
server (``OUTREACH_TRACKING_URI``) a model is released, verified and served, a month is
batch-scored into a service database on the same cluster, and the server holds the runs,
metrics, plots and audit reports; the home's own SQLite store is never created.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from kernel.home import Home
from outreach.cli import main
from tests.support.postgres import Cluster
from tests.support.specs import INDIVIDUAL_SPEC, fast_mapping, write_toml


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tracking_server(postgres: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` with a PostgreSQL backend store and a local artifact folder."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    log = (folder / "server.log").open("w")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            postgres.create_database(),
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        # MLflow's job runner (GenAI evaluation jobs, trace roll-ups: nothing the project uses)
        # would start eight more processes of its own, each importing MLflow.
        env={
            **os.environ,
            "MLFLOW_TRACKING_URI": "",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        },
        cwd=folder,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            log.close()
            pytest.fail("mlflow server did not start:\n" + (folder / "server.log").read_text())
        time.sleep(0.5)
    try:
        yield uri
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_the_readme_walk_through_on_postgresql_a_tracking_server_and_spark(
    tracking_server: str,
    postgres: Cluster,
    population: pd.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A person follows the docs with ``OUTREACH_DATABASE_URL`` on PostgreSQL and
    ``OUTREACH_TRACKING_URI`` on an MLflow server: release, approve, add users, score a month on
    Spark, load it into the queue, serve it, and use the pages and the API."""
    from mlflow.tracking import MlflowClient
    from pyspark.sql import SparkSession

    from service import create_app
    from store.db import Database, QueueEntry, ScoredPeriod

    url = postgres.create_database()
    home = Home(tmp_path / "home")
    for key, value in {
        "OUTREACH_HOME": str(home.root),
        "OUTREACH_DATABASE_URL": url,
        "OUTREACH_TRACKING_URI": tracking_server,
    }.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()

    def outreach(*args: str) -> str:
        outcome = runner.invoke(main, list(args))
        assert outcome.exit_code == 0, f"outreach {' '.join(args)}:\n{outcome.output}"
        return outcome.stdout

    raw = fast_mapping()
    raw["policy"] = str(INDIVIDUAL_SPEC.parent.parent / "audits" / "policies" / "default.toml")
    spec = write_toml(raw, tmp_path / "experiment.toml")
    data = tmp_path / "population.parquet"
    population.to_parquet(data, index=False)

    # stdout is the --json document alone (MLflow's "View run at" lines are kept off it).
    released = json.loads(outreach("release", str(spec), "--data", str(data), "--json"))
    name, version = released["registered_model"], str(released["version"])
    if not released["promoted"]:  # a small population leaves groups to a person: REVIEW
        assert released["awaiting_approval"], released
        outreach("models", "approve", name, version, "--by", "oversight", "--note", "reviewed")
    password = "walk-through-password"
    secret = tmp_path / "password.txt"  # never on the command line (ps shows argv)
    secret.write_text(password + "\n")
    outreach(
        "users", "add", "coordinator-1", "--role", "coordinator", "--password-file", str(secret)
    )
    token = outreach("users", "add", "coordinator-api", "--role", "coordinator").split()[-1]

    period = str(sorted(population["period"].unique())[-1])
    out = tmp_path / "scored"
    try:
        outreach(
            "score", "--engine", "spark", "--master", "local[2]",
            "--data", str(data), "--out", str(out), "--period", period,
        )  # fmt: skip
    finally:
        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()
    assert (out / f"scored_period={period}").is_dir()
    outreach("queue", "load", "--from", str(out), "--period", period)
    for user in ("coordinator-1", "coordinator-api"):
        outreach("users", "areas", user, "*")

    db = Database(url)
    with db.session() as session:
        queued = session.query(QueueEntry).filter_by(period=period).count()
        kept = session.query(ScoredPeriod).filter_by(period=period).one()
    assert queued > 0 and kept.population == int((population["period"] == period).sum())

    app = create_app({"WATCH_SECONDS": 0})  # everything else from the environment
    client = app.test_client()
    ready = client.get("/api/v1/readyz")
    assert ready.status_code == 200, ready.get_json()
    listed = client.get(
        "/api/v1/queue?purpose=outreach", headers={"Authorization": f"Bearer {token}"}
    )
    assert listed.status_code == 200, listed.get_json()
    entries = listed.get_json()["entries"]
    assert entries and {e["model"]["version"] for e in entries} == {version}

    login = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login)
    assert csrf is not None
    signed = client.post(
        "/login",
        data={"csrf_token": csrf.group(1), "username": "coordinator-1", "password": password},
    )
    assert signed.status_code == 302
    page = client.get("/outreach/")
    assert page.status_code == 200
    first = entries[0]["person_id"]
    assert first in page.get_data(as_text=True)
    assert client.get(f"/outreach/people/{first}").status_code == 200
    assert not home.mlflow_db.exists(), "the home's SQLite store was written"

    # What the MLflow UI shows comes from the server: runs, metrics, plots, audit reports.
    tracking = MlflowClient(tracking_uri=tracking_server)
    experiment = tracking.get_experiment_by_name(name)
    assert experiment is not None
    runs = tracking.search_runs([experiment.experiment_id])
    assert runs and any(run.data.metrics for run in runs)
    audited = [r for r in runs if "audit_id" in " ".join(r.data.tags)]
    paths = {a.path for run in audited for a in tracking.list_artifacts(run.info.run_id, "audit")}
    assert any(p.endswith("audit.html") for p in paths)
    assert any(p.endswith("audit.json") for p in paths)
    plots = {a.path for run in runs for a in tracking.list_artifacts(run.info.run_id, "plots")}
    assert any(p.endswith(".png") for p in plots)
