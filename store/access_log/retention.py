"""Retention: purging whole old segments of the access log up to a signed checkpoint, and
signing the anchor the chain is verified from afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from kernel.errors import OutreachError
from lifecycle.freeze import ensure_not_frozen
from lifecycle.statements import Trust
from store.access_log.chain import append
from store.access_log.checkpoints import (
    MIN_DAYS_ENV,
    AccessLogBrokenError,
    CheckpointWriter,
    PurgeRefusedError,
    checkpoint_statement,
    signed_line,
)
from store.access_log.verification import verify
from store.db import AccessLogRow, Database


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
    incidents: Trust | None = None,
) -> Purge:
    """Remove whole old segments of the log: every row up to the newest signed checkpoint
    signed before ``before`` (UTC), if that day is at least ``min_days`` ago.

    The log is verified first; a signed anchor ("purged up to row X with hash H") is appended to
    the checkpoint file so that :func:`verify` starts there; the rows are deleted (the SQLite
    triggers dropped and re-created from their stored text in the same transaction) and the
    purge writes its own row (action ``purge``), then a checkpoint that signs it.

    ``incidents``: the deployment's trust (the command line's, with its anchors); while an
    incident freeze is in force in it, nothing is purged, so the evidence is kept.

    Raises
    ------
    FrozenError
        If an incident freeze is in force.
    PurgeRefusedError
        If ``before`` is later than ``min_days`` ago.
    AccessLogBrokenError
        If the log does not verify (nothing is purged).
    """
    if incidents is not None:
        ensure_not_frozen(incidents, None, "purge")
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
                    "run it as the role that may delete from access_log (the grants in "
                    "docs/postgres-mlflow-spark.md)"
                ) from err
            statement = checkpoint_statement(
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
            writer.log.write_locked(handle, [signed_line(statement, signer)])
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
    # The purge's own row first: it follows the newest row, which is still there even when the
    # whole log is purged (appended after the delete it would start a new chain from genesis).
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
    for name, _ in triggers:
        connection.exec_driver_sql(f'DROP TRIGGER "{name}"')
    removed = connection.execute(delete(AccessLogRow).where(AccessLogRow.id <= up_to)).rowcount
    for _, sql in triggers:
        connection.exec_driver_sql(sql)
    return removed, int(connection.scalar(select(func.max(AccessLogRow.id))) or 0)
