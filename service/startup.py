"""One-time start-up work, done first in gunicorn's master and safe to repeat in every worker.

:func:`prepare` makes the home's folders and takes group and world access away from everything
in it, upgrades the database schema (under a lock beside an SQLite file: the first process
migrates, the others find it done), tightens an SQLite database and its journal files wherever
they are, and creates the session key. Gunicorn runs it once in the master before forking
(``service.gunicorn_conf``); each worker's ``create_app`` then repeats the same steps (the home's
top level only), which find everything in place.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from model.files import make_private, tighten
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

    # Once per server start, the whole tree: files another process wrote with a wider umask
    # (a notebook, a script using the library) are found however deep they are.
    make_private(home.ensure().root, deep=True)
    db = Database(database_url)
    try:
        db.upgrade()
    finally:
        db.engine.dispose()
    make_private_database(database_url)
    secret_key(home.service)
