"""The catalogue of registered versions and audit reports, and the names of the tags they carry.

Tags on a registered version are a readable cache of what was decided (the decision itself is
attested and signed: :mod:`lifecycle.statements`). Their names live here and nowhere else.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException

from kernel.errors import NotFoundError
from model.registry import ARTIFACT_SHA256, Registry

__all__ = [
    "ARTIFACT_SHA256",  # defined where registration writes it; one name everywhere
    "CANDIDATE",
    "PRODUCTION",
    "list_versions",
    "production_alias",
    "read_report",
    "report_path",
    "report_sha256",
    "version_tags",
]

PRODUCTION, CANDIDATE = "production", "candidate"

# Tag names on a registered version (a cache for people and pages, never trusted to serve).
AUDIT_ID = "audit_id"
AUDIT_DECISION = "audit_decision"
AUDIT_BREACHES = "audit_breaches"
REPORT_SHA256 = "report_sha256"
POLICY_NAME = "policy_name"
POLICY_SHA256 = "policy_sha256"
APPROVAL_REQUIRED = "approval_required"
REVIEW_GROUPS = "review_groups"
AWAITING_APPROVAL = "awaiting_approval"
APPROVED_BY = "approved_by"
APPROVED_AT = "approved_at"
APPROVAL_NOTE = "approval_note"
APPROVED_REVIEW_GROUPS = "approved_review_groups"
REJECTED_BY = "rejected_by"
REJECTED_AT = "rejected_at"
REJECTION_NOTE = "rejection_note"
WITHDRAWN_BY = "withdrawn_by"
WITHDRAWN_AT = "withdrawn_at"
PROMOTED_AT = "promoted_at"
PROMOTED_BECAUSE = "promoted_because"
PREVIOUS_PRODUCTION = "previous_production"
ROLLED_BACK_AT = "rolled_back_at"


#: MLflow's answers that mean "there is no such alias (or model)", as opposed to "no answer".
_ABSENT = frozenset({"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"})


def production_alias(registry: Registry, name: str) -> str | None:
    """The version the ``production`` alias names, ``None`` when there is none.

    Raises
    ------
    MlflowException
        When the registry did not answer (unreachable), as opposed to answering "none".
    """
    try:
        return str(registry.client.get_model_version_by_alias(name, PRODUCTION).version)
    except MlflowException as err:
        if err.error_code in _ABSENT:
            return None
        raise


def version_tags(registry: Registry, name: str, version: str) -> dict[str, str]:
    """A registered version's tags."""
    try:
        return dict(registry.client.get_model_version(name, version).tags)
    except MlflowException as err:
        raise NotFoundError(f"no version {version} of registered model '{name}'") from err


def list_versions(registry: Registry, name: str | None = None) -> list[dict[str, Any]]:
    """Registered versions with their aliases, metrics at capacity and the readable cache of
    their tags (decision, approvals, ...), written for people: never read to decide what may be
    served (:func:`lifecycle.verified_loading.version_states` gives each version's state from the
    signed statements)."""
    client = registry.client
    names = [name] if name else [m.name for m in client.search_registered_models()]
    rows = []
    for model_name in names:
        try:
            aliases = client.get_registered_model(model_name).aliases
        except MlflowException as err:
            raise NotFoundError(f"no registered model '{model_name}'") from err
        by_version: dict[str, list[str]] = {}
        for alias, version in aliases.items():
            by_version.setdefault(str(version), []).append(alias)
        for v in client.search_model_versions(f"name='{model_name}'"):
            tags = dict(v.tags)
            rows.append(
                {
                    "name": model_name,
                    "version": str(v.version),
                    "aliases": sorted(by_version.get(str(v.version), [])),
                    "candidate": tags.get("candidate"),
                    "audit_id": tags.get(AUDIT_ID),
                    "decision": tags.get(AUDIT_DECISION),
                    "awaiting_approval": tags.get(AWAITING_APPROVAL) == "true",
                    "approved_by": tags.get(APPROVED_BY),
                    "review_groups": tags.get(REVIEW_GROUPS) or "",
                    "approved_review_groups": tags.get(APPROVED_REVIEW_GROUPS) or "",
                    "rejected_by": tags.get(REJECTED_BY),
                    "withdrawn_by": tags.get(WITHDRAWN_BY),
                    "precision_at_k": _float(tags.get("metric.precision_at_k")),
                    "recall_at_k": _float(tags.get("metric.recall_at_k")),
                    "created": v.creation_timestamp,
                }
            )
    return sorted(rows, key=lambda r: (r["name"], int(r["version"])))


def _float(value: str | None) -> float | None:
    return None if value is None else float(value)


#: What an audit id may look like (``audit-20261125T025954-baf9598f``): no paths, bounded.
_AUDIT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,119}")


def report_path(audits: Path, audit_id: str) -> Path:
    """Where a stored audit report's JSON lives in the folder ``audits`` (the id is checked
    before any file access)."""
    if not isinstance(audit_id, str) or not _AUDIT_ID.fullmatch(audit_id):
        raise NotFoundError(f"no audit '{str(audit_id)[:80]}'")
    path = audits / audit_id / "audit.json"
    if not path.is_file():
        raise NotFoundError(f"no audit '{audit_id}'")
    return path


def read_report(registry: Registry, audit_id: str) -> dict[str, Any]:
    """A stored audit report by id."""
    return report_in(registry.home.audits, audit_id)


def report_in(audits: Path, audit_id: str) -> dict[str, Any]:
    """A stored audit report by id, from the folder ``audits`` (no registry needed).

    Raises
    ------
    NotFoundError
        If the id is malformed or no report is stored under it.
    """
    return dict(json.loads(report_path(audits, audit_id).read_text()))


def report_sha256(audits: Path, audit_id: str) -> str | None:
    """The sha256 of a stored report's JSON as it is on disk now (``None`` if missing)."""
    try:
        return hashlib.sha256(report_path(audits, audit_id).read_bytes()).hexdigest()
    except NotFoundError:
        return None
