"""Requests gunicorn refuses itself (an over-long request line, oversized headers) get the
service's JSON error shape with X-Request-ID, from a real gunicorn with the service's worker."""

from __future__ import annotations

import ast
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.gunicorn_worker import JsonErrorWorker
from tests.support.specs import ROOT

APP = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    folder = tmp_path_factory.mktemp("gunicorn")
    (folder / "tiny_app.py").write_text(APP)
    port = _free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    process = subprocess.Popen(
        [
            str(gunicorn),
            "--chdir",
            str(folder),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--worker-class",
            f"{JsonErrorWorker.__module__}.{JsonErrorWorker.__name__}",
            "--limit-request-fields",
            "20",
            "tiny_app:app",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("gunicorn did not start")
    yield port
    process.terminate()
    process.wait(timeout=20)


def _send(port: int, raw: bytes) -> tuple[str, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(raw)
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return lines[0], headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"GET /api/v1/queue?x=" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 400,
         "request_line_too_long"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(40))
         + b"\r\n", 431, "headers_too_large"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431,
         "headers_too_large"),
        (b"NOT A REQUEST LINE\r\n\r\n", 400, "malformed_request"),
    ],
)  # fmt: skip
def test_gunicorn_s_refusals_are_json_with_a_request_id(
    server: int, request_bytes: bytes, status: int, code: str
) -> None:
    line, headers, body = _send(server, request_bytes)
    assert line.startswith(f"HTTP/1.1 {status} "), line
    assert headers["Content-Type"] == "application/json"
    document = json.loads(body)
    assert document["error"]["code"] == code and document["error"]["message"]
    assert document["request_id"] and headers["X-Request-ID"] == document["request_id"]


def test_a_good_request_still_reaches_the_app(server: int) -> None:
    line, _, body = _send(server, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    assert line.startswith("HTTP/1.0 200") or line.startswith("HTTP/1.1 200"), line
    assert body == b"ok"


def test_the_service_runs_this_worker() -> None:
    conf = ROOT / "service" / "gunicorn_conf.py"
    tree = ast.parse(conf.read_text())
    assigned = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
    }
    assert assigned["worker_class"] == "service.gunicorn_worker.JsonErrorWorker"
