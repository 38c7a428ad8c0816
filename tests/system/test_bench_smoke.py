"""Every benchmark runs: ``python -m bench --smoke`` (small sizes, :mod:`bench.scale`, one shared
release) from this checkout, in its own process, prints every table and exits 0. Its figures are
not judged. The service benchmark's previous release (:mod:`bench.previous_release`) is left out
of the smoke run; its tree is checked here: the pinned commit is in the history, its experiment
can be cut to one candidate, and it declares this environment's dependencies."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
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
    "service against its previous release (left out of the smoke run)": "previous release: not",
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
    # One release for every benchmark: made and approved once.
    assert done.stderr.count("approved by bench-oversight") == 1, done.stderr[-4000:]


def _history_incomplete() -> bool:
    """This checkout is a shallow clone, or not a git checkout at all."""
    done = subprocess.run(
        ["git", "-C", str(Path(__file__).parent), "rev-parse", "--is-shallow-repository"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode != 0 or done.stdout.strip() == "true"


def test_the_previous_release_runs_in_this_environment(tmp_path: Path) -> None:
    from bench import previous_release as previous

    try:
        commit = previous.resolve(previous.DEFAULT_REF)
    except previous.BaselineUnavailableError as err:
        # Only a checkout without the whole history (a shallow clone, or files without git) may
        # lack the pinned commit; the benchmark then stops and says how to get it.
        assert _history_incomplete(), err
        assert "git fetch --unshallow" in str(err) and "--baseline" in str(err)
        return
    assert commit == previous.DEFAULT_REF
    previous.extract(commit, tmp_path)
    assert (tmp_path / "service" / "gunicorn_conf.py").exists()
    assert previous.dependency_differences(tmp_path) == []
    spec = tomllib.loads(previous.write_spec(tmp_path).read_text())
    assert [c["name"] for c in spec["candidates"]] == ["logistic"]
    assert "mitigation" not in spec and len(spec["features"]) > 10
    (tmp_path / "constraints.txt").write_text("numpy==1.0\n")
    assert previous.dependency_differences(tmp_path) == ["constraints.txt pins other versions"]


def test_an_unknown_baseline_is_named(tmp_path: Path) -> None:
    from bench import previous_release as previous

    with pytest.raises(previous.BaselineUnavailableError, match="no-such-ref"):
        previous.resolve("no-such-ref")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "service", "--baseline"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "--baseline needs a git ref" in done.stderr
