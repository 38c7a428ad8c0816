"""One settings object: every OUTREACH_* variable read once per entry point, and MLflow's process
settings set once rather than on every connection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kernel import settings
from kernel.home import Home
from model.registry import connect


def test_the_settings_hold_every_variable_that_is_set_and_only_those() -> None:
    found = settings.Settings.from_environment(
        {
            "OUTREACH_HOME": "/srv/outreach",
            "OUTREACH_CONTACT": "  the outreach team  ",
            "OUTREACH_TOKEN_DAYS": "",
            "OUTREACH_UNKNOWN": "x",
            "PATH": "/usr/bin",
        }
    )
    assert dict(found.environment) == {
        "OUTREACH_HOME": "/srv/outreach",
        "OUTREACH_CONTACT": "  the outreach team  ",
    }
    assert found.home == "/srv/outreach"
    assert found.contact == "the outreach team"
    assert found.token_days is None  # empty is unset
    assert found.mode == ""
    with pytest.raises(KeyError, match="OUTREACH_UNKNOWN is not one of the project's settings"):
        found.get("OUTREACH_UNKNOWN")


def test_an_entry_point_resolves_once_and_the_code_below_reads_that(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OUTREACH_DATABASE_URL", "postgresql+psycopg://a@127.0.0.1/one")
    resolved = settings.resolve()
    monkeypatch.setenv("OUTREACH_DATABASE_URL", "postgresql+psycopg://a@127.0.0.1/two")
    assert settings.current() is resolved
    assert Home.resolve(tmp_path).database_url == "postgresql+psycopg://a@127.0.0.1/one"
    settings.resolve()  # the next entry point
    assert Home.resolve(tmp_path).database_url == "postgresql+psycopg://a@127.0.0.1/two"


def test_connecting_to_the_registry_leaves_the_environment_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in settings.MLFLOW_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    settings.resolve()  # sets MLflow's process settings, once
    assert {name: os.environ[name] for name in settings.MLFLOW_ENVIRONMENT} == (
        settings.MLFLOW_ENVIRONMENT
    )
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")  # an operator's own choice
    monkeypatch.delenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT")  # connecting must not set it again
    before = dict(os.environ)
    home = Home.resolve(tmp_path / "home")
    first = connect(home)
    second = connect(home, tracking_uri=f"sqlite:///{tmp_path / 'other.db'}")
    assert dict(os.environ) == before
    assert first.tracking_uri == home.tracking_uri
    assert second.tracking_uri.endswith("other.db")
