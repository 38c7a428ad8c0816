"""The web side of tests: CSRF tokens, signing in through the pages, a free port."""

from __future__ import annotations

import re
import socket

from flask.testing import FlaskClient

from tests.support.homes import Site

#: Audit-only columns and group labels: never on a coordinator's page or in a letter.
SENSITIVE = ("race_ethnicity", "age_band", "disability", "Hispanic or Latino", "Multiracial")


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the form"
    return found.group(1)


def sign_in(client: FlaskClient, site: Site, role: str) -> str:
    token = csrf(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login",
        data={"csrf_token": token, "username": site.user(role), "password": site.passwords[role]},
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
