"""``outreach score``: batch scoring of a period with the verified production model."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import click

from kernel.errors import BadInputError, OutreachError
from kernel.home import Home
from outreach.cli.base import (
    check_month,
    main,
    open_service_db,
    progress,
    queue_target,
    reported,
    served_source,
    verified_production,
    write_into_queue,
)


@main.command("score")
@click.option("--data", type=click.Path(), required=True)
@click.option(
    "--period",
    callback=check_month,
    help="YYYY-MM (default: the latest period in the data; with --out or on Spark: every period).",
)
@click.option("--model", "model_name", default="individual_outreach", show_default=True)
@click.option(
    "--out",
    type=click.Path(),
    help="Write scores here, not the queue (on Spark: a Parquet folder, by period).",
)
@click.option(
    "--engine",
    type=click.Choice(["process", "spark"]),
    default="process",
    show_default=True,
    help="process: in this process; spark: MLflow's pyfunc Spark UDF over Parquet.",
)
@click.option(
    "--master", default="local[*]", show_default=True, help="Spark master (--engine spark)."
)
@click.pass_obj
@reported
def score_command(
    home: Home,
    data: str,
    period: str | None,
    model_name: str,
    out: str | None,
    engine: str,
    master: str,
) -> None:
    """Score a period with reasons into the outreach queue (or a file), in one transaction."""
    if engine == "spark":
        _score_on_spark(home, data, period, model_name, out, master)
        return
    from model.data import read_month, read_table

    # One month: from Parquet only its rows are read (the filter is pushed into the reader); a
    # CSV cannot be filtered while it is read, so it is read whole. The month is read on a
    # second thread (Arrow decodes without holding the interpreter) while this one verifies the
    # model and imports the scoring code: by the file's one month column, when the file has
    # exactly one holding the period, and used only if it is the verified model's time column.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="outreach-read") as pool:
        early = pool.submit(_month_by_its_column, data, period) if period is not None else None
        db = open_service_db(home)  # one connection for the model's anchors and the queue
        serving = served_source(home, model_name, verb="score with", db=db).current
        assert serving is not None
        time_column, id_column = serving.model.time_column, serving.model.id_column
        if out is not None and period is None:
            frame, pushed = read_table(data), True  # every period
        else:
            import jobs.batch  # noqa: F401  (while the file is read)

            target = None if out is not None else queue_target(home, serving.audit_id, db=db)
            found = early.result() if early is not None else None
            if found is not None and found[0] == time_column:
                frame, pushed = found[1], found[2]
            else:  # no single month column, or not the model's: read by the model's own
                del found
                frame, pushed = read_month(data, time_column, period, keep=[id_column])
    if not pushed:
        progress(
            f"read every row of {data} ({Path(data).suffix or 'no extension'}: a month can "
            "be read alone only from Parquet)"
        )
    from jobs.batch import score_file, score_period

    if out is not None:
        from model.synthetic import write_population

        scored = score_file(db, serving, frame, period=period)
        write_population(scored.frame, out)
        click.echo(
            f"wrote {len(scored.frame):,} scored rows of {', '.join(scored.periods)} to {out} "
            f"(model {serving.name} v{serving.version}, audit {serving.audit_id}; each row "
            "names its month in scored_period; percentiles against the release's validation "
            f"population, the same in every month); {scored.opted_out:,} opted out, not scored"
        )
        return
    write_into_queue(home, serving, score_period, frame, period, "scored", target=target)


def _month_by_its_column(data: str, period: str) -> tuple[str, Any, bool] | None:
    """``period``'s rows read by the file's one month column (:func:`model.data.month_column`),
    before the model says which column is its time column: the column, the rows and whether the
    filter was pushed into the reader; ``None`` if no single column holds the period, or the
    rows could not be read (the model's own reading then names the problem). Decoded on this
    thread alone: beside the verification on a machine of two cores, Arrow's pool of threads
    would take the core the verification runs on."""
    from model.data import month_column, read_month

    column = month_column(data, period, threads=False)
    if column is None:
        return None
    try:
        frame, pushed = read_month(data, column, period, threads=False)
    except OutreachError:
        return None
    if not pushed or list(frame.columns) == [column]:  # not the month's rows: read again
        return None
    return column, frame, pushed


def _score_on_spark(
    home: Home, data: str, period: str | None, model_name: str, out: str | None, master: str
) -> None:
    if out is None:
        raise BadInputError("--engine spark writes a Parquet folder: give it with --out PATH")
    if not Path(data).exists():
        raise BadInputError(f"{data}: no such file or folder")
    if Path(data).is_file() and Path(data).suffix.lower() not in (".parquet", ".pq"):
        raise BadInputError(f"{data}: --engine spark reads Parquet (a file or a folder)")
    from jobs.spark_batch import score_on_spark, spark_session

    loaded = verified_production(home, model_name)  # before any Spark work starts
    started = time.perf_counter()
    spark = spark_session(master)
    progress(
        f"Spark session on {spark.sparkContext.master} in {time.perf_counter() - started:.1f} s"
    )
    from jobs.batch import opted_out

    excluded = opted_out(open_service_db(home))
    result = score_on_spark(
        spark, loaded, data, out, period=period, exclude=excluded, progress=progress
    )
    click.echo(
        f"scored {result.rows:,} rows of {', '.join(result.periods)} on Spark into {result.out} "
        f"(model {loaded.name} v{loaded.version}, audit {loaded.audit_id}); people who opted "
        f"out ({len(excluded):,} in all) left out"
    )
