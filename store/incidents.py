"""Incident freezes as the deployment records them: the signed statement (:mod:`lifecycle.freeze`)
and its access-log row (action ``incident_freeze`` or ``incident_release``) in one step.

The row is written in the transaction around the signing: if the freeze is refused (already
frozen, nothing to lift, no key), the row is rolled back and nothing is recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext

from lifecycle.freeze import Freeze, freeze, lift, pins, to_lift
from lifecycle.statements import Trust
from model.registry import Registry
from store import access_log
from store.attestation_heads import DatabaseAnchors
from store.db import Database

#: The access log's column for model versions holds this many characters.
MODEL_VERSION_LENGTH = 80


def _versions(pinned: Iterable[str]) -> str:
    """``name:version`` of each model, as much as the row holds (the signed statements in each
    model's attestation log have them all)."""
    text = ", ".join(pinned)
    return text if len(text) <= MODEL_VERSION_LENGTH else text[: MODEL_VERSION_LENGTH - 3] + "..."


def _held(trust: Trust) -> AbstractContextManager[None]:
    """Anchors kept in this database write after the transaction (see ``held``)."""
    anchors = trust.anchors
    return anchors.held() if isinstance(anchors, DatabaseAnchors) else nullcontext()


def _anchor(trust: Trust, frozen: list[Freeze]) -> list[Freeze]:
    """Anchor each signed model's new head once the transaction is done."""
    for model in {f.model for f in frozen}:
        trust.anchor(model)
    return frozen


def freeze_recorded(
    db: Database,
    registry: Registry,
    trust: Trust,
    name: str | None,
    *,
    by: str,
    note: str,
    role: str = "oversight",
    request_id: str = "cli",
) -> list[Freeze]:
    """Freeze model ``name`` (``None``: every model released here) and record it."""
    with _held(trust), db.session() as session:
        pinned = pins(registry, trust, name)
        access_log.append(
            session,
            user=by,
            role=role,
            action="incident_freeze",
            purpose="oversight",
            subject_ids=[],
            model_version=_versions(f"{m}:{v}" for m, v in pinned.items()),
            request_id=request_id,
        )
        session.flush()
        done = freeze(registry, trust, name, by=by, note=note, role=role)
    return _anchor(trust, done)


def lift_recorded(
    db: Database,
    trust: Trust,
    name: str | None,
    *,
    by: str,
    note: str,
    role: str = "oversight",
    request_id: str = "cli",
) -> list[Freeze]:
    """Lift the freeze of model ``name`` (``None``: every frozen model) and record it."""
    with _held(trust), db.session() as session:
        access_log.append(
            session,
            user=by,
            role=role,
            action="incident_release",
            purpose="oversight",
            subject_ids=[],
            model_version=_versions(f"{f.model}:{f.version}" for f in to_lift(trust, name)),
            request_id=request_id,
        )
        session.flush()
        done = lift(trust, name, by=by, note=note, role=role)
    return _anchor(trust, done)
