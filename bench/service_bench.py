"""Service benchmark: this service against `mlflow models serve` and a bare Flask endpoint.

All three serve the same released model on loopback, each with two gunicorn (or uvicorn)
workers and one native thread per worker, driven in the same run by a bounded load generator
(wrk when installed, `apt-get install wrk`; else Python processes with keep-alive connections;
a fixed duration per cell): single records and batches
of 100, at several concurrencies. This service's numbers include validation, exact reasons and
the access-log row written before each response.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from kernel.home import Home
    from model.spec import ExperimentSpec
    from store.db import Database

ROOT = Path(__file__).resolve().parent.parent
DURATION = 4.0  # seconds per cell
CONCURRENCY = (1, 4, 8)
#: The same gunicorn settings as ``outreach serve``, for this service and the bare Flask peer.
GUNICORN = ("-c", "python:service.gunicorn_conf", "-w", "2")
BATCH_RECORDS = 1_000_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int, path: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status < 500:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server on port {port} did not start")


def _client(args: tuple[int, str, bytes, dict[str, str], float]) -> list[float]:
    port, path, body, headers, until = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies = []
    while time.monotonic() < until:
        started = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"status {response.status} from port {port}")
        latencies.append(time.perf_counter() - started)
    conn.close()
    return latencies


def _ms(text: str) -> float:
    for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float(text)


def drive_wrk(port: int, path: str, body: bytes, headers: dict[str, str], concurrency: int) -> dict:
    """wrk (C, light on the CPU the servers share): POST with a Lua script, latency percentiles."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f"wrk.method = 'POST'\nwrk.body = {json.dumps(body.decode())}\n")
        for key, value in headers.items():
            script.write(f"wrk.headers[{json.dumps(key)}] = {json.dumps(value)}\n")
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(min(concurrency, 2)),
            "-c",
            str(concurrency),
            "-d",
            f"{DURATION:.0f}s",
            "--latency",
            "-s",
            script.name,
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=DURATION + 30,
    ).stdout
    os.unlink(script.name)
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx responses from port {port}:\n{out}")
    values = {}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            values["rps"] = float(parts[1])
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            values["p" + parts[0][:-1]] = _ms(parts[1])
    return values


def drive(port: int, path: str, body: bytes, headers: dict[str, str], concurrency: int) -> dict:
    if shutil.which("wrk"):
        return drive_wrk(port, path, body, headers, concurrency)
    until = time.monotonic() + DURATION
    with multiprocessing.get_context("fork").Pool(concurrency) as pool:
        results = pool.map(_client, [(port, path, body, headers, until)] * concurrency)
    latencies = np.array([x for r in results for x in r])
    return {
        "rps": len(latencies) / DURATION,
        "p50": float(np.percentile(latencies, 50) * 1e3),
        "p99": float(np.percentile(latencies, 99) * 1e3),
    }


BARE_APP = textwrap.dedent(
    """
    import os, pickle
    import pandas as pd
    from flask import Flask, jsonify, request
    with open(os.environ["BENCH_PIPELINE"], "rb") as handle:
        pipeline = pickle.load(handle)
    app = Flask(__name__)

    @app.post("/predict")
    def predict():
        frame = pd.DataFrame(request.get_json()["records"])
        return jsonify(pipeline.predict_proba(frame)[:, 1].tolist())

    @app.post("/empty")
    def empty():
        return jsonify([])
    """
)


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = open(log, "wb")  # noqa: SIM115 - closed when the process is reaped
    return subprocess.Popen(
        args, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )


def batch_scoring(home: Home, spec: ExperimentSpec, db: Database) -> tuple[float, float]:
    """Seconds to generate, and to score with reasons into the queue, a million-record period.

    The generator's 1,000,000 person-months (8 months of 125,000 people) become one period of
    1,000,000 records (each person-month its own id): ``score_period`` then validates, scores
    and explains them all, and writes the top 5% to the queue with their reasons and the
    monitoring counts for the audited attributes, in one transaction, as ``outreach score``.
    """
    from jobs.batch import score_period
    from lifecycle.model_source import ModelSource
    from model.synthetic import generate_preset

    started = time.perf_counter()
    frame = generate_preset(unit="individual", rows=BATCH_RECORDS, seed=11, periods=8)
    frame["person_id"] = (
        frame["person_id"].astype("int64") * 100 + frame.groupby("person_id").cumcount().to_numpy()
    )
    frame["period"] = frame["period"].max()
    generated = time.perf_counter() - started
    source = ModelSource(home, spec.name)
    source.refresh()
    assert source.current is not None, source.problem
    started = time.perf_counter()
    result = score_period(db, source.current, frame, attributes=spec.sensitive_attributes)
    seconds = time.perf_counter() - started
    assert result.scored == BATCH_RECORDS, result
    return generated, seconds


def main() -> None:
    import tomllib

    from audits.policy import load_policy
    from kernel.home import Home
    from lifecycle.release import release
    from model.data import validate
    from model.registry import connect
    from model.spec import parse_spec
    from model.synthetic import generate_preset
    from store.accounts import add_user
    from store.db import Database, default_url

    folder = Path(tempfile.mkdtemp(prefix="outreach-bench-"))
    home = Home(folder / "home").ensure()
    raw = tomllib.loads((ROOT / "experiments" / "individual_outreach.toml").read_text())
    raw["candidates"] = [{"name": "logistic", "family": "logistic", "grid": {"C": [1.0]}}]
    raw.pop("mitigation")
    spec = parse_spec(raw, source_path=str(ROOT / "experiments" / "individual_outreach.toml"))
    print("benchmark: service (releasing a model to serve...)", file=sys.stderr)
    frame = generate_preset(unit="individual", rows=120_000, seed=7)
    dataset = validate(frame, spec)
    registry = connect(home)
    result = release(
        spec, dataset, registry, policy=load_policy(ROOT / "audits" / "policies" / "default.toml")
    )
    version = str(result.chosen.candidate.version)
    pipeline_path = folder / "pipeline.pkl"
    pipeline_path.write_bytes(pickle.dumps(result.chosen.candidate.final.pipeline))
    db = Database(default_url(home.root))
    db.upgrade()
    token = add_user(db, "bench", "coordinator")
    (folder / "bare.py").write_text(BARE_APP)

    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OUTREACH_HOME": str(home.root),
        "OUTREACH_RATE_LIMIT": "100000000",
        "MLFLOW_TRACKING_URI": home.tracking_uri,
        "BENCH_PIPELINE": str(pipeline_path),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    bin_dir = Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"  # mlflow execs uvicorn by name
    ours, mlflow_port, bare = _free_port(), _free_port(), _free_port()
    servers = [
        _start(
            [
                str(bin_dir / "gunicorn"),
                *GUNICORN,
                "-b",
                f"127.0.0.1:{ours}",
                "service:create_app()",
            ],
            env,
            folder / "ours.log",
        ),
        _start(
            [
                str(bin_dir / "mlflow"),
                "models",
                "serve",
                "-m",
                f"models:/{spec.name}/{version}",
                "--env-manager",
                "local",
                "-p",
                str(mlflow_port),
                "-w",
                "2",
            ],
            env,
            folder / "mlflow.log",
        ),
        _start(
            [
                str(bin_dir / "gunicorn"),
                *GUNICORN,
                "-b",
                f"127.0.0.1:{bare}",
                "--chdir",
                str(folder),
                "bare:app",
            ],
            env,
            folder / "bare.log",
        ),
    ]
    try:
        _wait(ours, "/api/v1/readyz")
        _wait(mlflow_port, "/ping")
        _wait(bare, "/predict")
        records = dataset.source_frame().head(100)
        features = list(spec.feature_names)
        rows = []
        for size in (1, 100):
            chunk = records.head(size)
            ours_body = json.dumps(
                {
                    "purpose": "outreach",
                    "records": [
                        {"id": str(r["person_id"]), **{f: r[f] for f in features}}
                        for r in chunk.to_dict("records")
                    ],
                }
            ).encode()
            plain = [{f: r[f] for f in features} for r in chunk.to_dict("records")]
            targets = [
                (
                    "this service (reasons + access log)",
                    ours,
                    "/api/v1/score",
                    ours_body,
                    {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                ),
                (
                    "mlflow models serve",
                    mlflow_port,
                    "/invocations",
                    json.dumps({"dataframe_records": plain}).encode(),
                    {"Content-Type": "application/json"},
                ),
                (
                    "bare Flask + predict_proba",
                    bare,
                    "/predict",
                    json.dumps({"records": plain}).encode(),
                    {"Content-Type": "application/json"},
                ),
            ]
            if size == 1:
                targets.append(
                    (
                        "empty Flask endpoint (ceiling)",
                        bare,
                        "/empty",
                        b"{}",
                        {"Content-Type": "application/json"},
                    )
                )
            for concurrency in CONCURRENCY:
                for name, port, path, body, headers in targets:
                    measured = drive(port, path, body, headers, concurrency)
                    rows.append((size, concurrency, name, measured))
                    print(
                        f"  {size:>3} rec x{concurrency}: {name}: {measured['rps']:.0f} req/s",
                        file=sys.stderr,
                    )
    finally:
        for server in servers:
            os.killpg(server.pid, signal.SIGTERM)
        for server in servers:
            server.wait(timeout=30)
    print(
        f"\n{'records':>7} {'clients':>7}  {'server':<40} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7}"
    )
    for size, concurrency, name, m in rows:
        print(
            f"{size:>7} {concurrency:>7}  {name:<40} {m['rps']:>8.0f} {m['p50']:>7.2f} "
            f"{m['p99']:>7.2f}"
        )
    single = {(c, n): m["rps"] for s, c, n, m in rows if s == 1}
    for concurrency in CONCURRENCY:
        ours_rps = single[(concurrency, "this service (reasons + access log)")]
        versus_mlflow = ours_rps / single[(concurrency, "mlflow models serve")]
        print(
            f"single records, {concurrency} clients: {versus_mlflow:.1f}x "
            f"mlflow models serve (target 10x), "
            f"{ours_rps / single[(concurrency, 'bare Flask + predict_proba')]:.1f}x bare Flask "
            "(target 3x)"
        )
    p99 = next(
        m["p99"] for s, c, n, m in rows if s == 1 and c == 4 and n.startswith("this service")
    )
    print(f"this service p99 at 4 clients, single records: {p99:.1f} ms (target < 10 ms)")
    print(f"each cell ran {DURATION:.0f} s with keep-alive clients on the same 2 cores")
    print("benchmark: batch scoring a million records into the queue...", file=sys.stderr)
    generated, seconds = batch_scoring(home, spec, db)
    print(
        f"batch: {BATCH_RECORDS:,} records validated, scored and explained into the queue "
        f"(top 5% with reasons, monitoring counts) in {seconds:.1f} s, "
        f"{BATCH_RECORDS / seconds:,.0f} records/s (target < 30 s); generated in {generated:.1f} s"
    )


if __name__ == "__main__":
    main()
