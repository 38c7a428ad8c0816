"""Servers the system tests start: ``outreach serve`` under gunicorn; who may read its files."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from kernel.home import Home
from tests.support.homes import Site
from tests.support.web import free_port


class Served:
    """``outreach --home H serve --workers W`` (the venv's executable), its stderr in a file."""

    def __init__(self, home: Home, workers: int, log: Path) -> None:
        self.home, self.workers, self.log_path = home, workers, log
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/api/v1"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start and wait until ``/readyz`` says ready; returns the seconds it took."""
        outreach = Path(sys.executable).with_name("outreach")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env["OUTREACH_RATE_LIMIT"] = "1000000"
        started = time.monotonic()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(outreach),
                    "--home",
                    str(self.home.root),
                    "serve",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = started + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the server exited ({self.process.returncode}):\n{self.stderr()}")
            try:
                with urllib.request.urlopen(f"{self.base}/readyz", timeout=5) as response:
                    if json.loads(response.read())["status"] == "ready":
                        return time.monotonic() - started
            except (OSError, ValueError):
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"not ready after 90 s:\n{self.stderr()}")

    def stop(self) -> float:
        """SIGTERM and wait; returns the seconds it took."""
        started = time.monotonic()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=25)  # gunicorn's graceful timeout is 30 s
            except subprocess.TimeoutExpired:
                stuck = self.diagnose()
                self.process.kill()
                self.process.wait()
                pytest.fail(f"the server did not stop on SIGTERM:\n{stuck}\n{self.stderr()}")
        self.process = None
        return time.monotonic() - started

    def diagnose(self) -> str:
        """What the master and its workers are doing (workers dump their Python stacks)."""
        assert self.process is not None
        found = subprocess.run(
            ["ps", "-o", "pid,stat,wchan:32,args", "--ppid", str(self.process.pid)],
            check=False,
            capture_output=True,
            text=True,
        ).stdout
        for line in found.splitlines()[1:]:
            os.kill(int(line.split()[0]), signal.SIGUSR2)
        time.sleep(2)
        master = Path(f"/proc/{self.process.pid}/task")
        threads = [(t / "comm").read_text().strip() for t in master.iterdir()]
        return f"workers:\n{found}master threads: {threads}"

    def stderr(self) -> str:
        return self.log_path.read_text(errors="replace")[-20000:]


def open_entries(root: Path) -> list[str]:
    """Everything under ``root`` (itself included) that its group or anyone else may use."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if not path.is_symlink() and mode & 0o077:
            found.append(f"{path.relative_to(root.parent)} {oct(mode)}")
    return found


POLL = 1.0


class Service:
    """``outreach serve`` for one site, its workers looking for a new production version every
    ``poll`` seconds; started and stopped by the test."""

    def __init__(self, site: Site, poll: float = POLL) -> None:
        self.site, self.port, self.poll = site, free_port(), poll
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = (site.home.root / "gunicorn.log").open("a")

    def start(self) -> None:
        env = {
            **os.environ,
            "OUTREACH_HOME": str(self.site.home.root),
            "OUTREACH_DATABASE_URL": self.site.database_url,
            "OUTREACH_WATCH_SECONDS": str(self.poll),
            "OUTREACH_RATE_LIMIT": "1000000",
        }
        outreach = Path(sys.executable).with_name("outreach")
        self.process = subprocess.Popen(
            [str(outreach), "serve", "--port", str(self.port), "--workers", "2"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.base}/api/v1/healthz", timeout=2).close()
                return
            except OSError:
                time.sleep(0.25)
        pytest.fail("the service did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None
