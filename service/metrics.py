"""Prometheus metrics for one app: requests, latencies, scores served by model version.

Each app has its own registry (tests create many apps). Under gunicorn each worker reports its
own counts; scrape each worker or aggregate at the proxy.
"""

from __future__ import annotations

from flask import Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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

    def response(self) -> Response:
        return Response(generate_latest(self.registry), mimetype=CONTENT_TYPE_LATEST)
