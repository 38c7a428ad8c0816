"""The access log: every view of a person's score is recorded first, in a hash chain.

Each row's hash covers its content and the previous row's hash, so editing or deleting any row
breaks the chain from that row on. The table is append-only (SQLite triggers, migration 0003;
PostgreSQL grants). A chain alone cannot show a removed tail or a log rewritten and re-chained
by someone with write access, so each process also signs **checkpoints** (row id, hash,
position, time; Ed25519, :mod:`model.signing`) into a JSON-lines file outside the database, at
most every ``CHECKPOINT_ROWS`` rows and ``CHECKPOINT_MINUTES`` apart, off the request path
(:class:`CheckpointWriter`). :func:`verify` walks a snapshot of the rows against the chain and the
signed checkpoints and names what it finds; :func:`purge` removes whole old segments up to a
checkpoint and signs an anchor the chain is verified from afterwards.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask, current_app, has_app_context
from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from model.errors import BadInputError, OutreachError
from model.home import Home
from model.signing import Signer, Verifier, load_signer, load_verifier
from service.db import AccessLogRow, Database

T = TypeVar("T")

GENESIS = "0" * 64
CHECKPOINT_SECONDS = 0.5
WAL_FRAMES = 10_000  # pages (about 40 MB) before the log is started over

log = logging.getLogger("outreach.service")
ATTEMPTS = 20


class AccessLogUnavailableError(OutreachError):
    """The access-log row could not be written, so no personal data may be shown."""

    http_status = 503
    code = "access_log_unavailable"


def retrying(attempt: Callable[[], T], *, attempts: int = ATTEMPTS) -> T:
    """Run ``attempt`` (a transaction that appends to the chain) until it commits.

    Two writers racing for the same previous row (a unique-hash conflict, or a busy database)
    cannot both succeed: the loser retries after a short random backoff. Any other database
    error, or too many conflicts, raises :class:`AccessLogUnavailableError`.
    """
    for number in range(attempts):
        try:
            return attempt()
        except (IntegrityError, OperationalError, sqlite3.IntegrityError, sqlite3.OperationalError):
            time.sleep(random.uniform(0.0005, 0.002) * (number + 1))
        except (SQLAlchemyError, sqlite3.Error):
            break
    raise AccessLogUnavailableError(
        "the access log cannot be written, so no personal data is shown"
    )


#: The row's fields its hash covers, in the order :func:`verify` reads them.
HASHED = (
    "at",
    "user",
    "role",
    "action",
    "purpose",
    "subject_ids",
    "model_version",
    "request_id",
    "allowed",
)
# json.dumps(..., sort_keys=True, separators=(",", ":"), default=str), built once: a full
# verification hashes every row.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def _digest(previous: str, fields: dict[str, object]) -> str:
    return hashlib.sha256((previous + _CANONICAL.encode(fields)).encode()).hexdigest()


def row_hash(previous: str, row: Any) -> str:
    """The hash a row (an :class:`AccessLogRow` or a result row) must have after ``previous``."""
    return _digest(previous, _fields(row))


def _fields(row: Any) -> dict[str, object]:
    return {
        "at": row.at,
        "user": row.user,
        "role": row.role,
        "action": row.action,
        "purpose": row.purpose,
        "subject_ids": list(row.subject_ids),
        "model_version": row.model_version,
        "request_id": row.request_id,
        "allowed": bool(row.allowed),
    }


def _new_fields(
    *,
    user: str,
    role: str,
    action: str,
    purpose: str,
    subject_ids: Sequence[str],
    model_version: str,
    request_id: str,
    allowed: bool,
) -> dict[str, object]:
    return {
        "at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "user": user,
        "role": role,
        "action": action,
        "purpose": purpose,
        "subject_ids": [str(s) for s in subject_ids],
        "model_version": model_version,
        "request_id": request_id,
        "allowed": bool(allowed),
    }


def append(
    session: Session | Connection,
    *,
    user: str,
    role: str,
    action: str,
    purpose: str,
    subject_ids: Sequence[str],
    model_version: str,
    request_id: str,
    allowed: bool = True,
) -> str:
    """Add a row to the chain inside ``session``'s transaction (committed with it).

    Returns the row's hash. Two writers racing for the same previous row cannot both succeed:
    ``previous_hash`` is unique, so the loser gets an integrity error and retries.
    """
    last = session.execute(
        select(AccessLogRow.hash).order_by(AccessLogRow.id.desc()).limit(1)
    ).scalar()
    previous = last if last is not None else GENESIS
    fields = _new_fields(
        user=user,
        role=role,
        action=action,
        purpose=purpose,
        subject_ids=subject_ids,
        model_version=model_version,
        request_id=request_id,
        allowed=allowed,
    )
    digest = _digest(previous, fields)
    # A core insert (no ORM unit of work): this runs before every response with personal data.
    session.execute(insert(AccessLogRow), [{**fields, "previous_hash": previous, "hash": digest}])
    _signing_in_background()
    return digest


_COLUMNS = (
    "at",
    "user",
    "role",
    "action",
    "purpose",
    "subject_ids",
    "model_version",
    "request_id",
    "allowed",
    "previous_hash",
    "hash",
)
_LAST = "SELECT hash FROM access_log ORDER BY id DESC LIMIT 1"
_INSERT = (
    f"INSERT INTO access_log ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)


class _Handles:
    """One thread's connection and lock-file descriptor, closed with it (in its own process)."""

    def __init__(self, connection: sqlite3.Connection, lock_path: str | None) -> None:
        self.pid = os.getpid()
        self.connection = connection
        connection.execute("PRAGMA wal_autocheckpoint=0")  # see SqliteAppender
        self.lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644) if lock_path else None

    def __del__(self) -> None:
        if self.pid != os.getpid():
            return  # a forked child must not close its parent's connection
        self.connection.close()
        if self.lock is not None:
            os.close(self.lock)


class SqliteAppender:
    """:func:`append` in its own committed transaction on a plain ``sqlite3`` connection.

    The per-response path of the score endpoint: the same row, the same chain and the same
    locking as :meth:`Database.transaction` (the kernel file lock beside the database, then
    ``BEGIN IMMEDIATE``), without SQLAlchemy's per-statement work. The chain's last hash is read
    under that lock every time (never cached), so another worker's rows are always seen. One
    connection and one lock-file handle per thread, reopened after a fork.

    Commits are as durable as before (WAL, ``synchronous=NORMAL``), but the WAL checkpoint,
    which copies the log into the database file and waits for the disk, is taken off the
    request path: SQLite would otherwise run it inside every few hundredth commit, holding the
    write lock for a disk flush while every other request waits. A daemon thread per process
    checkpoints every ``checkpoint_every`` seconds instead (see :func:`_checkpoints`).
    """

    def __init__(
        self,
        path: str,
        lock_path: str | None,
        *,
        checkpoint_every: float = CHECKPOINT_SECONDS,
        wal_frames: int = WAL_FRAMES,
    ) -> None:
        self.path, self.lock_path = path, lock_path
        self.checkpoint_every, self.wal_frames = checkpoint_every, wal_frames
        self._local = threading.local()
        self._checkpointer_pid: int | None = None
        self._start_lock = threading.Lock()

    @classmethod
    def for_database(cls, db: Database) -> SqliteAppender | None:
        """An appender for a SQLite file database, or ``None`` (use :func:`append`)."""
        url = db.engine.url
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        # The very lock file Database.transaction takes, so both paths queue on one lock.
        return cls(str(url.database), db._lock_path)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=5.0
        )
        connection.execute("PRAGMA busy_timeout=5000")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    def _handles(self) -> _Handles:
        handles: _Handles | None = getattr(self._local, "handles", None)
        if handles is None or handles.pid != os.getpid():
            # Handles inherited over fork would share the parent's lock: open our own.
            handles = self._local.handles = _Handles(self._connect(), self.lock_path)
            self._start_checkpointer()
        return handles

    def _start_checkpointer(self) -> None:
        with self._start_lock:
            if self._checkpointer_pid == os.getpid():
                return
            self._checkpointer_pid = os.getpid()
        threading.Thread(
            target=_checkpoints,
            args=(weakref.ref(self), self.checkpoint_every, self.wal_frames),
            name="access-log-checkpoint",
            daemon=True,
        ).start()

    def append(
        self,
        *,
        user: str,
        role: str,
        action: str,
        purpose: str,
        subject_ids: Sequence[str],
        model_version: str,
        request_id: str,
        allowed: bool = True,
    ) -> str:
        """Write and commit one row; returns its hash. Raises ``sqlite3.Error`` if it cannot."""
        handles = self._handles()
        connection = handles.connection
        fields = _new_fields(
            user=user,
            role=role,
            action=action,
            purpose=purpose,
            subject_ids=subject_ids,
            model_version=model_version,
            request_id=request_id,
            allowed=allowed,
        )
        with _flocked(handles.lock):
            connection.execute("BEGIN IMMEDIATE")
            try:
                last = connection.execute(_LAST).fetchone()
                previous = last[0] if last is not None else GENESIS
                digest = _digest(previous, fields)
                # Stored as SQLAlchemy stores them: JSON text for the ids, 1/0 for the flag.
                connection.execute(
                    _INSERT,
                    (
                        fields["at"],
                        user,
                        role,
                        action,
                        purpose,
                        json.dumps(fields["subject_ids"]),
                        model_version,
                        request_id,
                        1 if allowed else 0,
                        previous,
                        digest,
                    ),
                )
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        _signing_in_background()
        return digest


def _checkpoints(appender: weakref.ref[SqliteAppender], every: float, limit: int) -> None:
    """Checkpoint the appender's WAL every ``every`` seconds while the appender is in use.

    A passive checkpoint copies what is committed without blocking anyone, but under steady load
    writers add frames while it runs, so the log never starts over and would grow without end.
    Past ``limit`` frames, one restart checkpoint under the writers' lock finishes the last few
    frames and starts the log over: one short pause per ``limit`` frames, not per few hundred.
    """
    found = appender()
    if found is None:
        return
    connection = found._connect()
    # The restart below waits for readers of an older snapshot (a verification walking the
    # log) while it blocks every writer: rather than wait, it gives up and retries next round.
    connection.execute("PRAGMA busy_timeout=0")
    lock = os.open(found.lock_path, os.O_RDWR | os.O_CREAT, 0o644) if found.lock_path else None
    del found  # hold only the weak reference: the thread ends with the appender's app
    try:
        while True:
            time.sleep(every)
            if appender() is None:
                return
            try:  # sqlite3 releases the GIL while it copies and flushes
                _, frames, _ = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if frames > limit:
                    with _flocked(lock):
                        connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
            except sqlite3.Error as err:  # the next round retries; commits never depend on it
                log.warning("access-log checkpoint failed: %s", err)
    finally:
        connection.close()
        if lock is not None:
            os.close(lock)


@contextmanager
def _flocked(handle: int | None) -> Iterator[None]:
    """The writers' kernel file lock (as :meth:`Database.transaction` takes it)."""
    if handle is None:
        yield
        return
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Verification:
    """What a check of the access log found.

    ``ok`` only if every row holds its hash and its link, every signed checkpoint names a row
    that is there with the signed hash and position, and the checkpoint file itself is sound.
    """

    ok: bool
    rows: int
    first_broken: int | None = None
    reason: str = ""
    #: The last verified row (id, hash): pass it back as ``after`` to check only newer rows.
    last: tuple[int, str] | None = None
    #: Signed checkpoints matched against their rows in this check.
    checkpoints: int = 0
    #: What is wrong outside the rows: bad or forged checkpoint lines, missing triggers.
    problems: tuple[str, ...] = ()
    #: Rows up to this id were purged under the retention rule (a signed anchor says so).
    purged_to: int | None = None
    #: Rows after the latest signed checkpoint (not signed yet).
    unsigned: int = 0

    def describe(self) -> str:
        """One line naming what was found and where."""
        if self.ok:
            start = f" after row {self.purged_to} (purged)" if self.purged_to else ""
            return (
                f"intact: {self.rows} rows checked{start}, {self.checkpoints} signed "
                f"checkpoints matched, {self.unsigned} rows since the latest checkpoint"
            )
        found = [f"broken at row {self.first_broken}: {self.reason}"] if self.first_broken else []
        return "; ".join([*found, *self.problems])


def verify(
    db: Database,
    *,
    after: tuple[int, str] | None = None,
    checkpoints: CheckpointLog | None = None,
    seen: tuple[int, str] | None = None,
) -> Verification:
    """Walk the chain from its start (or the latest purge anchor); report the first row whose
    hash, link or signed checkpoint does not hold, and every bad checkpoint line.

    The rows are read in one snapshot (:meth:`Database.snapshot`), never under the writers'
    lock; the checkpoint file is read first, under its shared lock, so every row it names is in
    the snapshot. ``after`` (a previous result's ``last``) checks only the rows added since,
    linked to that row, which must still be there; ``rows`` then counts the rows checked now.
    ``seen`` is a row an earlier check verified (id, hash): if it is gone or changed, that is
    reported too (a removed tail that no checkpoint covered yet).
    """
    with _consistent(db, checkpoints, fresh=after is None) as (connection, read):
        return _walk(connection, read, db=db, after=after, seen=seen, signed=checkpoints)


def _walk(
    connection: Connection,
    read: CheckpointRead,
    *,
    db: Database,
    after: tuple[int, str] | None,
    seen: tuple[int, str] | None,
    signed: CheckpointLog | None,
) -> Verification:
    problems = [*read.problems, *_missing_triggers(connection, db)]
    anchor = read.anchor
    start_id, previous, position = (
        (anchor.row_id, anchor.hash, anchor.rows) if anchor else (0, GENESIS, 0)
    )
    purged_to = anchor.row_id if anchor else None
    table = AccessLogRow.__table__.c
    last: tuple[int, str] | None = None
    count = matched = 0
    confirmed = start_id  # the last row a checkpoint, the anchor or an earlier check vouches for

    def result(broken: int | None = None, reason: str = "") -> Verification:
        latest = read.latest
        unsigned = max(0, position - latest.rows) if signed is not None and latest else 0
        if signed is not None and latest is None:
            unsigned = position
        ok = broken is None and not problems
        return Verification(
            ok,
            count,
            broken,
            reason if broken is not None else "; ".join(problems),
            last,
            checkpoints=matched,
            problems=tuple(problems),
            purged_to=purged_to,
            unsigned=unsigned,
        )

    if after is not None and after[0] > start_id:
        stored = connection.scalar(select(table.hash).where(table.id == after[0]))
        if stored is None:
            return result(after[0], f"row {after[0]}, verified before, is gone: rows were removed")
        if stored != after[1]:
            return result(after[0], "it changed since it was verified")
        position += (
            connection.scalar(select(func.count()).where(table.id > start_id, table.id <= after[0]))
            or 0
        )
        start_id, previous = last = after
        confirmed = after[0]
    expected: dict[int, list[Checkpoint]] = {}
    for entry in read.entries:
        if entry.kind == "checkpoint" and entry.row_id > start_id:
            expected.setdefault(entry.row_id, []).append(entry)
    if seen is not None and seen[0] > start_id:
        expected.setdefault(seen[0], []).append(Checkpoint(0, "seen", seen[0], seen[1], 0, None))
    rows = connection.execution_options(yield_per=2000).execute(
        select(table.id, table.previous_hash, table.hash, *(table[name] for name in HASHED))
        .where(table.id > start_id)
        .order_by(table.id)
    )
    # Plain tuples: a row's attribute lookups would cost more than hashing it.
    for row_id, linked, digest, *values in rows:
        count += 1
        position += 1
        if linked != previous:
            return result(row_id, _link_broken(count == 1 and last is None, anchor))
        if _digest(previous, dict(zip(HASHED, values, strict=True))) != digest:
            return result(row_id, "its content does not match its hash")
        for entry in expected.pop(row_id, ()):
            if entry.hash != digest:
                where = (
                    f"at row {row_id}"
                    if confirmed + 1 >= row_id
                    else f"between rows {confirmed + 1} and {row_id}"
                )
                return result(
                    confirmed + 1,
                    f"the log was rewritten {where} and its hashes recomputed: row {row_id}'s "
                    f"hash is not the one {entry.describe()} vouches for",
                )
            if entry.kind != "seen" and entry.rows != position:
                return result(
                    confirmed + 1,
                    f"row {row_id} is row {position} of the log, but {entry.describe()} signed "
                    f"it as row {entry.rows}: rows before it were removed or added",
                )
            matched += entry.kind != "seen"
            confirmed = row_id
        previous = digest
        last = (row_id, digest)
    if expected:
        end = last[0] if last is not None else start_id
        entry = min((e for entries in expected.values() for e in entries), key=lambda e: e.row_id)
        if entry.row_id < end:
            return result(entry.row_id, f"row {entry.row_id}, named by {entry.describe()}, is gone")
        lost = entry.rows - position if entry.kind != "seen" else 0
        removed = f"{lost} rows" if lost > 0 else "rows"
        return result(
            end + 1,
            f"the log ends at row {end}, but {entry.describe()} names row {entry.row_id}: "
            f"{removed} after row {end} were removed",
        )
    return result()


def _link_broken(first: bool, anchor: Checkpoint | None) -> str:
    if not first:
        return "its link to the previous row is broken"
    if anchor is not None:
        return (
            f"it does not follow row {anchor.row_id}, up to which the log was purged "
            f"({anchor.describe()}): rows were removed or rewritten"
        )
    return (
        "the log begins with it, but it links to an earlier row: rows before it were removed "
        "and no signed purge anchor covers them"
    )


def _missing_triggers(connection: Connection, db: Database) -> list[str]:
    if not db.url.startswith("sqlite"):
        return []  # PostgreSQL: the role's grants keep the table append-only (README)
    names = set(
        connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'access_log'"
        ).scalars()
    )
    missing = [name for name in APPEND_ONLY_TRIGGERS if name not in names]
    if not missing:
        return []
    return [
        f"the append-only triggers {', '.join(missing)} on access_log are missing: rows can be "
        "changed or deleted (migration 0003 creates them; only a purge drops them, in its own "
        "transaction)"
    ]


@contextmanager
def _consistent(
    db: Database, checkpoints: CheckpointLog | None, *, fresh: bool
) -> Iterator[tuple[Connection, CheckpointRead]]:
    """The checkpoint file, then a snapshot of the database that holds every row it names.

    The file is read under its shared lock and the snapshot is taken before that lock is let go,
    so neither a checkpoint writer nor a purge (which hold it exclusively) falls in between.
    """
    if checkpoints is None:
        with db.snapshot() as connection:
            yield connection, CheckpointRead((), ())
        return
    with ExitStack() as held:
        with checkpoints.locked(exclusive=False) as handle:
            read = checkpoints.read_locked(handle, fresh=fresh)
            connection = held.enter_context(db.snapshot())
            connection.execute(select(func.max(AccessLogRow.id)))  # the snapshot starts here
        yield connection, read


# ------------------------------------------------------------------------ signed checkpoints

CHECKPOINT_ROWS = 1000
CHECKPOINT_MINUTES = 10.0
CHECKPOINT_POLL_SECONDS = 1.0
MIN_DAYS = 183
MIN_DAYS_ENV = "OUTREACH_ACCESS_LOG_MIN_DAYS"
CHECKPOINTS_ENV = "OUTREACH_ACCESS_LOG_CHECKPOINTS"
#: Created by migration 0003 on SQLite; a purge drops and re-creates them in its transaction.
APPEND_ONLY_TRIGGERS = ("access_log_no_update", "access_log_no_delete")
_KINDS = ("checkpoint", "purge")
_HEX = frozenset("0123456789abcdef")


class AccessLogBrokenError(OutreachError):
    """The access log does not verify, so it is left as it is (a purge is refused)."""

    exit_code = 3
    http_status = 409
    code = "access_log_broken"


class PurgeRefusedError(BadInputError):
    """A purge would remove rows the deployment must keep."""

    code = "purge_refused"


@dataclass(frozen=True)
class CheckpointSettings:
    """Where one database's signed checkpoints go, the key that signs them, and how often."""

    path: Path
    key_path: Path
    every_rows: int = CHECKPOINT_ROWS
    every_seconds: float = CHECKPOINT_MINUTES * 60
    poll_seconds: float = CHECKPOINT_POLL_SECONDS

    @classmethod
    def resolve(
        cls,
        home: Home,
        db: Database,
        env: Mapping[str, str],
        config: Mapping[str, Any] | None = None,
    ) -> CheckpointSettings:
        """Settings from an app's ``config`` (``ACCESS_LOG_CHECKPOINTS``, ``ACCESS_LOG_KEY``,
        ``ACCESS_LOG_CHECKPOINT_ROWS``, ``ACCESS_LOG_CHECKPOINT_MINUTES``,
        ``ACCESS_LOG_CHECKPOINT_POLL``), else the environment (``OUTREACH_ACCESS_LOG_CHECKPOINTS``;
        the key from the home's key paths), else the defaults: ``access_log/checkpoints.jsonl``
        beside a SQLite database file (in the home for the default one), in the home otherwise.

        Raises
        ------
        BadInputError
            Listing every invalid setting.
        """
        config = config or {}
        path = config.get("ACCESS_LOG_CHECKPOINTS") or env.get(CHECKPOINTS_ENV)
        if not path:
            database = db.engine.url.database if db.url.startswith("sqlite") else None
            folder = Path(database).parent if database and database != ":memory:" else home.root
            path = folder / "access_log" / "checkpoints.jsonl"
        key = config.get("ACCESS_LOG_KEY") or home.signing_keys.access_log
        rows = config.get("ACCESS_LOG_CHECKPOINT_ROWS", CHECKPOINT_ROWS)
        minutes = config.get("ACCESS_LOG_CHECKPOINT_MINUTES", CHECKPOINT_MINUTES)
        poll = config.get("ACCESS_LOG_CHECKPOINT_POLL", CHECKPOINT_POLL_SECONDS)
        problems = []
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            problems.append(f"ACCESS_LOG_CHECKPOINT_ROWS: {rows!r}, expected a whole number >= 1")
        for name, value in (("MINUTES", minutes), ("POLL", poll)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                problems.append(f"ACCESS_LOG_CHECKPOINT_{name}: {value!r}, expected a number > 0")
        if problems:
            raise BadInputError("invalid access-log checkpoint settings", details=problems)
        return cls(Path(path), Path(key), rows, float(minutes) * 60, float(poll))


def retention_days(env: Mapping[str, str]) -> int:
    """The deployment's minimum age, in days, of access-log rows a purge may remove
    (``OUTREACH_ACCESS_LOG_MIN_DAYS``, default 183). Resolved by the entry point."""
    raw = env.get(MIN_DAYS_ENV, "").strip()
    if not raw:
        return MIN_DAYS
    try:
        days = int(raw)
    except ValueError:
        days = -1
    if days < 0:
        raise BadInputError(f"{MIN_DAYS_ENV}: {raw!r}, expected a whole number of days >= 0")
    return days


@dataclass(frozen=True)
class Checkpoint:
    """One signed line of the checkpoint file: a checkpoint, or a purge's anchor.

    ``rows`` is the row's position in the log since its first row ever (purged rows counted).
    """

    line: int
    kind: str
    row_id: int
    hash: str
    rows: int
    at: datetime | None

    def describe(self) -> str:
        if self.kind == "seen":
            return "an earlier check"
        what = "the purge anchor" if self.kind == "purge" else "the checkpoint"
        at = self.at.astimezone(UTC) if self.at else None
        return f"{what} signed at {at:%Y-%m-%d %H:%M:%S} UTC (line {self.line})"


@dataclass(frozen=True)
class CheckpointRead:
    """The valid entries of a checkpoint file and what is wrong with the other lines."""

    entries: tuple[Checkpoint, ...]
    problems: tuple[str, ...]

    @property
    def anchor(self) -> Checkpoint | None:
        """The latest purge anchor: the log is verified from its row on."""
        anchors = [e for e in self.entries if e.kind == "purge"]
        return max(anchors, key=lambda e: e.row_id) if anchors else None

    @property
    def latest(self) -> Checkpoint | None:
        """The entry naming the newest row."""
        return max(self.entries, key=lambda e: (e.row_id, e.line)) if self.entries else None


class CheckpointLog:
    """A checkpoint file (JSON lines, appended only) and the public key that checks it.

    Readers take the file's shared lock, writers its exclusive lock and append whole lines with
    one ``O_APPEND`` write each, so no reader or writer ever meets half a line. The entries read
    are kept, so a later read (``fresh=False``) parses only the lines added since.
    """

    def __init__(
        self, path: Path, *, key_path: Path | None = None, verifier: Verifier | None = None
    ) -> None:
        self.path, self.key_path = path, key_path
        self._verifier = verifier
        self._mutex = threading.Lock()
        self._kept: tuple[tuple[int, int], int, int, list[Checkpoint], list[str]] | None = None

    def verifier(self) -> Verifier | None:
        """The public key given, else the one beside the access-log key (``None``: no key yet)."""
        if self._verifier is None and self.key_path is not None:
            public = self.key_path.with_suffix(".pub")
            if public.exists():
                self._verifier = load_verifier(public)
            elif self.key_path.exists():
                self._verifier = load_signer(self.key_path, create=False).verifier
        return self._verifier

    @contextmanager
    def locked(self, *, exclusive: bool) -> Iterator[int | None]:
        """The open file under its lock; ``None`` when reading a file that does not exist yet."""
        if exclusive:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        else:
            try:
                handle = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                yield None
                return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield handle
        finally:
            os.close(handle)  # closing lets the lock go

    def read(self, *, fresh: bool = True) -> CheckpointRead:
        """Every line, checked (``fresh=False``: only the lines added since the last read)."""
        with self.locked(exclusive=False) as handle:
            return self.read_locked(handle, fresh=fresh)

    def read_locked(self, handle: int | None, *, fresh: bool) -> CheckpointRead:
        if handle is None:
            return CheckpointRead((), ())
        status = os.fstat(handle)
        identity = (status.st_dev, status.st_ino)
        verifier = self.verifier()
        with self._mutex:
            kept = None if fresh else self._kept
            if kept is None or kept[0] != identity or kept[1] > status.st_size:
                kept = (identity, 0, 0, [], [])
            _, offset, number, entries, problems = kept
            entries, problems = list(entries), list(problems)
            data = os.pread(handle, status.st_size - offset, offset)
            cut = []
            for raw in data.splitlines(keepends=True):
                if not raw.endswith(b"\n"):
                    cut = [f"line {number + 1} of {self.path}: incomplete (no line end)"]
                    break
                number += 1
                offset += len(raw)
                found = _parse(number, raw, verifier)
                if isinstance(found, Checkpoint):
                    entries.append(found)
                else:
                    problems.append(f"line {number} of {self.path}: {found}")
            if verifier is not None:  # never keep lines that could not be checked
                self._kept = (identity, offset, number, entries, problems)
        if verifier is None and (entries or problems or cut):
            return CheckpointRead(
                (), (f"{number} checkpoint lines cannot be checked: no key at {self.key_path}",)
            )
        return CheckpointRead(tuple(entries), (*problems, *cut))

    def export(self) -> bytes:
        """The file's whole lines as they are (signatures intact), for shipping elsewhere."""
        with self.locked(exclusive=False) as handle:
            if handle is None:
                return b""
            data = os.pread(handle, os.fstat(handle).st_size, 0)
        return data[: data.rfind(b"\n") + 1]

    def write_locked(self, handle: int | None, lines: Sequence[bytes]) -> None:
        """Append ``lines`` in one write (under :meth:`locked` ``exclusive``), then sync."""
        if handle is None or not lines:
            return
        size = os.fstat(handle).st_size
        # A line cut short (a crash, a full disk) stays a reported problem; never glue onto it.
        start = b"\n" if size and os.pread(handle, 1, size - 1) != b"\n" else b""
        data = start + b"".join(lines)
        written = os.write(handle, data)
        if written != len(data):
            os.ftruncate(handle, size)
            raise OSError(f"only {written} of {len(data)} bytes written to {self.path}")
        os.fsync(handle)


def _parse(number: int, raw: bytes, verifier: Verifier | None) -> Checkpoint | str:
    """A signed line, checked; or what is wrong with it."""
    try:
        record = json.loads(raw)
    except ValueError:
        return "not JSON"
    if not isinstance(record, dict) or not isinstance(record.get("signature"), str):
        return "not a signed checkpoint"
    statement = {k: v for k, v in record.items() if k != "signature"}
    kind, row_id, digest, rows, at = (
        statement.get(k) for k in ("kind", "row_id", "hash", "rows", "at")
    )
    try:
        signed_at = datetime.fromisoformat(at) if isinstance(at, str) else None
    except ValueError:
        signed_at = None
    if (
        kind not in _KINDS
        or not isinstance(row_id, int)
        or not isinstance(rows, int)
        or row_id < 1
        or rows < 1
        or not isinstance(digest, str)
        or len(digest) != 64
        or not set(digest) <= _HEX
        or signed_at is None
        or signed_at.tzinfo is None
    ):
        return "not a checkpoint (kind, row_id, hash, rows or at missing or malformed)"
    if verifier is None:
        return "no key to check it"
    if statement.get("key_id") != verifier.key_id:
        return f"signed by another key ({statement.get('key_id')!r}, expected {verifier.key_id!r})"
    if not verifier.verify(statement, record["signature"]):
        return f"the signature does not match: forged or altered ({kind} for row {row_id})"
    return Checkpoint(number, str(kind), row_id, digest, rows, signed_at)


def _signed_line(statement: dict[str, Any], signer: Signer) -> bytes:
    record = {**statement, "signature": signer.sign(statement)}
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"


class CheckpointWriter:
    """Signs checkpoints of one database's access log: at most ``every_rows`` rows and, while
    rows are added, ``every_seconds`` apart.

    A daemon thread per process (:meth:`start`) polls the newest row id every ``poll_seconds``
    in a snapshot (no writers' lock) and signs what is due under the file's exclusive lock,
    after reading the lines other processes added: two workers never sign the same rows, and
    the request path never waits for a signature or a disk flush.
    """

    def __init__(self, db: Database, settings: CheckpointSettings) -> None:
        self.db, self.settings = db, settings
        self.log = CheckpointLog(settings.path, key_path=settings.key_path)
        self._signer: Signer | None = None
        self._pid: int | None = None
        self._start_lock = threading.Lock()
        #: The newest row signed, and when: polls that find nothing due stop there.
        self._latest: tuple[int, float] | None = None

    def signer(self) -> Signer:
        if self._signer is None:
            self._signer = load_signer(self.settings.key_path)
        return self._signer

    def write_due(
        self, *, now: datetime | None = None, force: bool = False
    ) -> list[dict[str, Any]]:
        """Sign and append every checkpoint now due (``force``: also the newest row, however
        recent the last checkpoint); returns their statements."""
        self.signer()  # creates the key (and its public half) before the first read
        with self.log.locked(exclusive=True) as handle:
            return self.write_due_locked(handle, now=now, force=force)

    def write_due_locked(
        self, handle: int | None, *, now: datetime | None = None, force: bool = False
    ) -> list[dict[str, Any]]:
        signer = self.signer()
        read = self.log.read_locked(handle, fresh=False)
        base = read.latest
        base_id, base_rows = (base.row_id, base.rows) if base else (0, 0)
        when = now or datetime.now(UTC)
        statements = []
        table = AccessLogRow.__table__.c
        with self.db.snapshot() as connection:
            newest = connection.execute(
                select(table.id, table.hash).order_by(table.id.desc()).limit(1)
            ).first()
            if newest is not None and newest.id < base_id:
                log.error(
                    "the access log ends at row %s, before the latest signed checkpoint (row %s):"
                    " run 'outreach access-log verify'",
                    newest.id,
                    base_id,
                )
            pending = 0
            if newest is not None and newest.id > base_id:
                pending = (
                    connection.scalar(
                        select(func.count()).where(table.id > base_id, table.id <= newest.id)
                    )
                    or 0
                )
            while pending >= self.settings.every_rows:
                row = connection.execute(
                    select(table.id, table.hash)
                    .where(table.id > base_id)
                    .order_by(table.id)
                    .offset(self.settings.every_rows - 1)
                    .limit(1)
                ).one()
                base_id, base_rows = row.id, base_rows + self.settings.every_rows
                pending -= self.settings.every_rows
                statements.append(
                    _statement("checkpoint", base_id, row.hash, base_rows, when, signer)
                )
            last_at = when if statements else (base.at if base else None)
            stale = (
                last_at is None or (when - last_at).total_seconds() >= self.settings.every_seconds
            )
            if newest is not None and pending and (force or stale):
                base_id, base_rows = newest.id, base_rows + pending
                statements.append(
                    _statement("checkpoint", base_id, newest.hash, base_rows, when, signer)
                )
        self.log.write_locked(handle, [_signed_line(s, signer) for s in statements])
        if statements:
            self._latest = (base_id, when.timestamp())
        elif base is not None and base.at is not None:
            self._latest = (base.row_id, base.at.timestamp())
        return statements

    def poll(self) -> None:
        """One round of the background thread: sign what is due, if anything may be."""
        table = AccessLogRow.__table__.c
        with self.db.snapshot() as connection:
            newest = connection.scalar(select(func.max(table.id)))
        latest = self._latest
        if newest is None or (latest is not None and newest <= latest[0]):
            return
        if (
            latest is not None
            and newest - latest[0] < self.settings.every_rows
            and time.time() - latest[1] < self.settings.every_seconds
        ):
            return
        self.write_due()

    def start(self) -> None:
        """Run :meth:`poll` in a daemon thread of this process (once per process; again after
        a fork). The thread ends with the writer."""
        if self._pid == os.getpid():
            return
        with self._start_lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
        threading.Thread(
            target=_sign_checkpoints,
            args=(weakref.ref(self), self.settings.poll_seconds),
            name="access-log-signed-checkpoints",
            daemon=True,
        ).start()


def _statement(
    kind: str, row_id: int, digest: str, rows: int, at: datetime, signer: Signer, **extra: Any
) -> dict[str, Any]:
    return {
        "kind": kind,
        "row_id": row_id,
        "hash": digest,
        "rows": rows,
        "at": at.astimezone(UTC).isoformat(timespec="seconds"),
        "key_id": signer.verifier.key_id,
        **extra,
    }


def _sign_checkpoints(writer: weakref.ref[CheckpointWriter], every: float) -> None:
    while True:
        time.sleep(every)
        found = writer()
        if found is None:
            return
        try:
            found.poll()
        except (OSError, ValueError, SQLAlchemyError, OutreachError) as err:
            log.warning("access-log checkpoint not written (retried next round): %s", err)
        del found  # hold only the weak reference between rounds


_APPS_LOCK = threading.Lock()


def for_app(app: Flask) -> CheckpointWriter:
    """The app's checkpoint writer, its settings resolved once from the app's config and the
    environment (:meth:`CheckpointSettings.resolve`)."""
    found: CheckpointWriter | None = app.extensions.get("outreach.access_log_checkpoints")
    if found is not None:
        return found
    with _APPS_LOCK:
        found = app.extensions.get("outreach.access_log_checkpoints")
        if found is None:
            db: Database = app.extensions["outreach.db"]
            settings = CheckpointSettings.resolve(
                app.extensions["outreach.home"], db, os.environ, app.config
            )
            found = app.extensions["outreach.access_log_checkpoints"] = CheckpointWriter(
                db, settings
            )
    return found


def _signing_in_background() -> None:
    """After an append in a request: make sure this process signs the app's checkpoints."""
    if has_app_context() and "outreach.home" in current_app.extensions:
        for_app(current_app).start()


# --------------------------------------------------------------------------------- retention


@dataclass(frozen=True)
class Purge:
    """What a purge did: rows up to ``up_to`` removed, or nothing (``up_to`` is ``None``)."""

    up_to: int | None
    removed: int = 0
    #: The purge's own row in the access log.
    record: int | None = None
    before: date | None = None


def purge(
    writer: CheckpointWriter,
    *,
    before: date,
    min_days: int,
    by: str,
    now: datetime | None = None,
) -> Purge:
    """Remove whole old segments of the log: every row up to the newest signed checkpoint
    signed before ``before`` (UTC), if that day is at least ``min_days`` ago.

    The log is verified first; a signed anchor ("purged up to row X with hash H") is appended to
    the checkpoint file so that :func:`verify` starts there; the rows are deleted (the SQLite
    triggers dropped and re-created from their stored text in the same transaction) and the
    purge writes its own row (action ``purge``), then a checkpoint that signs it.

    Raises
    ------
    PurgeRefusedError
        If ``before`` is later than ``min_days`` ago.
    AccessLogBrokenError
        If the log does not verify (nothing is purged).
    """
    when = now or datetime.now(UTC)
    latest_allowed = when.date() - timedelta(days=min_days)
    if before > latest_allowed:
        raise PurgeRefusedError(
            f"refusing to purge access-log rows up to {before}: rows are kept at least "
            f"{min_days} days ({MIN_DAYS_ENV}), so --before may be {latest_allowed} at the latest"
        )
    checked = verify(writer.db, checkpoints=writer.log)
    if not checked.ok:
        raise AccessLogBrokenError(
            f"the access log does not verify, so nothing is purged: {checked.describe()}"
        )
    cutoff = datetime.combine(before, datetime.min.time(), UTC)
    signer = writer.signer()
    with writer.log.locked(exclusive=True) as handle:
        read = writer.log.read_locked(handle, fresh=True)
        anchor = read.anchor
        start = anchor.row_id if anchor else 0
        if read.problems or start != (checked.purged_to or 0):
            raise AccessLogBrokenError(
                "the checkpoint file changed while the purge checked it; run the purge again"
            )
        end = checked.last[0] if checked.last else start
        due = [
            e
            for e in read.entries
            if e.kind == "checkpoint"
            and e.at is not None
            and e.at < cutoff
            and start < e.row_id <= end
        ]
        if not due:
            return Purge(None, before=before)
        point = max(due, key=lambda e: e.row_id)
        table = AccessLogRow.__table__
        with writer.db.transaction() as connection:  # the writers' lock: rows are appended after
            if (
                connection.scalar(select(table.c.hash).where(table.c.id == point.row_id))
                != point.hash
            ):
                raise AccessLogBrokenError(
                    f"row {point.row_id} no longer matches {point.describe()}; nothing is purged"
                )
            try:
                removed, record = _delete_segment(connection, writer.db, point.row_id, by=by)
            except SQLAlchemyError as err:
                raise OutreachError(
                    f"the database refused the purge, nothing was removed: {err}. On PostgreSQL "
                    "run it as the role that may delete from access_log (README, Access log)"
                ) from err
            statement = _statement(
                "purge",
                point.row_id,
                point.hash,
                point.rows,
                when,
                signer,
                removed=removed,
                before=before.isoformat(),
                by=by,
            )
            # Signed before the commit, while readers of the file wait: no check ever sees the
            # rows gone without the anchor. Should the commit fail, the log still verifies from
            # the anchor (the rows up to it are still there, and skipped).
            writer.log.write_locked(handle, [_signed_line(statement, signer)])
        writer.write_due_locked(handle, now=when, force=True)  # sign the purge's own row
    return Purge(point.row_id, removed, record, before)


def _delete_segment(
    connection: Connection, db: Database, up_to: int, *, by: str
) -> tuple[int, int]:
    """Delete rows up to ``up_to`` and append the purge's own row; returns (removed, its id).

    On SQLite the append-only triggers are dropped and re-created from their stored text inside
    this transaction, so no other connection sees the table unguarded.
    """
    triggers: Sequence[Any] = ()
    if db.url.startswith("sqlite"):
        triggers = connection.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'access_log'"
        ).all()
    for name, _ in triggers:
        connection.exec_driver_sql(f'DROP TRIGGER "{name}"')
    removed = connection.execute(delete(AccessLogRow).where(AccessLogRow.id <= up_to)).rowcount
    for _, sql in triggers:
        connection.exec_driver_sql(sql)
    append(
        connection,
        user=by,
        role="admin",
        action="purge",
        purpose="retention",
        subject_ids=[],
        model_version="",
        request_id=f"purge-to-{up_to}",
    )
    return removed, int(connection.scalar(select(func.max(AccessLogRow.id))) or 0)
