"""One handler for every error: JSON under ``/api``, an HTML page elsewhere; never a traceback.

Errors come from the project's exception tree (:mod:`kernel.errors`), each carrying its status and
stable code. The JSON body is ``{"error": {"code", "message", "details"}, "request_id"}``.
Werkzeug's own HTTP errors (an unknown route, a method not allowed) are rendered the same way and
keep their headers (``Allow`` on a 405).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, current_app, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from kernel.errors import OutreachError

log = logging.getLogger("outreach.service")


#: What a person reads on a page for the framework's own errors (the API keeps its JSON).
PAGE_WORDS: dict[int, str] = {
    403: "This page is not open to you. If you need it for your work, ask an administrator.",
    404: (
        "There is no page at this address. The link may be mistyped or out of date; start "
        "again from the start page."
    ),
    405: "This page cannot be used that way. Start again from the start page.",
}


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
    metrics = current_app.extensions.get("outreach.metrics")
    if metrics is not None and 400 <= status < 500:
        metrics.refused(code)
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
    @app.errorhandler(OutreachError)
    def _project(err: OutreachError) -> Any:
        # An error that is the user's input's fault is never reported as the server's.
        status = 400 if err.http_status == 500 and err.exit_code == 2 else err.http_status
        if status >= 500:
            log.error("request failed: %s", err)
        return _reply(status, err.code, err.message, list(err.details), err.headers)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(err: RequestEntityTooLarge) -> Any:
        limit = app.config.get("MAX_CONTENT_LENGTH") or 0
        message = f"the request body is larger than the limit of {limit // 1024} KiB"
        return _reply(413, "body_too_large", message)

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException) -> Any:
        code = (err.name or "error").lower().replace(" ", "_")
        headers = {k: v for k, v in err.get_headers() if k.lower() != "content-type"}
        message = err.description or err.name
        stock = not err.description or err.description == type(err).description
        if stock and not request.path.startswith("/api/"):
            # People read the project's words, not the framework's stock text; a page's own
            # reason (abort(400, "...")) is kept.
            message = PAGE_WORDS.get(err.code or 500, message)
        return _reply(err.code or 500, code, message, headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Any:
        log.exception("unexpected error")
        return _reply(500, "internal_error", "an unexpected error occurred; it was logged")
