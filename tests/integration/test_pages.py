"""The web pages through a real Flask client, SQLite database and MLflow store."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from lifecycle.release import list_versions
from lifecycle.verified_loading import trust_for
from model.registry import connect
from monitoring import group_shares as monitoring
from service import create_app
from store.db import AccessLogRow, Approval, Database, OptOut, Outcome, QueueEntry
from tests.support.homes import ReviewSite, Site, copy_site, on_both_databases, site_database
from tests.support.postgres import lift_update_guard, refuse_access_log_inserts
from tests.support.specs import ROLES
from tests.support.web import SENSITIVE, csrf, sign_in

#: Every page and the roles it is open to.
PAGES = {
    "/outreach/": {"coordinator"},
    "/oversight/releases": {"oversight"},
    "/oversight/compare": {"oversight", "analyst"},
    "/oversight/policy": {"oversight", "analyst"},
    "/oversight/access-log": {"oversight"},
    "/oversight/monitoring": {"oversight", "analyst"},
    "/analyst/versions": {"analyst", "oversight"},
    "/admin/users": {"admin"},
}


@pytest.fixture
def own_site(site: Site, tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Site:
    return copy_site(site, tmp_path, site_database(request, backend))


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
def as_role(app: Flask, own_site: Site):
    def make(role: str) -> FlaskClient:
        client = app.test_client()
        sign_in(client, own_site, role)
        return client

    return make


def count(db: Database, table: type) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def page_token(client: FlaskClient, path: str) -> str:
    return csrf(client.get(path).get_data(as_text=True))


# ----------------------------------------------------------------------------- sign-in, roles


@pytest.mark.parametrize("path", sorted(PAGES))
def test_pages_send_strangers_to_sign_in(app: Flask, path: str) -> None:
    response = app.test_client().get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", sorted(PAGES))
def test_every_page_with_every_role(as_role, role: str, path: str) -> None:
    response = as_role(role).get(path)
    if role in PAGES[path]:
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
    else:
        assert response.status_code == 403
        assert "not open to the" in response.get_data(as_text=True)


@on_both_databases
def test_wrong_password_is_refused_and_repeated_failures_lock_the_name(
    app: Flask, own_site: Site
) -> None:
    client = app.test_client()
    for attempt in range(6):
        token = csrf(client.get("/login").get_data(as_text=True))
        response = client.post(
            "/login",
            data={"csrf_token": token, "username": own_site.user("coordinator"), "password": "x"},
        )
        assert response.status_code == (401 if attempt < 5 else 429)
    token = csrf(client.get("/login").get_data(as_text=True))
    right = {
        "csrf_token": token,
        "username": own_site.user("coordinator"),
        "password": own_site.passwords["coordinator"],
    }
    assert client.post("/login", data=right).status_code == 429  # locked even when right


def test_sign_in_follows_only_same_site_next(app: Flask, own_site: Site) -> None:
    client = app.test_client()
    for target, expected in [
        ("/oversight/policy", "/oversight/policy"),
        ("//evil.test/", "/"),
        ("/%09/evil.test", "/"),  # browsers drop the tab: //evil.test
        ("/%0d/evil.test", "/"),
        ("https://evil.test/", "/"),
        ("/\\evil.test", "/"),
    ]:
        token = csrf(client.get("/login").get_data(as_text=True))
        response = client.post(
            f"/login?next={target}",
            data={
                "csrf_token": token,
                "username": own_site.user("analyst"),
                "password": own_site.passwords["analyst"],
            },
        )
        assert response.headers["Location"] == expected


def test_sign_out_ends_the_session(as_role) -> None:
    client = as_role("coordinator")
    token = page_token(client, "/outreach/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/outreach/").status_code == 302


@on_both_databases
def test_signing_out_ends_copies_of_the_session_too(app: Flask, own_site: Site) -> None:
    client = app.test_client()
    sign_in(client, own_site, "coordinator")
    cookie = client.get_cookie("session")
    assert cookie is not None
    copy = app.test_client()
    copy.set_cookie("session", cookie.value)
    assert copy.get("/outreach/").status_code == 200
    client.post("/logout", data={"csrf_token": page_token(client, "/outreach/")})
    assert copy.get("/outreach/").status_code == 302


def test_the_role_is_read_from_the_database_on_every_request(as_role, db: Database) -> None:
    from store.db import User

    client = as_role("coordinator")
    assert client.get("/outreach/").status_code == 200
    with db.engine.begin() as connection:
        connection.execute(update(User).where(User.role == "coordinator").values(role="analyst"))
    assert client.get("/outreach/").status_code == 403


def test_a_session_ends_twelve_hours_after_signing_in(as_role) -> None:
    client = as_role("coordinator")
    with client.session_transaction() as session:
        session["since"] = time.time() - 13 * 3600
    assert "expired=1" in client.get("/outreach/").headers["Location"]


def test_idle_session_times_out(as_role) -> None:
    client = as_role("coordinator")
    assert client.get("/outreach/").status_code == 200
    with client.session_transaction() as session:
        session["seen"] = time.time() - 16 * 60
    response = client.get("/outreach/")
    assert response.status_code == 302 and "expired=1" in response.headers["Location"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "signed out after a period without activity" in page


# ----------------------------------------------------------------------------- security


def test_security_headers_and_cookie_flags(app: Flask, own_site: Site) -> None:
    client = app.test_client()
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cache-Control"] == "no-store"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    secure = app.test_client().get("/login", base_url="https://localhost")
    assert "Secure" in secure.headers["Set-Cookie"]


def test_no_page_has_inline_script_or_style(as_role) -> None:
    for role in ROLES:
        client = as_role(role)
        for path, roles in PAGES.items():
            if role in roles:
                html = client.get(path).get_data(as_text=True)
                assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
                assert "<style" not in html and " style=" not in html, path
                assert not re.search(r"\son[a-z]+=", html), path


def test_a_form_without_its_csrf_token_is_refused_and_writes_nothing(as_role, db: Database) -> None:
    client = as_role("coordinator")
    with db.session() as session:
        entry = session.scalars(select(QueueEntry).where(QueueEntry.rank == 1)).first()
    before = count(db, Outcome)
    for data in ({"status": "contacted"}, {"status": "contacted", "csrf_token": "forged"}):
        response = client.post(f"/outreach/entries/{entry.id}/outcome", data=data)
        assert response.status_code == 400
        assert "did not come from this site" in response.get_data(as_text=True)
    assert count(db, Outcome) == before


def test_api_errors_stay_json_and_page_errors_are_pages(app: Flask) -> None:
    client = app.test_client()
    api = client.get("/api/v1/nowhere")
    assert api.status_code == 404 and api.json["error"]["code"] == "not_found"
    page = client.get("/nowhere")
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert "Traceback" not in page.get_data(as_text=True)


# ----------------------------------------------------------------------------- coordinators


@on_both_databases
def test_list_shows_the_period_in_rank_order_and_logs_first(as_role, db: Database) -> None:
    client = as_role("coordinator")
    before = count(db, AccessLogRow)
    html = client.get("/outreach/").get_data(as_text=True)
    with db.session() as session:
        latest = session.scalar(select(func.max(QueueEntry.period)))
        expected = list(
            session.scalars(
                select(QueueEntry.person_id)
                .where(QueueEntry.period == latest, QueueEntry.rank > 0)
                .order_by(QueueEntry.rank)
                .limit(50)
            )
        )
        row = session.scalars(select(AccessLogRow).order_by(AccessLogRow.id.desc())).first()
    shown = re.findall(r'href="/outreach/people/([^"?]+)\?', html.split("What changed")[0])
    assert shown == expected
    assert count(db, AccessLogRow) == before + 1
    assert row.action == "list" and set(expected) <= set(row.subject_ids)
    for word in SENSITIVE:
        assert word not in html


@pytest.mark.parametrize("field", ["area", "band", "status"])
@on_both_databases
def test_list_filters(as_role, db: Database, field: str) -> None:
    client = as_role("coordinator")
    with db.session() as session:
        latest = session.scalar(select(func.max(QueueEntry.period)))
        entries = list(
            session.scalars(
                select(QueueEntry).where(QueueEntry.period == latest, QueueEntry.rank > 0)
            )
        )
    first = entries[0]
    value = {"area": first.area, "band": first.band, "status": "new"}[field]
    assert value, "the fixture's queue carries areas and bands"
    html = client.get(f"/outreach/?{field}={value}").get_data(as_text=True)
    expected = [e for e in entries if field == "status" or getattr(e, field) == value]
    assert f"{len(expected)} people on this list with these filters" in html


def test_list_pages(as_role) -> None:
    client = as_role("coordinator")
    first = client.get("/outreach/").get_data(as_text=True)
    second = client.get("/outreach/?page=2").get_data(as_text=True)
    row = r'<th scope="row" data-label="Person"><a href="/outreach/people/([^"?]+)\?'
    ids = re.findall(row, first.split("What changed")[0])
    more = re.findall(row, second.split("What changed")[0])
    assert len(ids) == 50 and more and not set(ids) & set(more)
    assert 'rel="next"' in first


@on_both_databases
def test_changes_since_the_previous_period(as_role, db: Database) -> None:
    client = as_role("coordinator")
    with db.session() as session:
        periods = sorted(set(session.scalars(select(QueueEntry.period))))

        def listed(period: str) -> set[str]:
            return set(
                session.scalars(
                    select(QueueEntry.person_id).where(
                        QueueEntry.period == period, QueueEntry.rank > 0
                    )
                )
            )

        before, now = listed(periods[-2]), listed(periods[-1])
    html = client.get("/outreach/").get_data(as_text=True)
    assert f"What changed since {periods[-2]}" in html
    assert f"{len(now - before)} joined the list, {len(before - now)} left it" in html


def test_person_page_shows_reasons_chart_and_forms(as_role, db: Database) -> None:
    client = as_role("coordinator")
    with db.session() as session:
        entry = session.scalars(select(QueueEntry).order_by(QueueEntry.id.desc())).first()
    before = count(db, AccessLogRow)
    html = client.get(f"/outreach/people/{entry.person_id}").get_data(as_text=True)
    assert count(db, AccessLogRow) == before + 1
    assert "<svg" in html and "raises" in html
    for reason in entry.reasons:
        assert reason["text"] in html
    assert f"/outreach/entries/{entry.id}/outcome" in html
    for word in SENSITIVE:
        assert word not in html
    assert client.get("/outreach/people/nobody-here").status_code == 404


@on_both_databases
def test_recording_an_outcome(as_role, db: Database) -> None:
    client = as_role("coordinator")
    with db.session() as session:
        entry = session.scalars(select(QueueEntry).where(QueueEntry.rank == 1)).first()
    path = f"/outreach/people/{entry.person_id}"
    token = page_token(client, path)
    response = client.post(
        f"/outreach/entries/{entry.id}/outcome",
        data={"csrf_token": token, "status": "accepted", "note": "offered a case manager"},
    )
    assert response.status_code == 302
    page = client.get(path).get_data(as_text=True)
    assert "Recorded: Accepted help." in page and "offered a case manager" in page
    bad = client.post(
        f"/outreach/entries/{entry.id}/outcome", data={"csrf_token": token, "status": "arrested"}
    )
    assert bad.status_code == 400
    with db.session() as session:
        assert [o.status for o in session.scalars(select(Outcome))] == ["accepted"]


@on_both_databases
def test_opting_out_removes_the_person_from_the_list_and_back(as_role, db: Database) -> None:
    client = as_role("coordinator")
    with db.session() as session:
        latest = session.scalar(select(func.max(QueueEntry.period)))
        person = session.scalar(
            select(QueueEntry.person_id).where(QueueEntry.period == latest, QueueEntry.rank == 1)
        )
    assert f"/outreach/people/{person}?period=" in client.get("/outreach/").get_data(as_text=True)
    token = page_token(client, f"/outreach/people/{person}")
    client.post(f"/outreach/people/{person}/opt-out", data={"csrf_token": token, "reason": "no"})
    assert f"/outreach/people/{person}?period=" not in client.get("/outreach/").get_data(
        as_text=True
    )
    assert "asked not to be contacted" in client.get(f"/outreach/people/{person}").get_data(
        as_text=True
    )
    client.post(
        f"/outreach/people/{person}/opt-in", data={"csrf_token": token, "reason": "asked again"}
    )
    assert count(db, OptOut) == 0
    assert f"/outreach/people/{person}?period=" in client.get("/outreach/").get_data(as_text=True)


@on_both_databases
def test_no_contact_is_recorded_for_someone_who_opted_out(as_role, db: Database) -> None:
    client = as_role("coordinator")
    with db.session() as session:
        entry = session.scalars(select(QueueEntry).where(QueueEntry.rank == 2)).first()
    token = page_token(client, f"/outreach/people/{entry.person_id}")
    client.post(f"/outreach/people/{entry.person_id}/opt-out", data={"csrf_token": token})
    page = client.get(f"/outreach/people/{entry.person_id}").get_data(as_text=True)
    assert "Save the outcome" not in page
    response = client.post(
        f"/outreach/entries/{entry.id}/outcome", data={"csrf_token": token, "status": "contacted"}
    )
    assert response.status_code == 409 and count(db, Outcome) == 0


@on_both_databases
def test_last_contact_counts_every_month(as_role, db: Database) -> None:
    """Someone who declined on last month's list does not look untouched on this month's."""
    client = as_role("coordinator")
    with db.session() as session:
        periods = sorted(set(session.scalars(select(QueueEntry.period))))
        current = {
            e.person_id: e
            for e in session.scalars(
                select(QueueEntry).where(QueueEntry.period == periods[-1], QueueEntry.rank > 0)
            )
        }
        earlier = next(
            e
            for e in session.scalars(
                select(QueueEntry)
                .where(QueueEntry.period == periods[-2], QueueEntry.rank > 0)
                .order_by(QueueEntry.rank)
            )
            if e.person_id in current
        )
    token = page_token(client, "/outreach/")
    client.post(
        f"/outreach/entries/{earlier.id}/outcome", data={"csrf_token": token, "status": "declined"}
    )
    declined = client.get("/outreach/?status=declined").get_data(as_text=True)
    assert f"/outreach/people/{earlier.person_id}?period=" in declined.split("What changed")[0]
    new = client.get("/outreach/?status=new").get_data(as_text=True)
    assert "1 person" not in new and f"{len(current) - 1} people" in new
    from store.accounts import add_user, set_areas

    token = add_user(db, "api coordinator", "coordinator")
    set_areas(db, "api coordinator", ["*"])
    body = client.get(
        "/api/v1/queue?purpose=outreach&limit=1000", headers={"Authorization": f"Bearer {token}"}
    ).json
    entry = next(e for e in body["entries"] if e["person_id"] == earlier.person_id)
    assert entry["period"] == periods[-1] and entry["last_outcome"]["status"] == "declined"


@on_both_databases
def test_an_unwritable_access_log_shows_nothing(as_role, db: Database) -> None:
    client = as_role("coordinator")
    with db.engine.begin() as connection:
        refuse_access_log_inserts(connection)
    response = client.get("/outreach/")
    assert response.status_code == 503
    assert "/outreach/people/" not in response.get_data(as_text=True)


# ----------------------------------------------------------------------------- oversight


@on_both_databases
def test_approving_a_release_awaiting_approval(as_role, own_site: Site, db: Database) -> None:
    client = as_role("oversight")
    name, version = own_site.awaiting
    html = client.get("/oversight/releases").get_data(as_text=True)
    assert "Awaiting approval" in html and f"Approve version {version}" in html
    # The board sees how reliable the gate was on that version's data, in plain words.
    assert "How reliable the gate is with this much data" in html
    assert "would be caught (the release fails)" in html
    token = csrf(html)
    path = f"/oversight/releases/{name}/{version}/decision"
    missing_note = client.post(path, data={"csrf_token": token, "decision": "approve"})
    assert missing_note.status_code == 400
    assert "Write a note of 1 to 2,000 characters" in missing_note.get_data(as_text=True)
    no_choice = client.post(path, data={"csrf_token": token, "note": "kept as typed"})
    assert no_choice.status_code == 400
    assert ">kept as typed</textarea>" in no_choice.get_data(as_text=True)
    response = client.post(
        path, data={"csrf_token": token, "decision": "approve", "note": "gaps within limits"}
    )
    assert response.status_code == 302
    assert "now in production" in client.get("/oversight/releases").get_data(as_text=True)
    rows = list_versions(connect(own_site.home), name)
    assert "production" in next(r for r in rows if r["version"] == version)["aliases"]
    with db.session() as session:
        approval = session.scalars(select(Approval)).one()
    assert (approval.by, approval.decision, approval.note) == (
        own_site.user("oversight"),
        "approved",
        "gaps within limits",
    )


def test_a_review_release_names_the_groups_it_could_not_judge_before_approval(
    review_site: ReviewSite, tmp_path: Path
) -> None:
    own = copy_site(review_site.site, tmp_path)
    registry = connect(own.home)
    name, version = own.awaiting[0], review_site.version
    decision = review_site.decision
    groups = "; ".join(decision.review_groups)
    app = create_app(
        {"HOME": own.home, "DATABASE_URL": own.database_url, "WATCH_SECONDS": 0, "TESTING": True}
    )
    client = app.test_client()
    sign_in(client, own, "oversight")
    html = client.get("/oversight/releases").get_data(as_text=True)
    assert f'id="summary-{name}-{version}"' in html and f"Approve version {version}" in html
    summary = html.split(f'id="summary-{name}-{version}"', 1)[1].split("</div>", 1)[0]
    assert "REVIEW: " in summary and "The board decides." in summary
    assert "What approving commits the board to:" in summary
    review_items = decision.review
    named = [item for item in review_items if item.kind != "nothing_judged"]
    if named:
        assert named[0].group in summary
    else:  # a gate under which no group could be judged is said in words, not as a group
        assert "no group could be judged on its own" in summary.lower()
        assert "(no group)" not in summary
    response = client.post(
        f"/oversight/releases/{name}/{version}/decision",
        data={"csrf_token": csrf(html), "decision": "approve", "note": "took the groups on"},
    )
    assert response.status_code == 302
    row = next(r for r in list_versions(registry, name) if r["version"] == version)
    assert "production" in row["aliases"] and row["approved_review_groups"] == groups
    page = client.get("/oversight/releases").get_data(as_text=True)
    assert "Took on the groups the audit could not judge" in page


@on_both_databases
def test_the_board_can_withdraw_the_production_model_and_coordinators_see_it_paused(
    app: Flask, as_role, own_site: Site, db: Database
) -> None:
    oversight, coordinator = as_role("oversight"), as_role("coordinator")
    name = own_site.awaiting[0]
    assert coordinator.get("/outreach/").status_code == 200
    html = oversight.get("/oversight/releases").get_data(as_text=True)
    assert f"Withdraw {name}" in html and "data-confirm=" in html
    path = f"/oversight/releases/{name}/withdraw"
    refused = oversight.post(path, data={"note": "no token"})
    assert refused.status_code == 400  # CSRF
    no_note = oversight.post(path, data={"csrf_token": csrf(html), "note": " "})
    assert no_note.status_code == 400 and "explaining the withdrawal" in no_note.get_data(True)
    assert coordinator.post(path, data={"csrf_token": csrf(html), "note": "x"}).status_code == 403
    before = count(db, AccessLogRow)
    # The first step only asks: what withdrawing does, the note, and a button to confirm.
    asked = oversight.post(path, data={"csrf_token": csrf(html), "note": "gap found"})
    confirmation = asked.get_data(as_text=True)
    assert asked.status_code == 200 and f"Withdraw {name} now" in confirmation
    assert "Cancel: keep" in confirmation and "“gap found”" in confirmation
    assert count(db, AccessLogRow) == before and count(db, Approval) == 0
    assert coordinator.get("/outreach/").status_code == 200  # still served (a logged view)
    before = count(db, AccessLogRow)
    response = oversight.post(
        path, data={"csrf_token": csrf(confirmation), "note": "gap found", "confirmed": "yes"}
    )
    assert response.status_code == 302
    assert count(db, AccessLogRow) == before + 1
    with db.session() as session:
        row = session.scalars(select(AccessLogRow).order_by(AccessLogRow.id.desc())).first()
        recorded = session.scalars(select(Approval).where(Approval.decision == "withdrawn")).one()
    assert row is not None and (row.action, row.user) == ("withdraw", own_site.user("oversight"))
    assert recorded.note == "gap found"
    app.extensions["outreach.model"].refresh()  # what the next poll does
    paused = coordinator.get("/outreach/")
    assert paused.status_code == 503 and "Outreach is paused" in paused.get_data(as_text=True)
    assert "gap found" in paused.get_data(as_text=True)
    assert coordinator.get("/outreach/people/1").status_code == 503
    api = app.test_client()
    assert api.get("/api/v1/readyz").status_code == 503
    page = oversight.get("/oversight/releases").get_data(as_text=True)
    assert "Withdrawn" in page and f"Withdraw {name}" not in page


def test_each_version_shows_its_monitoring_status_and_the_boards_options_as_buttons(
    as_role, own_site: Site
) -> None:
    client = as_role("oversight")
    name, waiting = own_site.awaiting
    live = next(
        r for r in list_versions(connect(own_site.home), name) if "production" in r["aliases"]
    )["version"]
    html = client.get("/oversight/releases").get_data(as_text=True)
    status = html.split(f'id="monitoring-{name}-{live}"', 1)[1].split("</p>", 1)[0]
    # The site listed two months with the production version, without monitoring documents.
    assert "Not monitored: 2 months listed" in status, status
    assert f"/oversight/monitoring?model={name}" in status
    row = html.split(f'id="version-{name}-{live}"', 1)[1].split("</tr>", 1)[0]
    assert f">Withdraw {name}</button>" in row
    assert f">Ask for a re-audit of version {live}</button>" in row
    waiting_row = html.split(f'id="version-{name}-{waiting}"', 1)[1].split("</tr>", 1)[0]
    assert f"Approve version {waiting}</button>" in waiting_row
    assert f"Reject version {waiting}</button>" in waiting_row
    assert "Withdraw" not in waiting_row and "re-audit" not in waiting_row
    assert "<code>" not in html  # the board's options are buttons, not command lines


def test_the_board_asks_for_a_re_audit_and_the_analysts_see_it(
    as_role, own_site: Site, db: Database
) -> None:
    oversight = as_role("oversight")
    name = own_site.awaiting[0]
    live = next(
        r for r in list_versions(connect(own_site.home), name) if "production" in r["aliases"]
    )["version"]
    path = f"/oversight/releases/{name}/{live}/reaudit"
    token = page_token(oversight, "/oversight/releases")
    no_note = oversight.post(path, data={"csrf_token": token, "note": "  "})
    assert no_note.status_code == 400
    assert "saying why a re-audit is needed" in no_note.get_data(as_text=True)
    assert (
        oversight.post(
            f"/oversight/releases/{name}/99/reaudit", data={"csrf_token": token, "note": "x"}
        ).status_code
        == 404
    )
    analyst_client = as_role("analyst")
    analyst_token = page_token(analyst_client, "/analyst/versions")
    refused = analyst_client.post(path, data={"csrf_token": analyst_token, "note": "x"})
    assert refused.status_code == 403  # the board's option only
    done = oversight.post(path, data={"csrf_token": token, "note": "recall fell in March"})
    assert done.status_code == 302
    with db.session() as session:
        recorded = session.scalars(select(Approval)).one()
    assert (recorded.decision, recorded.model_version, recorded.by) == (
        "re-audit requested",
        live,
        own_site.user("oversight"),
    )
    page = oversight.get("/oversight/releases").get_data(as_text=True)
    assert "Asked for a re-audit of" in page and "Re-audit requested by oversight-user" in page
    # Nothing moved: the version is still served.
    assert (
        "production"
        in next(r for r in list_versions(connect(own_site.home), name) if r["version"] == live)[
            "aliases"
        ]
    )
    analyst = as_role("analyst").get("/oversight/monitoring").get_data(as_text=True)
    assert "The board asked for a re-audit" in analyst and "recall fell in March" in analyst
    assert f"outreach audit --model {name}/VERSION" in analyst  # the analyst's own tool
    versions = analyst_client.get("/analyst/versions").get_data(as_text=True)
    assert f"{name} version {live}: asked by oversight-user" in versions
    board = oversight.get("/oversight/monitoring").get_data(as_text=True)
    assert "The board asked for a re-audit" in board
    assert "outreach audit" not in board  # never a command line for the board


def test_the_person_who_released_a_version_cannot_approve_it_on_the_page(
    app: Flask, own_site: Site, db: Database
) -> None:
    from store.accounts import add_user

    name, version = own_site.awaiting  # released by analyst-1
    add_user(db, "analyst-1", "oversight", password="a long enough password for tests")
    client = app.test_client()
    token = csrf(client.get("/login").get_data(as_text=True))
    client.post(
        "/login",
        data={
            "csrf_token": token,
            "username": "analyst-1",
            "password": "a long enough password for tests",
        },
    )
    html = client.get("/oversight/releases").get_data(as_text=True)
    row = html.split(f'id="version-{name}-{version}"', 1)[1].split("</tr>", 1)[0]
    assert f"Approve version {version}</button>" not in row
    assert "You released this version" in row and f"Reject version {version}" in row
    refused = client.post(
        f"/oversight/releases/{name}/{version}/decision",
        data={"csrf_token": csrf(html), "decision": "approve", "note": "my own"},
    )
    text = refused.get_data(as_text=True)
    assert refused.status_code == 409 and "needs a second person" in text
    assert 'role="alert"' in text and "Releases" in text
    assert count(db, Approval) == 0


def test_every_model_in_production_has_a_monitoring_page(as_role, own_site: Site, dataset) -> None:
    """A second model in production beside the one this service serves: its own monitoring
    page (nothing scored with it yet, said in words), linked from the releases page and from
    the served model's page. (Released from the shared population's first 1,000 people: its
    pages, not its data, are what is tested.)"""
    from lifecycle.release import release
    from model.data import validate
    from tests.support.specs import LENIENT, fast_spec, policy_text

    spec = fast_spec(name="second_outreach")
    frame = dataset.source_frame()
    first = sorted(frame["person_id"].unique())[:1000]
    other = release(
        spec,
        validate(frame.loc[frame["person_id"].isin(first)].reset_index(drop=True), spec),
        connect(own_site.home),
        policy=policy_text(**LENIENT),
        trust=trust_for(own_site.home),
    )
    assert other.promoted
    board = as_role("oversight")
    releases = board.get("/oversight/releases").get_data(as_text=True)
    assert "/oversight/monitoring?model=second_outreach" in releases
    served = board.get("/oversight/monitoring").get_data(as_text=True)
    assert 'aria-label="Models in production"' in served
    assert "?model=second_outreach" in served
    response = as_role("analyst").get("/oversight/monitoring?model=second_outreach")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Monitoring: second_outreach" in html
    said = html.split('id="not-scored">', 1)[1].split("</p>", 1)[0]
    version = other.chosen.candidate.version
    assert f"No month has been scored with second_outreach (version {version} is in" in said
    assert "outreach score --data FILE" in html  # how the analyst starts it
    plain = board.get("/oversight/monitoring?model=second_outreach").get_data(as_text=True)
    assert "No month has been scored with second_outreach" in plain
    assert "<code>" not in plain.split("<main", 1)[1]


def test_monitoring_refuses_a_model_not_in_production(as_role) -> None:
    response = as_role("analyst").get("/oversight/monitoring?model=no_such_model")
    assert response.status_code == 404
    assert "is in production here" in response.get_data(as_text=True)


def test_a_refused_decision_records_nothing(as_role, own_site: Site, db: Database) -> None:
    client = as_role("oversight")
    name = own_site.awaiting[0]
    production = next(
        r for r in list_versions(connect(own_site.home), name) if "production" in r["aliases"]
    )
    token = page_token(client, "/oversight/releases")
    response = client.post(
        f"/oversight/releases/{name}/{production['version']}/decision",
        data={"csrf_token": token, "decision": "reject", "note": "try to reject production"},
    )
    assert response.status_code == 409 and "roll back first" in response.get_data(as_text=True)
    assert count(db, Approval) == 0


def test_report_and_compare_pages(as_role, own_site: Site) -> None:
    client = as_role("oversight")
    rows = [r for r in list_versions(connect(own_site.home)) if r["audit_id"]]
    report = client.get(f"/oversight/audits/{rows[0]['audit_id']}").get_data(as_text=True)
    assert "Fairness audit" in report and "<svg" in report
    assert client.get("/oversight/audits/no-such-audit").status_code == 404
    pair = f"a={rows[0]['audit_id']}&b={rows[-1]['audit_id']}"
    compare = client.get(f"/oversight/compare?{pair}").get_data(as_text=True)
    assert f"v{rows[0]['version']}" in compare and f"v{rows[-1]['version']}" in compare
    assert compare.count("<svg") >= 2
    css = client.get("/oversight/report.css")
    assert css.status_code == 200 and css.mimetype == "text/css"


def test_a_missing_audit_report_is_noted_not_fatal(as_role, own_site: Site) -> None:
    for folder in own_site.home.audits.iterdir():
        shutil.rmtree(folder)
    client = as_role("oversight")
    policy = client.get("/oversight/policy")
    assert policy.status_code == 200 and "are missing from this home" in policy.get_data(
        as_text=True
    )
    monitoring_page = client.get("/oversight/monitoring")
    assert monitoring_page.status_code == 200
    assert "audit report is missing" in monitoring_page.get_data(as_text=True)
    assert client.get("/oversight/releases").status_code == 200


def test_odd_ids_are_not_found_not_errors(as_role) -> None:
    client = as_role("oversight")
    for path in (
        "/oversight/audits/" + "a" * 300,
        "/oversight/audits/..",
        "/oversight/compare?a=" + "b" * 300 + "&b=x",
    ):
        assert client.get(path).status_code == 404, path
    for query in ("page=-3", "page=abc", "person=%25", "person=_", "user=" + "u" * 500):
        assert client.get(f"/oversight/access-log?{query}").status_code == 200, query


def test_access_log_filter_by_person(as_role, db: Database) -> None:
    coordinator = as_role("coordinator")
    with db.session() as session:
        entry = session.scalars(select(QueueEntry).where(QueueEntry.rank == 1)).first()
    coordinator.get(f"/outreach/people/{entry.person_id}")
    page = as_role("oversight").get(f"/oversight/access-log?person={entry.person_id}")
    text = page.get_data(as_text=True)
    with db.session() as session:
        rows = [
            r
            for r in session.scalars(select(AccessLogRow))
            if str(entry.person_id) in r.subject_ids
        ]
    assert f"{len(rows)} rows;" in text


@on_both_databases
def test_access_log_page_reports_a_broken_chain(as_role, db: Database) -> None:
    as_role("coordinator").get("/outreach/")
    client = as_role("oversight")
    assert "The chain is intact" in client.get("/oversight/access-log").get_data(as_text=True)
    with db.engine.begin() as connection:  # the table refuses updates: lift that first
        lift_update_guard(connection)
        connection.execute(update(AccessLogRow).values(user="someone else"))
    page = client.get("/oversight/access-log?full=1").get_data(as_text=True)
    assert "The chain is broken at row 1" in page


@on_both_databases
def test_access_log_page_checks_new_rows_between_full_checks(as_role, db: Database) -> None:
    client = as_role("oversight")
    client.get("/oversight/access-log")  # a full check
    as_role("coordinator").get("/outreach/")
    page = client.get("/oversight/access-log").get_data(as_text=True)
    assert "The chain is intact" in page
    as_role("coordinator").get("/outreach/")
    with db.engine.begin() as connection:  # tamper with a row added since: checked at once
        lift_update_guard(connection)
        newest = connection.scalar(select(func.max(AccessLogRow.id)))
        connection.execute(
            update(AccessLogRow).where(AccessLogRow.id == newest).values(user="someone")
        )
    page = client.get("/oversight/access-log").get_data(as_text=True)
    assert f"The chain is broken at row {newest}" in page


def test_monitoring_warns_beyond_the_policy_limits(db: Database, app: Flask) -> None:
    name = app.extensions["outreach.model"].name
    gate = {"metric": "selection_rate", "disparity": "ratio", "min": 0.999, "max": 1.001}
    policy = {"gates": [gate], "reference_group": "largest", "min_group_size": 1}
    with db.session() as session:
        found = monitoring.periods(session, name, {"policy": policy})
    # A group is judged only where the audit counted enough people in need (the one
    # sufficiency rule, audits.limit_check): without the audit's counts, nothing is judged.
    assert found and not found[0].warnings
    groups = [
        {"attribute": a.attribute, "group": g.group, "people_in_need": 1_000}
        for a in found[0].attributes
        for g in a.groups
    ]
    report = {"policy": policy, "groups": groups}
    with db.session() as session:
        views = monitoring.periods(session, name, report)
    assert views and {a.attribute for a in views[0].attributes} >= {"race_ethnicity", "sex"}
    assert views[0].warnings, "exact parity on every group is not expected"
    for view in views:
        for attribute in view.attributes:
            assert sum(g.selected for g in attribute.groups) == view.selected
            reference = [g for g in attribute.groups if g.reference]
            assert len(reference) == 1
    named = {**report, "policy": {**policy, "reference_group": {"sex": "male"}}}
    with db.session() as session:
        view = monitoring.periods(session, name, named)[0]
    sex = next(a for a in view.attributes if a.attribute == "sex")
    assert [g.group for g in sex.groups if g.reference] == ["male"]
    assert any("against male" in w and "a blocking gate" in w for w in sex.warnings)
    rest = {**report, "policy": {**policy, "reference_group": "rest"}}
    with db.session() as session:
        view = monitoring.periods(session, name, rest)[0]
    for attribute in view.attributes:  # compared with everyone else: no group is the reference
        assert not [g for g in attribute.groups if g.reference]
        for g in attribute.groups:
            others = [o for o in attribute.groups if o is not g]
            rate = sum(o.selected for o in others) / sum(o.population for o in others)
            assert g.ratios["selection_rate"] == pytest.approx(g.selection_rate / rate)
    assert any("against everyone else" in w for w in view.warnings)
    relaxed = {**report, "policy": {**policy, "gates": [{**gate, "min": 0.0, "max": 100.0}]}}
    with db.session() as session:
        assert not monitoring.periods(session, name, relaxed)[0].warnings


def test_behind_a_trusted_tls_proxy_the_cookie_is_secure(own_site: Site) -> None:
    app = create_app(
        {
            "HOME": own_site.home,
            "DATABASE_URL": own_site.database_url,
            "WATCH_SECONDS": 0,
            "TESTING": True,
            "PROXY_COUNT": 1,
        }
    )
    response = app.test_client().get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in response.headers["Set-Cookie"]


@on_both_databases
def test_monitoring_page_charts_lists_and_outcomes_by_group(as_role, db: Database) -> None:
    coordinator = as_role("coordinator")
    with db.session() as session:
        latest = session.scalar(select(func.max(QueueEntry.period)))
        entry = session.scalars(
            select(QueueEntry).where(QueueEntry.period == latest, QueueEntry.rank == 1)
        ).one()
    token = page_token(coordinator, f"/outreach/people/{entry.person_id}")
    coordinator.post(
        f"/outreach/entries/{entry.id}/outcome", data={"csrf_token": token, "status": "accepted"}
    )
    html = as_role("oversight").get("/oversight/monitoring").get_data(as_text=True)
    assert "Share put on the list by sex, latest months" in html
    table = html.split("the funnel by sex</caption>", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr><th scope="row">[^<]*</th>(.*?)</tr>', table, flags=re.S)
    cells = [re.findall(r'<td class="num">(.*?)</td>', row, flags=re.S) for row in rows]
    # offered, by lottery, contacted, accepted, ...: one acceptance in all, a count below the
    # policy's min_group_size (100), so withheld in its group's cell (and no ratio is drawn).
    accepted = [row[3] for row in cells]
    assert any("withheld" in c for c in accepted)
    assert all("withheld" in c or c == "0" for c in accepted), accepted
    assert "the share accepted by sex: the ratio to everyone else" not in html
    assert "/outreach/people/" not in html  # group totals only, never a person


@on_both_databases
def test_a_password_can_be_replaced_and_must_be_long_enough(
    app: Flask, db: Database, own_site: Site
) -> None:
    from kernel.errors import BadInputError
    from store.accounts import check_password, set_password

    name = own_site.user("coordinator")
    with pytest.raises(BadInputError, match="at least 12 characters"):
        set_password(db, name, "short")
    with pytest.raises(BadInputError, match="no user named"):
        set_password(db, "nobody", "a long enough password")
    set_password(db, name, "a brand new passphrase")
    assert check_password(db, name, own_site.passwords["coordinator"]) is None
    assert check_password(db, name, "a brand new passphrase") is not None
    assert check_password(db, "nobody", "a brand new passphrase") is None


def test_the_api_never_sets_a_session_cookie(app: Flask) -> None:
    response = app.test_client().get("/api/v1/healthz")
    assert response.status_code == 200 and "Set-Cookie" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"
