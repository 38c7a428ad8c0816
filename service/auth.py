"""Users, roles and API tokens: one role-to-route table, tokens shown once and stored hashed."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from functools import cache

from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from model.errors import BadInputError
from service.db import Database, Token, User

ROLES = ("coordinator", "analyst", "oversight", "admin")

#: Which roles may use each route; the only place access is decided.
ROUTE_ROLES: dict[str, frozenset[str]] = {
    "score": frozenset({"coordinator"}),
    "queue": frozenset({"coordinator"}),
    "outcome": frozenset({"coordinator"}),
    "opt_out": frozenset({"coordinator"}),
    "model": frozenset({"coordinator", "analyst", "oversight"}),
    "audits": frozenset({"analyst", "oversight"}),
    "access_log": frozenset({"oversight"}),
    "users": frozenset({"admin"}),
    # Pages only.
    "outreach_list": frozenset({"coordinator"}),
    "releases": frozenset({"oversight"}),
    "decide_release": frozenset({"oversight"}),
    "policy": frozenset({"oversight", "analyst"}),
    "monitoring": frozenset({"oversight"}),
    "versions": frozenset({"analyst", "oversight"}),
}


@dataclass(frozen=True)
class Principal:
    """Who is calling."""

    name: str
    role: str
    #: The areas a coordinator acts in (``service.queue``); empty for everyone else.
    areas: frozenset[str] = frozenset()

    def may(self, route: str) -> bool:
        return self.role in ROUTE_ROLES[route]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(db: Database, name: str, role: str, *, password: str | None = None) -> str:
    """Create a user and return a new API token (shown once; only its hash is stored)."""
    if role not in ROLES:
        raise BadInputError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    name = name.strip()
    if not name or len(name) > 120:
        raise BadInputError("a user name must have 1 to 120 characters")
    if password is not None:
        _check_password_text(password)
    token = secrets.token_urlsafe(32)
    with db.session() as session:
        if session.scalar(select(User).where(User.name == name)) is not None:
            raise BadInputError(f"a user named {name!r} already exists")
        user = User(
            name=name,
            role=role,
            password_hash=generate_password_hash(password) if password else None,
        )
        session.add(user)
        session.flush()
        session.add(Token(user_id=user.id, token_hash=hash_token(token), revoked=False))
    return token


MIN_PASSWORD = 12


@cache
def _dummy_hash() -> str:
    return generate_password_hash("not the password of anyone")


def _check_password_text(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise BadInputError(f"a password must have at least {MIN_PASSWORD} characters")
    if len(password) > 1000:
        raise BadInputError("a password may have at most 1,000 characters")


def set_password(db: Database, name: str, password: str) -> None:
    """Set or replace a user's password for the web pages (stored as a scrypt hash)."""
    _check_password_text(password)
    with db.session() as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            raise BadInputError(f"no user named {name!r}")
        user.password_hash = generate_password_hash(password)
        user.session_epoch = (user.session_epoch or 0) + 1  # old sessions end


@dataclass(frozen=True)
class PageUser:
    """A user as the pages see them: who, which role now, and the current session epoch."""

    principal: Principal
    epoch: int


def page_user(db: Database, name: str) -> PageUser | None:
    """The user ``name`` if they may sign in to the pages (they have a password)."""
    with db.session() as session:
        row = session.execute(
            select(User.name, User.role, User.session_epoch, User.password_hash).where(
                User.name == name
            )
        ).first()
    if row is None or not row.password_hash:
        return None
    return PageUser(Principal(row.name, row.role), int(row.session_epoch or 0))


def end_sessions(db: Database, name: str) -> None:
    """End every page session of ``name`` (signing out signs out everywhere)."""
    with db.session() as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is not None:
            user.session_epoch = (user.session_epoch or 0) + 1


def issue_token(db: Database, name: str) -> str:
    """A new API token for an existing user (shown once)."""
    token = secrets.token_urlsafe(32)
    with db.session() as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            raise BadInputError(f"no user named {name!r}")
        session.add(Token(user_id=user.id, token_hash=hash_token(token), revoked=False))
    return token


class TokenCache:
    """Recently verified tokens (by hash) for a few seconds, so a request skips the lookup.

    A revoked token stops working within ``ttl`` seconds.
    """

    def __init__(self, ttl: float = 30.0, size: int = 10_000) -> None:
        self.ttl, self.size = ttl, size
        self._seen: dict[str, tuple[float, Principal]] = {}

    def get(self, digest: str) -> Principal | None:
        hit = self._seen.get(digest)
        if hit is None or time.monotonic() - hit[0] > self.ttl:
            return None
        return hit[1]

    def put(self, digest: str, principal: Principal) -> None:
        if len(self._seen) >= self.size:
            self._seen.clear()
        self._seen[digest] = (time.monotonic(), principal)


def authenticate(db: Database, token: str, *, cache: TokenCache | None = None) -> Principal | None:
    """The user a bearer token belongs to, or ``None``."""
    if not token or len(token) > 200:
        return None
    digest = hash_token(token)
    if cache is not None and (known := cache.get(digest)) is not None:
        return known
    with db.session() as session:
        row = session.execute(
            select(User.name, User.role, Token.token_hash)
            .join(Token, Token.user_id == User.id)
            .where(Token.token_hash == digest, Token.revoked.is_(False))
        ).first()
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    principal = Principal(row.name, row.role)
    if cache is not None:
        cache.put(digest, principal)
    return principal


def check_password(db: Database, name: str, password: str) -> Principal | None:
    """The user for a name and password, or ``None``."""
    with db.session() as session:
        user = session.scalar(select(User).where(User.name == name))
        stored = user.password_hash if user is not None else None
    # Hash even for an unknown name, so the time taken does not tell which names exist.
    matches = check_password_hash(stored or _dummy_hash(), password)
    if user is None or not stored or not matches:
        return None
    return Principal(user.name, user.role)
