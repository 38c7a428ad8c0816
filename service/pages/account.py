"""Signing in and out, and the administrator's page of users.

Sign-in protection (attempts per address checked before any password is hashed, locks per name
at an address and per name from anywhere, counted in the database so every worker agrees) is
:mod:`store.signin_limits`'s; the trade-offs are in its docstring.
"""

from __future__ import annotations

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

from kernel.errors import BadInputError
from service.pages import security
from service.pages.common import db, fmt_time
from store import signin_limits as signin
from store.accounts import (
    check_password,
    disable_user,
    enable_user,
    end_sessions,
    list_users,
    page_user,
    set_areas,
)

pages = Blueprint("account", __name__)

#: The one answer to every failed sign-in: unknown name, wrong password, disabled user.
NOT_RIGHT = "The user name or password is not right."


@pages.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    error = None
    status = 200
    headers: dict[str, str] = {}
    name = ""
    if request.method == "POST":
        security.check_csrf(request)
        name = request.form.get("username", "").strip()[:120]
        if not name.isprintable():  # no user's name holds a control character (nor can a column)
            name = ""
        password = request.form.get("password", "")[:1000]
        address = request.remote_addr
        refusal = signin.before_attempt(db(), name, address)
        if refusal is not None:
            error, status = refusal.message, 429
            headers["Retry-After"] = str(refusal.retry_after)
            _count_refusal("sign_in_limited")
        else:
            principal = check_password(db(), name, password) if name and password else None
            user = page_user(db(), name) if principal is not None else None
            if user is None:
                signin.record_failure(db(), name, address)
                error, status = NOT_RIGHT, 401
                _count_refusal("sign_in_failed")
            else:
                signin.record_success(db(), name, address)
                security.sign_in(user)
                target = security.safe_next(request.args.get("next"))
                return redirect(target or url_for("index"))
    elif request.args.get("expired"):
        error = "You were signed out after a period without activity. Please sign in again."
    # The name typed stays in its field after a refusal: only the password is asked again.
    return render_template("login.html", error=error, username=name), status, headers


def _count_refusal(reason: str) -> None:
    """Sign-in refusals are rendered here, not by the error handler: count them the same way."""
    metrics = current_app.extensions.get("outreach.metrics")
    if metrics is not None:
        metrics.refused(reason)


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
    """Every user with their role, areas and tokens; areas and access can be changed here."""
    rows = [
        {
            "name": u.name,
            "role": u.role,
            "password": u.password,
            "disabled": u.disabled,
            "areas": u.areas,
            "tokens": u.active_tokens,
            "created": fmt_time(u.created_at),
        }
        for u in list_users(db())
    ]
    return render_template("admin/users.html", users=rows, principal=g.principal)


def _named() -> str:
    name = request.form.get("name", "").strip()
    if not name:
        raise BadInputError("say which user (the form's name field is empty)")
    return name


@pages.post("/admin/users/areas")
@security.signed_in("users")
def user_areas() -> ResponseReturnValue:
    """Set a coordinator's areas: one a line, or separated by commas."""
    name = _named()
    typed = request.form.get("areas", "").replace(",", "\n").splitlines()
    areas = set_areas(db(), name, [a for a in typed if a.strip()])
    flash(
        f"{name} now works in: {', '.join(areas)}."
        if areas
        else f"{name} now has no areas and sees no one on the outreach list."
    )
    return redirect(url_for("account.users"))


@pages.post("/admin/users/disable")
@security.signed_in("users")
def user_disable() -> ResponseReturnValue:
    """Disable a user: their sessions end and their API tokens are revoked."""
    name = _named()
    if name == g.principal.name:
        raise BadInputError("you cannot disable yourself; another administrator can")
    revoked = disable_user(db(), name)
    flash(
        f"{name} is disabled: signed out everywhere and {revoked} API "
        f"token{'s' if revoked != 1 else ''} revoked."
    )
    return redirect(url_for("account.users"))


@pages.post("/admin/users/enable")
@security.signed_in("users")
def user_enable() -> ResponseReturnValue:
    """Let a disabled user sign in again (their old tokens stay revoked)."""
    name = _named()
    enable_user(db(), name)
    flash(
        f"{name} may sign in again; old API tokens stay revoked "
        f"(outreach users token {name} makes a new one)."
    )
    return redirect(url_for("account.users"))
