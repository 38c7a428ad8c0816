"""What keeps the pages safe: signed session cookies, login, idle timeout, CSRF, headers.

- The session cookie is HttpOnly and SameSite=Lax always, and Secure whenever the request came over
  HTTPS (directly, or through as many proxies as ``OUTREACH_PROXY_COUNT`` says to trust).
- The signing key lives in the home folder (created once, mode 0600), so every worker and restart
  agrees on it; deleting it signs everyone out.
- A session ends after ``IDLE_MINUTES`` without a request.
- Every POST form carries a CSRF token bound to the session, compared in constant time.
- Headers: a Content-Security-Policy without inline scripts or styles, frame denial, nosniff, a
  strict referrer policy, and no caching of pages with personal data.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Request, Response, current_app, g, redirect, request, session
from flask.sessions import SecureCookieSessionInterface

from kernel.errors import BadInputError, ForbiddenError, UnavailableError
from kernel.files import create_once
from store.accounts import PageUser, Principal, page_user

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with ``Secure`` set whenever the request is HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure

    def open_session(self, app: Flask, request: Request) -> Any:
        # The JSON API authenticates by token and never uses a session: skip the cookie's
        # signature work on its hot path (Flask then gives it a null session, never saved).
        if request.path.startswith("/api/"):
            return None
        return super().open_session(app, request)


def secret_key(folder: Path) -> bytes:
    """The home's session-signing key, created on first use (readable by the owner only).

    Every worker asks at the same moment: the key appears under its name only complete (written
    beside it, then linked), so no worker reads an empty or partial key and all agree on it.
    """
    path = folder / "session_key"
    create_once(path, secrets.token_bytes(32))
    key = path.read_bytes()
    if len(key) < 32:
        raise UnavailableError(f"the session key {path} is shorter than 32 bytes; remove it")
    return key


def csrf_token() -> str:
    """The session's CSRF token (created on first use); put it in every form."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


def check_csrf(req: Request) -> None:
    """Refuse a state-changing request whose form token does not match the session's."""
    if req.method in ("GET", "HEAD", "OPTIONS"):
        return
    sent = req.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not sent or not expected or not hmac.compare_digest(str(sent), str(expected)):
        raise BadInputError(
            "This form has expired or did not come from this site. Please try again.",
            code="csrf_failed",
        )


def sign_in(user: PageUser) -> None:
    """Start a fresh session (a new cookie and CSRF token: no fixation)."""
    session.clear()
    session.permanent = False
    now = time.time()
    session.update(
        user=user.principal.name,
        epoch=user.epoch,
        uid=user.uid,
        since=now,
        seen=now,
        csrf=secrets.token_urlsafe(32),
    )


def current_principal() -> Principal | None:
    """The signed-in user, or ``None``.

    A session ends after ``IDLE_MINUTES`` without a request, ``MAX_SESSION_HOURS`` after
    signing in, or when the user's epoch moves on (signed out elsewhere, a new password, the
    user removed). The role is read from the database on every request, never from the cookie.
    """
    name, epoch = session.get("user"), session.get("epoch")
    since, seen = session.get("since"), session.get("seen")
    if not isinstance(name, str) or not isinstance(epoch, int):
        return None
    if not isinstance(since, int | float) or not isinstance(seen, int | float):
        return None
    config = current_app.config
    now = time.time()
    if now - seen > config["IDLE_MINUTES"] * 60 or now - since > config["MAX_SESSION_HOURS"] * 3600:
        session.clear()
        g.session_expired = True
        return None
    user = page_user(current_app.extensions["outreach.db"], name)
    if user is None or user.epoch != epoch or user.uid != session.get("uid"):
        session.clear()
        return None
    session["seen"] = now
    return user.principal


def signed_in(route: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A page for signed-in users whose role may use ``route`` (``store.accounts.ROUTE_ROLES``)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal()
            if principal is None:
                return redirect(_login_url())
            g.principal = principal  # a refusal page shows the user's own menu and way back
            if not principal.may(route):
                raise ForbiddenError(f"This page is not open to the {principal.role} role.")
            check_csrf(request)
            return view(*args, **kwargs)

        return wrapped

    return decorate


def _login_url() -> str:
    from flask import url_for

    expired = 1 if getattr(g, "session_expired", False) else None
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return url_for("account.login", next=target, expired=expired)


def safe_next(target: str | None) -> str | None:
    """Only same-site paths are followed after signing in (no open redirects).

    Browsers drop tabs and newlines inside URLs, so ``/\t/evil.test`` would become
    ``//evil.test``: control characters and backslashes are refused outright.
    """
    if not target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target) or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def add_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.blueprint in ("coordinator", "oversight", "analyst", "account"):
        response.headers["Cache-Control"] = "no-store"
    return response
