"""``outreach score --period P`` reads only that month from Parquet (the filter pushed into the
reader) and gives the scores of the unfiltered path; a CSV is read whole and says so."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner

from jobs.batch import score_file
from lifecycle.model_source import ModelSource
from model.data import read_table
from outreach.cli import main
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
