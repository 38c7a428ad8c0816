"""Gunicorn settings for the service: ``outreach serve`` and the service benchmark use them.

Sync workers, one request at a time each, one per core: a request is about a millisecond of
Python, so more workers or threads than cores only queue on the same CPUs and the GIL.

Start-up, in order:

- this module (in the master): everything created is the owner's alone (umask 0o077), and
  prometheus-client's multiprocess folder is named (``<home>/service/metrics/``, unless
  ``PROMETHEUS_MULTIPROC_DIR`` names one) before anything imports the library;
- ``on_starting`` (master, once, before any worker): the metrics folder is emptied, the one-time
  work done (home folders and modes, the database schema, the session key), and the heavy
  libraries imported, so each forked worker builds its app in a fraction of a second instead of
  importing MLflow and pandas on its own while the others do the same (scikit-learn, Fairlearn
  and scipy.stats are not loaded at all: the service fits nothing);
- each worker then calls ``service:create_app()``, which repeats the one-time steps under locks
  (they find the work done) and loads the verified model.

A failure in ``on_starting`` stops the server with its message, before any worker boots.
"""

from __future__ import annotations

import faulthandler
import gc
import importlib
import os
import signal
from pathlib import Path
from typing import Any

from kernel import settings

# Nothing imported here may import prometheus_client: its mode is fixed at its first import.
from kernel.files import PRIVATE_UMASK, private_umask
from kernel.home import Home

# The sync worker, answering gunicorn's own refusals (a request line over limit_request_line,
# oversized headers) in the service's JSON error shape with X-Request-ID.
worker_class = "service.gunicorn_worker.JsonErrorWorker"
timeout = 60
umask = PRIVATE_UMASK  # gunicorn's own files (worker heartbeats, a unix socket)

private_umask()  # the master's, inherited by every worker
# The deployment's settings, resolved once; MLflow's process settings (telemetry off: MLflow
# starts its usage-reporting client when imported, and the master imports it below) set with them.
_settings = settings.resolve()
_home = Home.resolve(_settings.home, _settings)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
os.environ.setdefault(MULTIPROC_ENV, str(_home.metrics))

# gunicorn's control socket (a server thread in the master, for ``gunicornc``): nothing here
# uses it, and its default path (~/.gunicorn/gunicorn.ctl) is one for every server of the user,
# so each server's start and stop unlinked the others'. Off, with one thread less in the master.
control_socket_disable = True
# A worker gets this long to finish its request after SIGTERM before the master kills it: a
# request is milliseconds, so a stop never waits on a stuck worker for gunicorn's default 30 s.
graceful_timeout = 10

#: Imported by the master before it forks: the workers share them instead of each importing
#: them at the same moment (seconds of CPU each). None opens a file or starts a thread at import.
PRELOADED = (
    "pandas",
    "mlflow",
    "mlflow.artifacts",
    "mlflow.tracking",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "alembic.command",
    "lifecycle.verified_loading",
    "service",
    "service.api.routes",
    "service.pages",
    "lifecycle.model_source",
)


def on_starting(server: Any) -> None:
    from service.prometheus import reset_folder
    from service.startup import prepare
    from store.db import default_url

    reset_folder(Path(os.environ[MULTIPROC_ENV]))
    for name in PRELOADED:
        importlib.import_module(name)
    prepare(_home, _home.database_url or default_url(_home.root))


def post_worker_init(worker: Any) -> None:
    # Everything loaded so far (Flask, MLflow, pandas, the model) lives as long as the worker:
    # keep it out of the collector, whose full passes over it would take about 0.2 s each.
    gc.freeze()
    # ``kill -USR2 <worker pid>`` writes every thread's stack to the error log: a worker that
    # seems stuck can be looked at without stopping it (gunicorn leaves USR2 alone in workers).
    faulthandler.register(signal.SIGUSR2, all_threads=True)


def child_exit(server: Any, worker: Any) -> None:
    from service.prometheus import worker_exited

    worker_exited(worker.pid)
