"""The access log against a person with write access: append-only triggers, signed checkpoints
outside the database, verification that names removed, rewritten and re-chained rows, and the
retention purge. Real SQLite databases, real files, real keys; nothing mocked."""

from __future__ import annotations

import json
import multiprocessing
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from kernel.home import Home
from kernel.signing import load_signer
from outreach.cli import main
from service import create_app
from store import access_log
from store.access_log import (
    AccessLogBrokenError,
    CheckpointLog,
    CheckpointSettings,
    CheckpointWriter,
    PurgeRefusedError,
    SqliteAppender,
    purge,
    row_hash,
    verify,
)
from store.db import AccessLogRow, Database, default_url
from tests.support.memory import InMemorySource

EVERY = 10  # rows between checkpoints in these tests
OLD = datetime.now(UTC) - timedelta(days=300)


def _row(i: int, user: str = "coordinator user") -> dict[str, Any]:
    return {
        "user": user,
        "role": "coordinator",
        "action": "score",
        "purpose": "outreach",
        "subject_ids": [f"p{i}"],
        "model_version": "3",
        "request_id": f"r{i}",
    }


def _append(db: Database, count: int, *, user: str = "coordinator user") -> None:
    appender = SqliteAppender.for_database(db)
    assert appender is not None
    for i in range(count):
        appender.append(**_row(i, user))


def _writer(home: Home, db: Database, **config: Any) -> CheckpointWriter:
    settings = CheckpointSettings.resolve(
        home, db, {}, {"ACCESS_LOG_CHECKPOINT_ROWS": EVERY, **config}
    )
    return CheckpointWriter(db, settings)


def _sql(db: Database, *statements: str) -> None:
    with db.engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


def _drop_triggers(db: Database) -> None:
    _sql(db, *(f"DROP TRIGGER {name}" for name in access_log.APPEND_ONLY_TRIGGERS))


def _restore_triggers(db: Database) -> None:
    """As a careful intruder would, after editing: the table looks guarded again."""
    _sql(
        db,
        "CREATE TRIGGER access_log_no_update BEFORE UPDATE ON access_log BEGIN "
        "SELECT RAISE(ABORT, 'access_log is append-only: rows cannot be changed'); END",
        "CREATE TRIGGER access_log_no_delete BEFORE DELETE ON access_log BEGIN "
        "SELECT RAISE(ABORT, 'access_log is append-only: rows cannot be deleted'); END",
    )


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home.resolve(tmp_path / "home").ensure()


@pytest.fixture
def db(home: Home) -> Database:
    database = Database(default_url(home.root))
    database.upgrade()
    return database


@pytest.fixture
def writer(home: Home, db: Database) -> CheckpointWriter:
    return _writer(home, db)


@pytest.fixture
def signed(db: Database, writer: CheckpointWriter) -> CheckpointWriter:
    """25 rows, signed at rows 10, 20 and 25."""
    _append(db, 25)
    statements = writer.write_due(force=True)
    assert [(s["row_id"], s["rows"]) for s in statements] == [(10, 10), (20, 20), (25, 25)]
    return writer


# ----------------------------------------------------------------------------- append-only


@pytest.mark.parametrize(
    ("statement", "refusal"),
    [
        ("UPDATE access_log SET user = 'someone else' WHERE id = 2", "rows cannot be changed"),
        ("UPDATE access_log SET hash = previous_hash", "rows cannot be changed"),
        ("DELETE FROM access_log WHERE id = 3", "rows cannot be deleted"),
        ("DELETE FROM access_log", "rows cannot be deleted"),
    ],
)
def test_the_table_refuses_updates_and_deletes(db: Database, statement: str, refusal: str) -> None:
    _append(db, 3)
    with pytest.raises(IntegrityError, match=f"access_log is append-only: {refusal}"):
        _sql(db, statement)
    assert verify(db).ok and verify(db).rows == 3


# ------------------------------------------------------------------------------ what verify finds


def test_a_rewritten_row_is_named(db: Database, signed: CheckpointWriter) -> None:
    with pytest.raises(IntegrityError, match="append-only"):
        _sql(db, "UPDATE access_log SET user = 'someone else' WHERE id = 7")
    _drop_triggers(db)
    _sql(db, "UPDATE access_log SET user = 'someone else' WHERE id = 7")
    result = verify(db, checkpoints=signed.log)
    assert not result.ok and result.first_broken == 7
    assert result.reason == "its content does not match its hash"
    assert any("access_log_no_update, access_log_no_delete" in p for p in result.problems)


@pytest.mark.parametrize("appended_after", [0, 3])
def test_a_removed_tail_is_named(
    db: Database, signed: CheckpointWriter, appended_after: int
) -> None:
    _drop_triggers(db)
    _sql(db, "DELETE FROM access_log WHERE id >= 24")
    _restore_triggers(db)
    alone = verify(db)  # the chain alone cannot tell; the head the database keeps can
    assert not alone.ok and alone.first_broken == 24
    assert "head (advanced at every write) names row 25 (row 25 written): 2 rows" in alone.reason
    if appended_after:  # new rows take the removed rows' ids
        _append(db, appended_after, user="later")
    result = verify(db, checkpoints=signed.log)
    assert not result.ok
    if appended_after:
        assert result.first_broken == 21
        assert "rewritten between rows 21 and 25" in result.reason
        assert "the checkpoint signed at" in result.reason and "(line 3)" in result.reason
    else:
        assert result.first_broken == 24
        assert result.reason.startswith("the log ends at row 23, but the checkpoint signed at")
        assert result.reason.endswith("names row 25: 2 rows after row 23 were removed")


def test_a_rechained_log_is_found_by_the_checkpoints(
    db: Database, signed: CheckpointWriter
) -> None:
    _drop_triggers(db)
    with db.engine.begin() as connection:
        rows = connection.execute(select(AccessLogRow.__table__).order_by(AccessLogRow.id)).all()
        previous = rows[13].hash  # row 14's
        for row in rows[14:]:  # row 15 rewritten, every later hash recomputed
            user = "someone else" if row.id == 15 else row.user
            digest = row_hash(previous, SimpleNamespace(**{**row._asdict(), "user": user}))
            connection.execute(
                update(AccessLogRow)
                .where(AccessLogRow.id == row.id)
                .values(user=user, previous_hash=previous, hash=digest)
            )
            previous = digest
    _restore_triggers(db)
    alone = verify(db)  # internally consistent, but not the newest row the database recorded
    assert not alone.ok and "the database's head recorded" in alone.reason
    result = verify(db, checkpoints=signed.log)
    assert not result.ok and result.first_broken == 11
    assert "the log was rewritten between rows 11 and 20 and its hashes recomputed" in result.reason
    assert "row 20's hash is not the one the checkpoint signed at" in result.reason
    assert result.checkpoints == 1  # row 10's matched


def test_the_first_rows_removed_without_a_purge_are_named(
    db: Database, signed: CheckpointWriter
) -> None:
    _drop_triggers(db)
    _sql(db, "DELETE FROM access_log WHERE id <= 4")
    _restore_triggers(db)
    result = verify(db, checkpoints=signed.log)
    assert not result.ok and result.first_broken == 5
    assert "rows before it were removed and no signed purge anchor covers them" in result.reason


def _forge_hash(line: str, _tmp: Path) -> str:
    record = json.loads(line)
    record["hash"] = "0" * 64
    return json.dumps(record)


def _other_key(line: str, tmp: Path) -> str:
    record = json.loads(line)
    other = load_signer(tmp / "other.key")
    statement = {k: v for k, v in record.items() if k != "signature"}
    statement["key_id"] = other.verifier.key_id
    return json.dumps({**statement, "signature": other.sign(statement)})


@pytest.mark.parametrize(
    ("forge", "problem"),
    [
        (_forge_hash, "the signature does not match: forged or altered (checkpoint for row 20)"),
        (_other_key, "signed by another key"),
        (lambda line, tmp: line.replace('"signature":"', '"signature":"AAAA'), "does not match"),
        (lambda line, tmp: line[: len(line) // 2], "not JSON"),
    ],
)
def test_a_forged_checkpoint_is_reported(
    db: Database, signed: CheckpointWriter, tmp_path: Path, forge: Any, problem: str
) -> None:
    path = signed.settings.path
    lines = path.read_text().splitlines()
    lines[1] = forge(lines[1], tmp_path)
    path.write_text("\n".join(lines) + "\n")
    result = verify(db, checkpoints=CheckpointLog(path, key_path=signed.settings.key_path))
    assert not result.ok and result.first_broken is None  # the rows themselves are intact
    assert len(result.problems) == 1
    assert result.problems[0].startswith(f"line 2 of {path}: ")
    assert problem in result.problems[0]
    assert result.checkpoints == 2  # the two genuine ones still matched


def test_verify_reads_without_the_writers_lock(db: Database, signed: CheckpointWriter) -> None:
    import fcntl

    lock_path = db._lock_path
    assert lock_path is not None
    with open(lock_path, "a+") as held:  # every writer of the service queues on this lock
        fcntl.flock(held, fcntl.LOCK_EX)
        started = time.perf_counter()
        assert verify(db, checkpoints=signed.log).ok
        assert signed.write_due(force=True) == []  # nothing new; the poll reads too
        assert time.perf_counter() - started < 2.0


def test_incremental_checks_confirm_the_row_they_continue_from(
    db: Database, signed: CheckpointWriter
) -> None:
    full = verify(db, checkpoints=signed.log)
    assert full.ok and full.last is not None and full.last[0] == 25
    _append(db, 12)
    more = verify(db, after=full.last, checkpoints=signed.log)
    assert more.ok and more.rows == 12 and more.last is not None and more.last[0] == 37
    signed.write_due()  # row 35 is due (10 rows after row 25)
    later = verify(db, after=more.last, checkpoints=signed.log)
    assert later.ok and later.rows == 0 and later.unsigned == 2
    _drop_triggers(db)
    _sql(db, "DELETE FROM access_log WHERE id = 37")
    gone = verify(db, after=more.last, checkpoints=signed.log)
    assert not gone.ok and gone.first_broken == 37 and "is gone" in gone.reason
    assert verify(db, checkpoints=signed.log, seen=more.last).first_broken == 37


# ---------------------------------------------------------------------------- checkpoint writing


def _sign_in_a_process(url: str, home_root: str, count: int) -> None:
    db = Database(url)
    writer = _writer(Home(Path(home_root)), db, ACCESS_LOG_CHECKPOINT_ROWS=3)
    appender = SqliteAppender.for_database(db)
    assert appender is not None
    for i in range(count):
        appender.append(**_row(i, "worker"))
        writer.write_due(force=i % 7 == 0)  # every append races the other process to sign


def test_two_processes_sign_whole_lines_and_never_the_same_rows(home: Home, db: Database) -> None:
    # Fresh interpreters, as gunicorn's workers are (see test_service).
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_sign_in_a_process, args=(db.url, str(home.root), 60))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    writer = _writer(home, db, ACCESS_LOG_CHECKPOINT_ROWS=3)
    raw = writer.settings.path.read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.decode().splitlines()
    assert len(lines) >= 40 and all(json.loads(line)["signature"] for line in lines)
    read = writer.log.read()
    assert read.problems == () and len(read.entries) == len(lines)
    ids = [entry.row_id for entry in read.entries]
    assert ids == sorted(set(ids))  # in order, none twice
    assert all(b.rows - a.rows <= 3 for a, b in zip(read.entries, read.entries[1:], strict=False))
    result = verify(db, checkpoints=writer.log)
    assert result.ok and result.rows == 120 and result.checkpoints == len(lines)


def test_checkpoints_come_every_n_rows_or_when_m_minutes_passed(
    db: Database, writer: CheckpointWriter
) -> None:
    _append(db, 3)
    first = writer.write_due(now=OLD)  # nothing signed yet: the newest row at once
    assert [(s["row_id"], s["rows"]) for s in first] == [(3, 3)]
    _append(db, 24)
    assert [s["row_id"] for s in writer.write_due(now=OLD + timedelta(minutes=1))] == [13, 23]
    assert writer.write_due(now=OLD + timedelta(minutes=5)) == []  # 4 rows, 4 minutes
    late = writer.write_due(now=OLD + timedelta(minutes=11))
    assert [(s["row_id"], s["rows"]) for s in late] == [(27, 27)]
    assert writer.write_due(now=OLD + timedelta(hours=1)) == []  # nothing new


# ------------------------------------------------------------------------------------ retention


def test_a_purge_of_young_rows_is_refused(signed: CheckpointWriter) -> None:
    today = datetime.now(UTC).date()
    for before, days in ((today, 183), (today - timedelta(days=182), 183), (today, 1)):
        with pytest.raises(PurgeRefusedError, match=r"rows are kept at least \d+ days"):
            purge(signed, before=before, min_days=days, by="records officer")
    assert verify(signed.db, checkpoints=signed.log).rows == 25  # nothing removed


def _old_and_new(db: Database, writer: CheckpointWriter) -> None:
    """Rows 1-25 signed 300 days ago, rows 26-35 signed now."""
    _append(db, 25)
    writer.write_due(now=OLD, force=True)
    _append(db, 10)
    writer.write_due(force=True)


def test_a_purge_removes_old_segments_and_is_recorded(
    db: Database, writer: CheckpointWriter
) -> None:
    _old_and_new(db, writer)
    before = (datetime.now(UTC) - timedelta(days=200)).date()
    done = purge(writer, before=before, min_days=183, by="records officer")
    assert (done.up_to, done.removed, done.record) == (25, 25, 36)
    result = verify(db, checkpoints=writer.log)
    assert result.ok, result.describe()
    assert (result.purged_to, result.rows, result.unsigned) == (25, 11, 0)
    with db.session() as session:
        rows = session.scalars(select(AccessLogRow).order_by(AccessLogRow.id)).all()
    assert [r.id for r in rows] == list(range(26, 37))
    assert (rows[-1].action, rows[-1].user, rows[-1].request_id) == (
        "purge",
        "records officer",
        "purge-to-25",
    )
    anchor = json.loads(writer.settings.path.read_text().splitlines()[-2])
    assert anchor["kind"] == "purge" and anchor["row_id"] == 25 and anchor["removed"] == 25
    assert anchor["before"] == before.isoformat() and anchor["by"] == "records officer"
    with pytest.raises(IntegrityError, match="append-only"):  # still guarded
        _sql(db, "DELETE FROM access_log WHERE id = 26")
    again = purge(writer, before=before, min_days=183, by="records officer")
    assert again.up_to is None  # the rest is younger
    # Without its signed anchor, the purged start looks like what it would be: rows removed.
    path = writer.settings.path
    path.write_text(
        "".join(line + "\n" for line in path.read_text().splitlines() if "purge" not in line)
    )
    stripped = verify(db, checkpoints=CheckpointLog(path, key_path=writer.settings.key_path))
    assert not stripped.ok and stripped.first_broken == 26


def test_a_broken_log_is_not_purged(db: Database, writer: CheckpointWriter) -> None:
    _old_and_new(db, writer)
    _drop_triggers(db)
    _sql(db, "UPDATE access_log SET user = 'someone else' WHERE id = 3")
    _restore_triggers(db)
    before = (datetime.now(UTC) - timedelta(days=200)).date()
    with pytest.raises(AccessLogBrokenError, match="broken at row 3"):
        purge(writer, before=before, min_days=183, by="records officer")
    with db.session() as session:
        assert len(session.scalars(select(AccessLogRow.id)).all()) == 35


# -------------------------------------------------------------------------------- command line


@pytest.fixture
def cli(home: Home, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in (
        "OUTREACH_DATABASE_URL",
        "OUTREACH_ACCESS_LOG_CHECKPOINTS",
        "OUTREACH_ACCESS_LOG_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OUTREACH_ACCESS_LOG_MIN_DAYS", raising=False)
    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None) -> Any:
        return runner.invoke(main, ["--home", str(home.root), "access-log", *args], env=env)

    return run


def test_the_commands_exit_codes_and_messages(
    db: Database, writer: CheckpointWriter, cli: Any
) -> None:
    _old_and_new(db, writer)
    intact = cli("verify")
    assert intact.exit_code == 0, intact.output
    assert intact.stdout.strip() == (
        "access log intact: 35 rows checked, 4 signed checkpoints matched, "
        "0 rows since the latest checkpoint"
    )
    exported = cli("export-checkpoints")
    assert exported.exit_code == 0
    assert exported.stdout == writer.settings.path.read_text()
    assert all(json.loads(line)["signature"] for line in exported.stdout.splitlines())

    today = datetime.now(UTC).date()
    bad_dates = ("2025-02-30", "yesterday", "2025/01/01")
    for bad in bad_dates:
        result = cli("purge", "--before", bad, "--by", "officer")
        assert result.exit_code == 2 and "Invalid value for '--before'" in result.output, bad
    young = cli("purge", "--before", today.isoformat(), "--by", "officer")
    assert young.exit_code == 2
    assert "error: refusing to purge access-log rows up to" in young.stderr
    assert "kept at least 183 days (OUTREACH_ACCESS_LOG_MIN_DAYS)" in young.stderr
    around = cli("purge", "--before", today.isoformat(), "--by", "x", "--min-age-days", "0")
    assert around.exit_code == 2 and "No such option" in around.output
    bad_setting = cli(
        "purge", "--before", "2020-01-01", "--by", "x", env={"OUTREACH_ACCESS_LOG_MIN_DAYS": "-3"}
    )
    assert bad_setting.exit_code == 2 and "OUTREACH_ACCESS_LOG_MIN_DAYS: '-3'" in bad_setting.stderr

    before = (today - timedelta(days=200)).isoformat()
    purged = cli("purge", "--before", before, "--by", "records officer")
    assert purged.exit_code == 0, purged.output
    assert purged.stdout.startswith(f"purged 25 rows up to row 25 (signed off before {before})")
    assert "Recorded as access-log row 36" in purged.stdout
    after = cli("verify")
    assert after.exit_code == 0 and "11 rows checked after row 25 (purged)" in after.stdout
    nothing = cli("purge", "--before", before, "--by", "records officer")
    assert nothing.exit_code == 0 and nothing.stdout.startswith("nothing to purge")

    _drop_triggers(db)
    _sql(db, "DELETE FROM access_log WHERE id = 36")
    broken = cli("verify")
    assert broken.exit_code == 3
    assert re.search(
        r"access log broken at row 36: the log ends at row 35, but the checkpoint", broken.stderr
    )
    assert "access log problem: the append-only triggers" in broken.stderr
    refused = cli("purge", "--before", before, "--by", "records officer")
    assert refused.exit_code == 3 and "nothing is purged" in refused.stderr


@pytest.mark.parametrize("shipped", [False, True], ids=["home's checkpoints", "exported copy"])
def test_the_newest_rows_removed_after_the_last_checkpoint_are_found(
    db: Database, signed: CheckpointWriter, cli: Any, tmp_path: Path, shipped: bool
) -> None:
    """The reproduction: rows after the latest signed checkpoint (row 25 here) deleted with the
    triggers dropped and put back; no checkpoint names them, the head the database keeps at
    every write does (against the home's checkpoints and an exported copy alike)."""
    exported = tmp_path / "exported.jsonl"
    exported.write_bytes(signed.log.export())
    _append(db, 8)  # rows 26-33, not signed yet
    _drop_triggers(db)
    _sql(db, "DELETE FROM access_log WHERE id >= 29")
    _restore_triggers(db)
    result = cli("verify", *(["--checkpoints", str(exported)] if shipped else []))
    assert result.exit_code == 3, result.output
    assert "access log broken at row 29: the log ends at row 28 (row 28 written), but the " in (
        result.stderr
    )
    assert "names row 33 (row 33 written): 5 rows were removed" in result.stderr


def test_verify_against_a_shipped_copy(
    db: Database, signed: CheckpointWriter, cli: Any, tmp_path: Path
) -> None:
    shipped = tmp_path / "shipped.jsonl"
    shipped.write_text(cli("export-checkpoints").stdout)
    public = tmp_path / "access-log.pub"
    public.write_bytes(signed.signer().verifier.pem())
    signed.settings.path.write_text("")  # the local copy emptied by the intruder
    _drop_triggers(db)
    _sql(db, "DELETE FROM access_log WHERE id >= 21")
    _restore_triggers(db)
    # Locally no checkpoint is left to compare with; the head the database keeps still tells.
    local = cli("verify")
    assert local.exit_code == 3 and "5 rows were removed" in local.stderr, local.output
    result = cli("verify", "--checkpoints", str(shipped), "--public-key", str(public))
    assert (
        result.exit_code == 3 and "names row 25: 5 rows after row 20 were removed" in result.stderr
    )


# ------------------------------------------------------------------------------- the service


@pytest.fixture(scope="module")
def service_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return Home(tmp_path_factory.mktemp("service") / "home")


@pytest.fixture
def app(service_home: Home, tmp_path: Path) -> Flask:
    """An app that serves no model (nothing held in memory): the access log is what is tested."""
    return create_app(
        {
            "HOME": service_home,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}",
            "WATCH_SECONDS": 0,
            "TESTING": True,
            "ACCESS_LOG_CHECKPOINT_ROWS": 5,
            "ACCESS_LOG_CHECKPOINT_POLL": 0.02,
        },
        model_source=InMemorySource(service_home, "individual_outreach"),
    )


def _sign_in(app: Flask) -> Any:
    from store.accounts import add_user

    add_user(app.extensions["outreach.db"], "board", "oversight", password="board-password-1234")
    client = app.test_client()
    found = re.search(
        r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)
    )
    assert found
    response = client.post(
        "/login",
        data={"csrf_token": found.group(1), "username": "board", "password": "board-password-1234"},
    )
    assert response.status_code == 302
    return client


def test_the_service_signs_in_the_background_and_the_page_keeps_a_break(
    app: Flask, tmp_path: Path
) -> None:
    db: Database = app.extensions["outreach.db"]
    # As in a request: the first append starts this process's signing thread.
    with app.test_request_context(), db.session() as session:
        for i in range(12):
            access_log.append(session, **_row(i))
    writer = access_log.for_app(app)
    assert writer.settings.path == tmp_path / "access_log" / "checkpoints.jsonl"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(writer.log.read().entries) < 2:
        time.sleep(0.02)
    # Every 5 rows; the last two wait for the next 5 or for 10 minutes to pass.
    assert [(e.row_id, e.rows) for e in writer.log.read().entries] == [(5, 5), (10, 10)]

    client = _sign_in(app)
    page = client.get("/oversight/access-log").get_data(as_text=True)
    assert "The chain is intact: all 12 rows verified" in page
    assert "against 2 signed checkpoints; 2 newer rows are not signed yet" in page
    with db.session() as session:
        newest = session.scalars(select(AccessLogRow).where(AccessLogRow.id == 12)).one()
        values = {c.name: getattr(newest, c.key) for c in AccessLogRow.__table__.c}
    _drop_triggers(db)
    _sql(db, "DELETE FROM access_log WHERE id = 12")
    for _ in range(2):  # reported, and still reported on the next (incremental) view
        page = client.get("/oversight/access-log").get_data(as_text=True)
        assert "The chain is broken at row 12" in page and "is gone" in page
    full = client.get("/oversight/access-log?full=1").get_data(as_text=True)
    assert "The chain is broken at row 12" in full
    assert "access_log_no_update, access_log_no_delete on access_log are missing" in full
    with db.engine.begin() as connection:  # put back exactly as it was
        connection.execute(AccessLogRow.__table__.insert().values(**values))
    _restore_triggers(db)
    assert "The chain is broken" in client.get("/oversight/access-log").get_data(as_text=True)
    # Put back byte for byte, the row was still deleted once: the head counted 13 writes.
    again = client.get("/oversight/access-log?full=1").get_data(as_text=True)
    assert "The chain is broken at row 13" in again
    assert "(row 13 written): 1 row was removed" in again


def test_settings_are_checked(home: Home, db: Database) -> None:
    from kernel.errors import BadInputError

    with pytest.raises(BadInputError) as raised:
        CheckpointSettings.resolve(
            home,
            db,
            {},
            {"ACCESS_LOG_CHECKPOINT_ROWS": 0, "ACCESS_LOG_CHECKPOINT_MINUTES": "ten"},
        )
    assert raised.value.details == (
        "ACCESS_LOG_CHECKPOINT_ROWS: 0, expected a whole number >= 1",
        "ACCESS_LOG_CHECKPOINT_MINUTES: 'ten', expected a number > 0",
    )
    default = CheckpointSettings.resolve(home, db, {})
    assert default.path == home.root / "access_log" / "checkpoints.jsonl"
    assert default.key_path == home.root / "keys" / "access-log.key"
    assert (default.every_rows, default.every_seconds) == (1000, 600.0)
    assert access_log.retention_days({}) == 183
    assert access_log.retention_days({"OUTREACH_ACCESS_LOG_MIN_DAYS": "400"}) == 400
