"""Coordinators act only within their areas, and each action has one rule for the API and pages.

A coordinator of area A asking for a person, an entry or an opt-out in area B gets the same 404
as for someone who does not exist, through both the JSON API and the pages, and the refusal is
written to the access log.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import delete, select, update

from store.accounts import add_user, set_areas
from store.db import Database, OptIn, OptOut, Outcome, QueueEntry
from tests.support.scopes import PASSWORD, Scoped, api, last_log, shared, signed_in

__all__ = ["shared"]  # the module's copy of the site (tests/support/scopes.py)


@pytest.fixture
def scoped(shared: Scoped) -> Iterator[Scoped]:
    """The shared site, put back after each test: no outcome, opt-out or opt-in, every entry the
    serving model's, coordinator-a in its one area."""
    yield shared
    name = shared.app.extensions["outreach.model"].name
    with shared.db.session() as session:
        for table in (Outcome, OptOut, OptIn):
            session.execute(delete(table))
        session.execute(update(QueueEntry).values(model_name=name))
    set_areas(shared.db, "coordinator-a", [shared.mine.name])


def opt_out_directly(db: Database, person: str) -> None:
    with db.session() as session:
        session.add(OptOut(person_id=person, recorded_by="test", reason=""))


# ---------------------------------------------------------------------------------- the lists


def test_the_api_list_holds_only_the_coordinators_areas(scoped: Scoped) -> None:
    listed = api(scoped)("get", "/api/v1/queue?purpose=outreach&limit=1000")
    entries = listed.json["entries"]  # type: ignore[attr-defined]
    with scoped.db.session() as session:
        areas = dict(session.execute(select(QueueEntry.id, QueueEntry.area)).all())
    assert entries and {areas[e["entry_id"]] for e in entries} == {scoped.mine.name}
    assert listed.json["total"] == len(entries)  # type: ignore[attr-defined]
    assert scoped.theirs.person not in {e["person_id"] for e in entries}


def test_the_list_page_holds_only_the_coordinators_areas(scoped: Scoped) -> None:
    client, _ = signed_in(scoped)
    html = client.get("/outreach/").get_data(as_text=True)
    assert f"/outreach/people/{scoped.mine.person}" in html
    assert f"/outreach/people/{scoped.theirs.person}?" not in html
    assert f'<option value="{scoped.theirs.name}"' not in html


def test_a_coordinator_without_areas_sees_nothing_until_one_is_assigned(scoped: Scoped) -> None:
    add_user(scoped.db, "coordinator-none", "coordinator", password=PASSWORD)
    client, _ = signed_in(scoped, "coordinator-none")
    html = client.get("/outreach/").get_data(as_text=True)
    assert "No area has been assigned to you yet" in html
    assert "/outreach/people/" not in html
    set_areas(scoped.db, "coordinator-none", [scoped.theirs.name])
    html = client.get("/outreach/").get_data(as_text=True)
    assert f"/outreach/people/{scoped.theirs.person}" in html


# --------------------------------------------------------------- refusals outside one's areas

ACTIONS = ("person", "outcome", "opt_out", "opt_in")


def _api_action(scoped: Scoped, action: str, person: str, entry_id: int) -> object:
    call = api(scoped)
    if action == "person":  # the API shows people through the list only: an outcome probe
        return call("post", f"/api/v1/queue/{entry_id}/outcome", status="contacted")
    if action == "outcome":
        return call("post", f"/api/v1/queue/{entry_id}/outcome", status="accepted", note="x")
    if action == "opt_out":
        return call("post", "/api/v1/opt-outs", person_id=person)
    return call("delete", f"/api/v1/opt-outs/{person}", reason="asked again by phone")


def _page_action(scoped: Scoped, action: str, person: str, entry_id: int) -> object:
    client, token = signed_in(scoped)
    if action == "person":
        return client.get(f"/outreach/people/{person}")
    if action == "outcome":
        return client.post(
            f"/outreach/entries/{entry_id}/outcome",
            data={"csrf_token": token, "status": "contacted"},
        )
    if action == "opt_out":
        return client.post(f"/outreach/people/{person}/opt-out", data={"csrf_token": token})
    return client.post(
        f"/outreach/people/{person}/opt-in", data={"csrf_token": token, "reason": "asked again"}
    )


@pytest.mark.parametrize("channel", ["api", "pages"])
@pytest.mark.parametrize("action", ACTIONS)
def test_another_areas_person_is_a_logged_404_like_nobody(
    scoped: Scoped, channel: str, action: str
) -> None:
    act = _api_action if channel == "api" else _page_action
    if action == "opt_in":
        opt_out_directly(scoped.db, scoped.theirs.person)
    theirs = act(scoped, action, scoped.theirs.person, scoped.theirs.entry_id)
    assert theirs.status_code == 404, theirs.get_data(as_text=True)[:300]  # type: ignore[attr-defined]
    row = last_log(scoped.db)
    assert row.allowed is False and row.user == "coordinator-a"
    assert row.subject_ids == [scoped.theirs.person]
    nobody = act(scoped, action, "nobody-at-all", 987_654_321)
    assert nobody.status_code == 404  # type: ignore[attr-defined]
    if channel == "api":  # the same answer: a refusal does not confirm the person exists
        assert theirs.json["error"] == nobody.json["error"]  # type: ignore[attr-defined]
    with scoped.db.session() as session:
        assert session.scalar(select(Outcome.id)) is None
        opted = session.get(OptOut, scoped.theirs.person)
        assert (opted is not None) == (action == "opt_in")  # nothing changed either way


@pytest.mark.parametrize("channel", ["api", "pages"])
def test_within_ones_area_every_action_works(scoped: Scoped, channel: str) -> None:
    act = _api_action if channel == "api" else _page_action
    mine = scoped.mine
    assert act(scoped, "outcome", mine.person, mine.entry_id).status_code in (201, 302)  # type: ignore[attr-defined]
    assert act(scoped, "opt_out", mine.person, mine.entry_id).status_code in (201, 302)  # type: ignore[attr-defined]
    assert act(scoped, "opt_in", mine.person, mine.entry_id).status_code in (204, 302)  # type: ignore[attr-defined]
    with scoped.db.session() as session:
        (opt_in,) = session.scalars(select(OptIn)).all()
        assert opt_in.person_id == mine.person and opt_in.recorded_by == "coordinator-a"
        assert opt_in.reason
    assert last_log(scoped.db).allowed is True


# ------------------------------------------------------------------- one rule per action


@pytest.mark.parametrize("channel", ["api", "pages"])
def test_no_outcome_for_someone_who_opted_out(scoped: Scoped, channel: str) -> None:
    opt_out_directly(scoped.db, scoped.mine.person)
    act = _api_action if channel == "api" else _page_action
    response = act(scoped, "outcome", scoped.mine.person, scoped.mine.entry_id)
    assert response.status_code == 409  # type: ignore[attr-defined]
    with scoped.db.session() as session:
        assert session.scalar(select(Outcome.id)) is None


@pytest.mark.parametrize("channel", ["api", "pages"])
def test_no_outcome_for_another_models_entry(scoped: Scoped, channel: str) -> None:
    with scoped.db.session() as session:
        session.execute(
            update(QueueEntry)
            .where(QueueEntry.id == scoped.mine.entry_id)
            .values(model_name="another_model")
        )
    act = _api_action if channel == "api" else _page_action
    response = act(scoped, "outcome", scoped.mine.person, scoped.mine.entry_id)
    assert response.status_code == 404  # type: ignore[attr-defined]


@pytest.mark.parametrize("channel", ["api", "pages"])
def test_opting_back_in_needs_a_reason(scoped: Scoped, channel: str) -> None:
    opt_out_directly(scoped.db, scoped.mine.person)
    if channel == "api":
        response = api(scoped)("delete", f"/api/v1/opt-outs/{scoped.mine.person}")
        assert response.status_code == 400  # type: ignore[attr-defined]
        assert response.json["error"]["details"] == ["reason: required"]  # type: ignore[attr-defined]
    else:
        client, token = signed_in(scoped)
        response = client.post(
            f"/outreach/people/{scoped.mine.person}/opt-in", data={"csrf_token": token}
        )
        assert response.status_code == 400
        assert "reason is required" in response.get_data(as_text=True)
    with scoped.db.session() as session:
        assert session.get(OptOut, scoped.mine.person) is not None


def test_the_page_of_someone_who_opted_out_shows_only_the_contact_preference(
    scoped: Scoped,
) -> None:
    client, _ = signed_in(scoped)
    before = client.get(f"/outreach/people/{scoped.mine.person}").get_data(as_text=True)
    assert "List month" in before and "Why help may be welcome now" in before
    opt_out_directly(scoped.db, scoped.mine.person)
    html = client.get(f"/outreach/people/{scoped.mine.person}").get_data(as_text=True)
    assert "asked not to be contacted" in html and "Contact preference" in html
    for hidden in ("List month", "Band", "Why help may be welcome now", "Outreach history"):
        assert hidden not in html


# ----------------------------------------------------------------------- one id limit


def test_an_id_longer_than_120_characters_is_refused_the_same_way_everywhere(
    scoped: Scoped,
) -> None:
    long_id = "x" * 121
    call = api(scoped)
    answers = [
        call("post", "/api/v1/opt-outs", person_id=long_id),
        call("delete", f"/api/v1/opt-outs/{long_id}", reason="asked again"),
    ]
    for response in answers:
        assert response.status_code == 400  # type: ignore[attr-defined]
        assert response.json["error"]["code"] == "invalid_id"  # type: ignore[attr-defined]
    client, token = signed_in(scoped)
    for response in (
        client.get(f"/outreach/people/{long_id}"),
        client.post(f"/outreach/people/{long_id}/opt-out", data={"csrf_token": token}),
    ):
        assert response.status_code == 400
        assert "1 to 120 characters" in response.get_data(as_text=True)
    with scoped.db.session() as session:  # never cut to 120 and applied to another id
        assert session.get(OptOut, long_id[:120]) is None


@pytest.mark.parametrize("bad", ["a\x00b", "tab\there", "\x7f", "line\nbreak", "\x9b"])
def test_an_id_with_a_control_character_is_refused(scoped: Scoped, bad: str) -> None:
    response = api(scoped)("post", "/api/v1/opt-outs", person_id=bad)
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert response.json["error"]["code"] == "invalid_id"  # type: ignore[attr-defined]


def test_a_note_with_a_nul_character_is_refused_and_nothing_is_written(scoped: Scoped) -> None:
    response = api(scoped)(
        "post", f"/api/v1/queue/{scoped.mine.entry_id}/outcome", status="contacted", note="a\x00"
    )
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert response.json["error"]["details"] == ["note: NUL character"]  # type: ignore[attr-defined]
    with scoped.db.session() as session:
        assert session.scalar(select(Outcome.id)) is None


def test_a_period_that_is_not_a_month_is_refused(scoped: Scoped) -> None:
    for period in ("%00", "2026-13", "last", "2026-1"):
        response = api(scoped)("get", f"/api/v1/queue?purpose=outreach&period={period}")
        assert response.status_code == 400  # type: ignore[attr-defined]
        assert response.json["error"]["code"] == "invalid_period"  # type: ignore[attr-defined]


def test_an_old_entry_in_ones_area_takes_no_outcome_once_the_person_moved(scoped: Scoped) -> None:
    """A person's area is that of their latest entry: an entry from when they lived in area A
    takes no outcome from A's coordinator once they are in B, and B's notes stay in B."""
    theirs = scoped.theirs
    with scoped.db.session() as session:
        entry = session.get(QueueEntry, theirs.entry_id)
        assert entry is not None
        old = QueueEntry(
            model_name=entry.model_name,
            model_version=entry.model_version,
            audit_id=entry.audit_id,
            period="2000-01",
            person_id=theirs.person,
            rank=1,
            score=entry.score,
            percentile=entry.percentile,
            band=entry.band,
            reasons=entry.reasons,
            area=scoped.mine.name,  # back then, in coordinator-a's area
        )
        session.add(old)
        session.flush()
        old_id = old.id
        session.add(
            Outcome(entry_id=theirs.entry_id, status="declined", note="B's note", recorded_by="b")
        )
    call = api(scoped)
    response = call("post", f"/api/v1/queue/{old_id}/outcome", status="contacted")
    assert response.status_code == 404  # type: ignore[attr-defined]
    listed = call("get", "/api/v1/queue?purpose=outreach&period=2000-01")
    (shown,) = listed.json["entries"]  # type: ignore[attr-defined]
    assert shown["person_id"] == theirs.person and shown["last_outcome"] is None
    with scoped.db.session() as session:
        session.execute(delete(QueueEntry).where(QueueEntry.id == old_id))


def test_a_huge_entry_id_on_the_page_is_a_404_not_a_crash(scoped: Scoped) -> None:
    client, token = signed_in(scoped)
    response = client.post(
        "/outreach/entries/99999999999999999999/outcome",
        data={"csrf_token": token, "status": "contacted"},
    )
    assert response.status_code == 404


def test_a_person_id_with_a_slash_has_a_page(scoped: Scoped) -> None:
    client, _ = signed_in(scoped)
    response = client.get("/outreach/people/some/where")
    assert response.status_code == 404  # looked up as the id "some/where", not a missing route
    assert last_log(scoped.db).subject_ids == ["some/where"]
