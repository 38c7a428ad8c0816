"""The model-source seam of ``create_app``: an app serves the source it is handed (the service
tests' model held in memory) and follows a swap; production mode refuses any source but the one
that verifies releases itself (which every integration test builds)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from kernel.errors import BadInputError
from kernel.home import Home
from lifecycle.model_source import Serving
from service import create_app
from store.accounts import add_user
from tests.support.homes import Site, copy_site
from tests.support.memory import InMemorySource, memory_app


def test_an_app_serves_the_model_it_is_handed_and_follows_a_swap(
    memory_site: Site, in_memory: Serving, tmp_path: Path
) -> None:
    own = copy_site(memory_site, tmp_path)
    app = memory_app(own, in_memory)
    source = app.extensions["outreach.model"]
    assert isinstance(source, InMemorySource)
    client = app.test_client()
    ready = client.get("/api/v1/readyz")
    assert ready.status_code == 200 and ready.json["model"]["version"] == "1"
    token = add_user(app.extensions["outreach.db"], "seam analyst", "analyst")
    headers = {"Authorization": f"Bearer {token}"}
    info = client.get("/api/v1/model", headers=headers)
    assert info.status_code == 200, info.json
    assert info.json["candidate"] == in_memory.model.candidate
    assert [f["name"] for f in info.json["input_schema"]] == list(in_memory.model.feature_names)
    source.serve(dataclasses.replace(in_memory, version="2"))
    assert client.get("/api/v1/readyz").json["model"]["version"] == "2"
    source.serve(None)
    gone = client.get("/api/v1/readyz")
    assert gone.status_code == 503 and gone.json["status"] == "not ready"


def test_production_mode_refuses_a_handed_source(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    with pytest.raises(BadInputError, match="no model source may be handed to create_app"):
        create_app(
            {
                "HOME": home,
                "DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}",
                "WATCH_SECONDS": 0,
                "TESTING": True,
                "ENV_MODE": "production",
            },
            model_source=InMemorySource(home, "individual_outreach"),
        )
