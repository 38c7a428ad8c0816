"""Users, roles and API tokens: one role-to-route table, tokens shown once and stored hashed.

Lifecycle: a token expires (``OUTREACH_TOKEN_DAYS``, default 90 days, or ``days=`` when issued)
and is refused once revoked, expired, or its user disabled. Every check reads the database, on
every request, so a revocation, a disabled user, a new role or new areas apply to the very next
request in every worker (there is no per-worker token cache: one indexed read on a snapshot
costs about 0.13 ms, see ``authenticate``). A role change ends the user's page sessions and
keeps their tokens, which carry the new role from the next request; leaving the coordinator role
clears the user's areas. A new password, or disabling a user, revokes every token and ends every
page session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import Select, and_, bindparam, delete, func, select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from kernel.errors import BadInputError
from kernel.settings import current
from model.rules import MAX_NAME, name_problem
from store.db import Database, QueueEntry, Token, User, UserArea, new_uid, utcnow

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
    # Requests for review of a listing (store.review_requests): coordinators file them, the board
    # (and admins) read and decide them; only the board reads the counts by group.
    "review_file": frozenset({"coordinator"}),
    "review_list": frozenset({"oversight", "admin"}),
    "review_decide": frozenset({"oversight", "admin"}),
    "review_summary": frozenset({"oversight"}),
    # Aggregates after release (never a person): the API and the page.
    "monitoring": frozenset({"oversight", "analyst"}),
    # The explanation a person can be given (API and printable page), and "about this score".
    "explanation": frozenset({"coordinator"}),
    "about": frozenset({"coordinator", "analyst", "oversight"}),
    # Pages only.
    "outreach_list": frozenset({"coordinator"}),
    "releases": frozenset({"oversight"}),
    "decide_release": frozenset({"oversight"}),
    "policy": frozenset({"oversight", "analyst"}),
    "versions": frozenset({"analyst", "oversight"}),
}


@dataclass(frozen=True)
class Principal:
    """Who is calling."""

    name: str
    role: str
    #: The areas a coordinator acts in (``store.queue``); empty for everyone else.
    areas: frozenset[str] = frozenset()

    def may(self, route: str) -> bool:
        return self.role in ROUTE_ROLES[route]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


#: How long a new API token works unless ``OUTREACH_TOKEN_DAYS`` or ``days=`` says otherwise.
DEFAULT_TOKEN_DAYS = 90
MAX_TOKEN_DAYS = 3650
TOKEN_DAYS_ENV = "OUTREACH_TOKEN_DAYS"


def default_token_days() -> int:
    """Days a new token works: ``OUTREACH_TOKEN_DAYS`` (from the settings the entry point
    resolved, :func:`kernel.settings.current`) or 90."""
    raw = (current().token_days or "").strip()
    if not raw:
        return DEFAULT_TOKEN_DAYS
    return _token_days(raw, source=TOKEN_DAYS_ENV)


def _token_days(value: object, *, source: str = "days") -> int:
    try:
        days = int(str(value))
    except ValueError:
        days = 0
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise BadInputError(
            f"{source} must be a whole number of days from 1 to {MAX_TOKEN_DAYS}, not {value!r}"
        )
    return days


def _new_token(session: Session, user: User, days: int | None) -> str:
    """Add a token for ``user``; returns the token itself (only its sha256 is stored)."""
    lifetime = default_token_days() if days is None else _token_days(days)
    token = secrets.token_urlsafe(32)
    session.add(
        Token(
            user_id=user.id,
            user_uid=user.uid,
            token_hash=hash_token(token),
            revoked=False,
            expires_at=utcnow() + timedelta(days=lifetime),
        )
    )
    return token


def _user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise BadInputError(f"no user named {name!r}")
    return user


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise BadInputError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")


@dataclass(frozen=True)
class PasswordHash:
    """A password's stored form (scrypt), made by :func:`hash_password`: ahead of the
    transaction that stores it, or in another process."""

    value: str


def hash_password(password: str) -> PasswordHash:
    """The stored form of a password for the web pages, its length checked first (about a
    third of a second of CPU: scrypt's cost, on purpose)."""
    _check_password_text(password)
    return PasswordHash(generate_password_hash(password))


def _stored(password: str | PasswordHash) -> str:
    return password.value if isinstance(password, PasswordHash) else hash_password(password).value


def add_user(
    db: Database,
    name: str,
    role: str,
    *,
    password: str | PasswordHash | None = None,
    days: int | None = None,
) -> str:
    """Create a user and return a new API token (shown once; only its hash is stored).

    The token works for ``days`` (default :func:`default_token_days`). The password, if any, is
    hashed before the transaction (:func:`hash_password`), not while it holds the database.
    """
    _check_role(role)
    problem = name_problem(name)  # the one rule for the name of who acts (model.rules)
    if problem is not None:
        raise BadInputError(
            f"a user name must have 1 to {MAX_NAME} printable characters: it {problem}"
        )
    name = name.strip()
    if isinstance(password, str):
        _check_password_text(password)
    if days is not None:
        _token_days(days)
    stored = _stored(password) if password is not None else None
    with db.session() as session:
        if session.scalar(select(User).where(User.name == name)) is not None:
            raise BadInputError(f"a user named {name!r} already exists")
        user = User(
            id=_unused_user_id(session),
            name=name,
            role=role,
            password_hash=stored,
            uid=new_uid(),
        )
        session.add(user)
        session.flush()
        return _new_token(session, user, days)


def _unused_user_id(session: Session) -> int | None:
    """On SQLite, an id above every id a user ever had (rows left by a user deleted by hand,
    tokens and areas included): SQLite would otherwise give the largest id again once its row
    is gone. PostgreSQL's sequence never gives one twice (``None``: its default)."""
    if session.get_bind().dialect.name != "sqlite":
        return None
    highest = max(
        session.scalar(select(func.max(User.id))) or 0,
        session.scalar(select(func.max(Token.user_id))) or 0,
        session.scalar(select(func.max(UserArea.user_id))) or 0,
    )
    return int(highest) + 1


def delete_user(db: Database, name: str) -> int:
    """Remove a user: first every token is revoked and every page session ended (committed on
    its own, so nothing of theirs works even if the removal fails), then the user, their areas
    and their tokens are deleted. Returns how many tokens were revoked."""
    with db.session() as session:
        user = _user(session, name)
        _end_sessions(user)
        revoked = _revoke_all(session, user)
    with db.session() as session:
        user = _user(session, name)
        session.execute(delete(UserArea).where(UserArea.user_id == user.id))
        session.execute(delete(Token).where(Token.user_id == user.id))
        session.delete(user)
    return revoked


MIN_PASSWORD = 12


@cache
def _dummy_hash() -> str:
    return generate_password_hash("not the password of anyone")


def _check_password_text(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise BadInputError(f"a password must have at least {MIN_PASSWORD} characters")
    if len(password) > 1000:
        raise BadInputError("a password may have at most 1,000 characters")


def _revoke_all(session: Session, user: User) -> int:
    """Revoke every token of ``user`` not yet revoked; how many there were."""
    result = session.execute(
        update(Token).where(Token.user_id == user.id, Token.revoked.is_(False)).values(revoked=True)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _end_sessions(user: User) -> None:
    user.session_epoch = (user.session_epoch or 0) + 1


def set_password(db: Database, name: str, password: str | PasswordHash) -> int:
    """Set or replace a user's password for the web pages (stored as a scrypt hash, made
    before the transaction).

    Ends every page session of the user and revokes every API token they hold (someone who
    knew the old password may have made one); returns how many tokens were revoked.
    """
    stored = _stored(password)
    with db.session() as session:
        user = _user(session, name)
        user.password_hash = stored
        _end_sessions(user)
        return _revoke_all(session, user)


@dataclass(frozen=True)
class PageUser:
    """A user as the pages see them: who, which role now, and the current session epoch."""

    principal: Principal
    epoch: int
    #: The user's opaque id: a session is bound to it (a re-created name starts none).
    uid: str | None = None


def page_user(db: Database, name: str) -> PageUser | None:
    """The user ``name`` if they may sign in to the pages (a password, not disabled)."""
    with db.snapshot() as connection:
        rows = connection.execute(_page_user_query(), {"name": name}).all()
    if not rows or not rows[0].password_hash or rows[0].disabled:
        return None
    first = rows[0]
    principal = Principal(first.name, first.role, _areas(first.role, (r.area for r in rows)))
    return PageUser(principal, int(first.session_epoch or 0), first.uid)


@cache
def _page_user_query() -> Select[str, str, int, str | None, bool, str, str | None]:
    """Read at every page request; built once."""
    return (
        select(
            User.name,
            User.role,
            User.session_epoch,
            User.password_hash,
            User.disabled,
            UserArea.area,
            User.uid,
        )
        .outerjoin(UserArea, UserArea.user_id == User.id)
        .where(User.name == bindparam("name"))
    )


def _areas(role: str, found: Iterable[str | None]) -> frozenset[str]:
    return frozenset(a for a in found if a) if role == "coordinator" else frozenset()


def end_sessions(db: Database, name: str) -> None:
    """End every page session of ``name`` (signing out signs out everywhere)."""
    with db.session() as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is not None:
            _end_sessions(user)


def issue_token(db: Database, name: str, *, days: int | None = None) -> str:
    """A new API token for an existing, enabled user (shown once), working for ``days``."""
    with db.session() as session:
        user = _user(session, name)
        if user.disabled:
            raise BadInputError(f"{name!r} is disabled; enable the user first")
        return _new_token(session, user, days)


def authenticate(db: Database, token: str) -> Principal | None:
    """The user a bearer token belongs to, or ``None`` if it is unknown, revoked, expired or its
    user is disabled.

    Read from the database on every call, so a change applies to the next request in every
    worker. One indexed read on a snapshot (no writer's lock): about 0.13 ms median on SQLite,
    against 1 us for the per-worker cache this replaced, whose 30 s grace let a revoked token
    keep working (measurements in docs/api-and-pages.md, "Tokens and accounts").
    """
    if not token or len(token) > 200:
        return None
    digest = hash_token(token)
    plain = db.plain_rows(_token_sql(), (digest,))  # SQLite: one plain read (the hot path)
    if plain is not None:
        rows: Sequence[Any] = [_TokenRow(*row) for row in plain]
    else:
        with db.snapshot() as connection:
            rows = connection.execute(_token_query(), {"digest": digest}).all()
    if not rows:
        return None
    first = rows[0]
    if first.disabled or not hmac.compare_digest(first.token_hash, digest):
        return None
    if not _in_future(_moment(first.expires_at)):  # no expiry: refused, nothing lives forever
        return None
    return Principal(first.name, first.role, _areas(first.role, (r.area for r in rows)))


class _TokenRow(NamedTuple):
    """A row of the token query as SQLite returns it to :meth:`Database.plain_rows`."""

    name: str
    role: str
    disabled: int
    token_hash: str
    expires_at: str | None
    area: str | None


def _moment(value: datetime | str | None) -> datetime | None:
    """A stored moment: as SQLAlchemy reads it, or SQLite's text of it."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


@cache
def _token_sql() -> str:
    """The token query as SQLite text (one ``?``: the digest), compiled once."""
    from sqlalchemy.dialects import sqlite

    compiled = _token_query().compile(dialect=sqlite.dialect())
    assert list(compiled.positiontup or ()) == ["digest"], compiled.positiontup
    return str(compiled)


@cache
def _token_query() -> Select[str, str, bool, str, datetime | None, str]:
    """The hot path's one query, built once (building it costs as much as running it)."""
    return (
        select(
            User.name,
            User.role,
            User.disabled,
            Token.token_hash,
            Token.expires_at,
            UserArea.area,
        )
        # Bound to the user's opaque id: a user made with a reused integer id gets no token.
        .join(Token, and_(Token.user_id == User.id, Token.user_uid == User.uid))
        .outerjoin(UserArea, UserArea.user_id == User.id)
        .where(Token.token_hash == bindparam("digest"), Token.revoked.is_(False))
    )


def _in_future(moment: datetime | None) -> bool:
    if moment is None:
        return False
    if moment.tzinfo is None:  # SQLite keeps no zone; everything is stored in UTC
        moment = moment.replace(tzinfo=UTC)
    return moment > utcnow()


def check_password(db: Database, name: str, password: str) -> Principal | None:
    """The user for a name and password, or ``None`` (also for a disabled user)."""
    with db.session() as session:
        user = session.scalar(select(User).where(User.name == name))
        stored = user.password_hash if user is not None else None
    # Hash even for an unknown name, so the time taken does not tell which names exist.
    matches = check_password_hash(stored or _dummy_hash(), password)
    if user is None or not stored or not matches or user.disabled:
        return None
    return Principal(user.name, user.role)


# --------------------------------------------------------------------------- areas


MAX_AREA = 120


def _clean_areas(areas: Iterable[str]) -> list[str]:
    cleaned = set()
    for area in areas:
        text = str(area).strip()
        if not 1 <= len(text) <= MAX_AREA:
            raise BadInputError(
                f"an area name must have 1 to {MAX_AREA} characters, not {len(text)}: {text[:40]!r}"
            )
        if "," in text or not text.isprintable():
            raise BadInputError(
                f"an area name may hold no comma or control character: {text[:40]!r}"
                " (the users page separates areas with commas)"
            )
        cleaned.add(text)
    return sorted(cleaned)


def _replace_areas(session: Session, user: User, areas: list[str]) -> None:
    session.execute(delete(UserArea).where(UserArea.user_id == user.id))
    session.add_all(UserArea(user_id=user.id, area=area) for area in areas)


def set_areas(db: Database, name: str, areas: Iterable[str]) -> list[str]:
    """Replace the areas coordinator ``name`` acts in (an empty list clears them).

    Area names are stripped and must have 1 to 120 characters, no comma and no control
    character; ``*`` stands for every area
    (``store.queue``). Only coordinators have areas. Applies from the user's next request.
    Returns the areas now set, sorted.
    """
    cleaned = _clean_areas(areas)
    with db.session() as session:
        user = _user(session, name)
        if cleaned and user.role != "coordinator":
            raise BadInputError(
                f"only coordinators have areas; {name!r} is {_article(user.role)} {user.role}"
            )
        _replace_areas(session, user, cleaned)
    return cleaned


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def areas_of(db: Database, name: str) -> list[str]:
    """The areas ``name`` acts in, sorted."""
    with db.session() as session:
        user = _user(session, name)
        return sorted(
            session.scalars(select(UserArea.area).where(UserArea.user_id == user.id)).all()
        )


def known_areas(db: Database, model_name: str | None = None) -> list[str]:
    """Every area recorded on a queue entry (of ``model_name``, if given), sorted."""
    query = select(QueueEntry.area).where(QueueEntry.area.is_not(None)).distinct()
    if model_name is not None:
        query = query.where(QueueEntry.model_name == model_name)
    with db.session() as session:
        return sorted(a for a in session.scalars(query) if a)


def assign_all_areas(db: Database, name: str, model_name: str | None = None) -> list[str]:
    """Give coordinator ``name`` every area now on the queue (of ``model_name``); returns them."""
    return set_areas(db, name, known_areas(db, model_name))


# --------------------------------------------------------------------------- lifecycle


@dataclass(frozen=True)
class RoleChange:
    """What :func:`set_role` did: the role before, and the areas it cleared."""

    previous: str
    cleared: tuple[str, ...] = ()


def set_role(db: Database, name: str, role: str) -> RoleChange:
    """Give ``name`` a new role; leaving the coordinator role clears their areas.

    Ends the user's page sessions (when the role changes), so that they sign in again under the
    new role. Their API tokens are kept: every request reads the role afresh, so the tokens
    carry the new role from the next request (revoke them with :func:`revoke_tokens` if that is
    not wanted).
    """
    _check_role(role)
    with db.session() as session:
        user = _user(session, name)
        previous = user.role
        cleared: list[str] = []
        if role != "coordinator":
            cleared = sorted(
                session.scalars(select(UserArea.area).where(UserArea.user_id == user.id)).all()
            )
            _replace_areas(session, user, [])
        if previous != role:
            user.role = role
            _end_sessions(user)
        return RoleChange(previous, tuple(cleared))


def disable_user(db: Database, name: str) -> int:
    """Disable ``name``: no sign-in, no token; every session ends and every token is revoked.

    Returns how many tokens were revoked. Their areas are kept for when they are enabled.
    """
    with db.session() as session:
        user = _user(session, name)
        user.disabled = True
        _end_sessions(user)
        return _revoke_all(session, user)


def enable_user(db: Database, name: str) -> bool:
    """Let a disabled user sign in again (with their password; tokens stay revoked).

    Returns whether the user was disabled.
    """
    with db.session() as session:
        user = _user(session, name)
        was = bool(user.disabled)
        user.disabled = False
        return was


@dataclass(frozen=True)
class TokenInfo:
    """One API token as an administrator sees it (never the token itself)."""

    id: int
    created_at: datetime
    expires_at: datetime | None
    revoked: bool

    @property
    def status(self) -> str:
        if self.revoked:
            return "revoked"
        return "active" if _in_future(self.expires_at) else "expired"


def list_tokens(db: Database, name: str) -> list[TokenInfo]:
    """Every token of ``name``, oldest first."""
    with db.session() as session:
        user = _user(session, name)
        rows = session.execute(
            select(Token.id, Token.created_at, Token.expires_at, Token.revoked)
            .where(Token.user_id == user.id)
            .order_by(Token.id)
        ).all()
    return [TokenInfo(r.id, r.created_at, r.expires_at, bool(r.revoked)) for r in rows]


def revoke_tokens(db: Database, name: str, *, token_id: int | None = None) -> int:
    """Revoke token ``token_id`` of ``name`` (or, with ``None``, all of them); how many.

    A revoked token is refused from the next request on.
    """
    with db.session() as session:
        user = _user(session, name)
        if token_id is None:
            return _revoke_all(session, user)
        token = session.scalar(select(Token).where(Token.id == token_id, Token.user_id == user.id))
        if token is None:
            raise BadInputError(
                f"{name!r} has no token with id {token_id}; see 'outreach users tokens {name}'"
            )
        if token.revoked:
            return 0
        token.revoked = True
        return 1


def revoke_token_value(db: Database, name: str, token: str) -> int:
    """Revoke the token ``token`` itself, which must belong to ``name``; returns its id."""
    digest = hash_token(token.strip())
    with db.session() as session:
        user = _user(session, name)
        found = session.scalar(
            select(Token).where(Token.token_hash == digest, Token.user_id == user.id)
        )
        if found is None:
            raise BadInputError(f"that token is not one of {name!r}'s tokens")
        found.revoked = True
        return found.id


@dataclass(frozen=True)
class UserInfo:
    """One user as an administrator sees them."""

    name: str
    role: str
    disabled: bool
    password: bool
    areas: tuple[str, ...]
    active_tokens: int
    created_at: datetime


def list_users(db: Database) -> list[UserInfo]:
    """Every user, by name, with their areas and how many tokens work now."""
    with db.session() as session:
        users = session.scalars(select(User).order_by(User.name)).all()
        areas: dict[int, list[str]] = {}
        for user_id, area in session.execute(
            select(UserArea.user_id, UserArea.area).order_by(UserArea.area)
        ):
            areas.setdefault(user_id, []).append(area)
        active: dict[int, int] = {}
        for user_id, expires_at in session.execute(
            select(Token.user_id, Token.expires_at).where(Token.revoked.is_(False))
        ):
            if _in_future(expires_at):
                active[user_id] = active.get(user_id, 0) + 1
        return [
            UserInfo(
                name=u.name,
                role=u.role,
                disabled=bool(u.disabled),
                password=bool(u.password_hash),
                areas=tuple(areas.get(u.id, [])),
                active_tokens=0 if u.disabled else active.get(u.id, 0),
                created_at=u.created_at,
            )
            for u in users
        ]
