"""The command line as a user meets it: exit codes, messages, JSON documents."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from outreach.cli import main
from tests.conftest import FAST_CANDIDATES, INDIVIDUAL_SPEC, spec_mapping


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def fast_spec_file(tmp_path: Path) -> Path:
    """The shipped individual spec with small candidates, written as TOML."""
    text = INDIVIDUAL_SPEC.read_text()
    head = text[: text.index("[[candidates]]")]
    tail = text[text.index("[[features]]") :]
    candidates = ""
    for c in FAST_CANDIDATES:
        grid = ", ".join(f"{k} = {v}" for k, v in c["grid"].items())
        candidates += (
            f'[[candidates]]\nname = "{c["name"]}"\nfamily = "{c["family"]}"\n'
            f"grid = {{ {grid} }}\n\n"
        )
    head = head.replace('policy = "../audits/policies/default.toml"', "")
    head = head.replace(
        "splits = 3\nstep_months = 3\nwindow_months = 3\nmin_train_periods = 6",
        "splits = 2\nstep_months = 2\nmin_train_periods = 4",
    )
    path = tmp_path / "experiment.toml"
    path.write_text(head + candidates + tail)
    assert spec_mapping(path)["validation"]["splits"] == 2
    return path


@pytest.fixture
def data_file(tmp_path: Path, population: pd.DataFrame) -> Path:
    path = tmp_path / "population.parquet"
    population.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_generate_is_deterministic(runner: CliRunner, tmp_path: Path, suffix: str) -> None:
    paths = [tmp_path / f"a{suffix}", tmp_path / f"b{suffix}"]
    for path in paths:
        args = [
            "generate",
            "--unit",
            "neighbourhood",
            "--rows",
            "960",
            "--seed",
            "4",
            "--out",
            str(path),
        ]
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
    assert paths[0].read_bytes() == paths[1].read_bytes()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--unit", "individual", "--rows", "100", "--out", "x.txt"], "x.txt"),
        (["--unit", "individual", "--rows", "100", "--preset", "nope", "--out", "x.csv"], "nope"),
        (["--unit", "town", "--rows", "100", "--out", "x.csv"], "town"),
        (["--unit", "individual", "--rows", "-5", "--out", "x.csv"], "-5"),
    ],
)
def test_generate_bad_input_exits_2(runner: CliRunner, args: list[str], expected: str) -> None:
    result = runner.invoke(main, ["generate", *args])
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output


def test_train_json_document(
    runner: CliRunner, tmp_path: Path, fast_spec_file: Path, data_file: Path
) -> None:
    home = tmp_path / "home"
    result = runner.invoke(
        main,
        ["--home", str(home), "train", str(fast_spec_file), "--data", str(data_file), "--json"],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert {
        "experiment",
        "registered_model",
        "run_id",
        "capacity",
        "candidates",
        "baselines",
    } <= set(document)
    assert set(document["baselines"]) == {"random", "heuristic"}
    for candidate in document["candidates"]:
        assert {"name", "version", "metrics"} <= set(candidate)
        assert set(candidate["metrics"]) == {
            "precision_at_k",
            "recall_at_k",
            "roc_auc",
            "average_precision",
            "brier",
        }
    assert (home / "mlflow.db").is_file()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda f: f.drop(columns=["er_visits_90d"]), "missing columns: er_visits_90d"),
        (lambda f: f.assign(income_band="rich"), "unknown categories 'rich'"),
    ],
)
def test_train_bad_data_exits_2_and_writes_nothing(
    runner: CliRunner,
    tmp_path: Path,
    fast_spec_file: Path,
    population: pd.DataFrame,
    change,
    expected: str,
) -> None:
    path = tmp_path / "bad.csv"
    change(population.head(500)).to_csv(path, index=False)
    home = tmp_path / "home"
    result = runner.invoke(
        main, ["--home", str(home), "train", str(fast_spec_file), "--data", str(path)]
    )
    assert result.exit_code == 2
    assert expected in result.output and "Traceback" not in result.output
    assert not (home / "mlflow.db").exists()


def test_train_bad_spec_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text('name = "x"\n')
    result = runner.invoke(main, ["--home", str(tmp_path / "h"), "train", str(spec)])
    assert result.exit_code == 2
    assert "unit: Field required" in result.output
