"""The access log: every view of a person's score is recorded first, in a hash chain.

Each row's hash covers its content and the previous row's hash, so editing or deleting any row
breaks the chain from that row on; :func:`verify` names the first broken row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from service.db import AccessLogRow, Database

GENESIS = "0" * 64


def _digest(previous: str, fields: dict[str, object]) -> str:
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((previous + body).encode()).hexdigest()


def _fields(row: AccessLogRow) -> dict[str, object]:
    return {
        "at": row.at,
        "user": row.user,
        "role": row.role,
        "action": row.action,
        "purpose": row.purpose,
        "subject_ids": list(row.subject_ids),
        "model_version": row.model_version,
        "request_id": row.request_id,
        "allowed": bool(row.allowed),
    }


def append(
    session: Session | Connection,
    *,
    user: str,
    role: str,
    action: str,
    purpose: str,
    subject_ids: Sequence[str],
    model_version: str,
    request_id: str,
    allowed: bool = True,
) -> str:
    """Add a row to the chain inside ``session``'s transaction (committed with it).

    Returns the row's hash. Two writers racing for the same previous row cannot both succeed:
    ``previous_hash`` is unique, so the loser gets an integrity error and retries.
    """
    last = session.execute(
        select(AccessLogRow.hash).order_by(AccessLogRow.id.desc()).limit(1)
    ).scalar()
    previous = last if last is not None else GENESIS
    fields: dict[str, object] = {
        "at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "user": user,
        "role": role,
        "action": action,
        "purpose": purpose,
        "subject_ids": [str(s) for s in subject_ids],
        "model_version": model_version,
        "request_id": request_id,
        "allowed": bool(allowed),
    }
    digest = _digest(previous, fields)
    # A core insert (no ORM unit of work): this runs before every response with personal data.
    session.execute(insert(AccessLogRow), [{**fields, "previous_hash": previous, "hash": digest}])
    return digest


@dataclass(frozen=True)
class Verification:
    ok: bool
    rows: int
    first_broken: int | None = None
    reason: str = ""


def verify(db: Database) -> Verification:
    """Walk the chain; report the first row whose hash or link does not hold."""
    previous = GENESIS
    count = 0
    with db.session() as session:
        for row in session.scalars(select(AccessLogRow).order_by(AccessLogRow.id)):
            count += 1
            if row.previous_hash != previous:
                return Verification(False, count, row.id, "its link to the previous row is broken")
            if _digest(previous, _fields(row)) != row.hash:
                return Verification(False, count, row.id, "its content does not match its hash")
            previous = row.hash
    return Verification(True, count)
