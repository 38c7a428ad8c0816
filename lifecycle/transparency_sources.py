"""The facts a transparency record is made of: the deployment's settings file and the verified
sources (the release's statements, its audit report and its spec), read once."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel.errors import BadInputError, GateError, NotFoundError
from kernel.home import Home
from lifecycle.catalogue import production_alias, report_path
from lifecycle.statements import Trust, read
from lifecycle.verified_loading import LoadedModel, load_version
from model.registry import Registry
from model.spec import read_toml

SCHEMA = "outreach.transparency/1"


#: What a field says when the fact is the deploying agency's to give and its settings do not.
AGENCY = "to be completed by the deploying agency"


#: What the impact-assessment field says when the policy names no assessment (a finding).
NOT_IN_POLICY = "not recorded in the policy"


#: The deployment settings file's keys: the facts only the deploying agency knows.
SETTINGS_KEYS = {
    "organisation": "the organisation or department responsible for the tool",
    "team": "the team responsible for the tool",
    "senior_responsible_owner": "the role title of the senior responsible owner",
    "contact_email": "the email address the public can write to about the tool",
    "website": "the page with more information about the tool",
    "external_supplier": "who else built or runs the tool, and on what terms (or 'none')",
    "legal_basis": "the legal basis for processing the data",
    "previous_process": "how people were chosen for outreach before the tool",
    "required_training": "the training outreach coordinators receive before using the list",
    "complaints": "how a person can complain or ask for a decision to be reviewed",
}


SETTINGS_FILE = "transparency.toml"


def settings_path(home: Home) -> Path:
    """Where a deployment keeps its transparency settings (optional)."""
    return home.root / SETTINGS_FILE


def load_settings(path: str | Path | None) -> dict[str, str]:
    """The deploying agency's facts from a TOML file (``{}`` when ``path`` is ``None``).

    Raises
    ------
    BadInputError
        If the file cannot be read, is not TOML, has a key other than :data:`SETTINGS_KEYS` or a
        value that is not a non-empty string; every problem is listed.
    """
    if path is None:
        return {}
    raw, _ = read_toml(path, "transparency settings file")
    problems = [
        f"{key}: unknown key (expected one of: {', '.join(SETTINGS_KEYS)})"
        for key in raw
        if key not in SETTINGS_KEYS
    ]
    problems += [
        f"{key}: give {SETTINGS_KEYS[key]} as a non-empty string"
        for key, value in raw.items()
        if key in SETTINGS_KEYS and (not isinstance(value, str) or not value.strip())
    ]
    if problems:
        raise BadInputError(f"the transparency settings file {path} is invalid", details=problems)
    return {key: str(value).strip() for key, value in raw.items()}


@dataclass(frozen=True)
class Sources:
    """Every fact a record may use, each verified: the served bytes, the signed statements and
    the report whose sha256 the release statement binds."""

    loaded: LoadedModel
    release: dict[str, Any]
    approvals: list[dict[str, Any]]
    key_id: str
    report: dict[str, Any]
    report_sha256: str
    in_production: bool


def _key_id(trust: Trust, name: str, statement: Mapping[str, Any]) -> str:
    """The id of the key that signed ``statement`` in the model's log (verified already)."""
    for entry in read(trust.log(name)):
        if entry.statement == statement:
            return entry.key_id
    raise GateError(f"the release statement of {name} is not in its attestation log")


def verified_sources(
    registry: Registry, trust: Trust, name: str, version: str | None = None
) -> Sources:
    """The facts of version ``version`` (default: the production version), all verified.

    Raises
    ------
    NotFoundError
        If there is no such model or version (or no production version when none is named).
    GateError
        If the version may not be served: no valid signed release covers its bytes, its report
        or policy differ from the attested ones, it was rejected or withdrawn.
    """
    production = production_alias(registry, name)
    if version is None:
        if production is None:
            raise NotFoundError(
                f"registered model '{name}' has no production version; name one with --version"
            )
        version = production
    loaded = load_version(registry, name, version, trust=trust)
    found = trust.standing(name, version)
    release = dict(found.release or {})
    if release != loaded.attestation:
        raise GateError(f"the release statement of {name} version {version} changed while read")
    data = report_path(registry.home.audits, loaded.audit_id).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != release.get("report_sha256"):
        raise GateError(
            f"no record for {name} version {version}: its audit report {loaded.audit_id} differs "
            f"from the one attested at release (sha256 {digest[:12]})"
        )
    report = dict(json.loads(data))
    if report.get("policy", {}).get("sha256") != release.get("policy_sha256"):
        raise GateError(
            f"no record for {name} version {version}: its report's policy is not the attested one"
        )
    return Sources(
        loaded=loaded,
        release=release,
        approvals=list(found.approvals),
        key_id=_key_id(trust, name, release),
        report=report,
        report_sha256=digest,
        in_production=production == version,
    )
