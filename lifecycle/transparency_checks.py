"""What a transparency record must hold (the ATRS fields it may not leave empty) and its public
tier-1 summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lifecycle.transparency_sources import AGENCY

#: Keys each document must fill (the ATRS documents are checked field by field).
REQUIRED = {
    "atrs": ("standard", "generated_from"),
    "register_entry": (
        "generated_from",
        "id",
        "name",
        "description",
        "purpose",
        "status",
        "dates",
        "owner",
        "contact_email",
        "website",
        "datasets",
        "data_processing",
        "non_discrimination",
        "human_oversight",
        "risks",
        "impact_assessments",
        "links",
        "hashes",
    ),
    "model_card": (
        "generated_from",
        "model_details",
        "intended_use",
        "out_of_scope_uses",
        "training_data",
        "evaluation_data",
        "features",
        "sensitive_attributes",
        "limitations",
        "performance",
    ),
    "datasheet": (
        "generated_from",
        "description",
        "data_fingerprint",
        "unit",
        "period_range",
        "rows",
        "training",
        "audited_periods",
        "audited_rows",
        "label",
        "groups",
        "missingness",
        "columns",
    ),
    "provenance": (
        "artifact_sha256",
        "files_manifest_sha256",
        "audit_id",
        "report_sha256",
        "policy_sha256",
        "decision",
        "attestation",
    ),
}


def _empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, Mapping):
        return not value or all(_empty(v) for v in value.values())
    if isinstance(value, Sequence):
        return len(value) == 0
    return False


def _atrs_fields(record: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    atrs = record.get("atrs") or {}
    found = [(f"atrs.tier_1.{k}", v) for k, v in (atrs.get("tier_1") or {}).items()]
    for section, fields in (atrs.get("tier_2") or {}).items():
        found += [(f"atrs.tier_2.{section}.{k}", v) for k, v in fields.items()]
    return found


def required_fields_missing(record: Mapping[str, Any]) -> list[str]:
    """Every required field of ``record`` that is empty, by its path; a field still awaiting the
    deploying agency is listed with ``(to be completed by the deploying agency)``.

    Findings (such as impact assessments the policy does not record) are not missing fields: the
    record states them in words and lists them under ``findings``.
    """
    missing: list[str] = []
    if not _atrs_fields(record):
        missing.append("atrs")
    for path, item in _atrs_fields(record):
        value = item.get("value") if isinstance(item, Mapping) else None
        if _empty(value):
            missing.append(path)
        elif value == AGENCY:
            missing.append(f"{path} ({AGENCY})")
    for document, keys in REQUIRED.items():
        found = record.get(document) or {}
        missing += [f"{document}.{k}" for k in keys if _empty(found.get(k))]
    register = record.get("register_entry") or {}
    missing += [
        f"register_entry.{k} ({AGENCY})"
        for k in ("contact_email", "website")
        if register.get(k) == AGENCY
    ]
    missing += [
        f"register_entry.owner.{k} ({AGENCY})"
        for k, v in (register.get("owner") or {}).items()
        if v == AGENCY
    ]
    sheet = record.get("datasheet") or {}
    for column in sheet.get("columns") or []:
        if _empty(column.get("source")):
            missing.append(f"datasheet.columns.{column.get('column')}.source")
    for group in sheet.get("groups") or []:
        for key in ("rows", "label_rate"):
            if _empty(group.get(key)):
                missing.append(
                    f"datasheet.groups.{group.get('attribute')}={group.get('group')}.{key}"
                )
    for key in ("from", "to"):
        if _empty((sheet.get("period_range") or {}).get(key)):
            missing.append(f"datasheet.period_range.{key}")
    attestation = (record.get("provenance") or {}).get("attestation") or {}
    missing += [
        f"provenance.attestation.{k}"
        for k in ("sequence", "key_id", "signed_at")
        if _empty(attestation.get(k))
    ]
    return missing


def public_summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """The public tier-1 summary: no group counts, nothing about any one person."""
    tier_1 = record["atrs"]["tier_1"]
    provenance = record["provenance"]
    return {
        "schema": "outreach.transparency-summary/1",
        "standard": "UK ATRS v3.0, tier 1",
        "name": record["name"],
        "version": record["version"],
        "tier_1": {k: {"label": v["label"], "value": v["value"]} for k, v in tier_1.items()},
        "impact_assessments": record["atrs"]["tier_2"]["risks_and_impact_assessments"][
            "impact_assessments"
        ]["value"],
        "generated_from": {
            "artifact_sha256": provenance["artifact_sha256"],
            "audit_id": provenance["audit_id"],
            "report_sha256": provenance["report_sha256"],
            "policy_sha256": provenance["policy_sha256"],
            "attestation_sequence": provenance["attestation"]["sequence"],
            "key_id": provenance["attestation"]["key_id"],
        },
    }
