"""Oversight decisions on releases: recorded in the service's database (who, when, why) in the
same step as the signed registry change, whether made on the releases page or with the command
line. A withdrawal (the board's stop button) also writes an access-log row."""

from __future__ import annotations

from typing import Literal

from audits.loading import trust_for
from audits.release import approve, reject, withdraw
from model.registry import Registry
from service import access_log
from service.attestation_heads import DatabaseAnchors
from service.db import Approval, Database

Decision = Literal["approve", "reject", "withdraw"]
RECORDED = {"approve": "approved", "reject": "rejected", "withdraw": "withdrawn"}


def decide(
    db: Database,
    registry: Registry,
    name: str,
    version: str,
    *,
    decision: Decision,
    by: str,
    note: str,
    role: str = "oversight",
    request_id: str = "cli",
) -> bool:
    """Approve, reject or withdraw; returns whether a version became (or is again) production.

    The record is written in the transaction around the registry change: if the registry
    refuses (:class:`model.errors.GateError`), nothing is recorded; if the record cannot be
    written, the registry is not touched. For a withdrawal ``version`` may be '' (whatever is in
    production is stopped).
    """

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

    anchors = DatabaseAnchors(db)
    # The key is checked before anything is written: a key that is not the deployment's signs
    # nothing (exit 2), and the heads it signs are anchored in this database.
    trust = trust_for(registry.home).with_anchors(anchors)
    with anchors.held():  # written once the decision's transaction is done
        done = access_log.retrying(attempt) if decision == "withdraw" else attempt()
    # The new head is anchored in this database (a log cut back to before it is then found by
    # the service's next poll).
    trust.anchor(name)
    return done
