"""Verifying the access log: a snapshot of the rows walked against the chain and the signed
checkpoints, and a :class:`Verification` that names what it found.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from store.access_log.chain import GENESIS, HASHED, fields_hash
from store.access_log.checkpoints import (
    APPEND_ONLY_TRIGGERS,
    Checkpoint,
    CheckpointLog,
    CheckpointRead,
)
from store.db import AccessLogRow, Database

#: Migration 0010: the head advanced at every insert, which may only move forward.
HEAD_TRIGGERS = (
    "access_log_head_advance",
    "access_log_head_no_rewind",
    "access_log_head_no_delete",
)
#: On PostgreSQL migration 0012 adds the refusals (0010 the advance) and refuses TRUNCATE too.
PG_HEAD_TRIGGERS = (*HEAD_TRIGGERS, "access_log_head_no_truncate")


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
    # Closed on every way out: on PostgreSQL the rows come through a server-side cursor that
    # would otherwise stay open after an early return (a broken row).
    with connection.execution_options(yield_per=2000).execute(
        select(table.id, table.previous_hash, table.hash, *(table[name] for name in HASHED))
        .where(table.id > start_id)
        .order_by(table.id)
    ) as rows:
        # Plain tuples: a row's attribute lookups would cost more than hashing it.
        for row_id, linked, digest, *values in rows:
            count += 1
            position += 1
            if linked != previous:
                return result(row_id, _link_broken(count == 1 and last is None, anchor))
            if fields_hash(previous, dict(zip(HASHED, values, strict=True))) != digest:
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
    head = _head(connection)
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
    if head is not None:
        end = last[0] if last is not None else start_id
        head_id, head_hash, written = head
        if head_id > end or written > position:
            gone = written - position
            counted = f"{gone} row{'s' if gone != 1 else ''}" if gone > 0 else "rows"
            return result(
                end + 1,
                f"the log ends at row {end} (row {position} written), but the database's head "
                f"(advanced at every write) names row {head_id} (row {written} written): "
                f"{counted} {'was' if gone == 1 else 'were'} removed",
            )
        if head_id == end and last is not None and head_hash != last[1]:
            return result(end, "it is not the row the database's head recorded when it was written")
        if head_id < end:
            problems.append(
                f"rows after row {head_id} were written without advancing the database's head "
                "(its trigger was dropped)"
            )
    return result()


def _head(connection: Connection) -> tuple[int, str, int] | None:
    """The newest row as the database recorded it at its write, and how many rows were
    written (``access_log_head``)."""
    found = connection.exec_driver_sql("SELECT row_id, hash, rows FROM access_log_head").first()
    return (int(found[0]), str(found[1]), int(found[2])) if found is not None else None


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
        # PostgreSQL: the role's grants keep the table append-only (docs); the head's triggers
        # (migrations 0010 and 0012) hold whoever connects.
        names = set(
            connection.exec_driver_sql(
                "SELECT tgname FROM pg_catalog.pg_trigger WHERE NOT tgisinternal "
                "AND tgrelid IN ('access_log'::regclass, 'access_log_head'::regclass)"
            ).scalars()
        )
        head = [name for name in PG_HEAD_TRIGGERS if name not in names]
        return [_head_triggers_missing(head, "0010 and 0012 create them")] if head else []
    names = set(
        connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' "
            "AND tbl_name IN ('access_log', 'access_log_head')"
        ).scalars()
    )
    missing = [name for name in APPEND_ONLY_TRIGGERS if name not in names]
    found = []
    if missing:
        found.append(
            f"the append-only triggers {', '.join(missing)} on access_log are missing: rows can "
            "be changed or deleted (migration 0003 creates them; only a purge drops them, in its "
            "own transaction)"
        )
    head = [name for name in HEAD_TRIGGERS if name not in names]
    if head:
        found.append(_head_triggers_missing(head, "0010 creates them"))
    return found


def _head_triggers_missing(names: list[str], migrations: str) -> str:
    return (
        f"the head triggers {', '.join(names)} are missing: the newest rows could be removed "
        f"unseen between checkpoints (migration {migrations})"
    )


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
