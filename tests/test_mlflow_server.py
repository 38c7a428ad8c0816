"""A real deployment's registry: an MLflow tracking server with a PostgreSQL backend store.

``mlflow server`` runs on loopback against a database in the run's throwaway PostgreSQL cluster
(``tests/postgres.py``), serving artifacts from a local folder. Through the home's tracking
server (``OUTREACH_TRACKING_URI``) a model is released, verified and served, a month is
batch-scored into a service database on the same cluster, and the server holds the runs,
metrics, plots and audit reports; the home's own SQLite store is never created.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from model.home import Home
from model.spec import ExperimentSpec
from tests.postgres import Cluster


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
        env={**os.environ, "MLFLOW_TRACKING_URI": ""},
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


def test_release_serve_and_score_through_a_tracking_server(
    tracking_server: str,
    postgres: Cluster,
    small_spec: ExperimentSpec,
    dataset,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    from mlflow.tracking import MlflowClient

    from audits.catalogue import read_report
    from audits.release import release
    from model.registry import connect
    from service import create_app
    from service.auth import add_user
    from service.batch import score_period
    from service.db import Database, QueueEntry, ScoredPeriod
    from service.loader import ModelSource
    from service.periods import Monitoring
    from tests.test_release import LENIENT, policy_text

    home = Home(tmp_path / "home", tracking_server=tracking_server)
    registry = connect(home)
    result = release(small_spec, dataset, registry, policy=policy_text(**LENIENT))
    assert result.promoted, result.summary()
    version = str(result.chosen.candidate.version)

    # Verified and loaded from the server: the signed attestation binds the bytes it served.
    source = ModelSource(home, small_spec.name)
    source.refresh()
    serving = source.current
    assert serving is not None, source.problem
    assert serving.version == version

    # Batch-scored into a service database on PostgreSQL, kept for monitoring.
    url = postgres.create_database()
    db = Database(url)
    db.upgrade()
    frame = dataset.source_frame()
    period = str(sorted(frame["period"].unique())[-1])
    report = read_report(registry, serving.audit_id)
    batch = score_period(
        db,
        serving,
        frame,
        period=period,
        monitoring=Monitoring.from_report(home.monitoring, report),
    )
    assert batch.queued > 0
    with db.session() as session:
        assert session.query(QueueEntry).filter_by(period=period).count() >= batch.queued
        assert session.query(ScoredPeriod).filter_by(period=period).one().population == batch.scored

    # Served: the app reads the registry through the server too.
    app = create_app(
        {"HOME": home, "DATABASE_URL": url, "TRACKING_URI": tracking_server, "WATCH_SECONDS": 0}
    )
    client = app.test_client()
    ready = client.get("/api/v1/readyz")
    assert ready.status_code == 200, ready.get_json()
    token = add_user(db, "server-coordinator", "coordinator")
    record: dict[str, object] = {
        f.name: (f.categories[0] if f.kind == "category" else (f.min or 0))
        for f in serving.model.features
    }
    record["id"] = "person-1"
    scored = client.post(
        "/api/v1/score",
        json={"purpose": "outreach", "records": [record]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert scored.status_code == 200, scored.get_json()
    assert scored.get_json()["model"]["version"] == version

    # What the MLflow UI shows comes from the server: runs, metrics, plots, audit reports.
    client_ = MlflowClient(tracking_uri=tracking_server)
    experiment = client_.get_experiment_by_name(small_spec.name)
    assert experiment is not None
    runs = client_.search_runs([experiment.experiment_id])
    assert runs and any(run.data.metrics for run in runs)
    audited = [r for r in runs if "audit_id" in " ".join(r.data.tags)]
    assert audited
    paths = {a.path for run in audited for a in client_.list_artifacts(run.info.run_id, "audit")}
    assert any(p.endswith("audit.html") for p in paths) and any(
        p.endswith("audit.json") for p in paths
    )
    assert any(
        a.path.endswith(".png") or a.path.endswith(".svg")
        for run in runs
        for top in client_.list_artifacts(run.info.run_id)
        for a in ([top] if not top.is_dir else client_.list_artifacts(run.info.run_id, top.path))
    )
    assert not home.mlflow_db.exists(), "the home's SQLite store was written"
