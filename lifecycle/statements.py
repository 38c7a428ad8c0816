"""Release attestations: signed statements of exactly what was decided about a model version.

At every release, approval, rejection, withdrawal and reinstatement the release tooling appends a
statement to the model's attestation log (``<home>/attestations/<model>.jsonl``), signed with the
release key (:mod:`kernel.signing`, never stored in MLflow). A release statement binds the
version to its artifact's sha256, its audit report's sha256, the policy's sha256 and the audit's
decision; an approval names who approved, with which role, when, and the groups a REVIEW left
open. Each statement also carries the hash of the one before it, so the log cannot be reordered
or have a statement taken out of its middle without the chain showing it.

Registry tags stay as a readable cache and are never trusted: whether a version may be served is
decided by :mod:`lifecycle.version_state` from what this module reads (:meth:`Trust.state`: the
statements whose signatures verify, every problem of the log, its head checked against the one
anchored outside it). Someone who can edit the registry can copy tags, but cannot sign; someone
who can edit the log raises an alarm. A release key other than the deployment's signs nothing
(:class:`KeyMismatchError`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kernel.errors import BadInputError, GateError
from kernel.signing import (
    KeyPaths,
    Signer,
    Verifier,
    canonical,
    load_signer,
    load_verifier,
    private_pem,
)
from lifecycle.version_state import (
    Anchor,
    Anchors,
    LogInvalidError,
    ModelState,
    Standing,
    decision_refusal,
    fold,
    freeze_of,
    log_problems,
    withdrawal_words,
)

GENESIS = "0" * 64


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def log_path(folder: Path, name: str) -> Path:
    """The attestation log of registered model ``name`` in ``folder``."""
    return folder / f"{name}.jsonl"


def entry_digest(entry: dict[str, Any]) -> str:
    """The hash of an entry (canonical JSON) that the next entry of its log carries as
    ``previous``."""
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
        previous = entry_digest(existing[-1].as_dict()) if existing else GENESIS
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


Verifiers = dict[str, Verifier]


def endorsed(entries: Sequence[Entry], verifiers: Verifiers, root: str) -> set[str]:
    """The key ids whose statements count in a log: ``root`` (the deployment's verifying key)
    and each key a ``key_rotation`` statement retired, when that statement was signed by the
    key it introduced and that key is itself endorsed (walking back from the log's end).

    A public key found in ``retired/`` is a candidate only: a key dropped there that no signed
    rotation of the deployment's key names vouches for nothing.
    """
    trusted = {root}
    for entry in reversed(entries):
        statement = entry.statement
        if (
            statement.get("kind") == "key_rotation"
            and entry.key_id in trusted
            and statement.get("new_key_id") == entry.key_id
        ):
            verifier = verifiers.get(entry.key_id)
            if verifier is not None and verifier.verify(statement, entry.signature):
                trusted.add(str(statement.get("retired_key_id")))
    return trusted


def verified(
    path: Path, verifiers: Verifiers, root: str | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """The log's statements that verify, in order, and what is wrong with the rest.

    ``verifiers`` are the known public keys by key id: the current one and retired ones;
    ``root`` is the deployment's verifying key id (``None``: every key given is trusted as
    it is), and only it and the keys its signed rotations retired count (:func:`endorsed`). A
    statement whose signature fails, whose key is unknown or not endorsed, or was retired (by a
    ``key_rotation`` statement earlier in the log), whose link to the one before is broken, or
    whose sequence number is out of place is not used, and named.
    """
    statements: list[dict[str, Any]] = []
    problems: list[str] = []
    retired: set[str] = set()
    previous = GENESIS
    entries = read(path)
    trusted = set(verifiers) if root is None else endorsed(entries, verifiers, root)
    for number, entry in enumerate(entries, start=1):
        statement = entry.statement
        verifier = verifiers.get(entry.key_id)
        where = f"attestation {number} of {path.name}"
        if verifier is None or not entry.signature:
            problems.append(f"{where} has no valid signature (unknown key)")
        elif entry.key_id not in trusted:
            problems.append(
                f"{where} is signed with key {entry.key_id}, which neither the deployment's "
                f"verifying key ({root}) nor a key rotation it signed vouches for"
            )
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
        previous = entry_digest(entry.as_dict())
    return statements, problems


def standing(path: Path, verifiers: Verifiers, version: str, root: str | None = None) -> Standing:
    """The verified standing of ``version``, and whether the model is withdrawn
    (:func:`lifecycle.version_state.fold`); ``problems`` name what did not verify."""
    statements, problems = verified(path, verifiers, root)
    return fold(statements, version, problems)


@dataclass(frozen=True)
class LogRead:
    """A log as read now: its verified statements, its problems and each entry's hash."""

    exists: bool
    statements: tuple[dict[str, Any], ...]
    problems: tuple[str, ...]
    #: Each entry's hash (what the next entry links to) by its place in the log, from 1.
    hashes: dict[int, str]

    @property
    def entries(self) -> int:
        return len(self.hashes)

    @property
    def head(self) -> tuple[int, str] | None:
        """The last entry's (sequence, hash), ``None`` for an empty or missing log."""
        return (self.entries, self.hashes[self.entries]) if self.hashes else None

    @property
    def rotated_to(self) -> set[str]:
        """Key ids a verified ``key_rotation`` statement introduced."""
        return {
            str(s.get("new_key_id")) for s in self.statements if s.get("kind") == "key_rotation"
        }


def inspect(path: Path, verifiers: Verifiers, root: str | None = None) -> LogRead:
    """Read and verify a log once: statements, problems and entry hashes."""
    if not path.exists():
        return LogRead(False, (), (), {})
    statements, problems = verified(path, verifiers, root)
    hashes = {n: entry_digest(e.as_dict()) for n, e in enumerate(read(path), start=1)}
    return LogRead(True, tuple(statements), tuple(problems), hashes)


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
    code, reason = decision_refusal(found)
    return "" if code == "servable" else reason


class WithdrawnError(GateError):
    """The oversight board withdrew the model: nothing of it may be served."""

    code = "model_withdrawn"

    def __init__(self, message: str, *, statement: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.statement = statement or {}

    @property
    def plain(self) -> str:
        """Who withdrew the model, when and why, as coordinators read it."""
        return withdrawal_words(self.statement)


class KeyMismatchError(BadInputError):
    """The release key at hand is not the deployment's: signing with it would write statements
    the services cannot verify (a stop button that stops nothing). Nothing is written."""

    code = "signing_key_mismatch"


@dataclass(frozen=True)
class Trust:
    """Where a model's attestations live, the key that signs them (release tooling only) and
    the key that verifies them (everyone who serves)."""

    folder: Path
    verifier: Verifier
    signer: Signer | None = None
    #: Public keys retired by rotation: their statements signed before the rotation still hold.
    retired: tuple[Verifier, ...] = ()
    #: The key id the deployment pins (``OUTREACH_RELEASE_PUBLIC_KEY`` given as an id), if any.
    pinned_key_id: str | None = None
    #: Where log heads are anchored outside the logs (``None``: nowhere, the logs alone).
    anchors: Anchors | None = None
    #: Production mode: with anchors kept, a log with no anchored head is invalid until a person
    #: adopts it (:meth:`repair`); a new log's first statement is anchored as it is signed.
    anchor_required: bool = False

    @property
    def verifiers(self) -> Verifiers:
        return {v.key_id: v for v in (*self.retired, self.verifier)}

    def with_anchors(self, anchors: Anchors | None) -> Trust:
        return replace(self, anchors=anchors)

    @classmethod
    def for_home(
        cls, keys: KeyPaths, folder: Path, *, signing: bool = True, anchor_required: bool = False
    ) -> Trust:
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
            _refuse_foreign(signer.verifier.key_id, keys)
            return cls(
                folder,
                signer.verifier,
                signer,
                retired,
                keys.pinned_key_id,
                anchor_required=anchor_required,
            )
        if not keys.release_public.exists() and keys.release.exists():
            verifier = load_signer(keys.release, create=False).verifier
            return cls(
                folder, verifier, None, retired, keys.pinned_key_id, anchor_required=anchor_required
            )
        if not keys.release_public.exists():
            raise GateError(
                f"no release public key at {keys.release_public}: nothing can be verified, so "
                "nothing is served (release a model first, or set OUTREACH_RELEASE_PUBLIC_KEY)"
            )
        verifier = load_verifier(keys.release_public)
        return cls(
            folder, verifier, None, retired, keys.pinned_key_id, anchor_required=anchor_required
        )

    def log(self, name: str) -> Path:
        return log_path(self.folder, name)

    def sign(self, name: str, statement: dict[str, Any]) -> Entry:
        if self.signer is None:
            raise GateError("this process holds no release key: it can verify, not sign")
        entry = append(self.log(name), self.signer, {"model": name, **statement})
        if self.anchors is not None and entry.statement.get("previous") == GENESIS:
            # A new log, all of it written here: its head is anchored at once (a log found
            # later without an anchored head is not trusted in production mode).
            self.anchors.record(
                name, Anchor(1, entry_digest(entry.as_dict()), self.verifier.key_id)
            )
        return entry

    def anchor(self, name: str) -> ModelState:
        """Anchor the log's head now (after signing, once the caller's transaction is done):
        :meth:`state` records a longer head of a valid log."""
        return self.state(name, None)

    def inspect(self, name: str) -> LogRead:
        """``name``'s log read and verified once against the deployment's verifying key."""
        return inspect(self.log(name), self.verifiers, self.verifier.key_id)

    def statements(self, name: str) -> list[dict[str, Any]]:
        """``name``'s statements that verify (problems are :meth:`state`'s to report)."""
        return list(self.inspect(name).statements)

    def standing(self, name: str, version: str) -> Standing:
        return standing(self.log(name), self.verifiers, version, self.verifier.key_id)

    def state(self, name: str, alias: str | None) -> ModelState:
        """The model's state now (:class:`lifecycle.version_state.ModelState`): its log read and
        verified once, checked against the head anchored outside it and the pinned key.

        Every problem found is an alarm recorded with the anchors (it stays until a person
        repairs it, :meth:`repair`); a valid log's longer head is anchored.
        """
        read = self.inspect(name)
        anchored, alarm = self.anchors.latest(name) if self.anchors else (None, "")
        problems = self._problems(name, read, anchored, expected=alias is not None, adopting=False)
        if self.anchors is not None:
            if problems and "; ".join(problems) != alarm:
                self.anchors.alarm(name, "; ".join(problems))
            elif not problems and alarm:
                problems = [f"an alarm is open until a person repairs the log ({alarm})"]
            elif (
                not problems
                and read.head
                and (anchored is None or read.head[0] > anchored.sequence)
            ):
                self.anchors.record(name, Anchor(*read.head, self.verifier.key_id))
        return ModelState(name, read.statements, tuple(problems), alias, freeze_of(read.statements))

    def _problems(
        self, name: str, read: LogRead, anchored: Anchor | None, *, expected: bool, adopting: bool
    ) -> list[str]:
        return log_problems(
            name=name,
            chain=read.problems,
            entries=read.entries,
            hash_at=read.hashes,
            anchored=(anchored.sequence, anchored.hash) if anchored else None,
            log_exists=read.exists,
            expected=expected or anchored is not None,
            key_id=self.verifier.key_id,
            pinned_key_id=self.pinned_key_id,
            anchored_key_id=anchored.key_id if anchored else None,
            rotated_to=read.rotated_to,
            anchor_required=self.anchor_required and self.anchors is not None and not adopting,
        )

    def repair(self, name: str, *, by: str, note: str) -> Anchor:
        """A person's repair of ``name``'s log after its alarm: the log must verify now
        (signatures, chain, the pinned key) and extend the head anchored before (restored from
        a copy kept elsewhere); its head is anchored as it is and the alarm closed. Returns the
        new anchor.

        Raises
        ------
        LogInvalidError
            If the log still does not verify in itself (restore it from a copy first).
        BadInputError
            If no anchors are kept here, or ``by`` or ``note`` is empty.
        """
        if self.anchors is None:
            raise BadInputError("no service database here: there is no anchored head to repair")
        if not by.strip() or not note.strip():
            raise BadInputError("a repair needs --by and --note: who, and why, are recorded")
        read = self.inspect(name)
        anchored, _ = self.anchors.latest(name)
        problems = self._problems(name, read, anchored, expected=True, adopting=True)
        if problems or read.head is None:
            raise LogInvalidError(
                f"refusing to repair the attestation log of {name}: it still does not verify; "
                "restore it (and the release public key) from a copy kept elsewhere, then repair",
                details=problems or ["the log is empty"],
            )
        anchor = Anchor(*read.head, self.verifier.key_id)
        self.anchors.repair(name, anchor, by=by, note=note)
        return anchor


def _refuse_foreign(key_id: str, keys: KeyPaths) -> None:
    """Refuse a release key whose id is not the configured public key's (or the pinned id).

    Raises
    ------
    KeyMismatchError
        Naming both ids: nothing may be signed with it.
    """
    expected: list[tuple[str, str]] = []
    if keys.pinned_key_id:
        expected.append((keys.pinned_key_id, "OUTREACH_RELEASE_PUBLIC_KEY"))
    if keys.release_public.exists():
        # An unreadable public key raises (exit 2): what it would verify cannot be checked.
        expected.append((load_verifier(keys.release_public).key_id, str(keys.release_public)))
    wrong = [(k, w) for k, w in expected if k != key_id]
    if wrong:
        raise KeyMismatchError(
            f"refusing to sign with the release key {keys.release} (key id {key_id}): the "
            f"deployment verifies with key {wrong[0][0]} ({wrong[0][1]}), so nothing it signed "
            "would count; nothing was written. Put the deployment's release key back (or rotate "
            "keys with 'outreach keys rotate')"
        )


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
