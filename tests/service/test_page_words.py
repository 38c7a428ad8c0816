"""The words people read where things go wrong: sign-in and the error pages. Real Flask client
and SQLite, the model served from memory (the public transparency page's words, which need a
real release: tests/integration/test_transparency_words.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask

from lifecycle.model_source import Serving
from tests.support.homes import Site, copy_site
from tests.support.memory import memory_app
from tests.support.web import csrf


@pytest.fixture
def site(memory_site: Site) -> Site:
    """The in-memory site stands in for the released one in this module."""
    return memory_site


@pytest.fixture
def app(site: Site, in_memory: Serving, tmp_path: Path) -> Flask:
    own = copy_site(site, tmp_path)
    return memory_app(own, in_memory, {"CONTACT": "the outreach team, telephone 000"})


def test_a_wrong_password_keeps_the_name_typed(app: Flask, site: Site) -> None:
    client = app.test_client()
    token = csrf(client.get("/login").get_data(as_text=True))
    name = site.user("coordinator")
    response = client.post(
        "/login", data={"csrf_token": token, "username": name, "password": "not the password"}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 401 and "The user name or password is not right." in html
    assert re.search(rf'<input id="username"[^>]* value="{name}"', html)
    assert not re.search(r'<input id="password"[^>]* value=', html)
    assert re.search(r'<input id="password"[^>]* autofocus', html)


def test_not_found_pages_speak_the_projects_words_and_the_api_stays_json(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/no-such-page")
    html = page.get_data(as_text=True)
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert "There is no page at this address." in html and "<h1>Not found</h1>" in html
    assert "requested URL was not found" not in html and "spelling" not in html
    api = client.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and api.mimetype == "application/json"
    assert api.json["error"]["code"] == "not_found"


def test_a_page_refused_to_a_role_says_so_in_a_sentence(app: Flask, site: Site) -> None:
    client = app.test_client()
    token = csrf(client.get("/login").get_data(as_text=True))
    client.post(
        "/login",
        data={
            "csrf_token": token,
            "username": site.user("coordinator"),
            "password": site.passwords["coordinator"],
        },
    )
    html = client.get("/oversight/releases").get_data(as_text=True)
    message = re.search(r"<h1>Not open to you</h1>\s*<p>([^<]+)</p>", html)
    assert message and message.group(1)[0].isupper() and message.group(1).endswith(".")
    assert 'href="/outreach/"' in html
