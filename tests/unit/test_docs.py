"""The README is a front door and the manual lives in docs/: the README stays short, holds exactly
the two set-up commands, and every relative link or image in the documentation leads to a file
that exists (and, with an anchor, to a heading in it)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
#: Every Markdown document a reader reaches from the README.
DOCUMENTS = sorted(
    [
        README,
        *(ROOT / "docs").glob("*.md"),
        ROOT / "experiments" / "README.md",
        ROOT / "audits" / "policies" / "README.md",
    ]
)
MAX_README_LINES = 200
SETUP_COMMANDS = ["make demo", "make test"]

FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)\)")
FILE_PATH = re.compile(r"^(?:[\w.-]+/)+[\w.-]+\.(?:py|toml|md|j2|css|js|txt|json|mako)$")
#: A module and what it defines (three parts or more: ``service.db`` is a file name).
DOTTED = re.compile(r"^[a-z_]+(?:\.[a-z_]+){2,}$")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def _anchors(path: Path) -> frozenset[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return frozenset(_slug(match) for match in HEADING.findall(text))


def _links(path: Path) -> list[str]:
    """Every link and image target outside code, as written."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    text = INLINE_CODE.sub("", text)
    return LINK.findall(text)


def test_every_document_is_found() -> None:
    missing = [_relative(path) for path in DOCUMENTS if not path.is_file()]
    assert not missing, f"documents missing: {missing}"
    assert len(DOCUMENTS) > 5


def test_the_readme_is_a_front_door_of_at_most_200_lines() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines; the manual belongs in docs/"
    )


def test_the_readme_holds_exactly_the_two_set_up_commands() -> None:
    text = README.read_text(encoding="utf-8")
    blocks = [block for block in FENCE.findall(text) if re.search(r"^make ", block, re.MULTILINE)]
    assert len(blocks) == 1, "one code block holds the set-up commands"
    commands = [
        " ".join(line.split("#", 1)[0].split())
        for line in blocks[0].splitlines()[1:-1]
        if line.strip()
    ]
    assert commands == SETUP_COMMANDS
    # No other make target is offered anywhere in the README's code, fenced or inline.
    code = "\n".join(FENCE.findall(text) + INLINE_CODE.findall(text))
    targets = set(re.findall(r"\bmake [a-z][\w.-]*", code))
    assert targets == set(SETUP_COMMANDS), targets


@pytest.mark.parametrize("document", DOCUMENTS, ids=_relative)
def test_every_relative_link_leads_to_a_file_and_heading(document: Path) -> None:
    problems = []
    for target in _links(document):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        destination = (document.parent / file_part).resolve() if file_part else document
        if not destination.exists():
            problems.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in _anchors(destination):
            problems.append(f"{target}: no heading with the anchor #{anchor}")
    assert not problems, f"{_relative(document)}: " + "; ".join(problems)


def _named_files(document: Path) -> list[str]:
    """The repository files a document names in inline code: ``service/app.py`` or
    ``audits.audit.run_audit`` (the module must exist; what it defines is not checked)."""
    text = FENCE.sub("", document.read_text(encoding="utf-8"))
    top = {path.name for path in ROOT.iterdir() if path.is_dir() and not path.name.startswith(".")}
    problems = []
    for span in INLINE_CODE.findall(text):
        name = span.strip("`")
        if FILE_PATH.match(name) and name.split("/", 1)[0] in top:
            if not (ROOT / name).exists():
                problems.append(name)
        elif DOTTED.match(name) and name.split(".", 1)[0] in top:
            parts = name.split(".")
            modules = [ROOT.joinpath(*parts[:end]) for end in range(2, len(parts) + 1)]
            if not any(
                module.with_suffix(".py").is_file() or (module / "__init__.py").is_file()
                for module in modules
            ):
                problems.append(name)
    return problems


@pytest.mark.parametrize("document", DOCUMENTS, ids=_relative)
def test_every_file_and_module_a_document_names_exists(document: Path) -> None:
    missing = _named_files(document)
    assert not missing, f"{_relative(document)} names files that do not exist: {missing}"


def test_the_slug_follows_github() -> None:
    assert _slug("Trust: what the attestations prove, and against whom") == (
        "trust-what-the-attestations-prove-and-against-whom"
    )
    assert _slug("How long `make test` takes") == "how-long-make-test-takes"
    assert _slug('The explanation a person can be given, and "about this score"') == (
        "the-explanation-a-person-can-be-given-and-about-this-score"
    )


def test_a_file_or_module_that_does_not_exist_is_named(tmp_path: Path) -> None:
    document = tmp_path / "doc.md"
    document.write_text(
        "`model/spec.py`, `model/no_such_module.py`, `model.spec.load_spec`, "
        "`audits.no_such_module.run`, `<home>/keys/release.key`, `OUTREACH_HOME`\n\n"
        "```\nmodel/in_a_code_block.py\n```\n"
    )
    assert _named_files(document) == ["model/no_such_module.py", "audits.no_such_module.run"]
