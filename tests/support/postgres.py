"""A throwaway PostgreSQL cluster for the tests: ``initdb`` in a temporary folder, on loopback,
on a free port, owned by the test run and removed at its end.

The server refuses to run as root (CI runs as root), so as root the cluster belongs to the
``postgres`` user that Debian's package creates (``nobody`` when there is none). Durability is
switched off (``fsync``, ``synchronous_commit``): nothing here outlives the run. The binaries are
found on ``PATH``, then in ``/usr/lib/postgresql/*/bin`` (newest first); ``make test`` installs
Debian's ``postgresql`` when neither has them.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import Connection

from store.db import Base

#: The cluster's superuser (owner of every database and table, as a migration role would be).
SUPERUSER = "outreach"
#: The service's role as the grants in the docs say: SELECT and INSERT on the access log.
SERVICE_ROLE = "outreach_service"
#: The retention purge's role: it may also DELETE from the access log.
RETENTION_ROLE = "outreach_retention"
#: Nothing here outlives the run: no syncing to disk.
INITDB = ("-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
START = ("-w", "-t", "30", "start")
IMMEDIATE_STOP = ("-m", "immediate", "-w", "stop")


def find_binaries() -> Path:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``."""
    on_path = shutil.which("initdb")
    if on_path is not None:
        folder = Path(os.path.realpath(on_path)).parent
        if (folder / "pg_ctl").exists() and (folder / "postgres").exists():
            return folder

    def version(path: str) -> tuple[int, ...]:
        number = Path(path).parent.name
        return tuple(int(p) for p in number.split(".") if p.isdigit())

    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        folder = Path(candidate)
        if all((folder / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    raise RuntimeError(
        "PostgreSQL is needed for the database tests: no initdb on PATH nor in "
        "/usr/lib/postgresql/*/bin. `make test` installs Debian's postgresql with apt; "
        "or run `apt-get install postgresql`."
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _server_user() -> str | None:
    """The user the server runs as: ``None`` (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root, and neither a postgres nor a nobody user exists")


@dataclass
class Cluster:
    """A running cluster: ``url(database)`` for a database in it, ``create_database()`` for a
    fresh one, ``stop()`` at the end."""

    folder: Path
    port: int
    binaries: Path
    user: str | None

    def url(self, database: str = "postgres", *, role: str = SUPERUSER) -> str:
        return f"postgresql+psycopg://{role}@127.0.0.1:{self.port}/{database}"

    def execute(self, *statements: str, database: str = "postgres") -> None:
        """Run statements as the superuser, each committed on its own (CREATE DATABASE needs it)."""
        engine = create_engine(self.url(database), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                for statement in statements:
                    connection.execute(text(statement))
        finally:
            engine.dispose()

    def create_database(self, *, template: str | None = None) -> str:
        """A new database, empty or a copy of ``template`` (a database's name); returns its URL
        (the superuser's)."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        copy = f' TEMPLATE "{template}"' if template else ""
        self.execute(f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(
            [str(self.binaries / "pg_ctl"), "-D", str(self.folder / "data"), *IMMEDIATE_STOP],
            user=self.user,
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


def start_cluster(attempts: int = 3) -> Cluster:
    """``initdb`` and start a cluster on a free loopback port; raises with the server's log."""
    binaries = find_binaries()
    user = _server_user()
    folder = Path(tempfile.mkdtemp(prefix="outreach-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    data = folder / "data"
    initdb = subprocess.run(
        [str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", SUPERUSER, *INITDB],
        user=user,
        capture_output=True,
        text=True,
        check=False,
        cwd=folder,
    )
    if initdb.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"initdb failed ({initdb.returncode}): {initdb.stderr.strip()}")
    problem = ""
    log = folder / "server.log"
    for _ in range(attempts):  # another process may take the free port before the server does
        port = _free_port()
        options = (
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c timezone=UTC "
            "-c max_connections=400"
        )
        started = subprocess.run(
            [str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), *START],
            user=user,
            capture_output=True,
            text=True,
            check=False,
            cwd=folder,
        )
        if started.returncode == 0:
            cluster = Cluster(folder, port, binaries, user)
            cluster.execute(
                f"CREATE ROLE {SERVICE_ROLE} LOGIN",
                f"CREATE ROLE {RETENTION_ROLE} LOGIN",
            )
            return cluster
        problem = (log.read_text() if log.exists() else "") + started.stderr
    shutil.rmtree(folder, ignore_errors=True)
    raise RuntimeError(f"the PostgreSQL test cluster did not start: {problem.strip()[-2000:]}")


def grant_service_roles(url: str) -> None:
    """The docs' grants in the database at ``url`` (its tables owned by the superuser): the
    service's role may read and write every table but only SELECT and INSERT on the access log,
    the review requests' history and the attestation heads, and only SELECT on the access log's
    head (its trigger advances it); the retention role may also DELETE access-log rows."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for statement in (
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
                f"TO {SERVICE_ROLE}",
                f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {SERVICE_ROLE}",
                f"REVOKE ALL ON access_log FROM {SERVICE_ROLE}",
                f"GRANT SELECT, INSERT ON access_log TO {SERVICE_ROLE}",
                f"GRANT USAGE ON SEQUENCE access_log_id_seq TO {SERVICE_ROLE}",
                f"REVOKE ALL ON review_request_events FROM {SERVICE_ROLE}",
                f"GRANT SELECT, INSERT ON review_request_events TO {SERVICE_ROLE}",
                f"REVOKE ALL ON alembic_version FROM {SERVICE_ROLE}",
                f"GRANT SELECT ON alembic_version TO {SERVICE_ROLE}",
                f"REVOKE ALL ON attestation_heads FROM {SERVICE_ROLE}",
                f"GRANT SELECT, INSERT ON attestation_heads TO {SERVICE_ROLE}",
                f"REVOKE ALL ON access_log_head FROM {SERVICE_ROLE}",
                f"GRANT SELECT ON access_log_head TO {SERVICE_ROLE}",
                f"GRANT SELECT, INSERT, DELETE ON access_log TO {RETENTION_ROLE}",
                f"GRANT USAGE ON SEQUENCE access_log_id_seq TO {RETENTION_ROLE}",
                f"GRANT SELECT ON access_log_head TO {RETENTION_ROLE}",
            ):
                connection.execute(text(statement))
    finally:
        engine.dispose()


def copy_rows(source_url: str, target_url: str) -> None:
    """Copy every service table's rows from one database to another whose schema is at the same
    migration (empty), keeping ids, then move PostgreSQL's id sequences past them."""
    source = create_engine(source_url)
    target = create_engine(target_url)
    try:
        with source.connect() as reading, target.begin() as writing:
            for table in Base.metadata.sorted_tables:
                rows = [dict(row) for row in reading.execute(select(table)).mappings()]
                if rows:
                    writing.execute(insert(table), rows)
                column = table.c.get("id")
                if column is not None and column.autoincrement is not False and rows:
                    highest = writing.execute(select(func.max(column))).scalar_one()
                    writing.execute(
                        text("SELECT setval(pg_get_serial_sequence(:table, 'id'), :value)"),
                        {"table": table.name, "value": highest},
                    )
    finally:
        source.dispose()
        target.dispose()


def lift_update_guard(connection: Connection) -> None:
    """Let a test rewrite access-log rows as someone with full rights would: on SQLite drop the
    trigger refusing UPDATE (migration 0003); on PostgreSQL the tests connect as the tables'
    owner, whom no grant restricts."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("DROP TRIGGER access_log_no_update")


def refuse_access_log_inserts(connection: Connection) -> None:
    """Make every INSERT into the access log fail (a trigger), on either database."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON access_log BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
        return
    connection.exec_driver_sql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'no'; END $$"
    )
    connection.exec_driver_sql(
        "CREATE TRIGGER refuse BEFORE INSERT ON access_log FOR EACH ROW EXECUTE FUNCTION refuse()"
    )
