"""Reading the coordinators' pages in tests: a page's text, the words a person reads, and the
months and people of a scored site."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy import select

from store.db import Database, QueueEntry

#: What no coordinator page and no letter to a person may hold: statistics' words, and numbers
#: with more than two decimals.
STATISTICS = re.compile(r"log-odds|percentile|\d\.\d{3,}", re.IGNORECASE)


def text(client: FlaskClient, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, (path, response.get_data(as_text=True)[:400])
    return response.get_data(as_text=True)


def visible(html: str) -> str:
    """The words a person reads: tags, attributes and the page's styles dropped."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.DOTALL)
    return re.sub(r"<[^>]+>", " ", html)


def months(db: Database) -> list[str]:
    with db.session() as session:
        return sorted(set(session.scalars(select(QueueEntry.period))))


def in_both_months(db: Database) -> tuple[QueueEntry, QueueEntry]:
    """A person listed in both months: (their older entry, their newer entry)."""
    older, newer = months(db)[-2:]
    with db.session() as session:
        now = {
            e.person_id: e
            for e in session.scalars(
                select(QueueEntry).where(QueueEntry.period == newer, QueueEntry.rank > 0)
            )
        }
        for entry in session.scalars(
            select(QueueEntry)
            .where(QueueEntry.period == older, QueueEntry.rank > 0)
            .order_by(QueueEntry.rank.desc())
        ):
            if entry.person_id in now and now[entry.person_id].rank != entry.rank:
                return entry, now[entry.person_id]
    raise AssertionError("the fixture has someone listed in both months")


def chart_texts(svg: str) -> list[str]:
    """The words of an SVG chart, in order."""
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg)
