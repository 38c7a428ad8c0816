"""Access-log rows the way the API writes them, for the tests of the chain; also one process of
the concurrent-append test (``tests/integration/test_service.py``), in a module of its own so
that a started process imports only this and the store, not the test module with everything it
imports."""

from __future__ import annotations

import os
from typing import Any

from store import access_log
from store.access_log import SqliteAppender
from store.db import Database


def log_row(i: int, user: str) -> dict[str, Any]:
    """The ``i``-th test row's fields (an integer id among them, as a caller might pass)."""
    return {
        "user": user,
        "role": "coordinator",
        "action": "score",
        "purpose": "outreach",
        "subject_ids": [f"p{i}", i],
        "model_version": "3",
        "request_id": f"r{i}",
        "allowed": i % 2 == 0,
    }


def append_fast(appender: SqliteAppender, i: int, *, user: str = "fast") -> str:
    """Row ``i`` through the plain-SQLite path."""
    return appender.append(**log_row(i, user))


def append_in_transaction(db: Database, i: int, user: str) -> None:
    """Row ``i`` through the library path, in a transaction of its own."""
    with db.transaction() as connection:
        access_log.append(connection, **log_row(i, user))


def append_any(db: Database, appender: SqliteAppender | None, i: int, user: str) -> None:
    """One row the way the API writes it: the plain-SQLite path, else a retried transaction."""
    if appender is not None:
        append_fast(appender, i, user=user)
        return
    access_log.retrying(lambda: append_in_transaction(db, i, user))


def appends_in_a_process(url: str, count: int, barrier: Any) -> None:
    """``count`` rows from a process of its own, as a gunicorn worker writes them, started
    together with the others at ``barrier``."""
    db = Database(url)
    appender = SqliteAppender.for_database(db)
    barrier.wait(timeout=300)
    for i in range(count):
        append_any(db, appender, i, f"process {os.getpid()}")
    db.engine.dispose()
