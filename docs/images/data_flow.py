"""Draw docs/images/data-flow.png, the README's picture of the data flow.

Run from the repository root: ``.venv/bin/python docs/images/data_flow.py``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

OUT = Path(__file__).with_name("data-flow.png")

#: (lane label, lane y, lane colour, box edge colour)
LANES = {
    "analyst": ("Data scientist\n(analyst)", 5.0, "#e8f1fb", "#2f6db5"),
    "oversight": ("Oversight\nboard", 3.0, "#f1ebf8", "#6a3d9a"),
    "coordinator": ("Outreach\ncoordinator", 1.0, "#e9f5ec", "#2e7d32"),
}
COLUMNS = [2.6, 5.05, 7.5, 9.95, 12.4]
BOX_W, BOX_H = 2.1, 1.25

#: name -> (lane, column, text)
BOXES = {
    "data": ("analyst", 0, "Data\nCSV or Parquet,\nor synthetic"),
    "validate": ("analyst", 1, "Validate against\nthe experiment spec"),
    "train": ("analyst", 2, "Train candidates\non earlier months"),
    "audit": ("analyst", 3, "Fairness audit\non later months,\nby group"),
    "gate": ("analyst", 4, "Gate\nPASS / REVIEW / FAIL\n(FAIL: never served)"),
    "approve": ("oversight", 4, "Board approves\nor rejects, with a\nsigned statement"),
    "monitor": ("oversight", 1, "Monitoring by group:\nrealised vs estimated,\ndrift, funnel"),
    "access": ("oversight", 2, "Access log:\nevery view of\na person, signed"),
    "public": ("oversight", 3, "Transparency\nrecord (public)"),
    "serve": ("coordinator", 4, "Service serves only\nthe verified,\nattested version"),
    "list": ("coordinator", 3, "Ranked list within\ncapacity, with\nreasons in words"),
    "offer": ("coordinator", 2, "Coordinator offers\nhelp, records the\noutcome; opt-outs"),
    "labels": ("coordinator", 1, "Labels arrive\nmonths later"),
}

#: (from, to, label, style)
ARROWS = [
    ("data", "validate", "", "-"),
    ("validate", "train", "", "-"),
    ("train", "audit", "", "-"),
    ("audit", "gate", "", "-"),
    ("gate", "approve", "REVIEW", "-"),
    ("approve", "serve", "approved:\nproduction", "-"),
    ("serve", "list", "", "-"),
    ("list", "offer", "", "-"),
    ("offer", "labels", "", "-"),
    ("labels", "monitor", "", "-"),
    ("monitor", "train", "re-audit,\nretrain", "--"),
    ("offer", "access", "", ":"),
    ("approve", "public", "", ":"),
]


def centre(name: str) -> tuple[float, float]:
    lane, column, _ = BOXES[name]
    return COLUMNS[column], LANES[lane][1]


def edge_point(name: str, towards: tuple[float, float]) -> tuple[float, float]:
    """Where the line from a box's centre towards a point leaves the box."""
    x, y = centre(name)
    dx, dy = towards[0] - x, towards[1] - y
    half_w, half_h = BOX_W / 2 + 0.05, BOX_H / 2 + 0.05
    scale = min(
        half_w / abs(dx) if dx else float("inf"),
        half_h / abs(dy) if dy else float("inf"),
    )
    return x + dx * scale, y + dy * scale


def draw() -> None:
    fig, ax = plt.subplots(figsize=(15.0, 6.6), dpi=110)
    ax.set_xlim(0, 14.9)
    ax.set_ylim(-0.05, 6.35)
    ax.axis("off")

    for label, y, fill, edge in LANES.values():
        ax.add_patch(
            FancyBboxPatch(
                (0.05, y - 0.9),
                14.8,
                1.8,
                boxstyle="round,pad=0,rounding_size=0.15",
                facecolor=fill,
                edgecolor="none",
            )
        )
        ax.text(0.18, y, label, ha="left", va="center", fontsize=11, weight="bold", color=edge)

    for name, (lane, _column, text) in BOXES.items():
        x, y = centre(name)
        edge = "#c75000" if name == "gate" else LANES[lane][3]
        ax.add_patch(
            FancyBboxPatch(
                (x - BOX_W / 2, y - BOX_H / 2),
                BOX_W,
                BOX_H,
                boxstyle="round,pad=0.02,rounding_size=0.12",
                facecolor="white",
                edgecolor=edge,
                linewidth=2.4 if name == "gate" else 1.6,
            )
        )
        ax.text(x, y, text, ha="center", va="center", fontsize=9.6, color="#1a1a1a")

    for start, end, label, style in ARROWS:
        a = edge_point(start, centre(end))
        b = edge_point(end, centre(start))
        ax.add_patch(
            FancyArrowPatch(
                a,
                b,
                arrowstyle="-|>",
                mutation_scale=14,
                linestyle=style,
                linewidth=1.5,
                color="#555555" if style == ":" else "#222222",
            )
        )
        if label:
            mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
            left = style == "--"
            ax.text(
                mx - 0.22 if left else mx + 0.08,
                my,
                label,
                ha="right" if left else "left",
                va="center",
                fontsize=8.6,
                style="italic",
                color="#333333",
            )

    # A PASS the policy does not ask the board to approve goes straight to production.
    gate_x, gate_y = centre("gate")
    serve_x, serve_y = centre("serve")
    ax.add_patch(
        FancyArrowPatch(
            (gate_x + BOX_W / 2 + 0.05, gate_y - 0.2),
            (serve_x + BOX_W / 2 + 0.05, serve_y + 0.2),
            connectionstyle="arc3,rad=-0.4",
            arrowstyle="-|>",
            mutation_scale=14,
            linewidth=1.5,
            color="#222222",
        )
    )
    ax.text(14.28, 3.0, "PASS:\nproduction", ha="center", va="center", fontsize=8.6, style="italic")

    ax.text(
        7.45,
        6.22,
        "outreach: from data to a voluntary offer of help, and back",
        ha="center",
        va="center",
        fontsize=13,
        weight="bold",
    )
    fig.tight_layout(pad=0.2)
    fig.savefig(OUT, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    draw()
