"""The OpenAPI 3.1 document of ``/api/v1``, with the serving model's input schema filled in.

It describes exactly what the code does: every status a route can answer, the schema of every
body it answers with, the bounds the code enforces on every parameter and field, and links from
what one call returns to the calls that use it. The fuzz suite (``tests/system/test_fuzz.py``)
holds the two together: schemathesis checks each response against this document, that requests the
document calls valid are accepted and that requests it calls invalid are refused.
"""

from __future__ import annotations

from typing import Any

from model.scorer import ScoringModel
from service.api.json_body import MAX_DEPTH
from service.api.openapi_schemas import (
    COUNT,
    ERROR,
    EXPLANATION,
    GROUP_ROW,
    ID,
    ID_TEXT,
    PURPOSE_QUERY,
    QUEUE_LIMIT,
    QUEUE_OFFSET,
    REQUEST_ID,
    REVIEW,
    REVIEW_STATE,
    TEXT,
    component_schemas,
    error_responses,
    json_request_body,
    object_schema,
    ok_response,
    with_links,
)
from store import review_requests
from store.queue import (
    MAX_ENTRY_ID,
    MAX_TEXT,
    OUTCOMES,
    PERIOD_PATTERN,
)


def _review_paths(signed_in: tuple[int, ...]) -> dict[str, Any]:
    """Requests for review: coordinators file them; the board (and admins) list and move
    them; the board reads their counts by group and month."""
    return {
        "/api/v1/review-requests": {
            "post": {
                "operationId": "fileReviewRequest",
                "summary": "File a request for review of the listing of a person on a list in "
                "the caller's areas: wrong data, or they asked not to be contacted (which also "
                "takes them off every list)",
                "requestBody": json_request_body(
                    {
                        "person_id": ID,
                        "kind": {"enum": list(review_requests.KINDS)},
                        "raised_by": {"enum": list(review_requests.RAISED_BY)},
                        "details": TEXT,
                    },
                    optional=("details",),
                ),
                "responses": {
                    **ok_response(
                        201,
                        "filed, open; attached to the person's latest queue entry",
                        {
                            "allOf": [
                                REVIEW,
                                object_schema(
                                    {
                                        "opt_out_recorded": {"type": "boolean"},
                                        "request_id": {"type": "string"},
                                    }
                                ),
                            ]
                        },
                    ),
                    **error_responses(400, *signed_in, 404, 413, 415, 503),
                },
            },
            "get": {
                "operationId": "reviewRequests",
                "summary": "Requests for review, newest first, each with its history (no "
                "sensitive attribute of anyone)",
                "parameters": [
                    PURPOSE_QUERY,
                    {
                        "name": "state",
                        "in": "query",
                        "description": "only requests in this state (empty: every state)",
                        "schema": {"type": "string", "enum": ["", *review_requests.STATES]},
                    },
                    {
                        "name": "month",
                        "in": "query",
                        "description": "only requests filed in this month, YYYY-MM (UTC)",
                        "schema": {"type": "string", "pattern": f"^({PERIOD_PATTERN[1:-1]})?$"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": 1000,
                            "default": 100,
                        },
                    },
                    {
                        "name": "offset",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": QUEUE_OFFSET[0],
                            "maximum": QUEUE_OFFSET[1],
                            "default": 0,
                        },
                    },
                ],
                "responses": with_links(
                    {
                        **ok_response(
                            200,
                            "a page of requests",
                            object_schema(
                                {
                                    "purpose": {"const": "outreach"},
                                    "state": {"type": ["string", "null"]},
                                    "month": {"type": ["string", "null"]},
                                    "limit": {"type": "integer"},
                                    "offset": {"type": "integer"},
                                    "total": {"type": "integer", "minimum": 0},
                                    "requests": {
                                        "type": "array",
                                        "maxItems": 1000,
                                        "items": REVIEW,
                                    },
                                    "request_id": {"type": "string"},
                                }
                            ),
                        ),
                        **error_responses(400, *signed_in, 503),
                    },
                    200,
                    MoveReviewRequest={
                        "operationId": "moveReviewRequest",
                        "parameters": {"path.request_id": "$response.body#/requests/0/id"},
                    },
                ),
            },
        },
        "/api/v1/review-requests/{request_id}/state": {
            "post": {
                "operationId": "moveReviewRequest",
                "summary": "Move a request open -> in_review -> resolved or declined (or from "
                "open straight to either), with a note; any other move is a 409",
                "parameters": [
                    {
                        "name": "request_id",
                        "in": "path",
                        "required": True,
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": review_requests.MAX_REQUEST_ID,
                        },
                    }
                ],
                "requestBody": json_request_body(
                    {
                        "state": REVIEW_STATE,
                        "note": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_TEXT,
                            "pattern": review_requests.REQUIRED_TEXT_PATTERN,
                        },
                    }
                ),
                "responses": {
                    **ok_response(
                        200,
                        "moved; the history holds the new state with who moved it and why",
                        {
                            "allOf": [
                                REVIEW,
                                object_schema({"request_id": {"type": "string"}}),
                            ]
                        },
                    ),
                    **error_responses(400, *signed_in, 404, 409, 413, 415, 503),
                },
            }
        },
        "/api/v1/review-requests/summary": {
            "get": {
                "operationId": "reviewRequestSummary",
                "summary": "Requests counted by month filed, kind, state and sensitive group "
                "(aggregates only; small counts withheld by the serving policy's "
                "min_group_size, the one small-cell rule)",
                "responses": {
                    **ok_response(
                        200,
                        "per month, kind and state: the total, and per attribute the count "
                        "of each group (null where withheld)",
                        object_schema(
                            {
                                "threshold": {"type": "integer", "minimum": 1},
                                "rows": {"type": "array", "items": COUNT},
                                "attributes": {
                                    "type": "array",
                                    "items": object_schema(
                                        {
                                            "attribute": {"type": "string"},
                                            "groups": {
                                                "type": "array",
                                                "items": {"type": "string"},
                                            },
                                            "rows": {"type": "array", "items": GROUP_ROW},
                                        }
                                    ),
                                },
                                "request_id": {"type": "string"},
                            }
                        ),
                    ),
                    **error_responses(*signed_in, 503),
                },
            }
        },
    }


#: What the server itself refuses before any route (``service.gunicorn_worker``): documented
#: on every operation, since any request can carry an over-long line or oversized headers.
_BEFORE_ANY_ROUTE = {
    400: "bad input, or a request line longer than the server reads (code request_line_too_long)",
    431: "too many request header fields, or one too large (code headers_too_large)",
}


def document(model: ScoringModel | None, *, max_records: int) -> dict[str, Any]:
    """The API description; ``model`` fills in the record schema (None: ids only)."""
    out = _document(model, max_records=max_records)
    for operations in out["paths"].values():
        for operation in operations.values():
            for status, words in _BEFORE_ANY_ROUTE.items():
                operation["responses"].setdefault(
                    str(status),
                    {
                        "description": words,
                        "headers": {"X-Request-ID": REQUEST_ID},
                        "content": {"application/json": {"schema": ERROR}},
                    },
                )
    return out


def _document(model: ScoringModel | None, *, max_records: int) -> dict[str, Any]:
    signed_in = (401, 403, 429)  # every route behind a token: no or bad token, role, rate
    ref = "#/components/schemas/"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "outreach scoring service",
            "version": "1",
            "description": "Scores for voluntary welfare outreach, with reasons. Personal data "
            "is returned only for the purpose 'outreach', and every view is logged. JSON bodies "
            f"are UTF-8 objects nested at most {MAX_DEPTH} levels, without lone UTF-16 "
            "surrogates, at most 2 MiB (413). A method a path does not list answers 405 with "
            "an Allow header.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": component_schemas(model),
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/score": {
                "post": {
                    "operationId": "score",
                    "summary": f"Score 1 to {max_records} records with reasons",
                    "description": "A person who opted out is not scored: a record with their "
                    "id refuses the whole request (409, code opted_out).",
                    "requestBody": json_request_body(
                        {
                            "records": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": max_records,
                                "items": {"$ref": ref + "Record"},
                            }
                        }
                    ),
                    "responses": {
                        **ok_response(
                            200,
                            "scores, bands, percentiles and reasons, in the records' order",
                            object_schema(
                                {
                                    "purpose": {"const": "outreach"},
                                    "model": {"$ref": ref + "ModelBlock"},
                                    "results": {
                                        "type": "array",
                                        "minItems": 1,
                                        "maxItems": max_records,
                                        "items": {"$ref": ref + "Score"},
                                    },
                                    "request_id": {"type": "string"},
                                }
                            ),
                        ),
                        **error_responses(400, *signed_in, 409, 413, 415, 503),
                    },
                }
            },
            "/api/v1/queue": {
                "get": {
                    "operationId": "queue",
                    "summary": "The period's ranked outreach list within capacity and the "
                    "caller's areas, opted-out people excluded",
                    "parameters": [
                        PURPOSE_QUERY,
                        {
                            "name": "period",
                            "in": "query",
                            "description": "the list's period, YYYY-MM (default: the latest)",
                            "schema": {"type": "string", "pattern": f"^({PERIOD_PATTERN[1:-1]})?$"},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {
                                "type": "integer",
                                "minimum": QUEUE_LIMIT[0],
                                "maximum": QUEUE_LIMIT[1],
                                "default": 50,
                            },
                        },
                        {
                            "name": "offset",
                            "in": "query",
                            "schema": {
                                "type": "integer",
                                "minimum": QUEUE_OFFSET[0],
                                "maximum": QUEUE_OFFSET[1],
                                "default": 0,
                            },
                        },
                    ],
                    "responses": with_links(
                        {
                            **ok_response(
                                200,
                                "a page of the list, with each person's latest outcome",
                                object_schema(
                                    {
                                        "purpose": {"const": "outreach"},
                                        "period": {"type": ["string", "null"]},
                                        "limit": {"type": "integer"},
                                        "offset": {"type": "integer"},
                                        "total": {"type": "integer", "minimum": 0},
                                        "entries": {
                                            "type": "array",
                                            "maxItems": QUEUE_LIMIT[1],
                                            "items": {"$ref": ref + "Entry"},
                                        },
                                        "request_id": {"type": "string"},
                                    }
                                ),
                            ),
                            **error_responses(400, *signed_in, 503),
                        },
                        200,
                        RecordOutcome={
                            "operationId": "recordOutcome",
                            "parameters": {"path.entry_id": "$response.body#/entries/0/entry_id"},
                        },
                        OptOut={
                            "operationId": "addOptOut",
                            "requestBody": {
                                "purpose": "outreach",
                                "person_id": "$response.body#/entries/0/person_id",
                            },
                        },
                        Explanation={
                            "operationId": "personExplanation",
                            "parameters": {
                                "path.person_id": "$response.body#/entries/0/person_id",
                                "query.purpose": "outreach",
                            },
                        },
                        FileReviewRequest={
                            "operationId": "fileReviewRequest",
                            "requestBody": {
                                "purpose": "outreach",
                                "person_id": "$response.body#/entries/0/person_id",
                                "kind": "wrong_data",
                                "raised_by": "person",
                                "details": "the household size is out of date",
                            },
                        },
                    ),
                }
            },
            "/api/v1/queue/{entry_id}/outcome": {
                "post": {
                    "operationId": "recordOutcome",
                    "summary": "Record an outreach outcome",
                    "parameters": [
                        {
                            "name": "entry_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ENTRY_ID},
                        }
                    ],
                    "requestBody": json_request_body(
                        {"status": {"enum": list(OUTCOMES)}, "note": TEXT},
                        optional=("note",),
                    ),
                    "responses": {
                        **ok_response(
                            201,
                            "recorded",
                            object_schema(
                                {
                                    "outcome_id": {"type": "integer", "minimum": 1},
                                    "entry_id": {"type": "integer", "minimum": 1},
                                    "status": {"enum": list(OUTCOMES)},
                                    "request_id": {"type": "string"},
                                }
                            ),
                        ),
                        **error_responses(400, *signed_in, 404, 409, 413, 415, 503),
                    },
                }
            },
            "/api/v1/opt-outs": {
                "post": {
                    "operationId": "addOptOut",
                    "summary": "A person on a list in the caller's areas opts out of outreach",
                    "requestBody": json_request_body(
                        {"person_id": ID, "reason": TEXT}, optional=("reason",)
                    ),
                    "responses": with_links(
                        {
                            **ok_response(
                                201,
                                "the person leaves every list from now on (again: no change)",
                                object_schema(
                                    {
                                        "person_id": ID_TEXT,
                                        "opted_out": {"const": True},
                                        "request_id": {"type": "string"},
                                    }
                                ),
                            ),
                            **error_responses(400, *signed_in, 404, 413, 415, 503),
                        },
                        201,
                        OptBackIn={
                            "operationId": "removeOptOut",
                            "parameters": {"path.person_id": "$response.body#/person_id"},
                        },
                    ),
                }
            },
            "/api/v1/opt-outs/{person_id}": {
                "delete": {
                    "operationId": "removeOptOut",
                    "summary": "A person who had opted out opts back in (a reason is required)",
                    "parameters": [
                        {
                            "name": "person_id",
                            "in": "path",
                            "required": True,
                            "schema": ID_TEXT,
                        },
                    ],
                    "requestBody": json_request_body(
                        {
                            "reason": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": MAX_TEXT,
                                # free_text(required=True)'s own rule: "\u0000b" is
                                # refused by both, as is text that strip() leaves empty.
                                "pattern": review_requests.REQUIRED_TEXT_PATTERN,
                            }
                        }
                    ),
                    "responses": with_links(
                        {
                            **ok_response(204, "the person is offered outreach again", None),
                            **error_responses(400, *signed_in, 404, 413, 415, 503),
                        },
                        204,
                        OptOutAgain={
                            "operationId": "addOptOut",
                            "requestBody": {
                                "purpose": "outreach",
                                "person_id": "$request.path.person_id",
                            },
                        },
                    ),
                }
            },
            "/api/v1/people/{person_id}/explanation": {
                "get": {
                    "operationId": "personExplanation",
                    "summary": "The explanation a person can be given for their latest listed "
                    "entry, in plain words (logged as 'explanation')",
                    "parameters": [
                        {
                            "name": "person_id",
                            "in": "path",
                            "required": True,
                            "schema": ID_TEXT,
                        },
                        PURPOSE_QUERY,
                    ],
                    "responses": {
                        **ok_response(
                            200,
                            "the text written to the person (or, for a neighbourhood, its "
                            "residents) and the fields it says",
                            EXPLANATION,
                        ),
                        **error_responses(400, *signed_in, 404, 503),
                    },
                }
            },
            **_review_paths(signed_in),
            "/api/v1/model": {
                "get": {
                    "operationId": "model",
                    "summary": "The serving model, its audit and input schema",
                    "responses": {
                        **ok_response(
                            200,
                            "the serving model",
                            {
                                "allOf": [
                                    {"$ref": ref + "ModelBlock"},
                                    object_schema(
                                        {
                                            "candidate": {"type": "string"},
                                            "label": {"type": "string"},
                                            "capacity": {"type": "object"},
                                            "input_schema": {
                                                "type": "array",
                                                "items": object_schema(
                                                    {
                                                        "name": {"type": "string"},
                                                        "kind": {"type": "string"},
                                                        "description": {"type": "string"},
                                                        "categories": {
                                                            "type": "array",
                                                            "items": {"type": "string"},
                                                        },
                                                        "min": {"type": ["number", "null"]},
                                                        "max": {"type": ["number", "null"]},
                                                        "nullable": {"type": "boolean"},
                                                    },
                                                    optional=("categories", "min", "max"),
                                                ),
                                            },
                                            "request_id": {"type": "string"},
                                        }
                                    ),
                                ]
                            },
                        ),
                        **error_responses(*signed_in, 503),
                    },
                }
            },
            "/api/v1/audits": {
                "get": {
                    "operationId": "audits",
                    "summary": "Audit decisions of every version",
                    "responses": with_links(
                        {
                            **ok_response(
                                200,
                                "every registered version that has an audit",
                                object_schema(
                                    {
                                        "audits": {
                                            "type": "array",
                                            "items": {"$ref": ref + "AuditRow"},
                                        },
                                        "request_id": {"type": "string"},
                                    }
                                ),
                            ),
                            **error_responses(*signed_in, 404),
                        },
                        200,
                        Audit={
                            "operationId": "audit",
                            "parameters": {"path.audit_id": "$response.body#/audits/0/audit_id"},
                        },
                    ),
                }
            },
            "/api/v1/audits/{audit_id}": {
                "get": {
                    "operationId": "audit",
                    "summary": "One audit report (the JSON source of truth)",
                    "parameters": [
                        {
                            "name": "audit_id",
                            "in": "path",
                            "required": True,
                            "schema": {
                                "type": "string",
                                "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,119}$",
                            },
                        }
                    ],
                    "responses": {
                        **ok_response(
                            200,
                            "the audit report",
                            {
                                "type": "object",
                                "required": ["audit_id", "decision"],
                                "properties": {
                                    "audit_id": {"type": "string"},
                                    "decision": {"type": "string"},
                                },
                            },
                        ),
                        **error_responses(*signed_in, 404),
                    },
                }
            },
            "/api/v1/monitoring": {
                "get": {
                    "operationId": "monitoring",
                    "summary": "After release (aggregates only): the scored periods, or one "
                    "period's estimates, drift, funnel, realised results and evaluation arm",
                    "parameters": [
                        {
                            "name": "period",
                            "in": "query",
                            "required": False,
                            "description": "A scored month, YYYY-MM; without it, the list of "
                            "scored periods",
                            "schema": {"type": "string", "pattern": PERIOD_PATTERN},
                        }
                    ],
                    "responses": {
                        **ok_response(
                            200,
                            "without period: {model, periods}; with period: the period's "
                            "monitoring document (warnings, reaudit_recommended and its reasons, "
                            "estimates, estimated_disparities, drift, funnel, labels, realised, "
                            "lottery)",
                            {
                                "type": "object",
                                "required": ["request_id"],
                                "properties": {
                                    "request_id": {"type": "string"},
                                    "periods": {"type": "array", "items": {"type": "object"}},
                                    "period": {"type": "string"},
                                    "warnings": {"type": "array", "items": {"type": "string"}},
                                    "reaudit_recommended": {"type": "boolean"},
                                    "reaudit_reasons": {
                                        "type": "array",
                                        "items": {"type": "string"},
                                    },
                                    "estimates": {"type": ["object", "null"]},
                                    "drift": {"type": ["object", "null"]},
                                    "funnel": {"type": "object"},
                                    "disclosure": {
                                        "type": "object",
                                        "description": "the small-cell rule: counts of people "
                                        "in a group below threshold (the policy's "
                                        "min_group_size), the counts that would give them "
                                        "back, and what is computed from them are null, each "
                                        "named with why in the 'withheld' object beside it",
                                        "properties": {
                                            "threshold": {"type": "integer", "minimum": 1},
                                            "rule": {"type": "string"},
                                        },
                                    },
                                    "realised": {"type": ["object", "null"]},
                                    "lottery": {"type": ["object", "null"]},
                                },
                            },
                        ),
                        **error_responses(*signed_in, 400, 404),
                    },
                }
            },
            "/api/v1/healthz": {
                "get": {
                    "operationId": "healthz",
                    "security": [],
                    "summary": "Liveness",
                    "responses": ok_response(
                        200, "alive", object_schema({"status": {"const": "ok"}})
                    ),
                }
            },
            "/api/v1/readyz": {
                "get": {
                    "operationId": "readyz",
                    "security": [],
                    "summary": "Readiness",
                    "responses": {
                        **ok_response(
                            200,
                            "serving a verified model",
                            object_schema(
                                {
                                    "status": {"enum": ["ready", "degraded"]},
                                    "model": {"$ref": ref + "ModelBlock"},
                                    "problem": {"type": "string"},
                                },
                                optional=("problem",),
                            ),
                        ),
                        "503": {
                            "description": (
                                "no verified model, the model was withdrawn, or its "
                                "attestation log does not verify (code attestation_log_invalid)"
                            ),
                            "headers": {"X-Request-ID": REQUEST_ID},
                            "content": {
                                "application/json": {
                                    "schema": object_schema(
                                        {
                                            "status": {
                                                "enum": ["not ready", "withdrawn", "log_invalid"]
                                            },
                                            "problem": {"type": "string"},
                                            "code": {"type": "string"},
                                        },
                                        optional=("code",),
                                    )
                                }
                            },
                        },
                    },
                }
            },
            "/api/v1/metrics": {
                "get": {
                    "operationId": "metrics",
                    "security": [],
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "metrics in the Prometheus text format",
                            "headers": {"X-Request-ID": REQUEST_ID},
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "security": [],
                    "summary": "This document",
                    "responses": ok_response(
                        200,
                        "the OpenAPI document",
                        object_schema(
                            {
                                "openapi": {"type": "string"},
                                "info": {"type": "object"},
                                "paths": {"type": "object"},
                            }
                        ),
                    ),
                }
            },
        },
    }
