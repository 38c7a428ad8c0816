"""A coordinator's work on the pages: the entry of the month clicked, back to the same list view,
a phone round (search, "to call", the printed list), the reasons' plain names. Real Flask client
and SQLite database, the model served from memory; the letter and evaluation places, which need
a real release, are in tests/integration/test_coordinator_letters.py."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from lifecycle.model_source import Serving
from service.person_explanation import weight_words
from store.db import AccessLogRow, Database, Outcome, QueueEntry
from tests.support.homes import Site, copy_site
from tests.support.memory import memory_app
from tests.support.pages import in_both_months, months, text
from tests.support.web import csrf, sign_in


@pytest.fixture
def own_site(memory_site: Site, tmp_path: Path) -> Site:
    return copy_site(memory_site, tmp_path)


@pytest.fixture
def app(own_site: Site, in_memory: Serving) -> Flask:
    return memory_app(own_site, in_memory)


@pytest.fixture
def db(app: Flask) -> Database:
    return app.extensions["outreach.db"]


@pytest.fixture
def coordinator(app: Flask, own_site: Site) -> FlaskClient:
    client = app.test_client()
    sign_in(client, own_site, "coordinator")
    return client


# ----------------------------------------------------------------------------- the month clicked


def test_the_person_page_opens_the_entry_clicked_and_the_outcome_lands_on_it(
    coordinator: FlaskClient, db: Database
) -> None:
    older, newer = in_both_months(db)
    with db.session() as session:
        ahead = session.scalar(
            select(func.count()).where(
                QueueEntry.period == older.period,
                QueueEntry.rank > 0,
                QueueEntry.rank < older.rank,
                QueueEntry.band == older.band,
            )
        )
    page = ahead // 50 + 1
    listing = f"/outreach/?period={older.period}&band={older.band}" + (
        f"&page={page}" if page > 1 else ""
    )
    html = text(coordinator, listing)
    link = re.search(rf'href="(/outreach/people/{older.person_id}\?[^"]+)"', html)
    assert link, "the older month's list links the person with its month and filters"
    person_url = link.group(1).replace("&amp;", "&")
    query = parse_qs(urlsplit(person_url).query)
    assert query["period"] == [older.period] and query["band"] == [older.band]

    person = text(coordinator, person_url)
    place = re.search(r'<dd id="place">([^<]+)</dd>', person)
    assert place and place.group(1).startswith(older.period)
    assert f"number {older.rank} on the list" in place.group(1)
    assert f"number {newer.rank} on the list" not in place.group(1)
    action = re.search(r'action="(/outreach/entries/(\d+)/outcome[^"]*)"', person)
    assert action and int(action.group(2)) == older.id
    back = re.search(r'<a id="back" href="([^"]+)"', person)
    assert back and back.group(1).replace("&amp;", "&") == listing

    response = coordinator.post(
        action.group(1).replace("&amp;", "&"),
        data={"csrf_token": csrf(person), "status": "unreachable", "note": "no answer"},
    )
    assert response.status_code == 302
    assert response.headers["Location"].replace("&amp;", "&") == person_url
    with db.session() as session:
        recorded = session.scalars(select(Outcome)).one()
    assert recorded.entry_id == older.id and recorded.status == "unreachable"
    after = text(coordinator, person_url)
    assert "Recorded: Could not reach." in after
    assert re.search(r'<dd id="place">' + re.escape(older.period), after)


def test_the_person_page_without_a_month_shows_the_latest_and_links_the_others(
    coordinator: FlaskClient, db: Database
) -> None:
    older, newer = in_both_months(db)
    html = text(coordinator, f"/outreach/people/{older.person_id}")
    assert re.search(r'<dd id="place">' + re.escape(newer.period), html)
    assert f"/outreach/people/{older.person_id}?period={older.period}" in html
    assert "← Back to the outreach list for " + newer.period in html


def test_a_month_the_person_is_not_on_is_not_found_and_a_bad_month_is_refused(
    coordinator: FlaskClient, db: Database
) -> None:
    older, _ = in_both_months(db)
    missing = text(coordinator, f"/outreach/people/{older.person_id}?period=1999-01", 404)
    assert "no entry on the 1999-01 list" in missing
    bad = text(coordinator, f"/outreach/people/{older.person_id}?period=soon", 400)
    assert "YYYY-MM" in bad


# ----------------------------------------------------------------------------- a phone round


def test_to_call_lists_those_not_contacted_or_not_reached(
    coordinator: FlaskClient, db: Database
) -> None:
    latest = months(db)[-1]
    with db.session() as session:
        first, second = session.scalars(
            select(QueueEntry)
            .where(QueueEntry.period == latest, QueueEntry.rank > 0)
            .order_by(QueueEntry.rank)
            .limit(2)
        )
        listed = session.scalar(
            select(func.count()).where(QueueEntry.period == latest, QueueEntry.rank > 0)
        )
    token = csrf(text(coordinator, "/outreach/"))
    for entry, status in ((first, "unreachable"), (second, "accepted")):
        coordinator.post(
            f"/outreach/entries/{entry.id}/outcome", data={"csrf_token": token, "status": status}
        )
    html = text(coordinator, "/outreach/?status=to_call")
    assert f"{listed - 1} people on this list with these filters" in html
    rows = html.split("What changed")[0]
    assert f"/outreach/people/{first.person_id}?" in rows
    assert f"/outreach/people/{second.person_id}?" not in rows


def test_the_printed_round_holds_the_whole_filtered_list_with_an_outcome_column(
    coordinator: FlaskClient, db: Database
) -> None:
    latest = months(db)[-1]
    with db.session() as session:
        band = session.scalar(
            select(QueueEntry.band)
            .where(QueueEntry.period == latest, QueueEntry.rank > 0)
            .group_by(QueueEntry.band)
            .order_by(func.count().desc())
        )
        expected = list(
            session.scalars(
                select(QueueEntry.person_id)
                .where(QueueEntry.period == latest, QueueEntry.rank > 0, QueueEntry.band == band)
                .order_by(QueueEntry.rank)
            )
        )
    assert len(expected) > 50, "more than one page of the list"
    listing = text(coordinator, f"/outreach/?band={band}")
    assert f'href="/outreach/print?period={latest}&amp;band={band}"' in listing
    html = text(coordinator, f"/outreach/print?period={latest}&band={band}")
    assert re.findall(r'<th scope="row">([^<]+)</th>', html) == expected
    assert "Outcome of this call" in html and "For offering voluntary help only" in html
    with db.session() as session:
        row = session.scalars(select(AccessLogRow).order_by(AccessLogRow.id.desc())).first()
    assert row.action == "print" and row.subject_ids == expected and row.purpose == "outreach"


def test_find_a_person_by_id(coordinator: FlaskClient, db: Database) -> None:
    _, newer = in_both_months(db)
    response = coordinator.get(f"/outreach/find?person_id=+{newer.person_id}+")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/outreach/people/{newer.person_id}"
    found = coordinator.get("/outreach/find?person_id=nobody-here", follow_redirects=True)
    assert found.status_code == 404
    assert "No such person on a list in your areas." in found.get_data(as_text=True)


def test_reasons_and_changes_use_the_specs_plain_names(
    coordinator: FlaskClient, db: Database
) -> None:
    _, newer = in_both_months(db)
    person = text(coordinator, f"/outreach/people/{newer.person_id}")
    chart = person.split("<svg", 1)[1].split("</svg>", 1)[0]
    codes = [r["feature"] for r in newer.reasons if "_" in r["feature"]]
    assert codes and not [c for c in codes if c in chart or c.replace("_", " ") in chart]
    assert "raises " + weight_words(newer.reasons[0]["contribution"]) in chart
    changes = text(coordinator, "/outreach/").split("What changed", 1)[1]
    assert not re.search(r"<td>[a-z]+(_[a-z0-9]+)+", changes)
    assert not re.search(r"\b(er|ems) visits|\b12m\b|\b90d\b", changes)


@pytest.mark.parametrize(
    ("contribution", "words"),
    [
        (2.646715, "a lot"),
        (-1.0, "a lot"),
        (0.5, "somewhat"),
        (0.01, "a little"),
        (None, "a little"),
    ],
)
def test_weight_words(contribution: float | None, words: str) -> None:
    assert weight_words(contribution) == words
