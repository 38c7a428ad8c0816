"""Verified loading: the only way to obtain a model version to serve.

A version is served only when a signed release attestation (:mod:`audits.attestation`) covers
its exact artifact bytes and its audit report as it is on disk now, with a PASS (approved where
the policy asks) or an approved REVIEW, no rejection, and no withdrawal in force. Registry tags
are never trusted for this: anyone who can move an alias can also write tags.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlflow.exceptions import MlflowException

from audits.attestation import Standing, Trust, WithdrawnError, refusal
from audits.catalogue import ARTIFACT_SHA256, production_alias, report_sha256, version_tags
from model.errors import GateError, NotFoundError
from model.home import Home
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


def trust_for(home: Home, *, signing: bool = True) -> Trust:
    """The deployment's trust: its attestation folder and release keys."""
    return Trust.for_home(home.signing_keys, home.attestations, signing=signing)


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
) -> Standing:
    """The version's verified standing; raises unless it may be served.

    ``files`` is the manifest of the version's folder as fetched now; it must be the attested one.

    Raises
    ------
    WithdrawnError
        If the model was withdrawn (and not reinstated since).
    GateError
        For any other reason the signed statements give.
    """
    found = trust.standing(name, version)
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


def load_version(
    registry: Registry,
    name: str,
    version: str,
    *,
    require_pass: bool = True,
    trust: Trust | None = None,
) -> LoadedModel:
    """Load one registered version after checking its signed attestation and artifact bytes.

    ``require_pass=False`` (re-audits of any version) checks only that the bytes are the ones
    registered with it.

    Raises
    ------
    GateError
        If no valid attestation covers these bytes with a servable decision (see
        :func:`check`), or the bytes differ from the ones registered.
    NotFoundError
        If the version does not exist.
    """
    tags = version_tags(registry, name, version)
    fetched = _artifact(registry, name, version)
    model, actual = fetched.model, fetched.artifact_sha256
    if not require_pass:
        expected = tags.get(ARTIFACT_SHA256)
        if expected != actual:
            raise GateError(
                f"refusing to load {name} version {version}: its artifact's sha256 "
                f"{actual[:12]} differs from the registered {str(expected)[:12]}"
            )
        return LoadedModel(name, version, tags.get("audit_id", ""), "", model, tags, actual, {})
    trust = trust or trust_for(registry.home, signing=False)
    found = check(registry, trust, name, version, actual, fetched.files)
    release = found.release or {}
    return LoadedModel(
        name,
        version,
        str(release.get("audit_id", "")),
        str(release.get("decision", "")),
        model,
        tags,
        actual,
        release,
    )


def load_production(registry: Registry, name: str, *, trust: Trust | None = None) -> LoadedModel:
    """The verified ``production`` version of ``name``; the only way to obtain a model to serve.

    Raises
    ------
    NotFoundError
        If no version holds the ``production`` alias (nothing to serve).
    WithdrawnError
        If the oversight board withdrew the model.
    GateError
        If the version is not covered by a valid attestation of a servable decision.
    """
    version = production_alias(registry, name)
    if version is None:
        raise NotFoundError(f"registered model '{name}' has no production version")
    return load_version(registry, name, version, trust=trust)
