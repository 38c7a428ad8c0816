"""Release attestations: signed statements of exactly what was decided about a model version.

At every release, approval, rejection, withdrawal and reinstatement the release tooling appends a
statement to the model's attestation log (``<home>/attestations/<model>.jsonl``), signed with the
release key (:mod:`model.signing`, never stored in MLflow). A release statement binds the
version to its artifact's sha256, its audit report's sha256, the policy's sha256 and the audit's
decision; an approval names who approved, with which role, when, and the groups a REVIEW left
open. Each statement also carries the hash of the one before it, so the log cannot be reordered
or have a statement taken out of its middle without the chain showing it.

Registry tags stay as a readable cache and are never trusted: whether a version may be served is
decided here, from statements whose signatures verify (:func:`standing`). Someone who can edit
the registry can copy tags, but cannot sign.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from model.errors import GateError
from model.signing import (
    KeyPaths,
    Signer,
    Verifier,
    canonical,
    load_signer,
    load_verifier,
    private_pem,
)

GENESIS = "0" * 64


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def log_path(folder: Path, name: str) -> Path:
    """The attestation log of registered model ``name`` in ``folder``."""
    return folder / f"{name}.jsonl"


def _digest(entry: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Entry:
    """One signed statement as stored: the statement, its signature and the key's id."""

    statement: dict[str, Any]
    signature: str
    key_id: str

    def as_dict(self) -> dict[str, Any]:
        return {"statement": self.statement, "signature": self.signature, "key_id": self.key_id}


def read(path: Path) -> list[Entry]:
    """Every entry of a log, in order (an unreadable line is kept as an invalid entry)."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            entries.append(Entry(dict(raw["statement"]), str(raw["signature"]), str(raw["key_id"])))
        except (ValueError, KeyError, TypeError):
            entries.append(Entry({"kind": "unreadable"}, "", ""))
    return entries


def append(path: Path, signer: Signer, statement: dict[str, Any]) -> Entry:
    """Sign ``statement`` (numbered and linked to the previous entry) and append it."""
    with _locked(path):
        existing = read(path)
        previous = _digest(existing[-1].as_dict()) if existing else GENESIS
        full = {**statement, "sequence": len(existing) + 1, "previous": previous, "at": now()}
        entry = Entry(full, signer.sign(full), signer.verifier.key_id)
        line = json.dumps(entry.as_dict(), sort_keys=True) + "\n"
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(handle, line.encode())
            os.fsync(handle)
        finally:
            os.close(handle)
    return entry


@dataclass
class Standing:
    """What the verified statements say about one version, and about the model."""

    release: dict[str, Any] | None = None
    approvals: list[dict[str, Any]] = field(default_factory=list)
    rejected: dict[str, Any] | None = None
    #: The model's latest withdrawal still in force (not lifted by a later PASS release or
    #: approval), with who and why.
    withdrawn: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)


Verifiers = dict[str, Verifier]


def verified(path: Path, verifiers: Verifiers) -> tuple[list[dict[str, Any]], list[str]]:
    """The log's statements that verify, in order, and what is wrong with the rest.

    ``verifiers`` are the trusted public keys by key id: the current one and retired ones. A
    statement whose signature fails, whose key is unknown, or was retired (by a ``key_rotation``
    statement earlier in the log), whose link to the one before is broken, or whose sequence
    number is out of place is not used, and named.
    """
    statements: list[dict[str, Any]] = []
    problems: list[str] = []
    retired: set[str] = set()
    previous = GENESIS
    for number, entry in enumerate(read(path), start=1):
        statement = entry.statement
        verifier = verifiers.get(entry.key_id)
        where = f"attestation {number} of {path.name}"
        if verifier is None or not entry.signature:
            problems.append(f"{where} has no valid signature (unknown key)")
        elif entry.key_id in retired:
            problems.append(f"{where} is signed with a key retired before it")
        elif not verifier.verify(statement, entry.signature):
            problems.append(f"{where} has no valid signature")
        elif statement.get("previous") != previous or statement.get("sequence") != number:
            problems.append(f"{where} is out of its place in the log")
        else:
            statements.append(statement)
            if statement.get("kind") == "key_rotation":
                retired.add(str(statement.get("retired_key_id")))
        previous = _digest(entry.as_dict())
    return statements, problems


def standing(path: Path, verifiers: Verifiers, version: str) -> Standing:
    """The verified standing of ``version``, and whether the model is withdrawn."""
    statements, problems = verified(path, verifiers)
    found = Standing(problems=problems)
    for statement in statements:
        kind = statement.get("kind")
        mine = str(statement.get("version")) == str(version)
        if kind == "release" and mine:
            found.release = statement
        elif kind == "approval" and mine:
            found.approvals.append(statement)
        elif kind == "rejection" and mine:
            found.rejected = statement
        if kind == "withdrawal":
            found.withdrawn = statement
        elif kind == "approval" or (
            kind == "release" and statement.get("decision") == "PASS" and statement.get("promoted")
        ):
            found.withdrawn = None  # a new PASS release or an explicit approval lifts it
    return found


def manifest_changes(attested: dict[str, str], found: dict[str, str]) -> list[str]:
    """How ``found`` differs from ``attested``, file by file, in words ([] when identical)."""
    changes = [f"{p} was added" for p in sorted(set(found) - set(attested))]
    changes += [f"{p} was removed" for p in sorted(set(attested) - set(found))]
    changes += [
        f"{p} was changed" for p in sorted(set(found) & set(attested)) if found[p] != attested[p]
    ]
    return changes


def refusal(
    found: Standing,
    version: str,
    artifact_sha256: str,
    report_sha256: str | None,
    files: dict[str, str] | None = None,
) -> str:
    """Why the version may not be served ('' when it may), from verified statements alone.

    ``files`` is the manifest of the version's model folder as fetched now (``None`` for the
    service's last-known-good copy, which keeps only the scoring model's JSON, checked by
    ``artifact_sha256``). Every release must attest a manifest.
    """
    release = found.release
    if release is None:
        problem = "no signed release attestation covers it"
        return problem + (f" ({'; '.join(found.problems)})" if found.problems else "")
    attested_files = release.get("files")
    if not isinstance(attested_files, dict) or not attested_files:
        return (
            "its release attestation names no manifest of the model folder's files (it predates "
            "that check); release it again"
        )
    if release.get("artifact_sha256") != artifact_sha256:
        return (
            f"its artifact's sha256 {artifact_sha256[:12]} differs from the audited "
            f"{str(release.get('artifact_sha256'))[:12]} attested at release (the bytes were "
            "changed)"
        )
    if files is not None:
        changes = manifest_changes({str(k): str(v) for k, v in attested_files.items()}, files)
        if changes:
            shown = "; ".join(changes[:5]) + ("; ..." if len(changes) > 5 else "")
            return f"its model folder differs from the one attested at release ({shown})"
    if report_sha256 is None:
        return f"its audit report {release.get('audit_id')} is missing"
    if release.get("report_sha256") != report_sha256:
        return (
            f"its audit report {release.get('audit_id')} was changed after release (sha256 "
            f"{report_sha256[:12]}, attested {str(release.get('report_sha256'))[:12]})"
        )
    if found.rejected is not None:
        return f"the oversight board rejected it ({found.rejected.get('by')})"
    decision = release.get("decision")
    if decision == "REVIEW" and not found.approvals:
        groups = release.get("review_groups") or "some groups"
        return f"its audit asks for a review ({groups}) that no oversight user has approved"
    if decision == "PASS" and release.get("approval_required") and not found.approvals:
        return "its release is still awaiting an oversight approval"
    if decision not in ("PASS", "REVIEW"):
        return f"its fairness audit {release.get('audit_id')} decided {decision}"
    if found.withdrawn is not None:
        w = found.withdrawn
        return f"the model was withdrawn by {w.get('by')} at {w.get('at')}: {w.get('note')}"
    return ""


class WithdrawnError(GateError):
    """The oversight board withdrew the model: nothing of it may be served."""

    code = "model_withdrawn"

    def __init__(self, message: str, *, statement: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.statement = statement or {}

    @property
    def plain(self) -> str:
        """Who withdrew the model, when and why, as coordinators read it."""
        s = self.statement
        when = str(s.get("at", "")).replace("T", " ").replace("+00:00", " UTC")
        return f"Withdrawn by {s.get('by', 'the oversight board')} on {when}: {s.get('note', '')}"


@dataclass(frozen=True)
class Trust:
    """Where a model's attestations live, the key that signs them (release tooling only) and
    the key that verifies them (everyone who serves)."""

    folder: Path
    verifier: Verifier
    signer: Signer | None = None
    #: Public keys retired by rotation: their statements signed before the rotation still hold.
    retired: tuple[Verifier, ...] = ()

    @property
    def verifiers(self) -> Verifiers:
        return {v.key_id: v for v in (*self.retired, self.verifier)}

    @classmethod
    def for_home(cls, keys: KeyPaths, folder: Path, *, signing: bool = True) -> Trust:
        """The trust of a deployment: its attestation folder and keys (created on first use
        when ``signing``; a verifying-only process needs just the public key), and the public
        keys retired by rotation (``retired/*.pub`` beside the release key)."""
        retired = tuple(
            load_verifier(p) for p in sorted((keys.release.parent / "retired").glob("*.pub"))
        )
        if signing:
            if not keys.release.exists() and keys.release_public.exists():
                # Only the public half is here: creating a new key would sign statements that
                # the deployment's public key can never verify.
                raise GateError(
                    f"this host holds only the release public key ({keys.release_public}): it "
                    "can verify, not sign (set OUTREACH_RELEASE_KEY where decisions are made)"
                )
            signer = load_signer(keys.release)
            return cls(folder, signer.verifier, signer, retired)
        if not keys.release_public.exists() and keys.release.exists():
            return cls(folder, load_signer(keys.release, create=False).verifier, None, retired)
        if not keys.release_public.exists():
            raise GateError(
                f"no release public key at {keys.release_public}: nothing can be verified, so "
                "nothing is served (release a model first, or set OUTREACH_RELEASE_PUBLIC_KEY)"
            )
        return cls(folder, load_verifier(keys.release_public), None, retired)

    def log(self, name: str) -> Path:
        return log_path(self.folder, name)

    def sign(self, name: str, statement: dict[str, Any]) -> Entry:
        if self.signer is None:
            raise GateError("this process holds no release key: it can verify, not sign")
        return append(self.log(name), self.signer, {"model": name, **statement})

    def standing(self, name: str, version: str) -> Standing:
        return standing(self.log(name), self.verifiers, version)


def rotate(keys: KeyPaths, folder: Path) -> tuple[str, str]:
    """Replace the release key: a new key signs a ``key_rotation`` statement into every model's
    log, the old public key is kept (in ``retired/``) so that what it signed before still holds,
    and the old private key is deleted, so that nothing new can be signed with it (a statement
    it signs after the rotation is refused). Returns the old and new key ids.
    """
    old = load_signer(keys.release, create=False)
    fresh = Ed25519PrivateKey.generate()
    new = Signer(fresh)
    old_id, new_id = old.verifier.key_id, new.verifier.key_id
    for log in sorted(folder.glob("*.jsonl")):
        append(
            log,
            new,
            {
                "model": log.stem,
                "kind": "key_rotation",
                "retired_key_id": old_id,
                "new_key_id": new_id,
            },
        )
    retired = keys.release.parent / "retired"
    retired.mkdir(parents=True, exist_ok=True)
    (retired / f"{old_id}.pub").write_bytes(old.verifier.pem())
    staged = keys.release.with_name(f".{keys.release.name}.new")
    handle = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(handle, "wb") as out:
        out.write(private_pem(fresh))
    os.replace(staged, keys.release)
    keys.release_public.write_bytes(new.verifier.pem())
    return old_id, new_id
