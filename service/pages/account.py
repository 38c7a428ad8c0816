"""Signing in and out, and the administrator's list of users."""

from __future__ import annotations

import time
from collections import defaultdict, deque

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from service.auth import check_password, end_sessions, page_user
from service.db import User
from service.pages import security
from service.pages.common import db, fmt_time

pages = Blueprint("account", __name__)

#: Failed sign-ins allowed per user name and address within ``LOCK_SECONDS`` (per app and
#: worker process). Keyed by address too, so that nobody can lock a colleague out from afar.
MAX_FAILURES, LOCK_SECONDS, MAX_TRACKED = 5, 10 * 60, 10_000


def _failures() -> dict[tuple[str, str], deque[float]]:
    found: dict[tuple[str, str], deque[float]] = current_app.extensions.setdefault(
        "outreach.login_failures", defaultdict(deque)
    )
    if len(found) > MAX_TRACKED:  # bounded memory under a flood of made-up names
        found.clear()
    return found


def _locked(key: tuple[str, str]) -> bool:
    now = time.monotonic()
    recent = _failures()[key]
    while recent and now - recent[0] > LOCK_SECONDS:
        recent.popleft()
    return len(recent) >= MAX_FAILURES


@pages.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    error = None
    status = 200
    if request.method == "POST":
        security.check_csrf(request)
        name = request.form.get("username", "").strip()[:120]
        password = request.form.get("password", "")[:1000]
        key = (name, request.remote_addr or "")
        if _locked(key):
            error = "Too many failed attempts. Please wait 10 minutes and try again."
            status = 429
        else:
            principal = check_password(db(), name, password) if name and password else None
            user = page_user(db(), name) if principal is not None else None
            if user is None:
                _failures()[key].append(time.monotonic())
                error = "The user name or password is not right."
                status = 401
            else:
                _failures().pop(key, None)
                security.sign_in(user)
                target = security.safe_next(request.args.get("next"))
                return redirect(target or url_for("index"))
    elif request.args.get("expired"):
        error = "You were signed out after a period without activity. Please sign in again."
    return render_template("login.html", error=error), status


@pages.post("/logout")
def logout() -> ResponseReturnValue:
    """Sign out here and on every other device (the user's session epoch moves on)."""
    security.check_csrf(request)
    name = session.get("user")
    if isinstance(name, str):
        end_sessions(db(), name)
    session.clear()
    flash("You are signed out.")
    return redirect(url_for("account.login"))


@pages.get("/admin/users")
@security.signed_in("users")
def users() -> ResponseReturnValue:
    with db().session() as s:
        rows = [
            {
                "name": u.name,
                "role": u.role,
                "password": bool(u.password_hash),
                "created": fmt_time(u.created_at),
            }
            for u in s.scalars(select(User).order_by(User.name))
        ]
    return render_template("admin/users.html", users=rows, principal=g.principal)
