"""The risk register (docs/risks.toml) names, for every risk, the tests that show its mitigation
works; this fails when a risk names no test or a test that does not exist."""

from __future__ import annotations

import ast
import tomllib
from functools import cache
from pathlib import Path

import pytest

from tests.support.specs import ROOT

REGISTER = ROOT / "docs" / "risks.toml"
REQUIRED = ("id", "title", "description", "owner", "mitigation", "tests")


def _risks() -> list[dict[str, object]]:
    return list(tomllib.loads(REGISTER.read_text())["risks"])


@cache
def _test_functions(path: Path) -> frozenset[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return frozenset(
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    )


def missing_tests(test_ids: list[str]) -> list[str]:
    """The ids among ``test_ids`` that name no test function in the repository, with why."""
    problems = []
    for test_id in test_ids:
        file, _, name = test_id.partition("::")
        name = name.split("[", 1)[0]
        path = ROOT / file
        if not file.startswith("tests/") or not name:
            problems.append(f"{test_id}: not of the form tests/<file>.py::<test>")
        elif not path.is_file():
            problems.append(f"{test_id}: no file {file}")
        elif name not in _test_functions(path):
            problems.append(f"{test_id}: {file} has no test named {name}")
    return problems


def test_every_risk_has_an_owner_a_mitigation_and_tests() -> None:
    risks = _risks()
    assert len(risks) >= 8
    ids = [str(r.get("id")) for r in risks]
    assert len(set(ids)) == len(ids), "risk ids repeat"
    for risk in risks:
        for key in REQUIRED:
            assert risk.get(key), f"risk {risk.get('id')}: '{key}' is empty"
        assert isinstance(risk["tests"], list)


@pytest.mark.parametrize("risk", _risks(), ids=lambda r: str(r["id"]))
def test_every_test_a_risk_names_exists(risk: dict[str, object]) -> None:
    tests = risk["tests"]
    assert isinstance(tests, list) and tests, f"risk {risk['id']} names no test"
    assert missing_tests([str(t) for t in tests]) == []


def test_the_check_catches_a_test_that_does_not_exist() -> None:
    assert missing_tests(["tests/unit/test_risk_register.py::test_no_such_thing"]) == [
        "tests/unit/test_risk_register.py::test_no_such_thing: "
        "tests/unit/test_risk_register.py has no test named test_no_such_thing"
    ]
    assert missing_tests(["tests/test_nowhere.py::test_x"]) == [
        "tests/test_nowhere.py::test_x: no file tests/test_nowhere.py"
    ]
    assert missing_tests(["test_x"]) == ["test_x: not of the form tests/<file>.py::<test>"]
    assert (
        missing_tests(["tests/unit/test_risk_register.py::test_every_test_a_risk_names_exists[x]"])
        == []
    )
