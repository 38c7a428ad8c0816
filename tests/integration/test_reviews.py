"""Requests for review of a listing: filing (API and page) within one's areas, the opt-out a
``do_not_contact`` request records, the board's moves and their history, who may do what, the
counts by group and month with small cells withheld, bad inputs, and the access-log rows.

One copy of the test site for the module (as ``tests/test_scopes.py``): the history of requests
is append-only, so each test files about people of its own and reads what it wrote.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import IntegrityError

from audits import disclosure
from store import review_requests
from store.accounts import add_user
from store.db import (
    AccessLogRow,
    Database,
    EntryGroup,
    OptIn,
    OptOut,
    QueueEntry,
    ReviewRequest,
    ReviewRequestEvent,
)
from store.queue import free_text
from tests.support.homes import Site
from tests.support.scopes import Scoped, api, last_log, shared, signed_in
from tests.support.web import SENSITIVE, csrf, sign_in

API = "/api/v1/review-requests"
#: A month no test files in through the API (requests there are written directly).
KNOWN_MONTH, PAGE_MONTH = "2001-03", "2001-04"


@dataclass(frozen=True)
class Setting:
    scoped: Scoped
    site: Site
    #: People on the latest list in coordinator-a's area, by rank: each test takes its own.
    people: list[str]
    #: API tokens of the other roles.
    tokens: dict[str, str]


__all__ = ["shared"]  # the module's copy of the site, as tests/test_scopes.py builds it


@pytest.fixture(scope="module")
def setting(shared: Scoped, site: Site) -> Setting:
    db = shared.db
    with db.session() as session:
        latest = session.scalar(select(func.max(QueueEntry.period)))
        people = list(
            session.scalars(
                select(QueueEntry.person_id)
                .where(
                    QueueEntry.period == latest,
                    QueueEntry.rank > 0,
                    QueueEntry.area == shared.mine.name,
                )
                .order_by(QueueEntry.rank)
            )
        )
    assert len(people) >= 12, "the scored site needs a dozen people in one area"
    tokens = {role: add_user(db, f"reviews {role}", role) for role in ("oversight", "admin")}
    tokens["analyst"] = add_user(db, "reviews analyst", "analyst")
    return Setting(shared, site, people, tokens)


@pytest.fixture
def setup(setting: Setting) -> Iterator[Setting]:
    """The module's site; opt-outs (which a ``do_not_contact`` request records) removed after
    each test."""
    yield setting
    with setting.scoped.db.session() as session:
        for table in (OptOut, OptIn):
            session.execute(delete(table))


def as_role(setup: Setting, role: str) -> Callable[..., Any]:
    """An API caller with ``role``'s token (the coordinator: coordinator-a, in one area)."""
    if role == "coordinator":
        return api(setup.scoped)
    client = setup.scoped.app.test_client()
    headers = {"Authorization": f"Bearer {setup.tokens[role]}"}

    def call(method: str, path: str, **body: Any) -> Any:
        kwargs: dict[str, Any] = {"headers": headers}
        if method != "get":
            kwargs["json"] = {"purpose": "outreach", **body}
        return getattr(client, method)(path, **kwargs)

    return call


def file(setup: Setting, person: str, kind: str = "wrong_data", **more: Any) -> Any:
    body = {"person_id": person, "kind": kind, "raised_by": "person", **more}
    return api(setup.scoped)("post", API, **body)


def move(setup: Setting, number: int, state: str, note: str = "", role: str = "oversight") -> Any:
    return as_role(setup, role)("post", f"{API}/{number}/state", state=state, note=note)


def requests_about(db: Database, person: str) -> list[ReviewRequest]:
    with db.session() as session:
        return list(
            session.scalars(
                select(ReviewRequest)
                .where(ReviewRequest.person_id == person)
                .order_by(ReviewRequest.id)
            )
        )


def history(db: Database, number: int) -> list[tuple[str, str, str]]:
    with db.session() as session:
        return [
            (e.state, e.note, e.by)
            for e in session.scalars(
                select(ReviewRequestEvent)
                .where(ReviewRequestEvent.request_id == number)
                .order_by(ReviewRequestEvent.id)
            )
        ]


def log_rows(db: Database, after: int) -> list[AccessLogRow]:
    with db.session() as session:
        return list(
            session.scalars(
                select(AccessLogRow).where(AccessLogRow.id > after).order_by(AccessLogRow.id)
            )
        )


def last_log_id(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.max(AccessLogRow.id))) or 0)


def oversight_page(setup: Setting, role: str = "oversight") -> FlaskClient:
    client = setup.scoped.app.test_client()
    sign_in(client, setup.site, role)
    return client


# ---------------------------------------------------------------------------------- filing


def test_filing_through_the_api_attaches_to_the_latest_entry_and_is_logged(
    setup: Setting,
) -> None:
    db, person = setup.scoped.db, setup.people[1]
    before = last_log_id(db)
    response = file(setup, person, details="the household size is out of date")
    assert response.status_code == 201, response.json
    body = response.json
    with db.session() as session:
        latest = session.scalars(
            select(QueueEntry)
            .where(QueueEntry.person_id == person)
            .order_by(QueueEntry.period.desc())
        ).first()
    assert latest is not None
    assert body["person_id"] == person and body["state"] == "open"
    assert (body["entry_id"], body["period"]) == (latest.id, latest.period)
    assert body["model"] == {"name": latest.model_name}
    assert body["kind"] == "wrong_data" and body["raised_by"] == "person"
    assert body["details"] == "the household size is out of date"
    assert body["filed_by"] == "coordinator-a" and body["opt_out_recorded"] is False
    assert body["next_states"] == ["in_review", "resolved", "declined"]
    assert [(h["state"], h["by"]) for h in body["history"]] == [("open", "coordinator-a")]
    (stored,) = requests_about(db, person)
    assert stored.id == body["id"] and stored.state == "open"
    (row,) = log_rows(db, before)
    assert (row.action, row.subject_ids, row.allowed) == ("review_request", [person], True)
    assert (row.user, row.purpose, row.model_version) == (
        "coordinator-a",
        "outreach",
        latest.model_version,
    )
    with db.session() as session:
        assert session.get(OptOut, person) is None  # wrong data takes no one off the list


def test_filing_through_the_page(setup: Setting) -> None:
    db, person = setup.scoped.db, setup.people[2]
    client, token = signed_in(setup.scoped)
    html = client.get(f"/outreach/people/{person}").get_data(as_text=True)
    assert "Request a review" in html and f"/outreach/people/{person}/review-request" in html
    for word in SENSITIVE:
        assert word not in html
    response = client.post(
        f"/outreach/people/{person}/review-request",
        data={
            "csrf_token": token,
            "kind": "wrong_data",
            "raised_by": "coordinator",
            "details": "  the address is an old one  ",
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/outreach/people/{person}")
    (stored,) = requests_about(db, person)
    assert (stored.kind, stored.raised_by, stored.details) == (
        "wrong_data",
        "coordinator",
        "the address is an old one",
    )
    page = client.get(f"/outreach/people/{person}").get_data(as_text=True)
    assert f"Request for review {stored.id} sent to the oversight board." in page
    assert last_log(db).action == "person"  # the page view after the filing's own row


def test_a_page_form_without_its_csrf_token_files_nothing(setup: Setting) -> None:
    person = setup.people[2]
    client, _ = signed_in(setup.scoped)
    before = len(requests_about(setup.scoped.db, person))
    response = client.post(
        f"/outreach/people/{person}/review-request",
        data={"kind": "wrong_data", "raised_by": "person"},
    )
    assert response.status_code == 400
    assert len(requests_about(setup.scoped.db, person)) == before


@pytest.mark.parametrize("channel", ["api", "pages"])
def test_another_areas_person_is_a_logged_404_like_nobody(setup: Setting, channel: str) -> None:
    db, theirs = setup.scoped.db, setup.scoped.theirs.person

    def act(person: str) -> Any:
        if channel == "api":
            return file(setup, person, "do_not_contact")
        client, token = signed_in(setup.scoped)
        return client.post(
            f"/outreach/people/{person}/review-request",
            data={"csrf_token": token, "kind": "do_not_contact", "raised_by": "person"},
        )

    refused = act(theirs)
    assert refused.status_code == 404
    row = last_log(db)
    assert (row.action, row.allowed, row.user) == ("review_request", False, "coordinator-a")
    assert row.subject_ids == [theirs]
    nobody = act("nobody-at-all")
    assert nobody.status_code == 404
    if channel == "api":  # the same answer: a refusal does not confirm the person exists
        assert refused.json["error"] == nobody.json["error"]
    assert requests_about(db, theirs) == []
    with db.session() as session:
        assert session.get(OptOut, theirs) is None


# ------------------------------------------------------------------------ do not contact


def test_do_not_contact_records_the_opt_out_in_the_same_transaction(setup: Setting) -> None:
    db, person = setup.scoped.db, setup.people[3]
    before = last_log_id(db)
    response = file(setup, person, "do_not_contact", details="said so on the phone")
    assert response.status_code == 201, response.json
    assert response.json["opt_out_recorded"] is True
    assert response.json["history"][0]["note"] == "filed; the person was taken off every list"
    with db.session() as session:
        opted = session.get(OptOut, person)
        assert opted is not None and opted.recorded_by == "coordinator-a"
        assert opted.reason == f"review request {response.json['id']}: said so on the phone"
    rows = log_rows(db, before)
    assert [(r.action, r.subject_ids) for r in rows] == [
        ("opt_out", [person]),
        ("review_request", [person]),
    ]
    assert len({r.request_id for r in rows}) == 1  # one request, one transaction
    listed = api(setup.scoped)("get", "/api/v1/queue?purpose=outreach&limit=1000")
    assert person not in {e["person_id"] for e in listed.json["entries"]}

    before = last_log_id(db)
    again = file(setup, person, "do_not_contact")  # already opted out: still recorded
    assert again.status_code == 201
    assert again.json["opt_out_recorded"] is False
    assert again.json["history"][0]["note"] == (
        "filed; the person had already asked not to be contacted"
    )
    assert len(requests_about(db, person)) == 2
    assert [r.action for r in log_rows(db, before)] == ["review_request"]


def test_a_refused_do_not_contact_request_writes_nothing_but_its_log_row(
    setup: Setting,
) -> None:
    db, person = setup.scoped.db, setup.people[4]
    before = last_log_id(db)
    response = file(setup, person, "do_not_contact", details="x" * 2001)
    assert response.status_code == 400
    assert response.json["error"]["details"] == ["details: text of at most 2000 characters"]
    assert requests_about(db, person) == [] and log_rows(db, before) == []
    with db.session() as session:
        assert session.get(OptOut, person) is None


# -------------------------------------------------------------------------- transitions


def test_moves_keep_their_history_and_are_logged(setup: Setting) -> None:
    db, person = setup.scoped.db, setup.people[5]
    number = file(setup, person).json["id"]
    before = last_log_id(db)
    reviewing = move(setup, number, "in_review", "  asked the data team  ")
    assert reviewing.status_code == 200, reviewing.json
    assert reviewing.json["state"] == "in_review"
    assert reviewing.json["next_states"] == ["resolved", "declined"]
    done = move(setup, number, "resolved", "address corrected at the source")
    assert done.status_code == 200 and done.json["next_states"] == []
    assert history(db, number) == [
        ("open", "filed", "coordinator-a"),
        ("in_review", "asked the data team", "reviews oversight"),
        ("resolved", "address corrected at the source", "reviews oversight"),
    ]
    assert [(h["state"], h["note"]) for h in done.json["history"]][1:] == [
        ("in_review", "asked the data team"),
        ("resolved", "address corrected at the source"),
    ]
    rows = log_rows(db, before)
    assert [(r.action, r.subject_ids, r.allowed, r.user) for r in rows] == [
        ("review_transition", [person], True, "reviews oversight"),
    ] * 2
    (stored,) = requests_about(db, person)
    assert stored.state == "resolved" and stored.updated_at >= stored.created_at


def test_an_admin_may_decline_an_open_request_at_once(setup: Setting) -> None:
    number = file(setup, setup.people[6]).json["id"]
    declined = move(setup, number, "declined", "filed twice", role="admin")
    assert declined.status_code == 200 and declined.json["state"] == "declined"
    assert history(setup.scoped.db, number)[-1] == ("declined", "filed twice", "reviews admin")


@pytest.mark.parametrize(
    ("path", "to"),
    [
        ((), "open"),
        (("in_review",), "in_review"),
        (("in_review",), "open"),
        (("resolved",), "in_review"),
        (("resolved",), "declined"),
        (("declined",), "resolved"),
        (("declined",), "open"),
    ],
)
def test_a_move_the_rules_do_not_allow_is_a_logged_409(
    setup: Setting, path: tuple[str, ...], to: str
) -> None:
    db, person = setup.scoped.db, setup.people[7]
    number = file(setup, person).json["id"]
    for step in path:
        assert move(setup, number, step, "a step").status_code == 200
    before = history(db, number)
    refused = move(setup, number, to, "not allowed")
    assert refused.status_code == 409
    error = refused.json["error"]
    assert error["code"] == "invalid_transition"
    assert error["details"] == [f"state: {(path or ('open',))[-1]} -> {to} is not allowed"]
    assert history(db, number) == before
    row = last_log(db)
    assert (row.action, row.allowed, row.subject_ids) == ("review_transition", False, [person])


@pytest.mark.parametrize("number", ["999999999", "0", "abc", "99999999999999999999", "-1"])
def test_an_unknown_request_is_a_404(setup: Setting, number: str) -> None:
    response = as_role(setup, "oversight")(
        "post", f"{API}/{number}/state", state="resolved", note="x"
    )
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_the_history_cannot_be_changed_or_deleted(setup: Setting) -> None:
    """On SQLite the migration's triggers refuse; on PostgreSQL the docs' grants do, for the
    service's role (the owner could drop any guard: that is the database's own rule)."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import ProgrammingError

    from tests.support.postgres import SERVICE_ROLE, grant_service_roles

    db = setup.scoped.db
    number = file(setup, setup.people[8]).json["id"]
    if db.url.startswith("sqlite"):
        engine, refused, words = db.engine, IntegrityError, "append-only"
    else:
        grant_service_roles(db.url)
        service = db.url.replace(
            "postgresql+psycopg://outreach@", f"postgresql+psycopg://{SERVICE_ROLE}@"
        )
        engine, refused, words = create_engine(service), ProgrammingError, "permission denied"
    try:
        for statement in (
            "UPDATE review_request_events SET note = 'changed'",
            "DELETE FROM review_request_events",
        ):
            with pytest.raises(refused, match=words), engine.begin() as connection:
                connection.execute(text(statement))
    finally:
        if engine is not db.engine:
            engine.dispose()
    assert history(db, number) == [("open", "filed", "coordinator-a")]


# ------------------------------------------------------------------------------- roles


#: Each route, and the roles that may use it.
ROUTES = [
    ("post", API, {"coordinator"}),
    ("get", f"{API}?purpose=outreach", {"oversight", "admin"}),
    ("post", f"{API}/1/state", {"oversight", "admin"}),
    ("get", f"{API}/summary", {"oversight"}),
]


@pytest.mark.parametrize("role", ["coordinator", "analyst", "oversight", "admin"])
@pytest.mark.parametrize(("method", "path", "roles"), ROUTES)
def test_who_may_use_each_route(
    setup: Setting, role: str, method: str, path: str, roles: set[str]
) -> None:
    response = as_role(setup, role)(method, path)
    if role in roles:
        assert response.status_code != 403, response.json
    else:
        assert response.status_code == 403
        assert response.json["error"]["code"] == "forbidden"


@pytest.mark.parametrize("role", ["coordinator", "analyst", "oversight", "admin"])
def test_who_may_see_the_page(setup: Setting, role: str) -> None:
    client = setup.scoped.app.test_client()
    sign_in(client, setup.site, role)
    response = client.get("/oversight/reviews")
    if role in ("oversight", "admin"):
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        assert 'href="/oversight/reviews"' in html  # in the navigation
        assert ("Requests by group and month" in html) == (role == "oversight")
    else:
        assert response.status_code == 403


def test_a_board_member_cannot_file_and_a_coordinator_cannot_move(setup: Setting) -> None:
    person = setup.people[9]
    client = oversight_page(setup)
    token = csrf(client.get("/oversight/reviews").get_data(as_text=True))
    response = client.post(
        f"/outreach/people/{person}/review-request",
        data={"csrf_token": token, "kind": "wrong_data", "raised_by": "person"},
    )
    assert response.status_code == 403
    number = file(setup, person).json["id"]
    coordinator, token = signed_in(setup.scoped)
    response = coordinator.post(
        f"/oversight/reviews/{number}/state",
        data={"csrf_token": token, "state": "resolved", "note": "x"},
    )
    assert response.status_code == 403
    assert history(setup.scoped.db, number) == [("open", "filed", "coordinator-a")]


# --------------------------------------------------------------------------- bad inputs

FILINGS: list[tuple[dict[str, Any], str]] = [
    ({"kind": "complaint"}, "kind: must be one of wrong_data, do_not_contact"),
    ({"kind": None}, "kind: must be one of wrong_data, do_not_contact"),
    ({"kind": ["wrong_data"]}, "kind: must be one of wrong_data, do_not_contact"),
    ({"raised_by": "neighbour"}, "raised_by: must be one of person, coordinator"),
    ({"raised_by": None}, "raised_by: must be one of person, coordinator"),
    ({"details": 5}, "details: text of at most 2000 characters"),
    ({"details": "a\x00b"}, "details: NUL character"),
    ({"person_id": None}, "person_id: required (a string or an integer)"),
    ({"person_id": ""}, "person_id: 0 characters"),
    ({"person_id": "x" * 121}, "person_id: 121 characters"),
    ({"person_id": "tab\there"}, "person_id: a control or unprintable character"),
    ({"urgent": True}, "urgent: unknown field"),
    ({"purpose": None}, "purpose: required"),
]


@pytest.mark.parametrize(("change", "detail"), FILINGS)
def test_a_bad_filing_is_a_400_naming_the_field_and_writes_nothing(
    setup: Setting, change: dict[str, Any], detail: str
) -> None:
    db = setup.scoped.db
    body = {
        "purpose": "outreach",
        "person_id": setup.people[10],
        "kind": "do_not_contact",
        "raised_by": "person",
        **change,
    }
    client = setup.scoped.app.test_client()
    before = last_log_id(db)
    response = client.post(
        API, json=body, headers={"Authorization": f"Bearer {setup.scoped.token}"}
    )
    assert response.status_code == 400
    assert response.json["error"]["details"] == [detail]
    assert requests_about(db, setup.people[10]) == [] and log_rows(db, before) == []
    with db.session() as session:
        assert session.get(OptOut, setup.people[10]) is None


def test_another_purpose_is_refused_and_logged(setup: Setting) -> None:
    response = file(setup, setup.people[10], purpose="research")
    assert response.status_code == 403
    assert response.json["error"]["code"] == "purpose_refused"
    row = last_log(setup.scoped.db)
    assert (row.action, row.purpose, row.allowed) == ("review_request", "research", False)
    assert requests_about(setup.scoped.db, setup.people[10]) == []


MOVES: list[tuple[dict[str, Any], str]] = [
    ({"state": "closed"}, "state: must be one of open, in_review, resolved, declined"),
    ({"state": None}, "state: must be one of open, in_review, resolved, declined"),
    ({"note": None}, "note: required"),
    ({"note": " \t\n\x1c "}, "note: required"),
    ({"note": "x" * 2001}, "note: text of at most 2000 characters"),
    ({"note": 3}, "note: text of at most 2000 characters"),
    ({"by": "me"}, "by: unknown field"),
]


@pytest.mark.parametrize(("change", "detail"), MOVES)
def test_a_bad_move_is_a_400_naming_the_field_and_changes_nothing(
    setup: Setting, change: dict[str, Any], detail: str
) -> None:
    number = file(setup, setup.people[11]).json["id"]
    body = {"state": "resolved", "note": "fixed", **change}
    response = as_role(setup, "oversight")("post", f"{API}/{number}/state", **body)
    assert response.status_code == 400
    assert response.json["error"]["details"] == [detail]
    assert history(setup.scoped.db, number) == [("open", "filed", "coordinator-a")]


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("state=closed", "state: must be one of open, in_review, resolved, declined"),
        ("month=2026-13", "month: '2026-13' is not YYYY-MM"),
        ("month=last", "month: 'last' is not YYYY-MM"),
        ("limit=0", "limit: 0"),
    ],
)
def test_a_bad_list_query_is_a_400_naming_the_parameter(
    setup: Setting, query: str, detail: str
) -> None:
    response = as_role(setup, "oversight")("get", f"{API}?purpose=outreach&{query}")
    assert response.status_code == 400
    assert response.json["error"]["details"] == [detail]


def test_the_list_needs_the_purpose(setup: Setting) -> None:
    response = as_role(setup, "oversight")("get", API)
    assert response.status_code == 400
    assert response.json["error"]["details"] == ["purpose: required"]


def test_the_documented_note_pattern_is_the_rule_the_code_applies() -> None:
    pattern = re.compile(review_requests.REQUIRED_TEXT_PATTERN)
    for code in [*range(0x3100), 0xFEFF, 0x10FFFF]:
        note = chr(code)
        try:
            free_text(note, field="note", required=True)
            accepted = True
        except Exception:
            accepted = False
        assert accepted == bool(pattern.fullmatch(note)), hex(code)


# ------------------------------------------------------------------------------ listing


def test_the_list_filters_by_state_and_month_and_logs_the_people_shown(setup: Setting) -> None:
    db, person = setup.scoped.db, setup.people[0]
    number = file(setup, person).json["id"]
    assert move(setup, number, "in_review", "looking").status_code == 200
    call = as_role(setup, "oversight")
    this_month = f"{datetime.now(UTC):%Y-%m}"
    before = last_log_id(db)
    listed = call("get", f"{API}?purpose=outreach&state=in_review&month={this_month}")
    assert listed.status_code == 200
    body = listed.json
    shown = {r["id"]: r for r in body["requests"]}
    assert number in shown and {r["state"] for r in body["requests"]} == {"in_review"}
    assert body["total"] == len(body["requests"])
    assert [h["state"] for h in shown[number]["history"]] == ["open", "in_review"]
    (row,) = log_rows(db, before)
    assert row.action == "review_requests" and person in row.subject_ids
    assert row.subject_ids == list(dict.fromkeys(r["person_id"] for r in body["requests"]))
    with db.session() as session:  # no one's group, anywhere in the answer
        groups = set(session.scalars(select(EntryGroup.group_name).distinct()))
    assert set(body["requests"][0]) == {
        "id",
        "person_id",
        "model",
        "period",
        "entry_id",
        "kind",
        "raised_by",
        "details",
        "state",
        "next_states",
        "filed_by",
        "created_at",
        "updated_at",
        "history",
    }
    assert not any(f'"{g}"' in listed.get_data(as_text=True) for g in groups)
    assert call("get", f"{API}?purpose=outreach&month=2000-01").json["requests"] == []


# ---------------------------------------------------------------- counts by group and month


@pytest.mark.parametrize(
    ("counts", "shown"),
    [
        ([5, 5, 0], (5, 5, 0)),  # nothing small
        ([0, 0, 0], (0, 0, 0)),
        ([2, 5, 6], (None, None, 6)),  # one small, and the next smallest with it
        ([4, 1, 10], (None, None, 10)),  # two small adding up to 5: enough
        ([1, 2, 9, 0], (None, None, None, 0)),  # two small adding up to 3: one more
        ([3, 0, 0], (None, None, None)),  # the only requests are few: all withheld
        ([1, 4], (None, None)),
    ],
)
def test_small_counts_are_withheld_so_that_the_totals_cannot_give_them_back(
    counts: list[int], shown: tuple[int | None, ...]
) -> None:
    assert disclosure.withhold(counts, 5) == shown


def test_summarise_counts_by_month_kind_state_and_group() -> None:
    def filing(month: str, kind: str, state: str, group: str | None) -> review_requests.Filing:
        return review_requests.Filing(month, kind, state, {} if group is None else {"sex": group})

    filings = [
        *[filing("2026-02", "wrong_data", "open", "f")] * 6,
        *[filing("2026-02", "wrong_data", "open", "m")] * 5,
        filing("2026-02", "wrong_data", "open", None),
        *[filing("2026-03", "do_not_contact", "resolved", "m")] * 7,
    ]
    summary = review_requests.summarise(filings, {"sex": ["f", "m", "x"]}, threshold=5)
    assert [(r.month, r.kind, r.state, r.total) for r in summary.totals] == [
        ("2026-03", "do_not_contact", "resolved", 7),
        ("2026-02", "wrong_data", "open", 12),
    ]
    (sex,) = summary.attributes
    assert sex.groups == ("f", "m", "x", "unknown")
    assert [r.counts for r in sex.rows] == [(0, 7, 0, 0), (6, None, 0, None)]


def test_counts_by_group_and_month_of_a_known_case(setup: Setting) -> None:
    """Requests written in a month no other test uses: 6 from one group, 2 from another, 1
    whose entry is gone (wrong data, open); 5 and 5 (do not contact, resolved)."""
    db = setup.scoped.db
    attribute, (one, two) = _two_groups(db)
    _write_requests(
        db,
        KNOWN_MONTH,
        [
            *[("wrong_data", "open", one)] * 6,
            *[("wrong_data", "open", two)] * 2,
            ("wrong_data", "open", None),
            *[("do_not_contact", "resolved", one)] * 5,
            *[("do_not_contact", "resolved", two)] * 5,
        ],
    )
    summary = review_requests.counts_by_group_and_month(db, threshold=5)
    totals = {(r.kind, r.state): r.total for r in summary.totals if r.month == KNOWN_MONTH}
    assert totals == {("wrong_data", "open"): 9, ("do_not_contact", "resolved"): 10}
    (found,) = [a for a in summary.attributes if a.attribute == attribute]
    assert "unknown" in found.groups
    rows = {
        (r.kind, r.state): dict(zip(found.groups, r.counts, strict=True))
        for r in found.rows
        if r.month == KNOWN_MONTH
    }
    others = [g for g in found.groups if g not in (one[1], two[1], "unknown")]
    # 6, 2 and 1: the 2 and the 1 are small, and add up to 3 only, so the 6 is withheld too.
    assert rows[("wrong_data", "open")] == {
        one[1]: None,
        two[1]: None,
        "unknown": None,
        **dict.fromkeys(others, 0),
    }
    assert rows[("do_not_contact", "resolved")] == {
        one[1]: 5,
        two[1]: 5,
        "unknown": 0,
        **dict.fromkeys(others, 0),
    }


def test_small_cells_are_withheld_on_the_page(setup: Setting) -> None:
    db = setup.scoped.db
    attribute, (one, two) = _two_groups(db)
    _write_requests(
        db,
        PAGE_MONTH,
        [*[("wrong_data", "in_review", one)] * 2, *[("wrong_data", "in_review", two)] * 9],
    )
    html = oversight_page(setup).get("/oversight/reviews").get_data(as_text=True)
    # The threshold is the serving policy's min_group_size (100), as everywhere else.
    assert "fewer than 100 requests are withheld" in html
    label = attribute.replace("_", " ")
    table = html[html.index(f"<caption>Requests by {label}</caption>") :]
    table = table[: table.index("</table>")]
    (row,) = [r for r in table.split("<tr>") if r.startswith(f"<td>{PAGE_MONTH}</td>")]
    cells = re.findall(r'<td class="num">(.*?)</td>', row)
    # The 2 and the 9 add up to fewer than 100: the whole row is withheld, zeros too.
    assert len(cells) >= 2
    assert set(cells) == {'<span class="muted">withheld</span>'}
    assert "2" not in cells and "9" not in cells
    totals = html[: html.index(f"<caption>Requests by {label}</caption>")]
    assert f'<td>{PAGE_MONTH}</td><td>Wrong data</td><td>In review</td><td class="num">11</td>' in (
        totals
    )
    for person_id in _people_with_groups(db, [one[0], two[0]]):
        assert person_id not in table  # the counts name no one


def _two_groups(db: Database) -> tuple[str, tuple[tuple[int, str], tuple[int, str]]]:
    """An attribute, and an entry of each of two of its groups: (entry id, group)."""
    with db.session() as session:
        rows = session.execute(
            select(EntryGroup.attribute, EntryGroup.group_name, func.min(EntryGroup.entry_id))
            .group_by(EntryGroup.attribute, EntryGroup.group_name)
            .order_by(EntryGroup.attribute, EntryGroup.group_name)
        ).all()
    attribute = rows[0][0]
    first, second = [(entry, group) for a, group, entry in rows if a == attribute][:2]
    return attribute, (first, second)


def _people_with_groups(db: Database, entries: list[int]) -> list[str]:
    with db.session() as session:
        return list(session.scalars(select(QueueEntry.person_id).where(QueueEntry.id.in_(entries))))


def _write_requests(
    db: Database, month: str, requests: list[tuple[str, str, tuple[int, str] | None]]
) -> None:
    """Requests filed on the 15th of ``month`` about the given entries (``None``: gone)."""
    at = datetime(int(month[:4]), int(month[5:]), 15, 12, tzinfo=UTC)
    with db.session() as session:
        for kind, state, entry in requests:
            row = ReviewRequest(
                person_id="written-by-the-test",
                model_name="test",
                period=month,
                entry_id=None if entry is None else entry[0],
                kind=kind,
                raised_by="person",
                details="",
                state=state,
                filed_by="test",
                created_at=at,
                updated_at=at,
            )
            session.add(row)
            session.flush()
            session.add(ReviewRequestEvent(request_id=row.id, state=state, note="", by="t", at=at))


# ------------------------------------------------------------------- the board's page


def test_the_board_moves_a_request_on_the_page_with_a_note(setup: Setting) -> None:
    db, person = setup.scoped.db, setup.people[0]
    number = file(setup, person, details="wrong household size").json["id"]
    client = oversight_page(setup)
    html = client.get("/oversight/reviews").get_data(as_text=True)
    assert f"Request {number}: Wrong data" in html and "wrong household size" in html
    assert f"/oversight/reviews/{number}/state" in html
    token = csrf(html)

    without = client.post(
        f"/oversight/reviews/{number}/state", data={"csrf_token": token, "state": "resolved"}
    )
    assert without.status_code == 400
    assert f"Request {number} was not moved: a note is required" in without.get_data(as_text=True)
    assert history(db, number) == [("open", "filed", "coordinator-a")]

    moved = client.post(
        f"/oversight/reviews/{number}/state",
        data={"csrf_token": token, "state": "in_review", "note": "checking with the source"},
    )
    assert moved.status_code == 302
    assert f"Request {number} is now in review." in client.get("/oversight/reviews").get_data(
        as_text=True
    )
    closed = client.post(
        f"/oversight/reviews/{number}/state",
        data={"csrf_token": token, "state": "resolved", "note": "corrected"},
    )
    assert closed.status_code == 302
    again = client.post(
        f"/oversight/reviews/{number}/state",
        data={"csrf_token": token, "state": "declined", "note": "too late"},
    )
    assert again.status_code == 409
    assert "it is closed" in again.get_data(as_text=True)
    assert [h[0] for h in history(db, number)] == ["open", "in_review", "resolved"]
    awaiting = client.get("/oversight/reviews").get_data(as_text=True)
    assert f"/oversight/reviews/{number}/state" not in awaiting  # no longer awaiting
    closed_list = client.get("/oversight/reviews?show=resolved").get_data(as_text=True)
    assert f"Request {number}: Wrong data (resolved)" in closed_list
    assert f"/oversight/reviews/{number}/state" not in closed_list  # no move left
    assert last_log(db).action == "review_requests"
