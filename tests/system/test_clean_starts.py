"""Clean starts: ten starts of the real ``outreach serve`` (gunicorn, four workers) on free
loopback ports, two at a time, on restarted homes and on homes never started.

The races a start can lose are each held directly, with many processes at once and many rounds,
in ``tests/system/test_operations.py`` (eight processes migrating one new database, creating one
key 300 times, replacing one copy 40 times). This test holds the whole: every start of the real
server, four workers booting on one home while another server starts beside it, becomes ready
with whole, agreed, owner-only files. Ten starts (three on homes never started) rather than the
twenty it once took: each start costs seconds of CPU (gunicorn's master imports MLflow, pandas
and scikit-learn), and the end-to-end check needs the mix of fresh and restarted homes, not the
count that the per-race tests already give.

A module of its own (one of the suite's longest tests), so that ``make test``'s second process
runs the rest of the operations tests beside it.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kernel.home import Home
from service import create_app
from tests.support.homes import TwoReleases, copy_home
from tests.support.servers import Served, open_entries

STARTS = 10
#: Every other round (starts 0, 4 and 8): a home whose service database was never migrated.
FRESH_EVERY = 4


@pytest.fixture(scope="module")
def served_home(tmp_path_factory: pytest.TempPathFactory, two_releases: TwoReleases) -> Home:
    """A released model in a home built by this (test) process: its files are as open as the
    process's umask made them, as in a home made before the owner-only rule."""
    return copy_home(two_releases.home.root, tmp_path_factory.mktemp("starts") / "home")


def _start_and_stop(home: Home, log: Path) -> tuple[float, float, str]:
    server = Served(home, 4, log)
    try:
        ready = server.start()
    finally:
        stopped = server.stop()
    return ready, stopped, server.stderr()


def test_ten_starts_with_four_workers_all_become_ready(
    served_home: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two servers start at once, on different homes, five times: one home is restarted again
    and again, the other is every other time a home never started (no database, no key)."""
    # the same home, start after start
    restarted = copy_home(served_home.root, tmp_path / "restarted")
    second = copy_home(served_home.root, tmp_path / "second")
    timings: list[tuple[str, float, float]] = []
    homes = {restarted.root, second.root}
    with ThreadPoolExecutor(2) as pool:
        for number in range(0, STARTS, 2):
            fresh = number % FRESH_EVERY == 0
            other = (
                copy_home(served_home.root, tmp_path / f"fresh{number}", fresh_database=True)
                if fresh
                else second
            )
            homes.add(other.root)
            runs = [
                pool.submit(_start_and_stop, home, tmp_path / f"start{number + i}.log")
                for i, home in enumerate((restarted, other))
            ]
            for kind, run in zip(("restart", "fresh" if fresh else "restart"), runs, strict=True):
                ready, stopped, log = run.result()
                assert "Worker failed to boot" not in log and "Traceback" not in log, log
                timings.append((kind, ready, stopped))

    total = sum(ready + stopped for _, ready, stopped in timings) / 2  # two at a time
    with capsys.disabled():
        print(
            f"\n{STARTS} starts with 4 workers, two at a time: about {total:.1f} s; to ready "
            f"min {min(t[1] for t in timings):.2f} s, max {max(t[1] for t in timings):.2f} s; "
            f"stop max {max(t[2] for t in timings):.2f} s; "
            + ", ".join(f"{kind[0]}{ready:.1f}/{stopped:.1f}" for kind, ready, stopped in timings)
        )
    # What the workers wrote at start is whole and agreed on: one session key, a last-known-good
    # copy that verifies, and nothing readable by anyone but the owner.
    for root in homes:
        assert len((root / "service" / "session_key").read_bytes()) == 32
        kept = json.loads(
            (root / "service" / "last_known_good" / "individual_outreach.json").read_text()
        )
        assert kept["artifact"] == "individual_outreach.model.json"
        assert not list((root / "service" / "last_known_good").glob("*.tmp"))
        assert open_entries(root) == []
    offline = create_app(
        {
            "HOME": restarted,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'offline.db'}",
            "TRACKING_URI": "http://127.0.0.1:9",
            "WATCH_SECONDS": 0,
        }
    )
    assert offline.test_client().get("/api/v1/readyz").json["status"] == "degraded"
