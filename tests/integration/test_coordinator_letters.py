"""A coordinator's round on a real release: no statistics on any page or in the letter (the letter
reads the release's audit report), and the evaluation places its policy draws. The rest of the
round runs on a model served from memory (tests/service/test_coordinator_round.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from service import create_app
from store.accounts import add_user, set_areas
from store.db import Database, QueueEntry
from tests.support.homes import Released, Site, copy_released, copy_site
from tests.support.pages import STATISTICS, in_both_months, months, text, visible
from tests.support.web import csrf, sign_in


@pytest.fixture
def own_site(site: Site, tmp_path: Path) -> Site:
    return copy_site(site, tmp_path)


@pytest.fixture
def app(own_site: Site) -> Flask:
    return create_app(
        {
            "HOME": own_site.home,
            "DATABASE_URL": own_site.database_url,
            "WATCH_SECONDS": 0,
            "TESTING": True,
        }
    )


@pytest.fixture
def db(app: Flask) -> Database:
    return app.extensions["outreach.db"]


@pytest.fixture
def coordinator(app: Flask, own_site: Site) -> FlaskClient:
    client = app.test_client()
    sign_in(client, own_site, "coordinator")
    return client


# ----------------------------------------------------------------------------- no statistics


def test_no_statistics_on_coordinator_pages_or_the_letter(
    app: Flask, coordinator: FlaskClient, db: Database
) -> None:
    older, newer = in_both_months(db)
    latest = months(db)[-1]
    paths = [
        "/outreach/",
        f"/outreach/?period={older.period}",
        "/outreach/?status=to_call",
        "/outreach/?page=2",
        f"/outreach/print?period={latest}",
        f"/outreach/people/{newer.person_id}",
        f"/outreach/people/{older.person_id}?period={older.period}",
        f"/outreach/people/{newer.person_id}/explanation",
        f"/outreach/people/{older.person_id}/explanation?period={older.period}",
        "/outreach/about",
    ]
    for path in paths:
        words = visible(text(coordinator, path))
        found = STATISTICS.findall(words)
        assert not found, f"{path}: {found[:5]}"
    token = add_user(db, "api coordinator", "coordinator")
    set_areas(db, "api coordinator", ["*"])
    letter = app.test_client().get(
        f"/api/v1/people/{newer.person_id}/explanation?purpose=outreach",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert letter.status_code == 200
    assert not STATISTICS.findall(letter.json["text"])
    assert "(this counted " in letter.json["text"]
    assert "chosen partly by chance" not in letter.json["text"]  # no lottery on this site


# ----------------------------------------------------------------------------- evaluation places


@pytest.fixture
def lottery(released: Released, tmp_path: Path) -> tuple[FlaskClient, Database, QueueEntry]:
    """A home whose months hold evaluation-lottery places, a coordinator signed in, and one
    lottery entry of the latest month."""
    own = copy_released(released, tmp_path)
    app = create_app(
        {"HOME": own.home, "DATABASE_URL": own.database_url, "WATCH_SECONDS": 0, "TESTING": True}
    )
    db: Database = app.extensions["outreach.db"]
    add_user(db, "round-coordinator", "coordinator", password="round-password-for-tests")
    set_areas(db, "round-coordinator", ["*"])
    client = app.test_client()
    token = csrf(client.get("/login").get_data(as_text=True))
    client.post(
        "/login",
        data={
            "csrf_token": token,
            "username": "round-coordinator",
            "password": "round-password-for-tests",
        },
    )
    with db.session() as session:
        entry = session.scalars(
            select(QueueEntry)
            .where(QueueEntry.source == "lottery", QueueEntry.period == own.periods[-1])
            .order_by(QueueEntry.rank.desc())
        ).first()
    assert entry is not None, "the released fixture draws evaluation places"
    return client, db, entry


def test_evaluation_places_are_labelled_on_the_list_and_the_person_page(
    lottery: tuple[FlaskClient, Database, QueueEntry],
) -> None:
    client, _, entry = lottery
    last = text(client, "/outreach/?page=1000")
    pages = int(re.search(r"page \d+ of (\d+)", last).group(1))  # type: ignore[union-attr]
    html = text(client, f"/outreach/?page={pages}")
    row = re.search(
        r'<td class="num" data-label="Place">(.*?)</td>\s*<th scope="row" data-label="Person">'
        rf'<a href="/outreach/people/{re.escape(entry.person_id)}\?',
        html,
    )
    assert row and "evaluation place" in row.group(1) and str(entry.rank) not in row.group(1)
    person = text(client, f"/outreach/people/{entry.person_id}?period={entry.period}")
    place = re.search(r'<dd id="place">([^<]+)</dd>', person)
    assert place and "an evaluation place: drawn by lot" in place.group(1)
    assert f"number {entry.rank}" not in person
    assert "offered help through an evaluation place, drawn by lot" in person
    assert "would move this listing up to the outreach cut-off" not in person
    assert not STATISTICS.findall(visible(person))
    letter = text(client, f"/outreach/people/{entry.person_id}/explanation?period={entry.period}")
    assert "You were also chosen partly by chance." in letter
    assert not STATISTICS.findall(visible(letter))
