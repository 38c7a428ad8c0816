"""The outreach queue as both the API and the pages read it: who is on a period's list, and
each person's latest recorded outcome."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, select

from service.db import OptOut, Outcome, QueueEntry


def on_list(name: str, period: str) -> list[ColumnElement[bool]]:
    """Conditions for the entries on ``period``'s list: within capacity, not opted out."""
    return [
        QueueEntry.model_name == name,
        QueueEntry.period == period,
        QueueEntry.rank > 0,
        QueueEntry.person_id.not_in(select(OptOut.person_id)),
    ]


def latest_outcomes(name: str) -> Any:
    """Each person's latest recorded outcome id (``person_id``, ``last_id``), whichever month's
    list it was recorded on, so someone who declined last month does not look untouched now."""
    return (
        select(QueueEntry.person_id, func.max(Outcome.id).label("last_id"))
        .join(QueueEntry, QueueEntry.id == Outcome.entry_id)
        .where(QueueEntry.model_name == name)
        .group_by(QueueEntry.person_id)
        .subquery()
    )
