"""Batch scoring on Spark (``local[2]``): the same scores, reasons and queue as in process."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from jobs.batch import load_period, read_scored_period
from jobs.spark_batch import PERIOD_COLUMN, _spark_failure, score_on_spark, spark_session
from kernel.errors import BadInputError, CheckFailedError, JobFailedError
from lifecycle.catalogue import read_report
from lifecycle.model_source import ModelSource
from lifecycle.verified_loading import LoadedModel, load_production, trust_for
from model.registry import connect
from model.scorer import scored_frame
from model.synthetic import generate_preset
from monitoring.periods import Monitoring
from outreach.cli import main
from store.db import Database, OptOut, QueueEntry, ScoredPeriod
from tests.support.homes import Released, copy_released

ROWS = 50_000


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    started = time.perf_counter()
    session = spark_session(
        "local[2]", app_name="outreach-tests", config={"spark.sql.shuffle.partitions": "2"}
    )
    print(f"Spark session started in {time.perf_counter() - started:.1f} s")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def loaded(released: Released) -> LoadedModel:
    return load_production(
        connect(released.home), released.name, trust=trust_for(released.home, signing=False)
    )


@pytest.fixture(scope="module")
def scored_month(
    spark: Any, loaded: LoadedModel, released: Released, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """The released population's latest month, scored on Spark: (output folder, period)."""
    folder = tmp_path_factory.mktemp("spark-month")
    data = folder / "population.parquet"
    released.frame.to_parquet(data, index=False)
    period = released.periods[-1]
    result = score_on_spark(spark, loaded, str(data), str(folder / "scored"), period=period)
    assert result.periods == (period,)
    return folder / "scored", period


def test_spark_scores_equal_the_in_process_scores_on_50_000_rows(
    spark: Any, loaded: LoadedModel, tmp_path: Path
) -> None:
    frame = generate_preset(unit="individual", rows=ROWS, seed=11, periods=20)
    data = tmp_path / "population.parquet"
    frame.to_parquet(data, index=False)
    started = time.perf_counter()
    result = score_on_spark(spark, loaded, str(data), str(tmp_path / "scored"))
    print(f"Spark scored {ROWS:,} rows in {time.perf_counter() - started:.1f} s")
    assert result.rows == ROWS
    assert len(result.periods) == 20
    got = pd.read_parquet(tmp_path / "scored")
    assert len(got) == ROWS
    key = ["person_id", "period"]
    expected = pd.concat(
        [frame[key], scored_frame(loaded.model, frame).drop(columns="person_id")], axis=1
    )
    both = expected.merge(
        got.astype({"period": str}), on=key, suffixes=("", "_spark"), validate="1:1"
    )
    assert len(both) == ROWS
    np.testing.assert_allclose(both["score_spark"], both["score"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(both["percentile_spark"], both["percentile"], rtol=0, atol=1e-12)
    assert (both["band_spark"].astype(str) == both["band"].astype(str)).all()
    assert [json.loads(r) for r in both["reasons_spark"]] == [
        json.loads(r) for r in both["reasons"]
    ]
    assert (both[PERIOD_COLUMN].astype(str) == both["period"]).all()
    assert set(got["model_name"]) == {loaded.name}
    assert set(got["model_version"]) == {loaded.version}
    assert set(got["audit_id"]) == {loaded.audit_id}
    # Every input column is kept (the monitoring snapshot and drift read the features).
    assert set(frame.columns) <= set(got.columns)


def _queue(database_url: str, name: str, period: str) -> list[tuple[Any, ...]]:
    from store.db import Database

    with Database(database_url).session() as session:
        rows = session.scalars(
            select(QueueEntry)
            .where(QueueEntry.model_name == name, QueueEntry.period == period)
            .order_by(QueueEntry.person_id)
        ).all()
        return [
            (
                e.id,
                e.person_id,
                e.rank,
                e.source,
                e.selection_probability,
                e.score,
                e.percentile,
                e.band,
                e.reasons,
                e.area,
                e.model_version,
                e.audit_id,
            )
            for e in rows
        ]


def _kept(database_url: str, name: str, period: str) -> tuple[Any, ...]:
    from store.db import Database

    with Database(database_url).session() as session:
        row = session.scalars(
            select(ScoredPeriod).where(
                ScoredPeriod.model_name == name, ScoredPeriod.period == period
            )
        ).one()
        return (row.snapshot_sha256, row.population, row.capacity, row.lottery_places, row.drift)


def test_queue_load_gives_the_queue_score_period_gave(
    released: Released, scored_month: tuple[Path, str], tmp_path: Path
) -> None:
    folder, period = scored_month
    mine = copy_released(released, tmp_path)
    source = ModelSource(mine.home, mine.name)
    source.refresh()
    serving = source.current
    assert serving is not None
    monitoring = Monitoring.from_report(
        mine.home.monitoring, read_report(connect(mine.home), serving.audit_id)
    )
    before = _queue(released.database_url, released.name, period)
    assert before
    result = load_period(
        mine.db, serving, read_scored_period(folder, period), period=period, monitoring=monitoring
    )
    assert result.lottery > 0  # the released policy turns the evaluation lottery on
    assert _queue(mine.database_url, mine.name, period) == before
    assert _kept(mine.database_url, mine.name, period) == _kept(
        released.database_url, released.name, period
    )


def _rewrite(folder: Path, period: str, target: Path, change: Any) -> Path:
    frame = read_scored_period(folder, period)
    change(frame)
    (target / f"{PERIOD_COLUMN}={period}").mkdir(parents=True)
    frame.to_parquet(target / f"{PERIOD_COLUMN}={period}" / "part-0.parquet", index=False)
    return target


def test_a_file_from_another_version_or_changed_is_refused(
    released: Released, scored_month: tuple[Path, str], tmp_path: Path
) -> None:
    folder, period = scored_month
    mine = copy_released(released, tmp_path)
    source = ModelSource(mine.home, mine.name)
    source.refresh()
    serving = source.current
    assert serving is not None
    before = _queue(mine.database_url, mine.name, period)

    def other_version(frame: pd.DataFrame) -> None:
        frame["model_version"] = str(int(serving.version) + 1)

    other = _rewrite(folder, period, tmp_path / "other", other_version)
    with pytest.raises(BadInputError, match="not by the verified production version"):
        load_period(mine.db, serving, read_scored_period(other, period), period=period)

    def lowered(frame: pd.DataFrame) -> None:
        top = frame["score"].idxmax()
        frame.loc[top, "score"] = 0.0

    changed = _rewrite(folder, period, tmp_path / "changed", lowered)
    with pytest.raises(CheckFailedError, match="is not the verified model's"):
        load_period(mine.db, serving, read_scored_period(changed, period), period=period)
    assert _queue(mine.database_url, mine.name, period) == before  # nothing written

    runner = CliRunner()
    args = ["--home", str(mine.home.root), "queue", "load", "--from", str(other)]
    outcome = runner.invoke(main, [*args, "--period", period, "--model", mine.name])
    assert outcome.exit_code == 2, outcome.output
    assert "not by the verified production version" in outcome.output
    outcome = runner.invoke(main, [*args, "--period", "1999-01", "--model", mine.name])
    assert outcome.exit_code == 2, outcome.output
    assert f"periods present: {period}" in outcome.output


def test_the_cli_scores_on_spark_and_loads_the_queue(
    spark: Any, released: Released, tmp_path: Path
) -> None:
    mine = copy_released(released, tmp_path)
    period = released.periods[-1]
    data = tmp_path / "population.parquet"
    released.frame.to_parquet(data, index=False)
    before = _queue(mine.database_url, mine.name, period)
    runner = CliRunner()
    home = ["--home", str(mine.home.root)]
    out = tmp_path / "scored"
    score = [*home, "score", "--engine", "spark", "--model", mine.name, "--master", "local[2]"]
    outcome = runner.invoke(
        main, [*score, "--data", str(data), "--out", str(out), "--period", period]
    )
    assert outcome.exit_code == 0, outcome.output
    assert f"on Spark into {out}" in outcome.output
    # One scored-file contract: the in-process file has the Spark job's columns and rows.
    local = tmp_path / "local.parquet"
    here_args = [*home, "score", "--model", mine.name, "--data", str(data), "--period", period]
    in_process = runner.invoke(main, [*here_args, "--out", str(local)])
    assert in_process.exit_code == 0, in_process.output
    on_spark = pd.read_parquet(out).sort_values("person_id").reset_index(drop=True)
    here = pd.read_parquet(local).sort_values("person_id").reset_index(drop=True)
    assert list(here.columns) == list(on_spark.columns)
    assert (here[PERIOD_COLUMN] == period).all()
    np.testing.assert_allclose(here["score"], on_spark["score"], rtol=0, atol=1e-12)
    for column in ("band", "reasons", "model_name", "model_version", "audit_id"):
        assert (here[column].astype(str) == on_spark[column].astype(str)).all(), column
    load = [*home, "queue", "load", "--from", str(out), "--period", period, "--model", mine.name]
    outcome = runner.invoke(main, load)
    assert outcome.exit_code == 0, outcome.output
    assert f"{period}: loaded" in outcome.output
    assert _queue(mine.database_url, mine.name, period) == before

    # An opted-out person is not scored on Spark either: not in the output, not queued.
    person = str(released.frame.loc[released.frame["period"] == period, "person_id"].iloc[-1])
    with Database(mine.database_url).session() as session:
        session.add(OptOut(person_id=person, recorded_by="test"))
    outcome = runner.invoke(
        main, [*score, "--data", str(data), "--out", str(out), "--period", period]
    )
    assert outcome.exit_code == 0, outcome.output
    assert "opted out (1 in all) left out" in outcome.output
    written = pd.read_parquet(out / f"{PERIOD_COLUMN}={period}")
    assert person not in set(written["person_id"].astype(str))
    assert len(written) == int((released.frame["period"] == period).sum()) - 1

    # Bad input: no --out, not Parquet, a missing column (exit 2).
    outcome = runner.invoke(main, [*score, "--data", str(data)])
    assert outcome.exit_code == 2 and "--out" in outcome.output
    csv = tmp_path / "population.csv"
    csv.write_text("person_id\n1\n")
    outcome = runner.invoke(main, [*score, "--data", str(csv), "--out", str(out)])
    assert outcome.exit_code == 2 and "reads Parquet" in outcome.output
    partial = tmp_path / "partial.parquet"
    released.frame.drop(columns=["er_visits_90d"]).to_parquet(partial, index=False)
    outcome = runner.invoke(main, [*score, "--data", str(partial), "--out", str(out)])
    assert outcome.exit_code == 2 and "missing columns: er_visits_90d" in outcome.output
    # A value outside the model's input checks stops the job (exit 2), naming the column.
    wrong = tmp_path / "wrong.parquet"
    bad = released.frame.loc[released.frame["period"] == period].copy()
    bad.loc[bad.index[0], "er_visits_90d"] = -5
    bad.to_parquet(wrong, index=False)
    outcome = runner.invoke(main, [*score, "--data", str(wrong), "--out", str(tmp_path / "w")])
    assert outcome.exit_code == 2, outcome.output
    assert "er_visits_90d" in outcome.output

    # A job that fails outside the input (here the output cannot be written: its parent is a
    # file) is exit 1 with Spark's own words, no stack trace, and the output as it was.
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    outcome = runner.invoke(
        main, [*score, "--data", str(data), "--out", str(blocked / "scored"), "--period", period]
    )
    assert outcome.exit_code == 1, outcome.output
    assert "the Spark job failed:" in outcome.output and "Exception" in outcome.output
    assert "\tat " not in outcome.output and "Traceback" not in outcome.output
    assert blocked.read_text() == "not a folder"

    # No servable model (exit 3), checked before Spark is asked for anything.
    empty = ["--home", str(tmp_path / "empty"), "score", "--engine", "spark"]
    outcome = runner.invoke(main, [*empty, "--data", str(data), "--out", str(out)])
    assert outcome.exit_code == 3, outcome.output
    assert "no verified production model" in outcome.output


JAVA_FAILURE = """An error occurred while calling o231.parquet.
: org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 4.0 failed
\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(DAGScheduler.scala:2856)
\tat scala.collection.immutable.List.foreach(List.scala:333)
Caused by: org.apache.spark.SparkException: Task failed while writing rows.
\tat org.apache.spark.sql.errors.QueryExecutionErrors$.taskFailedWhileWritingRowsError(...)
Caused by: java.lang.OutOfMemoryError: Java heap space
\tat java.base/java.util.Arrays.copyOf(Arrays.java:3537)
\t... 12 more
"""
PYTHON_WORKER_FAILURE = """An exception was thrown from the Python worker. Please see the stack trace below.
Traceback (most recent call last):
  File "/usr/lib/python3/worker.py", line 1247, in main
    process()
MemoryError: Unable to allocate 3.00 GiB for an array
"""  # noqa: E501


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (JAVA_FAILURE, "java.lang.OutOfMemoryError: Java heap space"),
        (PYTHON_WORKER_FAILURE, "MemoryError: Unable to allocate 3.00 GiB for an array"),
        (JAVA_FAILURE.partition("Caused by")[0], "SparkException: Job aborted due to stage"),
        ("something odd\nand more", "something odd"),
    ],
)
def test_a_failed_job_is_told_in_spark_s_words_without_its_stack(text: str, said: str) -> None:
    error = _spark_failure(RuntimeError(text))
    assert isinstance(error, JobFailedError) and error.exit_code == 1
    assert said in error.message and "\tat " not in str(error) and "File " not in str(error)


def test_a_validation_failure_inside_the_job_stays_bad_input() -> None:
    text = "PythonException: DataValidationError: 1 row fails\n  - er_visits_90d: -5 below 0\n"
    error = _spark_failure(RuntimeError(text))
    assert isinstance(error, BadInputError) and error.exit_code == 2
    assert error.details == ("er_visits_90d: -5 below 0",)


def test_spark_and_queue_load_resolve_as_the_service_does_under_a_freeze(
    spark: Any, released: Released, tmp_path: Path
) -> None:
    """Under an incident freeze, Spark scores with the pinned version, never the one the alias
    was moved to; withdrawn, it refuses in the service's words (exit 3) before any job."""
    from lifecycle.catalogue import production_alias

    mine = copy_released(released, tmp_path)
    registry = connect(mine.home)
    pinned = production_alias(registry, mine.name)
    versions = registry.client.search_model_versions(f"name='{mine.name}'")
    moved = next(str(v.version) for v in versions if str(v.version) != pinned)
    runner = CliRunner()
    home = ["--home", str(mine.home.root)]
    freeze = [*home, "incident", "freeze", mine.name, "--note", "complaint", "--by", "board"]
    assert runner.invoke(main, freeze).exit_code == 0
    registry.client.set_registered_model_alias(mine.name, "production", moved)
    period = released.periods[-1]
    data = tmp_path / "month.parquet"
    released.frame.loc[released.frame["period"].astype(str) == period].to_parquet(data, index=False)
    out = tmp_path / "scored"
    score = [*home, "score", "--engine", "spark", "--model", mine.name, "--master", "local[2]"]
    outcome = runner.invoke(
        main, [*score, "--data", str(data), "--out", str(out), "--period", period]
    )
    assert outcome.exit_code == 0, outcome.output
    assert f"(model {mine.name} v{pinned}," in outcome.output
    written = pd.read_parquet(out)
    assert set(written["model_version"].astype(str)) == {pinned}
    load = [*home, "queue", "load", "--from", str(out), "--period", period, "--model", mine.name]
    loaded = runner.invoke(main, load)
    assert loaded.exit_code == 0 and f"v{pinned}," in loaded.output, loaded.output

    stop = [*home, "models", "withdraw", mine.name, "--by", "oversight", "--note", "harm"]
    assert runner.invoke(main, stop).exit_code == 0
    refused = runner.invoke(main, [*score, "--data", str(data), "--out", str(tmp_path / "again")])
    assert refused.exit_code == 3, refused.output
    assert "withdrawn by oversight" in refused.output and "harm" in refused.output
    assert not (tmp_path / "again").exists()
