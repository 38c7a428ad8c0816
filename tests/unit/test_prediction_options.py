"""``outreach audit`` and ``outreach policy simulate`` take the same prediction options from one
decorator (outreach/cli/prediction_options.py): each command lists the options it listed before,
in the same order, the eight shared ones with the same names, types and help, and what is given
reaches the command."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import audits
from outreach.cli import main

DEFAULT_POLICY = Path(audits.__file__).parent / "policies" / "default.toml"
SHARED = ["--label", "--sensitive", "--decision", "--score", "--threshold", "--top-k", "--period"]
SHARED += ["--id"]
#: Every option each command listed before the options were shared, in order.
BEFORE = {
    ("audit",): ["--predictions", *SHARED, "--model", "--data", "--policy", "--out", "--json"],
    ("policy", "simulate"): ["--like", "--data", *SHARED, "--reps", "--seed", "--json"],
}
FLAG = re.compile(r"^  (--[a-z-]+)", re.MULTILINE)


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


def _help(path: tuple[str, ...], tmp_path: Path) -> str:
    result = CliRunner().invoke(
        main, ["--home", str(tmp_path), *path, "--help"], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("path", list(BEFORE))
def test_each_command_lists_the_options_it_listed_before(
    path: tuple[str, ...], tmp_path: Path
) -> None:
    listed = FLAG.findall(_help(path, tmp_path))
    assert listed == BEFORE[path]


def test_the_shared_options_are_the_same_in_both_commands(tmp_path: Path) -> None:
    audit, simulate = (_command(path) for path in BEFORE)
    shared = {
        name: [p for p in command.params if isinstance(p, click.Option) and p.opts[0] in SHARED]
        for name, command in (("audit", audit), ("simulate", simulate))
    }
    assert [p.opts for p in shared["audit"]] == [[flag] for flag in SHARED]
    assert [p.opts for p in shared["simulate"]] == [[flag] for flag in SHARED]
    for ours, theirs in zip(shared["audit"], shared["simulate"], strict=True):
        assert (ours.name, ours.type, ours.default) == (theirs.name, theirs.type, theirs.default)
        assert ours.help and theirs.help == f"With --data: {ours.help[0].lower()}{ours.help[1:]}"
    audit_help = " ".join(_help(("audit",), tmp_path).split())
    simulate_help = " ".join(_help(("policy", "simulate"), tmp_path).split())
    for option in shared["audit"]:
        assert f"{option.opts[0]} {option.type.name.upper()} {option.help}" in audit_help
    for option in shared["simulate"]:
        assert f"{option.opts[0]} {option.type.name.upper()} {option.help}" in simulate_help


@pytest.fixture
def predictions(tmp_path: Path) -> Path:
    path = tmp_path / "predictions.csv"
    path.write_text("crisis,sex,score\n1,female,0.9\n0,male,0.1\n")
    return path


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["--sensitive", "sex"], "needs --label COL and --sensitive A,B"),
        (["--label", "crisis"], "needs --label COL and --sensitive A,B"),
        (
            ["--label", "crisis", "--sensitive", "sex", "--score", "score", "--top-k", "0"],
            "--top-k must be at least 1 (got 0)",
        ),
        (
            ["--label", "crisis", "--sensitive", "sex", "--score", "score", "--threshold", "inf"],
            "--threshold must be a finite number (got inf)",
        ),
        (
            ["--label", "crisis", "--sensitive", "sex", "--decision", "score", "--score", "score"],
            "give exactly one operating point",
        ),
        (
            ["--label", "crisis", "--sensitive", "sex", "--decision", "offered"],
            "offered",  # a missing column is named
        ),
        (
            ["--label", "crisis", "--sensitive", "sex,", "--decision", "crisis", "--id", "who"],
            "who",
        ),
        (
            ["--label", "crisis", "--sensitive", "sex", "--decision", "crisis", "--period", "when"],
            "when",
        ),
    ],
)
@pytest.mark.parametrize("path", list(BEFORE))
def test_what_is_given_reaches_the_command(
    path: tuple[str, ...], given: list[str], expected: str, predictions: Path, tmp_path: Path
) -> None:
    audit = path == ("audit",)
    source = ["--predictions", str(predictions)] if audit else [str(DEFAULT_POLICY), "--data"]
    source += [] if audit else [str(predictions)]
    args = ["--home", str(tmp_path / "home"), *path, *source, *given]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    if "needs --label" in expected:
        flag = "--predictions" if audit else "--data"
        assert f"{flag} needs --label COL and --sensitive A,B" in result.stderr
