"""The SVG charts: round axes, one scale for charts of one measure, titles that wrap, a line
instead of an empty chart, and words instead of numbers where a coordinator reads them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from audits.charts import (
    Bar,
    SignedBar,
    bar_chart,
    nice_range,
    nothing_to_show,
    signed_chart,
    tick_words,
)
from tests.support.homes import Released, copy_released, labels_for


def texts(svg: str) -> list[str]:
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([-0.217515, 0.9], (-0.5, 1.0)),
        ([0.0, 0.0123], (0.0, 0.015)),
        ([0.265, 0.8, 1.0], (0.0, 1.0)),
        ([1.3], (0.0, 1.5)),
        ([], (0.0, 1.0)),
    ],
)
def test_axes_run_between_round_numbers(values: list[float], expected: tuple) -> None:
    assert nice_range(values) == pytest.approx(expected)


def test_axis_labels_have_at_most_two_decimals_and_a_long_title_wraps() -> None:
    title = (
        "Of those offered outreach, the share reached by race_ethnicity: the ratio to everyone "
        "else, month by month"
    )
    svg = bar_chart(
        [Bar("A", -0.217515, -0.3, 0.1), Bar("B", 0.654321)],
        title=title,
        axis_label="ratio to everyone else",
        reference=1.0,
        limits=[0.8],
    )
    labels = texts(svg)
    numbers = [t for t in labels if re.fullmatch(r"-?[\d.]+", t)]
    assert numbers and not [n for n in numbers if re.search(r"\.\d{3,}", n)]
    assert "-0.5" in numbers and "1" in numbers and "limit 0.8" in labels
    assert " ".join(labels[:2]) == title, "the title's two lines come first, nothing cut"


def test_charts_of_one_measure_share_a_scale() -> None:
    scale = nice_range([0.2, 0.5, 1.7])
    small = bar_chart([Bar("A", 0.2)], title="one", axis_label="ratio", scale=scale)
    large = bar_chart([Bar("B", 1.7)], title="two", axis_label="ratio", scale=scale)
    ticks = [t for t in texts(small) if re.fullmatch(r"[\d.]+", t) and t != "0.20"]
    assert ticks == [t for t in texts(large) if re.fullmatch(r"[\d.]+", t) and t != "1.70"]
    assert ticks[0] == "0" and ticks[-1] == "2"


def test_tick_words() -> None:
    assert [tick_words(v) for v in (-0.0, 0.25, 1.0, 0.1 + 0.2, -0.5)] == [
        "0",
        "0.25",
        "1",
        "0.3",
        "-0.5",
    ]


def test_nothing_to_show_is_one_escaped_line() -> None:
    assert str(nothing_to_show("no <shift>")) == '<p class="no-chart">no &lt;shift&gt;</p>'


def test_a_signed_chart_in_words_shows_no_number() -> None:
    svg = signed_chart(
        [SignedBar("Shelter stays", 2.646715), SignedBar("Health coverage", -0.31)],
        title="What raised or lowered the estimate",
        value_words=lambda v: "a lot" if abs(v) >= 1 else "a little",
    )
    words = " ".join(texts(svg))
    assert "raises a lot" in words and "lowers a little" in words
    assert not re.search(r"\d|log-odds", words)


# ----------------------------------------------------------------------------- the monitoring page


@pytest.fixture
def monitoring_page(released: Released, tmp_path: Path) -> str:
    """The analyst's monitoring page of a month whose labels are in."""
    from sqlalchemy import select

    from audits.catalogue import read_report
    from model.registry import connect
    from service import create_app
    from service.auth import add_user
    from service.db import Outcome, QueueEntry
    from service.labels import LabelColumns, ingest
    from tests.support.web import csrf

    own = copy_released(released, tmp_path)
    first = own.periods[0]
    db = own.db
    with db.session() as session:
        accepted = set(
            session.scalars(
                select(QueueEntry.person_id)
                .join(Outcome, Outcome.entry_id == QueueEntry.id)
                .where(QueueEntry.period == first, Outcome.status == "accepted")
            )
        )
    registry = connect(own.home)
    ingest(
        db,
        name=own.name,
        frame=labels_for(own, first, accepted),
        columns=LabelColumns("person_id", "period", "crisis_6m"),
        report_for=lambda audit_id: read_report(registry, audit_id),
        folder=own.home.monitoring,
        by="analyst",
    )
    add_user(db, "chart-analyst", "analyst", password="chart-password-for-tests")
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
        labels = texts(svg)
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
