"""Gunicorn's own refusals in the service's error shape.

A request gunicorn refuses before the application sees it (a request line over
``limit_request_line``, too many or too large header fields, a malformed request line) would get
gunicorn's text/html page without ``X-Request-ID``. :class:`JsonErrorWorker` answers those with
the JSON body every other error has (``{"error": {"code", "message", "details"},
"request_id"}``, :mod:`service.error_handlers`) and the ``X-Request-ID`` header; everything else is
gunicorn's sync worker unchanged.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from gunicorn.http import errors as http_errors
from gunicorn.util import write_nonblock
from gunicorn.workers.sync import SyncWorker

#: gunicorn's refusal -> (status, reason phrase, stable code, message).
_REFUSALS: tuple[tuple[type[BaseException], int, str, str, str], ...] = (
    (
        http_errors.LimitRequestLine,
        400,  # gunicorn's own status for it, and the one every operation documents
        "Bad Request",
        "request_line_too_long",
        "the request line is too long (the path and query string together)",
    ),
    (
        http_errors.LimitRequestHeaders,
        431,
        "Request Header Fields Too Large",
        "headers_too_large",
        "too many request header fields, or one too large",
    ),
)
_MALFORMED = (
    http_errors.InvalidRequestLine,
    http_errors.InvalidRequestMethod,
    http_errors.InvalidHTTPVersion,
    http_errors.InvalidHeader,
    http_errors.InvalidHeaderName,
    http_errors.ObsoleteFolding,
)


def refusal(exc: BaseException) -> tuple[int, str, str, str] | None:
    """The status, reason, code and message for a request gunicorn refused, or ``None``."""
    for kind, status, reason, code, message in _REFUSALS:
        if isinstance(exc, kind):
            return status, reason, code, message
    if isinstance(exc, _MALFORMED):
        return 400, "Bad Request", "malformed_request", "the request is not valid HTTP/1.1"
    return None


def json_error(status: int, reason: str, code: str, message: str) -> bytes:
    """A whole HTTP response in the service's error shape, with a new request id."""
    request_id = uuid.uuid4().hex[:16]
    body = json.dumps(
        {"error": {"code": code, "message": message, "details": []}, "request_id": request_id}
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Request-ID: {request_id}\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


class JsonErrorWorker(SyncWorker):
    """The sync worker, with gunicorn's parse refusals answered as JSON."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        found = refusal(exc)
        if found is None:
            super().handle_error(req, client, addr, exc)
            return
        self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
        try:
            write_nonblock(client, json_error(*found))
        except Exception:  # the client went away: nothing to answer
            self.log.debug("Failed to send error message.")
