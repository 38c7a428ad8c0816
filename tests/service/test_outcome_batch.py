"""Outcomes recorded in one transaction (the demo's months after release): the same outcomes and
access-log rows as recording them one at a time, refusals included."""

from __future__ import annotations

from itertools import cycle
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from kernel.errors import NotFoundError
from store.access_log import verify
from store.accounts import Principal
from store.db import AccessLogRow, Database, Outcome, QueueEntry
from store.queue import OUTCOMES, Caller, record_outcome, record_outcome_batch
from tests.support.homes import Site, copy_site


def _written(db: Database) -> dict[str, list[Any]]:
    with db.session() as session:
        outcomes = session.scalars(select(Outcome).order_by(Outcome.id)).all()
        rows = session.scalars(select(AccessLogRow).order_by(AccessLogRow.id)).all()
        return {
            "outcomes": [(o.entry_id, o.status, o.note, o.recorded_by) for o in outcomes],
            "log": [
                (r.user, r.role, r.action, list(r.subject_ids), r.model_version, r.allowed)
                for r in rows
            ],
        }


def _copies(site: Site, folder: Path) -> tuple[Database, Database, Caller, list[int]]:
    one = Database(copy_site(site, folder / "one").database_url)
    batch = Database(copy_site(site, folder / "batch").database_url)
    with one.session() as session:
        model = session.scalars(select(QueueEntry.model_name).where(QueueEntry.rank > 0)).first()
        entries = session.scalars(
            select(QueueEntry.id)
            .where(QueueEntry.model_name == model, QueueEntry.rank > 0)
            .order_by(QueueEntry.id)
            .limit(6)
        ).all()
    assert model is not None and len(entries) == 6
    caller = Caller(Principal("coordinator-user", "coordinator", frozenset({"*"})), "r-1", model)
    return one, batch, caller, list(entries)


def test_a_batch_is_recorded_as_one_outcome_at_a_time(memory_site: Site, tmp_path: Path) -> None:
    one, batch, caller, entries = _copies(memory_site, tmp_path)
    items = [(e, s, f"note {i}") for i, (e, s) in enumerate(zip(entries, cycle(OUTCOMES)))]
    before = len(_written(batch)["outcomes"])
    alone = [record_outcome(one, caller, *item) for item in items]
    together = record_outcome_batch(batch, caller, items)
    assert [(r.entry_id, r.person_id, r.status) for r in together] == [
        (r.entry_id, r.person_id, r.status) for r in alone
    ]
    written = _written(batch)
    assert len(written["outcomes"]) == before + 6
    assert written == _written(one)
    assert verify(batch).ok


def test_a_refusal_in_a_batch_is_kept_and_raised_as_one_at_a_time(
    memory_site: Site, tmp_path: Path
) -> None:
    one, batch, caller, entries = _copies(memory_site, tmp_path)
    items = [(entries[0], "contacted", ""), (10**6, "accepted", ""), (entries[1], "declined", "")]
    record_outcome(one, caller, *items[0])
    with pytest.raises(NotFoundError):
        record_outcome(one, caller, *items[1])
    with pytest.raises(NotFoundError):
        record_outcome_batch(batch, caller, items)
    written = _written(batch)
    assert written == _written(one)
    assert written["log"][-1][-1] is False  # the refusal is in the log
    assert verify(batch).ok
