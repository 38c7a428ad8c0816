"""What the pages share: the database, the registry, and access-logged reads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g
from sqlalchemy.orm import Session

from model.registry import Registry, connect
from service import access_log
from service.db import Database

T = TypeVar("T")
PURPOSE = "outreach"
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


def logged(action: str, ids: list[str], version: str, then: Callable[[Session], T]) -> T:
    """Write the access-log row for ``ids``, then read or write with ``then``, in one transaction.

    If the row cannot be written, nothing is shown (503).
    """
    return shown(action, lambda session: (ids, version, then(session)))


def shown(action: str, read: Callable[[Session], tuple[list[str], str, T]]) -> T:
    """Read what a page will show, and log whom it shows, in one committed transaction.

    ``read`` returns ``(person ids shown, model version, data)``; the access-log row naming
    those ids is appended in the same transaction, which commits before anything is rendered:
    if the row cannot be written, nothing is shown (503).
    """
    principal = g.principal

    def attempt() -> T:
        with db().session() as session:
            ids, version, data = read(session)
            access_log.append(
                session,
                user=principal.name,
                role=principal.role,
                action=action,
                purpose=PURPOSE,
                subject_ids=list(dict.fromkeys(ids)),
                model_version=version,
                request_id=g.request_id,
            )
        return data

    return access_log.retrying(attempt)


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
