"""Batch scoring: a period's population scored with reasons, its outreach queue written at once.

The queue for the period is replaced in one transaction: a crash or a bad file leaves the
previous queue exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import delete, select

from model.data import ordinal_to_period, parse_periods
from model.errors import DataValidationError
from service.db import Database, OptOut, Outcome, QueueEntry
from service.loader import Serving

CHUNK = 100_000


@dataclass(frozen=True)
class BatchResult:
    period: str
    scored: int
    queued: int
    opted_out: int


def _period_rows(
    frame: pd.DataFrame, serving: Serving, period: str | None
) -> tuple[str, pd.DataFrame]:
    model = serving.model
    missing = [c for c in (model.id_column, model.time_column) if c not in frame.columns]
    if missing:
        raise DataValidationError(
            "the data cannot be scored", details=[f"missing columns: {', '.join(missing)}"]
        )
    problems, ordinals = parse_periods(frame[model.time_column], model.time_column)
    if problems or ordinals is None:
        raise DataValidationError("the data cannot be scored", details=problems)
    labels = [ordinal_to_period(int(o)) for o in np.unique(ordinals)]  # sorted by time
    chosen = period or labels[-1]
    if chosen not in labels:
        raise DataValidationError(
            f"no rows for period {chosen}", details=[f"periods present: {', '.join(labels[-12:])}"]
        )
    ordinal = int(pd.Period(chosen, freq="M").ordinal)
    rows = frame.loc[ordinals == ordinal].reset_index(drop=True)
    ids = rows[model.id_column].astype(str)
    if ids.duplicated().any():
        raise DataValidationError(f"duplicate {model.id_column} values in period {chosen}")
    return chosen, rows


def score_period(
    db: Database,
    serving: Serving,
    frame: pd.DataFrame,
    *,
    period: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> BatchResult:
    """Score one period (default: the latest) and replace its queue in one transaction."""
    model = serving.model
    chosen, rows = _period_rows(frame, serving, period)
    scores = np.empty(len(rows))
    top_reasons: list[list[dict[str, object]]] = []
    k = model.k_for(len(rows))
    # Score everything in chunks (validation included), keep scores; reasons only for the queue.
    batches = []
    for start in range(0, len(rows), CHUNK):
        chunk = rows.iloc[start : start + CHUNK]
        batch = model.score_frame(chunk)
        scores[start : start + len(chunk)] = batch.scores
        batches.append((start, batch))
        progress(f"scored {min(start + CHUNK, len(rows)):,} of {len(rows):,} records")
    ids = rows[model.id_column].astype(str).to_numpy()
    with db.session() as session:
        opted = set(session.scalars(select(OptOut.person_id)))
    eligible = np.array([i not in opted for i in ids])
    order = np.lexsort((ids, -scores))
    chosen_rows = [i for i in order if eligible[i]][:k]
    entries = []
    for rank, i in enumerate(chosen_rows, start=1):
        start, batch = batches[i // CHUNK]
        local = i - start
        reasons = [r.to_dict() for r in model.reasons(batch, local)]
        top_reasons.append(reasons)
        entries.append(
            QueueEntry(
                model_name=serving.name,
                model_version=serving.version,
                audit_id=serving.audit_id,
                period=chosen,
                person_id=ids[i],
                rank=rank,
                score=float(scores[i]),
                percentile=float(batch.percentiles[local]),
                band=str(batch.bands[local]),
                reasons=reasons,
            )
        )
    with db.session() as session:
        existing = {
            e.person_id: e
            for e in session.scalars(
                select(QueueEntry).where(
                    QueueEntry.model_name == serving.name, QueueEntry.period == chosen
                )
            )
        }
        with_outcomes = set(
            session.scalars(
                select(Outcome.entry_id).where(
                    Outcome.entry_id.in_([e.id for e in existing.values()])
                )
            )
        )
        fresh = {e.person_id for e in entries}
        for person, old in existing.items():
            if person in fresh:
                continue
            if old.id in with_outcomes:
                old.rank = 0  # off the list, kept because its outcomes refer to it
            else:
                session.execute(delete(QueueEntry).where(QueueEntry.id == old.id))
        for entry in entries:
            previous = existing.get(entry.person_id)
            if previous is None:
                session.add(entry)
                continue
            for field in (
                "model_version",
                "audit_id",
                "rank",
                "score",
                "percentile",
                "band",
                "reasons",
            ):
                setattr(previous, field, getattr(entry, field))
    progress(f"wrote {len(entries):,} queue entries for {chosen}")
    return BatchResult(chosen, len(rows), len(entries), int((~eligible).sum()))
