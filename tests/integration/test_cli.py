"""The command line as a user meets it: exit codes, messages, JSON documents."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from outreach.cli import main
from tests.support.specs import INDIVIDUAL_SPEC, fast_mapping, spec_mapping, write_toml


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def fast_spec_file(tmp_path: Path) -> Path:
    """The shipped individual spec with small candidates and the shipped policy, as TOML."""
    raw = fast_mapping()
    raw["policy"] = str(INDIVIDUAL_SPEC.parent.parent / "audits" / "policies" / "default.toml")
    path = write_toml(raw, tmp_path / "experiment.toml")
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


#: The shipped policy's simulated audits per group for the reliability table (200), fewer for the
#: release tests here: the table is not what they are about, and it was most of a release's time.
FEWER_SIMULATIONS = ("simulations = 200", "simulations = 40")


def _shipped_policy_text() -> str:
    text = (INDIVIDUAL_SPEC.parent.parent / "audits" / "policies" / "default.toml").read_text()
    assert FEWER_SIMULATIONS[0] in text
    return text.replace(*FEWER_SIMULATIONS)


@pytest.fixture
def release_spec_file(tmp_path: Path) -> Path:
    """:func:`fast_spec_file` under the shipped policy with fewer simulated audits (its
    reliability table's), as TOML."""
    policy = tmp_path / "policy.toml"
    policy.write_text(_shipped_policy_text())
    raw = fast_mapping()
    raw["policy"] = str(policy)
    return write_toml(raw, tmp_path / "release-experiment.toml")


@pytest.fixture
def strict_policy_file(tmp_path: Path) -> Path:
    text = _shipped_policy_text()
    text = text.replace('decision_rule = "significant_breach"', 'decision_rule = "point_estimate"')
    text = text.replace("min_group_positives = 200", "min_group_positives = 20")
    path = tmp_path / "strict.toml"
    path.write_text(text.replace("min = 0.8", "min = 0.999"))
    return path


def test_release_then_models_commands(
    runner: CliRunner,
    tmp_path: Path,
    release_spec_file: Path,
    data_file: Path,
    strict_policy_file: Path,
) -> None:
    home = ["--home", str(tmp_path / "home")]
    result = runner.invoke(
        main, [*home, "release", str(release_spec_file), "--data", str(data_file), "--json"]
    )
    # A small population cannot show every group within the limits: REVIEW, exit 0, waiting.
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["decision"] == "REVIEW" and not summary["promoted"]
    assert summary["awaiting_approval"] and summary["review"]
    assert {
        "registered_model",
        "version",
        "awaiting_approval",
        "audit_id",
        "report",
        "breaches",
        "review",
    } <= set(summary)
    assert Path(summary["report"]).is_file()
    assert "needs a review" in result.stderr
    listed = json.loads(runner.invoke(main, [*home, "models", "list", "--json"]).stdout)
    assert not [r for r in listed if "production" in r["aliases"]]
    waiting = next(r for r in listed if r["version"] == str(summary["version"]))
    assert waiting["decision"] == "REVIEW" and waiting["review_groups"]

    raw = fast_mapping()
    raw["policy"] = str(strict_policy_file)
    strict_spec = write_toml(raw, tmp_path / "strict-experiment.toml")
    failed = runner.invoke(
        main, [*home, "release", str(strict_spec), "--data", str(data_file), "--json"]
    )
    assert failed.exit_code == 3
    document = json.loads(failed.stdout)
    assert document["decision"] == "FAIL" and not document["promoted"] and document["breaches"]
    refused = runner.invoke(
        main,
        [
            *home,
            "models",
            "approve",
            document["registered_model"],
            str(document["version"]),
            "--by",
            "oversight",
            "--note",
            "x",
        ],
    )
    assert refused.exit_code == 3 and "refusing to approve" in refused.output
    approved = runner.invoke(
        main,
        [
            *home,
            "models",
            "approve",
            summary["registered_model"],
            str(summary["version"]),
            "--by",
            "oversight",
            "--note",
            "checked",
        ],
    )
    assert approved.exit_code == 0, approved.output
    assert "and promoted it" in approved.output
    assert "takes on the groups its audit could not judge" in approved.output
    listed = json.loads(runner.invoke(main, [*home, "models", "list", "--json"]).stdout)
    production = [r for r in listed if "production" in r["aliases"]]
    assert [r["version"] for r in production] == [str(summary["version"])]
    from store.db import Approval, Database, default_url

    with Database(default_url(tmp_path / "home")).session() as session:
        recorded = [(a.model_version, a.decision, a.by) for a in session.query(Approval)]
    assert recorded == [(str(summary["version"]), "approved", "oversight")]  # not the refusal

    reaudit = runner.invoke(
        main,
        [
            *home,
            "audit",
            "--model",
            f"{summary['registered_model']}/{summary['version']}",
            "--data",
            str(data_file),
            "--json",
        ],
    )
    assert reaudit.exit_code in (0, 3), reaudit.output
    assert json.loads(reaudit.stdout)["decision"] in ("PASS", "REVIEW", "FAIL")


@pytest.fixture
def predictions(tmp_path: Path) -> Path:
    """Another tool's scores: group B's people in need score lower."""
    rng = np.random.default_rng(0)
    n = 6000
    group = rng.choice(["A", "B"], n, p=[0.6, 0.4])  # A is the reference (largest)
    sex = rng.choice(["female", "male"], n)
    label = (rng.random(n) < 0.2).astype(int)
    score = rng.random(n) + label * np.where(group == "A", 0.8, 0.2)
    path = tmp_path / "predictions.csv"
    pd.DataFrame(
        {
            "outcome": label,
            "group": group,
            "sex": sex,
            "risk": score,
            "flag": (score > 1.0).astype(int),
        }
    ).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "point",
    [
        ["--score", "risk", "--threshold", "1.0"],
        ["--score", "risk", "--top-k", "600"],
        ["--decision", "flag"],
    ],
)
def test_external_audit_catches_the_under_served_group(
    runner: CliRunner, tmp_path: Path, predictions: Path, point: list[str]
) -> None:
    result = runner.invoke(
        main,
        [
            "audit",
            "--predictions",
            str(predictions),
            "--label",
            "outcome",
            "--sensitive",
            "group,sex",
            *point,
            "--out",
            str(tmp_path / "out"),
            "--json",
        ],
    )
    assert result.exit_code == 3, result.output
    document = json.loads(result.stdout)
    assert document["decision"] == "FAIL"
    assert {b["group"] for b in document["breaches"]} >= {"B"}
    groups = {(g["attribute"], g["group"]) for g in document["groups"]}
    assert ("group × sex", "B × male") in groups
    assert {
        "selection_rate",
        "recall",
        "precision",
        "false_positive_rate",
        "false_negative_rate",
    } <= set(document["groups"][0]["metrics"])
    assert (tmp_path / "out" / "audit.html").is_file()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--label", "nope", "--sensitive", "group", "--decision", "flag"],
            "missing columns: nope",
        ),
        (["--label", "risk", "--sensitive", "group", "--decision", "flag"], "not 0 or 1"),
        (
            [
                "--label",
                "outcome",
                "--sensitive",
                "group",
                "--decision",
                "flag",
                "--score",
                "risk",
                "--threshold",
                "1",
            ],
            "exactly one operating point",
        ),
        (["--label", "outcome", "--sensitive", "group"], "exactly one operating point"),
        (
            ["--label", "outcome", "--sensitive", "group", "--score", "risk", "--top-k", "0"],
            "--top-k must be at least 1",
        ),
        (
            [
                "--label",
                "outcome",
                "--sensitive",
                "group",
                "--decision",
                "flag",
                "--policy",
                "/nonexistent.toml",
            ],
            "cannot read the fairness policy",
        ),
    ],
)
def test_external_audit_bad_input_exits_2(
    runner: CliRunner, predictions: Path, args: list[str], expected: str
) -> None:
    result = runner.invoke(main, ["audit", "--predictions", str(predictions), *args])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output


def test_users_passwords_are_asked_without_echo_and_can_be_replaced(
    runner: CliRunner, tmp_path: Path
) -> None:
    from kernel.home import Home
    from store.accounts import check_password
    from store.db import Database, default_url

    home = ["--home", str(tmp_path / "home")]
    added = runner.invoke(
        main,
        [*home, "users", "add", "lead", "--role", "coordinator", "--password"],
        input="first passphrase here\nfirst passphrase here\n",
    )
    assert added.exit_code == 0, added.output
    assert "first passphrase here" not in added.output
    token = added.output.strip().splitlines()[-1]
    assert len(token) >= 40 and " " not in token
    changed = runner.invoke(
        main,
        [*home, "users", "password", "lead"],
        input="second passphrase here\nsecond passphrase here\n",
    )
    assert changed.exit_code == 0, changed.output
    db = Database(default_url(Home(tmp_path / "home").root))
    assert check_password(db, "lead", "first passphrase here") is None
    assert check_password(db, "lead", "second passphrase here") is not None
    short = runner.invoke(main, [*home, "users", "password", "lead"], input="short\nshort\n")
    assert short.exit_code == 2 and "at least 12 characters" in short.output
    unknown = runner.invoke(
        main, [*home, "users", "password", "nobody"], input="long enough pass\nlong enough pass\n"
    )
    assert unknown.exit_code == 2 and "no user named" in unknown.output
