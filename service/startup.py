"""One-time start-up work, done first in gunicorn's master and safe to repeat in every worker.

:func:`prepare` makes the home's folders and takes group and world access away from everything
in it, upgrades the database schema (under a lock beside an SQLite file: the first process
migrates, the others find it done), tightens an SQLite database and its journal files wherever
they are, and creates the session key. Gunicorn runs it once in the master before forking
(``service.gunicorn_conf``); each worker's ``create_app`` then repeats the same steps (the home's
top level only), which find everything in place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sqlalchemy.engine import make_url

from kernel.errors import BadInputError
from kernel.files import make_private, tighten
from kernel.home import Home

if TYPE_CHECKING:
    from lifecycle.model_source import ModelSource

#: The environment variable that names the deployment's mode.
MODE_ENV = "OUTREACH_ENV"
Mode = Literal["production", "development"]
#: The model served unless ``OUTREACH_MODEL`` names another.
DEFAULT_MODEL = "individual_outreach"


def model_name(env: Mapping[str, str]) -> str:
    """The registered model the service serves (``OUTREACH_MODEL``)."""
    return env.get("OUTREACH_MODEL", DEFAULT_MODEL)


def environment_mode(value: str | None) -> Mode:
    """The deployment's mode from ``OUTREACH_ENV``: ``production``, or ``development`` (also
    when unset or empty).

    Raises
    ------
    BadInputError
        For any other value: a mistyped "production" must not start a lenient service.
    """
    mode = (value or "").strip().lower()
    if mode in ("", "development"):
        return "development"
    if mode == "production":
        return "production"
    raise BadInputError(
        f"{MODE_ENV}={value!r} is not a mode: give 'production' or 'development' (or leave it "
        "unset for development)"
    )


def refuse_unassessed(source: ModelSource) -> None:
    """The production-mode start-up refusal: after the source's first load, raise if the
    version ``production`` names was refused because its audit's policy does not name the
    deployment's impact assessments. No model at all is not refused: the service starts not
    ready, and every later load is checked the same way
    (:class:`lifecycle.model_source.ModelSource`).

    Raises
    ------
    BadInputError
        Naming the model, the version and each missing or placeholder id.
    """
    if source.production and source.current is None and source.unassessed:
        raise BadInputError(
            f"refusing to start in production mode ({MODE_ENV}=production): {source.problem}",
            details=source.unassessed,
            code="impact_assessments_missing",
        )


def refuse_writable_key(home: Home) -> None:
    """The production-mode refusal of a verifying key the service's own user could replace.

    Whoever can write the release public key (or the folder it is in) can swap in their own key
    and re-sign the attestation logs. In production the key is pinned by its id
    (``OUTREACH_RELEASE_PUBLIC_KEY=<key id>``, from the environment the service's user cannot
    change) or read from a path this user cannot write.

    Raises
    ------
    BadInputError
        Naming the key's path and the two ways to pin it.
    """
    keys = home.signing_keys
    if keys.pinned_key_id:
        return
    path = keys.release_public
    writable = [p for p in (path, path.parent) if p.exists() and os.access(p, os.W_OK)]
    if writable or not path.exists():
        where = "is missing" if not path.exists() else f"is writable by this user ({writable[0]})"
        raise BadInputError(
            f"refusing to start in production mode ({MODE_ENV}=production): the release public "
            f"key {path} {where}, so whoever can write it can replace the verifier. Pin its id "
            "(OUTREACH_RELEASE_PUBLIC_KEY=<key id>, 'outreach keys show' prints it) or give "
            "OUTREACH_RELEASE_PUBLIC_KEY a path in a folder this user cannot write",
            code="verifying_key_writable",
        )


def check_production(home: Home, env: Mapping[str, str]) -> None:
    """What ``outreach serve`` checks before it starts any server: the mode is valid and, in
    production mode, the verifying key cannot be replaced by the service's user
    (:func:`refuse_writable_key`) and the model to serve names its impact assessments
    (:func:`refuse_unassessed`).

    Raises
    ------
    BadInputError
    """
    if environment_mode(env.get(MODE_ENV)) != "production":
        return
    refuse_writable_key(home)
    from lifecycle.model_source import ModelSource

    source = ModelSource(home, model_name(env), tracking_uri=home.tracking_server, production=True)
    source.refresh()
    refuse_unassessed(source)


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
    from service.pages.security import secret_key
    from store.db import Database

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
