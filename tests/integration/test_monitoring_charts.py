"""The analyst's monitoring page draws its charts on round axes, one measure each, titles whole:
on a real release with a labelled month (the charts themselves: tests/unit/test_charts.py)."""

from __future__ import annotations

import re

import pytest

from tests.support.homes import Released, copy_released
from tests.support.pages import chart_texts


@pytest.fixture(scope="module")
def monitoring_page(labelled: Released, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The analyst's monitoring page of a month whose labels are in (its text: built once, read
    by each test)."""
    from service import create_app
    from store.accounts import add_user
    from tests.support.web import csrf

    own = copy_released(labelled, tmp_path_factory.mktemp("charts"))
    first = own.periods[0]
    add_user(own.db, "chart-analyst", "analyst", password="chart-password-for-tests")
    app = create_app(
        {"HOME": own.home, "DATABASE_URL": own.database_url, "WATCH_SECONDS": 0, "TESTING": True}
    )
    client = app.test_client()
    token = csrf(client.get("/login").get_data(as_text=True))
    client.post(
        "/login",
        data={
            "csrf_token": token,
            "username": "chart-analyst",
            "password": "chart-password-for-tests",
        },
    )
    response = client.get(f"/oversight/monitoring?period={first}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_monitoring_charts_draw_one_measure_each_on_round_axes(monitoring_page: str) -> None:
    svgs = re.findall(r"<svg.*?</svg>", monitoring_page, flags=re.DOTALL)
    assert len(svgs) >= 4
    for svg in svgs:
        title = re.search(r"<title>([^<]*)</title>", svg).group(1)  # type: ignore[union-attr]
        labels = chart_texts(svg)
        lines = []
        for label in labels:
            lines.append(label)
            if " ".join(lines) == title:
                break
        assert " ".join(lines) == title, f"the title is cut: {title}"
        ticks = re.findall(r'text-anchor="middle" fill="#1b1b1b">(-?[\d.]+)</text>', svg)
        assert not [t for t in ticks if re.search(r"\.\d{3,}", t)], (title, ticks)
        assert not re.search(r"_\w+ \d+[md]\b", " ".join(labels)), "a column code in a chart"
    realised = [s for s in svgs if ", realised " in s]
    assert realised, "the labelled month has realised charts"
    for svg in realised:
        title = re.search(r"<title>([^<]*)</title>", svg).group(1)  # type: ignore[union-attr]
        assert title.endswith(("the ratio to everyone else", "the difference to everyone else"))
        bars = re.findall(r'text-anchor="end" fill="#1b1b1b">([^<]+)</text>', svg)
        assert len(bars) == len(set(bars)), f"a group drawn twice: {title}"
    drift = monitoring_page.split('<h2 id="drift">', 1)[1].split("<table", 1)[0]
    assert "<svg" in drift or 'class="no-chart"' in drift
    if "<svg" in drift:
        assert "0.000" not in drift


def test_a_long_list_of_warnings_folds_after_the_first_few(monitoring_page: str) -> None:
    """The month's warnings: the first three shown, the rest behind a <details> that counts them
    (the list is the page's longest part on a phone)."""
    section = re.search(
        r'<section aria-labelledby="warnings".*?</section>', monitoring_page, flags=re.DOTALL
    )
    assert section, "the labelled month has warnings"
    html = section.group(0)
    total = int(re.search(r"Warnings \((\d+)\)", html).group(1))  # type: ignore[union-attr]
    assert total > 3, "the site's labelled month has more than a few warnings"
    shown, _, folded = html.partition("<details")
    assert len(re.findall(r"<li>", shown)) == 3
    more = total - 3
    assert f"<summary>{more} more warning{'s' if more != 1 else ''}</summary>" in folded
    assert len(re.findall(r"<li>", folded)) == more
