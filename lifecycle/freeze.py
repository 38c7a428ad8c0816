"""Incident freezes: while an incident is investigated, what is served and the evidence stay put.

``outreach incident freeze`` signs an ``incident_freeze`` statement into a model's attestation
log (:mod:`lifecycle.statements`), naming the version in production at that moment (the pinned
version), who froze it, when and why. Until an ``incident_release`` statement lifts it:

- the service keeps serving exactly the pinned version, whatever the ``production`` alias says;
- nothing may move production: releases, approvals, rollbacks and promotions are refused;
- the access log may not be purged, so the evidence is kept.

Withdrawing the model is never blocked: stopping a harmful model must always be possible, and a
withdrawal moves nothing into production.

Whether a model is frozen is read from the verified statements of its attestation log, never
from a file beside them (:mod:`lifecycle.version_state` folds it). A statement that does not verify
neither freezes nor lifts a freeze; it makes the log invalid, an alarm: nothing of the model is
served, and every action here (freeze, release, approve, rollback, purge) is refused with exit 3
until a person repairs the log. Deleting or cutting the log is found against its head anchored
outside it, with the same result.
"""

from __future__ import annotations

from typing import Literal

from kernel.errors import BadInputError, ConflictError, GateError, NotFoundError
from lifecycle.catalogue import production_alias
from lifecycle.statements import Trust
from lifecycle.version_state import FREEZE, LIFT, Freeze, freeze_of
from model.registry import Registry

#: What a freeze holds still, as the refusals name it.
Action = Literal["release", "approve", "promote", "rollback", "purge"]
_BLOCKED = {
    "release": "release a new version",
    "approve": "approve a version",
    "promote": "move production",
    "rollback": "roll production back",
    "purge": "purge the access log",
}


class FrozenError(GateError):
    """An incident freeze is in force: the action would move production or remove evidence."""

    code = "incident_frozen"


def freeze_in_force(trust: Trust, name: str) -> Freeze | None:
    """The model's freeze in force, from its verified statements (``None``: not frozen)."""
    return freeze_of(trust.statements(name))


def freezes(trust: Trust) -> list[Freeze]:
    """Every freeze in force in the deployment (each model with an attestation log)."""
    found = (freeze_in_force(trust, log.stem) for log in sorted(trust.folder.glob("*.jsonl")))
    return [f for f in found if f is not None]


def _lift_hint(freeze: Freeze) -> str:
    target = "" if freeze.scope == "deployment" else f" {freeze.model}"
    return f"outreach incident release{target} --note TEXT --by ROLE"


def ensure_not_frozen(trust: Trust, name: str | None, action: Action) -> None:
    """Refuse ``action`` while a freeze holds it: one on model ``name``, a deployment-wide one
    on any model, or (``name`` ``None``: the purge) any freeze at all.

    Raises
    ------
    FrozenError
        Naming the freeze and how to lift it.
    LogInvalidError
        If the log of a model it concerns does not verify: nothing is decided about it then.
    """
    for model in (
        [name] if name is not None else sorted(p.stem for p in trust.folder.glob("*.jsonl"))
    ):
        trust.state(model, None).require_valid()
    in_force = freezes(trust)
    holding = [f for f in in_force if name is None or f.model == name or f.scope == "deployment"]
    if not holding:
        return
    first = holding[0]
    raise FrozenError(
        f"refusing to {_BLOCKED[action]}: {first.describe()}; lift it with "
        f"'{_lift_hint(first)}' once the incident is settled",
        details=[f.describe() for f in holding[1:]],
    )


def _targets(trust: Trust, name: str | None) -> list[str]:
    """The models a freeze or release without a name covers: every model with a log here."""
    if name is not None:
        trust.state(name, None).require_valid()
        if not trust.log(name).exists():
            raise NotFoundError(f"no registered model '{name}' has been released here")
        return [name]
    names = sorted(log.stem for log in trust.folder.glob("*.jsonl"))
    if not names:
        raise NotFoundError("no model has been released here: there is nothing to freeze")
    for model in names:
        trust.state(model, None).require_valid()
    return names


def pins(registry: Registry, trust: Trust, name: str | None) -> dict[str, str]:
    """What a freeze of model ``name`` (``None``: every model released here) would pin: each
    model and the version its ``production`` alias names now ('' for none).

    Raises
    ------
    ConflictError
        If one of the models is frozen already.
    NotFoundError
        If the model was never released here.
    """
    names = _targets(trust, name)
    already = [f for f in (freeze_in_force(trust, n) for n in names) if f is not None]
    if already:
        raise ConflictError(
            f"refusing a second freeze: {already[0].describe()}; lift it first with "
            f"'{_lift_hint(already[0])}'",
            details=[f.describe() for f in already[1:]],
        )
    return {model: production_alias(registry, model) or "" for model in names}


def freeze(
    registry: Registry,
    trust: Trust,
    name: str | None,
    *,
    by: str,
    note: str,
    role: str,
) -> list[Freeze]:
    """Sign a freeze of model ``name`` (or, ``None``, of every model released here), pinning
    each at the version its ``production`` alias names now (:func:`pins`).

    Raises
    ------
    BadInputError
        If the note or ``by`` is empty.
    ConflictError
        If one of the models is frozen already (nothing is signed).
    NotFoundError
        If the model was never released here.
    """
    _require(note=note, by=by)
    scope = "deployment" if name is None else "model"
    signed = []
    for model, version in pins(registry, trust, name).items():
        statement = {
            "kind": FREEZE,
            "version": version,
            "by": by,
            "role": role,
            "note": note,
            "scope": scope,
        }
        signed.append(Freeze.of(trust.sign(model, statement).statement))
    return signed


def to_lift(trust: Trust, name: str | None) -> list[Freeze]:
    """The freezes a release of model ``name`` (``None``: every frozen model) would lift.

    Raises
    ------
    ConflictError
        If nothing named is frozen.
    NotFoundError
        If the model was never released here.
    """
    if name is None:
        for log in sorted(trust.folder.glob("*.jsonl")):
            trust.state(log.stem, None).require_valid()
        frozen = freezes(trust)
    else:
        _targets(trust, name)
        found = freeze_in_force(trust, name)
        frozen = [found] if found is not None else []
    if not frozen:
        what = f"{name} is not" if name else "no model is"
        raise ConflictError(f"refusing to release an incident freeze: {what} frozen")
    return frozen


def lift(trust: Trust, name: str | None, *, by: str, note: str, role: str) -> list[Freeze]:
    """Sign the end of the freeze of model ``name`` (or, ``None``, of every frozen model);
    returns the freezes it lifted.

    Raises
    ------
    BadInputError
        If the note or ``by`` is empty.
    ConflictError
        If nothing named is frozen.
    NotFoundError
        If the model was never released here.
    """
    _require(note=note, by=by)
    frozen = to_lift(trust, name)
    for f in frozen:
        trust.sign(
            f.model,
            {"kind": LIFT, "version": f.version, "by": by, "role": role, "note": note},
        )
    return frozen


def _require(*, note: str, by: str) -> None:
    missing = [key for key, value in (("--note", note), ("--by", by)) if not value.strip()]
    if missing:
        raise BadInputError(
            f"an incident freeze or release needs {' and '.join(missing)}: who, and why, are "
            "part of the record"
        )
