"""HTTP errors as JSON, from the project's exception tree: never a traceback, never a 500 for
bad input. ``{"error": {"code", "message", "details"}, "request_id"}``."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from model.errors import OutreachError

log = logging.getLogger("outreach.service")


class ApiError(Exception):
    """An error with its HTTP status and a stable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or []
        self.headers = headers or {}


def body(code: str, message: str, details: list[str] | None = None) -> dict[str, Any]:
    return {
        "error": {"code": code, "message": message, "details": details or []},
        "request_id": getattr(g, "request_id", ""),
    }


def _reply(
    status: int,
    code: str,
    message: str,
    details: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """JSON for the API; a page (same words, no internals) for people using the web pages."""
    if request.path.startswith("/api/"):
        return jsonify(body(code, message, details)), status, headers or {}
    page = render_template(
        "error.html",
        status=status,
        message=message,
        details=details or [],
        principal=g.get("principal"),
    )
    return page, status, headers or {}


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api(err: ApiError) -> Any:
        return _reply(err.status, err.code, err.message, err.details, err.headers)

    @app.errorhandler(OutreachError)
    def _project(err: OutreachError) -> Any:
        status = 400 if err.http_status == 500 and err.exit_code == 2 else err.http_status
        if status >= 500:
            log.error("request failed: %s", err.message)
        return _reply(status, err.code, err.message, list(err.details))

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(err: RequestEntityTooLarge) -> Any:
        limit = app.config.get("MAX_CONTENT_LENGTH") or 0
        message = f"the request body is larger than the limit of {limit // 1024} KiB"
        return _reply(413, "body_too_large", message)

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException) -> Any:
        code = (err.name or "error").lower().replace(" ", "_")
        return _reply(err.code or 500, code, err.description or err.name)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Any:
        log.exception("unexpected error")
        return _reply(500, "internal_error", "an unexpected error occurred; it was logged")
