"""Prometheus metrics: requests, latencies, scores served by model version, refusals by reason,
and access-log rows that could not be written.

Under gunicorn (``outreach serve``) the counts are service-wide: prometheus-client's multiprocess
mode, with ``PROMETHEUS_MULTIPROC_DIR`` set to the home's ``service/metrics/`` before any worker
imports the library. Each worker writes its counts to memory-mapped files there and a scrape,
whichever worker answers it, adds up every worker's files (those of workers that have exited
included, so counters never go back). The folder is emptied when the server starts
(:func:`reset_folder`, from gunicorn's ``on_starting``).

Without that variable (tests, which create many apps in one process) each app has its own
registry and reports its own counts.

Multiprocess mode limits what may be added here: no custom collectors, no ``Info`` or ``Enum``,
gauges only with a ``multiprocess_mode`` and never a ``set_function``.
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Response
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_folder() -> Path | None:
    """The shared folder when this process counts in multiprocess mode, else ``None``.

    The mode is fixed when prometheus-client is first imported: the variable set later changes
    nothing, and is ignored here too.
    """
    folder = os.environ.get(MULTIPROC_ENV)
    if folder and getattr(values.ValueClass, "_multiprocess", False):
        return Path(folder)
    return None


def reset_folder(folder: Path) -> None:
    """Create ``folder`` (0700) and remove the counts a previous server left in it.

    Only prometheus-client's own ``*.db`` files are removed, whatever folder was configured.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)


def worker_exited(pid: int) -> None:
    """Let the live gauges of an exited worker go (gunicorn's ``child_exit``); its counters
    stay counted."""
    if multiprocess_folder() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.folder = multiprocess_folder()
        self.requests = Counter(
            "outreach_requests", "HTTP requests", ["endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "outreach_request_seconds",
            "Request latency",
            ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.scores = Counter(
            "outreach_scores_served",
            "Records scored",
            ["model", "version"],
            registry=self.registry,
        )

        self.refusals = Counter(
            "outreach_refusals",
            "Requests refused, by reason (the error code)",
            ["reason"],
            registry=self.registry,
        )
        self.log_invalid = Gauge(
            "outreach_attestation_log_invalid",
            "1 while a model's attestation log does not verify (nothing of it is served; an "
            "alarm until a person repairs it with 'outreach models repair')",
            ["model"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.access_log_failures = Counter(
            "outreach_access_log_write_failures",
            "Access-log rows that could not be written (nothing was shown)",
            registry=self.registry,
        )

    def refused(self, reason: str) -> None:
        self.refusals.labels(reason).inc()

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def scored(self, model: str, version: str, count: int) -> None:
        self.scores.labels(model, version).inc(count)

    def exposition(self) -> bytes:
        """The text a scrape gets: every worker's counts added up, in multiprocess mode."""
        if self.folder is None:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        # A fresh registry per scrape holding only the collector over the shared files (the
        # app's own registry must not be added too, or every metric would appear twice).
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined, path=str(self.folder))
        return generate_latest(combined)

    def response(self) -> Response:
        return Response(self.exposition(), mimetype=CONTENT_TYPE_LATEST)
