"""Shared fixtures: specs, seeded synthetic populations, a trained tiny experiment, MLflow homes.

Helpers (specs, policies, copies of homes, sign-in) live in :mod:`tests.support`."""

from __future__ import annotations

import gc
import os
import pickle
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from kernel import settings
from kernel.files import file_lock, write_atomically
from kernel.home import Home
from lifecycle.model_source import Serving
from lifecycle.verified_loading import trust_for
from model.data import Dataset, validate
from model.spec import ExperimentSpec, load_spec
from model.synthetic import generate_preset
from model.train import TrainingResult, train
from tests.support.homes import (
    Released,
    ReviewSite,
    Site,
    TwoReleases,
    copy_home,
    copy_released,
    copy_site,
    with_first_month_labelled,
)
from tests.support.memory import build_memory_site, serving_from
from tests.support.postgres import Cluster, copy_rows, start_cluster
from tests.support.specs import INDIVIDUAL_SPEC, LENIENT, ROLES, STRICT, fast_spec, policy_text

T = TypeVar("T")

#: The test layers, each a folder of ``tests/`` whose tests get its marker (``-m unit`` ...):
#: ``unit``: no MLflow, database, process or network; ``service``: the Flask test client and
#: SQLite, the model served from memory (``tests/support/memory.py``); ``integration``: real
#: releases, MLflow, PostgreSQL; ``system``: servers, the browser, Spark, fuzzing, the README.
#: ``make check`` runs the first two, ``make test`` all four.
LAYERS = ("unit", "service", "integration", "system")
TESTS = Path(__file__).resolve().parent

#: The JVM options of every Spark the tests start (in this process, the CLI's, the benchmarks'
#: smoke run), read by Spark's launcher: the tests' Spark jobs are seconds long, and the JVM's
#: optimising compiler and parallel collector spent more CPU than the jobs did. The client
#: compiler only, and one collector thread: the same jobs, about half the CPU (30.5 against 16.7
#: CPU-seconds for a session and two small scorings; tests/system/test_spark.py 86 s -> 67 s,
#: 2026-12-08). A run that sets SPARK_SUBMIT_OPTS keeps its own.
SPARK_TEST_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
os.environ.setdefault("SPARK_SUBMIT_OPTS", SPARK_TEST_JVM)

#: One BLAS and OpenMP thread per test process (this one, and every server, CLI and benchmark
#: process the tests start), as ``outreach serve`` runs its workers. ``make test`` already keeps
#: both cores busy with two processes; a second BLAS thread in each only waited for a core,
#: spinning: the proxy check of one release (16 logistic fits on 30,000 rows) took 13.3
#: CPU-seconds and 11.4 s with two threads on this busy machine, 2.1 and 2.1 s with one, with
#: the same results (2026-12-08). A run that sets these variables keeps its own.
TEST_THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
for _variable, _threads in TEST_THREADS.items():
    os.environ.setdefault(_variable, _threads)
# This process loaded its BLAS and OpenMP with numpy before reading these; children read them.
threadpool_limits(
    limits={
        "blas": int(os.environ["OPENBLAS_NUM_THREADS"]),
        "openmp": int(os.environ["OMP_NUM_THREADS"]),
    }
)

#: The modules that take longest (servers started, fuzzing, releases), collected first. `make
#: test` spreads whole modules over two processes (pytest-xdist, ``--dist loadfile``), which take
#: them in collection order: starting the long ones early keeps both processes busy to the end.
#: ``test_missing`` and ``test_feedback`` train and release models of their own (about 4 and 3
#: minutes in one process on a loaded machine, 2026-12-07), more than most modules listed above.
LONG_FIRST = (
    "system/test_bench_smoke.py",
    "system/test_clean_starts.py",
    "system/test_mlflow_server.py",
    "system/test_fuzz.py",
    "system/test_operations.py",
    "system/test_browser.py",
    "integration/test_service.py",
    "integration/test_pages.py",
    "integration/test_cli.py",
    "system/test_withdraw_under_load.py",
    "integration/test_release.py",
    "integration/test_missing.py",
    "integration/test_feedback.py",
    "integration/test_attestation.py",
)


def layer_of(path: Path) -> str:
    """The layer a test file belongs to: the folder of ``tests/`` it is in."""
    parts = path.resolve().relative_to(TESTS).parts
    if len(parts) < 2 or parts[0] not in LAYERS:
        raise pytest.UsageError(
            f"{path}: a test file belongs in one of tests/{{{','.join(LAYERS)}}}/ (its layer)"
        )
    return parts[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test marked with its layer; the long modules first (:data:`LONG_FIRST`), the rest
    in their usual order."""
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    for item in items:
        item.add_marker(getattr(pytest.mark, layer_of(item.path)))
    items.sort(
        key=lambda item: rank.get(item.path.resolve().relative_to(TESTS).as_posix(), len(rank))
    )


@pytest.fixture(autouse=True)
def _settings_of_this_test() -> Iterator[None]:
    """Each test's OUTREACH_* settings come from its own environment: an entry point run by an
    earlier test (the CLI, create_app) resolved the settings of that test's environment."""
    settings.reset()
    yield
    settings.reset()


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


@pytest.fixture(scope="session")
def in_memory(trained: TrainingResult) -> Serving:
    """The small spec's best candidate, served from memory (``tests/support/memory.py``)."""
    return serving_from(trained)


@pytest.fixture(scope="session")
def memory_site(
    tmp_path_factory: pytest.TempPathFactory,
    in_memory: Serving,
    small_spec: ExperimentSpec,
    dataset: Dataset,
) -> Site:
    """A site without releases (no MLflow): two months scored by :func:`in_memory`, one user per
    role. Read-only: tests take a ``copy_site`` of it and serve it with ``memory_app``."""
    return build_memory_site(
        tmp_path_factory.mktemp("memory-site"),
        in_memory,
        dataset.source_frame(),
        small_spec.sensitive_attributes,
    )


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], T]
) -> tuple[T, bool]:
    """What ``build(folder)`` returns, built once per run: under pytest-xdist the first worker
    to ask builds it into the run's shared folder (``getbasetemp().parent``) under a lock and
    keeps the result there (pickled); the others wait for it and load it. Returns the result
    and whether it is shared (then every worker takes a private copy of what is on disk, so
    that no test sees another process's changes). One process: built in its own folder.
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return build(tmp_path_factory.mktemp(name)), False
    root = tmp_path_factory.getbasetemp().parent / "built-once"
    kept = root / f"{name}.pickle"
    with file_lock(root / f"{name}.lock"):
        if not kept.exists():
            folder = root / name
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed earlier in the run
            folder.mkdir(parents=True)
            write_atomically(kept, pickle.dumps(build(folder)))
    return pickle.loads(kept.read_bytes()), True


@pytest.fixture(scope="session")
def site(
    tmp_path_factory: pytest.TempPathFactory, small_spec: ExperimentSpec, dataset: Dataset
) -> Site:
    """See :class:`tests.support.homes.Site`; built once per run, a private copy per worker."""
    built, shared = built_once(
        tmp_path_factory, "site", lambda folder: _build_site(folder, small_spec, dataset)
    )
    return copy_site(built, tmp_path_factory.mktemp("site")) if shared else built


def _build_site(folder: Path, small_spec: ExperimentSpec, dataset: Dataset) -> Site:
    from jobs.batch import score_period
    from lifecycle.model_source import ModelSource
    from lifecycle.release import read_report, release
    from model.registry import connect
    from monitoring.group_shares import audited_attributes
    from store.accounts import add_user, set_areas
    from store.db import Database, default_url
    from store.queue import ALL_AREAS

    home = Home(folder / "home")
    registry = connect(home)
    first = release(
        small_spec, dataset, registry, policy=policy_text(**LENIENT), trust=trust_for(registry.home)
    )
    assert first.promoted
    second = release(
        small_spec,
        dataset,
        registry,
        policy=policy_text(**LENIENT, **{"required = false": "required = true"}),
        released_by="analyst-1",
        trust=trust_for(registry.home),
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


@pytest.fixture(scope="session")
def site_template(site: Site, postgres: Cluster) -> str:
    """A PostgreSQL database holding the site's service rows (migrated, then copied row by row
    with their ids), used only as the template of each test's copy (``site_database``)."""
    from store.db import Database

    url = postgres.create_database()
    target = Database(url)
    target.upgrade()
    target.engine.dispose()
    copy_rows(site.database_url, url)
    return url.rsplit("/", 1)[1]


@pytest.fixture(scope="session")
def released(
    tmp_path_factory: pytest.TempPathFactory, small_spec: ExperimentSpec, dataset: Dataset
) -> Released:
    """A release whose policy turns the evaluation arm on (10%); its two latest months scored
    for monitoring (lottery, snapshot, estimates, drift), outcomes recorded by the demo's rules.
    Treat as read-only: copy the home to change it (``copy_released``). Built once per run, a
    private copy per worker."""
    built, shared = built_once(
        tmp_path_factory, "after", lambda folder: _build_released(folder, small_spec, dataset)
    )
    return copy_released(built, tmp_path_factory.mktemp("after")) if shared else built


def _build_released(folder: Path, small_spec: ExperimentSpec, dataset: Dataset) -> Released:
    from jobs.batch import score_period
    from jobs.simulation import record_outcomes
    from lifecycle.catalogue import read_report
    from lifecycle.model_source import ModelSource
    from lifecycle.release import release
    from model.registry import connect
    from monitoring.periods import Monitoring
    from store.accounts import add_user
    from store.db import Database, default_url

    home = Home(folder / "home")
    policy = policy_text(**LENIENT, **{"share = 0.0": "share = 0.1"})
    assert policy.evaluation.share == 0.1
    registry = connect(home)
    assert release(
        small_spec, dataset, registry, policy=policy, trust=trust_for(registry.home)
    ).promoted
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


@pytest.fixture(scope="session")
def two_releases(
    tmp_path_factory: pytest.TempPathFactory, small_spec: ExperimentSpec, dataset: Dataset
) -> TwoReleases:
    """See :class:`tests.support.homes.TwoReleases`; built once per run, a private copy of the
    home per worker."""
    built, shared = built_once(
        tmp_path_factory,
        "two-releases",
        lambda folder: _build_two_releases(folder, small_spec, dataset),
    )
    if not shared:
        return built
    home = copy_home(built.home.root, tmp_path_factory.mktemp("two-releases") / "home")
    return TwoReleases(home, built.good, built.failed)


def _build_two_releases(folder: Path, small_spec: ExperimentSpec, dataset: Dataset) -> TwoReleases:
    from lifecycle.release import release
    from model.registry import connect

    home = Home(folder / "home")
    registry = connect(home)
    good = release(
        small_spec, dataset, registry, policy=policy_text(**LENIENT), trust=trust_for(registry.home)
    )
    assert good.promoted
    failed = release(
        small_spec, dataset, registry, policy=policy_text(**STRICT), trust=trust_for(registry.home)
    )
    assert failed.decision == "FAIL"
    return TwoReleases(home, good, failed)


@pytest.fixture(scope="session")
def review_site(
    tmp_path_factory: pytest.TempPathFactory,
    site: Site,
    small_spec: ExperimentSpec,
    dataset: Dataset,
) -> ReviewSite:
    """See :class:`tests.support.homes.ReviewSite`: the site with a third release, a REVIEW
    awaiting the board. Read-only: tests take a ``copy_site`` of its site. Built once per run, a
    private copy per worker."""
    built, shared = built_once(
        tmp_path_factory,
        "review-site",
        lambda folder: _build_review_site(folder, site, small_spec, dataset),
    )
    if not shared:
        return built
    own = copy_site(built.site, tmp_path_factory.mktemp("review-site"))
    return ReviewSite(own, built.version, built.decision)


def _build_review_site(
    folder: Path, site: Site, small_spec: ExperimentSpec, dataset: Dataset
) -> ReviewSite:
    from lifecycle.release import release
    from model.registry import connect

    own = copy_site(site, folder)
    review = release(
        small_spec,
        dataset,
        connect(own.home),
        policy=policy_text(**{"bootstrap_resamples = 1000": "bootstrap_resamples = 200"}),
        trust=trust_for(own.home),
    )
    assert review.decision == "REVIEW" and review.awaiting_approval and not review.promoted
    return ReviewSite(own, str(review.chosen.candidate.version), review.chosen.outcome.decision)


@pytest.fixture(scope="session")
def labelled(tmp_path_factory: pytest.TempPathFactory, released: Released) -> Released:
    """:func:`released` with its first month's labels ingested, its later month still waiting
    (``tests.support.homes.with_first_month_labelled``). Read-only: copy it to change it
    (``copy_released``). Built once per run, a private copy per worker."""
    built, shared = built_once(
        tmp_path_factory,
        "labelled",
        lambda folder: with_first_month_labelled(released, folder),
    )
    return copy_released(built, tmp_path_factory.mktemp("labelled")) if shared else built
