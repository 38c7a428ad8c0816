"""A model served from memory, for the service tests: no release, no MLflow, no attestation log.

``service.create_app(config, model_source=...)`` serves what it is handed (refused in production
mode). :class:`InMemorySource` hands it a :class:`lifecycle.model_source.Serving` built from a model
trained in memory (the ``trained`` fixture, a few seconds), so the tests of the API and the pages
run on the Flask test client and SQLite alone. A full release is for the tests about releases.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from flask import Flask

from kernel.home import Home
from lifecycle.model_source import NO_MODEL, ModelSource, Serving
from model.train import TrainingResult
from service import create_app
from tests.support.homes import Site
from tests.support.specs import ROLES

#: What an in-memory model's audit id and decision say (no audit report stands behind them).
AUDIT_ID = "in-memory"


class InMemorySource(ModelSource):
    """Serves the :class:`Serving` it holds (``None``: nothing), as given: no registry, no
    attestation log, no last-known-good copy. :meth:`serve` swaps in another, as a promotion
    would."""

    def __init__(self, home: Home, name: str, serving: Serving | None = None) -> None:
        super().__init__(home, name)
        self._held = serving

    def serve(self, serving: Serving | None) -> None:
        """Hold ``serving`` instead, and swap it in now."""
        self._held = serving
        self.refresh()

    def refresh(self) -> bool:
        with self._lock:
            swapped = self._current is not self._held
            self._current = self._held
        if self._held is None:
            self.code, self.problem, self.reason = "no_production", "nothing held", NO_MODEL
        else:
            self.code = self.problem = self.reason = ""
        return swapped


def serving_from(trained: TrainingResult, *, version: str = "1") -> Serving:
    """The trained run's best candidate as a served model (its bytes' sha256 as a release
    would record it)."""
    model = trained.best().scoring_model
    data = json.dumps(model.to_dict(), indent=1, sort_keys=True).encode()
    return Serving(
        trained.spec.name,
        version,
        AUDIT_ID,
        "PASS",
        model,
        artifact_sha256=hashlib.sha256(data).hexdigest(),
    )


def build_memory_site(
    folder: Path, serving: Serving, frame: pd.DataFrame, attributes: Sequence[str]
) -> Site:
    """A home without releases whose service database holds the two latest months of ``frame``
    scored by ``serving`` (group counts kept for the sensitive ``attributes``) and one user per
    role who can sign in to the pages; the coordinator sees every area."""
    from jobs.batch import score_period
    from store.accounts import add_user, set_areas
    from store.db import Database, default_url
    from store.queue import ALL_AREAS

    home = Home(folder / "home").ensure()
    url = default_url(home.root)
    db = Database(url)
    db.upgrade()
    for period in sorted(frame["period"].unique())[-2:]:
        score_period(db, serving, frame, period=str(period), attributes=attributes)
    passwords = {role: f"{role}-password-for-tests" for role in ROLES}
    for role, password in passwords.items():
        add_user(db, f"{role}-user", role, password=password)
    set_areas(db, "coordinator-user", [ALL_AREAS])
    db.engine.dispose()
    return Site(home, url, passwords, ("", ""))


def memory_app(site: Site, serving: Serving | None, config: dict[str, Any] | None = None) -> Flask:
    """An app on ``site``'s home and database serving ``serving`` from memory (``None``:
    nothing); ``config`` adds to the test settings."""
    name = serving.name if serving is not None else "individual_outreach"
    source = InMemorySource(site.home, name, serving)
    settings: dict[str, Any] = {
        "HOME": site.home,
        "DATABASE_URL": site.database_url,
        "WATCH_SECONDS": 0,
        "TESTING": True,
        **(config or {}),
    }
    return create_app(settings, model_source=source)
