"""Named regressions for inputs that once made the API answer 5xx, or that the OpenAPI document
and the code disagreed on. Each checks the answer and, where the document is involved, that the
document says the same; the fuzz suite (``tests/system/test_fuzz.py``) covers the rest."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from lifecycle.model_source import Serving
from model.data import Dataset
from store.accounts import add_user, set_areas
from store.db import AccessLogRow, Database, OptOut
from store.queue import ALL_AREAS
from tests.support.homes import Site, copy_site
from tests.support.memory import memory_app
from tests.support.specs import ROLES

FUZZY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: The issue's path id: beyond 64 bits.
HUGE_ID = 718091616604007116822886219776


@pytest.fixture(scope="module")
def app(memory_site: Site, in_memory: Serving, tmp_path_factory: pytest.TempPathFactory) -> Flask:
    own = copy_site(memory_site, tmp_path_factory.mktemp("inputs"))
    return memory_app(own, in_memory, {"RATE_LIMIT": 10**9})


@pytest.fixture(scope="module")
def db(app: Flask) -> Database:
    return app.extensions["outreach.db"]


@pytest.fixture(scope="module")
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="module")
def headers(db: Database) -> dict[str, dict[str, str]]:
    tokens = {role: add_user(db, f"inputs {role}", role) for role in ROLES}
    set_areas(db, "inputs coordinator", [ALL_AREAS])
    return {role: {"Authorization": f"Bearer {token}"} for role, token in tokens.items()}


@pytest.fixture(scope="module")
def coordinator(headers: dict[str, dict[str, str]]) -> dict[str, str]:
    return headers["coordinator"]


@pytest.fixture(scope="module")
def document(client: FlaskClient) -> dict[str, Any]:
    return client.get("/api/v1/openapi.json").json


@pytest.fixture(scope="module")
def listed(client: FlaskClient, coordinator: dict[str, str]) -> dict[str, Any]:
    """An entry on the latest list (its id and person)."""
    entries = client.get("/api/v1/queue?purpose=outreach&limit=1", headers=coordinator).json
    return entries["entries"][0]


@pytest.fixture(scope="module")
def record(dataset: Dataset) -> dict[str, Any]:
    row = dataset.frame.iloc[0]
    out: dict[str, Any] = {"id": str(row["person_id"])}
    for feature in dataset.spec.features:
        value = row[feature.name]
        out[feature.name] = value if feature.kind == "category" else float(value)
    return out


def _writes(db: Database) -> tuple[int, int]:
    """Access-log rows and opt-outs: what a refused request must not change."""
    with db.session() as session:
        rows = session.scalar(select(func.count()).select_from(AccessLogRow)) or 0
        opted = session.scalar(select(func.count()).select_from(OptOut)) or 0
    return int(rows), int(opted)


def _send(client: FlaskClient, method: str, path: str, text: str, headers: dict[str, str]) -> Any:
    return client.open(
        path, method=method, data=text, content_type="application/json", headers=headers
    )


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.get_data()[:300])
    body = response.json
    assert body["error"]["code"] == code, body
    return body["error"]


def _schema(document: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    parameters = document["paths"][path][method]["parameters"]
    return next(p["schema"] for p in parameters if p["name"] == name)


def _body_schema(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    return document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]


# --- Lone UTF-16 surrogates ------------------------------------------------------------------

#: Text with one lone surrogate somewhere in it (hypothesis's text never has surrogates itself).
lone = st.builds(
    lambda before, surrogate, after: before + chr(surrogate) + after,
    st.text(max_size=12),
    st.integers(0xD800, 0xDFFF),
    st.text(max_size=12),
)

#: Where a string can sit in each route's body: (method, path, body, field named in the error).
PLACES: dict[str, Callable[[dict[str, Any], dict[str, Any], str], tuple[str, str, Any, str]]] = {
    "note": lambda e, r, s: (
        "POST",
        f"/api/v1/queue/{e['entry_id']}/outcome",
        {"purpose": "outreach", "status": "contacted", "note": s},
        "note",
    ),
    "person_id": lambda e, r, s: (
        "POST",
        "/api/v1/opt-outs",
        {"purpose": "outreach", "person_id": s},
        "person_id",
    ),
    "opt-out reason": lambda e, r, s: (
        "POST",
        "/api/v1/opt-outs",
        {"purpose": "outreach", "person_id": e["person_id"], "reason": s},
        "reason",
    ),
    "opt-in reason": lambda e, r, s: (
        "DELETE",
        f"/api/v1/opt-outs/{e['person_id']}",
        {"purpose": "outreach", "reason": s},
        "reason",
    ),
    "record id": lambda e, r, s: (
        "POST",
        "/api/v1/score",
        {"purpose": "outreach", "records": [dict(r, id=s)]},
        "records[0].id",
    ),
    "record key": lambda e, r, s: (
        "POST",
        "/api/v1/score",
        {"purpose": "outreach", "records": [{**r, s: 1}]},
        "records[0]: a key",
    ),
    "body key": lambda e, r, s: ("POST", "/api/v1/opt-outs", {s: "x"}, "body: a key"),
    "purpose": lambda e, r, s: (
        "POST",
        "/api/v1/score",
        {"purpose": s, "records": [r]},
        "purpose",
    ),
}


@pytest.mark.parametrize("place", sorted(PLACES))
@FUZZY
@given(text=lone)
def test_a_lone_surrogate_anywhere_in_a_body_is_a_named_400_and_writes_nothing(
    client: FlaskClient,
    coordinator: dict[str, str],
    db: Database,
    listed: dict[str, Any],
    record: dict[str, Any],
    place: str,
    text: str,
) -> None:
    method, path, body, field = PLACES[place](listed, record, text)
    encoded = json.dumps(body)  # ASCII: the surrogate travels as its \\udxxx escape
    assert "\\ud" in encoded
    before = _writes(db)
    error = _error(_send(client, method, path, encoded, coordinator), 400, "invalid_unicode")
    assert error["details"] == [f"{field}: lone surrogate"], error
    assert _writes(db) == before


def test_a_surrogate_pair_is_ordinary_text(
    client: FlaskClient, coordinator: dict[str, str], listed: dict[str, Any]
) -> None:
    body = json.dumps({"purpose": "outreach", "status": "contacted", "note": "help \U0001f3e0"})
    assert "\\ud83c\\udfe0" in body
    response = _send(
        client, "POST", f"/api/v1/queue/{listed['entry_id']}/outcome", body, coordinator
    )
    assert response.status_code == 201, response.json


def test_invalid_utf8_in_query_and_path_is_never_a_5xx(
    client: FlaskClient, coordinator: dict[str, str]
) -> None:
    """Percent-encoded bytes that are not UTF-8 (a surrogate's own bytes among them) arrive as
    text without surrogates, so they need no rule of their own: never a 5xx."""
    for raw in ("%ED%A0%80", "%FF", "a%ED%B3%BDb"):
        queue = client.get(f"/api/v1/queue?purpose=outreach&period={raw}", headers=coordinator)
        assert queue.status_code == 400 and queue.json["error"]["code"] == "invalid_period"
        opt_in = _send(
            client,
            "DELETE",
            f"/api/v1/opt-outs/{raw}",
            json.dumps({"purpose": "outreach", "reason": "asked"}),
            coordinator,
        )
        assert opt_in.status_code == 404, opt_in.json


# --- Path ids beyond 64 bits -----------------------------------------------------------------


@pytest.mark.parametrize("entry_id", [str(HUGE_ID), str(2**63), "0", "-1", "\u0663", "1.5", "0x10"])
def test_an_outcome_for_a_path_id_beyond_64_bits_or_not_a_number_is_a_404(
    client: FlaskClient, coordinator: dict[str, str], entry_id: str
) -> None:
    body = {"purpose": "outreach", "status": "contacted"}
    response = client.post(f"/api/v1/queue/{entry_id}/outcome", json=body, headers=coordinator)
    _error(response, 404, "not_found")


@FUZZY
@given(entry_id=st.integers(min_value=2**63, max_value=10**60))
def test_no_path_id_beyond_64_bits_reaches_the_database(
    client: FlaskClient, coordinator: dict[str, str], entry_id: int
) -> None:
    body = {"purpose": "outreach", "status": "contacted"}
    response = client.post(f"/api/v1/queue/{entry_id}/outcome", json=body, headers=coordinator)
    _error(response, 404, "not_found")


def test_the_largest_64_bit_id_reaches_the_route_and_the_document_says_so(
    client: FlaskClient, coordinator: dict[str, str], document: dict[str, Any]
) -> None:
    body = {"purpose": "outreach", "status": "contacted"}
    response = client.post(f"/api/v1/queue/{2**63 - 1}/outcome", json=body, headers=coordinator)
    assert "queue entry" in _error(response, 404, "not_found")["message"]  # the route said it
    schema = _schema(document, "/api/v1/queue/{entry_id}/outcome", "post", "entry_id")
    assert (schema["minimum"], schema["maximum"]) == (1, 2**63 - 1)
    assert "404" in document["paths"]["/api/v1/queue/{entry_id}/outcome"]["post"]["responses"]


# --- Deep nesting ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["[" * 200_000, '{"a":' * 200_000, '{"purpose": "outreach", "records": ' + "[" * 200_000],
    ids=["arrays", "objects", "inside a body"],
)
@pytest.mark.parametrize("path", ["/api/v1/score", "/api/v1/opt-outs"])
def test_200000_nested_brackets_are_a_400_not_a_recursion_error(
    client: FlaskClient, coordinator: dict[str, str], db: Database, path: str, text: str
) -> None:
    before = _writes(db)
    error = _error(_send(client, "POST", path, text, coordinator), 400, "too_deep")
    assert "32 levels" in error["message"]
    assert _writes(db) == before


def test_nesting_is_refused_past_32_levels_only(
    client: FlaskClient, coordinator: dict[str, str]
) -> None:
    def nested(levels: int) -> str:  # the body object is level 1
        return (
            '{"purpose": "outreach", "person_id": ' + "[" * (levels - 1) + "]" * (levels - 1) + "}"
        )

    _error(_send(client, "POST", "/api/v1/opt-outs", nested(33), coordinator), 400, "too_deep")
    # 32 levels parse; the id is then refused for what it is
    _error(_send(client, "POST", "/api/v1/opt-outs", nested(32), coordinator), 400, "invalid_id")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ('"a string"', "not_an_object"),
        ("[]", "not_an_object"),
        ("null", "not_an_object"),
        ("", "malformed_json"),
        ('{"purpose": ', "malformed_json"),
        ("\ufeff{}", "malformed_json"),
    ],
)
def test_a_body_that_is_not_one_json_object_is_a_named_400(
    client: FlaskClient, coordinator: dict[str, str], text: str, code: str
) -> None:
    _error(_send(client, "POST", "/api/v1/opt-outs", text, coordinator), 400, code)


def test_a_body_that_is_not_utf8_is_a_400(client: FlaskClient, coordinator: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/opt-outs",
        data=b'{"purpose": "outreach", "person_id": "\xed\xa0\x80"}',
        content_type="application/json",
        headers=coordinator,
    )
    _error(response, 400, "malformed_json")


# --- limit, offset ---------------------------------------------------------------------------


def test_limit_zero_is_refused_and_documented_as_refused(
    client: FlaskClient, coordinator: dict[str, str], document: dict[str, Any]
) -> None:
    response = client.get("/api/v1/queue?purpose=outreach&limit=0", headers=coordinator)
    assert "'limit' must be between 1 and 1000" in _error(response, 400, "bad_input")["message"]
    limit = _schema(document, "/api/v1/queue", "get", "limit")
    offset = _schema(document, "/api/v1/queue", "get", "offset")
    assert (limit["type"], limit["minimum"], limit["maximum"]) == ("integer", 1, 1000)
    assert (offset["minimum"], offset["maximum"]) == (0, 10_000_000)
    assert "400" in document["paths"]["/api/v1/queue"]["get"]["responses"]


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("limit=1", 200),
        ("limit=1000", 200),
        ("limit=1001", 400),
        ("limit=-1", 400),
        ("offset=0", 200),
        ("offset=10000000", 200),
        ("offset=10000001", 400),
        ("offset=-1", 400),
        ("limit=5&limit=6", 400),
        ("limit=\u0663", 400),
        ("limit=%205", 400),
        ("limit=5.0", 400),
        ("limit=" + "9" * 5000, 400),
    ],
)
def test_limit_and_offset_are_exactly_the_documented_bounds(
    client: FlaskClient, coordinator: dict[str, str], query: str, status: int
) -> None:
    response = client.get(f"/api/v1/queue?purpose=outreach&{query}", headers=coordinator)
    assert response.status_code == status, response.json


# --- Ids -------------------------------------------------------------------------------------


def test_empty_string_ids_are_refused_and_documented_as_refused(
    client: FlaskClient,
    coordinator: dict[str, str],
    document: dict[str, Any],
    record: dict[str, Any],
    db: Database,
) -> None:
    before = _writes(db)
    opt_out = client.post(
        "/api/v1/opt-outs", json={"purpose": "outreach", "person_id": ""}, headers=coordinator
    )
    _error(opt_out, 400, "invalid_id")
    score = client.post(
        "/api/v1/score",
        json={"purpose": "outreach", "records": [dict(record, id="")]},
        headers=coordinator,
    )
    assert _error(score, 400, "invalid_records")["details"][0].startswith("records[0].id:")
    opt_in = client.delete("/api/v1/opt-outs/", json={"purpose": "outreach"}, headers=coordinator)
    assert opt_in.status_code == 404
    assert _writes(db) == before

    path = _schema(document, "/api/v1/opt-outs/{person_id}", "delete", "person_id")
    assert (path["minLength"], path["maxLength"]) == (1, 120)
    body = _body_schema(document, "/api/v1/opt-outs", "post")["properties"]["person_id"]
    record_id = document["components"]["schemas"]["Record"]["properties"]["id"]
    for id_schema in (body, record_id):
        text = next(s for s in id_schema["oneOf"] if s["type"] == "string")
        assert (text["minLength"], text["maxLength"]) == (1, 120)


@pytest.mark.parametrize(("length", "refused"), [(120, False), (121, True)])
def test_ids_have_at_most_120_characters_everywhere(
    client: FlaskClient,
    coordinator: dict[str, str],
    record: dict[str, Any],
    length: int,
    refused: bool,
) -> None:
    person = "p" * length
    opt_out = client.post(
        "/api/v1/opt-outs", json={"purpose": "outreach", "person_id": person}, headers=coordinator
    )
    opt_in = client.delete(
        f"/api/v1/opt-outs/{person}",
        json={"purpose": "outreach", "reason": "asked"},
        headers=coordinator,
    )
    score = client.post(
        "/api/v1/score",
        json={"purpose": "outreach", "records": [dict(record, id=person)]},
        headers=coordinator,
    )
    if refused:
        _error(opt_out, 400, "invalid_id")
        _error(opt_in, 400, "invalid_id")
        _error(score, 400, "invalid_records")
    else:  # a well-formed id of nobody on a list in the caller's areas
        _error(opt_out, 404, "not_found")
        _error(opt_in, 404, "not_found")
        assert score.status_code == 200 and score.json["results"][0]["id"] == person


def test_a_whole_number_written_with_a_fraction_is_that_integer(
    client: FlaskClient, coordinator: dict[str, str], record: dict[str, Any]
) -> None:
    """JSON Schema counts 45.0 as an integer, so the API does too (the schema allows integer
    ids): the same answer as 45, not a refusal."""
    for body in (
        '{"purpose": "outreach", "person_id": 45}',
        '{"purpose": "outreach", "person_id": 45.0}',
    ):
        _error(_send(client, "POST", "/api/v1/opt-outs", body, coordinator), 404, "not_found")
    scored = client.post(
        "/api/v1/score",
        data=json.dumps({"purpose": "outreach", "records": [dict(record, id=7)]}).replace(
            '"id": 7', '"id": 7.0'
        ),
        content_type="application/json",
        headers=coordinator,
    )
    assert scored.status_code == 200 and scored.json["results"][0]["id"] == 7


@pytest.mark.parametrize("status", [{}, [], ["contacted"], 1, None])
def test_an_outcome_status_of_another_type_is_a_400(
    client: FlaskClient, coordinator: dict[str, str], listed: dict[str, Any], status: Any
) -> None:
    body = {"purpose": "outreach", "status": status}
    response = client.post(
        f"/api/v1/queue/{listed['entry_id']}/outcome", json=body, headers=coordinator
    )
    _error(response, 400, "bad_input")


# --- 1,001 records ---------------------------------------------------------------------------


def test_1001_records_are_a_400_as_the_document_says(
    client: FlaskClient,
    coordinator: dict[str, str],
    document: dict[str, Any],
    record: dict[str, Any],
    db: Database,
) -> None:
    before = _writes(db)
    too_many = client.post(
        "/api/v1/score",
        json={"purpose": "outreach", "records": [record] * 1001},
        headers=coordinator,
    )
    error = _error(too_many, 400, "too_many_records")
    assert error["details"] == ["records: 1001 given, at most 1000"]
    assert _writes(db) == before
    at_most = client.post(
        "/api/v1/score",
        json={"purpose": "outreach", "records": [record] * 1000},
        headers=coordinator,
    )
    assert at_most.status_code == 200 and len(at_most.json["results"]) == 1000
    records = _body_schema(document, "/api/v1/score", "post")["properties"]["records"]
    assert (records["minItems"], records["maxItems"]) == (1, 1000)
    assert "400" in document["paths"]["/api/v1/score"]["post"]["responses"]


# --- 405 and Allow ---------------------------------------------------------------------------


def test_every_method_a_path_does_not_document_is_a_405_with_allow(
    client: FlaskClient, coordinator: dict[str, str], document: dict[str, Any]
) -> None:
    methods = {"get", "post", "put", "patch", "delete"}
    checked = 0
    for template, operations in document["paths"].items():
        path = (
            template.replace("{entry_id}", "1")
            .replace("{person_id}", "p1")
            .replace("{audit_id}", "a1")
        )
        documented = {m.upper() for m in operations}
        for method in sorted(methods - set(operations)):
            response = client.open(path, method=method.upper(), headers=coordinator)
            error = _error(response, 405, "method_not_allowed")
            assert error["message"]
            allowed = {m.strip() for m in response.headers["Allow"].split(",")}
            assert documented <= allowed <= documented | {"HEAD", "OPTIONS"}, (path, allowed)
            checked += 1
    assert checked >= 30
