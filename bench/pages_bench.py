"""Pages benchmark: server time of the coordinator list with 5,000 queue entries, the person page,
the audit report page and the other oversight pages (target: under 300 ms each).

A small experiment is released on a synthetic population; a second population of 100,000 people is
then batch-scored for two months (5% capacity: 5,000 entries each), with outcomes recorded for a
fifth of the list. Pages are requested in-process through Flask's client (the server's own time,
without the network), each many times, with the collector set up as in the served workers; the
median and 95th percentile are printed.
"""

from __future__ import annotations

import gc
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from bench.releasing import released, small_spec
from bench.scale import pick
from jobs.batch import score_period
from kernel.home import Home
from lifecycle.model_source import ModelSource
from lifecycle.release import policy_for, read_report
from model.registry import connect
from model.synthetic import generate_preset
from monitoring.group_shares import audited_attributes
from service import create_app
from store.accounts import add_user, set_areas
from store.db import Database, Outcome, QueueEntry, default_url
from store.queue import ALL_AREAS

PEOPLE = pick(100_000, 4_000)
REPEATS = pick(30, 2)
TARGET_MS = 300.0


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _prepare(folder: Path) -> Home:
    _progress("releasing a small experiment ...")
    done = released(
        folder,
        small_spec(),
        lambda: generate_preset(unit="individual", rows=40_000, seed=3, periods=20),
        lambda _home, spec: policy_for(spec),
    )
    home, spec = done.home, done.spec
    _progress(f"generating {PEOPLE:,} people and scoring their last two months ...")
    people = generate_preset(unit="individual", rows=PEOPLE * 8, seed=11, periods=8)
    db = Database(default_url(home.root))
    db.upgrade()
    source = ModelSource(home, spec.name)
    source.refresh()
    serving = source.current
    assert serving is not None
    attributes = audited_attributes(read_report(connect(home), serving.audit_id))
    for period in sorted(people["period"].unique())[-2:]:
        batch = score_period(db, serving, people, period=str(period), attributes=attributes)
        _progress(f"  {batch.period}: {batch.queued:,} queue entries")
    with db.session() as session:
        latest = session.scalar(select(func.max(QueueEntry.period)))
        ids = session.scalars(
            select(QueueEntry.id).where(QueueEntry.period == latest).limit(1000)
        ).all()
        session.add_all(
            Outcome(entry_id=i, status="contacted", note="", recorded_by="bench") for i in ids
        )
    for role in ("coordinator", "oversight"):  # page logins for the timed clients
        add_user(db, f"bench-{role}", role, password=f"bench-{role}-password")
    set_areas(db, "bench-coordinator", [ALL_AREAS])  # a coordinator sees only their areas
    return home


def _client(app: Flask, role: str) -> FlaskClient:
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    client.post(
        "/login",
        data={
            "csrf_token": token,
            "username": f"bench-{role}",
            "password": f"bench-{role}-password",
        },
    )
    return client


def _time(client: FlaskClient, path: str) -> tuple[float, float, int]:
    response = client.get(path)  # warm-up (template compilation, caches)
    assert response.status_code == 200, (path, response.status_code)
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))], len(response.data)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        home = _prepare(Path(folder))
        app = create_app({"HOME": home, "WATCH_SECONDS": 0})
        # As in outreach serve's workers (service/gunicorn_conf.py): what is loaded at start-up
        # stays out of the collector, whose full passes would otherwise add about 0.25 s.
        gc.collect()
        gc.freeze()
        coordinator, oversight = _client(app, "coordinator"), _client(app, "oversight")
        html = coordinator.get("/outreach/").get_data(as_text=True)
        person = re.search(r'href="/outreach/people/([^"]+)"', html).group(1)  # type: ignore[union-attr]
        releases = oversight.get("/oversight/releases").get_data(as_text=True)
        audit = re.search(r'href="/oversight/audits/([^"]+)"', releases).group(1)  # type: ignore[union-attr]
        cases = [
            (coordinator, f"list, {PEOPLE // 20:,} entries, page 1", "/outreach/"),
            (coordinator, "list, filtered by area and band", "/outreach/?area=North&band=priority"),
            (coordinator, "list, page 100", "/outreach/?page=100"),
            (coordinator, "person", f"/outreach/people/{person}"),
            (oversight, "audit report", f"/oversight/audits/{audit}"),
            (oversight, "releases", "/oversight/releases"),
            (oversight, "compare", "/oversight/compare"),
            (oversight, "monitoring", "/oversight/monitoring"),
            (oversight, "access log", "/oversight/access-log"),
        ]
        print(
            f"\nPages: server time in process, {REPEATS} requests each "
            f"(target < {TARGET_MS:.0f} ms)"
        )
        print(f"{'page':<36}{'median ms':>11}{'p95 ms':>9}{'KiB':>7}  target")
        for client, label, path in cases:
            median, p95, size = _time(client, path)
            verdict = "met" if p95 < TARGET_MS else "NOT met"
            print(f"{label:<36}{median:>11.1f}{p95:>9.1f}{size / 1024:>7.0f}  {verdict}")
        app.extensions["outreach.model"].stop()


if __name__ == "__main__":
    main()
