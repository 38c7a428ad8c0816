"""A product module uses only the public names of another module: no ``from x import _name``
(relative imports included) and no ``module._name``. A name another module needs is public, with a
docstring, or lives in the module that uses it. Read from the source files' syntax trees, nothing
is imported."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "kernel",
    "model",
    "audits",
    "lifecycle",
    "store",
    "monitoring",
    "jobs",
    "service",
    "outreach",
)

#: (importing module, imported module, name) still allowed. The constants of
#: ``model.synthetic_setup`` are being reworked with that module separately; remove each entry
#: when its name is made public there.
PENDING: set[tuple[str, str, str]] = set()


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _is_module(dotted: str) -> bool:
    """Whether ``dotted`` names one of the project's modules or packages."""
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The module an ``ImportFrom`` names, relative imports resolved against ``module``."""
    if not node.level:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


def _dotted(node: ast.expr) -> list[str] | None:
    """``a.b.c`` as ``["a", "b", "c"]``; ``None`` for anything but names and attributes."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def private_uses(
    source: str, module: str, *, is_package: bool = False
) -> list[tuple[int, str, str]]:
    """Every use in ``source`` (the text of ``module``) of a private name of another module:
    (line, that module, the name)."""
    tree = ast.parse(source)
    found: list[tuple[int, str, str]] = []
    modules: dict[str, str] = {}  # a local name bound to one of the project's modules
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            origin = _absolute(node, module, is_package)
            for alias in node.names:
                if _private(alias.name):
                    if origin != module:
                        found.append((node.lineno, origin, alias.name))
                elif _is_module(f"{origin}.{alias.name}"):
                    modules[alias.asname or alias.name] = f"{origin}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    modules[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    modules[top] = top
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not _private(node.attr):
            continue
        parts = _dotted(node)
        if parts is None or parts[0] not in modules:
            continue
        owner = ".".join([modules[parts[0]], *parts[1:-1]])
        if _is_module(owner) and owner != module:
            found.append((node.lineno, owner, node.attr))
    return found


def _product_files() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_uses_another_modules_private_names(package: str) -> None:
    problems = []
    for path in sorted((ROOT / package).rglob("*.py")):
        module = _module_name(path)
        uses = private_uses(path.read_text(), module, is_package=path.name == "__init__.py")
        for line, origin, name in uses:
            if (module, origin, name) not in PENDING:
                where = path.relative_to(ROOT).as_posix()
                problems.append(f"{where}:{line}: {origin}.{name}")
    assert not problems, (
        "private names used across modules (make them public with a docstring, or move them to "
        "the module that uses them):\n" + "\n".join(problems)
    )


def test_every_pending_exception_is_still_needed() -> None:
    """An entry of ``PENDING`` whose use has gone is removed, so the list only shrinks."""
    used = set()
    for path in _product_files():
        module = _module_name(path)
        uses = private_uses(path.read_text(), module, is_package=path.name == "__init__.py")
        used |= {(module, origin, name) for _, origin, name in uses}
    assert not PENDING - used, sorted(PENDING - used)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "from model.synthetic_draws import _streams\n",
            [(1, "model.synthetic_draws", "_streams")],
        ),
        ("from .chain import _digest\n", [(1, "store.access_log.chain", "_digest")]),
        (
            "from . import chain\nchain._digest('', {})\n",
            [(2, "store.access_log.chain", "_digest")],
        ),
        (
            "import store.access_log.chain\nstore.access_log.chain._digest('', {})\n",
            [(2, "store.access_log.chain", "_digest")],
        ),
        (
            "import store.access_log.chain as c\nc._digest('', {})\n",
            [(2, "store.access_log.chain", "_digest")],
        ),
        ("from model.synthetic_draws import streams, __all__\n", []),
        ("from store.access_log.retention import _OWN\n", []),  # the module itself
        ("def f(x):\n    return x._cache, self._y\n", []),  # not a module
        ("from store.access_log import chain\nchain.__name__\n", []),  # a dunder
        ("import numpy as np\nnp._NoValue\n", []),  # not the project's
    ],
)
def test_the_check_finds_private_names_of_other_modules(
    source: str, expected: list[tuple[int, str, str]]
) -> None:
    assert private_uses(source, "store.access_log.retention") == expected
