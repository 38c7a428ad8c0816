"""Sign-in protection for the pages: counters in the database, shared by every worker.

Three rules, each a counter per key in ``sign_in_counters`` (so every worker and every restart
sees the same counts):

1. **Per address** (:data:`ADDRESS`): at most 20 sign-in attempts a minute from one address
   (an IPv6 address counts as its /64), right or wrong; past that, a minute's wait (429 with
   ``Retry-After``). Checked *before* any password is hashed: a scrypt check costs about 90 ms,
   so this also bounds the CPU one address can make the service spend. A successful sign-in
   gives its attempt back, so an office behind one address is not held up by its own people;
   at most 60 a minute per address do (:data:`ADDRESS_SUCCESSES`), so one valid account
   signing in over and over cannot make the service hash without end.
2. **Per name at one address** (:data:`NAME_AT_ADDRESS`): 5 wrong passwords for one name within
   10 minutes lock that name *from that address* for 5 minutes; each further lock lasts twice as
   long as the one before, up to 1 hour. The right password clears the count; a lock is
   forgotten a day after it ends.
3. **Per name from anywhere** (:data:`NAME`): 50 wrong passwords for one name within an hour,
   from any addresses, lock that name everywhere for 15 minutes (the lock does not grow).

While a lock holds, every attempt is refused without hashing, even with the right password,
and the answer is the same whether or not the name exists (unknown names are counted and locked
alike). After the lock ends the right password signs in as usual. An administrator can lift a
name's locks at once: ``outreach users unlock NAME``.

**The trade-off.** A lock keyed on the name alone would let anyone who knows a colleague's name
keep them out for good with 5 guesses every few minutes. Keyed on (name, address), rule 2 locks
only the guesser's address, and the colleague at their own address signs in undisturbed. Its
weakness is guessing spread over many addresses, which rule 3 caps at 50 guesses an hour per
name. The price of rule 3: someone controlling several addresses (rule 2 leaves each about 20
guesses in its first hour) can delay a colleague's sign-in by 15 minutes at a time, but never
from one address, never for longer than they keep it up, and an administrator can lift it.

**Storage.** One row per key. Rows are deleted once their window, any lock and the lock's memory
have all passed (on every attempt, by an indexed ``forget_at``); pruning looks only at time,
never at the number of rows, so a flood of made-up names can neither clear nor shorten a lock.
The number of rows is bounded by rule 1: each address adds at most 20 keys a minute. Names are
stored as sha256 digests, so a password typed into the name field is not kept in the clear.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, cast

from sqlalchemy import (
    Connection,
    Delete,
    Insert,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from store.db import Database, SignInCounter

#: How long a lock is remembered after it ends, for the next one to last twice as long.
LOCK_MEMORY = 24 * 3600.0


@dataclass(frozen=True)
class Rule:
    """``limit`` counted events within ``window`` seconds lock the key for ``lock`` seconds, then
    twice as long at each further lock, up to ``cap``."""

    kind: str
    limit: int
    window: float
    lock: float
    cap: float


ADDRESS = Rule("address", limit=20, window=60.0, lock=60.0, cap=60.0)
NAME_AT_ADDRESS = Rule("name_address", limit=5, window=600.0, lock=300.0, cap=3600.0)
NAME = Rule("name", limit=50, window=3600.0, lock=900.0, cap=900.0)
#: Successes that give their attempt back under rule 1: past 60 a minute from one address they
#: count like any attempt, so one valid account cannot make the service hash without end.
ADDRESS_SUCCESSES = Rule("address_success", limit=60, window=60.0, lock=60.0, cap=60.0)


@dataclass(frozen=True)
class Refusal:
    """Why an attempt is refused before any password is checked, and for how long."""

    reason: Literal["address", "name"]
    retry_after: int  # seconds

    @property
    def message(self) -> str:
        wait = _wait_words(self.retry_after)
        if self.reason == "address":
            return f"Too many sign-in attempts from your address. Please wait {wait} and try again."
        return f"Too many failed attempts for this user name. Please wait {wait} and try again."


def _wait_words(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def address_key(address: str | None) -> str:
    """The key an address is counted under: an IPv6 address by its /64 (one host's share)."""
    text = (address or "").strip()
    try:
        parsed = ipaddress.ip_address(text)
    except ValueError:
        return text[:100] or "unknown"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


def name_key(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()


def _keys(name: str, address: str | None) -> dict[Rule, str]:
    digest = name_key(name)
    return {NAME_AT_ADDRESS: f"{digest} {address_key(address)}", NAME: digest}


def before_attempt(
    db: Database, name: str, address: str | None, *, now: float | None = None
) -> Refusal | None:
    """Count an attempt from ``address``; a refusal if the address or the name is locked.

    Call before checking the password: a refusal means nothing is hashed.
    """
    now = time.time() if now is None else now
    keys = _keys(name, address)
    with db.transaction() as connection:
        _prune(connection, now)
        address_lock = _locked_until(connection, ADDRESS, address_key(address), now)
        if address_lock:
            return Refusal("address", _seconds(address_lock - now))
        _count(connection, ADDRESS, address_key(address), now)
        name_lock = max(_locked_until(connection, rule, key, now) for rule, key in keys.items())
        if name_lock:
            return Refusal("name", _seconds(name_lock - now))
    return None


def record_failure(
    db: Database, name: str, address: str | None, *, now: float | None = None
) -> None:
    """Count a wrong password (or unknown name, or disabled user) for ``name`` at ``address``."""
    now = time.time() if now is None else now
    with db.transaction() as connection:
        for rule, key in _keys(name, address).items():
            _count(connection, rule, key, now)
        _prune(connection, now)


def record_success(
    db: Database, name: str, address: str | None, *, now: float | None = None
) -> None:
    """The right password: clear the name's count at this address and give the attempt back
    (at most :data:`ADDRESS_SUCCESSES` a minute per address).

    The name's count from anywhere (rule 3) stays until its hour passes: one success must not
    give guessers elsewhere a fresh allowance.
    """
    now = time.time() if now is None else now
    with db.transaction() as connection:
        _count(connection, ADDRESS_SUCCESSES, address_key(address), now)
        refund = not _locked_until(connection, ADDRESS_SUCCESSES, address_key(address), now)
        connection.execute(
            delete(SignInCounter).where(
                SignInCounter.kind == NAME_AT_ADDRESS.kind,
                SignInCounter.key == _keys(name, address)[NAME_AT_ADDRESS],
            )
        )
        if not refund:
            return
        connection.execute(
            update(SignInCounter)
            .where(
                SignInCounter.kind == ADDRESS.kind,
                SignInCounter.key == address_key(address),
                SignInCounter.count > 0,
            )
            .values(count=SignInCounter.count - 1)
        )


def unlock(db: Database, name: str) -> int:
    """Lift every lock and count on ``name``, at every address; how many counters were removed."""
    digest = name_key(name)
    with db.transaction() as connection:
        removed = connection.execute(
            delete(SignInCounter).where(
                or_(
                    and_(SignInCounter.kind == NAME.kind, SignInCounter.key == digest),
                    and_(
                        SignInCounter.kind == NAME_AT_ADDRESS.kind,
                        SignInCounter.key.startswith(f"{digest} "),
                    ),
                )
            )
        )
    return int(removed.rowcount or 0)


def locked_for(db: Database, name: str, address: str | None, *, now: float | None = None) -> float:
    """Seconds until ``name`` may try again from ``address`` (0: not locked); for reports."""
    now = time.time() if now is None else now
    with db.transaction() as connection:
        until = max(
            _locked_until(connection, rule, key, now) for rule, key in _keys(name, address).items()
        )
    return max(0.0, until - now) if until else 0.0


def _seconds(span: float) -> int:
    return max(1, math.ceil(span))


def _locked_until(connection: Connection, rule: Rule, key: str, now: float) -> float:
    until = connection.execute(_statements().locked_until, _params(rule, key, now)).scalar()
    return float(until) if until is not None and until > now else 0.0


def _params(rule: Rule, key: str, now: float) -> dict[str, Any]:
    return {"p_kind": rule.kind, "p_key": key, "p_now": now, "p_forget": now + rule.window}


def _table() -> Table:
    return cast(Table, SignInCounter.__table__)


@dataclass(frozen=True)
class _Statements:
    """The statements a count needs, built once (their parameters bound at each call)."""

    locked_until: Select[Any]
    insert: Insert
    current: Select[Any]
    store: Update
    prune: Delete


_NEW_ROW = {
    "kind": bindparam("p_kind"),
    "key": bindparam("p_key"),
    "count": 0,
    "window_start": bindparam("p_now"),
    "locks": 0,
    "locked_until": 0.0,
    "forget_at": bindparam("p_forget"),
}


@cache
def _statements() -> _Statements:
    c = _table().c
    this = and_(c.kind == bindparam("p_kind"), c.key == bindparam("p_key"))
    return _Statements(
        locked_until=select(c.locked_until).where(this),
        insert=insert(_table()).values(_NEW_ROW),
        current=select(c.count, c.window_start, c.locks, c.locked_until)
        .where(this)
        .with_for_update(),
        store=update(_table())
        .where(this)
        .values(
            count=bindparam("p_count"),
            window_start=bindparam("p_start"),
            locks=bindparam("p_locks"),
            locked_until=bindparam("p_until"),
            forget_at=bindparam("p_forget"),
        ),
        prune=delete(_table()).where(c.forget_at < bindparam("p_now")),
    )


@cache
def _insert_or_skip(dialect: str) -> Insert | None:
    """``INSERT ... ON CONFLICT DO NOTHING`` where the dialect has it."""
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(_table()).values(_NEW_ROW).on_conflict_do_nothing()
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(_table()).values(_NEW_ROW).on_conflict_do_nothing()
    return None


def _insert_if_missing(connection: Connection, params: dict[str, Any]) -> None:
    """Insert the key's row unless it exists (another worker may be inserting it right now)."""
    statement = _insert_or_skip(connection.dialect.name)
    if statement is not None:
        connection.execute(statement, params)
        return
    if connection.execute(_statements().locked_until, params).first() is not None:
        return
    try:
        with connection.begin_nested():
            connection.execute(_statements().insert, params)
    except IntegrityError:
        pass


def _count(connection: Connection, rule: Rule, key: str, now: float) -> None:
    """One more event under ``key``; lock it when the rule's limit is reached."""
    params = _params(rule, key, now)
    _insert_if_missing(connection, params)
    row = connection.execute(_statements().current, params).one()
    count, window_start = int(row[0]), float(row[1])
    locks, locked_until = int(row[2]), float(row[3])
    if now - window_start >= rule.window:
        count, window_start = 0, now
    if locks and locked_until + LOCK_MEMORY <= now:
        locks = 0  # a quiet day: the next lock starts short again
    count += 1
    if count >= rule.limit:
        locks += 1
        locked_until = max(locked_until, now + min(rule.lock * 2 ** (locks - 1), rule.cap))
        count, window_start = 0, now
    forget_at = max(window_start + rule.window, locked_until + (LOCK_MEMORY if locks else 0.0))
    connection.execute(
        _statements().store,
        {
            **params,
            "p_count": count,
            "p_start": window_start,
            "p_locks": locks,
            "p_until": locked_until,
            "p_forget": forget_at,
        },
    )


def _prune(connection: Connection, now: float) -> None:
    """Delete rows whose window, lock and lock memory have all passed (time only, never count)."""
    connection.execute(_statements().prune, {"p_now": now})
