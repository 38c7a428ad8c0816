"""Batch scoring on Spark: the verified production model through MLflow's pyfunc Spark UDF.

The model is verified before the job starts, exactly as the service verifies it
(:func:`lifecycle.verified_loading.load_production`: a signed release attestation of its exact
bytes, a servable decision, no withdrawal). The job then runs a pyfunc built from those verified
bytes and the installed scoring code (MLflow "models from code", :mod:`model.pyfunc_code`): no
pickle from the registry is ever loaded, and what runs on the executors is what was audited.

The output is Parquet partitioned by ``scored_period`` (``YYYY-MM``): every input column, then
``score``, ``percentile``, ``band``, ``reasons`` (JSON, as :func:`model.scorer.scored_frame`
writes them) and the provenance of every row (``model_name``, ``model_version``, ``audit_id``),
which ``outreach queue load`` checks against the production version before loading a period.

pyspark is an optional extra (``pip install '.[spark]'``) and imported only here, when used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernel.errors import BadInputError, DataValidationError, JobFailedError
from model.rules import month_problem

if TYPE_CHECKING:  # batch scoring imports this module's column names, not the model loading
    from lifecycle.verified_loading import LoadedModel

#: The partition column of the output (the input's time column keeps its own name and values).
PERIOD_COLUMN = "scored_period"
#: The scoring columns the job adds, in order, with their Spark SQL types.
SCORE_COLUMNS = (("score", "double"), ("percentile", "double"), ("band", "string"))
REASONS_COLUMN = "reasons"
#: The provenance columns on every output row.
PROVENANCE = ("model_name", "model_version", "audit_id")


@dataclass(frozen=True)
class SparkResult:
    """What a Spark scoring job wrote."""

    out: str
    rows: int
    periods: tuple[str, ...]


def spark_session(
    master: str = "local[*]",
    *,
    app_name: str = "outreach-score",
    config: Mapping[str, str] | None = None,
) -> Any:
    """A SparkSession on ``master`` (an active session of this process is reused as it is),
    with ``config`` beside this module's own settings.

    Raises
    ------
    BadInputError
        If pyspark (the ``spark`` extra) is not installed.
    JobFailedError
        If Spark cannot start (no Java, a master it cannot reach).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as err:
        raise BadInputError(
            "scoring on Spark needs pyspark: pip install -c constraints.txt -e '.[spark]'"
        ) from err
    if master.startswith("local"):
        # Local executors run this interpreter (the one with the outreach package) unless told
        # otherwise; a cluster's executors run its PYSPARK_PYTHON, which needs the package too.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName(app_name)
    settings = {
        "spark.ui.enabled": "false",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        **(config or {}),
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as err:  # no Java, a master that cannot be reached: Spark's own words
        raise JobFailedError(
            f"cannot start a Spark session on {master}: {_engine_summary(str(err))}",
            details=["Spark needs Java 17 on PATH (or JAVA_HOME) and a reachable master"],
        ) from err
    # An existing session keeps its settings; the output's overwrite must replace periods only.
    session.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")
    return session


@contextmanager
def verified_pyfunc(loaded: LoadedModel) -> Iterator[Path]:
    """A local pyfunc folder (models from code) holding ``loaded``'s verified artifact bytes.

    The bytes are written as the release attested them and checked against the attested sha256
    before MLflow sees them; the folder is removed afterwards.
    """
    import mlflow

    from model.scorer import ARTIFACT_NAME, PYFUNC_CODE

    data = json.dumps(loaded.model.to_dict(), indent=1, sort_keys=True).encode()
    if hashlib.sha256(data).hexdigest() != loaded.artifact_sha256:
        raise BadInputError(
            f"{loaded.name} version {loaded.version}: the scoring model's bytes do not match "
            "the attested sha256; not scoring"
        )
    folder = Path(tempfile.mkdtemp(prefix="outreach-spark-"))
    try:
        artifact = folder / ARTIFACT_NAME
        artifact.write_bytes(data)
        mlflow.pyfunc.save_model(
            str(folder / "model"),
            python_model=str(PYFUNC_CODE),
            artifacts={"scoring_model": str(artifact)},
            pip_requirements=[],  # the job runs in this environment (env_manager="local")
        )
        yield folder / "model"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _period_expression(frame: Any, column: str) -> Any:
    """``YYYY-MM`` of the time column (text such as ``2024-05`` or ``2024-05-17``, or dates)."""
    from pyspark.sql import functions as sf
    from pyspark.sql.types import DateType, StringType, TimestampType

    kind = frame.schema[column].dataType
    if isinstance(kind, DateType | TimestampType):
        return sf.date_format(sf.col(column), "yyyy-MM")
    if isinstance(kind, StringType):
        return sf.substring(sf.trim(sf.col(column)), 1, 7)
    raise DataValidationError(
        "the data cannot be scored",
        details=[f"{column}: expected YYYY-MM text or dates, got {kind.simpleString()}"],
    )


#: A line of an engine's message naming an exception ("java.lang.OutOfMemoryError: ...").
_EXCEPTION_LINE = re.compile(r"^(?:Caused by: )?[\w.$]*(?:Error|Exception)\b:?")


def _engine_summary(text: str) -> str:
    """The lines of a Spark (Java or Python worker) failure that say what happened, without
    the stack frames: the deepest "Caused by", else the first exception line."""
    lines = [line.strip().removeprefix(": ") for line in text.splitlines()]  # Py4J's ": " too
    lines = [line for line in lines if line and not line.startswith(("at ", "File ", "..."))]
    named = [line for line in lines if _EXCEPTION_LINE.match(line)]
    causes = [line for line in named if line.startswith("Caused by: ")]
    chosen = causes[-1].removeprefix("Caused by: ") if causes else (named or lines or [text])[0]
    return chosen[:400]


def _spark_failure(err: Exception) -> BadInputError | JobFailedError:
    """A failed job as the project's error: a validation error raised inside the job as that
    error (exit 2), anything else (memory, a lost executor, disk) as :class:`JobFailedError`
    with the engine's own words, never its stack trace."""
    text = str(err)
    found = re.search(r"DataValidationError: (.*)((?:\n  - .*)*)", text)
    if found is None:
        return JobFailedError(
            f"the Spark job failed: {_engine_summary(text)}; nothing of it was kept",
            details=["Spark's own log (stderr) has the whole trace"],
        )
    details = [d.strip()[2:] for d in found.group(2).splitlines() if d.strip()]
    return DataValidationError(found.group(1).strip(), details=details[:20])


def score_on_spark(
    spark: Any,
    loaded: LoadedModel,
    data: str,
    out: str,
    *,
    period: str | None = None,
    exclude: Collection[str] = (),
    progress: Callable[[str], None] = lambda _: None,
) -> SparkResult:
    """Score Parquet ``data`` with the verified model on Spark; write ``out`` by period.

    Every period in ``data`` is scored, or only ``period``; an existing ``out`` keeps its other
    periods (dynamic partition overwrite). Rows whose id (as text) is in ``exclude`` (the people
    who opted out) are left out before scoring: they are neither scored nor written.

    Raises
    ------
    BadInputError
        If the data cannot be read or lacks the model's columns, a period is malformed, or a row
        fails the model's input checks (the job stops; nothing of that period is kept).
    JobFailedError
        If the job fails for any other reason (memory, a lost executor, an unwritable output):
        Spark's own words without its stack trace; no period of ``out`` is replaced.
    """
    import mlflow
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException
    from pyspark.sql import functions as sf

    model = loaded.model
    try:
        frame = spark.read.parquet(data)
    except (PySparkException, Py4JJavaError) as err:
        raise BadInputError(f"{data}: cannot read it as Parquet: {str(err)[:500]}") from err
    needed = [model.id_column, model.time_column, *model.feature_names]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataValidationError(
            "the data cannot be scored", details=[f"missing columns: {', '.join(missing)}"]
        )
    clashes = [c for c in (PERIOD_COLUMN, REASONS_COLUMN, *PROVENANCE) if c in frame.columns]
    clashes += [c for c, _ in SCORE_COLUMNS if c in frame.columns]
    if clashes:
        raise DataValidationError(
            "the data cannot be scored",
            details=[f"columns the output adds are already present: {', '.join(clashes)}"],
        )
    frame = frame.withColumn(PERIOD_COLUMN, _period_expression(frame, model.time_column))
    try:
        found = sorted(str(row[0]) for row in frame.select(PERIOD_COLUMN).distinct().collect())
    except (PySparkException, Py4JJavaError) as err:
        raise BadInputError(f"{data}: cannot read it as Parquet: {str(err)[:500]}") from err
    bad = [p for p in found if month_problem(p) is not None]  # the one month rule
    if bad or not found:
        raise DataValidationError(
            "the data cannot be scored",
            details=[f"{model.time_column}: not a month YYYY-MM: {', '.join(map(str, bad[:5]))}"]
            if bad
            else ["no rows"],
        )
    if period is not None:
        if period not in found:
            raise DataValidationError(
                f"no rows for period {period}", details=[f"periods present: {', '.join(found)}"]
            )
        frame = frame.where(sf.col(PERIOD_COLUMN) == period)
        found = [period]
    if exclude:  # an opt-out means not scored, on Spark as in process
        frame = frame.where(~sf.col(model.id_column).cast("string").isin(sorted(exclude)))
    result = ", ".join(f"{name} {kind}" for name, kind in SCORE_COLUMNS)
    progress(f"verified {loaded.name} v{loaded.version} (audit {loaded.audit_id}); scoring")
    with verified_pyfunc(loaded) as folder:
        udf = mlflow.pyfunc.spark_udf(
            spark,
            str(folder),
            result_type=f"{result}, {REASONS_COLUMN} string",
            env_manager="local",
        )
        scored = frame.withColumn(
            "_scored", udf(sf.struct(*[sf.col(c) for c in model.feature_names]))
        )
        columns = [c for c in frame.columns if c != PERIOD_COLUMN]
        scored = scored.select(
            *columns,
            *[sf.col(f"_scored.{c}").alias(c) for c, _ in SCORE_COLUMNS],
            sf.col(f"_scored.{REASONS_COLUMN}").alias(REASONS_COLUMN),
            sf.lit(loaded.name).alias("model_name"),
            sf.lit(loaded.version).alias("model_version"),
            sf.lit(loaded.audit_id).alias("audit_id"),
            sf.col(PERIOD_COLUMN),
        )
        try:
            scored.write.mode("overwrite").partitionBy(PERIOD_COLUMN).parquet(out)
        except (PySparkException, Py4JJavaError) as err:
            raise _spark_failure(err) from err
    rows = spark.read.parquet(out).where(sf.col(PERIOD_COLUMN).isin(found)).count()
    progress(f"wrote {rows:,} scored rows for {', '.join(found)} to {out}")
    return SparkResult(out, rows, tuple(found))
