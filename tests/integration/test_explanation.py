"""The explanation a person can be given (API and printable page) and "about this score".

Real components: the test site's production release and scored months, the Flask test client,
the SQLite service database and the MLflow store. The golden files hold the explanation's words
for fixed, hand-written input (``tests/golden/*.json``), so they never depend on training.
Regenerate them with
``OUTREACH_UPDATE_GOLDEN=1 .venv/bin/pytest tests/integration/test_explanation.py`` and read the
difference before committing it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from lifecycle.catalogue import read_report
from lifecycle.verified_loading import trust_for
from model.registry import connect
from model.spec import Feature
from service import create_app
from service.about_score import about_score, estimate_words
from service.person_explanation import (
    MAX_REASONS,
    StoredEntry,
    blocks,
    person_explanation,
    top_reasons,
)
from store.accounts import add_user, set_areas
from store.approvals import decide
from store.db import AccessLogRow, Database, OptOut, QueueEntry
from tests.support.homes import Site, copy_site
from tests.support.postgres import refuse_access_log_inserts
from tests.support.specs import ROLES, ROOT
from tests.support.web import sign_in

GOLDEN = ROOT / "tests" / "golden"
UNITS = ("individual", "neighbourhood")
#: Audit-only columns and the group labels of the test population: never in an explanation.
SENSITIVE = ("race_ethnicity", "age_band", "Hispanic or Latino", "Multiracial", "American Indian")


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
            "CONTACT": "[TEST PLACEHOLDER] the outreach team, telephone 000",
        }
    )


@pytest.fixture
def db(app: Flask) -> Database:
    return app.extensions["outreach.db"]


@pytest.fixture
def tokens(db: Database) -> dict[str, str]:
    made = {role: add_user(db, f"api {role}", role) for role in ROLES}
    set_areas(db, "api coordinator", ["*"])
    return made


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def listed(db: Database, rank: int = 1) -> QueueEntry:
    """An entry on the latest list, at ``rank``."""
    with db.session() as session:
        latest = session.scalar(select(QueueEntry.period).order_by(QueueEntry.period.desc()))
        entry = session.scalars(
            select(QueueEntry).where(QueueEntry.period == latest, QueueEntry.rank == rank)
        ).one()
        session.expunge(entry)
    return entry


def log_rows(db: Database) -> list[AccessLogRow]:
    with db.session() as session:
        rows = list(session.scalars(select(AccessLogRow).order_by(AccessLogRow.id)))
        session.expunge_all()
    return rows


def path(person: str, purpose: str | None = "outreach") -> str:
    query = "" if purpose is None else f"?purpose={purpose}"
    return f"/api/v1/people/{person}/explanation{query}"


# ----------------------------------------------------------------------------- golden files


def golden_input(unit: str) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((GOLDEN / f"explanation_{unit}.json").read_text())
    return raw


def render_golden(unit: str) -> str:
    raw = golden_input(unit)
    entry = raw["entry"]
    return person_explanation(
        StoredEntry(**{**entry, "reasons": tuple(entry["reasons"])}),
        unit=raw["unit"],
        features=[Feature.model_validate(f) for f in raw["features"]],
        sensitive_attributes=raw["sensitive_attributes"],
        contact=raw["contact"],
    ).text


@pytest.mark.parametrize("unit", UNITS)
def test_the_explanation_text_equals_its_golden_file(unit: str) -> None:
    expected = GOLDEN / f"explanation_{unit}.txt"
    text = render_golden(unit)
    if os.environ.get("OUTREACH_UPDATE_GOLDEN") == "1":
        expected.write_text(text, encoding="utf-8")
    assert expected.is_file(), f"{expected} is missing: run with OUTREACH_UPDATE_GOLDEN=1"
    assert text.encode() == expected.read_bytes(), (
        f"the {unit} explanation's words changed; if that is meant, regenerate with "
        "OUTREACH_UPDATE_GOLDEN=1 .venv/bin/pytest tests/integration/test_explanation.py and "
        "review the diff"
    )


@pytest.mark.parametrize("unit", UNITS)
def test_the_golden_text_says_what_the_person_needs_to_know(unit: str) -> None:
    text = render_golden(unit)
    raw = golden_input(unit)
    for needed in (
        "A computer system helped us decide",
        "a member of our outreach team, a person, decided",
        "It is not a decision about any benefit, service or eligibility",
        "never used for enforcement",
        "please tell us. We will correct our records",
        "now or at any time",
        "does not change any service or benefit",
        "ask for a review by a person",
        "oversight board",
        f"version {raw['entry']['model_version']}",
        raw["entry"]["audit_id"],
    ):
        assert needed in text, needed
    raised = [r for r in raw["entry"]["reasons"] if r["contribution"] > 0]
    shown = sorted(raised, key=lambda r: -r["contribution"])[:MAX_REASONS]
    for reason in raw["entry"]["reasons"]:
        assert (reason["text"] in text) == (reason in shown), reason["text"]
    for feature in raw["features"]:
        if feature.get("source"):
            assert f"Where it comes from: {feature['source']}." in text
    if unit == "individual":
        assert "The system did not use your ethnicity, sex, age or any disability." in text
        assert "[DEMO PLACEHOLDER]" in text
    else:
        assert "For the residents of area A-017 and the people who represent them" in text
        assert "the ethnic make-up of the area or the area's income level" in text
        assert "Ask the outreach worker who gave you this letter" in text
        assert "you received it" not in text


def test_the_text_splits_into_the_blocks_the_page_shows() -> None:
    text = render_golden("individual")
    found = blocks(text)
    assert found[0].kind == "title" and found[0].lines == (
        "An offer of help, and why you received it",
    )
    headings = [b.lines[0] for b in found if b.kind == "heading"]
    assert headings[:3] == [
        "What happened",
        "The facts that counted most",
        "The information we used",
    ]
    reasons = next(b for b in found if b.kind == "list")
    assert reasons.lines[0] == "3 shelter contacts in the last year (this counted somewhat)"
    words = " ".join(" ".join(b.lines) for b in found)
    expected = [
        word
        for line in text.splitlines()
        if not (line and set(line) <= {"=", "-"})
        for word in (line[2:] if line.startswith("- ") else line).split()
    ]
    assert words.split() == expected


reason_lists = st.lists(
    st.fixed_dictionaries(
        {
            "feature": st.sampled_from(["a", "b", "c", "d", "e", "f"]),
            "value": st.integers(0, 9),
            "contribution": st.floats(-3, 3, allow_nan=False).map(lambda x: round(x, 6)),
            "text": st.text(min_size=1, max_size=8),
        }
    ),
    max_size=8,
)


@given(reason_lists)
def test_top_reasons_are_the_largest_positive_ones_exactly_as_stored(
    stored: list[dict[str, Any]],
) -> None:
    found = top_reasons(stored)
    positive = sorted((r["contribution"] for r in stored if r["contribution"] > 0), reverse=True)
    assert [r.contribution for r in found] == positive[:MAX_REASONS]
    assert len(found) <= MAX_REASONS
    for reason in found:
        assert any(
            r["contribution"] == reason.contribution and r["text"] == reason.text for r in stored
        )


# ----------------------------------------------------------------------------- the API


@pytest.mark.parametrize("role", ROLES)
def test_only_coordinators_get_explanations(
    app: Flask, db: Database, tokens: dict[str, str], role: str
) -> None:
    entry = listed(db)
    response = app.test_client().get(path(entry.person_id), headers=bearer(tokens[role]))
    if role == "coordinator":
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["person_id"] == entry.person_id
    else:
        assert response.status_code == 403
        assert response.get_json()["error"]["code"] == "forbidden"


def test_the_api_explains_the_latest_listed_entry_with_its_stored_reasons(
    app: Flask, db: Database, tokens: dict[str, str]
) -> None:
    entry = listed(db, rank=2)
    before = len(log_rows(db))
    response = app.test_client().get(path(entry.person_id), headers=bearer(tokens["coordinator"]))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    stored = [r for r in entry.reasons if r["contribution"] > 0][:MAX_REASONS]
    assert [(r["feature"], r["value"], r["contribution"], r["text"]) for r in body["reasons"]] == [
        (r["feature"], r["value"], r["contribution"], r["text"]) for r in stored
    ]
    assert 1 <= len(body["reasons"]) <= MAX_REASONS
    for reason in body["reasons"]:
        assert reason["text"] in body["text"]
    assert body["unit"] == "individual" and body["period"] == entry.period
    assert body["model"] == {
        "name": entry.model_name,
        "version": entry.model_version,
        "audit_id": entry.audit_id,
    }
    serving = app.extensions["outreach.model"].current
    assert [d["feature"] for d in body["data_used"]] == list(serving.model.feature_names)
    assert body["contact"] == "[TEST PLACEHOLDER] the outreach team, telephone 000"
    assert body["contact"] in body["text"]
    assert body["not_used"] == ["ethnicity", "sex", "age", "any disability"]
    text = json.dumps(body)
    for word in SENSITIVE:
        assert word not in text, word
    rows = log_rows(db)
    assert len(rows) == before + 1
    row = rows[-1]
    assert (row.action, row.allowed, row.purpose, row.user) == (
        "explanation",
        True,
        "outreach",
        "api coordinator",
    )
    assert row.subject_ids == [entry.person_id]
    assert row.model_version == entry.model_version
    assert row.request_id == body["request_id"]


@pytest.mark.parametrize(
    ("purpose", "status", "logged"),
    [(None, 400, False), ("", 400, False), ("research", 403, True), ("enforcement", 403, True)],
)
def test_the_purpose_must_be_outreach(
    app: Flask,
    db: Database,
    tokens: dict[str, str],
    purpose: str | None,
    status: int,
    logged: bool,
) -> None:
    entry = listed(db)
    before = len(log_rows(db))
    response = app.test_client().get(
        path(entry.person_id, purpose), headers=bearer(tokens["coordinator"])
    )
    assert response.status_code == status
    assert "reasons" not in response.get_json()
    rows = log_rows(db)[before:]
    if logged:
        assert [(r.action, r.allowed, r.purpose, r.subject_ids) for r in rows] == [
            ("explanation", False, purpose, [entry.person_id])
        ]
    else:
        assert rows == []


def test_outside_the_callers_areas_unknown_and_opted_out_people_are_not_found(
    app: Flask, db: Database, tokens: dict[str, str]
) -> None:
    entry = listed(db)
    other = listed(db, rank=3)
    add_user(db, "elsewhere", "coordinator")
    token = add_user(db, "area coordinator", "coordinator")
    set_areas(db, "area coordinator", [f"not {entry.area}"])
    client = app.test_client()
    with db.session() as session:
        session.add(OptOut(person_id=other.person_id, recorded_by="test", reason=""))
        session.commit()
    cases = [
        (token, entry.person_id),  # outside the caller's areas
        (tokens["coordinator"], "nobody-by-this-id"),
        (tokens["coordinator"], other.person_id),  # declined: on no list
    ]
    for caller, person in cases:
        before = len(log_rows(db))
        response = client.get(path(person), headers=bearer(caller))
        assert response.status_code == 404, person
        assert response.get_json()["error"]["code"] == "not_found"
        rows = log_rows(db)[before:]
        assert [(r.action, r.allowed, r.subject_ids) for r in rows] == [
            ("explanation", False, [person])
        ]


def test_an_unwritable_access_log_shows_no_explanation(
    app: Flask, db: Database, tokens: dict[str, str]
) -> None:
    entry = listed(db)
    with db.engine.begin() as connection:
        refuse_access_log_inserts(connection)
    response = app.test_client().get(path(entry.person_id), headers=bearer(tokens["coordinator"]))
    assert response.status_code == 503
    assert entry.reasons[0]["text"] not in response.get_data(as_text=True)


def test_the_endpoint_is_in_the_openapi_document(app: Flask) -> None:
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    operation = document["paths"]["/api/v1/people/{person_id}/explanation"]["get"]
    assert operation["operationId"] == "personExplanation"
    assert {p["name"] for p in operation["parameters"]} == {"person_id", "purpose"}
    # 431: headers too large (gunicorn's own refusal, answered in the JSON error shape).
    assert set(operation["responses"]) == {
        "200",
        "400",
        "401",
        "403",
        "404",
        "429",
        "431",
        "503",
    }


# ----------------------------------------------------------------------------- the pages


def signed_in(app: Flask, site: Site, role: str) -> FlaskClient:
    client = app.test_client()
    sign_in(client, site, role)
    return client


def test_the_printable_page_shows_the_same_words_and_is_logged(
    app: Flask, db: Database, own_site: Site, tokens: dict[str, str]
) -> None:
    entry = listed(db)
    client = signed_in(app, own_site, "coordinator")
    person_page = client.get(f"/outreach/people/{entry.person_id}").get_data(as_text=True)
    link = f"/outreach/people/{entry.person_id}/explanation?period={entry.period}"
    assert f'href="{link}"' in person_page
    before = len(log_rows(db))
    response = client.get(link)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    rows = log_rows(db)[before:]
    assert [(r.action, r.allowed, r.subject_ids) for r in rows] == [
        ("explanation", True, [entry.person_id])
    ]
    api = app.test_client().get(path(entry.person_id), headers=bearer(tokens["coordinator"]))
    text = api.get_json()["text"]
    from markupsafe import escape

    for block in blocks(text):
        for line in block.lines:
            assert str(escape(line)) in html, line
    assert "<h1>An offer of help, and why you received it</h1>" in html
    assert "data-print" in html and ">Print</button>" in html
    assert "explanation.css" in html
    for word in SENSITIVE:
        assert word not in html, word
    analyst = signed_in(app, own_site, "analyst")
    assert analyst.get(link).status_code == 403


def test_the_access_log_page_lists_explanations_by_kind(
    app: Flask, db: Database, own_site: Site
) -> None:
    entry = listed(db)
    signed_in(app, own_site, "coordinator").get(f"/outreach/people/{entry.person_id}/explanation")
    board = signed_in(app, own_site, "oversight")
    page = board.get("/oversight/access-log?action=explanation").get_data(as_text=True)
    assert "<option selected>explanation</option>" in page
    count = sum(r.action == "explanation" for r in log_rows(db))
    assert count == 1 and f"{count} rows;" in page


def about_page(app: Flask, site: Site, role: str = "coordinator") -> str:
    response = signed_in(app, site, role).get("/outreach/about")
    assert response.status_code == 200, response.get_data(as_text=True)[:400]
    return response.get_data(as_text=True)


def check_about_numbers(html: str, report: dict[str, Any], version: str) -> None:
    """The page shows the report's numbers: overall and per group, with the audit's intervals;
    groups it could not judge as "too few to judge", no count below the minimum."""
    level = report["policy"]["interval_level"]
    minimum = report["policy"]["min_group_size"]
    about = about_score(report, name="individual_outreach", version=version)
    assert f"version <strong>{version}</strong>" in html
    assert report["audit_id"] in html
    assert f"{report['overall']['precision']:.0%}" in html
    judged = 0
    for row in report["groups"]:
        ci = row["ci"]
        words = (
            f"{row['metrics']['recall']:.0%} ({level:.0%} interval: {ci['recall'][0]:.0%} to "
            f"{ci['recall'][1]:.0%})"
        )
        cells = f'<th scope="row">{row["group"]}</th>'
        assert cells in html
        if row["sufficient"] and row["n"] >= minimum:
            judged += 1
            assert words in html, (row["group"], words)
        else:
            segment = html.split(cells, 1)[1].split("</tr>", 1)[0]
            assert "too few to judge" in segment
            assert "%" not in segment
            if row["n"] < minimum:
                assert str(row["n"]) not in segment
    assert judged == sum(g.judged for g in about.groups) > 0
    assert estimate_words(about.overall.recall, level) in html


def test_about_this_score_shows_the_served_versions_audit(app: Flask, own_site: Site) -> None:
    serving = app.extensions["outreach.model"].current
    report = read_report(connect(own_site.home), serving.audit_id)
    html = about_page(app, own_site)
    check_about_numbers(html, report, serving.version)
    for needed in (
        "What the score does not mean",
        "Do not defer to the score",
        "you decide whether and how to make contact",
        "send a request for review",
        "Tell the analyst",
        report["model_card"]["intended_use"],
    ):
        assert needed in html, needed
    assert 'href="/outreach/about">About this score</a>' in html
    for role in ("analyst", "oversight"):
        assert serving.audit_id in about_page(app, own_site, role)
    admin = signed_in(app, own_site, "admin").get("/outreach/about")
    assert admin.status_code == 403


def test_after_a_model_swap_the_pages_follow_the_new_version(
    app: Flask, db: Database, own_site: Site, tokens: dict[str, str]
) -> None:
    source = app.extensions["outreach.model"]
    old = source.current
    name, version = own_site.awaiting
    registry = connect(own_site.home)
    assert decide(
        db,
        registry,
        name,
        version,
        decision="approve",
        by="board",
        note="swap for the test",
        trust=trust_for(registry.home),
    )
    assert source.refresh()
    new = source.current
    assert (new.version, new.audit_id) != (old.version, old.audit_id)
    report = read_report(registry, new.audit_id)
    html = about_page(app, own_site)
    check_about_numbers(html, report, new.version)
    assert old.audit_id not in html
    # Entries listed before the swap are still explained in the words of the version that
    # made them.
    entry = listed(db)
    body = app.test_client().get(path(entry.person_id), headers=bearer(tokens["coordinator"]))
    assert body.status_code == 200, body.get_json()
    explained = body.get_json()
    assert explained["model"]["version"] == old.version == entry.model_version
    assert (
        f"version {old.version}, checked for fairness in audit {old.audit_id}"
        in (explained["text"])
    )
