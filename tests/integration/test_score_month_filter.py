"""``outreach score --period P`` reads only that month from Parquet (the filter pushed into the
reader) and gives the scores of the unfiltered path; a CSV is read whole and says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from sqlalchemy import select

import jobs.batch
import model.data
from jobs.batch import score_file, score_period
from lifecycle.model_source import ModelSource
from model.data import read_table
from monitoring.periods import scored_period
from outreach.cli import main
from outreach.cli.base import write_into_queue
from store.db import Database, EntryGroup, PeriodGroup, QueueEntry
from tests.support.homes import Released, copy_released


def _write(frame: pd.DataFrame, path: Path, row_groups: int) -> Path:
    """Several row groups, each holding every month (no group can be skipped by statistics)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path, row_group_size=max(1, len(frame) // row_groups))
    assert pq.ParquetFile(path).num_row_groups >= 2
    return path


def test_score_period_from_parquet_gives_the_scores_of_the_unfiltered_path(
    released: Released, tmp_path: Path
) -> None:
    mine = copy_released(released, tmp_path)
    data = _write(mine.frame, tmp_path / "months.parquet", row_groups=4)
    period = mine.periods[-1]
    out = tmp_path / "scored.parquet"
    done = CliRunner().invoke(
        main,
        [
            *("--home", str(mine.home.root), "score", "--data", str(data)),
            *("--period", period, "--model", mine.name, "--out", str(out)),
        ],
    )
    assert done.exit_code == 0, done.output
    filtered = pd.read_parquet(out)
    source = ModelSource(mine.home, mine.name)
    source.refresh()
    assert source.current is not None
    whole = score_file(mine.db, source.current, read_table(data), period=period).frame
    assert len(filtered) == len(whole) > 0
    pd.testing.assert_frame_equal(filtered, whole.reset_index(drop=True), check_dtype=False)
    # Into the queue as well (the month read alone), and a CSV says it was read whole.
    queued = CliRunner().invoke(
        main,
        [
            *("--home", str(mine.home.root), "score", "--data", str(data)),
            *("--period", period, "--model", mine.name),
        ],
    )
    assert queued.exit_code == 0, queued.output
    assert f"scored {len(whole):,}" in queued.output
    csv = tmp_path / "months.csv"
    mine.frame.to_csv(csv, index=False)
    read_whole = CliRunner().invoke(
        main,
        [
            *("--home", str(mine.home.root), "score", "--data", str(csv)),
            *("--period", period, "--model", mine.name, "--out", str(tmp_path / "s.csv")),
        ],
    )
    assert read_whole.exit_code == 0, read_whole.output
    assert "a month can be read alone only from Parquet" in read_whole.output


def _kept(db: Database, name: str, period: str) -> dict[str, Any]:
    """Everything scoring a period into the queue writes: the entries, the group counts, each
    entry's groups, and the monitoring snapshot's record."""
    with db.session() as session:
        entries = session.scalars(
            select(QueueEntry)
            .where(QueueEntry.model_name == name, QueueEntry.period == period)
            .order_by(QueueEntry.rank, QueueEntry.person_id)
        ).all()
        person = {e.id: e.person_id for e in entries}
        fields = [
            "person_id",
            "rank",
            "source",
            "selection_probability",
            "score",
            "percentile",
            "band",
            "reasons",
            "reason_features",
            "area",
            "model_version",
            "audit_id",
        ]
        groups = session.scalars(
            select(PeriodGroup).where(PeriodGroup.model_name == name, PeriodGroup.period == period)
        ).all()
        entry_groups = session.scalars(
            select(EntryGroup).where(EntryGroup.entry_id.in_(list(person)))
        ).all()
        kept = scored_period(session, name, period)
        assert kept is not None
        return {
            "entries": [tuple(getattr(e, f) for f in fields) for e in entries],
            "groups": sorted((g.attribute, g.group_name, g.population, g.selected) for g in groups),
            "entry groups": sorted(
                (person[g.entry_id], g.attribute, g.group_name) for g in entry_groups
            ),
            "snapshot": (kept.population, kept.capacity, kept.snapshot_sha256, kept.estimates),
        }


def test_the_queue_of_a_month_read_alone_is_the_queue_of_the_whole_file(
    released: Released, tmp_path: Path
) -> None:
    """``score --period`` from Parquet (the month read alone, its groups made as texts once
    each) writes the same queue, group counts, entry groups and snapshot as scoring the whole
    file read plainly."""
    alone, whole = copy_released(released, tmp_path / "a"), copy_released(released, tmp_path / "b")
    data = _write(alone.frame, tmp_path / "months.parquet", row_groups=4)
    period = alone.periods[-1]
    done = CliRunner().invoke(
        main,
        [
            *("--home", str(alone.home.root), "score", "--data", str(data)),
            *("--period", period, "--model", alone.name),
        ],
    )
    assert done.exit_code == 0, done.output
    source = ModelSource(whole.home, whole.name)
    source.refresh()
    assert source.current is not None
    write_into_queue(whole.home, source.current, score_period, read_table(data), period, "scored")
    mine, theirs = _kept(alone.db, alone.name, period), _kept(whole.db, whole.name, period)
    assert len(mine["entries"]) > 0 and len(mine["entry groups"]) > 0 and mine["groups"]
    assert mine == theirs


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_a_failed_queue_write_keeps_the_old_queue_and_no_unbound_snapshot(
    released: Released, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snapshot is written on a second thread while the queue is written: when the queue's
    transaction fails, the period's queue, counts and monitoring row are as they were, and the
    snapshot file written for it is gone unless a committed row binds it (the same content)."""
    mine = copy_released(released, tmp_path)
    source = ModelSource(mine.home, mine.name)
    source.refresh()
    assert source.current is not None
    again = mine.periods[-1]  # scored when the release was built
    fresh = str(pd.Period(again, freq="M") + 1)  # never scored: the same people a month on
    rows = mine.frame.loc[mine.frame["period"].astype(str) == again]
    frame = pd.concat([rows, rows.assign(period=fresh)], ignore_index=True)
    before = _kept(mine.db, mine.name, again)
    files = _files(mine.home.monitoring)
    assert before["snapshot"][0] > 0 and files

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(jobs.batch, "_record_groups", broken)
    for period in (again, fresh):
        with pytest.raises(RuntimeError, match="went away"):
            write_into_queue(mine.home, source.current, score_period, frame, period, "scored")
    assert _kept(mine.db, mine.name, again) == before
    with mine.db.session() as session:
        assert scored_period(session, mine.name, fresh) is None
        assert not session.scalars(
            select(QueueEntry).where(QueueEntry.model_name == mine.name, QueueEntry.period == fresh)
        ).all()
    assert _files(mine.home.monitoring) == files
    monkeypatch.undo()
    write_into_queue(mine.home, source.current, score_period, frame, fresh, "scored")
    assert _kept(mine.db, mine.name, fresh)["snapshot"][0] > 0
    assert len(_files(mine.home.monitoring)) == len(files) + 1


def test_the_month_is_read_by_the_models_time_column_whatever_the_file_suggests(
    released: Released, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The month is read before the model is verified by the file's one month column; when the
    file has two, or its one is not the model's time column, it is read again by the model's:
    the scores are those of the whole file either way."""
    mine = copy_released(released, tmp_path)
    period = mine.periods[-1]
    source = ModelSource(mine.home, mine.name)
    source.refresh()
    serving = source.current
    assert serving is not None

    def scored(frame: pd.DataFrame, name: str) -> pd.DataFrame:
        data = _write(frame, tmp_path / f"{name}.parquet", row_groups=3)
        out = tmp_path / f"{name}-scored.parquet"
        done = CliRunner().invoke(
            main,
            [
                *("--home", str(mine.home.root), "score", "--data", str(data)),
                *("--period", period, "--model", mine.name, "--out", str(out)),
            ],
        )
        assert done.exit_code == 0, done.output
        whole = score_file(mine.db, serving, read_table(data), period=period).frame
        found = pd.read_parquet(out)
        pd.testing.assert_frame_equal(found, whole.reset_index(drop=True), check_dtype=False)
        return found

    both = scored(mine.frame.assign(joined=mine.frame["period"]), "two-month-columns")
    assert model.data.month_column(tmp_path / "two-month-columns.parquet", period) is None
    # Another column of months holding the period on every row of another month (and another
    # month on the period's rows), and the model's column no longer taken for one (more
    # distinct values than a month column holds): the guess is that other column, whose rows
    # are not the month's.
    monkeypatch.setattr(model.data, "_MONTHS_AT_MOST", 2)
    months = mine.frame["period"].astype(str)
    other = mine.frame.assign(joined=np.where(months == period, mine.periods[0], period))
    assert model.data.month_column(_write(other, tmp_path / "probe.parquet", 3), period) == "joined"
    assert len(scored(other, "another-month-column")) == len(both) > 0
