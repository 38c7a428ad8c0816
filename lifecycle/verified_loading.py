"""Verified loading: the only way to obtain a model version to serve.

A version is served only when a signed release attestation (:mod:`lifecycle.statements`) covers
its exact artifact bytes and its audit report as it is on disk now, with a PASS (approved where
the policy asks) or an approved REVIEW, no rejection, and no withdrawal in force. Registry tags
are never trusted for this: anyone who can move an alias can also write tags.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlflow.exceptions import MlflowException

from kernel.errors import GateError, NotFoundError
from kernel.home import Home
from lifecycle.catalogue import (
    ARTIFACT_SHA256,
    list_versions,
    production_alias,
    report_sha256,
    version_tags,
)
from lifecycle.statements import Standing, Trust, WithdrawnError, refusal
from lifecycle.version_state import LogInvalidError, ModelState, awaiting_approval
from model.registry import Registry, download_version, folder_manifest, sha256_file
from model.scorer import ARTIFACT_NAME, ScoringModel


@dataclass(frozen=True)
class LoadedModel:
    """A verified model version: what the service may serve."""

    name: str
    version: str
    audit_id: str
    decision: str
    model: ScoringModel
    tags: dict[str, str]
    artifact_sha256: str
    #: The signed release statement that vouches for it (``{}`` when loaded unverified).
    attestation: dict[str, object]


def trust_for(home: Home, *, signing: bool = True, production: bool = False) -> Trust:
    """The deployment's trust: its attestation folder and release keys. Built in one place per
    process (the command line's ``outreach.cli.base._trust``, the service's
    ``ModelSource.trust``) and passed to everything that checks or signs: nothing below builds
    its own. ``production``: a log whose head is anchored nowhere is invalid until a person
    adopts it (once anchors are added, :meth:`Trust.with_anchors`)."""
    return Trust.for_home(
        home.signing_keys, home.attestations, signing=signing, anchor_required=production
    )


@dataclass(frozen=True)
class Fetched:
    """A registered version's folder as the store gave it: its scoring model and manifest."""

    model: ScoringModel
    artifact_sha256: str
    files: dict[str, str]


def _artifact(registry: Registry, name: str, version: str) -> Fetched:
    with tempfile.TemporaryDirectory(prefix="outreach-load-") as folder:
        try:
            local = download_version(registry, name, version, Path(folder))
        except (MlflowException, OSError) as err:
            raise GateError(f"refusing to serve {name} version {version}: {err}") from err
        found = list(local.rglob(ARTIFACT_NAME))
        if len(found) != 1:
            raise GateError(f"refusing to serve {name} version {version}: no scoring artifact")
        return Fetched(ScoringModel.load(found[0]), sha256_file(found[0]), folder_manifest(local))


def check(
    registry: Registry,
    trust: Trust,
    name: str,
    version: str,
    artifact_sha256: str,
    files: dict[str, str] | None = None,
    *,
    state: ModelState | None = None,
) -> Standing:
    """The version's verified standing; raises unless it may be served.

    ``files`` is the manifest of the version's folder as fetched now; it must be the attested one.
    ``state``: the model's state already read this round (read now when ``None``).

    Raises
    ------
    LogInvalidError
        If the model's attestation log does not verify (nothing of it is served).
    WithdrawnError
        If the model was withdrawn (and not reinstated since).
    GateError
        For any other reason the signed statements give.
    """
    state = state or trust.state(name, None)
    found = state.version(version).standing
    state.require_valid()
    audit_id = str((found.release or {}).get("audit_id", ""))
    reason = refusal(
        found, version, artifact_sha256, report_sha256(registry.home.audits, audit_id), files
    )
    if reason:
        message = f"refusing to serve {name} version {version}: {reason}"
        if found.withdrawn is not None and reason.startswith("the model was withdrawn"):
            raise WithdrawnError(message, statement=found.withdrawn)
        raise GateError(message)
    return found


def load_registered(registry: Registry, name: str, version: str) -> LoadedModel:
    """Load one registered version checking only that its bytes are the ones registered with it
    (re-audits and explanations of any version): never for serving, no attestation is read.

    Raises
    ------
    GateError
        If the bytes differ from the registered ones.
    NotFoundError
        If the version does not exist.
    """
    tags = version_tags(registry, name, version)
    fetched = _artifact(registry, name, version)
    model, actual = fetched.model, fetched.artifact_sha256
    expected = tags.get(ARTIFACT_SHA256)
    if expected != actual:
        raise GateError(
            f"refusing to load {name} version {version}: its artifact's sha256 "
            f"{actual[:12]} differs from the registered {str(expected)[:12]}"
        )
    return LoadedModel(name, version, tags.get("audit_id", ""), "", model, tags, actual, {})


def load_version(
    registry: Registry,
    name: str,
    version: str,
    *,
    trust: Trust,
    state: ModelState | None = None,
) -> LoadedModel:
    """Load one registered version after checking its signed attestation and artifact bytes
    against ``trust`` (the caller's: the command line's or the service's, built once there).

    Raises
    ------
    GateError
        If no valid attestation covers these bytes with a servable decision (see
        :func:`check`).
    NotFoundError
        If the version does not exist.
    """
    tags = version_tags(registry, name, version)
    fetched = _artifact(registry, name, version)
    actual = fetched.artifact_sha256
    found = check(registry, trust, name, version, actual, fetched.files, state=state)
    release = found.release or {}
    return LoadedModel(
        name,
        version,
        str(release.get("audit_id", "")),
        str(release.get("decision", "")),
        fetched.model,
        tags,
        actual,
        release,
    )


def load_production(registry: Registry, name: str, *, trust: Trust) -> LoadedModel:
    """The verified version of ``name`` that may be served now, resolved as the service resolves
    it (:meth:`lifecycle.version_state.ModelState.serving`): under an incident freeze the pinned
    version, whatever the alias says; otherwise the one the ``production`` alias names.

    Raises
    ------
    LogInvalidError
        If the model's attestation log does not verify.
    NotFoundError
        If no version holds the ``production`` alias (nothing to serve).
    WithdrawnError
        If the oversight board withdrew the model.
    GateError
        If the version is not covered by a valid attestation of a servable decision, or a
        freeze pinned no version.
    """
    state = trust.state(name, production_alias(registry, name))
    wanted = state.serving()
    if wanted.code == "log_invalid":
        raise LogInvalidError(wanted.reason)
    if wanted.code == "withdrawn":
        statement = wanted.standing.withdrawn or {}
        raise WithdrawnError(f"refusing to serve {name}: {wanted.reason}", statement=statement)
    if wanted.code == "no_production":
        raise NotFoundError(wanted.reason)
    if wanted.code == "frozen":
        raise GateError(wanted.reason)
    return load_version(registry, name, wanted.version, trust=trust, state=state)


def version_states(
    registry: Registry, name: str | None = None, *, trust: Trust
) -> list[dict[str, object]]:
    """Registered versions (:func:`lifecycle.catalogue.list_versions`: aliases, metrics) with what
    was decided about each and its state now, from the signed statements alone
    (:class:`lifecycle.version_state.ModelState`); registry tags are not read for any of it.

    Each row adds ``state`` (a reason code), ``servable``, ``reason`` and ``serving`` (the
    version that would be served now) to the catalogue's keys.
    """
    rows = list_versions(registry, name)
    states: dict[str, ModelState] = {}
    for row in rows:
        model = str(row["name"])
        if model not in states:
            states[model] = trust.state(model, production_alias(registry, model))
        state = states[model]
        version = state.version(str(row["version"]))
        standing, release = version.standing, version.release
        decision = release.get("decision")
        approved = [str(a.get("by")) for a in standing.approvals]
        serving = state.serving()
        withdrawn = state.withdrawn if "production" in row["aliases"] else None
        row.update(
            {
                # The tag's audit id only names the report when no statement does (a label,
                # never a decision: the state says whether anything stands behind it).
                "audit_id": release.get("audit_id") or row["audit_id"],
                "decision": decision,
                "awaiting_approval": awaiting_approval(standing),
                "approved_by": ", ".join(approved) or None,
                "review_groups": str(release.get("review_groups") or ""),
                "approved_review_groups": str(release.get("review_groups") or "")
                if approved and decision == "REVIEW"
                else "",
                "rejected_by": (standing.rejected or {}).get("by"),
                # Who released it (the signed release statement): they cannot approve it.
                "released_by": release.get("by") or None,
                "withdrawn_by": (withdrawn or {}).get("by"),
                "state": version.code,
                "servable": version.servable,
                "reason": version.reason,
                "serving": serving.servable and serving.version == str(row["version"]),
            }
        )
    return rows
