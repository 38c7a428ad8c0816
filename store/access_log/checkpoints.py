"""Signed checkpoints: (row id, hash, position, time) statements signed with Ed25519
(:mod:`kernel.signing`) into a JSON-lines file outside the database, so that a removed tail or a
log rewritten and re-chained shows. :class:`CheckpointWriter` signs them off the request path;
:class:`CheckpointLog` reads and checks the file; :func:`for_app` gives an app its writer.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, current_app, has_app_context
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from kernel.errors import BadInputError, OutreachError
from kernel.home import Home
from kernel.settings import current
from kernel.signing import Signer, Verifier, load_signer, load_verifier
from store.db import AccessLogRow, Database

log = logging.getLogger("outreach.service")

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


def signed_line(statement: dict[str, Any], signer: Signer) -> bytes:
    """One line of the checkpoint file: ``statement`` with its signature, as canonical JSON."""
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
                    checkpoint_statement("checkpoint", base_id, row.hash, base_rows, when, signer)
                )
            last_at = when if statements else (base.at if base else None)
            stale = (
                last_at is None or (when - last_at).total_seconds() >= self.settings.every_seconds
            )
            if newest is not None and pending and (force or stale):
                base_id, base_rows = newest.id, base_rows + pending
                statements.append(
                    checkpoint_statement(
                        "checkpoint", base_id, newest.hash, base_rows, when, signer
                    )
                )
        self.log.write_locked(handle, [signed_line(s, signer) for s in statements])
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


def checkpoint_statement(
    kind: str, row_id: int, digest: str, rows: int, at: datetime, signer: Signer, **extra: Any
) -> dict[str, Any]:
    """A statement to sign: the ``kind`` ("checkpoint" or "purge"), the row id, its hash, the rows
    up to it, the time and the signing key, with any ``extra`` fields."""
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
                app.extensions["outreach.home"], db, current().environment, app.config
            )
            found = app.extensions["outreach.access_log_checkpoints"] = CheckpointWriter(
                db, settings
            )
    return found


def sign_in_background() -> None:
    """After an append in a request: make sure this process signs the app's checkpoints (in a
    daemon thread, started once)."""
    if has_app_context() and "outreach.home" in current_app.extensions:
        for_app(current_app).start()
