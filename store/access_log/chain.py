"""The hash chain: appending access-log rows, each hash covering its content and the previous
row's hash.

:func:`append` adds a row inside a caller's transaction; :class:`SqliteAppender` does the same on a
plain ``sqlite3`` connection for the per-response path, with its WAL checkpoints taken by a
daemon thread; :func:`retrying` runs an appending transaction until it commits or raises
:class:`AccessLogUnavailableError`.
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import current_app, has_app_context
from sqlalchemy import insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from kernel.errors import UnavailableError
from store.access_log.checkpoints import sign_in_background
from store.db import AccessLogRow, Database

T = TypeVar("T")

GENESIS = "0" * 64
CHECKPOINT_SECONDS = 0.5
WAL_FRAMES = 10_000  # pages (about 40 MB) before the log is started over

log = logging.getLogger("outreach.service")
ATTEMPTS = 20


class AccessLogUnavailableError(UnavailableError):
    """The access-log row could not be written, so no personal data may be shown."""

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
    _count_failure()
    raise AccessLogUnavailableError(
        "the access log cannot be written, so no personal data is shown"
    )


def _count_failure() -> None:
    """Count the unwritten row in the app's metrics, when there is an app."""
    metrics = current_app.extensions.get("outreach.metrics") if has_app_context() else None
    if metrics is not None:
        metrics.access_log_failures.inc()


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


def fields_hash(previous: str, fields: dict[str, object]) -> str:
    """The chain hash of a row's hashed ``fields`` (canonical JSON) after the ``previous`` hash."""
    return hashlib.sha256((previous + _CANONICAL.encode(fields)).encode()).hexdigest()


def row_hash(previous: str, row: Any) -> str:
    """The hash a row (an :class:`AccessLogRow` or a result row) must have after ``previous``."""
    return fields_hash(previous, _fields(row))


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


#: The PostgreSQL advisory lock every access-log append takes (an arbitrary, fixed key).
APPEND_LOCK = 0x6F7574726561  # "outrea"


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
    bind = session.get_bind() if isinstance(session, Session) else session
    if bind.dialect.name == "postgresql":
        # Appenders queue on one transaction-scoped lock (released at commit or rollback)
        # instead of racing for the same previous row and retrying.
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK})
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
    digest = fields_hash(previous, fields)
    # A core insert (no ORM unit of work): this runs before every response with personal data.
    session.execute(insert(AccessLogRow), [{**fields, "previous_hash": previous, "hash": digest}])
    sign_in_background()
    return digest


_COLUMNS = (*HASHED, "previous_hash", "hash")
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
                digest = fields_hash(previous, fields)
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
        sign_in_background()
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
    try:
        connection = found._connect()
    except sqlite3.Error as err:  # the database went away (or broke) before the first round
        log.warning("access-log checkpoints not started: %s", err)
        return
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
