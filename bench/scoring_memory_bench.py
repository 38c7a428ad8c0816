"""Memory that follows the work: ``outreach score --period P`` on one month of a Parquet file of
eight months (target: a month of 1,000,000 people under 8 s and 2 GB at peak).

A small experiment is released (and approved as an oversight user would, :mod:`bench.releasing`).
The file holds 1,000,000 distinct people in each of 8 months (8,000,000 rows), written in row
groups that each hold every month (as a file sorted by person, then month, would), so the reader
cannot skip a row group by its statistics: the month filter is applied to every row group as it
is decoded. The command runs in its own process, as a user runs it; its wall time and peak
resident memory (``getrusage`` of the child) are printed, and its CPU time (on a loaded machine
the wall time follows the load; the CPU time much less). In the same run, the peer: what the
command did before, reading every month into memory and then picking the month (no scoring),
in its own process too. A CSV cannot be filtered while it is read: it is still read whole.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench.releasing import outreach_command, outreach_env, released, small_spec
from bench.scale import pick
from lifecycle.release import policy_for
from model.spec import ExperimentSpec
from model.synthetic import generate_preset

PEOPLE = pick(1_000_000, 16_000)
MONTHS = 8
ROW_GROUPS = pick(10, 2)
TARGET_S = 8.0
TARGET_GB = 2.0

#: Runs the command in a child process; prints its wall seconds, exit code and peak RSS (KiB).
MEASURE = textwrap.dedent(
    """
    import json, resource, subprocess, sys, time
    started = time.perf_counter()
    done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
    print(json.dumps({
        "seconds": time.perf_counter() - started,
        "code": done.returncode,
        "peak_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        "cpu_s": resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
        + resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime,
        "stdout": done.stdout,
        "stderr": done.stderr[-2000:],
    }))
    """
)

#: What ``outreach score`` did before: every month read, then the month picked (no scoring).
READ_WHOLE = textwrap.dedent(
    """
    import sys
    from model.data import read_table
    frame = read_table(sys.argv[1])
    month = frame.loc[frame[sys.argv[2]].astype(str) == sys.argv[3]]
    print(len(month))
    """
)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _measure(args: list[str], env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    measured: dict[str, object] = json.loads(out)
    if measured["code"] != 0:
        raise RuntimeError(f"{' '.join(args[:3])} ... failed: {measured['stderr']}")
    return measured


def write_months(spec: ExperimentSpec, path: Path) -> tuple[str, int]:
    """An 8-month Parquet file with PEOPLE distinct people in each month; the last month."""
    per_month = generate_preset(unit="individual", rows=PEOPLE, seed=11, periods=MONTHS)
    id_column, time_column = spec.data.id_column, spec.data.time_column
    months = sorted(per_month[time_column].astype(str).unique())
    index = per_month[time_column].astype(str).map({m: i for i, m in enumerate(months)})
    per_month[id_column] = per_month[id_column].to_numpy(dtype=np.int64) * MONTHS + index
    assert per_month[id_column].is_unique and len(per_month) == PEOPLE
    writer: pq.ParquetWriter | None = None
    try:
        for rows in np.array_split(np.arange(PEOPLE), ROW_GROUPS):
            part = per_month.iloc[rows]
            block = pd.concat(
                [part.assign(**{time_column: month}) for month in months], ignore_index=True
            )
            table = pa.Table.from_pandas(block, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=len(block))
    finally:
        if writer is not None:
            writer.close()
    return months[-1], PEOPLE * MONTHS


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="outreach-score-bench-") as folder:
        root = Path(folder)
        _progress("scoring memory bench: releasing a small experiment ...")
        done = released(
            root,
            small_spec(),
            lambda: generate_preset(unit="individual", rows=40_000, seed=3, periods=20),
            lambda _home, spec: policy_for(spec),
        )
        home, spec = done.home, done.spec
        _progress(f"writing {MONTHS} months of {PEOPLE:,} people to Parquet ...")
        data = root / "population.parquet"
        period, rows = write_months(spec, data)
        size_mb = data.stat().st_size / 1e6
        env = outreach_env(home)
        _progress(f"outreach score --period {period} ...")
        ours = _measure(
            [
                outreach_command(),
                "score",
                "--data",
                str(data),
                "--period",
                period,
                "--model",
                spec.name,
            ],
            env,
        )
        _progress("the peer: reading every month, then picking one ...")
        whole = _measure(
            [sys.executable, "-c", READ_WHOLE, str(data), spec.data.time_column, period], env
        )
    seconds, peak_gb = float(str(ours["seconds"])), int(str(ours["peak_kib"])) / 2**20
    whole_gb = int(str(whole["peak_kib"])) / 2**20
    rows_out = [
        (
            f"outreach score --period {period}: time (scored into the queue)",
            f"{seconds:.1f} s",
            f"< {TARGET_S:.0f} s",
            "ok" if seconds < TARGET_S else "MISSED",
        ),
        (
            "outreach score --period: CPU time (user + system; wall time follows the load)",
            f"{float(str(ours['cpu_s'])):.1f} s",
            "-",
            "",
        ),
        (
            "outreach score --period: peak memory (the process)",
            f"{peak_gb:.2f} GB",
            f"< {TARGET_GB:.0f} GB",
            "ok" if peak_gb < TARGET_GB else "MISSED",
        ),
        (
            "peer: read every month, then pick one (no scoring): time",
            f"{float(whole['seconds']):.1f} s",  # type: ignore[arg-type]
            "-",
            "",
        ),
        ("peer: read every month, then pick one: peak memory", f"{whole_gb:.2f} GB", "-", ""),
    ]
    width = max(len(r[0]) for r in rows_out)
    print(
        f"\nScoring one month of {MONTHS} from Parquet ({PEOPLE:,} people a month, {rows:,} rows, "
        f"{size_mb:.0f} MB): the month filter is pushed into the reader; CSV is read whole"
    )
    print(f"{'measurement':<{width}}  {'result':>10}  {'target':>8}  verdict")
    for name, value, target, verdict in rows_out:
        print(f"{name:<{width}}  {value:>10}  {target:>8}  {verdict}")
    print(f"  the command said: {str(ours['stdout']).strip()}")


if __name__ == "__main__":
    main()
