"""The demo's months after release: outreach outcomes and the labels that come back.

Only ``outreach demo`` uses this. It stands in for what coordinators and months of waiting would
bring, so that the monitoring page has something true to show:

- **outcomes**, recorded through the same rule a coordinator's page uses
  (:func:`store.queue.record_outcome_batch`, access log included), by simple documented rules: a
  person with more address changes is harder to reach; a reached person accepts help with
  probability ``ACCEPT``, declines with ``DECLINE``, else the contact is still open;
- **labels** from the synthetic population's ground truth (``label.truth_column``), where help
  that was accepted prevents the crisis with probability ``PREVENTED``: the programme works, as a
  real one would hope to, which the evaluation arm can then measure.

Everything is seeded: the same demo gives the same months.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import select

from store.accounts import Principal
from store.db import Database, QueueEntry
from store.queue import Caller, record_outcome_batch

ACCEPT = 0.6
DECLINE = 0.25
PREVENTED = 0.5
BASE_UNREACHABLE = 0.12
UNREACHABLE_PER_MOVE = 0.06


@dataclass(frozen=True)
class SimulatedMonth:
    period: str
    offered: int
    reached: int
    accepted: int


def record_outcomes(
    db: Database,
    *,
    model: str,
    period: str,
    rows: pd.DataFrame,
    id_column: str,
    coordinator: str,
    seed: int,
) -> tuple[SimulatedMonth, set[str]]:
    """Record one outcome for every entry on the period's list; returns who accepted help.

    ``rows`` is the period's population (for each person's address changes).
    """
    rng = np.random.default_rng(seed)
    moves = (
        rows.set_index(rows[id_column].astype(str))["address_changes_12m"]
        if "address_changes_12m" in rows.columns
        else pd.Series(dtype=float)
    )
    with db.session() as session:
        entries = session.execute(
            select(QueueEntry.id, QueueEntry.person_id)
            .where(QueueEntry.model_name == model, QueueEntry.period == period, QueueEntry.rank > 0)
            .order_by(QueueEntry.rank)
        ).all()
    caller = Caller(
        Principal(coordinator, "coordinator", frozenset({"*"})), f"demo-{period}", model
    )
    accepted: set[str] = set()
    recorded: list[tuple[int, str, str]] = []
    reached = 0
    for entry_id, person in entries:
        changes = float(moves.get(person, 0) or 0)
        unreachable = min(0.6, BASE_UNREACHABLE + UNREACHABLE_PER_MOVE * changes)
        draw = rng.random(2)
        if draw[0] < unreachable:
            status = "unreachable"
        else:
            reached += 1
            status = (
                "accepted"
                if draw[1] < ACCEPT
                else "declined"
                if draw[1] < ACCEPT + DECLINE
                else "contacted"
            )
        if status == "accepted":
            accepted.add(person)
        recorded.append((entry_id, status, "recorded by the demo's rules"))
    record_outcome_batch(db, caller, recorded)  # one transaction, one access-log row each
    return SimulatedMonth(period, len(entries), reached, len(accepted)), accepted


def labels_after_help(
    rows: pd.DataFrame,
    *,
    id_column: str,
    time_column: str,
    label_column: str,
    truth_column: str,
    accepted: set[str],
    seed: int,
) -> pd.DataFrame:
    """The labels file for a period: the ground truth, with crises that accepted help
    prevented (each with probability ``PREVENTED``) taken out."""
    rng = np.random.default_rng(seed)
    ids = rows[id_column].astype(str).to_numpy()
    truth = rows[truth_column].to_numpy(dtype=np.int8).copy()
    helped = np.isin(ids, list(accepted)) & (truth == 1)
    truth[helped & (rng.random(len(ids)) < PREVENTED)] = 0
    return pd.DataFrame(
        {
            id_column: ids,
            time_column: rows[time_column].astype(str).to_numpy(),
            label_column: truth,
        }
    )
