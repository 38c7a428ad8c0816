"""Every benchmark runs: ``python -m bench --smoke`` (small sizes, :mod:`bench.scale`) from this
checkout, in its own process, prints every table and exits 0. Its figures are not judged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: A line of each benchmark's table (``make bench`` prints the same at full size).
TABLES = {
    "model": "one record, validate + score + reasons",
    "audit": "ours: full audit, cluster bootstrap",
    "gate": "`outreach policy simulate`",
    "service (served, approved by a second person)": "this service (reasons + access log)",
    "service's MLflow peer": "mlflow models serve",
    "service against the empty Flask floor": "of the empty Flask endpoint's",
    "service batch": "validated, scored and explained into the queue",
    "pages": "Pages: server time in process",
    "monitoring": "Monitoring after release",
    "scoring one month from Parquet": "Scoring one month of 8 from Parquet",
    "spark": "Spark: read, score + reasons for every row",
}


@pytest.mark.slow
def test_every_benchmark_runs_and_prints_its_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke"],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    missing = [name for name, line in TABLES.items() if line not in done.stdout]
    assert not missing, f"no table from {missing}:\n{done.stdout[-4000:]}"
    assert "approved by bench-oversight" in done.stderr  # the release was approved, then served
