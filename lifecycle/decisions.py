"""The decisions on released versions: promotion, and the board's approval, rejection,
withdrawal and rollback.

Each is signed into the model's attestation log (:mod:`lifecycle.statements`) before the
registry's readable tags are written; serving trusts the statements, never the tags
(:mod:`lifecycle.verified_loading`). Kept apart from :mod:`lifecycle.release` (training, audits
and the gate) so that the service, which records the board's decisions, runs without the
training and auditing libraries loaded.
"""

from __future__ import annotations

from mlflow.exceptions import MlflowException

from kernel.errors import BadInputError, GateError, NotFoundError
from lifecycle import catalogue
from lifecycle.catalogue import PRODUCTION, production_alias, version_tags
from lifecycle.freeze import ensure_not_frozen
from lifecycle.statements import Trust, WithdrawnError, now
from lifecycle.verified_loading import load_version
from model.registry import Registry


def promote(registry: Registry, name: str, version: str, *, reason: str, trust: Trust) -> None:
    ensure_not_frozen(trust, name, "promote")
    load_version(registry, name, version, trust=trust)  # the same checks the service makes
    client = registry.client
    try:
        previous = str(client.get_model_version_by_alias(name, PRODUCTION).version)
    except MlflowException:
        previous = ""
    client.set_registered_model_alias(name, PRODUCTION, version)
    client.set_model_version_tag(name, version, catalogue.PROMOTED_AT, now())
    client.set_model_version_tag(name, version, catalogue.PROMOTED_BECAUSE, reason)
    if catalogue.AWAITING_APPROVAL in version_tags(registry, name, version):
        client.delete_model_version_tag(name, version, catalogue.AWAITING_APPROVAL)
    if previous and previous != version:
        client.set_model_version_tag(name, version, catalogue.PREVIOUS_PRODUCTION, previous)


def production_version(registry: Registry, name: str) -> str:
    """The version the ``production`` alias names ('' if none)."""
    return production_alias(registry, name) or ""


def approve(
    registry: Registry,
    name: str,
    version: str,
    *,
    by: str,
    note: str,
    role: str = "oversight",
    trust: Trust,
) -> bool:
    """Record an oversight approval, signed; promotes the version if it was awaiting one.

    A REVIEW version's approval names the groups its audit could not judge. Approving the
    production version of a withdrawn model reinstates it. Returns whether the version became
    (or is again) production.

    Raises
    ------
    GateError
        If no valid release attestation covers the version, its audit failed, it was rejected,
        or the approver is the person who released it.
    """
    ensure_not_frozen(trust, name, "approve")  # an approval can promote or reinstate
    outcome = trust.state(name, production_alias(registry, name)).approval(version, by=by)
    release = outcome.standing.release or {}
    groups = str(release.get("review_groups", ""))
    trust.sign(
        name,
        {
            "kind": "approval",
            "version": version,
            "by": by,
            "role": role,
            "note": note,
            "review_groups": groups if release.get("decision") == "REVIEW" else "",
            # The approver also takes on the groups the audit could not judge (disclosed).
            "not_assessable": str(release.get("not_assessable", "")),
        },
    )
    # The readable cache (never read to decide).
    tags = version_tags(registry, name, version)
    client = registry.client
    client.set_model_version_tag(name, version, catalogue.APPROVED_BY, by)
    client.set_model_version_tag(name, version, catalogue.APPROVED_AT, now())
    client.set_model_version_tag(name, version, catalogue.APPROVAL_NOTE, note)
    if release.get("decision") == "REVIEW":
        # The approval names the groups the audit could not judge: the approver took them on.
        client.set_model_version_tag(name, version, catalogue.APPROVED_REVIEW_GROUPS, groups)
    if catalogue.WITHDRAWN_BY in tags:
        client.delete_model_version_tag(name, version, catalogue.WITHDRAWN_BY)
    if outcome.promotes:
        promote(registry, name, version, reason=f"approved by {by}", trust=trust)
        return True
    if catalogue.AWAITING_APPROVAL in tags:
        client.delete_model_version_tag(name, version, catalogue.AWAITING_APPROVAL)
    return outcome.reinstates


def reject(
    registry: Registry,
    name: str,
    version: str,
    *,
    by: str,
    note: str,
    role: str = "oversight",
    trust: Trust,
) -> None:
    """Record an oversight rejection, signed; the version can never be served."""
    trust.state(name, production_alias(registry, name)).rejection(version)
    tags = version_tags(registry, name, version)  # the readable cache, written below
    trust.sign(
        name, {"kind": "rejection", "version": version, "by": by, "role": role, "note": note}
    )
    client = registry.client
    client.set_model_version_tag(name, version, catalogue.REJECTED_BY, by)
    client.set_model_version_tag(name, version, catalogue.REJECTED_AT, now())
    client.set_model_version_tag(name, version, catalogue.REJECTION_NOTE, note)
    if catalogue.AWAITING_APPROVAL in tags:
        client.delete_model_version_tag(name, version, catalogue.AWAITING_APPROVAL)


def withdraw(
    registry: Registry,
    name: str,
    *,
    by: str,
    note: str,
    role: str = "oversight",
    trust: Trust,
) -> str:
    """The board's stop button: sign a withdrawal of the model; nothing of it is served until a
    new PASS release or an explicit re-approval. Returns the production version it stopped
    ('' if there was none)."""
    if not note.strip():
        raise BadInputError("a withdrawal needs a note saying why")
    version = production_version(registry, name)
    # An invalid log serves nothing already; signing onto it would hide what broke it.
    trust.state(name, version or None).require_valid()
    if not version and not trust.log(name).exists():
        raise NotFoundError(f"no registered model '{name}' has been released here")
    trust.sign(
        name, {"kind": "withdrawal", "version": version, "by": by, "role": role, "note": note}
    )
    if version:
        client = registry.client
        client.set_model_version_tag(name, version, catalogue.WITHDRAWN_BY, by)
        client.set_model_version_tag(name, version, catalogue.WITHDRAWN_AT, now())
    return version


def rollback(registry: Registry, name: str, *, trust: Trust) -> str:
    """Move ``production`` back to the latest earlier version that may be served.

    Raises
    ------
    NotFoundError
        If there is no production version.
    GateError
        If no earlier version is covered by a servable attestation (or the model is withdrawn).
    """
    ensure_not_frozen(trust, name, "rollback")
    client = registry.client
    try:
        current = int(client.get_model_version_by_alias(name, PRODUCTION).version)
    except MlflowException as err:
        raise NotFoundError(f"registered model '{name}' has no production version") from err
    earlier = sorted(
        (int(v.version) for v in client.search_model_versions(f"name='{name}'")),
        reverse=True,
    )
    for number in earlier:
        if number >= current:
            continue
        try:
            load_version(registry, name, str(number), trust=trust)
        except WithdrawnError:
            raise
        except GateError:
            continue
        promote(
            registry, name, str(number), reason=f"rolled back from version {current}", trust=trust
        )
        client.set_model_version_tag(name, str(current), catalogue.ROLLED_BACK_AT, now())
        return str(number)
    raise GateError(f"no earlier version of '{name}' passed its audit; production is unchanged")
