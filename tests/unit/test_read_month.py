"""A month read alone from Parquet (``outreach score --period P``, the filter pushed into the
reader): the same rows, order, types and errors as reading the whole file."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.batch import period_rows
from kernel.errors import DataValidationError
from model.data import month_column, read_month, read_table

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


@pytest.mark.parametrize("threads", [True, False])
@pytest.mark.parametrize("period", [*MONTHS, None])
def test_a_month_read_alone_is_the_month_of_the_whole_file(
    tmp_path: Path, period: str, threads: bool
) -> None:
    path = _write(_people(MONTHS), tmp_path / "months.parquet")
    if period is not None:  # the guess the score command reads by, on its own thread
        assert month_column(path, period, threads=threads) == "period"
    month, pushed = read_month(path, "period", period, keep=["person_id"], threads=threads)
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


def test_every_column_type_is_read_as_the_whole_file_types_it(tmp_path: Path) -> None:
    """Text columns are decoded as dictionaries and given back their own types: text with gaps,
    text too varied for the file's dictionary (one value per row), categories, dates with a
    time zone, numbers with gaps and the frame's attrs come out as ``pd.read_parquet`` gives
    them."""
    frame = _people(MONTHS, people=600)
    rows = len(frame)
    frame["note"] = pd.Series(["a", None, "b"] * (rows // 3), dtype=object)
    frame["code"] = [f"person-{i:07d}-{'x' * 40}" for i in range(rows)]  # beyond a dictionary
    frame["kind"] = pd.Categorical(["low", "high"] * (rows // 2), categories=["low", "high"])
    frame["count"] = pd.array([1, None, 3] * (rows // 3), dtype="Int64")
    frame.attrs = {"source": "test"}
    hours = np.datetime64("2024-01-01T00:00", "us") + np.arange(rows) * np.timedelta64(1, "h")
    table = pa.Table.from_pandas(frame, preserve_index=False).append_column(
        "seen", pa.array(hours, type=pa.timestamp("us", tz="Europe/Paris"))
    )
    path = tmp_path / "types.parquet"
    pq.write_table(table, path, row_group_size=rows // 3, dictionary_pagesize_limit=4096)
    encodings = pq.ParquetFile(path).metadata.row_group(0).column(5).encodings
    assert "PLAIN" in encodings  # the varied text fell back from its dictionary
    month, pushed = read_month(path, "period", "2024-03")
    assert pushed
    expected = _month_of(read_table(path), "2024-03")
    pd.testing.assert_frame_equal(month, expected)
    assert month.attrs == {"source": "test"}
    assert month["note"].isna().sum() == 200 and month["code"].is_unique
    assert str(month["seen"].dtype) == "datetime64[us, Europe/Paris]"


def test_the_one_month_column_holding_the_period_is_found_before_the_model_is_loaded(
    tmp_path: Path,
) -> None:
    """:func:`model.data.month_column`: a guess the command checks against the verified model's
    time column (``None`` unless exactly one column of months holds the period)."""
    people = _people(MONTHS)
    plain = _write(people, tmp_path / "plain.parquet")
    assert month_column(plain, "2024-03") == "period"
    assert month_column(plain, "2025-03") is None  # no row of that month
    assert month_column(plain, "2024-13") is None  # not a month
    dated = people.assign(period=pd.to_datetime(people["period"]).dt.date)
    assert month_column(_write(dated, tmp_path / "dated.parquet"), "2024-02") == "period"
    bare = tmp_path / "bare.parquet"  # no statistics kept: each text column is read to tell
    pq.write_table(pa.Table.from_pandas(people, preserve_index=False), bare, write_statistics=False)
    assert month_column(bare, "2024-02") == "period"
    twice = _write(people.assign(joined=people["period"]), tmp_path / "twice.parquet")
    assert month_column(twice, "2024-02") is None  # two columns hold it: no guess
    people.to_csv(tmp_path / "people.csv", index=False)
    assert month_column(tmp_path / "people.csv", "2024-02") is None
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    assert month_column(tmp_path / "broken.parquet", "2024-02") is None
