"""The unit layer holds no I/O beyond temporary files: a unit test that opens a database (the
service's or MLflow's SQLite store), connects a socket or starts a process fails, naming what it
did. Such a test belongs in tests/service, tests/integration or tests/system."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(what: str) -> Any:
        def refused(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"a unit test may not {what} (tests/unit/conftest.py)")

        return refused

    monkeypatch.setattr(sqlite3, "connect", refuse("open a database"))
    monkeypatch.setattr(socket.socket, "connect", refuse("connect a socket"))
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("start a process"))
