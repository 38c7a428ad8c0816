"""The OpenAPI 3.1 document of ``/api/v1``, with the serving model's input schema filled in."""

from __future__ import annotations

from typing import Any

from model.scorer import ScoringModel

_ERROR = {"$ref": "#/components/schemas/Error"}


def _responses(ok: str, *codes: int) -> dict[str, Any]:
    out: dict[str, Any] = {"200": {"description": ok}} if ok else {}
    words = {
        201: "created",
        204: "done",
        400: "bad input",
        401: "no or invalid token",
        403: "role or purpose refused",
        404: "not found",
        413: "too large",
        415: "not JSON",
        429: "rate limited",
        503: "not available",
    }
    for code in codes:
        entry: dict[str, Any] = {"description": words[code]}
        if code >= 400:
            entry["content"] = {"application/json": {"schema": _ERROR}}
        out[str(code)] = entry
    return out


def _json_body(properties: dict[str, Any], *, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """A required JSON object body: ``purpose`` plus exactly these properties."""
    required = ["purpose", *(name for name in properties if name not in optional)]
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": {"purpose": {"const": "outreach"}, **properties},
    }
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _record_schema(model: ScoringModel | None) -> dict[str, Any]:
    properties: dict[str, Any] = {"id": {"type": ["string", "integer"]}}
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
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(properties),
        "properties": properties,
    }


def document(model: ScoringModel | None, *, max_records: int) -> dict[str, Any]:
    """The API description; ``model`` fills in the record schema (None: ids only)."""
    common = (400, 401, 403, 429)
    purpose_query = {
        "name": "purpose",
        "in": "query",
        "required": True,
        "schema": {"const": "outreach"},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "outreach scoring service",
            "version": "1",
            "description": "Scores for voluntary welfare outreach, with reasons. Personal data "
            "is returned only for the purpose 'outreach', and every view is logged.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "request_id"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message", "details"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "details": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                        "request_id": {"type": "string"},
                    },
                },
                "Record": _record_schema(model),
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/score": {
                "post": {
                    "summary": f"Score 1 to {max_records} records with reasons",
                    "requestBody": _json_body(
                        {
                            "records": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": max_records,
                                "items": {"$ref": "#/components/schemas/Record"},
                            }
                        }
                    ),
                    "responses": _responses("scores", *common, 413, 415, 503),
                }
            },
            "/api/v1/queue": {
                "get": {
                    "summary": "The period's ranked outreach list within capacity",
                    "parameters": [
                        purpose_query,
                        {"name": "period", "in": "query", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                        {"name": "offset", "in": "query", "schema": {"type": "integer"}},
                    ],
                    "responses": _responses("entries", *common),
                }
            },
            "/api/v1/queue/{entry_id}/outcome": {
                "post": {
                    "summary": "Record an outreach outcome",
                    "parameters": [
                        {
                            "name": "entry_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer"},
                        }
                    ],
                    "requestBody": _json_body(
                        {
                            "status": {
                                "enum": ["contacted", "accepted", "declined", "unreachable"]
                            },
                            "note": {"type": "string", "maxLength": 2000},
                        },
                        optional=("note",),
                    ),
                    "responses": _responses("", 201, *common, 404, 415),
                }
            },
            "/api/v1/opt-outs": {
                "post": {
                    "summary": "A person opts out of outreach",
                    "requestBody": _json_body(
                        {
                            "person_id": {"type": ["string", "integer"]},
                            "reason": {"type": "string", "maxLength": 2000},
                        },
                        optional=("reason",),
                    ),
                    "responses": _responses("", 201, *common, 415),
                }
            },
            "/api/v1/opt-outs/{person_id}": {
                "delete": {
                    "summary": "A person opts back in",
                    "parameters": [
                        purpose_query,
                        {
                            "name": "person_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": _responses("", 204, *common, 404),
                }
            },
            "/api/v1/model": {
                "get": {
                    "summary": "The serving model, its audit and input schema",
                    "responses": _responses("model", *common, 503),
                }
            },
            "/api/v1/audits": {
                "get": {
                    "summary": "Audit decisions of every version",
                    "responses": _responses("audits", *common),
                }
            },
            "/api/v1/audits/{audit_id}": {
                "get": {
                    "summary": "One audit report",
                    "parameters": [
                        {
                            "name": "audit_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": _responses("report", *common, 404),
                }
            },
            "/api/v1/healthz": {
                "get": {"security": [], "summary": "Liveness", "responses": _responses("alive")}
            },
            "/api/v1/readyz": {
                "get": {
                    "security": [],
                    "summary": "Readiness",
                    "responses": _responses("ready", 503),
                }
            },
            "/api/v1/metrics": {
                "get": {
                    "security": [],
                    "summary": "Prometheus metrics",
                    "responses": _responses("metrics"),
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "security": [],
                    "summary": "This document",
                    "responses": _responses("document"),
                }
            },
        },
    }
