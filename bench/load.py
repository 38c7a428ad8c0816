"""The load generator of the service benchmark: a fixed duration of keep-alive POSTs at a given
number of clients, with throughput and latency percentiles.

wrk when installed (C, light on the CPU the servers share: ``make bench`` installs Debian's);
else Python client processes, each with one keep-alive connection. Every server of a run is
driven by the same generator.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Cell:
    """One measured cell: requests a second and latency percentiles (ms)."""

    rps: float
    p50: float
    p99: float


def generator() -> str:
    """The load generator this run uses, in words."""
    return "wrk" if shutil.which("wrk") else "Python client processes (wrk is not installed)"


def drive(
    port: int,
    path: str,
    body: bytes,
    headers: dict[str, str],
    concurrency: int,
    seconds: float,
) -> Cell:
    """POST ``body`` to ``path`` from ``concurrency`` keep-alive clients for ``seconds``."""
    if shutil.which("wrk"):
        return _wrk(port, path, body, headers, concurrency, seconds)
    with multiprocessing.get_context("fork").Pool(concurrency) as pool:
        results = pool.map(_client, [(port, path, body, headers, seconds)] * concurrency)
    latencies = np.array([x for r in results for x in r])
    return Cell(
        rps=len(latencies) / seconds,
        p50=float(np.percentile(latencies, 50) * 1e3),
        p99=float(np.percentile(latencies, 99) * 1e3),
    )


def _client(args: tuple[int, str, bytes, dict[str, str], float]) -> list[float]:
    """One client's latencies over ``seconds`` from its own start (a process that starts late,
    on a busy machine, still runs its whole share), at least one request."""
    port, path, body, headers, seconds = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies: list[float] = []
    until = time.monotonic() + seconds
    while not latencies or time.monotonic() < until:
        started = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"status {response.status} from port {port}")
        latencies.append(time.perf_counter() - started)
    conn.close()
    return latencies


def _ms(text: str) -> float:
    for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float(text)


def _wrk(
    port: int, path: str, body: bytes, headers: dict[str, str], concurrency: int, seconds: float
) -> Cell:
    """wrk with a Lua script for the POST; its latency distribution's 50% and 99%."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f"wrk.method = 'POST'\nwrk.body = {json.dumps(body.decode())}\n")
        for key, value in headers.items():
            script.write(f"wrk.headers[{json.dumps(key)}] = {json.dumps(value)}\n")
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t",
                str(min(concurrency, 2)),
                "-c",
                str(concurrency),
                "-d",
                f"{max(seconds, 1):.0f}s",
                "--latency",
                "-s",
                script.name,
                f"http://127.0.0.1:{port}{path}",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        ).stdout
    finally:
        os.unlink(script.name)
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx responses from port {port}:\n{out}")
    values: dict[str, float] = {}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            values["rps"] = float(parts[1])
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            values["p" + parts[0][:-1]] = _ms(parts[1])
    return Cell(values["rps"], values["p50"], values["p99"])
