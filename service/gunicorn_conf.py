"""Gunicorn settings for the service: ``outreach serve`` and the service benchmark use them.

Sync workers, one request at a time each, one per core: a request is about a millisecond of
Python, so more workers or threads than cores only queue on the same CPUs and the GIL.
"""

from __future__ import annotations

import gc
from typing import Any

worker_class = "sync"
timeout = 60


def post_worker_init(worker: Any) -> None:
    # Everything loaded so far (Flask, MLflow, pandas, the model) lives as long as the worker:
    # keep it out of the collector, whose full passes over it would take about 0.2 s each.
    gc.freeze()
