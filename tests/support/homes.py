"""Homes for tests: the shared sites' shapes, private copies of them, and their databases."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kernel.home import Home, copy_home
from tests.support.postgres import Cluster

#: The service databases the tests that matter for the database run on (``on_both_databases``).
BACKENDS = ("sqlite", "postgresql")
#: Runs a test once per backend: it overrides the ``backend`` fixture (``"sqlite"`` otherwise).
on_both_databases = pytest.mark.parametrize("backend", BACKENDS)


@dataclass(frozen=True)
class Site:
    """A home with a production release, one release awaiting approval (released by
    ``analyst-1``), two scored months of outreach lists, and one user per role who can sign in
    to the pages."""

    home: Home
    database_url: str
    passwords: dict[str, str]
    awaiting: tuple[str, str]

    def user(self, role: str) -> str:
        return f"{role}-user"


@dataclass(frozen=True)
class ReviewSite:
    """A copy of a :class:`Site` with a third release: a REVIEW awaiting the board (its gate left
    groups it could not judge), ``version``, whose gate ``decision`` (an
    ``audits.gate.Decision``) names them."""

    site: Site
    version: str
    decision: Any


def copy_site(site: Site, folder: Path, database_url: str | None = None) -> Site:
    """A private copy of the site (registry and database), so tests may change it freely; its
    service database is the copied SQLite file unless ``database_url`` (``site_database``) says
    otherwise."""
    root = folder / "home"
    home = copy_home(site.home.root, root)
    url = database_url or f"sqlite:///{root / 'service.db'}"
    return Site(home, url, site.passwords, site.awaiting)


def site_database(request: pytest.FixtureRequest, backend: str) -> str | None:
    """For a copy of the site on ``backend``: ``None`` on SQLite (the copied file serves), else a
    fresh PostgreSQL database holding the site's rows."""
    if backend == "sqlite":
        return None
    template: str = request.getfixturevalue("site_template")
    cluster: Cluster = request.getfixturevalue("postgres")
    return cluster.create_database(template=template)


@dataclass(frozen=True)
class Released:
    """A release whose policy turns the evaluation arm on, with months scored for monitoring."""

    home: Home
    database_url: str
    frame: pd.DataFrame
    periods: tuple[str, ...]
    name: str

    @property
    def db(self) -> Any:
        from store.db import Database

        return Database(self.database_url)


def labels_for(released: Released, period: str, accepted: set[str] | None = None) -> pd.DataFrame:
    """The period's labels file from the synthetic ground truth (help prevents half the crises
    of those who ``accepted``)."""
    from jobs.simulation import labels_after_help

    rows = released.frame.loc[released.frame["period"].astype(str) == period]
    return labels_after_help(
        rows,
        id_column="person_id",
        time_column="period",
        label_column="crisis_6m",
        truth_column="crisis_6m_true",
        accepted=accepted or set(),
        seed=1,
    )


@dataclass(frozen=True)
class TwoReleases:
    """A home with a promoted release (production) and a failed one, of the small spec, each
    released under its own policy. Read-only: tests take a :func:`copy_home` of it."""

    home: Home
    good: Any  # lifecycle.release.ReleaseResult
    failed: Any

    @property
    def name(self) -> str:
        return str(self.good.spec.name)


def copy_released(released: Released, folder: Path) -> Released:
    """A private copy (registry, database, snapshots) that a test may change freely."""
    root = folder / "home"
    return Released(
        copy_home(released.home.root, root),
        f"sqlite:///{root / 'service.db'}",
        released.frame,
        released.periods,
        released.name,
    )


def with_first_month_labelled(released: Released, folder: Path) -> Released:
    """A private copy of ``released`` whose first month's labels are ingested, as an analyst
    would after the months pass (help prevented half the crises of those who accepted); its
    later month still waits for its labels."""
    from sqlalchemy import select

    from lifecycle.catalogue import read_report
    from model.registry import connect
    from monitoring.labels import LabelColumns, ingest
    from store.db import Outcome, QueueEntry

    own = copy_released(released, folder)
    first = own.periods[0]
    with own.db.session() as session:
        accepted = set(
            session.scalars(
                select(QueueEntry.person_id)
                .join(Outcome, Outcome.entry_id == QueueEntry.id)
                .where(QueueEntry.period == first, Outcome.status == "accepted")
            )
        )
    registry = connect(own.home)
    ingest(
        own.db,
        name=own.name,
        frame=labels_for(own, first, accepted),
        columns=LabelColumns("person_id", "period", "crisis_6m"),
        report_for=lambda audit_id: read_report(registry, audit_id),
        folder=own.home.monitoring,
        by="analyst",
    )
    return own
