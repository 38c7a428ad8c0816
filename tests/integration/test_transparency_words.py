"""The words people read where they look for their choices: the public transparency page says
first how to decline, opt out or ask for a review. Real Flask client, SQLite and MLflow store."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from service import create_app
from tests.support.homes import Site, copy_site


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
