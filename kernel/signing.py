"""Ed25519 signatures for statements that must hold against a person, not only an accident.

Two keys, each for one signer:

- the **release key** signs release attestations (what was decided about a model version); it
  lives with the release tooling (``outreach release``, approvals, withdrawals) and never in
  MLflow. The service needs only its public half to verify.
- the **access-log key** signs the access log's chain checkpoints; the service holds it.

A key is created on first use with mode 0600 in the project home (``keys/``), or read from a
path given in production (``OUTREACH_RELEASE_KEY``, ``OUTREACH_ACCESS_LOG_KEY``; the public
release key alone with ``OUTREACH_RELEASE_PUBLIC_KEY``). Creation is exclusive, so two processes
starting at once end up with the same key. Statements are signed as canonical JSON (sorted keys,
no spaces), so any change to any field breaks the signature.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kernel.errors import BadInputError
from kernel.files import create_once, write_atomically


def canonical(statement: dict[str, Any]) -> bytes:
    """The exact bytes a statement is signed as."""
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass(frozen=True)
class Verifier:
    """A public key that checks signatures."""

    public_key: Ed25519PublicKey

    @property
    def key_id(self) -> str:
        """A short fingerprint of the public key, recorded beside each signature."""
        raw = self.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return base64.b32encode(raw).decode()[:16].lower()

    def verify(self, statement: dict[str, Any], signature: str) -> bool:
        """Whether ``signature`` (base64) signs exactly ``statement`` with this key."""
        try:
            self.public_key.verify(base64.b64decode(signature, validate=True), canonical(statement))
        except (InvalidSignature, ValueError):
            return False
        return True

    def pem(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass(frozen=True)
class Signer:
    """A private key that signs statements."""

    private_key: Ed25519PrivateKey

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.private_key.public_key())

    def sign(self, statement: dict[str, Any]) -> str:
        """The base64 signature of ``statement``'s canonical JSON."""
        return base64.b64encode(self.private_key.sign(canonical(statement))).decode()


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_signer(path: Path, *, create: bool = True) -> Signer:
    """The private key at ``path``; created there (mode 0600, exclusively) if missing.

    Raises
    ------
    BadInputError
        If the file is not an Ed25519 private key, or is missing and ``create`` is false.
    """
    if not path.exists():
        if not create:
            raise BadInputError(f"no signing key at {path}")
        key = Ed25519PrivateKey.generate()
        # Complete or absent (another process may read it the moment it appears); of processes
        # creating it at once, one wins and the others use its key.
        if create_once(path, private_pem(key)):
            write_atomically(path.with_suffix(".pub"), Signer(key).verifier.pem())
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, OSError) as err:
        raise BadInputError(f"the signing key {path} cannot be read: {err}") from err
    if not isinstance(loaded, Ed25519PrivateKey):
        raise BadInputError(f"the signing key {path} is not an Ed25519 key")
    return Signer(loaded)


def load_verifier(path: Path) -> Verifier:
    """A public key (PEM) from ``path``.

    Raises
    ------
    BadInputError
        If the file is missing or not an Ed25519 public key.
    """
    try:
        loaded = serialization.load_pem_public_key(path.read_bytes())
    except (ValueError, OSError) as err:
        raise BadInputError(f"the public key {path} cannot be read: {err}") from err
    if not isinstance(loaded, Ed25519PublicKey):
        raise BadInputError(f"the public key {path} is not an Ed25519 key")
    return Verifier(loaded)


@dataclass(frozen=True)
class KeyPaths:
    """Where each key lives: the home's ``keys/`` folder unless the environment says otherwise."""

    release: Path
    release_public: Path
    access_log: Path
    #: The release public key's id the deployment pins (``OUTREACH_RELEASE_PUBLIC_KEY`` given
    #: as a key id rather than a path): a verifying key with another id is refused.
    pinned_key_id: str | None = None

    @classmethod
    def resolve(cls, keys_folder: Path, env: Mapping[str, str]) -> KeyPaths:
        """Paths from ``OUTREACH_RELEASE_KEY``, ``OUTREACH_RELEASE_PUBLIC_KEY`` and
        ``OUTREACH_ACCESS_LOG_KEY``, else ``release.key``, ``release.pub`` and
        ``access-log.key`` in ``keys_folder``. Called once, by an entry point.

        ``OUTREACH_RELEASE_PUBLIC_KEY`` is a path to the public key (PEM), or a key id (as
        ``outreach keys show`` prints it): the public key is then read from its usual place,
        and refused unless it has that id."""
        release = Path(env.get("OUTREACH_RELEASE_KEY") or keys_folder / "release.key")
        given = (env.get("OUTREACH_RELEASE_PUBLIC_KEY") or "").strip()
        pinned = given if is_key_id(given) and not Path(given).exists() else None
        public = (given if given and pinned is None else "") or release.with_suffix(".pub")
        log_key = env.get("OUTREACH_ACCESS_LOG_KEY") or keys_folder / "access-log.key"
        return cls(release, Path(public), Path(log_key), pinned)


_KEY_ID = re.compile(r"[a-z2-7]{16}")


def is_key_id(value: str) -> bool:
    """Whether ``value`` has the shape of a key id (:attr:`Verifier.key_id`)."""
    return bool(_KEY_ID.fullmatch(value))
