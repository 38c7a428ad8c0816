"""Batch scoring: a period's population scored with reasons, its outreach queue written at once.

The queue for the period is replaced in one transaction: a crash or a bad file leaves the
previous queue exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from model.data import ordinal_to_period, parse_periods
from model.errors import DataValidationError
from service.db import Database, EntryGroup, OptOut, Outcome, PeriodGroup, QueueEntry
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
    attributes: Sequence[str] = (),
    progress: Callable[[str], None] = lambda _: None,
) -> BatchResult:
    """Score one period (default: the latest) and replace its queue in one transaction.

    ``attributes``: sensitive attributes (columns of ``frame``) whose group counts are kept for
    monitoring, in the same transaction: per group, how many were scored and how many queued,
    and each queued entry's group for outcome aggregates. They are never model inputs.
    """
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
    area_column = model.area_column
    areas = rows[area_column].astype(str).to_numpy() if area_column in rows.columns else None
    groups = {a: rows[a].astype(str).to_numpy() for a in attributes if a in rows.columns}
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
                reason_features=",".join(str(r["feature"]) for r in reasons)[:400],
                area=None if areas is None else areas[i],
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
        stored: list[QueueEntry] = []
        for entry in entries:
            previous = existing.get(entry.person_id)
            if previous is None:
                session.add(entry)
                stored.append(entry)
                continue
            for field in (
                "model_version",
                "audit_id",
                "rank",
                "score",
                "percentile",
                "band",
                "reasons",
                "reason_features",
                "area",
            ):
                setattr(previous, field, getattr(entry, field))
            stored.append(previous)
        session.flush()
        _record_groups(session, serving.name, chosen, groups, chosen_rows, stored)
    progress(f"wrote {len(entries):,} queue entries for {chosen}")
    return BatchResult(chosen, len(rows), len(entries), int((~eligible).sum()))


def _record_groups(
    session: Session,
    name: str,
    period: str,
    groups: dict[str, np.ndarray],
    chosen_rows: list[int],
    stored: list[QueueEntry],
) -> None:
    """Replace the period's group counts and the queued entries' groups (monitoring only)."""
    session.execute(
        delete(PeriodGroup).where(PeriodGroup.model_name == name, PeriodGroup.period == period)
    )
    ids = [e.id for e in stored]
    if ids:
        session.execute(delete(EntryGroup).where(EntryGroup.entry_id.in_(ids)))
    selected = np.zeros(len(next(iter(groups.values()))) if groups else 0, dtype=bool)
    selected[chosen_rows] = True
    for attribute, values in groups.items():
        codes, names = pd.factorize(values, sort=True)
        population = np.bincount(codes, minlength=len(names))
        queued = np.bincount(codes[selected], minlength=len(names))
        session.add_all(
            PeriodGroup(
                model_name=name,
                period=period,
                attribute=attribute,
                group_name=str(group),
                population=int(population[j]),
                selected=int(queued[j]),
            )
            for j, group in enumerate(names)
        )
        session.add_all(
            EntryGroup(entry_id=entry.id, attribute=attribute, group_name=str(values[row]))
            for entry, row in zip(stored, chosen_rows, strict=True)
        )
