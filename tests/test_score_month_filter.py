"""``outreach score --period P`` reads only that month from Parquet (the filter pushed into the
reader): the same rows, order, types, scores and errors as reading the whole file."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from model.data import read_month, read_table
from model.errors import DataValidationError
from outreach.cli import main
from service.batch import period_rows, score_file
from service.loader import ModelSource
from tests.conftest import Released, copy_released

MONTHS = ["2024-01", "2024-02", "2024-03", "2024-04"]


def _people(months: list[Any], people: int = 30) -> pd.DataFrame:
    """Each person in every month, sorted by person then month (as the generator writes)."""
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "person_id": np.repeat(np.arange(people), len(months)),
            "period": np.tile(np.array(months, dtype=object), people),
            "x": rng.random(people * len(months)),
            "area": np.tile(np.array(["North", "South"], dtype=object), people * len(months) // 2),
        }
    )


def _write(frame: pd.DataFrame, path: Path, row_groups: int = 3) -> Path:
    """Several row groups, each holding every month (no group can be skipped by statistics)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path, row_group_size=max(1, len(frame) // row_groups))
    assert pq.ParquetFile(path).num_row_groups >= 2
    return path


def _month_of(full: pd.DataFrame, month: str) -> pd.DataFrame:
    keep = pd.PeriodIndex(pd.to_datetime(full["period"].astype(str)), freq="M").astype(str)
    return full.loc[keep == month].reset_index(drop=True)


def _serving() -> Any:
    return SimpleNamespace(model=SimpleNamespace(id_column="person_id", time_column="period"))


@pytest.mark.parametrize("period", [*MONTHS, None])
def test_a_month_read_alone_is_the_month_of_the_whole_file(tmp_path: Path, period: str) -> None:
    path = _write(_people(MONTHS), tmp_path / "months.parquet")
    month, pushed = read_month(path, "period", period, keep=["person_id"])
    assert pushed
    expected = _month_of(read_table(path), period or MONTHS[-1])
    assert len(month) == 30
    pd.testing.assert_frame_equal(month.reset_index(drop=True), expected)


def test_a_date_typed_month_column_is_filtered_by_month(tmp_path: Path) -> None:
    days = [pd.Timestamp("2024-01-15"), pd.Timestamp("2024-02-01"), pd.Timestamp("2024-02-20")]
    path = _write(_people(days), tmp_path / "dates.parquet")
    month, pushed = read_month(path, "period", "2024-02")
    assert pushed
    assert len(month) == 60  # both February days, nothing of January
    pd.testing.assert_frame_equal(
        month.reset_index(drop=True), _month_of(read_table(path), "2024-02")
    )


def test_a_csv_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "months.csv"
    _people(MONTHS).to_csv(path, index=False)
    frame, pushed = read_month(path, "period", "2024-02")
    assert not pushed
    assert len(frame) == 120


@pytest.mark.parametrize(
    ("change", "period"),
    [
        ({"period": "2024-13"}, "2024-02"),  # a value that is not a month, anywhere in the file
        ({}, "2023-07"),  # no row of the period asked for
        ({"person_id": None}, "2024-02"),  # an id missing within the month
    ],
)
def test_every_problem_is_named_as_when_the_whole_file_is_read(
    tmp_path: Path, change: dict[str, Any], period: str
) -> None:
    frame = _people(MONTHS)
    if "period" in change:
        frame.loc[5, "period"] = change["period"]
    if "person_id" in change:
        frame["person_id"] = frame["person_id"].astype(object)
        frame.loc[5, "person_id"] = change["person_id"]  # row 6 is a February row
    path = _write(frame, tmp_path / "bad.parquet")
    errors = []
    for read in (
        lambda: read_table(path),
        lambda: read_month(path, "period", period, keep=["person_id"])[0],
    ):
        with pytest.raises(DataValidationError) as caught:
            period_rows(read(), _serving(), period)
        errors.append((caught.value.message, caught.value.details))
    assert errors[0] == errors[1]


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
