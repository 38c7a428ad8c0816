"""The project home folder: where the MLflow store, artifacts and service data live.

Nothing here runs at import time; the entry point resolves a :class:`Home` once and passes it on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from model.signing import KeyPaths

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

    @classmethod
    def resolve(cls, explicit: str | os.PathLike[str] | None = None) -> Home:
        """Return the home given explicitly, else ``$OUTREACH_HOME``, else ``./.outreach``;
        key paths from the environment (:meth:`KeyPaths.resolve`)."""
        chosen = explicit or os.environ.get(HOME_ENV) or DEFAULT_HOME
        root = Path(chosen).expanduser().resolve()
        return cls(root, KeyPaths.resolve(root / "keys", os.environ))

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
        return f"sqlite:///{self.mlflow_db}"

    @property
    def artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def audits(self) -> Path:
        return self.root / "audits"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def keys(self) -> Path:
        """Signing keys (created 0600 on first use; see :mod:`model.signing`)."""
        return self.root / "keys"

    def ensure(self) -> Home:
        """Create the folders this home needs; returns ``self``."""
        for folder in (self.root, self.artifacts, self.audits, self.data):
            folder.mkdir(parents=True, exist_ok=True)
        return self
