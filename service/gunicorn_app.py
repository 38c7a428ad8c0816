"""The service under gunicorn run inside the calling process (``outreach demo`` serves this way).

``outreach serve`` starts gunicorn as a new process, which imports the service and its libraries
(MLflow, pandas) again before it listens: seconds of CPU. A process that has
already imported them (the demo, after its releases) becomes gunicorn's master itself with
:func:`serve_here` and forks the workers from what it has, with the same settings
(:mod:`service.gunicorn_conf`: workers, timeouts, the metrics folder, the start-up hooks) and the
same environment ``outreach serve`` gives its gunicorn.

Before the fork the process is made fit to be one: its database connections closed (a SQLite
connection must not cross a fork, and MLflow keeps one engine per store for the process), the
numerical libraries held to one thread (as ``OMP_NUM_THREADS=1`` and the like do for a new
process), its free heap given back to the system, and its heap collected and frozen, so the
workers do not copy every page of it when the collector touches the objects' headers. The
workers leave the process's exit handlers to it.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
from collections.abc import Mapping
from typing import Any

from gunicorn.app.base import Application

from kernel.home import Home

#: gunicorn's application and its settings: the same as ``outreach serve``'s command line.
APP = "service:create_app()"
CONFIG = "python:service.gunicorn_conf"

#: Native thread pools a new process would size from these (``outreach serve`` sets them).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class InProcessService(Application):
    """gunicorn's application: :data:`CONFIG`'s settings, then ``options`` (as the command
    line's ``--bind``, ``--workers`` and ``--access-logfile`` override the file), serving
    :data:`APP` (each worker builds its own app, as under ``outreach serve``)."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__(prog="outreach")

    def init(self, parser: Any, opts: Any, args: Any) -> None:  # no command line is read
        return None

    def load_config(self) -> None:
        self.cfg.set("default_proc_name", APP)
        self.load_config_from_module_name_or_filename(CONFIG)
        for key, value in self.options.items():
            self.cfg.set(key, value)
        configured = self.cfg.post_fork

        def post_fork(server: Any, worker: Any) -> None:
            # The exit handlers this process registered before it served are its own: a
            # worker running them at its exit would, say, remove joblib's temporary folders of
            # the demo's fits again (its resource tracker then complains). A forked child of
            # multiprocessing skips them the same way. The worker registers its own afterwards.
            atexit._clear()
            configured(server, worker)

        self.cfg.set("post_fork", post_fork)

    def load(self) -> Any:
        from gunicorn.util import import_app

        return import_app(APP)


def close_connections() -> int:
    """Dispose of every SQLAlchemy engine of the process (their pooled connections closed; a
    later use opens new ones): MLflow's per-store engines and any the process still holds.
    Returns how many engines there were."""
    from sqlalchemy.engine import Engine

    gc.collect()  # engines only a reference cycle still held go first
    engines = [found for found in gc.get_objects() if isinstance(found, Engine)]
    for engine in engines:
        engine.dispose()
    return len(engines)


def server_environment(home: Home, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment the service's gunicorn runs in, under ``outreach serve`` and here:
    ``environ`` with the home named, the service-wide metrics folder (every worker counts into
    one folder of the home, unless ``PROMETHEUS_MULTIPROC_DIR`` names one; named before any
    process imports prometheus-client) and native thread pools of one thread per worker."""
    return {
        **environ,
        MULTIPROC_ENV: environ.get(MULTIPROC_ENV) or str(home.metrics),
        "OUTREACH_HOME": str(home.root),
        **dict.fromkeys(THREAD_VARIABLES, "1"),
    }


def prepare_fork(home: Home) -> None:
    """Make this process fit to be the service's gunicorn master for ``home``: the environment
    ``outreach serve`` gives gunicorn, native thread pools held to one thread, database
    connections closed, the heap collected and frozen.

    Raises
    ------
    RuntimeError
        When prometheus-client is already imported: its multiprocess mode is fixed at its
        import, so the workers would each count alone.
    """
    from threadpoolctl import threadpool_limits

    if "prometheus_client" in sys.modules and MULTIPROC_ENV not in os.environ:
        raise RuntimeError(
            "prometheus-client was imported before its multiprocess folder was named: the "
            "service's metrics would count one worker only"
        )
    os.environ.update(server_environment(home, os.environ))
    threadpool_limits(limits=1)  # the libraries already loaded no longer read the variables
    close_connections()
    gc.collect()
    _return_free_memory()
    gc.freeze()


def _return_free_memory() -> None:
    """Give the C library's free heap back to the system (glibc's ``malloc_trim``; a no-op
    elsewhere): after the demo's releases, about 120 MB the master and its workers would keep."""
    import ctypes

    with contextlib.suppress(AttributeError, OSError):  # not glibc
        ctypes.CDLL(None).malloc_trim(0)


def serve_here(home: Home, host: str, port: int, workers: int) -> None:
    """Serve ``home`` with gunicorn from this process until it is stopped (SIGINT or SIGTERM:
    the workers stopped, then ``SystemExit``). Call it last: the process is the master."""
    prepare_fork(home)
    InProcessService({"bind": [f"{host}:{port}"], "workers": workers, "accesslog": "-"}).run()
