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

from service.auth import check_password
from service.db import User
from service.pages import security
from service.pages.common import db, fmt_time

pages = Blueprint("account", __name__)

#: Failed sign-ins allowed per user name within ``LOCK_SECONDS`` (per app and worker process).
MAX_FAILURES, LOCK_SECONDS = 5, 15 * 60


def _failures() -> dict[str, deque[float]]:
    found: dict[str, deque[float]] = current_app.extensions.setdefault(
        "outreach.login_failures", defaultdict(deque)
    )
    return found


def _locked(name: str) -> bool:
    now = time.monotonic()
    recent = _failures()[name]
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
        if _locked(name):
            error = "Too many failed attempts for this user. Please wait 15 minutes."
            status = 429
        else:
            principal = check_password(db(), name, password) if name and password else None
            if principal is None:
                _failures()[name].append(time.monotonic())
                error = "The user name or password is not right."
                status = 401
            else:
                _failures().pop(name, None)
                security.sign_in(principal)
                target = security.safe_next(request.args.get("next"))
                return redirect(target or url_for("index"))
    elif request.args.get("expired"):
        error = "You were signed out after a period without activity. Please sign in again."
    return render_template("login.html", error=error), status


@pages.post("/logout")
def logout() -> ResponseReturnValue:
    security.check_csrf(request)
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
