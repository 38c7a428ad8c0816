"""The words people read where things go wrong or where they look for their choices: sign-in,
the error pages and the public transparency page. Real Flask client, SQLite and MLflow store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask

from service import create_app
from tests.support.homes import Site, copy_site
from tests.support.web import csrf


@pytest.fixture
def app(site: Site, tmp_path: Path) -> Flask:
    own = copy_site(site, tmp_path)
    return create_app(
        {
            "HOME": own.home,
            "DATABASE_URL": own.database_url,
            "WATCH_SECONDS": 0,
            "TESTING": True,
            "CONTACT": "the outreach team, telephone 000",
        }
    )


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


def test_transparency_says_first_how_to_decline_opt_out_or_ask_for_a_review(app: Flask) -> None:
    html = app.test_client().get("/transparency").get_data(as_text=True)
    main = html.split('<main id="content">', 1)[1]
    choices = main.index("If you were offered help: your choices")
    assert choices < main.index("<table")
    for words in (
        "To say no to this offer",
        "To not be contacted again",
        "To ask a person to look again",
        "How to contact us: the outreach team, telephone 000",
    ):
        assert main.index(words) < main.index("<table"), words
    assert "naming the groups below" not in html
