"""The project home folder: where the MLflow store, artifacts and service data live.

Nothing here runs at import time; the entry point resolves a :class:`Home` once and passes it on.
The home holds personal data (the service database) and keys: it is the owner's alone, folder
0700 and files 0600 (:meth:`Home.ensure` takes wider access away from a home made before).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kernel.files import make_private
from kernel.settings import Settings, current
from kernel.signing import KeyPaths

DEFAULT_HOME = ".outreach"
HOME_ENV = "OUTREACH_HOME"


@dataclass(frozen=True)
class Home:
    """Paths under one project home folder.

    Parameters
    ----------
    root : Path
        The folder; created by :meth:`ensure` only, never on construction.
    """

    root: Path
    #: Where the signing keys are, when the environment names them (else under ``keys/``).
    key_paths: KeyPaths | None = None
    #: An MLflow tracking server (``OUTREACH_TRACKING_URI``) instead of the home's SQLite store.
    tracking_server: str | None = None
    #: The service's database (``OUTREACH_DATABASE_URL``) instead of the home's SQLite file.
    database_url: str | None = None

    @classmethod
    def resolve(
        cls, explicit: str | os.PathLike[str] | None = None, settings: Settings | None = None
    ) -> Home:
        """The deployment's home, resolved once by an entry point (the CLI, ``create_app``) from
        its settings (:func:`kernel.settings.current` unless given): the home given explicitly,
        else ``$OUTREACH_HOME``, else ``./.outreach``; key paths (:meth:`KeyPaths.resolve`),
        tracking URI and database URL."""
        found = settings or current()
        chosen = explicit or found.home or DEFAULT_HOME
        root = Path(chosen).expanduser().resolve()
        return cls(
            root,
            KeyPaths.resolve(root / "keys", found.environment),
            found.tracking_uri,
            found.database_url,
        )

    @property
    def signing_keys(self) -> KeyPaths:
        return self.key_paths or KeyPaths.resolve(self.keys, {})

    @property
    def attestations(self) -> Path:
        """Signed release attestations, one log per registered model."""
        return self.root / "attestations"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def tracking_uri(self) -> str:
        """The MLflow store: the configured server, else the home's SQLite file."""
        return self.tracking_server or f"sqlite:///{self.mlflow_db}"

    @property
    def artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def monitoring(self) -> Path:
        """Scored-period snapshots and ingested labels (owner-only Parquet files)."""
        return self.root / "monitoring"

    @property
    def audits(self) -> Path:
        return self.root / "audits"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def keys(self) -> Path:
        """Signing keys (created 0600 on first use; see :mod:`kernel.signing`)."""
        return self.root / "keys"

    @property
    def service(self) -> Path:
        """The service's own files: session key, last-known-good copies, metrics, locks."""
        return self.root / "service"

    @property
    def metrics(self) -> Path:
        """prometheus-client's multiprocess folder under gunicorn (emptied at every start)."""
        return self.service / "metrics"

    def ensure(self) -> Home:
        """Create the folders this home needs (0700), take group and world access away from
        what is there (all of it if the home itself was open); returns ``self``."""
        for folder in (self.root, self.artifacts, self.audits, self.data):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        make_private(self.root)
        return self


def copy_home(source: Path, to: Path, *, fresh_database: bool = False) -> Home:
    """A private copy of a home (``to`` must not exist), its MLflow artifacts included;
    ``fresh_database``: without any service state (database, session key, last-known-good
    copy), as on a first start.

    The MLflow store records absolute artifact locations, so a plain copy of the folder still
    reads and writes the original's artifacts; here every path under ``source`` in the copied
    store is rewritten to the copy's, so the copy reads and writes its own.
    """
    import shutil
    import sqlite3

    skip = shutil.ignore_patterns("service", "service.db*") if fresh_database else None
    shutil.copytree(source, to, ignore=skip)
    store = to / "mlflow.db"
    if store.exists():
        old, new = str(source.resolve()), str(to.resolve())
        connection = sqlite3.connect(store)
        try:
            with connection:
                tables = [
                    row[0]
                    for row in connection.execute(
                        "SELECT name FROM sqlite_master WHERE type='table'"
                    )
                ]
                for table in tables:
                    columns = connection.execute(f'PRAGMA table_info("{table}")').fetchall()
                    for column in (
                        c[1] for c in columns if str(c[2]).upper().startswith(("VARCHAR", "TEXT"))
                    ):
                        connection.execute(
                            f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                            f'WHERE instr("{column}", ?) > 0',
                            (old, new, old),
                        )
        finally:
            connection.close()
    return Home(to)
