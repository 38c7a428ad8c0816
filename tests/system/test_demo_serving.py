"""The demo's serving: the process that made the releases becomes gunicorn's master
(:mod:`service.gunicorn_app`) instead of starting a new one.

A real process in the state the demo serves from (:mod:`tests.support.demo_server`: MLflow's
cached engine, a database engine still held, joblib's temporary folder of a parallel run) serves
a released home on a free loopback port; the test talks to it over HTTP and stops it with the
signals a person and a supervisor send.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kernel.home import Home
from tests.support.homes import TwoReleases, copy_home
from tests.support.web import free_port


class DemoServer:
    """``python -m tests.support.demo_server HOME PORT`` in a session of its own."""

    def __init__(self, home: Home, log: Path) -> None:
        self.home, self.log = home, log
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/api/v1"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with log.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.support.demo_server", str(home.root), str(self.port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
                cwd=Path(__file__).resolve().parents[2],
            )

    def ready(self) -> dict[str, object]:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"exited ({self.process.returncode}):\n{self.stderr()}")
            try:
                with urllib.request.urlopen(f"{self.base}/readyz", timeout=5) as response:
                    found: dict[str, object] = json.loads(response.read())
                    if found["status"] == "ready":
                        return found
            except (OSError, ValueError):
                time.sleep(0.1)
        pytest.fail(f"not ready after 120 s:\n{self.stderr()}")

    def workers(self) -> list[int]:
        """The gunicorn workers: children running this same program (not joblib's trackers)."""
        found = subprocess.run(
            ["ps", "-o", "pid=,args=", "--ppid", str(self.process.pid)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return [int(line.split()[0]) for line in found.splitlines() if "demo_server" in line]

    def stop(self, how: signal.Signals, *, group: bool) -> int:
        if group:  # what Ctrl-C in a terminal does: the signal to every process of the group
            os.killpg(self.process.pid, how)
        else:
            self.process.send_signal(how)
        try:
            return self.process.wait(timeout=25)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            pytest.fail(f"did not stop on {how.name}:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")[-20000:]


@pytest.fixture
def server(two_releases: TwoReleases, tmp_path: Path) -> Iterator[DemoServer]:
    running = DemoServer(copy_home(two_releases.home.root, tmp_path / "home"), tmp_path / "log")
    yield running
    if running.process.poll() is None:
        os.killpg(running.process.pid, signal.SIGKILL)
        running.process.wait()


def _open_databases(pid: int, home: Home) -> list[str]:
    """The files of ``home`` that process ``pid`` holds open."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed while listed
            continue
        if target.startswith(str(home.root)):
            found.append(target)
    return found


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_the_demo_process_serves_with_both_workers_and_stops_on_ctrl_c(
    server: DemoServer, two_releases: TwoReleases
) -> None:
    """Served from the process that used the stores: the home's production version is ready,
    the master keeps no database connection across the fork (the workers open their own), both
    workers count into the service-wide metrics, and Ctrl-C stops everything, exit 0, with no
    traceback (the joblib folders are not removed again by each worker)."""
    ready = server.ready()
    served = two_releases.good.summary()
    assert ready["model"] == {  # the home's production version, verified by each worker
        "name": served["registered_model"],
        "version": str(served["version"]),
        "audit_id": served["audit_id"],
        "audit_decision": served["decision"],
        "degraded": False,
    }
    assert _open_databases(server.process.pid, server.home) == []
    workers = server.workers()
    assert len(workers) == 2
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: _get(f"{server.base}/healthz"), range(300)))
    assert set(statuses) == {200}
    counted = list((server.home.root / "service" / "metrics").glob("counter_*.db"))
    assert {int(p.stem.split("_")[1]) for p in counted} == set(workers)

    # No request still in hand (a worker writes its access-log line after the response): Ctrl-C
    # cuts one short with gunicorn's own traceback, whichever process the master is.
    time.sleep(1)
    assert server.stop(signal.SIGINT, group=True) == 0
    log = server.stderr()
    assert "Traceback" not in log, log
    assert "Shutting down: Master" in log
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]


def test_the_demo_process_stops_on_sigterm_to_the_master_alone(server: DemoServer) -> None:
    """A supervisor's SIGTERM to the master alone: it stops the workers, then exits 0."""
    server.ready()
    workers = server.workers()
    assert server.stop(signal.SIGTERM, group=False) == 0
    assert "Traceback" not in server.stderr(), server.stderr()
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
