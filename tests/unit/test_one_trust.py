"""One place per process decides which keys and anchors are trusted: the command line's
``outreach.cli.base._trust`` and the service's ``ModelSource.trust``. Nothing below them builds
its own trust object as a default (one would miss the anchors and the mode of the caller's)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.specs import ROOT

#: The builders and the only places allowed to call them.
BUILDERS = {"trust_for", "for_home"}
ALLOWED = {
    Path("lifecycle/verified_loading.py"),  # trust_for itself
    Path("lifecycle/model_source.py"),  # the service's one place
    Path("outreach/cli/base.py"),  # the command line's one place
    Path("outreach/cli/key_commands.py"),  # `keys show`: the verifying key's id, nothing decided
}
PACKAGES = ("kernel", "model", "audits", "lifecycle", "store", "monitoring", "jobs", "service")


def _calls(path: Path) -> list[int]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in BUILDERS:
                found.append(node.lineno)
    return found


def test_no_module_builds_its_own_trust() -> None:
    files = [p for package in (*PACKAGES, "outreach") for p in (ROOT / package).rglob("*.py")]
    assert len(files) > 50
    built = {
        f"{path.relative_to(ROOT)}:{line}"
        for path in files
        if path.relative_to(ROOT) not in ALLOWED
        for line in _calls(path)
    }
    assert built == set(), "trust built outside the one place of its process"
