"""The deployment's settings: every ``OUTREACH_*`` variable, read from the environment here only.

An entry point (the command line, ``create_app``, gunicorn's configuration) calls :func:`resolve`
once; everything below it reads :func:`current`, the same object, and never ``os.environ``.
Values are kept as the environment gives them (text, ``None`` when unset or empty): what each one
means, and the error a bad value gets, stay with the module that owns it (the token lifetime in
:mod:`store.accounts`, the access log's retention in :mod:`store.access_log.checkpoints`, the key
paths in :mod:`kernel.signing`), which receives :attr:`Settings.environment` where it takes a
mapping.

MLflow's own process settings (bounded retries against a tracking server, no telemetry, no run
URLs on stdout) are set once, by :func:`configure_mlflow`, not on every connection.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

#: Every variable the project reads, and what it sets.
VARIABLES: dict[str, str] = {
    "OUTREACH_HOME": "the project home folder (default ./.outreach)",
    "OUTREACH_TRACKING_URI": "an MLflow tracking server instead of the home's SQLite store",
    "OUTREACH_DATABASE_URL": "the service database (PostgreSQL) instead of the home's SQLite file",
    "OUTREACH_RELEASE_KEY": "the release signing key's path",
    "OUTREACH_RELEASE_PUBLIC_KEY": "the release public key (path or PEM) serving trusts",
    "OUTREACH_ACCESS_LOG_KEY": "the access-log checkpoint signing key's path",
    "OUTREACH_ENV": "the deployment's mode: production or development",
    "OUTREACH_MODEL": "the registered model the service serves",
    "OUTREACH_RATE_LIMIT": "API requests a minute per token",
    "OUTREACH_WATCH_SECONDS": "how often the service looks for a new production version",
    "OUTREACH_CONTACT": "whom a person may contact about an explanation",
    "OUTREACH_PROXY_COUNT": "reverse proxies in front of the service",
    "OUTREACH_TOKEN_DAYS": "days a new API token works",
    "OUTREACH_ACCESS_LOG_MIN_DAYS": "the access log's minimum retention in days",
    "OUTREACH_ACCESS_LOG_CHECKPOINTS": "the access log's external checkpoints file",
}

#: What MLflow is told once per process: a remote store that does not answer fails in seconds,
#: nothing calls out of this machine, and stdout stays the CLI's own (no "View run ... at: URL").
MLFLOW_ENVIRONMENT: dict[str, str] = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


@dataclass(frozen=True)
class Settings:
    """The ``OUTREACH_*`` variables as one object (``None``: unset or empty)."""

    #: The variables that were set, by name (read-only): for the functions that take a mapping.
    environment: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Settings:
        source = os.environ if env is None else env
        found = {name: source[name] for name in VARIABLES if source.get(name)}
        return cls(MappingProxyType(found))

    def get(self, name: str) -> str | None:
        if name not in VARIABLES:
            raise KeyError(f"{name} is not one of the project's settings")
        return self.environment.get(name) or None

    @property
    def home(self) -> str | None:
        return self.get("OUTREACH_HOME")

    @property
    def tracking_uri(self) -> str | None:
        return self.get("OUTREACH_TRACKING_URI")

    @property
    def database_url(self) -> str | None:
        return self.get("OUTREACH_DATABASE_URL")

    @property
    def mode(self) -> str:
        return self.get("OUTREACH_ENV") or ""

    @property
    def model(self) -> str | None:
        return self.get("OUTREACH_MODEL")

    @property
    def rate_limit(self) -> str | None:
        return self.get("OUTREACH_RATE_LIMIT")

    @property
    def watch_seconds(self) -> str | None:
        return self.get("OUTREACH_WATCH_SECONDS")

    @property
    def contact(self) -> str:
        return (self.get("OUTREACH_CONTACT") or "").strip()

    @property
    def proxy_count(self) -> str | None:
        return self.get("OUTREACH_PROXY_COUNT")

    @property
    def token_days(self) -> str | None:
        return self.get("OUTREACH_TOKEN_DAYS")


_current: Settings | None = None


def resolve(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from the environment (or ``env``) and make them :func:`current`; an
    entry point calls this once. Also sets MLflow's process settings (:func:`configure_mlflow`)."""
    global _current  # noqa: PLW0603  # the one process-wide settings object
    _current = Settings.from_environment(env)
    configure_mlflow()
    return _current


def current() -> Settings:
    """The settings the entry point resolved (resolved now if no entry point has)."""
    return _current if _current is not None else resolve()


def reset() -> None:
    """Forget the resolved settings: the next :func:`current` reads the environment again (for
    a process that runs entry points in turn, as the tests do, each with its own environment)."""
    global _current  # noqa: PLW0603
    _current = None


def configure_mlflow() -> None:
    """MLflow's process settings (:data:`MLFLOW_ENVIRONMENT`), unless the environment already
    chose them; set once per process by :func:`resolve`."""
    for name, value in MLFLOW_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
