"""Attestation log heads anchored in the service database, and the alarms a log raises.

:class:`DatabaseAnchors` is the service's :class:`lifecycle.version_state.Anchors`: the head each
model's attestation log was last verified at, kept in the append-only ``attestation_heads``
table (migration 0008), where an edit of the log file cannot reach it. Reads take no writer's
lock (a snapshot); a row is written only when a head grows, an alarm is raised, or a person
repairs a log. An alarm stays open until a repair row follows it: nothing recovers silently.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import SQLAlchemyError

from kernel.errors import UnavailableError
from lifecycle.version_state import Anchor
from store.db import AttestationHead, Database, utcnow

log = logging.getLogger("outreach.service")

#: The ``detail`` column keeps this much of an alarm's words.
DETAIL_LENGTH = 4000


class DatabaseAnchors:
    """Heads and alarms of every model's attestation log in one service database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._local = threading.local()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Queue this thread's writes until the block ends: for a caller inside its own
        transaction on the same database (a decision recorded with its signing), whose lock a
        second transaction would wait for forever."""
        queue: list[dict[str, Any]] = []
        self._local.queue = queue
        try:
            yield
        finally:
            self._local.queue = None
            for row in queue:
                self._write(row)

    def latest(self, name: str) -> tuple[Anchor | None, str]:
        """The anchored head (the longest since the last repair, or the repair's) and the open
        alarm's words ('' when none).

        Raises
        ------
        UnavailableError
            If the database cannot be read (the log then cannot be checked).
        """
        table = AttestationHead.__table__.c
        try:
            with self.db.snapshot() as connection:
                rows = connection.execute(
                    select(table.kind, table.sequence, table.hash, table.key_id, table.detail)
                    .where(table.model == name)
                    .order_by(table.id)
                ).all()
        except SQLAlchemyError as err:
            # Without the anchored head the log cannot be checked: nothing is vouched for.
            raise UnavailableError(
                f"the anchored head of {name}'s attestation log cannot be read: {err}"
            ) from err
        head: Anchor | None = None
        alarm = ""
        for kind, sequence, digest, key_id, detail in rows:
            if kind == "repair":
                head, alarm = Anchor(sequence, digest, key_id), ""
            elif kind == "alarm":
                alarm = detail
            elif kind == "head" and (head is None or sequence > head.sequence):
                head = Anchor(sequence, digest, key_id)
        return head, alarm

    def record(self, name: str, anchor: Anchor) -> None:
        self._add(name, "head", anchor, detail="", by="")

    def alarm(self, name: str, problems: str) -> None:
        log.error("ALARM: the attestation log of %s does not verify: %s", name, problems)
        self._add(name, "alarm", Anchor(0, "", ""), detail=problems[:DETAIL_LENGTH], by="")

    def repair(self, name: str, anchor: Anchor, *, by: str, note: str) -> None:
        self._add(name, "repair", anchor, detail=note[:DETAIL_LENGTH], by=by[:120])
        log.warning(
            "the attestation log of %s was repaired by %s at statement %s: %s",
            name,
            by,
            anchor.sequence,
            note,
        )

    def _add(self, name: str, kind: str, anchor: Anchor, *, detail: str, by: str) -> None:
        row: dict[str, Any] = {
            "model": name,
            "kind": kind,
            "sequence": anchor.sequence,
            "hash": anchor.hash,
            "key_id": anchor.key_id,
            "detail": detail,
            "by": by,
            "at": utcnow(),
        }
        queue = getattr(self._local, "queue", None)
        if queue is not None:
            queue.append(row)
            return
        self._write(row)

    def _write(self, row: dict[str, Any]) -> None:
        try:
            with self.db.transaction() as connection:
                connection.execute(insert(AttestationHead), [row])
        except SQLAlchemyError as err:
            # An alarm that cannot be recorded still stops serving (the state says so); a head
            # not anchored now is anchored at the next poll.
            log.error("the attestation head of %s could not be recorded: %s", row["model"], err)
