"""Batch scoring: a period's population scored with reasons, its outreach queue written at once.

The queue for the period is replaced in one transaction: a crash or a bad file leaves the
previous queue exactly as it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from audits.policy import Evaluation
from jobs.spark_batch import PERIOD_COLUMN, PROVENANCE
from kernel.errors import BadInputError, CheckFailedError, DataValidationError
from lifecycle.model_source import Serving
from model.data import id_problems, ordinal_to_period, parse_periods
from model.rules import month_problem
from model.scorer import scored_frame
from monitoring.periods import (
    Monitoring,
    PeriodDocuments,
    Selection,
    forget_people,
    keep_period,
    lottery_seed,
    period_documents,
    scored_period,
    select_people,
)
from store.db import (
    Database,
    EntryGroup,
    OptOut,
    Outcome,
    PeriodGroup,
    QueueEntry,
    ScoredPeriod,
    insert_rows,
    utcnow,
)

CHUNK = 100_000


@dataclass(frozen=True)
class BatchResult:
    period: str
    scored: int
    queued: int
    opted_out: int
    #: Extra places drawn by the evaluation lottery (beside ``queued`` on the list).
    lottery: int = 0


def _period_rows(
    frame: pd.DataFrame, serving: Serving, period: str | None
) -> tuple[str, pd.DataFrame]:
    chosen, rows = period_rows(frame, serving, period)
    return chosen[0], rows


def period_rows(
    frame: pd.DataFrame, serving: Serving, period: str | None, *, every: bool = False
) -> tuple[list[str], pd.DataFrame]:
    """The rows of ``period`` (default: the latest; with ``every``, every period), their ids and
    months checked by the one rule table (:mod:`model.rules`), with a ``scored_period`` column
    naming each row's month. Returns the months chosen (sorted) and their rows.

    Raises
    ------
    DataValidationError
        If a column is missing, a month or an id breaks the rules, the period has no rows, or
        an id repeats within a period.
    """
    model = serving.model
    missing = [c for c in (model.id_column, model.time_column) if c not in frame.columns]
    if missing:
        raise DataValidationError(
            "the data cannot be scored", details=[f"missing columns: {', '.join(missing)}"]
        )
    if period is not None and (problem := month_problem(period)) is not None:
        raise DataValidationError("the period is not a month", details=[f"period: {problem}"])
    problems, ordinals = parse_periods(frame[model.time_column], model.time_column)
    if problems or ordinals is None:
        raise DataValidationError("the data cannot be scored", details=problems)
    labels = [ordinal_to_period(int(o)) for o in np.unique(ordinals)]  # sorted by time
    if every and period is None:
        chosen = labels
    else:
        chosen = [period or labels[-1]]
        if chosen[0] not in labels:
            raise DataValidationError(
                f"no rows for period {chosen[0]}",
                details=[f"periods present: {', '.join(labels[-12:])}"],
            )
    wanted = [int(pd.Period(p, freq="M").ordinal) for p in chosen]
    inside = np.isin(ordinals, wanted)
    rows = frame.loc[inside].reset_index(drop=True)
    problems = id_problems(rows[model.id_column], model.id_column)  # the one id rule
    if problems:
        raise DataValidationError("the data cannot be scored", details=problems)
    # Each row's month as text, each month's text made once; the ids compared as their texts
    # (whole numbers as they are: one text per number).
    codes, distinct = pd.factorize(ordinals[inside])
    months = np.asarray([ordinal_to_period(int(o)) for o in distinct], dtype=object)[codes]
    ids = rows[model.id_column]
    keys = pd.DataFrame(
        {"id": ids if pd.api.types.is_integer_dtype(ids.dtype) else ids.astype(str), "month": codes}
    )
    repeated = keys.duplicated().to_numpy()
    if repeated.any():
        where = ", ".join(sorted(set(months[repeated])))
        raise DataValidationError(f"duplicate {model.id_column} values in period {where}")
    if PERIOD_COLUMN not in rows.columns:
        rows[PERIOD_COLUMN] = months
    return chosen, rows


def texts(column: pd.Series) -> np.ndarray:
    """``column.astype(str).to_numpy()``, each distinct text made once: a million rows of a few
    groups (areas, sensitive attributes) share a few string objects instead of a million."""
    codes, distinct = pd.factorize(column.astype(str), use_na_sentinel=False)
    return np.asarray(distinct, dtype=object)[codes]


def opted_out(db: Database) -> set[str]:
    """Everyone who opted out (ids as stored)."""
    with db.session() as session:
        return set(session.scalars(select(OptOut.person_id)))


def without_opted_out(
    rows: pd.DataFrame, id_column: str, opted: set[str]
) -> tuple[pd.DataFrame, int]:
    """``rows`` without the people who opted out, and how many were left out.

    An opt-out means not scored: those rows are dropped before any score is computed, so they
    reach no queue, snapshot, estimate or file.
    """
    if not opted:
        return rows, 0
    out = rows[id_column].astype(str).isin(opted).to_numpy()
    return rows.loc[~out].reset_index(drop=True), int(out.sum())


def _nobody_left(period: str, left_out: int) -> DataValidationError:
    return DataValidationError(
        f"no one to score in {period}: all {left_out:,} people of the period opted out"
    )


@dataclass(frozen=True)
class ScoredFile:
    """Rows scored into a file, by the contract both engines keep."""

    frame: pd.DataFrame
    periods: list[str]
    opted_out: int


def score_file(
    db: Database, serving: Serving, frame: pd.DataFrame, *, period: str | None = None
) -> ScoredFile:
    """Score ``period``'s rows (every period without one) for a file, by the contract the Spark
    job keeps (:mod:`jobs.spark_batch`): every input column, then ``score``, ``percentile``,
    ``band``, ``reasons`` (JSON), ``model_name``, ``model_version``, ``audit_id`` and
    ``scored_period`` (the row's month) on every row. People who opted out are left out.

    A percentile and a band are read against the release's validation population (the same
    rule in every month, as in the queue), so a file of many months holds each month's rows
    exactly as that month scored alone would.

    Raises
    ------
    DataValidationError
        As :func:`period_rows`, or if the input already has a column the output adds, or a row
        fails the model's input checks.
    """
    model = serving.model
    clashes = [
        c
        for c in ("score", "percentile", "band", "reasons", *PROVENANCE, PERIOD_COLUMN)
        if c in frame.columns
    ]
    if clashes:
        raise DataValidationError(
            "the data cannot be scored",
            details=[f"columns the output adds are already present: {', '.join(clashes)}"],
        )
    chosen, rows = period_rows(frame, serving, period, every=True)
    rows, left_out = without_opted_out(rows, model.id_column, opted_out(db))
    if rows.empty:
        raise _nobody_left(", ".join(chosen), left_out)
    scored = scored_frame(model, rows)
    months = rows.pop(PERIOD_COLUMN)
    out = rows.assign(
        score=scored["score"].to_numpy(),
        percentile=scored["percentile"].to_numpy(),
        band=scored["band"].to_numpy(),
        reasons=scored["reasons"].to_numpy(),
        model_name=serving.name,
        model_version=str(serving.version),
        audit_id=serving.audit_id,
    )
    out[PERIOD_COLUMN] = months.to_numpy()
    return ScoredFile(out, chosen, left_out)


def score_period(
    db: Database,
    serving: Serving,
    frame: pd.DataFrame,
    *,
    period: str | None = None,
    attributes: Sequence[str] = (),
    monitoring: Monitoring | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> BatchResult:
    """Score one period (default: the latest) and replace its queue in one transaction.

    ``attributes``: sensitive attributes (columns of ``frame``) whose group counts are kept for
    monitoring, in the same transaction: per group, how many were scored and how many queued,
    and each queued entry's group for outcome aggregates. They are never model inputs.

    ``monitoring``: keep the period for monitoring (:mod:`monitoring.periods`): the evaluation
    lottery of the audit's policy, a snapshot of the scored population, estimates and drift.
    """
    model = serving.model
    chosen, rows = _period_rows(frame, serving, period)
    rows, left_out = without_opted_out(rows, model.id_column, opted_out(db))
    if rows.empty:
        raise _nobody_left(chosen, left_out)
    if left_out:
        progress(f"{chosen}: {left_out:,} opted out, left out before scoring")
    scores = np.empty(len(rows))
    percentiles = np.empty(len(rows))
    bands = np.empty(len(rows), dtype=object)
    # Score everything in chunks (validation included), keep scores; reasons only for the queue.
    batches = []
    for start in range(0, len(rows), CHUNK):
        chunk = rows.iloc[start : start + CHUNK]
        batch = model.score_frame(chunk)
        scores[start : start + len(chunk)] = batch.scores
        percentiles[start : start + len(chunk)] = batch.percentiles
        bands[start : start + len(chunk)] = batch.bands
        batches.append(batch)
        progress(f"scored {min(start + CHUNK, len(rows)):,} of {len(rows):,} records")

    def reasons_for(chosen_rows: np.ndarray) -> list[list[dict[str, object]]]:
        reasons: list[list[dict[str, object]]] = [[] for _ in chosen_rows]
        for number, batch in enumerate(batches):  # all of a chunk's queued records at once
            inside = np.flatnonzero(chosen_rows // CHUNK == number)
            for position, found in zip(
                inside.tolist(),
                model.reason_dicts(batch, chosen_rows[inside] - number * CHUNK),
                strict=True,
            ):
                reasons[position] = found
        return reasons

    return _queue_scored(
        db,
        serving,
        chosen,
        rows,
        scores,
        percentiles,
        bands,
        reasons_for,
        attributes=attributes,
        monitoring=monitoring,
        progress=progress,
        left_out=left_out,
    )


def _queue_scored(
    db: Database,
    serving: Serving,
    chosen: str,
    rows: pd.DataFrame,
    scores: np.ndarray,
    percentiles: np.ndarray,
    bands: np.ndarray,
    reasons_for: Callable[[np.ndarray], list[list[dict[str, object]]]],
    *,
    attributes: Sequence[str],
    monitoring: Monitoring | None,
    progress: Callable[[str], None],
    left_out: int = 0,
) -> BatchResult:
    """The period's queue (top k, opt-outs excluded, the lottery) from its scored rows, written
    in one transaction with its group counts and, with ``monitoring``, its snapshot."""
    model = serving.model
    k = model.k_for(len(rows))
    ids = rows[model.id_column].astype(str).to_numpy()
    area_column = model.area_column
    areas = texts(rows[area_column]) if area_column in rows.columns else None
    wanted = dict.fromkeys([*attributes, *(monitoring.attributes if monitoring else ())])
    groups = {a: texts(rows[a]) for a in wanted if a in rows.columns}
    with db.session() as session:
        opted = list(session.scalars(select(OptOut.person_id)))
    eligible = ~np.isin(ids, opted) if opted else np.ones(len(ids), dtype=bool)
    # The audit's own top-k rule, on the ids as typed (the queue is the audited list), and the
    # evaluation lottery's extra places at the margin when the audit's policy turns it on.
    selection = select_people(
        scores,
        rows[model.id_column].to_numpy(),
        eligible,
        k,
        monitoring.evaluation if monitoring else Evaluation(),
        lottery_seed(serving.name, serving.version, serving.audit_id, chosen),
    )
    chosen_rows = np.concatenate([selection.listed, selection.lottery]).astype(np.int64)
    # The period's monitoring documents (snapshot file, estimates, drift) touch no database: they
    # are computed on a second thread while this one explains the queued records and writes the
    # queue, and recorded in the same transaction once both are done. If the write fails, the
    # snapshot file written for it goes (unless a committed row binds the same file).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="outreach-monitoring") as pool:
        documents = (
            pool.submit(
                period_documents,
                name=serving.name,
                period=chosen,
                ids=ids,
                scores=scores,
                selection=selection,
                groups=groups,
                features=rows,
                monitoring=monitoring,
            )
            if monitoring is not None
            else None
        )
        try:
            reasons = reasons_for(chosen_rows)
            return _write_queue(
                db,
                serving,
                chosen,
                rows,
                ids,
                scores,
                percentiles,
                bands,
                areas,
                groups,
                selection,
                chosen_rows,
                reasons,
                opted,
                eligible,
                monitoring,
                documents,
                progress=progress,
                left_out=left_out,
            )
        except BaseException:
            if documents is not None and monitoring is not None:
                _drop_unbound(db, monitoring.folder, documents)
            raise


def _drop_unbound(db: Database, folder: Path, documents: Future[PeriodDocuments]) -> None:
    """After a failed write: remove the snapshot file written for it, unless a committed row
    binds that file (the same content scored before)."""
    try:
        written = documents.result().snapshot
    except Exception:  # the documents failed too: nothing was written, or it is reported
        return
    with db.session() as session:
        bound = session.scalars(
            select(ScoredPeriod.id).where(ScoredPeriod.snapshot == written)
        ).first()
    if bound is None:
        (folder / written).unlink(missing_ok=True)


def _write_queue(
    db: Database,
    serving: Serving,
    chosen: str,
    rows: pd.DataFrame,
    ids: np.ndarray,
    scores: np.ndarray,
    percentiles: np.ndarray,
    bands: np.ndarray,
    areas: np.ndarray | None,
    groups: dict[str, np.ndarray],
    selection: Selection,
    chosen_rows: np.ndarray,
    reasons: list[list[dict[str, object]]],
    opted: list[str],
    eligible: np.ndarray,
    monitoring: Monitoring | None,
    documents: Future[PeriodDocuments] | None,
    *,
    progress: Callable[[str], None],
    left_out: int,
) -> BatchResult:
    """:func:`_queue_scored`'s transaction: the queue, its group counts and the monitoring row."""
    sources = ["list"] * len(selection.listed) + ["lottery"] * len(selection.lottery)
    entries = [
        {
            "model_name": serving.name,
            "model_version": serving.version,
            "audit_id": serving.audit_id,
            "period": chosen,
            "person_id": person,
            "rank": rank,
            "source": source,
            "selection_probability": probability,
            "score": score,
            "percentile": percentile,
            "band": band,
            "reasons": found,
            "reason_features": ",".join(str(r["feature"]) for r in found)[:400],
            "area": area,
        }
        for person, rank, source, probability, score, percentile, band, found, area in zip(
            ids[chosen_rows].tolist(),
            selection.rank[chosen_rows].tolist(),
            sources,
            selection.probability[chosen_rows].tolist(),
            scores[chosen_rows].tolist(),
            percentiles[chosen_rows].tolist(),
            bands[chosen_rows].tolist(),
            reasons,
            [None] * len(chosen_rows) if areas is None else areas[chosen_rows].tolist(),
            strict=True,
        )
    ]
    previous: str | None = None
    forgotten: list[str] = []
    with db.session() as session:
        _replace_queue(session, serving.name, chosen, entries)
        _record_groups(
            session, serving.name, chosen, groups, selection.listed, chosen_rows, ids, len(rows)
        )
        if monitoring is not None and documents is not None:  # computed when monitoring is on
            progress("keeping the period for monitoring: snapshot, estimates, drift")
            old = scored_period(session, serving.name, chosen)
            previous = old.snapshot if old is not None else None
            kept = keep_period(
                session,
                name=serving.name,
                version=serving.version,
                audit_id=serving.audit_id,
                period=chosen,
                population=len(ids),
                selection=selection,
                documents=documents.result(),
            )
            if previous == kept.snapshot:
                previous = None
            # Periods scored before someone opted out: their rows leave the kept files too.
            forgotten = forget_people(session, monitoring.folder, serving.name, set(opted))
    if monitoring is not None:  # the replaced files, unreferenced once committed
        for stale in [*([previous] if previous is not None else []), *forgotten]:
            (monitoring.folder / stale).unlink(missing_ok=True)
    progress(f"wrote {len(entries):,} queue entries for {chosen}")
    return BatchResult(
        chosen,
        len(rows),
        len(selection.listed),
        left_out + int((~eligible).sum()),
        lottery=len(selection.lottery),
    )


#: How far a score in a loaded file may differ from the verified model's own (Spark and this
#: process run the same arithmetic; anything beyond rounding means the file was changed).
SCORE_TOLERANCE = 1e-9


def read_scored_period(path: str | Path, period: str) -> pd.DataFrame:
    """One period of a Spark scoring job's output (``PATH/scored_period=YYYY-MM/``).

    Raises
    ------
    BadInputError
        If the folder holds no such period, or it cannot be read.
    """
    root = Path(path)
    folder = root / f"{PERIOD_COLUMN}={period}"
    if not folder.is_dir():
        present = sorted(
            p.name.split("=", 1)[1] for p in root.glob(f"{PERIOD_COLUMN}=*") if p.is_dir()
        )
        where = f"periods present: {', '.join(present)}" if present else "no scored periods"
        raise BadInputError(
            f"{root}: no scored rows for period {period} ({where}); "
            "write them with outreach score --engine spark"
        )
    try:
        return pd.read_parquet(folder)
    except Exception as err:  # pyarrow raises its own error types for corrupt files
        raise BadInputError(f"{folder}: cannot read it as Parquet: {err}") from err


def _check_provenance(scored: pd.DataFrame, serving: Serving, period: str) -> None:
    missing = [
        c for c in (*PROVENANCE, "score", "percentile", "band", "reasons") if c not in scored
    ]
    if missing:
        raise BadInputError(
            f"the file for {period} is not a scoring job's output: "
            f"missing columns: {', '.join(missing)}"
        )
    found = scored[list(PROVENANCE)].astype(str).drop_duplicates()
    wanted = (serving.name, serving.version, serving.audit_id)
    rows = [tuple(r) for r in found.itertuples(index=False)]
    if rows != [wanted]:
        seen = "; ".join(f"{n} v{v} (audit {a})" for n, v, a in rows[:3]) or "no rows"
        raise BadInputError(
            f"refusing to load {period}: it was scored by {seen}, not by the verified production "
            f"version {serving.name} v{serving.version} (audit {serving.audit_id}); score it "
            "again with outreach score --engine spark"
        )


def load_period(
    db: Database,
    serving: Serving,
    scored: pd.DataFrame,
    *,
    period: str,
    attributes: Sequence[str] = (),
    monitoring: Monitoring | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> BatchResult:
    """Replace ``period``'s queue from a Spark scoring job's output, in one transaction.

    The rows must carry the serving version's name, version and audit id. They are checked
    again in this process before anything is written: every score against the verified model
    (within :data:`SCORE_TOLERANCE`), and the reasons of every queued entry; the queue, group
    counts and monitoring snapshot are then those :func:`score_period` keeps.

    Raises
    ------
    BadInputError
        If the file was scored by another version, or lacks the scoring or model columns.
    CheckFailedError
        If a score or a queued entry's reasons differ from the verified model's.
    """
    _check_provenance(scored, serving, period)
    model = serving.model
    chosen, rows = _period_rows(scored, serving, period)
    rows, left_out = without_opted_out(rows, model.id_column, opted_out(db))
    if rows.empty:
        raise _nobody_left(chosen, left_out)
    scores = rows["score"].to_numpy(dtype=float)
    batches = []
    for start in range(0, len(rows), CHUNK):
        batch = model.score_frame(rows.iloc[start : start + CHUNK])
        expected = scores[start : start + len(batch)]
        if not np.allclose(batch.scores, expected, rtol=0.0, atol=SCORE_TOLERANCE):
            worst = int(np.argmax(np.abs(batch.scores - expected))) + start
            raise CheckFailedError(
                f"refusing to load {chosen}: the score of {model.id_column} "
                f"{rows[model.id_column].iloc[worst]} is not the verified model's "
                f"({scores[worst]!r} in the file, {batch.scores[worst - start]!r} here); "
                "the file was changed after scoring",
                code="scores_changed",
            )
        batches.append(batch)
    progress(f"checked the {len(rows):,} scores of {chosen} against the verified model")
    texts = rows["reasons"].to_numpy(dtype=object)

    def reasons_for(chosen_rows: np.ndarray) -> list[list[dict[str, object]]]:
        out: list[list[dict[str, object]]] = [json.loads(texts[i]) for i in chosen_rows.tolist()]
        for number, batch in enumerate(batches):
            inside = np.flatnonzero(chosen_rows // CHUNK == number)
            own = model.reason_dicts(batch, chosen_rows[inside] - number * CHUNK)
            for position, found in zip(inside.tolist(), own, strict=True):
                if out[position] != found:
                    raise CheckFailedError(
                        f"refusing to load {chosen}: the reasons of {model.id_column} "
                        f"{rows[model.id_column].iloc[int(chosen_rows[position])]} are not the "
                        "verified model's; the file was changed after scoring",
                        code="reasons_changed",
                    )
        return out

    return _queue_scored(
        db,
        serving,
        chosen,
        rows,
        scores,
        rows["percentile"].to_numpy(dtype=float),
        rows["band"].astype(str).to_numpy(dtype=object),
        reasons_for,
        attributes=attributes,
        monitoring=monitoring,
        progress=progress,
        left_out=left_out,
    )


def _chunks(values: list[Any], size: int = 10_000) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _replace_queue(session: Session, name: str, period: str, entries: list[dict[str, Any]]) -> None:
    """The period's queue becomes ``entries``: core statements, one executemany each.

    An entry already on the list keeps its id (its outcomes refer to it) and is updated; one no
    longer on it is deleted, or kept with rank 0 if outcomes refer to it.
    """
    table = QueueEntry.metadata.tables[QueueEntry.__tablename__]
    connection = session.connection()
    existing = dict(
        connection.execute(
            select(QueueEntry.person_id, QueueEntry.id).where(
                QueueEntry.model_name == name, QueueEntry.period == period
            )
        ).all()
    )
    fresh = {e["person_id"] for e in entries}
    leaving = [entry_id for person, entry_id in existing.items() if person not in fresh]
    with_outcomes: set[int] = set()
    for part in _chunks(leaving):
        with_outcomes.update(
            connection.execute(
                select(Outcome.entry_id).distinct().where(Outcome.entry_id.in_(part))
            ).scalars()
        )
    kept = [i for i in leaving if i in with_outcomes]
    dropped = [i for i in leaving if i not in with_outcomes]
    for part in _chunks(kept):  # off the list, kept because its outcomes refer to it
        connection.execute(update(table).where(table.c.id.in_(part)).values(rank=0))
    for part in _chunks(dropped):
        connection.execute(delete(table).where(table.c.id.in_(part)))
    changed = [
        {**e, "_id": existing[e["person_id"]]} for e in entries if e["person_id"] in existing
    ]
    if changed:
        columns = (
            "model_version",
            "audit_id",
            "rank",
            "source",
            "selection_probability",
            "score",
            "percentile",
            "band",
            "reasons",
        )
        connection.execute(
            update(table)
            .where(table.c.id == bindparam("_id"))
            .values(
                {c: bindparam(c) for c in (*columns, "reason_features", "area")},
            ),
            changed,
        )
    added = [e for e in entries if e["person_id"] not in existing]
    if added:  # handed to the driver as rows (one time of creation: one transaction)
        keys = tuple(added[0])
        values = itemgetter(*keys)
        now = utcnow()
        insert_rows(connection, table, (*keys, "created_at"), [(*values(e), now) for e in added])


def _record_groups(
    session: Session,
    name: str,
    period: str,
    groups: dict[str, np.ndarray],
    listed: np.ndarray,
    chosen_rows: np.ndarray,
    ids: np.ndarray,
    population: int,
) -> None:
    """Replace the period's group counts and the queued entries' groups (monitoring only).

    ``selected`` counts the list (``listed``); every queued entry (the lottery's too) gets its
    groups, for the funnel.
    """
    connection = session.connection()
    connection.execute(
        delete(PeriodGroup).where(PeriodGroup.model_name == name, PeriodGroup.period == period)
    )
    on_list = select(QueueEntry.id).where(
        QueueEntry.model_name == name, QueueEntry.period == period, QueueEntry.rank > 0
    )
    entry_ids = dict(
        connection.execute(
            select(QueueEntry.person_id, QueueEntry.id).where(
                QueueEntry.model_name == name, QueueEntry.period == period, QueueEntry.rank > 0
            )
        ).all()
    )
    queued = [entry_ids[person] for person in ids[chosen_rows].tolist()]
    # The queued entries are the period's entries on the list (every other one was deleted or
    # taken off it, rank 0): their old groups go in one statement, not in lists of ids.
    connection.execute(delete(EntryGroup).where(EntryGroup.entry_id.in_(on_list)))
    selected = np.zeros(population, dtype=bool)
    selected[listed] = True
    for attribute, values in groups.items():
        codes, names = pd.factorize(values, sort=True)
        counts = np.bincount(codes, minlength=len(names))
        picked = np.bincount(codes[selected], minlength=len(names))
        connection.execute(
            insert(PeriodGroup),
            [
                {
                    "model_name": name,
                    "period": period,
                    "attribute": attribute,
                    "group_name": str(group),
                    "population": int(counts[j]),
                    "selected": int(picked[j]),
                }
                for j, group in enumerate(names)
            ],
        )
        if queued:
            insert_rows(
                connection,
                EntryGroup.__table__,  # type: ignore[arg-type]
                ("entry_id", "attribute", "group_name"),
                [
                    (entry_id, attribute, group)
                    for entry_id, group in zip(queued, values[chosen_rows].tolist(), strict=True)
                ],
            )
