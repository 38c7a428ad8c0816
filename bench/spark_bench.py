"""Batch scoring on Spark against the same work in process, side by side, on 1,000,000 rows.

Both produce the same file: every row's score, percentile, band and reasons (JSON), read from
and written to Parquet. In process: pandas + :func:`model.scorer.scored_frame` in chunks. Spark:
``outreach score --engine spark``'s job (:func:`jobs.spark_batch.score_on_spark`) on
``local[*]`` through MLflow's pyfunc Spark UDF. On two cores Spark is expected to be slower: it
pays for the JVM, Arrow transfers to Python workers and the partitioned write, and gains nothing
from more machines; it is there for populations that do not fit one.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from bench.monitoring_bench import _month, _release
from bench.scale import pick
from jobs.batch import load_period, read_scored_period, score_period
from jobs.spark_batch import score_on_spark, spark_session
from lifecycle.catalogue import read_report
from lifecycle.verified_loading import load_production, trust_for
from model.registry import connect
from model.scorer import scored_frame
from model.synthetic import generate_preset
from monitoring.group_shares import audited_attributes
from monitoring.periods import Monitoring
from store.db import Database

ROWS = pick(1_000_000, 16_000)
CHUNK = pick(100_000, 4_000)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    rows: list[tuple[str, str]] = []

    def report(name: str, value: str) -> None:
        rows.append((name, value))
        _progress(f"  {name}: {value}")

    _progress(f"benchmark: Spark against in process, {ROWS:,} rows ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory(prefix="outreach-spark-bench-") as folder:
        root = Path(folder)
        home, spec, serving = _release(root)
        loaded = load_production(connect(home), spec.name, trust=trust_for(home, signing=False))
        frame = generate_preset(unit="individual", rows=ROWS, seed=1)
        count = len(frame)  # whole people per month: a few rows under ROWS
        data = root / "population.parquet"
        frame.to_parquet(data, index=False)
        del frame

        started = time.perf_counter()
        population = pd.read_parquet(data)
        parts = [
            scored_frame(loaded.model, population.iloc[start : start + CHUNK])
            for start in range(0, len(population), CHUNK)
        ]
        pd.concat(parts, ignore_index=True).to_parquet(root / "in-process.parquet", index=False)
        local = time.perf_counter() - started
        report(
            "in process: read, score + reasons for every row, write",
            f"{local:.1f} s ({count / local:,.0f} rows/s)",
        )
        del population, parts

        started = time.perf_counter()
        spark = spark_session("local[*]", app_name="outreach-bench")
        report(
            "Spark: session start (local[*], JVM included)",
            f"{time.perf_counter() - started:.1f} s",
        )
        try:
            started = time.perf_counter()
            result = score_on_spark(spark, loaded, str(data), str(root / "spark"))
            seconds = time.perf_counter() - started
            assert result.rows == count, result
            report(
                "Spark: read, score + reasons for every row (pyfunc UDF), write by period",
                f"{seconds:.1f} s ({count / seconds:,.0f} rows/s, "
                f"{local / seconds:.2f}x the in-process rate)",
            )
            month, period = _month(spec)
            people = len(month)
            month.to_parquet(root / "month.parquet", index=False)
            started = time.perf_counter()
            score_on_spark(spark, loaded, str(root / "month.parquet"), str(root / "month-out"))
            report(
                f"one month of {people:,} people: Spark score",
                f"{time.perf_counter() - started:.1f} s",
            )
        finally:
            spark.stop()

        audit = read_report(connect(home), serving.audit_id)

        def into_queue(write: Any, frame: pd.DataFrame, name: str) -> tuple[Any, float]:
            """``write`` (load_period or score_period) into its own database; with seconds."""
            db = Database(f"sqlite:///{root / name}.db")
            db.upgrade()
            started = time.perf_counter()
            result = write(
                db,
                serving,
                frame,
                period=period,
                attributes=audited_attributes(audit),
                monitoring=Monitoring.from_report(root / f"monitoring-{name}", audit),
                progress=_progress,
            )
            return result, time.perf_counter() - started

        started = time.perf_counter()
        scored = read_scored_period(root / "month-out", period)
        reading = time.perf_counter() - started
        loaded_month, seconds = into_queue(load_period, scored, "loaded")
        seconds += reading
        assert loaded_month.scored == people, loaded_month
        report(
            "  then queue load (read, check every score and queued reason, list, lottery, "
            "monitoring)",
            f"{seconds:.1f} s ({people / seconds:,.0f} rows/s; {loaded_month.queued:,} queued)",
        )
        del scored
        in_process, seconds = into_queue(score_period, month, "scored")
        assert in_process.queued == loaded_month.queued, (in_process, loaded_month)
        report(
            "  against score in process (score + reasons, list, lottery, monitoring)",
            f"{seconds:.1f} s ({people / seconds:,.0f} rows/s)",
        )

    width = max(len(r[0]) for r in rows)
    print(f"\n{f'measurement ({count:,} rows unless named)':<{width}}  result")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
