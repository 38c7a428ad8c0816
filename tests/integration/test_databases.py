"""The service's database on both backends: migrations up and down, and on PostgreSQL the access
log kept append-only by the docs' grants, with the service running as its own role."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from flask import Flask
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.exc import ProgrammingError

from kernel.home import Home
from service import create_app
from store import access_log
from store.access_log import CheckpointSettings, CheckpointWriter, purge, verify
from store.accounts import add_user
from store.db import (
    AccessLogRow,
    Base,
    Database,
    QueueEntry,
    applied_revisions,
    head_revision,
)
from tests.support.homes import Site, copy_site, on_both_databases, site_database
from tests.support.postgres import (
    RETENTION_ROLE,
    SERVICE_ROLE,
    Cluster,
    grant_service_roles,
    lift_update_guard,
)
from tests.support.specs import ROOT

MIGRATIONS = ROOT / "store" / "migrations"


def _migrate(url: str, direction: str, revision: str) -> None:
    """``alembic downgrade|upgrade REVISION`` on the database at ``url``, in one transaction."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            getattr(command, direction)(config, revision)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@on_both_databases
def test_migrations_go_down_to_base_and_up_to_head(database_url: str) -> None:
    db = Database(database_url)
    db.upgrade()
    add_user(db, "before migrations", "coordinator")  # rows in the tables on the way down
    with db.transaction() as connection:
        access_log.append(connection, **_row(0))
    db.engine.dispose()
    expected = {table.name for table in Base.metadata.sorted_tables}
    assert expected <= _tables(database_url)
    _migrate(database_url, "downgrade", "base")
    assert _tables(database_url) <= {"alembic_version"}
    _migrate(database_url, "upgrade", "head")
    assert expected <= _tables(database_url)
    again = Database(database_url)
    token = add_user(again, "after migrations", "coordinator")  # the schema works again
    assert len(token) > 20
    with again.transaction() as connection:
        access_log.append(connection, **_row(1))
    assert verify(again).ok
    again.engine.dispose()


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


@pytest.fixture
def granted(postgres: Cluster) -> str:
    """A migrated database owned by the superuser, with the docs' grants; its URL."""
    url = postgres.create_database()
    owner = Database(url)
    owner.upgrade()
    with owner.transaction() as connection:
        for i in range(3):
            access_log.append(connection, **_row(i))
    owner.engine.dispose()
    grant_service_roles(url)
    return url


def _as(url: str, role: str) -> str:
    return url.replace("postgresql+psycopg://outreach@", f"postgresql+psycopg://{role}@")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE access_log SET \"user\" = 'someone else' WHERE id = 2",
        "UPDATE access_log SET hash = previous_hash",
        "DELETE FROM access_log WHERE id = 3",
        "DELETE FROM access_log",
        "TRUNCATE access_log",
        "UPDATE review_request_events SET note = 'changed'",
        "DELETE FROM review_request_events",
    ],
)
def test_the_service_role_cannot_rewrite_the_access_log(granted: str, statement: str) -> None:
    service = Database(_as(granted, SERVICE_ROLE))
    with pytest.raises(ProgrammingError, match="permission denied"), service.transaction() as c:
        c.exec_driver_sql(statement)
    with service.transaction() as connection:  # but it appends, and reads the chain
        access_log.append(connection, **_row(9))
    result = verify(service)
    assert result.ok and result.rows == 4
    service.engine.dispose()


def test_only_the_retention_role_purges(granted: str, tmp_path: Path) -> None:
    home = Home.resolve(tmp_path / "home").ensure()

    def writer(url: str) -> CheckpointWriter:
        db = Database(url)
        settings = CheckpointSettings.resolve(home, db, {}, {"ACCESS_LOG_CHECKPOINT_ROWS": 10})
        return CheckpointWriter(db, settings)

    old = datetime.now(UTC) - timedelta(days=300)
    writer(granted).write_due(now=old, force=True)  # rows 1-3 signed long ago
    before = (datetime.now(UTC) - timedelta(days=200)).date()
    refused = writer(_as(granted, SERVICE_ROLE))
    with pytest.raises(Exception, match="refused the purge, nothing was removed"):
        purge(refused, before=before, min_days=183, by="records officer")
    retention = writer(_as(granted, RETENTION_ROLE))
    done = purge(retention, before=before, min_days=183, by="records officer")
    assert (done.up_to, done.removed) == (3, 3)
    result = verify(Database(_as(granted, SERVICE_ROLE)), checkpoints=retention.log)
    assert result.ok and result.purged_to == 3 and result.rows == 1, result.describe()


@pytest.fixture
def service_app(site: Site, tmp_path: Path, request: pytest.FixtureRequest) -> Flask:
    """The site on PostgreSQL, served as the service's role under the docs' grants."""
    url = site_database(request, "postgresql")
    assert url is not None
    grant_service_roles(url)
    own = copy_site(site, tmp_path, _as(url, SERVICE_ROLE))
    return create_app(
        {"HOME": own.home, "DATABASE_URL": own.database_url, "WATCH_SECONDS": 0, "TESTING": True}
    )


def test_the_service_works_under_its_grants(service_app: Flask) -> None:
    db: Database = service_app.extensions["outreach.db"]
    token = add_user(db, "granted coordinator", "coordinator")
    from store.accounts import set_areas
    from store.queue import ALL_AREAS

    set_areas(db, "granted coordinator", [ALL_AREAS])
    client = service_app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    listed = client.get("/api/v1/queue?purpose=outreach&limit=3", headers=headers)
    assert listed.status_code == 200, listed.json
    first = listed.json["entries"][0]
    outcome = client.post(
        f"/api/v1/queue/{first['entry_id']}/outcome",
        headers=headers,
        json={"purpose": "outreach", "status": "contacted", "note": "left a message"},
    )
    assert outcome.status_code == 201, outcome.json
    person = first["person_id"]
    body = {"purpose": "outreach", "person_id": person}
    assert client.post("/api/v1/opt-outs", headers=headers, json=body).status_code == 201
    back = client.delete(
        f"/api/v1/opt-outs/{person}",
        headers=headers,
        json={"purpose": "outreach", "reason": "asked"},
    )
    assert back.status_code == 204
    with db.session() as session:
        assert session.get(QueueEntry, first["entry_id"]) is not None
        actions = session.scalars(select(AccessLogRow.action).order_by(AccessLogRow.id)).all()
        assert len(actions) >= 4
        with pytest.raises(ProgrammingError, match="permission denied"):
            session.execute(text("DELETE FROM access_log"))
    assert verify(db).ok


@on_both_databases
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE attestation_heads SET hash = 'x'",
        "UPDATE attestation_heads SET kind = 'repair', detail = ''",
        "DELETE FROM attestation_heads",
    ],
)
def test_anchored_heads_cannot_be_rewritten_even_by_the_owner(
    database_url: str, statement: str
) -> None:
    """The anchored heads and alarms are append-only by the database's own triggers (migration
    0011 on PostgreSQL, 0009 on SQLite): the owning role, with every grant, cannot change or
    remove a head or close an alarm by hand."""
    from lifecycle.version_state import Anchor
    from store.attestation_heads import DatabaseAnchors

    db = Database(database_url)
    db.upgrade()
    anchors = DatabaseAnchors(db)
    anchors.record("m", Anchor(3, "a" * 64, "k1"))
    anchors.alarm("m", "statement 3 has no valid signature")
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError, match="append-only"), db.transaction() as connection:
        connection.execute(text(statement))
    assert anchors.latest("m") == (Anchor(3, "a" * 64, "k1"), "statement 3 has no valid signature")
    if database_url.startswith("postgresql"):
        with pytest.raises(DBAPIError, match="append-only"), db.transaction() as connection:
            connection.execute(text("TRUNCATE attestation_heads"))
    db.engine.dispose()


@on_both_databases
def test_the_access_log_head_cannot_be_rewound_after_a_deleted_tail(
    database_url: str, tmp_path: Path
) -> None:
    """Someone with the owning role deletes the newest access-log rows, then tries to move the
    database's head back to the row before them: the head's triggers refuse (migration 0012 on
    PostgreSQL, 0010 on SQLite), as they refuse deleting or truncating it, and ``outreach
    access-log verify`` still names the removed rows."""
    from click.testing import CliRunner
    from sqlalchemy.exc import DBAPIError

    from outreach.cli import main

    db = Database(database_url)
    db.upgrade()
    with db.transaction() as connection:
        for i in range(5):
            access_log.append(connection, **_row(i))
    with db.engine.begin() as connection:
        lift_update_guard(connection)
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("DROP TRIGGER access_log_no_delete")
        connection.exec_driver_sql("DELETE FROM access_log WHERE id > 3")
        kept = connection.exec_driver_sql("SELECT hash FROM access_log WHERE id = 3").scalar_one()
    rewinds = (
        f"UPDATE access_log_head SET row_id = 3, hash = '{kept}', rows = 3",
        f"UPDATE access_log_head SET row_id = 3, hash = '{kept}'",  # the count left as it was
        "DELETE FROM access_log_head",
    )
    for statement in rewinds[:1] if database_url.startswith("sqlite") else rewinds:
        with pytest.raises(DBAPIError, match="access_log_head"), db.transaction() as connection:
            connection.exec_driver_sql(statement)
    if database_url.startswith("sqlite"):
        with pytest.raises(DBAPIError, match="cannot be deleted"), db.transaction() as c:
            c.exec_driver_sql(rewinds[2])
    else:
        with pytest.raises(DBAPIError, match="cannot be deleted"), db.transaction() as c:
            c.exec_driver_sql("TRUNCATE access_log_head")
    with db.transaction() as connection:  # a forward move (the insert trigger's) still works
        access_log.append(connection, **_row(9))
    db.engine.dispose()
    home = tmp_path / "home"
    result = CliRunner().invoke(
        main,
        ["--home", str(home), "access-log", "verify"],
        env={"OUTREACH_DATABASE_URL": database_url},
    )
    assert result.exit_code == 3, result.output
    assert "but the database's head (advanced at every write) names row" in result.stderr
    assert "(row 6 written): 2 rows were removed" in result.stderr


def test_the_head_read_from_the_migration_files_is_alembics() -> None:
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert head_revision() == ScriptDirectory.from_config(config).get_current_head()


def test_migration_files_that_are_not_one_plain_chain_leave_the_head_to_alembic(
    tmp_path: Path,
) -> None:
    def write(name: str, body: str) -> None:
        (tmp_path / f"{name}.py").write_text(f'"""{name}"""\n\n{body}\n')

    write("a", 'revision = "a"\ndown_revision = None\nbranch_labels = None\ndepends_on = None')
    write("b", 'revision = "b"\ndown_revision = "a"\nbranch_labels = None\ndepends_on = None')
    assert head_revision(tmp_path) == "b"
    write("c", 'revision = "c"\ndown_revision = "a"\nbranch_labels = None\ndepends_on = None')
    assert head_revision(tmp_path) is None  # two heads
    (tmp_path / "c.py").unlink()
    write("c", 'revision = "c"\ndown_revision = ("a", "b")\nbranch_labels = None')
    assert head_revision(tmp_path) is None  # a merge
    write("c", 'revision = "c"\ndown_revision = "b"\nbranch_labels = ("side",)')
    assert head_revision(tmp_path) is None  # a branch label
    write("c", 'revision = "c"\ndown_revision = "b"\ndepends_on = "a"')
    assert head_revision(tmp_path) is None  # a dependency
    write("c", "revision = REVISION\ndown_revision = 'b'")
    assert head_revision(tmp_path) is None  # not a plain string
    write("c", "revision = 'c'\ndown_revision = 'b'")
    assert head_revision(tmp_path) == "c"


@on_both_databases
def test_upgrade_runs_alembic_only_when_the_database_is_not_at_the_head(
    database_url: str,
) -> None:
    head = head_revision()
    assert head is not None
    Database(database_url).upgrade()  # a new database: Alembic creates the schema
    _migrate(database_url, "downgrade", "-1")  # one migration behind
    behind = Database(database_url)
    with behind.engine.connect() as connection:
        assert applied_revisions(connection) not in (set(), {head})
    behind.upgrade()  # Alembic upgrades it
    with behind.engine.connect() as connection:
        assert applied_revisions(connection) == {head}
        assert "queue_entries" in inspect(connection).get_table_names()
    behind.engine.dispose()
    # At the head: nothing to do, and Alembic is not even loaded.
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from store.db import Database; Database(sys.argv[1]).upgrade(); "
            "print('alembic' in sys.modules)",
            database_url,
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert loaded.stdout.strip() == "False"
