"""The service's own data: users and tokens, the outreach queue, outcomes, opt-outs, approvals and
the access log. SQLite in the project home by default (WAL, busy timeout), PostgreSQL by URL.

The schema is created and upgraded by Alembic migrations (``store/migrations``), never by
``create_all``, so that a deployed database can be upgraded in place.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    insert,
)
from sqlalchemy import (
    false as sa_false,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from kernel.errors import BadInputError


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_uid() -> str:
    """A user's opaque id: 128 random bits, never issued twice."""
    return secrets.token_hex(16)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: Page sessions carry the epoch they began in; raising it ends them all (sign-out,
    #: a new password).
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: A disabled user can neither sign in nor use a token (their sessions and tokens ended).
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    #: An opaque id issued once: tokens and page sessions are bound to it, so a user created
    #: with a reused integer id (a row deleted by hand) inherits nothing (migration 0008).
    uid: Mapped[str | None] = mapped_column(
        String(32), unique=True, index=True, default=new_uid, nullable=True
    )


class UserArea(Base):
    """An area a coordinator works in: their lists, people, outcomes and opt-outs stay in it."""

    __tablename__ = "user_areas"
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    area: Mapped[str] = mapped_column(String(120), primary_key=True)


class Token(Base):
    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    #: When the token stops working (``None``: tokens issued before expiry existed; they are
    #: given one by migration 0004).
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: The ``uid`` of the user it was issued to: accepted only while that user row has it.
    user_uid: Mapped[str | None] = mapped_column(String(32), nullable=True)


class QueueEntry(Base):
    __tablename__ = "queue_entries"
    __table_args__ = (UniqueConstraint("model_name", "period", "person_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_name: Mapped[str] = mapped_column(String(120))
    model_version: Mapped[str] = mapped_column(String(20))
    audit_id: Mapped[str] = mapped_column(String(80))
    period: Mapped[str] = mapped_column(String(7), index=True)
    person_id: Mapped[str] = mapped_column(String(120), index=True)
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    percentile: Mapped[float] = mapped_column(Float)
    band: Mapped[str] = mapped_column(String(20))
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    #: The main reasons' features, comma-joined: compared month to month without reading JSON.
    reason_features: Mapped[str | None] = mapped_column(String(400), nullable=True)
    area: Mapped[str | None] = mapped_column(String(120), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: How the entry came to be offered outreach: ``"list"`` (the top k by score, probability 1)
    #: or ``"lottery"`` (the evaluation arm's extra places at the margin, drawn with
    #: ``selection_probability``).
    source: Mapped[str] = mapped_column(String(10), default="list", server_default="list")
    selection_probability: Mapped[float] = mapped_column(Float, default=1.0, server_default="1.0")
    #: The outcome that came back for the entry's period (``outreach labels ingest``).
    label: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Outcome(Base):
    __tablename__ = "outcomes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("queue_entries.id"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text, default="")
    recorded_by: Mapped[str] = mapped_column(String(120))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OptOut(Base):
    __tablename__ = "opt_outs"
    person_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    recorded_by: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str] = mapped_column(Text, default="")
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OptIn(Base):
    """A person who had opted out asked to be offered outreach again: who recorded it and why."""

    __tablename__ = "opt_ins"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[str] = mapped_column(String(120), index=True)
    reason: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(String(120))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Approval(Base):
    __tablename__ = "approvals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_name: Mapped[str] = mapped_column(String(120))
    model_version: Mapped[str] = mapped_column(String(20))
    decision: Mapped[str] = mapped_column(String(20))
    by: Mapped[str] = mapped_column(String(120))
    note: Mapped[str] = mapped_column(Text, default="")
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PeriodGroup(Base):
    """How many of a group were scored in a period and how many were put on the list."""

    __tablename__ = "period_groups"
    __table_args__ = (UniqueConstraint("model_name", "period", "attribute", "group_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_name: Mapped[str] = mapped_column(String(120))
    period: Mapped[str] = mapped_column(String(7))
    attribute: Mapped[str] = mapped_column(String(120))
    group_name: Mapped[str] = mapped_column(String(240))
    population: Mapped[int] = mapped_column(Integer)
    selected: Mapped[int] = mapped_column(Integer)


class EntryGroup(Base):
    """A queue entry's group for one sensitive attribute.

    Read only as aggregates (monitoring); never shown per person and never to coordinators.
    """

    __tablename__ = "entry_groups"
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("queue_entries.id", ondelete="CASCADE"), primary_key=True
    )
    attribute: Mapped[str] = mapped_column(String(120), primary_key=True)
    group_name: Mapped[str] = mapped_column(String(240))


class ScoredPeriod(Base):
    """What batch scoring kept of a period beyond its queue (monitoring only).

    ``snapshot`` is a Parquet file of the whole scored population (id, score, rank, offer, source,
    selection probability, sensitive groups), bound here by its sha256; ``estimates`` and
    ``drift`` are the documents computed when the period was scored.
    """

    __tablename__ = "scored_periods"
    __table_args__ = (UniqueConstraint("model_name", "period"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_name: Mapped[str] = mapped_column(String(120))
    period: Mapped[str] = mapped_column(String(7))
    model_version: Mapped[str] = mapped_column(String(20))
    audit_id: Mapped[str] = mapped_column(String(80))
    population: Mapped[int] = mapped_column(Integer)
    capacity: Mapped[int] = mapped_column(Integer)
    #: The margin band of the evaluation lottery: ranks ``capacity + 1`` to ``band_end``.
    band_end: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lottery_places: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lottery_seed: Mapped[str] = mapped_column(String(64), default="", server_default="")
    snapshot: Mapped[str] = mapped_column(Text)
    snapshot_sha256: Mapped[str] = mapped_column(String(64))
    estimates: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    drift: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    scored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PeriodLabels(Base):
    """A period's ingested labels (file bound by sha256) and the realised results on them."""

    __tablename__ = "period_labels"
    __table_args__ = (UniqueConstraint("model_name", "period"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_name: Mapped[str] = mapped_column(String(120))
    period: Mapped[str] = mapped_column(String(7))
    labelled: Mapped[int] = mapped_column(Integer)
    positives: Mapped[int] = mapped_column(Integer)
    #: People scored in the period for whom the file had no label.
    unlabelled: Mapped[int] = mapped_column(Integer)
    labels: Mapped[str] = mapped_column(Text)
    labels_sha256: Mapped[str] = mapped_column(String(64))
    realised: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    ingested_by: Mapped[str] = mapped_column(String(120))
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AccessLogRow(Base):
    """Append-only, hash-chained: each row's hash covers its content and the previous hash.

    Append-only at the database too: SQLite triggers refuse UPDATE and DELETE (migration 0003),
    PostgreSQL grants give the service's role SELECT and INSERT only; the retention purge in
    :mod:`store.access_log` is the one path that deletes.
    """

    __tablename__ = "access_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[str] = mapped_column(String(40))
    user: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(60))
    purpose: Mapped[str] = mapped_column(String(40))
    subject_ids: Mapped[list[str]] = mapped_column(JSON)
    model_version: Mapped[str] = mapped_column(String(80), default="")
    request_id: Mapped[str] = mapped_column(String(40))
    allowed: Mapped[bool] = mapped_column(Boolean, default=True)
    previous_hash: Mapped[str] = mapped_column(String(64), unique=True)  # no forks
    hash: Mapped[str] = mapped_column(String(64))


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock when a transaction starts (SQLAlchemy's pysqlite recipe): the
        # access log reads the chain's last hash and appends in one step, and concurrent
        # workers then queue on the lock instead of failing on a stale snapshot and retrying.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    @event.listens_for(engine, "connect")
    def _on_connect(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        # The timeout first: switching a new database to WAL takes a lock another worker
        # starting at the same moment may hold.
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # WAL: durable across process crashes
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


class Database:
    """An engine and a session factory for one database URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        sqlite = url.startswith("sqlite")
        # pysqlite must not begin transactions itself when the "begin" event does it.
        try:
            self.engine = create_engine(
                url, connect_args={"isolation_level": None} if sqlite else {}
            )
        except ModuleNotFoundError as err:
            if not url.startswith("postgresql"):
                raise
            raise BadInputError(
                f"the service database is PostgreSQL, but its driver ({err.name}) is not "
                "installed: install the 'postgres' extra (pip install -e '.[postgres]'; "
                "make test installs it)",
                details=[f"OUTREACH_DATABASE_URL: needs the 'postgres' extra ({err.name})"],
            ) from err
        self._lock_path: str | None = None
        if sqlite:
            _sqlite_pragmas(self.engine)
            database = self.engine.url.database
            if database and database != ":memory:":
                self._lock_path = f"{database}.lock"
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._reader: Engine | None = None
        self._reader_lock = threading.Lock()
        self._plain = threading.local()

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """For SQLite, one transaction at a time across processes, queued in the kernel.

        SQLite has one writer; its own busy handler polls with sleeps of up to 100 ms, which
        shows as latency spikes under load. An ``flock`` on a file beside the database wakes the
        next waiter as soon as the lock is free. Transactions never nest in this service.
        """
        if self._lock_path is None:
            yield
            return
        with open(self._lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back (nothing written) on any error."""
        with self._exclusive():
            session = self._sessions()
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A core-level transaction (no ORM), for the hot path."""
        with self._exclusive(), self.engine.begin() as connection:
            yield connection

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read-only transaction over one consistent state, taking no writer's lock.

        For checks that read much (the access log's verification): on SQLite in WAL mode a
        deferred read transaction on its own connection, which writers never wait for and which
        never takes the lock beside the database; on PostgreSQL ``REPEATABLE READ``. The
        snapshot is taken by the first statement.
        """
        if self._lock_path is None and self.url.startswith("sqlite"):
            with self.engine.begin() as connection:  # in memory: one connection, no readers
                yield connection
            return
        if not self.url.startswith("sqlite"):
            with (
                self.engine.connect().execution_options(
                    isolation_level="REPEATABLE READ"
                ) as connection,
                connection.begin(),
            ):
                yield connection
            return
        with self._reader_engine().begin() as connection:
            yield connection

    def plain_rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]] | None:
        """The rows of one ``SELECT`` (``?`` placeholders) on a plain ``sqlite3`` connection, or
        ``None`` when this is not a SQLite file (then read through :meth:`snapshot`).

        The score endpoint's per-request reads (the token's user, the opt-outs among the
        records): one statement is one consistent snapshot in WAL mode, taking no writer's lock,
        as :meth:`snapshot`, without SQLAlchemy's per-transaction work (a connection checkout,
        events, a result proxy: most of each read's time). One read-only connection per thread,
        reopened after a fork. Values come back as SQLite stores them (datetimes as text,
        booleans as 0/1).
        """
        if self._lock_path is None:
            return None
        held = getattr(self._plain, "held", None)
        if held is None or held[0] != os.getpid():
            connection = sqlite3.connect(
                self.engine.url.database or "", isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA busy_timeout=5000")
            connection.execute("PRAGMA query_only=ON")
            held = self._plain.held = (os.getpid(), connection)
        return held[1].execute(sql, tuple(params)).fetchall()

    def _reader_engine(self) -> Engine:
        with self._reader_lock:
            if self._reader is None:
                reader = create_engine(self.url, connect_args={"isolation_level": None})

                @event.listens_for(reader, "connect")
                def _on_connect(connection: Any, _record: Any) -> None:
                    cursor = connection.cursor()
                    cursor.execute("PRAGMA busy_timeout=5000")
                    cursor.execute("PRAGMA query_only=ON")
                    cursor.close()

                @event.listens_for(reader, "begin")
                def _on_begin(connection: Any) -> None:
                    connection.exec_driver_sql("BEGIN")  # deferred: a reader, never the writer

                self._reader = reader
            return self._reader

    def upgrade(self) -> None:
        """Create or upgrade the schema to the latest migration.

        A database already at the newest migration (:func:`head_revision`, read from the
        migration files) is left as it is without loading Alembic, whose import and script
        reading cost a command about a second; any other (new, older, unknown revision) is
        upgraded by Alembic.
        """
        head = head_revision()
        # One process at a time (every worker upgrades at start): the next finds it done.
        with self._exclusive(), self.engine.begin() as connection:
            if head is not None and applied_revisions(connection) == {head}:
                return
            from alembic import command
            from alembic.config import Config

            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")


#: Alembic's environment and the migrations (``versions/``).
MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION = re.compile(r"^revision(?:: *str)? *= *[\"']([^\"']+)[\"'] *$", re.M)
_DOWN_REVISION = re.compile(
    r"^down_revision(?:: *[^=]+)? *= *(?:None|[\"']([^\"']+)[\"']) *$", re.M
)
_BRANCHING = re.compile(r"^(?:branch_labels|depends_on)\b[^=\n]*=(.*)$", re.M)


def head_revision(versions: Path = MIGRATIONS / "versions") -> str | None:
    """The newest migration's revision, read from the migration files: the one revision that
    no other names as its ``down_revision``. ``None`` when the files are not one plain chain
    (a revision or its parent not written as a plain string, a merge, branch labels or
    dependencies, more than one head): Alembic then reads them itself."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision, down = _REVISION.findall(text), _DOWN_REVISION.findall(text)
        branching = [value.strip() for value in _BRANCHING.findall(text)]
        if len(revision) != 1 or len(down) != 1 or any(v != "None" for v in branching):
            return None
        revisions.add(revision[0])
        if down[0]:
            parents.add(down[0])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


def applied_revisions(connection: Connection) -> set[str]:
    """The revisions Alembic recorded as applied in this database (none for a new one)."""
    if not sa_inspect(connection).has_table("alembic_version"):
        return set()
    return set(connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars())


def insert_rows(
    connection: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert ``rows`` (tuples in ``columns``' order) into ``table`` in one executemany.

    Where no other column of the table has a Python-side default, the statement and rows are
    handed straight to the driver: at tens of thousands of rows, SQLAlchemy's building of each
    row's parameters costs more than the database's own insert. A column whose type converts
    its values for this database (JSON, dates on SQLite) has them converted here, by the same
    conversion SQLAlchemy applies, one column at a time. Otherwise (a default to fill in) the
    plain ``insert(table)`` runs, with its conversions and defaults.
    """
    if not rows:
        return
    dialect = connection.dialect
    defaulted = any(c.name not in columns and c.default is not None for c in table.c)
    if defaulted:
        connection.execute(insert(table), [dict(zip(columns, r, strict=True)) for r in rows])
        return
    # The type's implementation for this database converts (psycopg's JSON, SQLite's dates),
    # as SQLAlchemy's own statement would.
    processors = [
        table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns
    ]
    if any(p is not None for p in processors):
        converted = [
            list(values) if p is None else _converted(p, values)
            for p, values in zip(processors, zip(*rows, strict=True), strict=True)
        ]
        rows = list(zip(*converted, strict=True))
    compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
    params: list[Any]
    if compiled.positional:
        order = [list(columns).index(name) for name in compiled.positiontup or ()]
        same = order == list(range(len(columns)))
        params = list(rows) if same else [tuple(r[i] for i in order) for r in rows]
    else:
        params = [dict(zip(columns, row, strict=True)) for row in rows]
    connection.exec_driver_sql(compiled.string, params)


def _converted(processor: Any, values: Sequence[Any]) -> Sequence[Any]:
    """``values`` converted by ``processor``; a column of one value (every row's time of
    creation) converted once."""
    first = values[0]
    if all(value is first for value in values):
        return [processor(first)] * len(values)
    return [processor(value) for value in values]


def default_url(home_root: Path) -> str:
    return f"sqlite:///{home_root / 'service.db'}"


class SignInCounter(Base):
    """Sign-in attempts or failures under one key, shared by every worker (``store.signin_limits``).

    ``kind`` says what is counted (an address's attempts, a name's failures); times are seconds
    since the epoch. A row means nothing after ``forget_at`` and is pruned then.
    """

    __tablename__ = "sign_in_counters"
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[float] = mapped_column(Float)
    #: Locks so far (each lock lasts twice the previous one, up to the rule's cap).
    locks: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[float] = mapped_column(Float, default=0.0)
    forget_at: Mapped[float] = mapped_column(Float, index=True)


class ReviewRequest(Base):
    """A request for review of a listing (``store.review_requests``): wrong data, or a person who
    asked not to be contacted. Attached to the person's latest queue entry when it was filed (its
    model and period are kept if the entry is later removed); its state changes are kept in
    :class:`ReviewRequestEvent`."""

    __tablename__ = "review_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[str] = mapped_column(String(120), index=True)
    model_name: Mapped[str] = mapped_column(String(120))
    period: Mapped[str] = mapped_column(String(7))
    entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("queue_entries.id", ondelete="SET NULL"), nullable=True, index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    #: Who raised it: ``"person"`` (they asked, through a coordinator) or ``"coordinator"``.
    raised_by: Mapped[str] = mapped_column(String(20))
    details: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(20), index=True)
    filed_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReviewRequestEvent(Base):
    """One state a review request entered, who moved it and why. Append-only (on SQLite,
    triggers refuse UPDATE and DELETE; migration 0007)."""

    __tablename__ = "review_request_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("review_requests.id"), index=True)
    state: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text, default="")
    by: Mapped[str] = mapped_column(String(120))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AttestationHead(Base):
    """A model's attestation log head anchored outside the log (``head``), an alarm raised
    because the log did not verify (``alarm``), or a person's repair (``repair``).
    Append-only (on SQLite, triggers refuse UPDATE and DELETE; migration 0008)."""

    __tablename__ = "attestation_heads"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(120), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    sequence: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    by: Mapped[str] = mapped_column(String(120), default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
