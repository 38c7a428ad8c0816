"""What the pages share: the database, the registry, and how times are shown."""

from __future__ import annotations

from typing import Any, TypeVar

from flask import current_app

from model.registry import Registry
from store.db import Database

T = TypeVar("T")


def db() -> Database:
    return current_app.extensions["outreach.db"]


def model_name() -> str:
    return str(current_app.extensions["outreach.model"].name)


def registry() -> Registry:
    """The app's registry client: its model source's (:meth:`ModelSource.registry`), one per
    app, on the configured store."""
    return current_app.extensions["outreach.model"].registry()


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
