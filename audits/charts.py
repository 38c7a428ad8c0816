"""Small, self-contained SVG charts for reports and pages.

Rendered as text (no plotting library, no network, no scripts): about a hundred times faster than
matplotlib PNGs for these simple shapes, crisp at any zoom, and readable without colour: every
bar carries its value as text, and groups too small to judge are hatched and labelled.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

_ROW, _LEFT, _RIGHT, _TOP, _WIDTH = 26, 300, 110, 40, 760


@dataclass(frozen=True)
class Bar:
    """One group's value with its interval."""

    label: str
    value: float | None
    low: float | None = None
    high: float | None = None
    muted: bool = False
    note: str = ""


def _opening(
    width: float,
    height: float,
    title: str,
    *,
    title_at: tuple[float, float] = (8, 18),
    pattern: tuple[str, str, str] | None = None,
    lines: Sequence[str] | None = None,
) -> str:
    """An ``<svg>`` element's start: its accessible name, an optional hatch ``pattern`` (id,
    background, stripe colour) for bars that must read without colour, and the visible title."""
    defs = ""
    if pattern is not None:
        name, background, stripe = pattern
        defs = (
            f'<defs><pattern id="{name}" width="6" height="6" patternUnits="userSpaceOnUse" '
            f'patternTransform="rotate(45)"><rect width="6" height="6" fill="{background}"/>'
            f'<line x1="0" y1="0" x2="0" y2="6" stroke="{stripe}" stroke-width="2"/></pattern>'
            "</defs>"
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>{defs}"
        + "".join(
            f'<text x="{title_at[0]}" y="{title_at[1] + 18 * i}" font-size="14" '
            f'font-weight="bold" fill="#1b1b1b">{escape(line)}</text>'
            for i, line in enumerate(lines or [title])
        )
    )


def _finite(*values: float | None) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def nice_step(span: float) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) that cuts ``span`` into about four."""
    raw = max(span, 1e-9) / 4
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw - 1e-12)


def nice_range(values: Sequence[float], *, floor: float | None = 0.0) -> tuple[float, float]:
    """An axis from a round number to a round number that holds ``values`` (and ``floor`` when
    given: bars start from zero), so that axis labels read 0, 0.25, 0.5, not -0.217515."""
    found = [*_finite(*values), *([] if floor is None else [floor])]
    low, high = (min(found), max(found)) if found else (0.0, 1.0)
    if high - low < 1e-9:
        high = low + (abs(low) or 1.0)
    step = nice_step(high - low)
    return math.floor(low / step + 1e-9) * step, math.ceil(high / step - 1e-9) * step


def tick_words(value: float) -> str:
    """An axis label: at most two decimals, no trailing zeros, no "-0"."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def nothing_to_show(sentence: str) -> Markup:
    """What stands in a chart's place when it would have nothing to show: one line saying so."""
    return Markup(f'<p class="no-chart">{escape(sentence)}</p>')


def _title_lines(title: str, width: float) -> list[str]:
    """The title cut into lines that fit ``width`` (about 8.6 px a character at 14 px bold)."""
    return textwrap.wrap(title, max(20, int((width - 16) / 8.6))) or [""]


def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    axis_label: str,
    reference: float | None = None,
    limits: Sequence[float] = (),
    fmt: str = "{:.2f}",
    scale: tuple[float, float] | None = None,
) -> Markup:
    """Horizontal bars with interval whiskers, a reference line and limit lines.

    The axis runs between round numbers (:func:`nice_range`), labelled at each step; charts of
    the same measure pass one ``scale`` (from :func:`nice_range` over all their values) so that
    they can be read against each other. A long title wraps instead of being cut.
    """
    values = _finite(*(v for b in bars for v in (b.value, b.low, b.high)), *limits)
    if reference is not None:
        values.append(reference)
    bottom, top = scale if scale is not None else nice_range(values)
    values_seen = _finite(*values)
    if values_seen:  # a value outside a shared scale still fits
        bottom, top = min(bottom, *values_seen), max(top, *values_seen)
    plot = _WIDTH - _LEFT - _RIGHT
    lines = _title_lines(title, _WIDTH)
    head = _TOP + 18 * (len(lines) - 1)
    height = head + _ROW * len(bars) + 40

    def x(value: float) -> float:
        return _LEFT + plot * (value - bottom) / (top - bottom)

    parts = [_opening(_WIDTH, height, title, pattern=("hatch", "#dfe6ee", "#6b7c8f"), lines=lines)]
    for i, bar in enumerate(bars):
        y = head + i * _ROW
        parts.append(
            f'<text x="{_LEFT - 8}" y="{y + 16}" font-size="12" text-anchor="end" '
            f'fill="#1b1b1b">{escape(bar.label)}</text>'
        )
        if bar.value is None or not math.isfinite(bar.value):
            parts.append(
                f'<text x="{_LEFT + 4}" y="{y + 16}" font-size="12" fill="#4a4a4a">'
                "no value (no one in this group had the outcome)</text>"
            )
            continue
        start, end = sorted((x(max(bottom, 0.0)), x(bar.value)))
        fill = "url(#hatch)" if bar.muted else "#1f5a96"
        parts.append(
            f'<rect x="{start:.1f}" y="{y + 4}" width="{max(end - start, 1):.1f}" height="16" '
            f'fill="{fill}" stroke="#1b1b1b" stroke-width="0.6"/>'
        )
        if bar.low is not None and bar.high is not None and _finite(bar.low, bar.high):
            lo, hi = x(bar.low), x(bar.high)
            parts.append(
                f'<line x1="{lo:.1f}" y1="{y + 12}" x2="{hi:.1f}" y2="{y + 12}" stroke="#000" '
                f'stroke-width="1.5"/><line x1="{lo:.1f}" y1="{y + 7}" x2="{lo:.1f}" '
                f'y2="{y + 17}" stroke="#000"/><line x1="{hi:.1f}" y1="{y + 7}" x2="{hi:.1f}" '
                f'y2="{y + 17}" stroke="#000"/>'
            )
        text = fmt.format(bar.value) + (f" ({bar.note})" if bar.note else "")
        label_x = (
            max(
                x(bar.value),
                x(bar.high) if bar.high is not None and math.isfinite(bar.high) else 0.0,
            )
            + 6
        )
        parts.append(
            f'<text x="{min(label_x, _WIDTH - 4):.1f}" y="{y + 16}" font-size="11" '
            f'fill="#1b1b1b">{escape(text)}</text>'
        )
    bottom_y = head + _ROW * len(bars)
    if reference is not None:
        rx = x(reference)
        parts.append(
            f'<line x1="{rx:.1f}" y1="{head - 4}" x2="{rx:.1f}" y2="{bottom_y}" stroke="#555" '
            'stroke-width="1"/>'
        )
    for limit in limits:
        lx = x(limit)
        parts.append(
            f'<line x1="{lx:.1f}" y1="{head - 4}" x2="{lx:.1f}" y2="{bottom_y}" stroke="#a00000" '
            f'stroke-width="1.5" stroke-dasharray="5 3"/><text x="{lx + 3:.1f}" y="{head - 6}" '
            f'font-size="11" fill="#a00000">limit {tick_words(limit)}</text>'
        )
    parts.append(
        f'<line x1="{_LEFT}" y1="{bottom_y}" x2="{_WIDTH - _RIGHT}" y2="{bottom_y}" '
        'stroke="#1b1b1b"/>'
    )
    step = nice_step(top - bottom)
    tick = math.ceil(bottom / step - 1e-9) * step
    while tick <= top + 1e-9:
        tx = x(tick)
        parts.append(
            f'<line x1="{tx:.1f}" y1="{bottom_y}" x2="{tx:.1f}" y2="{bottom_y + 4}" '
            f'stroke="#1b1b1b"/><text x="{tx:.1f}" y="{bottom_y + 16}" font-size="11" '
            f'text-anchor="middle" fill="#1b1b1b">{tick_words(tick)}</text>'
        )
        tick += step
    parts.append(
        f'<text x="{(_LEFT + _WIDTH - _RIGHT) / 2}" y="{bottom_y + 32}" font-size="12" '
        f'text-anchor="middle" fill="#1b1b1b">{escape(axis_label)}</text></svg>'
    )
    return Markup("".join(parts))


@dataclass(frozen=True)
class Point:
    """One candidate in a trade-off plot."""

    label: str
    x: float
    y: float
    passed: bool
    chosen: bool = False
    #: The decision in words for the label ("passes", "fails", ...); default from ``passed``.
    state: str = ""
    #: A decision left to a person: drawn as an open diamond, neither a pass nor a fail.
    review: bool = False


def scatter_chart(
    points: Sequence[Point], *, title: str, x_label: str, y_label: str, y_limit: float | None
) -> Markup:
    """A labelled scatter: passing points as circles, failing as crosses, the chosen one bold."""
    width, height, left, bottom_pad, top_pad, right = 720, 380, 70, 50, 34, 150
    xs = [p.x for p in points] or [0.0]
    ys = [p.y for p in points] + ([y_limit] if y_limit is not None else [])
    x0, x1 = min(xs) - 0.01, max(xs) + 0.01
    y0, y1 = min([*ys, 0.0]) - 0.02, max([*ys, 1.0]) + 0.05
    plot_w, plot_h = width - left - right, height - top_pad - bottom_pad

    def px(v: float) -> float:
        return left + plot_w * (v - x0) / (x1 - x0)

    def py(v: float) -> float:
        return top_pad + plot_h * (1 - (v - y0) / (y1 - y0))

    parts = [
        _opening(width, height, title, title_at=(left, 20)),
        f'<rect x="{left}" y="{top_pad}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#1b1b1b"/>',
    ]
    if y_limit is not None:
        parts.append(
            f'<line x1="{left}" y1="{py(y_limit):.1f}" x2="{left + plot_w}" y2="{py(y_limit):.1f}" '
            f'stroke="#a00000" stroke-dasharray="5 3"/><text x="{left + plot_w + 4}" '
            f'y="{py(y_limit) + 4:.1f}" font-size="11" fill="#a00000">limit {y_limit:g}</text>'
        )
    placed: list[tuple[float, float]] = []
    for p in sorted(points, key=lambda p: (py(p.y), p.label)):
        cx, cy = px(p.x), py(p.y)
        weight = 3 if p.chosen else 1.5
        if p.review:
            parts.append(
                f'<path d="M{cx:.1f},{cy - 7:.1f} L{cx + 7:.1f},{cy:.1f} L{cx:.1f},{cy + 7:.1f} '
                f'L{cx - 7:.1f},{cy:.1f} Z" fill="#fff" stroke="#6b5200" '
                f'stroke-width="{weight + 0.5}"/>'
            )
        elif p.passed:
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="6" fill="#1f7a3a" stroke="#000" '
                f'stroke-width="{weight}"/>'
            )
        else:
            parts.append(
                f'<path d="M{cx - 6:.1f},{cy - 6:.1f} L{cx + 6:.1f},{cy + 6:.1f} M{cx - 6:.1f},'
                f'{cy + 6:.1f} L{cx + 6:.1f},{cy - 6:.1f}" stroke="#a00000" '
                f'stroke-width="{weight + 1}"/>'
            )
        state = (p.state or ("passes" if p.passed else "fails")) + (", chosen" if p.chosen else "")
        label_y = cy + 4
        while any(abs(label_y - y) < 12 and abs(cx - x) < 220 for x, y in placed):
            label_y += 12  # below a label already there, never over it
        placed.append((cx, label_y))
        parts.append(
            f'<text x="{cx + 9:.1f}" y="{label_y:.1f}" font-size="11">{escape(p.label)} '
            f"({state})</text>"
        )
    parts.append(
        f'<text x="{left}" y="{height - 28}" font-size="11">{tick_words(x0)}</text>'
        f'<text x="{left + plot_w}" y="{height - 28}" font-size="11" text-anchor="end">'
        f"{tick_words(x1)}</text>"
        f'<text x="{left + plot_w / 2}" y="{height - 10}" font-size="12" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text x="{left - 6}" y="{py(y1) + 10:.1f}" font-size="11" text-anchor="end">'
        f"{y1:.2f}</text>"
        f'<text x="{left - 6}" y="{py(y0):.1f}" font-size="11" text-anchor="end">{y0:.2f}</text>'
        f'<text x="14" y="{top_pad + plot_h / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 14 {top_pad + plot_h / 2})">{escape(y_label)}</text></svg>'
    )
    return Markup("".join(parts))


@dataclass(frozen=True)
class SignedBar:
    """One feature's signed contribution (log-odds) to a score."""

    label: str
    value: float
    note: str = ""


def signed_chart(
    bars: Sequence[SignedBar],
    *,
    title: str,
    value_words: Callable[[float], str] | None = None,
    axis_label: str = "effect on the estimate (log-odds)",
) -> Markup:
    """Bars left (lowers) or right (raises) of a centre line, each labelled in words.

    Readable without colour: direction, a pattern on bars that lower the estimate, and the words
    "raises" or "lowers" with the value on every bar, or with ``value_words(value)`` instead of
    the number (for pages a coordinator or a person reads: "raises a lot"). With
    ``value_words``, each label stands above its bar, so the chart reads at phone width.
    """
    if value_words is not None:
        return _stacked_signed_chart(bars, title=title, value_words=value_words)
    left, width, row, top = 230, 760, 30, 40
    centre = left + (width - left - 150) / 2
    half = (width - left - 150) / 2
    scale = max([abs(b.value) for b in bars if math.isfinite(b.value)] + [1e-9])
    height = top + row * len(bars) + 30
    parts = [
        _opening(width, height, title, pattern=("lowers", "#d7e3ef", "#1f5a96")),
        f'<text x="{centre - 6:.1f}" y="34" font-size="11" text-anchor="end" fill="#1b1b1b">'
        "← lowers</text>",
        f'<text x="{centre + 6:.1f}" y="34" font-size="11" fill="#1b1b1b">raises →</text>',
    ]
    for i, bar in enumerate(bars):
        y = top + i * row
        value = bar.value if math.isfinite(bar.value) else 0.0
        length = max(half * abs(value) / scale, 1.0)
        x = centre if value >= 0 else centre - length
        fill = "#8a2b0f" if value >= 0 else "url(#lowers)"
        word = "raises" if value >= 0 else "lowers"
        parts.append(
            f'<text x="{left - 8}" y="{y + 17}" font-size="12" text-anchor="end" '
            f'fill="#1b1b1b">{escape(bar.label)}</text>'
            f'<rect x="{x:.1f}" y="{y + 5}" width="{length:.1f}" height="16" fill="{fill}" '
            'stroke="#1b1b1b" stroke-width="0.6"/>'
        )
        text_x = centre + length + 6 if value >= 0 else centre + 6
        parts.append(
            f'<text x="{text_x:.1f}" y="{y + 17}" font-size="11" fill="#1b1b1b">'
            f"{word} {abs(value):.2f}</text>"
        )
    bottom = top + row * len(bars)
    parts.append(
        f'<line x1="{centre:.1f}" y1="{top - 2}" x2="{centre:.1f}" y2="{bottom}" '
        'stroke="#1b1b1b" stroke-width="1.2"/>'
        f'<text x="{centre:.1f}" y="{bottom + 18}" font-size="11" text-anchor="middle" '
        'fill="#1b1b1b">effect on the estimate (log-odds)</text></svg>'
    )
    return Markup("".join(parts))


def _stacked_signed_chart(
    bars: Sequence[SignedBar], *, title: str, value_words: Callable[[float], str]
) -> Markup:
    """A narrow signed chart: each label on its own line above its bar, values in words."""
    width, row, top, pad = 380, 44, 44, 8
    centre = width / 2
    half = centre - 100  # room for the words beside the longest bar
    scale = max([abs(b.value) for b in bars if math.isfinite(b.value)] + [1e-9])
    height = top + row * len(bars) + 10
    parts = [
        _opening(width, height, title, pattern=("lowers", "#d7e3ef", "#1f5a96")),
        f'<text x="{centre - 6:.1f}" y="36" font-size="12" text-anchor="end" fill="#1b1b1b">'
        "← lowers</text>",
        f'<text x="{centre + 6:.1f}" y="36" font-size="12" fill="#1b1b1b">raises →</text>',
    ]
    for i, bar in enumerate(bars):
        y = top + i * row
        value = bar.value if math.isfinite(bar.value) else 0.0
        length = max(half * abs(value) / scale, 1.0)
        x = centre if value >= 0 else centre - length
        fill = "#8a2b0f" if value >= 0 else "url(#lowers)"
        word = ("raises " if value >= 0 else "lowers ") + value_words(value)
        text_x, anchor = (centre + length + 4, "start") if value >= 0 else (x - 4, "end")
        parts.append(
            f'<text x="{pad}" y="{y + 14}" font-size="12" fill="#1b1b1b">{escape(bar.label)}</text>'
            f'<rect x="{x:.1f}" y="{y + 20}" width="{length:.1f}" height="14" fill="{fill}" '
            'stroke="#1b1b1b" stroke-width="0.6"/>'
            f'<text x="{text_x:.1f}" y="{y + 32}" font-size="11" text-anchor="{anchor}" '
            f'fill="#1b1b1b">{escape(word)}</text>'
            # the centre line beside the bar only, so that it never crosses a label
            f'<line x1="{centre:.1f}" y1="{y + 17}" x2="{centre:.1f}" y2="{y + 37}" '
            'stroke="#1b1b1b" stroke-width="1.2"/>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
