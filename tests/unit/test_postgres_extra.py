"""PostgreSQL's driver is the `postgres` extra: a PostgreSQL URL without it is a clear error that
names the extra (exit 2 from the command line), never a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kernel.errors import BadInputError
from outreach.cli import main
from store.db import Database

URL = "postgresql+psycopg://outreach@127.0.0.1:1/outreach"


def test_a_postgresql_url_without_the_driver_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if the extra were not installed
    with pytest.raises(BadInputError) as caught:
        Database(URL)
    assert "'postgres' extra" in caught.value.message
    assert "psycopg" in caught.value.message


def test_the_command_line_exits_2_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setenv("OUTREACH_DATABASE_URL", URL)
    done = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "users", "list"])
    assert done.exit_code == 2, done.output
    assert "install the 'postgres' extra" in done.output
    assert "Traceback" not in done.output


def test_with_the_driver_a_postgresql_url_makes_an_engine() -> None:
    """`make test` installs the extra: the driver is there and the engine is made (lazily)."""
    assert Database(URL).engine.dialect.driver == "psycopg"
