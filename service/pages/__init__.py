"""Web pages for coordinators, oversight boards and analysts: server-rendered, offline, accessible.

One blueprint per audience (``coordinator``, ``oversight``, ``analyst``) plus ``account`` (sign in
and out). Access is decided by the same role table as the API (``store.accounts.ROUTE_ROLES``);
pages that show a person's data write their access-log row first, as the API does.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, redirect, url_for
from flask.typing import ResponseReturnValue
from werkzeug.middleware.proxy_fix import ProxyFix

from kernel.settings import current
from service.pages import account, analyst, coordinator, oversight, security
from service.pages import (
    after_release as after_release,  # adds /oversight/monitoring to oversight.pages
)
from service.pages import explanation_views as explanation
from service.pages import transparency as transparency  # /transparency and the records

__all__ = ["register"]

ROLE_HOME = {
    "coordinator": "coordinator.outreach_list",
    "oversight": "oversight.releases",
    "analyst": "analyst.versions",
    "admin": "account.users",
}


def register(app: Flask) -> None:
    """Add the pages, their session handling and security headers to ``app``."""
    home = app.extensions["outreach.home"]
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = security.secret_key(home.root / "service")
    app.config.setdefault("IDLE_MINUTES", 15)
    app.config.setdefault("MAX_SESSION_HOURS", 12)
    app.config.setdefault("MLFLOW_UI_URL", "http://127.0.0.1:5000")
    # Whom a person may contact about an explanation (service.person_explanation); unset: ask the
    # worker.
    app.config.setdefault("CONTACT", current().contact)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    app.session_interface = security.SessionInterface()
    proxies = int(app.config.get("PROXY_COUNT") or current().proxy_count or "0")
    if proxies > 0:  # behind a TLS-terminating proxy: trust its X-Forwarded-* headers, no more
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies
        )
    for blueprint in (account.pages, coordinator.pages, oversight.pages, analyst.pages):
        app.register_blueprint(blueprint)
    app.register_blueprint(explanation.pages)
    app.register_blueprint(transparency.pages)
    app.after_request(security.add_headers)

    @app.context_processor
    def _globals() -> dict[str, Any]:
        # The trust alarm: a banner on every page for the roles that act on it.
        return {
            "csrf_token": security.csrf_token,
            "role_home": ROLE_HOME,
            "trust_alarm": app.extensions["outreach.model"].alarm,
        }

    @app.get("/")
    def index() -> ResponseReturnValue:
        principal = security.current_principal()
        if principal is None:
            return redirect(url_for("account.login"))
        return redirect(url_for(ROLE_HOME[principal.role]))
