"""One-time start-up work, safe to run in every worker at once and run first in gunicorn's master.

:func:`prepare` makes the home's folders (owner-only), upgrades the database schema (under a
lock beside an SQLite file: the first process migrates, the others find it done), takes wider
access away from an SQLite database and its journal files, and creates the session key. Gunicorn
runs it once in the master before forking (``service.gunicorn_conf``); ``create_app`` runs the
same steps, which then find everything in place.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from model.files import tighten
from model.home import Home


def sqlite_file(url: str) -> Path | None:
    """The database file of an SQLite URL (``None``: another database, or in memory)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def make_private_database(url: str) -> None:
    """Owner-only modes for an SQLite database and the files beside it (``-wal``, ``-shm``,
    the writers' lock files), wherever it lives."""
    found = sqlite_file(url)
    if found is None:
        return
    for suffix in ("", "-wal", "-shm", "-journal", ".lock"):
        tighten(found.with_name(found.name + suffix))


def prepare(home: Home, database_url: str) -> None:
    """Home folders and modes, the schema, the session key; connections closed afterwards
    (gunicorn's master forks the workers next)."""
    from service.db import Database
    from service.pages.security import secret_key

    home.ensure()
    db = Database(database_url)
    try:
        db.upgrade()
    finally:
        db.engine.dispose()
    make_private_database(database_url)
    secret_key(home.service)
