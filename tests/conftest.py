"""Shared fixtures: specs, seeded synthetic populations, a trained tiny experiment, MLflow homes."""

from __future__ import annotations

import gc
import json
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from model.data import Dataset, validate
from model.home import Home
from model.spec import ExperimentSpec, load_spec, parse_spec
from model.synthetic import generate_preset
from model.train import TrainingResult, train
from tests.postgres import Cluster, copy_rows, start_cluster

ROOT = Path(__file__).resolve().parent.parent
ROLES = ("coordinator", "analyst", "oversight", "admin")
INDIVIDUAL_SPEC = ROOT / "experiments" / "individual_outreach.toml"
NEIGHBOURHOOD_SPEC = ROOT / "experiments" / "neighbourhood_outreach.toml"

#: Small, fast candidates for tests: one of each family.
FAST_CANDIDATES = [
    {"name": "logistic", "family": "logistic", "grid": {"C": [1.0]}},
    {
        "name": "boosted",
        "family": "boosted_additive",
        "grid": {"max_iter": [40], "max_leaf_nodes": [6]},
    },
]


def spec_mapping(path: Path = INDIVIDUAL_SPEC) -> dict[str, Any]:
    """A spec file as a mutable mapping, for tests that derive variants."""
    return tomllib.loads(path.read_text())


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return repr(value)


def write_toml(raw: dict[str, Any], path: Path) -> Path:
    """Write a spec or policy mapping as TOML (tables and arrays of tables; enough for tests)."""
    lines = [
        f"{k} = {_toml_value(v)}"
        for k, v in raw.items()
        if not isinstance(v, dict | list)
        or (isinstance(v, list) and not (v and isinstance(v[0], dict)))
    ]
    for key, value in raw.items():
        if isinstance(value, dict):
            lines.append(f"\n[{key}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in value.items()]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                lines.append(f"\n[[{key}]]")
                lines += [f"{k} = {_toml_value(v)}" for k, v in item.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def fast_mapping(path: Path = INDIVIDUAL_SPEC, **overrides: Any) -> dict[str, Any]:
    raw = spec_mapping(path)
    raw["candidates"] = FAST_CANDIDATES
    raw["validation"] = {"splits": 2, "step_months": 2, "min_train_periods": 4}
    raw.pop("mitigation", None)
    raw.update(overrides)
    return raw


def fast_spec(path: Path = INDIVIDUAL_SPEC, **overrides: Any) -> ExperimentSpec:
    return parse_spec(fast_mapping(path, **overrides), source_path=str(path))


#: The modules that take longest (servers started, fuzzing, releases), collected first. `make
#: test` spreads whole modules over two processes (pytest-xdist, ``--dist loadfile``), which take
#: them in collection order: starting the long ones early keeps both processes busy to the end.
LONG_FIRST = (
    "test_clean_starts.py",
    "test_mlflow_server.py",
    "test_fuzz.py",
    "test_operations.py",
    "test_browser.py",
    "test_service.py",
    "test_pages.py",
    "test_cli.py",
    "test_withdraw_under_load.py",
    "test_release.py",
    "test_attestation.py",
    "test_api_inputs.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long modules first (:data:`LONG_FIRST`), the rest in their usual order."""
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


#: The service databases the tests that matter for the database run on (``on_both_databases``).
BACKENDS = ("sqlite", "postgresql")
#: Runs a test once per backend: it overrides the ``backend`` fixture (``"sqlite"`` otherwise).
on_both_databases = pytest.mark.parametrize("backend", BACKENDS)


@pytest.fixture
def backend() -> str:
    """The service database's kind; tests marked ``on_both_databases`` get each in turn."""
    return "sqlite"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """A throwaway PostgreSQL cluster on loopback for the whole run (``tests/postgres.py``).

    Started on first use, stopped and removed at the end; a cluster that cannot start fails the
    tests that need it (never a skip)."""
    try:
        cluster = start_cluster()
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)
    yield cluster
    # Apps the tests made are gone, but their cycles may still hold them (and the access-log
    # checkpoint thread each keeps while its app lives): collect them before the server stops.
    gc.collect()
    cluster.stop()


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty service database on the test's backend (no schema yet: the app migrates it)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'service.db'}"
    cluster: Cluster = request.getfixturevalue("postgres")
    return cluster.create_database()


@pytest.fixture(scope="session")
def individual_spec() -> ExperimentSpec:
    return load_spec(INDIVIDUAL_SPEC)


@pytest.fixture(scope="session")
def small_spec() -> ExperimentSpec:
    return fast_spec()


@pytest.fixture(scope="session")
def population() -> pd.DataFrame:
    """A seeded individual population: 2,000 people over 20 months."""
    return generate_preset(unit="individual", rows=40_000, seed=3, periods=20)


@pytest.fixture(scope="session")
def dataset(population: pd.DataFrame, small_spec: ExperimentSpec) -> Dataset:
    return validate(population, small_spec)


@pytest.fixture(scope="session")
def trained(small_spec: ExperimentSpec, dataset: Dataset) -> TrainingResult:
    return train(small_spec, dataset)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


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


@pytest.fixture(scope="session")
def site(
    tmp_path_factory: pytest.TempPathFactory, small_spec: ExperimentSpec, dataset: Dataset
) -> Site:
    from audits.release import read_report, release
    from model.registry import connect
    from service.auth import add_user, set_areas
    from service.batch import score_period
    from service.db import Database, default_url
    from service.loader import ModelSource
    from service.monitoring import audited_attributes
    from service.queue import ALL_AREAS
    from tests.test_release import LENIENT, policy_text

    home = Home(tmp_path_factory.mktemp("site") / "home")
    registry = connect(home)
    first = release(small_spec, dataset, registry, policy=policy_text(**LENIENT))
    assert first.promoted
    second = release(
        small_spec,
        dataset,
        registry,
        policy=policy_text(**LENIENT, **{"required = false": "required = true"}),
        released_by="analyst-1",
    )
    summary = second.summary()
    assert summary["awaiting_approval"], summary
    url = default_url(home.root)
    db = Database(url)
    db.upgrade()
    source = ModelSource(home, small_spec.name)
    source.refresh()
    serving = source.current
    assert serving is not None
    attributes = audited_attributes(read_report(registry, serving.audit_id))
    frame = dataset.source_frame()
    for period in sorted(frame["period"].unique())[-2:]:
        score_period(db, serving, frame, period=str(period), attributes=attributes)
    passwords = {role: f"{role}-password-for-tests" for role in ROLES}
    for role, password in passwords.items():
        add_user(db, f"{role}-user", role, password=password)
    set_areas(db, "coordinator-user", [ALL_AREAS])
    return Site(home, url, passwords, (summary["registered_model"], str(summary["version"])))


def copy_site(site: Site, folder: Path, database_url: str | None = None) -> Site:
    """A private copy of the site (registry and database), so tests may change it freely; its
    service database is the copied SQLite file unless ``database_url`` (``site_database``) says
    otherwise."""
    root = folder / "home"
    home = copy_home(site.home.root, root)
    url = database_url or f"sqlite:///{root / 'service.db'}"
    return Site(home, url, site.passwords, site.awaiting)


@pytest.fixture(scope="session")
def site_template(site: Site, postgres: Cluster) -> str:
    """A PostgreSQL database holding the site's service rows (migrated, then copied row by row
    with their ids), used only as the template of each test's copy (``site_database``)."""
    from service.db import Database

    url = postgres.create_database()
    target = Database(url)
    target.upgrade()
    target.engine.dispose()
    copy_rows(site.database_url, url)
    return url.rsplit("/", 1)[1]


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
        from service.db import Database

        return Database(self.database_url)


def labels_for(released: Released, period: str, accepted: set[str] | None = None) -> pd.DataFrame:
    """The period's labels file from the synthetic ground truth (help prevents half the crises
    of those who ``accepted``)."""
    from service.simulation import labels_after_help

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


@pytest.fixture(scope="session")
def released(
    tmp_path_factory: pytest.TempPathFactory, small_spec: ExperimentSpec, dataset: Dataset
) -> Released:
    """A release whose policy turns the evaluation arm on (10%); its two latest months scored
    for monitoring (lottery, snapshot, estimates, drift), outcomes recorded by the demo's rules.
    Treat as read-only: copy the home to change it (``copy_released``)."""
    from audits.catalogue import read_report
    from audits.release import release
    from model.registry import connect
    from service.auth import add_user
    from service.batch import score_period
    from service.db import Database, default_url
    from service.loader import ModelSource
    from service.periods import Monitoring
    from service.simulation import record_outcomes
    from tests.test_release import LENIENT, policy_text

    home = Home(tmp_path_factory.mktemp("after") / "home")
    policy = policy_text(**LENIENT, **{"share = 0.0": "share = 0.1"})
    assert policy.evaluation.share == 0.1
    registry = connect(home)
    assert release(small_spec, dataset, registry, policy=policy).promoted
    url = default_url(home.root)
    db = Database(url)
    db.upgrade()
    source = ModelSource(home, small_spec.name)
    source.refresh()
    serving = source.current
    assert serving is not None, source.problem
    monitoring = Monitoring.from_report(home.monitoring, read_report(registry, serving.audit_id))
    frame = dataset.source_frame()
    periods = tuple(str(p) for p in sorted(frame["period"].unique())[-2:])
    add_user(db, "demo-coordinator", "coordinator")
    for number, period in enumerate(periods):
        score_period(db, serving, frame, period=period, monitoring=monitoring)
        record_outcomes(
            db,
            model=small_spec.name,
            period=period,
            rows=frame.loc[frame["period"].astype(str) == period],
            id_column="person_id",
            coordinator="demo-coordinator",
            seed=number,
        )
    return Released(home, url, frame, periods, small_spec.name)


def copy_home(source: Path, to: Path, *, fresh_database: bool = False) -> Home:
    """A private copy of a home (``to`` must not exist), its MLflow artifacts included;
    ``fresh_database``: without any service state (database, session key, last-known-good
    copy), as on a first start.

    The MLflow store records absolute artifact locations, so a plain copy of the folder still
    reads and writes the original's artifacts; here every path under ``source`` in the copied
    store is rewritten to the copy's, so a test may change anything in it.
    """
    import shutil
    import sqlite3

    skip = shutil.ignore_patterns("service", "service.db*") if fresh_database else None
    shutil.copytree(source, to, ignore=skip)
    store = to / "mlflow.db"
    if store.exists():
        old, new = str(source.resolve()), str(to.resolve())
        with sqlite3.connect(store) as connection:
            tables = [
                row[0]
                for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
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
        connection.close()
    return Home(to)


@dataclass(frozen=True)
class TwoReleases:
    """A home with a promoted release (production) and a failed one, of the small spec, each
    released under its own policy. Read-only: tests take a :func:`copy_home` of it."""

    home: Home
    good: Any  # audits.release.ReleaseResult
    failed: Any

    @property
    def name(self) -> str:
        return str(self.good.spec.name)


@pytest.fixture(scope="session")
def two_releases(
    tmp_path_factory: pytest.TempPathFactory, small_spec: ExperimentSpec, dataset: Dataset
) -> TwoReleases:
    from audits.release import release
    from model.registry import connect
    from tests.test_release import LENIENT, STRICT, policy_text

    home = Home(tmp_path_factory.mktemp("two-releases") / "home")
    registry = connect(home)
    good = release(small_spec, dataset, registry, policy=policy_text(**LENIENT))
    assert good.promoted
    failed = release(small_spec, dataset, registry, policy=policy_text(**STRICT))
    assert failed.decision == "FAIL"
    return TwoReleases(home, good, failed)


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
