"""One copy of the shared site per module and database, with a coordinator scoped to one area:
what the area-scope and review-request tests share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from service import create_app
from store.accounts import add_user, set_areas
from store.db import AccessLogRow, Database, QueueEntry
from tests.support.homes import BACKENDS, Site, copy_site, site_database
from tests.support.web import csrf

PASSWORD = "a-password-for-scope-tests"


@dataclass(frozen=True)
class Area:
    name: str
    person: str
    entry_id: int


@dataclass(frozen=True)
class Scoped:
    app: Flask
    db: Database
    mine: Area
    theirs: Area
    token: str  # coordinator "coordinator-a", assigned only ``mine``


@pytest.fixture(scope="module", params=BACKENDS)
def shared(
    site: Site, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Scoped:
    """One copy of the site and one app for the module (building them is most of the cost), on
    each database in turn."""
    database_url = site_database(request, request.param)
    own = copy_site(site, tmp_path_factory.mktemp("scopes"), database_url)
    app = create_app(
        {"HOME": own.home, "DATABASE_URL": own.database_url, "WATCH_SECONDS": 0, "TESTING": True}
    )
    db: Database = app.extensions["outreach.db"]
    with db.session() as session:
        latest = session.scalar(select(QueueEntry.period).order_by(QueueEntry.period.desc()))
        entries = list(
            session.scalars(
                select(QueueEntry)
                .where(QueueEntry.period == latest, QueueEntry.rank > 0)
                .order_by(QueueEntry.rank)
            )
        )
    first: dict[str, QueueEntry] = {}
    for entry in entries:
        if entry.area and entry.area not in first:
            first[entry.area] = entry
    assert len(first) >= 2, "the scored site needs two areas"
    (a, one), (b, two) = sorted(first.items())[:2]
    token = add_user(db, "coordinator-a", "coordinator", password=PASSWORD)
    set_areas(db, "coordinator-a", [a])
    return Scoped(app, db, Area(a, one.person_id, one.id), Area(b, two.person_id, two.id), token)


def api(scoped: Scoped) -> Callable[..., object]:
    client = scoped.app.test_client()
    headers = {"Authorization": f"Bearer {scoped.token}"}

    def call(method: str, path: str, **body: object) -> object:
        kwargs: dict[str, object] = {"headers": headers}
        if method != "get":
            kwargs["json"] = {"purpose": "outreach", **body}
        return getattr(client, method)(path, **kwargs)

    return call


def signed_in(scoped: Scoped, name: str = "coordinator-a") -> tuple[FlaskClient, str]:
    client = scoped.app.test_client()
    token = csrf(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"csrf_token": token, "username": name, "password": PASSWORD}
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return client, csrf(client.get("/outreach/").get_data(as_text=True))  # the session's token


def last_log(db: Database) -> AccessLogRow:
    with db.session() as session:
        row = session.scalars(select(AccessLogRow).order_by(AccessLogRow.id.desc())).first()
    assert row is not None
    return row
