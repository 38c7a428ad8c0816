"""The OpenAPI document's parts: its schemas, error responses and the bounds the routes check.

:mod:`service.api.openapi` puts them together into the document of ``/api/v1``.
"""

from typing import Any

from model.scorer import BANDS, ScoringModel
from store import review_requests
from store.queue import (
    ID_PATTERN,
    MAX_ID,
    MAX_TEXT,
    OUTCOMES,
    PERIOD_PATTERN,
    TEXT_PATTERN,
)

#: What ``GET /queue`` takes (the bounds the route checks).
QUEUE_LIMIT = (1, 1000)
QUEUE_OFFSET = (0, 10_000_000)

#: The schema of every error body (``components.schemas.Error``).
ERROR = {"$ref": "#/components/schemas/Error"}
#: The ``X-Request-ID`` header every answer carries.
REQUEST_ID = {
    "description": "this request's id, also in every JSON body and the access log",
    "required": True,
    "schema": {"type": "string"},
}
_WORDS = {
    400: "bad input: the error names each field and the problem",
    401: "no token, or a token that is not valid",
    403: "the caller's role may not use this, or a purpose other than 'outreach'",
    404: "not found (outside the caller's areas looks exactly the same)",
    405: "method not allowed on this path (the Allow header lists the methods)",
    409: "refused in the current state",
    413: "the request body is larger than the limit",
    415: "the body is not JSON",
    429: "more requests a minute than the token may make",
    503: "not available now: no verified model, outreach paused, or the access log unwritable",
}
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"required": True, "schema": {"type": "string", "const": "Bearer"}}},
    405: {"Allow": {"required": True, "schema": {"type": "string", "minLength": 1}}},
    429: {"Retry-After": {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}},
}


def ok_response(status: int, description: str, schema: dict[str, Any] | None) -> dict[str, Any]:
    """A successful answer: its status, description, request-id header and JSON ``schema``
    (``None`` for no body)."""
    entry: dict[str, Any] = {"description": description, "headers": {"X-Request-ID": REQUEST_ID}}
    if schema is not None:
        entry["content"] = {"application/json": {"schema": schema}}
    return {str(status): entry}


def with_links(responses: dict[str, Any], status: int, **links: dict[str, Any]) -> dict[str, Any]:
    """``responses`` with links from the ``status`` answer to the calls that use what it returns
    (schemathesis follows them in its stateful phase)."""
    responses[str(status)]["links"] = links
    return responses


def error_responses(*codes: int) -> dict[str, Any]:
    """The error answers for these status codes: each with its description, headers and the
    error schema."""
    out: dict[str, Any] = {}
    for code in codes:
        out[str(code)] = {
            "description": _WORDS[code],
            "headers": {"X-Request-ID": REQUEST_ID, **_ERROR_HEADERS.get(code, {})},
            "content": {"application/json": {"schema": ERROR}},
        }
    return out


def object_schema(properties: dict[str, Any], *, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """A response object: these properties, all present unless ``optional``."""
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
    }


def json_request_body(
    properties: dict[str, Any], *, optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A required JSON object body: ``purpose`` plus exactly these properties."""
    required = ["purpose", *(name for name in properties if name not in optional)]
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": {"purpose": {"const": "outreach"}, **properties},
    }
    return {"required": True, "content": {"application/json": {"schema": schema}}}


#: The one id rule (``store.queue.person_id``): a string without control characters, or an
#: integer, of 1 to 120 characters.
ID_TEXT = {"type": "string", "minLength": 1, "maxLength": MAX_ID, "pattern": ID_PATTERN}
#: A person's id as a request may give it: the text above, or an integer of as many digits.
ID = {
    "oneOf": [
        ID_TEXT,
        {"type": "integer", "minimum": -(10 ** (MAX_ID - 1) - 1), "maximum": 10**MAX_ID - 1},
    ]
}
#: A note or reason: optional text (``null`` is none), stripped, at most 2,000 characters.
TEXT = {"type": ["string", "null"], "maxLength": MAX_TEXT, "pattern": TEXT_PATTERN}
#: The ``purpose`` query parameter every read of personal data takes.
PURPOSE_QUERY = {
    "name": "purpose",
    "in": "query",
    "required": True,
    "description": "personal data is only for outreach: missing is 400, another purpose 403",
    "schema": {"type": "string", "const": "outreach"},
}


def _record_schema(model: ScoringModel | None) -> dict[str, Any]:
    properties: dict[str, Any] = {"id": ID}
    if model is not None:
        for feature in model.features:
            if feature.kind == "category":
                properties[feature.name] = {"type": "string", "enum": list(feature.categories)}
            else:
                entry: dict[str, Any] = {
                    "type": "integer" if feature.kind in ("count", "binary") else "number"
                }
                if feature.lower is not None:
                    entry["minimum"] = feature.lower
                if feature.upper is not None:
                    entry["maximum"] = feature.upper
                properties[feature.name] = entry
            if feature.allows_missing:  # a gap is null; the reason then reads reason_missing
                properties[feature.name] = {
                    "anyOf": [properties[feature.name], {"type": "null"}],
                    "description": f"may be null: {feature.reason_missing}",
                }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(properties),
        "properties": properties,
    }


def component_schemas(model: ScoringModel | None) -> dict[str, Any]:
    """The document's ``components.schemas``, the record schema from ``model``'s features (a
    generic record when no model is served)."""
    text_or_none = {"type": ["string", "null"]}
    return {
        "Error": {
            "type": "object",
            "additionalProperties": False,
            "required": ["error", "request_id"],
            "properties": {
                "error": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["code", "message", "details"],
                    "properties": {
                        "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                        "message": {"type": "string", "minLength": 1},
                        "details": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "request_id": {"type": "string"},
            },
        },
        "Record": _record_schema(model),
        "Reason": object_schema(
            {
                "feature": {"type": "string"},
                "value": {"type": ["string", "number", "boolean", "null"]},
                "contribution": {"type": "number"},
                "text": {"type": "string"},
                "service": text_or_none,
            }
        ),
        "ModelBlock": object_schema(
            {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "audit_id": text_or_none,
                "audit_decision": text_or_none,
                "degraded": {"type": "boolean"},
            }
        ),
        "Score": object_schema(
            {
                "id": {"type": ["string", "integer"]},
                "score": {"type": "number", "minimum": 0, "maximum": 1},
                "percentile": {"type": "number", "minimum": 0, "maximum": 100},
                "band": {"enum": list(BANDS)},
                "reasons": {"type": "array", "items": {"$ref": "#/components/schemas/Reason"}},
            }
        ),
        "Entry": object_schema(
            {
                "entry_id": {"type": "integer", "minimum": 1},
                "rank": {"type": "integer", "minimum": 1},
                "person_id": ID_TEXT,
                "period": {"type": "string"},
                "score": {"type": "number", "minimum": 0, "maximum": 1},
                "percentile": {"type": "number", "minimum": 0, "maximum": 100},
                "band": {"enum": list(BANDS)},
                "reasons": {"type": "array", "items": {"$ref": "#/components/schemas/Reason"}},
                "model": object_schema(
                    {
                        "name": {"type": "string"},
                        "version": {"type": "string"},
                        "audit_id": text_or_none,
                    }
                ),
                "last_outcome": {
                    "oneOf": [
                        {"type": "null"},
                        object_schema(
                            {
                                "status": {"enum": list(OUTCOMES)},
                                "note": {
                                    "type": "string",
                                    "maxLength": MAX_TEXT,
                                    "pattern": TEXT_PATTERN,
                                },
                                "at": {"type": "string", "minLength": 1},
                            }
                        ),
                    ]
                },
            }
        ),
        "AuditRow": object_schema(
            {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "aliases": {"type": "array", "items": {"type": "string"}},
                "candidate": text_or_none,
                "audit_id": {"type": "string", "minLength": 1},
                "decision": text_or_none,
                "awaiting_approval": {"type": "boolean"},
                "approved_by": text_or_none,
                "review_groups": {"type": "string"},
                "approved_review_groups": {"type": "string"},
                "rejected_by": text_or_none,
                # Who released it (the signed release statement); they cannot approve it.
                "released_by": text_or_none,
                "withdrawn_by": text_or_none,
                "precision_at_k": {"type": ["number", "null"]},
                "recall_at_k": {"type": ["number", "null"]},
                "created": {"type": ["integer", "null"]},
                # The version's state now, from the signed statements (lifecycle.version_state).
                "state": {"type": "string"},
                "servable": {"type": "boolean"},
                "reason": {"type": "string"},
                "serving": {"type": "boolean"},
            }
        ),
    }


# --- Requests for review of a listing (store.review_requests) -------------------------------------

#: A request for review's state, and the request as the API answers it.
REVIEW_STATE = {"enum": list(review_requests.STATES)}
REVIEW = object_schema(
    {
        "id": {"type": "integer", "minimum": 1},
        "person_id": ID_TEXT,
        "model": object_schema({"name": {"type": "string"}}),
        "period": {"type": "string"},
        "entry_id": {"type": ["integer", "null"], "minimum": 1},
        "kind": {"enum": list(review_requests.KINDS)},
        "raised_by": {"enum": list(review_requests.RAISED_BY)},
        "details": {"type": "string", "maxLength": MAX_TEXT, "pattern": TEXT_PATTERN},
        "state": REVIEW_STATE,
        "next_states": {"type": "array", "items": REVIEW_STATE},
        "filed_by": {"type": "string", "minLength": 1},
        "created_at": {"type": "string", "minLength": 1},
        "updated_at": {"type": "string", "minLength": 1},
        "history": {
            "type": "array",
            "minItems": 1,
            "items": object_schema(
                {
                    "state": REVIEW_STATE,
                    "note": {"type": "string"},
                    "by": {"type": "string", "minLength": 1},
                    "at": {"type": "string", "minLength": 1},
                }
            ),
        },
    }
)
#: One row of the counts of requests for review by month, kind and state, and the same row
#: with its counts by group (small cells withheld).
COUNT = object_schema(
    {
        "month": {"type": "string", "pattern": PERIOD_PATTERN},
        "kind": {"enum": list(review_requests.KINDS)},
        "state": REVIEW_STATE,
        "total": {"type": "integer", "minimum": 1},
    }
)

GROUP_ROW = {
    "allOf": [
        COUNT,
        object_schema(
            {
                "counts": {
                    "type": "array",
                    "items": object_schema(
                        {
                            "group": {"type": "string"},
                            "count": {"type": ["integer", "null"], "minimum": 0},
                            "withheld": {"type": "boolean"},
                        }
                    ),
                }
            }
        ),
    ]
}


#: What ``GET /people/{person_id}/explanation`` answers (``service.person_explanation``).
EXPLANATION = object_schema(
    {
        "purpose": {"const": "outreach"},
        "person_id": ID_TEXT,
        "unit": {"enum": ["individual", "neighbourhood"]},
        "addressed_to": {"type": "string", "minLength": 1},
        "period": {"type": "string", "pattern": PERIOD_PATTERN},
        "reasons": {
            "type": "array",
            "maxItems": 4,
            "items": object_schema(
                {
                    "feature": {"type": "string"},
                    "value": {"type": ["string", "number", "boolean", "null"]},
                    "contribution": {"type": "number", "exclusiveMinimum": 0},
                    "text": {"type": "string"},
                }
            ),
        },
        "data_used": {
            "type": "array",
            "items": object_schema(
                {
                    "feature": {"type": "string"},
                    "description": {"type": "string", "minLength": 1},
                    "source": {"type": ["string", "null"]},
                }
            ),
        },
        "not_used": {"type": "array", "items": {"type": "string"}},
        "contact": {"type": ["string", "null"]},
        "model": object_schema(
            {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "audit_id": {"type": "string"},
            }
        ),
        "text": {"type": "string", "minLength": 1},
        "request_id": {"type": "string"},
    }
)
