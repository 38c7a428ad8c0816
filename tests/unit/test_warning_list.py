"""The monitoring page's warnings fold after the first few: the rest behind a <details> whose
summary says how many more (service/templates/oversight/_warnings.html; on a real monitoring
page: tests/integration/test_monitoring_charts.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).resolve().parents[2] / "service" / "templates"


def _render(items: list[str]) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape())
    macro = env.get_template("oversight/_warnings.html").module.warning_list  # type: ignore[attr-defined]
    return str(macro(items))


@pytest.mark.parametrize(
    ("count", "summary"),
    [(0, None), (1, None), (3, None), (4, "1 more warning"), (12, "9 more warnings")],
)
def test_the_first_three_are_shown_and_the_rest_counted(count: int, summary: str | None) -> None:
    items = [f"warning <{n}>" for n in range(count)]
    html = _render(items)
    shown, _, folded = html.partition("<details")
    assert re.findall(r"<li>(.*?)</li>", shown) == [
        f"warning &lt;{n}&gt;" for n in range(min(count, 3))
    ]
    if summary is None:
        assert not folded
    else:
        assert re.search(r"<summary>(.*?)</summary>", folded).group(1) == summary  # type: ignore[union-attr]
        assert re.findall(r"<li>(.*?)</li>", folded) == [
            f"warning &lt;{n}&gt;" for n in range(3, count)
        ]
