"""The SVG charts: round axes, one scale for charts of one measure, titles that wrap, a line
instead of an empty chart, and words instead of numbers where a coordinator reads them."""

from __future__ import annotations

import re

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
from tests.support.pages import chart_texts


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
    labels = chart_texts(svg)
    numbers = [t for t in labels if re.fullmatch(r"-?[\d.]+", t)]
    assert numbers and not [n for n in numbers if re.search(r"\.\d{3,}", n)]
    assert "-0.5" in numbers and "1" in numbers and "limit 0.8" in labels
    assert " ".join(labels[:2]) == title, "the title's two lines come first, nothing cut"


def test_charts_of_one_measure_share_a_scale() -> None:
    scale = nice_range([0.2, 0.5, 1.7])
    small = bar_chart([Bar("A", 0.2)], title="one", axis_label="ratio", scale=scale)
    large = bar_chart([Bar("B", 1.7)], title="two", axis_label="ratio", scale=scale)
    ticks = [t for t in chart_texts(small) if re.fullmatch(r"[\d.]+", t) and t != "0.20"]
    assert ticks == [t for t in chart_texts(large) if re.fullmatch(r"[\d.]+", t) and t != "1.70"]
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
    words = " ".join(chart_texts(svg))
    assert "raises a lot" in words and "lowers a little" in words
    assert not re.search(r"\d|log-odds", words)


# ----------------------------------------------------------------------------- the monitoring page
