"""The score endpoint's two per-request reads on a plain SQLite connection
(:meth:`store.db.Database.plain_rows`): the token's user and the opt-outs among the records give
what the SQLAlchemy snapshot gives, and a database that is not a SQLite file keeps the snapshot."""

from __future__ import annotations

import os
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from store import accounts
from store.accounts import add_user, authenticate, set_areas
from store.db import Database, OptOut, Token, default_url, utcnow
from store.queue import opted_out_among


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(default_url(tmp_path))
    database.upgrade()
    return database


def _snapshot_only(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "plain_rows", lambda sql, params: None)


def test_opt_outs_read_plainly_are_those_the_snapshot_reads(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    with db.session() as session:
        session.add_all(
            OptOut(person_id=p, recorded_by="test", reason="asked") for p in ("p1", "p3", "p'4")
        )
    asked = [["p1"], ["p2"], ["p1", "p2", "p3", "p'4", "p1"], [], [f"q{i}" for i in range(1500)]]
    statements: list[str] = []
    original = db.plain_rows
    monkeypatch.setattr(db, "plain_rows", lambda sql, p: statements.append(sql) or original(sql, p))
    plain = [opted_out_among(db, people) for people in asked]
    assert len(statements) == 3  # one plain read each; none for no ids, the 1,500 in parts
    _snapshot_only(db, monkeypatch)
    assert plain == [opted_out_among(db, people) for people in asked]
    assert plain[:4] == [{"p1"}, set(), {"p1", "p3", "p'4"}, set()]


def test_a_token_read_plainly_is_judged_as_before(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    coordinator = add_user(db, "c", "coordinator")
    set_areas(db, "c", ["North", "South"])
    analyst = add_user(db, "a", "analyst")
    expired = add_user(db, "e", "analyst")
    with db.session() as session:
        session.execute(
            update(Token)
            .where(Token.token_hash == accounts.hash_token(expired))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    revoked = add_user(db, "r", "analyst")
    with db.session() as session:  # revoked as revoke-token does it: the flag on its row
        session.execute(
            update(Token)
            .where(Token.token_hash == accounts.hash_token(revoked))
            .values(revoked=True)
        )
    tokens = [coordinator, analyst, expired, revoked, "not-a-token", ""]
    statements: list[str] = []
    original = db.plain_rows
    monkeypatch.setattr(db, "plain_rows", lambda sql, p: statements.append(sql) or original(sql, p))
    plain = [authenticate(db, t) for t in tokens]
    assert len(statements) == 5  # every token but the empty one, read plainly
    _snapshot_only(db, monkeypatch)
    assert plain == [authenticate(db, t) for t in tokens]
    first, second = plain[0], plain[1]
    assert first is not None and first.areas == frozenset({"North", "South"})
    assert second is not None and (second.name, second.role) == ("a", "analyst")
    assert plain[2:] == [None, None, None, None]


def test_a_database_that_is_no_sqlite_file_reads_through_the_snapshot(tmp_path: Path) -> None:
    memory = Database("sqlite://")
    memory.upgrade()
    assert memory.plain_rows("SELECT 1", ()) is None
    token = add_user(memory, "m", "analyst")
    found = authenticate(memory, token)
    assert found is not None and found.name == "m"
    assert opted_out_among(memory, ["x"]) == set()


def test_each_process_opens_its_own_connection(db: Database) -> None:
    assert db.plain_rows("SELECT 1", ()) == [(1,)]
    pid = os.fork()
    if pid == 0:  # the child reads through a connection of its own, not the parent's
        ok = db.plain_rows("SELECT count(*) FROM users", ()) == [(0,)]
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with pytest.raises(sqlite3.Error, match=r"readonly|read-only|attempt to write"):
        db.plain_rows(
            "INSERT INTO opt_outs (person_id, recorded_by, reason) VALUES ('x','y','')", ()
        )
