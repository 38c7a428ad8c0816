"""Oversight decisions on releases: recorded in the service's database (who, when, why) in the
same step as the registry change, whether made on the releases page or with the command line."""

from __future__ import annotations

from typing import Literal

from audits.release import approve, reject
from model.registry import Registry
from service.db import Approval, Database


def decide(
    db: Database,
    registry: Registry,
    name: str,
    version: str,
    *,
    decision: Literal["approve", "reject"],
    by: str,
    note: str,
) -> bool:
    """Approve or reject ``name`` ``version``; returns whether it became production.

    The record is written in the transaction around the registry change: if the registry
    refuses (:class:`model.errors.GateError`), nothing is recorded; if the record cannot be
    written, the registry is not touched.
    """
    with db.session() as session:
        session.add(
            Approval(
                model_name=name,
                model_version=version,
                decision="approved" if decision == "approve" else "rejected",
                by=by,
                note=note,
            )
        )
        session.flush()
        if decision == "approve":
            return approve(registry, name, version, by=by, note=note)
        reject(registry, name, version, by=by, note=note)
        return False
