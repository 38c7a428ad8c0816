"""Token and account lifecycle, areas, sign-in protection and the ``outreach users`` commands.

Real components throughout: a SQLite database in a temporary folder, apps built by
``service.create_app``, the Flask test client, and the CLI through click's runner.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, inspect, select, update

from kernel import settings
from kernel.errors import BadInputError
from kernel.home import Home
from outreach.cli import main
from outreach.cli.demo import DemoPasswords, demo_users
from service import create_app
from service.pages.account import NOT_RIGHT
from store import accounts as auth
from store import signin_limits as signin
from store.accounts import (
    add_user,
    areas_of,
    assign_all_areas,
    authenticate,
    disable_user,
    enable_user,
    hash_password,
    issue_token,
    list_tokens,
    page_user,
    revoke_tokens,
    set_areas,
    set_password,
    set_role,
)
from store.db import Database, QueueEntry, SignInCounter, Token, User, default_url, utcnow
from tests.support.memory import InMemorySource
from tests.support.specs import ROOT

PASSWORD = "a long page password"
#: Answered only once the token was accepted: no model is served in this home (503), or the
#: role may not see the model (403). 401 means the token itself was refused.
MODEL = "/api/v1/model"


@pytest.fixture(scope="module")
def empty_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """A home with no registered model: the pages and tokens work, scoring answers 503."""
    return Home(tmp_path_factory.mktemp("accounts") / "home")


def make_app(home: Home, url: str) -> Flask:
    """An app on ``home`` that serves no model (nothing held in memory: no registry read)."""
    return create_app(
        {"HOME": home, "DATABASE_URL": url, "WATCH_SECONDS": 0, "TESTING": True},
        model_source=InMemorySource(home, "individual_outreach"),
    )


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'service.db'}"


@pytest.fixture
def app(empty_home: Home, url: str) -> Flask:
    return make_app(empty_home, url)


@pytest.fixture
def db(app: Flask) -> Database:
    return app.extensions["outreach.db"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the form"
    return found.group(1)


def try_sign_in(
    client: FlaskClient, name: str, password: str, *, address: str = "127.0.0.1"
) -> tuple[int, str]:
    environ = {"REMOTE_ADDR": address}
    token = csrf(client.get("/login", environ_base=environ).get_data(as_text=True))
    response = client.post(
        "/login",
        data={"csrf_token": token, "username": name, "password": password},
        environ_base=environ,
    )
    return response.status_code, response.get_data(as_text=True)


@pytest.fixture
def signed_in(app: Flask) -> Callable[[str], FlaskClient]:
    def make(name: str) -> FlaskClient:
        client = app.test_client()
        status, body = try_sign_in(client, name, PASSWORD)
        assert status == 302, body
        return client

    return make


# ------------------------------------------------------------------------------- tokens


def test_a_token_works_until_it_expires(app: Flask, db: Database) -> None:
    token = add_user(db, "reader", "analyst", days=1)
    (info,) = list_tokens(db, "reader")
    assert info.expires_at is not None and info.status == "active"
    client = app.test_client()
    assert client.get(MODEL, headers=bearer(token)).status_code == 503  # accepted
    with db.session() as session:
        session.execute(update(Token).values(expires_at=utcnow() - timedelta(seconds=1)))
    response = client.get(MODEL, headers=bearer(token))
    assert response.status_code == 401 and response.json["error"]["code"] == "unauthenticated"
    assert list_tokens(db, "reader")[0].status == "expired"


def test_token_lifetime_comes_from_the_environment_once_or_from_days(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    def lifetime(name: str) -> float:
        (info,) = list_tokens(db, name)
        assert info.expires_at is not None
        return (info.expires_at - info.created_at).total_seconds() / 86400

    settings.resolve()
    monkeypatch.delenv("OUTREACH_TOKEN_DAYS", raising=False)
    add_user(db, "default", "analyst")
    assert lifetime("default") == pytest.approx(90, abs=0.01)
    monkeypatch.setenv("OUTREACH_TOKEN_DAYS", "7")
    assert auth.default_token_days() == 90  # read once per process
    settings.resolve()
    add_user(db, "weekly", "analyst")
    assert lifetime("weekly") == pytest.approx(7, abs=0.01)
    add_user(db, "chosen", "analyst", days=30)
    assert lifetime("chosen") == pytest.approx(30, abs=0.01)
    monkeypatch.setenv("OUTREACH_TOKEN_DAYS", "forever")
    settings.resolve()
    with pytest.raises(BadInputError, match="OUTREACH_TOKEN_DAYS must be a whole number"):
        add_user(db, "never", "analyst")
    settings.resolve()
    with pytest.raises(BadInputError, match="days must be"):
        issue_token(db, "chosen", days=0)


def test_a_revoked_token_is_refused_at_the_very_next_request(app: Flask, db: Database) -> None:
    first = add_user(db, "reader", "analyst")
    second = issue_token(db, "reader")
    client = app.test_client()
    for _ in range(3):  # used repeatedly, as a cache would have kept it
        assert client.get(MODEL, headers=bearer(first)).status_code == 503
    first_id = list_tokens(db, "reader")[0].id
    assert revoke_tokens(db, "reader", token_id=first_id) == 1
    assert client.get(MODEL, headers=bearer(first)).status_code == 401
    assert client.get(MODEL, headers=bearer(second)).status_code == 503  # the other still works
    assert revoke_tokens(db, "reader") == 1
    assert client.get(MODEL, headers=bearer(second)).status_code == 401
    with pytest.raises(BadInputError, match="has no token with id 999"):
        revoke_tokens(db, "reader", token_id=999)


def test_a_disabled_user_loses_tokens_sessions_and_sign_in(
    app: Flask, db: Database, signed_in: Callable[[str], FlaskClient]
) -> None:
    add_user(db, "boss", "admin", password=PASSWORD)
    token = add_user(db, "lead", "admin", password=PASSWORD)
    page = signed_in("lead")
    assert page.get("/admin/users").status_code == 200
    assert app.test_client().get(MODEL, headers=bearer(token)).status_code == 403  # accepted
    assert disable_user(db, "lead") == 1
    assert app.test_client().get(MODEL, headers=bearer(token)).status_code == 401
    with db.session() as session:  # even a token left unrevoked is refused while disabled
        session.execute(update(Token).values(revoked=False))
    assert app.test_client().get(MODEL, headers=bearer(token)).status_code == 401
    with db.session() as session:
        session.execute(update(Token).values(revoked=True))
    ended = page.get("/admin/users")
    assert ended.status_code == 302 and ended.headers["Location"].startswith("/login")
    status, body = try_sign_in(app.test_client(), "lead", PASSWORD)
    assert status == 401 and NOT_RIGHT in body
    assert page_user(db, "lead") is None
    with pytest.raises(BadInputError, match="is disabled"):
        issue_token(db, "lead")
    assert enable_user(db, "lead") is True
    signed_in("lead")  # the password works again
    assert app.test_client().get(MODEL, headers=bearer(token)).status_code == 401  # still revoked


def test_a_new_role_applies_at_the_next_request(
    app: Flask, db: Database, signed_in: Callable[[str], FlaskClient]
) -> None:
    token = add_user(db, "pat", "analyst", password=PASSWORD)
    client = app.test_client()
    assert client.get(MODEL, headers=bearer(token)).status_code == 503
    assert set_role(db, "pat", "admin") == auth.RoleChange("analyst")
    assert client.get(MODEL, headers=bearer(token)).status_code == 403  # token kept, new role
    page = signed_in("pat")
    assert page.get("/admin/users").status_code == 200
    set_role(db, "pat", "analyst")
    ended = page.get("/admin/users")
    assert ended.status_code == 302 and ended.headers["Location"].startswith("/login")
    assert signed_in("pat").get("/admin/users").status_code == 403
    with pytest.raises(BadInputError, match="unknown role 'chief'"):
        set_role(db, "pat", "chief")


def test_a_new_password_revokes_tokens_and_ends_sessions(
    app: Flask, db: Database, signed_in: Callable[[str], FlaskClient]
) -> None:
    token = add_user(db, "lead", "admin", password=PASSWORD)
    issue_token(db, "lead")
    page = signed_in("lead")
    assert set_password(db, "lead", "another long password") == 2
    assert app.test_client().get(MODEL, headers=bearer(token)).status_code == 401
    assert page.get("/admin/users").status_code == 302
    assert all(info.status == "revoked" for info in list_tokens(db, "lead"))


def test_a_password_hashed_ahead_is_stored_as_made_and_signs_in(db: Database) -> None:
    """hash_password (made before, or in another process) checks the length as add_user and
    set_password do; the hash it made is the one stored."""
    with pytest.raises(BadInputError, match="at least 12 characters"):
        hash_password("short")
    made = hash_password(PASSWORD)
    assert made.value.startswith("scrypt:") and made.value != hash_password(PASSWORD).value
    add_user(db, "lead", "admin", password=made)
    with db.session() as session:
        stored = session.scalar(select(User.password_hash).where(User.name == "lead"))
    assert stored == made.value
    assert auth.check_password(db, "lead", PASSWORD) is not None
    assert set_password(db, "lead", hash_password("another long password")) == 1
    assert auth.check_password(db, "lead", "another long password") is not None
    assert auth.check_password(db, "lead", PASSWORD) is None


# -------------------------------------------------------------------------------- areas


def test_areas_are_stored_loaded_and_follow_the_role(db: Database) -> None:
    token = add_user(db, "coord", "coordinator", password=PASSWORD)
    assert authenticate(db, token) == auth.Principal("coord", "coordinator", frozenset())
    assert set_areas(db, "coord", [" North ", "South", "North"]) == ["North", "South"]
    principal = authenticate(db, token)
    assert principal is not None and principal.areas == {"North", "South"}
    user = page_user(db, "coord")
    assert user is not None and user.principal.areas == {"North", "South"}
    assert areas_of(db, "coord") == ["North", "South"]
    for bad in ("", "   ", "x" * 121):
        with pytest.raises(BadInputError, match="an area name must have 1 to 120 characters"):
            set_areas(db, "coord", ["North", bad])
    assert areas_of(db, "coord") == ["North", "South"]  # nothing written
    add_user(db, "reader", "analyst")
    with pytest.raises(BadInputError, match="only coordinators have areas; 'reader' is an"):
        set_areas(db, "reader", ["North"])
    with pytest.raises(BadInputError, match="no user named 'ghost'"):
        set_areas(db, "ghost", ["North"])
    assert set_role(db, "coord", "analyst").cleared == ("North", "South")
    assert areas_of(db, "coord") == []
    set_role(db, "coord", "coordinator")
    assert set_areas(db, "coord", ["East"]) == ["East"]
    assert set_areas(db, "coord", []) == []
    principal = authenticate(db, token)
    assert principal is not None and principal.areas == frozenset()


def _queue(db: Database, areas: list[str | None]) -> None:
    with db.session() as session:
        for i, area in enumerate(areas):
            session.add(
                QueueEntry(
                    model_name="individual_outreach",
                    model_version="1",
                    audit_id="a",
                    period="2026-11",
                    person_id=f"p{i}",
                    rank=i + 1,
                    score=0.5,
                    percentile=50.0,
                    band="standard",
                    reasons=[],
                    area=area,
                )
            )


def test_assign_all_areas_gives_every_queued_area(db: Database) -> None:
    _queue(db, ["Riverside", "Hillside", None, "Riverside"])
    add_user(db, "coord", "coordinator")
    assert assign_all_areas(db, "coord") == ["Hillside", "Riverside"]
    assert assign_all_areas(db, "coord", "another_model") == []


# --------------------------------------------------------------------- sign-in protection


def test_a_lock_through_the_page_survives_a_flood_of_made_up_names(
    app: Flask, db: Database
) -> None:
    add_user(db, "lead", "admin", password=PASSWORD)
    client = app.test_client()
    for attempt in range(5):
        status, body = try_sign_in(client, "lead", "wrong password")
        assert status == 401 and NOT_RIGHT in body, attempt
    status, body = try_sign_in(client, "lead", PASSWORD)
    assert status == 429 and "Too many failed attempts" in body  # locked even when right
    # 10,001 made-up names (more than the 10,000 the old in-memory table cleared itself at).
    for i in range(10_001):
        signin.record_failure(db, f"made-up-{i}", f"10.0.{i // 250}.{i % 250}")
    status, body = try_sign_in(client, "lead", PASSWORD)
    assert status == 429, "the flood unlocked the name"
    remaining = signin.locked_for(db, "lead", "127.0.0.1")
    assert 200 < remaining <= 300  # the 5-minute lock is not shortened either
    later = time.time() + 301
    assert signin.before_attempt(db, "lead", "127.0.0.1", now=later) is None  # it does end


def test_old_counters_are_pruned_but_live_locks_are_kept(db: Database) -> None:
    start = 1_000_000.0
    for i in range(5):
        signin.record_failure(db, "lead", "10.0.0.1", now=start + i)
    for i in range(200):
        signin.record_failure(db, f"name-{i}", "10.0.0.2", now=start)

    def rows() -> int:
        with db.session() as session:
            return int(session.scalar(select(func.count()).select_from(SignInCounter)) or 0)

    assert rows() == 402  # a counter per name, and per name at the address
    # An hour on, every count's window has passed: only the lead's lock at that address (kept
    # for a day, so the next lock there lasts longer) and the new attempt's address count stay.
    assert signin.before_attempt(db, "lead", "10.0.0.1", now=start + 3601) is None
    assert rows() == 2
    # Two days on: nothing is remembered.
    signin.before_attempt(db, "other", "10.0.0.3", now=start + 2 * 86400)
    assert rows() == 1  # only the new address's count


def test_a_lock_holds_only_at_the_guessers_address_and_grows(app: Flask, db: Database) -> None:
    add_user(db, "lead", "admin", password=PASSWORD)
    client = app.test_client()
    for _ in range(5):
        assert try_sign_in(client, "lead", "wrong password", address="10.9.9.9")[0] == 401
    assert try_sign_in(client, "lead", PASSWORD, address="10.9.9.9")[0] == 429
    assert try_sign_in(client, "lead", PASSWORD, address="10.1.1.1")[0] == 302  # colleague's desk
    # The second lock at that address lasts twice as long as the first.
    start = 2_000_000.0
    for i in range(5):
        signin.record_failure(db, "pat", "10.2.2.2", now=start + i)
    first = signin.locked_for(db, "pat", "10.2.2.2", now=start + 5)
    for i in range(5):
        signin.record_failure(db, "pat", "10.2.2.2", now=start + 400 + i)
    second = signin.locked_for(db, "pat", "10.2.2.2", now=start + 405)
    assert first == pytest.approx(299, abs=1) and second == pytest.approx(599, abs=1)
    assert signin.unlock(db, "pat") == 2
    assert signin.locked_for(db, "pat", "10.2.2.2", now=start + 405) == 0


def test_guesses_from_many_addresses_lock_the_name_everywhere(db: Database) -> None:
    start = 3_000_000.0
    for i in range(signin.NAME.limit):
        signin.record_failure(db, "lead", f"10.3.{i}.1", now=start + i)
    refusal = signin.before_attempt(db, "lead", "10.4.4.4", now=start + 60)
    assert refusal is not None and refusal.reason == "name"
    assert signin.before_attempt(db, "lead", "10.4.4.4", now=start + 60 + 15 * 60) is None


def test_too_many_attempts_from_one_address_are_refused_before_hashing(
    app: Flask, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_user(db, "lead", "admin", password=PASSWORD)
    hashed: list[str] = []
    real = auth.check_password_hash

    def counting(stored: str, password: str) -> bool:
        hashed.append(password)
        return real(stored, password)

    monkeypatch.setattr(auth, "check_password_hash", counting)
    client = app.test_client()
    for i in range(signin.ADDRESS.limit):  # every attempt a different name: no name lock
        assert try_sign_in(client, f"guess-{i}", "wrong password")[0] == 401
    assert len(hashed) == signin.ADDRESS.limit
    environ = {"REMOTE_ADDR": "127.0.0.1"}
    token = csrf(client.get("/login", environ_base=environ).get_data(as_text=True))
    response = client.post(
        "/login",
        data={"csrf_token": token, "username": "lead", "password": PASSWORD},
        environ_base=environ,
    )
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert "Too many sign-in attempts from your address" in response.get_data(as_text=True)
    assert len(hashed) == signin.ADDRESS.limit  # refused before any password was hashed
    assert try_sign_in(client, "lead", PASSWORD, address="10.5.5.5")[0] == 302  # another address


def test_a_successful_sign_in_gives_its_attempt_back(app: Flask, db: Database) -> None:
    add_user(db, "lead", "admin", password=PASSWORD)
    client = app.test_client()
    for _ in range(signin.ADDRESS.limit + 5):  # an office signing in all morning
        assert try_sign_in(client, "lead", PASSWORD)[0] == 302


def test_successes_give_back_at_most_sixty_attempts_a_minute(db: Database) -> None:
    """One valid account signing in over and over still meets the address limit: past 60
    successes a minute they count like any attempt (each would cost a password hash)."""
    now = 1_000_000.0
    allowed = 0
    while allowed < 200 and signin.before_attempt(db, "lead", "10.9.9.9", now=now) is None:
        signin.record_success(db, "lead", "10.9.9.9", now=now)
        allowed += 1
    limit = signin.ADDRESS_SUCCESSES.limit
    assert limit <= allowed <= limit + signin.ADDRESS.limit
    later = now + signin.ADDRESS.lock + signin.ADDRESS_SUCCESSES.window + 1
    assert signin.before_attempt(db, "lead", "10.9.9.9", now=later) is None


def test_counters_are_shared_by_two_workers(empty_home: Home, url: str) -> None:
    first, second = make_app(empty_home, url), make_app(empty_home, url)
    add_user(first.extensions["outreach.db"], "lead", "admin", password=PASSWORD)
    for app in (first, second, first, second, first):
        assert try_sign_in(app.test_client(), "lead", "wrong password")[0] == 401
    assert try_sign_in(second.test_client(), "lead", PASSWORD)[0] == 429
    assert try_sign_in(first.test_client(), "lead", PASSWORD)[0] == 429


def test_every_failed_sign_in_says_the_same(app: Flask, db: Database) -> None:
    add_user(db, "lead", "admin", password=PASSWORD)
    add_user(db, "gone", "admin", password=PASSWORD)
    add_user(db, "robot", "analyst")  # no password: API token only
    disable_user(db, "gone")
    client = app.test_client()
    tries = [("nobody", PASSWORD), ("lead", "wrong"), ("gone", PASSWORD), ("robot", PASSWORD)]
    for i, (name, password) in enumerate(tries):
        status, body = try_sign_in(client, name, password, address=f"10.6.6.{i}")
        found = re.search(r'<p class="error" id="login-error" role="alert">([^<]*)</p>', body)
        assert status == 401 and found and found.group(1) == NOT_RIGHT, name


def test_sign_in_refusals_are_counted_by_reason(app: Flask, db: Database) -> None:
    add_user(db, "lead", "admin", password=PASSWORD)
    client = app.test_client()
    for _ in range(3):
        assert try_sign_in(client, "lead", "wrong", address="10.7.7.7")[0] == 401
    metrics = client.get("/api/v1/metrics").get_data(as_text=True)
    assert 'outreach_refusals_total{reason="sign_in_failed"} 3.0' in metrics


def test_ipv6_addresses_count_by_their_64_prefix() -> None:
    assert signin.address_key("2001:db8::1") == signin.address_key("2001:db8::ffff:1")
    assert signin.address_key("2001:db8::1") == "2001:db8::/64"
    assert signin.address_key("::ffff:10.0.0.1") == "10.0.0.1"
    assert signin.address_key("10.0.0.1") != signin.address_key("10.0.0.2")


# ------------------------------------------------------------------------------ admin page


def test_the_admin_page_shows_and_sets_areas_and_disables_users(
    app: Flask, db: Database, signed_in: Callable[[str], FlaskClient]
) -> None:
    add_user(db, "boss", "admin", password=PASSWORD)
    token = add_user(db, "coord", "coordinator", password=PASSWORD)
    add_user(db, "reader", "analyst")
    set_areas(db, "coord", ["North"])
    page = signed_in("boss")
    html = page.get("/admin/users").get_data(as_text=True)
    assert "North" in html and 'name="areas"' in html
    assert html.count('name="areas"') == 1  # a form for the coordinator only
    form = csrf(html)
    refused = page.post("/admin/users/areas", data={"name": "coord", "areas": "South"})
    assert refused.status_code == 400 and areas_of(db, "coord") == ["North"]  # no CSRF token
    done = page.post(
        "/admin/users/areas", data={"csrf_token": form, "name": "coord", "areas": "South\nEast"}
    )
    assert done.status_code == 302 and areas_of(db, "coord") == ["East", "South"]
    principal = authenticate(db, token)
    assert principal is not None and principal.areas == {"East", "South"}  # next request
    assert "coord now works in: East, South." in page.get("/admin/users").get_data(as_text=True)
    wrong = page.post(
        "/admin/users/areas", data={"csrf_token": form, "name": "reader", "areas": "South"}
    )
    # The error page starts the reason with a capital letter.
    assert wrong.status_code == 400 and "Only coordinators have areas" in wrong.get_data(
        as_text=True
    )
    page.post("/admin/users/disable", data={"csrf_token": form, "name": "coord"})
    assert authenticate(db, token) is None and page_user(db, "coord") is None
    assert "coord is disabled" in page.get("/admin/users").get_data(as_text=True)
    page.post("/admin/users/enable", data={"csrf_token": form, "name": "coord"})
    assert page_user(db, "coord") is not None
    own = page.post("/admin/users/disable", data={"csrf_token": form, "name": "boss"})
    assert own.status_code == 400 and page_user(db, "boss") is not None
    coordinator = signed_in("coord")
    assert coordinator.post("/admin/users/disable", data={"name": "boss"}).status_code == 403


# ------------------------------------------------------------------------------------- CLI


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., tuple[int, str]]:
    runner = CliRunner()
    home = ["--home", str(tmp_path / "cli-home")]

    def run(*args: str, input: str | None = None) -> tuple[int, str]:
        result = runner.invoke(main, [*home, *args], input=input)
        assert "Traceback" not in result.output
        return result.exit_code, result.output

    return run


def cli_db(tmp_path: Path) -> Database:
    return Database(default_url(Home(tmp_path / "cli-home").root))


def test_users_commands(cli: Callable[..., tuple[int, str]], tmp_path: Path) -> None:
    code, out = cli("users", "add", "coord", "--role", "coordinator", "--days", "30")
    assert code == 0 and "expires" in out
    token = out.strip().splitlines()[-1]
    db = cli_db(tmp_path)
    assert authenticate(db, token) is not None

    code, out = cli("users", "token", "coord")
    assert code == 0
    second = out.strip().splitlines()[-1]
    code, out = cli("users", "tokens", "coord")
    assert code == 0 and out.count("active") == 2 and token not in out and second not in out

    code, out = cli("users", "areas", "coord", "North", "South")
    assert code == 0 and "'coord' now works in: North, South" in out
    assert "warning: no outreach list has these areas yet: North, South" in out
    code, out = cli("users", "areas", "coord")
    assert (code, out.strip()) == (0, "'coord' works in: North, South")
    code, out = cli("users", "list")
    assert code == 0 and re.search(r"coord\s+coordinator\s+active\s+2\s+no\s+North, South", out)

    first_id = list_tokens(db, "coord")[0].id
    code, out = cli("users", "revoke-token", "coord", "--id", str(first_id))
    assert (code, out.strip()) == (0, f"revoked token {first_id} of 'coord'")
    assert authenticate(db, token) is None
    code, out = cli("users", "revoke-token", "coord", "--token-stdin", input=second + "\n")
    assert code == 0 and "revoked token" in out and authenticate(db, second) is None
    code, out = cli("users", "revoke-token", "coord")
    assert code == 2 and "exactly one of --id ID, --all or --token-stdin" in out

    code, out = cli("users", "set-role", "coord", "analyst")
    assert code == 0 and "'coord' is now analyst (was coordinator)" in out
    assert "areas cleared (only coordinators have areas): North, South" in out
    code, out = cli("users", "set-role", "coord", "analyst")
    assert (code, out.strip()) == (0, "'coord' is already analyst; nothing changed")
    code, out = cli("users", "set-role", "coord", "chief")
    assert code == 2 and "chief" in out
    code, out = cli("users", "areas", "coord", "North")
    assert code == 2 and "only coordinators have areas" in out

    cli("users", "token", "coord")
    code, out = cli("users", "disable", "coord")
    assert (code, out.strip()) == (
        0,
        "disabled 'coord': signed out everywhere and 1 API token revoked",
    )
    code, out = cli("users", "list")
    assert re.search(r"coord\s+analyst\s+disabled\s+0", out)
    code, out = cli("users", "enable", "coord")
    assert code == 0 and "old API tokens stay revoked" in out

    code, out = cli("users", "password", "coord", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert code == 0 and "signed out everywhere and 0 API tokens revoked" in out

    for args in (
        ("users", "tokens", "ghost"),
        ("users", "disable", "ghost"),
        ("users", "enable", "ghost"),
        ("users", "set-role", "ghost", "admin"),
        ("users", "areas", "ghost"),
        ("users", "revoke-token", "ghost", "--all"),
        ("users", "token", "ghost"),
    ):
        code, out = cli(*args)
        assert code == 2 and "no user named 'ghost'" in out, args


def test_users_unlock_lifts_a_sign_in_lock(
    cli: Callable[..., tuple[int, str]], tmp_path: Path
) -> None:
    cli("users", "add", "lead", "--role", "admin")
    db = cli_db(tmp_path)
    for _ in range(5):
        signin.record_failure(db, "lead", "10.7.7.7")
    assert signin.locked_for(db, "lead", "10.7.7.7") > 0
    code, out = cli("users", "unlock", "lead")
    assert (code, out.strip()) == (0, "lifted the sign-in locks and counts on 'lead'")
    assert signin.locked_for(db, "lead", "10.7.7.7") == 0
    assert cli("users", "unlock", "lead")[1].strip() == "'lead' had no sign-in locks or counts"


def test_demo_users_get_new_passwords_and_tokens_at_every_run(tmp_path: Path) -> None:
    """The second run as the demo makes it: the passwords hashed in a process of their own
    (each printed password is the one its user signs in with)."""
    home = Home(tmp_path / "demo-home")
    first, revoked = demo_users(home)
    assert revoked == 0 and [role for _, role, _, _ in first] == list(
        ("coordinator", "analyst", "oversight", "admin")
    )
    second, revoked = demo_users(home, DemoPasswords())
    assert revoked == 4  # each user's earlier token
    db = Database(default_url(home.root))
    for (name, _, old_password, old_token), (_, _, password, token) in zip(
        first, second, strict=True
    ):
        assert password != old_password and len(password) >= 12 and "-password" not in password
        assert authenticate(db, old_token) is None and authenticate(db, token) is not None
        assert auth.check_password(db, name, password) is not None
        assert auth.check_password(db, name, old_password) is None


# ------------------------------------------------------------------------------- migration


def test_migration_0005_goes_up_and_down_on_sqlite(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    db = Database(f"sqlite:///{tmp_path / 'migrate.db'}")
    db.upgrade()

    def tables() -> set[str]:
        return set(inspect(db.engine).get_table_names())

    assert "sign_in_counters" in tables()
    signin.record_failure(db, "lead", "10.0.0.1")
    config = Config()
    config.set_main_option("script_location", str(ROOT / "store" / "migrations"))
    config.set_main_option("sqlalchemy.url", db.url)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")
    assert "sign_in_counters" not in tables() and "user_areas" in tables()
    db.upgrade()
    assert "sign_in_counters" in tables()
    signin.record_failure(db, "lead", "10.0.0.1")
    assert signin.locked_for(db, "lead", "10.0.0.1") == 0


@pytest.mark.parametrize("area", ["North, South", "tab\there", "nul\x00"])
def test_an_area_name_with_a_comma_or_control_character_is_refused(db: Database, area: str) -> None:
    add_user(db, "field", "coordinator")
    with pytest.raises(BadInputError, match="no comma or control character"):
        set_areas(db, "field", [area])


def test_a_user_name_with_a_control_character_signs_in_nobody(app: Flask, db: Database) -> None:
    add_user(db, "lead", "admin", password=PASSWORD)
    assert try_sign_in(app.test_client(), "lead\x00", PASSWORD)[0] == 401
    with pytest.raises(BadInputError, match="printable"):
        add_user(db, "odd\x01name", "analyst")
