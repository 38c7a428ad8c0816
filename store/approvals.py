"""Oversight decisions on releases: recorded in the service's database (who, when, why) in the
same step as the signed registry change, whether made on the releases page or with the command
line. A withdrawal (the board's stop button) also writes an access-log row.

The board may also ask for a re-audit of a version (:func:`request_reaudit`): a request recorded
beside the decisions, which the analysts read on their pages and answer by re-auditing the
version on recent data (``outreach audit --model NAME/VERSION --data FILE``). Running an audit
inside a web request would need a data file the service does not hold, and minutes of work."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select

from kernel.errors import BadInputError
from lifecycle.decisions import approve, reject, withdraw
from lifecycle.statements import Trust
from model.registry import Registry
from store import access_log
from store.attestation_heads import DatabaseAnchors
from store.db import Approval, Database

Decision = Literal["approve", "reject", "withdraw"]
RECORDED = {"approve": "approved", "reject": "rejected", "withdraw": "withdrawn"}
#: How a request for a re-audit is recorded among the decisions (not a decision: nothing moves).
REAUDIT_REQUESTED = "re-audit requested"


def decide(
    db: Database,
    registry: Registry,
    name: str,
    version: str,
    *,
    trust: Trust,
    decision: Decision,
    by: str,
    note: str,
    role: str = "oversight",
    request_id: str = "cli",
) -> bool:
    """Approve, reject or withdraw; returns whether a version became (or is again) production.

    The record is written in the transaction around the registry change: if the registry
    refuses (:class:`kernel.errors.GateError`), nothing is recorded; if the record cannot be
    written, the registry is not touched. For a withdrawal ``version`` may be '' (whatever is in
    production is stopped). ``trust`` is the caller's signing trust (the command line's or the
    service's); its heads are anchored in ``db`` when it keeps no anchors of its own.
    """
    if trust.anchors is None:
        trust = trust.with_anchors(DatabaseAnchors(db))
    anchors = trust.anchors

    def attempt() -> bool:
        with db.session() as session:
            session.add(
                Approval(
                    model_name=name,
                    model_version=version,
                    decision=RECORDED[decision],
                    by=by,
                    note=note,
                )
            )
            session.flush()
            if decision == "withdraw":
                access_log.append(
                    session,
                    user=by,
                    role=role,
                    action="withdraw",
                    purpose="oversight",
                    subject_ids=[],
                    model_version=f"{name}:{version}",
                    request_id=request_id,
                )
                withdraw(registry, name, by=by, note=note, role=role, trust=trust)
                return False
            if decision == "approve":
                return approve(registry, name, version, by=by, note=note, role=role, trust=trust)
            reject(registry, name, version, by=by, note=note, role=role, trust=trust)
            return False

    # Anchors in this database queue their writes until the decision's transaction is done.
    held = anchors.held() if isinstance(anchors, DatabaseAnchors) else nullcontext()
    with held:  # written once the decision's transaction is done
        done = access_log.retrying(attempt) if decision == "withdraw" else attempt()
    # The new head is anchored in this database (a log cut back to before it is then found by
    # the service's next poll).
    trust.anchor(name)
    return done


@dataclass(frozen=True)
class ReauditRequest:
    """The board's request that a version be audited again on recent data."""

    name: str
    version: str
    by: str
    note: str
    at: datetime


def request_reaudit(db: Database, name: str, version: str, *, by: str, note: str) -> None:
    """Record the board's request for a re-audit of ``name`` version ``version``, with a note.

    Nothing in the registry changes: the version is served (or not) as before, and the analysts
    see the request on their pages (:func:`reaudit_requests`).
    """
    if not note.strip():
        raise BadInputError("a request for a re-audit needs a note saying why")
    with db.session() as session:
        session.add(
            Approval(
                model_name=name,
                model_version=version,
                decision=REAUDIT_REQUESTED,
                by=by,
                note=note.strip(),
            )
        )


def reaudit_requests(db: Database, name: str | None = None) -> list[ReauditRequest]:
    """The board's requests for a re-audit, newest first (of one model, or of all)."""
    statement = select(Approval).where(Approval.decision == REAUDIT_REQUESTED)
    if name is not None:
        statement = statement.where(Approval.model_name == name)
    with db.session() as session:
        return [
            ReauditRequest(a.model_name, a.model_version, a.by, a.note, a.recorded_at)
            for a in session.scalars(statement.order_by(Approval.id.desc()))
        ]
