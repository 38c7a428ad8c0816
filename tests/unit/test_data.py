"""Data loading and validation: every bad input is named, and splits never leak."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.errors import BadInputError, DataValidationError
from model.data import read_table, temporal_splits, validate


@pytest.fixture
def frame(population: pd.DataFrame) -> pd.DataFrame:
    return population.head(400).copy()


def _details(frame: pd.DataFrame, spec) -> str:
    with pytest.raises(DataValidationError) as caught:
        validate(frame, spec)
    return "\n".join(caught.value.details)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda f: f.drop(columns=["er_visits_90d"]), "missing columns: er_visits_90d"),
        (lambda f: f.assign(favourite_colour="blue"), "unexpected columns: favourite_colour"),
        (
            lambda f: f.assign(
                er_visits_90d=f.er_visits_90d.astype(object).where(f.index != 4, "many")
            ),
            "column 'er_visits_90d': not a number in row 5",
        ),
        (
            lambda f: f.assign(
                months_since_last_service=f.months_since_last_service.where(f.index != 2, np.nan)
            ),
            "column 'months_since_last_service': missing in row 3; to allow gaps, set missing = "
            '"allowed" and reason_missing on the feature in the spec',
        ),
        (
            lambda f: f.assign(
                months_since_last_service=f.months_since_last_service.where(f.index != 2, np.inf)
            ),
            "infinite in row 3",
        ),
        (
            lambda f: f.assign(
                er_visits_90d=f.er_visits_90d.astype(float).where(f.index != 0, 1.5)
            ),
            "not a whole number in row 1",
        ),
        (
            lambda f: f.assign(er_visits_90d=f.er_visits_90d.where(f.index != 0, -1)),
            "below the minimum 0 in row 1",
        ),
        (
            lambda f: f.assign(income_band=f.income_band.where(f.index != 7, "rich")),
            "unknown categories 'rich'",
        ),
        (lambda f: f.assign(crisis_6m=f.crisis_6m.where(f.index != 1, 2)), "not 0 or 1 in row 2"),
        (
            lambda f: f.assign(period=f.period.where(f.index != 1, "soon")),
            "not a month (expected YYYY-MM) in row 2",
        ),
        (lambda f: pd.concat([f, f.head(2)], ignore_index=True), "duplicate (person_id, period)"),
        (lambda f: f.head(0), "the file has no rows"),
    ],
)
def test_bad_data_is_named(frame: pd.DataFrame, small_spec, change, expected: str) -> None:
    assert expected in _details(change(frame), small_spec)


def test_all_problems_at_once(frame: pd.DataFrame, small_spec) -> None:
    bad = frame.assign(
        income_band=frame.income_band.where(frame.index != 7, "rich"),
        crisis_6m=frame.crisis_6m.where(frame.index != 1, 5),
    )
    details = _details(bad, small_spec)
    assert "income_band" in details and "crisis_6m" in details


def test_many_bad_rows_are_summarised(frame: pd.DataFrame, small_spec) -> None:
    details = _details(frame.assign(er_visits_90d=-1), small_spec)
    assert "rows 1, 2, 3, 4, 5 and 395 more" in details


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_files_round_trip(tmp_path: Path, frame: pd.DataFrame, small_spec, suffix: str) -> None:
    path = tmp_path / f"data{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    dataset = validate(read_table(path), small_spec)
    assert len(dataset.frame) == len(frame)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("data.txt", b"a,b", "unsupported file type"),
        ("data.parquet", b"not parquet at all", "cannot read it as parquet"),
        ("data.csv", b"\xff\xfe\x00garbage\x00", "cannot read it as csv"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(BadInputError, match=expected):
        read_table(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such file"):
        read_table(tmp_path / "absent.csv")


@settings(max_examples=80, deadline=None)
@given(
    n_periods=st.integers(8, 40),
    splits=st.integers(1, 4),
    horizon=st.integers(1, 8),
    step=st.integers(1, 4),
    window=st.integers(1, 4),
)
def test_splits_never_leak(
    n_periods: int, splits: int, horizon: int, step: int, window: int
) -> None:
    periods = np.arange(600, 600 + n_periods)
    try:
        found = temporal_splits(
            periods, splits=splits, horizon=horizon, step=step, min_train_periods=2, window=window
        )
    except BadInputError as err:
        assert n_periods < horizon + window - 1 + (splits - 1) * step + 2
        assert "too few" in str(err)
        return
    assert len(found) == splits
    for split in found:
        assert len(split.validation_periods) == window
        assert max(split.train_periods) <= min(split.validation_periods) - horizon
        assert not set(split.validation_periods) & set(split.train_periods)
        assert split.calibration_period > max(split.fit_periods)
    assert found[-1].validation_period == periods.max()
