"""What the pages share: the database, the registry, and how times are shown."""

from __future__ import annotations

import threading
from typing import Any, TypeVar

from flask import current_app

from model.registry import Registry, connect
from store.db import Database

T = TypeVar("T")
_registry_lock = threading.Lock()


def db() -> Database:
    return current_app.extensions["outreach.db"]


def model_name() -> str:
    return str(current_app.extensions["outreach.model"].name)


def registry() -> Registry:
    """One registry client per app (creating MLflow stores per request is slow)."""
    with _registry_lock:
        found = current_app.extensions.get("outreach.registry")
        if found is None:
            found = connect(
                current_app.extensions["outreach.home"],
                tracking_uri=current_app.config.get("TRACKING_URI"),
            )
            current_app.extensions["outreach.registry"] = found
    return found


def versions_now() -> list[dict[str, Any]]:
    """Every registered version with its state now, from the signed statements
    (:func:`lifecycle.verified_loading.version_states`), never from registry tags."""
    from lifecycle.verified_loading import version_states

    return version_states(registry(), trust=current_app.extensions["outreach.model"].trust())


def fmt_time(value: Any) -> str:
    """A timestamp as people read it: ``2026-11-25 09:14 UTC``."""
    if value is None:
        return ""
    if isinstance(value, int | float):
        from datetime import UTC, datetime

        value = datetime.fromtimestamp(value / 1000, UTC)
    if isinstance(value, str):
        return value.replace("T", " ")[:16] + " UTC"
    return f"{value:%Y-%m-%d %H:%M} UTC"
