"""The outreach service: a Flask application serving verified models to coordinators and boards.

``create_app`` is the factory (gunicorn calls ``service:create_app()``); heavy resources (the
database, the verified model) are set up once per app in ``app.extensions``. Flask is imported
by the factory, not by the package: a command that reads only the service's startup rules
(``service.startup``) does not load the web framework.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from lifecycle.model_source import ModelSource

__all__ = ["create_app"]


def create_app(
    test_config: dict[str, Any] | None = None, *, model_source: ModelSource | None = None
) -> Flask:
    """Build the app. Settings come from ``test_config`` or the environment, resolved once here.

    ``model_source``: what serves the model, when the caller built it (tests serve a model held
    in memory this way: ``tests/support/memory.py``). By default, and always in production, a
    :class:`lifecycle.model_source.ModelSource` for ``MODEL_NAME`` that verifies the home's
    releases through their attestation log and the MLflow registry. Either way it is refreshed
    once here, and polled every ``WATCH_SECONDS``.

    Keys: ``HOME`` (project home), ``DATABASE_URL``, ``MODEL_NAME``, ``TRACKING_URI``,
    ``MAX_RECORDS``, ``MAX_CONTENT_LENGTH``, ``RATE_LIMIT`` (requests a minute per token),
    ``WATCH_SECONDS`` (0: no background polling), ``ENV_MODE`` (``OUTREACH_ENV``: production or
    development).

    Raises
    ------
    BadInputError
        For an unknown ``ENV_MODE``; in production mode for a ``model_source``, and when the
        production version's policy does not name its impact assessments
        (:func:`service.startup.refuse_unassessed`).
    """
    from flask import Flask

    from kernel import settings
    from kernel.errors import BadInputError
    from kernel.files import private_umask
    from kernel.home import Home
    from lifecycle.model_source import ModelSource
    from service import error_handlers as errors
    from service import pages
    from service.api.routes import RateLimiter, api
    from service.prometheus import Metrics
    from service.startup import (
        environment_mode,
        make_private_database,
        model_name,
        refuse_unassessed,
    )
    from store import access_log
    from store.attestation_heads import DatabaseAnchors
    from store.db import Database, default_url

    private_umask()  # what the service writes (database, keys, copies) is the owner's alone
    app = Flask(__name__)
    found = settings.resolve()  # the deployment's settings, resolved once
    home = Home.resolve(found.home, found)
    app.config.update(
        HOME=home,
        DATABASE_URL=home.database_url,
        MODEL_NAME=model_name(found.environment),
        TRACKING_URI=home.tracking_server,
        MAX_RECORDS=1000,
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        RATE_LIMIT=int(found.rate_limit or "6000"),
        WATCH_SECONDS=float(found.watch_seconds or "10"),
        ENV_MODE=found.mode,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]  # responses keep their field order
    if test_config:
        app.config.update(test_config)
    production = environment_mode(app.config["ENV_MODE"]) == "production"
    home = app.config["HOME"].ensure()
    logging.getLogger("outreach.service").setLevel(logging.INFO)
    db = Database(app.config["DATABASE_URL"] or default_url(home.root))
    db.upgrade()
    make_private_database(db.url)
    metrics = Metrics()
    if model_source is not None and production:
        raise BadInputError(
            "in production mode the service serves only releases it verifies itself: "
            "no model source may be handed to create_app"
        )
    source = (
        model_source
        if model_source is not None
        else ModelSource(
            home,
            app.config["MODEL_NAME"],
            tracking_uri=app.config["TRACKING_URI"],
            production=production,
            anchors=DatabaseAnchors(db),
            metrics=metrics,
        )
    )
    source.refresh()
    refuse_unassessed(source)  # production mode: a policy without its impact assessments
    if app.config["WATCH_SECONDS"]:
        source.watch(app.config["WATCH_SECONDS"])
    app.extensions.update(
        {
            "outreach.home": home,
            "outreach.db": db,
            "outreach.model": source,
            "outreach.metrics": metrics,
            "outreach.limiter": RateLimiter(app.config["RATE_LIMIT"]),
        }
    )
    access_log.for_app(app)  # checkpoint settings resolved (and checked) at start-up
    errors.register(app)
    app.register_blueprint(api)
    pages.register(app)
    return app
