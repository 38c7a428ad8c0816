"""The stop button under load: the real service (gunicorn, two workers polling every half second)
answers concurrent clients while the board withdraws the model, restarts, and re-approves.

Every window is counted in poll intervals (:data:`POLL`): what is judged is that a change takes
effect within one interval under load, whatever its length. Half a second rather than the
default's ten keeps each window of four clients loading the two cores short."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from model.data import Dataset
from outreach.cli import main
from store.accounts import add_user
from store.db import Database
from tests.support.homes import Site, copy_site, on_both_databases, site_database
from tests.support.servers import Service

#: How often the workers look for a change of the production version (OUTREACH_WATCH_SECONDS).
POLL = 0.5


def score(base: str, token: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{base}/api/v1/score",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture
def service(
    site: Site, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> Iterator[Service]:
    running = Service(copy_site(site, tmp_path, site_database(request, backend)), poll=POLL)
    running.start()
    yield running
    running.stop()
    running.log.close()


@on_both_databases
def test_withdraw_under_load_restart_and_reapproval(service: Service, dataset: Dataset) -> None:
    site = service.site
    token = add_user(Database(site.database_url), "load coordinator", "coordinator")
    body = _one_record(dataset)
    assert score(service.base, token, body)[0] == 200

    with _under_load(service.base, token, body) as seen:
        time.sleep(POLL * 2)
        name = site.awaiting[0]
        runner = CliRunner()
        home = ["--home", str(site.home.root)]
        withdrawn = runner.invoke(
            main, [*home, "models", "withdraw", name, "--by", "oversight", "--note", "under load"]
        )
        assert withdrawn.exit_code == 0, withdrawn.output
        at = time.monotonic()
        time.sleep(POLL * 3 + 1)

    statuses = {status for _, status, _ in seen}
    assert statuses <= {200, 503}, statuses  # no other 5xx, no 4xx
    for _, status, document in seen:  # every answer whole: a score, or the plain reason
        if status == 200:
            assert len(document["results"]) == 1 and document["model"]["name"] == name
        else:
            assert document["error"]["code"] in ("model_withdrawn", "model_unavailable")
    late = [status for t, status, _ in seen if t > at + POLL * 2 + 0.5]
    assert late and set(late) == {503}, "still scoring after the poll interval"
    assert any(status == 200 for t, status, _ in seen if t < at)
    ready = urllib.request.Request(f"{service.base}/api/v1/readyz")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(ready, timeout=5)
    assert caught.value.code == 503

    service.stop()
    service.start()  # a restart: the withdrawal is signed and recorded
    assert score(service.base, token, body)[0] == 503

    production = json.loads(runner.invoke(main, [*home, "models", "list", "--json"]).stdout)
    live = next(r["version"] for r in production if "production" in r["aliases"])
    approved = runner.invoke(
        main, [*home, "models", "approve", name, live, "--by", "oversight-2", "--note", "fixed"]
    )
    assert approved.exit_code == 0, approved.output
    deadline = time.monotonic() + 5.0
    while score(service.base, token, body)[0] != 200:
        assert time.monotonic() < deadline, "not serving again after the re-approval"
        time.sleep(0.05)


def test_a_changed_character_under_load_stops_every_worker(
    service: Service, dataset: Dataset
) -> None:
    """One changed character in the attestation log while four clients score: within one poll
    interval every worker answers 503 attestation_log_invalid, /readyz says log_invalid and the
    service-wide gauge raises the alarm."""
    site = service.site
    token = add_user(Database(site.database_url), "load coordinator", "coordinator")
    body = _one_record(dataset)
    assert score(service.base, token, body)[0] == 200
    with _under_load(service.base, token, body) as seen:
        time.sleep(POLL * 2)
        log = site.home.attestations / f"{site.awaiting[0]}.jsonl"
        lines = log.read_text().splitlines()
        last = json.loads(lines[-1])
        last["statement"]["by"] = "X" + str(last["statement"]["by"])[1:]
        log.write_text("\n".join([*lines[:-1], json.dumps(last, sort_keys=True)]) + "\n")
        at = time.monotonic()
        time.sleep(POLL * 3 + 1)
    assert {status for _, status, _ in seen} <= {200, 503}
    late = [(status, doc) for t, status, doc in seen if t > at + POLL * 2 + 0.5]
    assert late and {status for status, _ in late} == {503}, "still scoring after the poll"
    assert {doc["error"]["code"] for _, doc in late} == {"attestation_log_invalid"}
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{service.base}/api/v1/readyz", timeout=5)
    assert json.loads(caught.value.read())["status"] == "log_invalid"
    with urllib.request.urlopen(f"{service.base}/api/v1/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert f'outreach_attestation_log_invalid{{model="{site.awaiting[0]}"}} 1.0' in metrics


@on_both_databases
def test_a_freeze_and_a_withdrawal_under_load(service: Service, dataset: Dataset) -> None:
    """An incident freeze while four clients score: the alias moved by hand to another
    servable version is not followed (every answer after one poll interval comes from the
    pinned version, and the service log says what the freeze holds back); a withdrawal during
    the freeze stops every worker within one poll interval, /readyz says withdrawn."""
    site = service.site
    name, offered = site.awaiting
    token = add_user(Database(site.database_url), "load coordinator", "coordinator")
    body = _one_record(dataset)
    runner = CliRunner()
    home = ["--home", str(site.home.root)]
    env = {"OUTREACH_DATABASE_URL": site.database_url}
    before = score(service.base, token, body)
    assert before[0] == 200
    earlier = before[1]["model"]["version"]
    approved = runner.invoke(
        main,
        [*home, "models", "approve", name, offered, "--by", "oversight-2", "--note", "ok"],
        env=env,
    )
    assert approved.exit_code == 0 and "promoted" in approved.output, approved.output
    deadline = time.monotonic() + 5.0
    while score(service.base, token, body)[1]["model"]["version"] != offered:
        assert time.monotonic() < deadline, "the approved version is not served"
        time.sleep(0.05)

    with _under_load(service.base, token, body) as seen:
        time.sleep(POLL * 2)
        frozen = runner.invoke(
            main,
            [*home, "incident", "freeze", name, "--note", "complaint", "--by", "board"],
            env=env,
        )
        assert frozen.exit_code == 0, frozen.output
        from model.registry import connect

        connect(site.home).client.set_registered_model_alias(name, "production", earlier)
        moved = time.monotonic()
        time.sleep(POLL * 3 + 1)
        withdrew = runner.invoke(
            main,
            [*home, "models", "withdraw", name, "--by", "oversight", "--note", "harm"],
            env=env,
        )
        assert withdrew.exit_code == 0, withdrew.output
        withdrawn = time.monotonic()
        time.sleep(POLL * 3 + 1)

    assert {status for _, status, _ in seen} <= {200, 503}
    held = [(s, d) for t, s, d in seen if moved + POLL * 2 + 0.5 < t < withdrawn]
    assert held and {s for s, _ in held} == {200}
    assert {d["model"]["version"] for _, d in held} == {offered}, "the moved alias was followed"
    late = [(s, d) for t, s, d in seen if t > withdrawn + POLL * 2 + 0.5]
    assert late and {s for s, _ in late} == {503}, "still scoring after the withdrawal's poll"
    assert {d["error"]["code"] for _, d in late} == {"model_withdrawn"}
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{service.base}/api/v1/readyz", timeout=5)
    assert json.loads(caught.value.read())["status"] == "withdrawn"
    said = (site.home.root / "gunicorn.log").read_text()
    assert f"frozen at version {offered} by an incident" in said
    assert f"the production alias names version {earlier}" in said
    assert "not serving" in said and "withdrawn by oversight" in said


@contextmanager
def _under_load(base: str, token: str, body: bytes) -> Iterator[list[tuple[float, int, dict]]]:
    """Four clients scoring ``body`` until the block ends; yields every answer as it comes
    (time, status, document)."""
    seen: list[tuple[float, int, dict]] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            status, document = score(base, token, body)
            seen.append((time.monotonic(), status, document))

    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    try:
        yield seen
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=30)


def _one_record(dataset: Dataset) -> bytes:
    row = dataset.frame.iloc[0]
    record = {"id": str(row["person_id"])}
    for feature in dataset.spec.features:
        value = row[feature.name]
        record[feature.name] = value if feature.kind == "category" else float(value)
    return json.dumps({"purpose": "outreach", "records": [record]}).encode()
