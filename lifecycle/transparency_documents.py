"""The documents of a transparency record (the ATRS tiers, the datasheet, the provenance, the
register entry), written from verified sources only."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from audits import disclosure
from audits.policy import ASSESSMENT_KINDS, assessments_from_report, is_placeholder
from audits.report import DECISION_WORDS, plain_numbers
from kernel.signing import canonical
from lifecycle.transparency_sources import AGENCY, NOT_IN_POLICY, SCHEMA, SETTINGS_FILE, Sources
from model.words import feature_words, unit_words


def _field(ref: str, label: str, value: Any, source: str) -> dict[str, Any]:
    return {"ref": ref, "label": label, "value": value, "source": source}


def _agency(settings: Mapping[str, str], key: str, ref: str, label: str) -> dict[str, Any]:
    if key in settings:
        return _field(ref, label, settings[key], f"deployment settings ({SETTINGS_FILE}: {key})")
    return _field(ref, label, AGENCY, "the deploying agency")


def _pct(value: Any) -> str:
    return "–" if not _number(value) else f"{float(value):.1%}"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(float(value))


def _when(value: Any) -> str:
    return str(value or "").replace("T", " ").replace("+00:00", " UTC")


def _approval_words(approval: Mapping[str, Any]) -> str:
    words = (
        f"Approved by {approval.get('by')} ({approval.get('role')}) on {_when(approval.get('at'))}"
    )
    if approval.get("review_groups"):
        words += f", taking on the groups the audit could not judge: {approval['review_groups']}"
    return words


@dataclass
class _Facts:
    """The verified facts, named once for the documents that use them."""

    sources: Sources
    settings: Mapping[str, str]
    generated_at: str
    findings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        s = self.sources
        self.name, self.version = s.loaded.name, s.loaded.version
        self.model = s.loaded.model
        self.report = s.report
        self.experiment: dict[str, Any] = dict(s.report.get("experiment") or {})
        self.policy: dict[str, Any] = dict(s.report.get("policy") or {})
        self.card: dict[str, Any] = dict(s.report.get("model_card") or {})
        self.overall: dict[str, Any] = dict(s.report.get("overall") or {})
        self.decision = str(s.release.get("decision", ""))
        self.min_group = disclosure.threshold_of(self.policy)
        self.counted = unit_words(self.model.unit)
        self.unit_words = self.counted.many

    @property
    def capacity(self) -> str:
        return str(self.experiment.get("capacity") or "")

    @property
    def phase(self) -> str:
        if self.sources.in_production:
            return "production"
        return "released: may be served, but another version is in production"

    @property
    def approvals_text(self) -> str:
        approvals = self.sources.approvals
        if not approvals:
            if self.decision == "PASS" and not self.sources.release.get("approval_required"):
                return (
                    "Released after its fairness audit passed; the policy in force did not ask "
                    "for an oversight approval."
                )
            return "No oversight approval is recorded."
        return "; ".join(_approval_words(a) for a in approvals) + "."

    def chosen(self) -> dict[str, Any]:
        rows = [c for c in self.report.get("candidates") or [] if c.get("chosen")]
        return dict(rows[0]) if rows else {}


def _tier_1(f: _Facts) -> dict[str, Any]:
    description = (
        f"{f.experiment.get('description') or f.card.get('intended_use', '')} Each month the tool "
        f"ranks {f.unit_words} by how likely this outcome is: “{f.model.label_description}” "
        f"(looking {f.experiment.get('horizon_months')} months ahead), and puts the top "
        f"{f.capacity} on an outreach coordinator's list with the reasons for each "
        "place. A coordinator decides whether and how to offer help; a person may decline or ask "
        "not to be listed again. It is never used for enforcement, investigations, sanctions, "
        "eligibility or benefit decisions."
    )
    audit = (
        f"Every release is checked by a fairness audit across groups before it can be served. "
        f"This version's audit ({f.sources.loaded.audit_id}, {_when(f.report.get('created_at'))}) "
        f"decided {f.decision}: {DECISION_WORDS.get(f.decision, '')}."
    )
    return {
        "name": _field("1.1", "Name", f"{f.name} (version {f.version})", "the registered model"),
        "description": _field(
            "1.2", "Description", description, "the experiment spec in the signed audit report"
        ),
        "website": _agency(f.settings, "website", "1.3", "Website"),
        "contact_email": _agency(f.settings, "contact_email", "1.4", "Contact email"),
        "organisation": _agency(f.settings, "organisation", "metadata", "Organisation"),
        "phase": _field("metadata", "Phase", f.phase, "the registry's production alias"),
        "human_oversight": _field(
            "1.2",
            "How people stay in control",
            f"A person decides every offer of help. {f.approvals_text}",
            "the signed release and approval statements",
        ),
        "fairness_audit": _field(
            "1.2", "Fairness audit", audit, "the signed release statement and audit report"
        ),
        "last_updated": _field("metadata", "Record generated", f.generated_at, "this record"),
    }


def _owner(f: _Facts) -> dict[str, Any]:
    release = f.sources.release
    return {
        "organisation": _agency(f.settings, "organisation", "2.1.1", "Organisation"),
        "team": _agency(f.settings, "team", "2.1.2", "Team"),
        "senior_responsible_owner": _agency(
            f.settings, "senior_responsible_owner", "2.1.3", "Senior responsible owner"
        ),
        "external_supplier": _agency(
            f.settings, "external_supplier", "2.1.4", "External supplier involvement"
        ),
        "release_accountability": _field(
            "2.1",
            "Who released and approved this version",
            f"Released by {release.get('by')} on {_when(release.get('at'))}. {f.approvals_text}",
            "the signed release and approval statements",
        ),
    }


def _rationale(f: _Facts) -> dict[str, Any]:
    features = "; ".join(feature_words(ft).lower() for ft in f.model.features)
    candidates = f.report.get("candidates") or []
    alternatives = (
        f"{len(candidates)} candidate model(s) were trained and audited on the same later months: "
        + "; ".join(
            f"{c.get('name')} ({c.get('decision')}, precision at capacity "
            f"{_pct(c.get('precision_at_k'))})"
            for c in candidates
        )
        + ". The chosen one ranked first by its audit's decision, then accuracy at capacity; "
        "each was also compared with a simple rule and a random list."
    )
    chosen = f.chosen()
    benefit = (
        f"Of the {f.unit_words} offered outreach in the audited later months, "
        f"{_pct(f.overall.get('precision'))} went on to face the outcome (the people the help is "
        f"for), and {_pct(f.overall.get('recall'))} of all who did were reached within capacity"
        + (
            f" (mean over validation splits: precision {_pct(chosen.get('precision_at_k'))}, "
            f"recall {_pct(chosen.get('recall_at_k'))})"
            if chosen
            else ""
        )
        + "."
    )
    return {
        "detailed_description": _field(
            "2.2.1",
            "Detailed description",
            f"An additive model ({f.model.candidate}) over {len(f.model.feature_names)} inputs "
            f"({features}) estimates the chance of this outcome: “{f.model.label_description}” "
            f"(looking {f.experiment.get('horizon_months')} months ahead); each score is "
            "explained exactly by the inputs' contributions, shown in plain words with a "
            "suggested service.",
            "the attested scoring model and the signed audit report",
        ),
        "scope": _field(
            "2.2.2",
            "Scope",
            {
                "intended_use": f.card.get("intended_use"),
                "out_of_scope_uses": f.card.get("out_of_scope_uses"),
            },
            "the model card in the signed audit report",
        ),
        "benefit": _field("2.2.3", "Benefit", benefit, "the signed audit report"),
        "previous_process": _agency(f.settings, "previous_process", "2.2.4", "Previous process"),
        "alternatives_considered": _field(
            "2.2.5", "Alternatives considered", alternatives, "the signed audit report"
        ),
    }


def _decision_process(f: _Facts) -> dict[str, Any]:
    area = f.model.area_column
    areas = f" filtered to the coordinator's areas ({area})" if area else ""
    return {
        "process_integration": _field(
            "2.3.1",
            "Process integration",
            f"Once a month the served version scores every {f.model.unit} on record; the top "
            f"{f.capacity} form the outreach list{areas}. Coordinators record each contact's "
            "outcome; people who opted out are never listed.",
            "the attested scoring model (capacity, columns)",
        ),
        "provided_information": _field(
            "2.3.2",
            "Information given to the people who decide",
            "For each entry: the score, its band, the inputs that raised it in plain words with "
            "a suggested service, and the model version and audit. Sensitive attributes are never "
            "shown to coordinators and are never model inputs.",
            "the attested scoring model",
        ),
        "frequency_and_scale": _field(
            "2.3.3",
            "Frequency and scale of use",
            f"Monthly; {f.capacity} of the {f.unit_words} scored. The audit read "
            f"{f.overall.get('n')} rows over {len(f.experiment.get('validation_periods') or [])} "
            "later months.",
            "the signed audit report",
        ),
        "human_decisions_and_review": _field(
            "2.3.4",
            "Human decisions and review",
            "No one is contacted, offered or refused anything by the tool: an outreach "
            "coordinator decides whether and how to offer help, and the person may decline. The "
            "oversight board reads every release's audit, approves releases where the policy or "
            "the audit asks, and can withdraw the model at once. " + f.approvals_text,
            "the signed release and approval statements",
        ),
        "required_training": _agency(f.settings, "required_training", "2.3.5", "Required training"),
        "appeals_and_review": _field(
            "2.3.6",
            "Appeals and review",
            "A person may decline any offer and ask not to be listed again (an opt-out every list "
            "respects); a coordinator can file a request for review of a listing, which the "
            "oversight board decides and keeps on the record. "
            + (
                f"The agency's route: {f.settings['complaints']}"
                if "complaints" in f.settings
                else ""
            ),
            "the service's opt-out and requests for review"
            + (
                f"; deployment settings ({SETTINGS_FILE}: complaints)"
                if "complaints" in f.settings
                else ""
            ),
        ),
    }


def _tool(f: _Facts) -> dict[str, Any]:
    return {
        "system_architecture": _field(
            "2.4.1",
            "System architecture",
            "scikit-learn models trained on earlier months and audited with Fairlearn on later "
            "ones, registered in MLflow; a release is served only under a signed statement of its "
            "exact bytes, audit report and policy, checked again before every load.",
            "the signed release statement",
        ),
        "phase": _field("2.4.2", "Phase", f.phase, "the registry's production alias"),
        "maintenance": _field(
            "2.4.3",
            "Maintenance",
            "Every new version passes through the same audit and gate; after release, scores and "
            "outcomes are monitored by group each month, and the next release's audit carries "
            "what the months since showed. The board can withdraw the model at any time.",
            "the release process",
        ),
        "models": _field(
            "2.4.4",
            "Models",
            {
                "name": f.name,
                "version": f.version,
                "task": f"rank {f.unit_words} by the chance of “{f.model.label_description}”",
                "architecture": f.model.candidate,
                "inputs": list(f.model.feature_names),
                "output": "a calibrated probability, its band and the reasons that raised it",
                "performance": {
                    "precision_at_capacity": f.overall.get("precision"),
                    "recall_at_capacity": f.overall.get("recall"),
                    "audited_months": f.experiment.get("validation_periods"),
                },
            },
            "the attested scoring model and the signed audit report",
        ),
    }


def _data_specification(f: _Facts, datasheet: dict[str, Any]) -> dict[str, Any]:
    sensitive = list(f.policy.get("sensitive_attributes") or [])
    missing_by_group = [m for m in datasheet["missingness"] if m["allowed"]]
    completeness = (
        "Gaps are refused in every input (the data check names the rows)."
        if not missing_by_group
        else "Inputs that may be missing, with the share missing: "
        + "; ".join(f"{m['feature']} {_pct(m['overall_share'])}" for m in missing_by_group)
        + ". The audit compares each group's share missing with everyone else's."
    )
    return {
        "source_data": _field(
            "2.4.5",
            "Source data",
            [
                {"column": c["column"], "role": c["role"], "source": c["source"]}
                for c in datasheet["columns"]
            ],
            "feature sources in the attested scoring model; [data.sources] in the signed report",
        ),
        "data_description": _field(
            "2.4.5",
            "Data description and quantities",
            f"{datasheet['rows']} rows of monthly {f.model.unit} snapshots from "
            f"{datasheet['period_range']['from']} to {datasheet['period_range']['to']}; trained "
            f"on {f.experiment.get('training')}.",
            "the signed audit report",
        ),
        "sensitive_attributes": _field(
            "2.4.5",
            "Sensitive attributes",
            f"Used only to audit fairness, never as model inputs and never shown to coordinators: "
            f"{', '.join(sensitive)}.",
            "the policy block of the signed audit report",
        ),
        "completeness_and_representativeness": _field(
            "2.4.5",
            "Completeness and representativeness",
            completeness + _not_assessable_sentence(f),
            "the signed audit report",
        ),
        "legal_basis": _agency(f.settings, "legal_basis", "2.4.5", "Legal basis for processing"),
    }


def _not_assessable_sentence(f: _Facts) -> str:
    """The groups the audit could not judge on its own, named (their counts are not published:
    they are small)."""
    named = [
        f"{n.get('group')} ({str(n.get('attribute', '')).replace(' × ', ' and ')})"
        for n in f.report.get("not_assessable") or []
    ]
    people = int(f.policy.get("min_group_positives") or 0)
    rule = (
        f" The audit judges a group on its own from {f.min_group:,} {f.unit_words} and "
        f"{people:,} of them in need; smaller groups' counts are not published here."
    )
    if not named:
        return rule
    what = (
        "each sent the release to a person"
        if f.policy.get("not_assessable") == "review"
        else "they are disclosed here and were part of any approval"
    )
    return (
        rule
        + f" {len(named)} group(s) could not be judged with this data ({what}): "
        + "; ".join(named)
        + "."
    )


def _assessments(f: _Facts) -> dict[str, Any]:
    found = assessments_from_report(f.report)
    listed = []
    for key, words in ASSESSMENT_KINDS.items():
        item = getattr(found, key)
        if item is None:
            continue
        listed.append(
            {
                "kind": key,
                "assessment": words,
                "id": item.id,
                "date": item.date.isoformat() if item.date else None,
                "owner": item.owner or None,
                "url": item.url or None,
                "placeholder": is_placeholder(item.id),
            }
        )
    f.findings.extend(f"Impact assessments: {p}." for p in found.problems())
    return _field(
        "2.5.1",
        "Impact assessments",
        listed or NOT_IN_POLICY,
        "[impact_assessments] of the policy in the signed audit report",
    )


def _risks(f: _Facts) -> dict[str, Any]:
    risks = [
        {"risk": text, "mitigation": "stated in the model card"}
        for text in f.card.get("limitations") or []
    ]
    risks.append(
        {
            "risk": "automation bias: a coordinator may defer to the score",
            "mitigation": "the list offers help only; reasons in plain words beside every score; "
            "a person decides every contact and the person may decline",
        }
    )
    for item in f.report.get("review") or []:
        risks.append(
            {
                "risk": f"the audit could not judge {item.get('group')} ({item.get('attribute')}) "
                f"on {item.get('metric')}",
                "mitigation": "taken on by the oversight approval; monitored by group",
            }
        )
    for finding in (f.report.get("missingness") or {}).get("findings") or []:
        risks.append({"risk": finding, "mitigation": "shown to the board in the audit report"})
    for proxy in f.report.get("proxies") or []:
        if proxy.get("flagged"):
            risks.append(
                {
                    "risk": f"the inputs may stand in for {proxy.get('attribute')}",
                    "mitigation": "shown to the board in the audit report",
                }
            )
    return _field(
        "2.5.2",
        "Risks and mitigations",
        risks,
        "the model card and findings of the signed audit report",
    )


def _unpublished(f: _Facts) -> str:
    """How a withheld count reads in the record (:mod:`audits.disclosure`)."""
    return f"not published ({disclosure.words(f.min_group, f.counted)})"


def _withheld_groups(
    f: _Facts, groups: list[dict[str, Any]], counts: tuple[str, ...]
) -> list[set[str]]:
    """For each group row (``attribute``, ``group``, ``n`` and ``counts``), the fields the one
    small-cell rule withholds (``n`` withheld: the whole row). The groups of an attribute add up
    to the published total, so a withheld group takes another with it."""
    rows = [
        {
            k: g.get(k)
            for k in ("attribute", "group", "n", *counts)
            if _number(g.get(k)) or k in ("attribute", "group")
        }
        for g in groups
    ]
    disclosure.withhold_groups(rows, f.min_group, size="n", counts=counts)
    # Rows of a group with few people (several months each) would tell how many: withheld too.
    return [
        (hidden | {"n"}) if "people" in hidden else hidden
        for hidden in (set(r.get(disclosure.WITHHELD) or {}) for r in rows)
    ]


def _missingness(f: _Facts) -> list[dict[str, Any]]:
    reported: dict[str, list[dict[str, Any]]] = {}
    for item in (f.report.get("missingness") or {}).get("features") or []:
        reported.setdefault(str(item.get("feature")), []).append(item)
    out = []
    for feature in f.model.features:
        if not feature.allows_missing:
            out.append(
                {
                    "feature": feature.name,
                    "allowed": False,
                    "overall_share": 0.0,
                    "by_group": "none in any group: the data check refuses gaps in this input",
                }
            )
            continue
        items = reported.get(feature.name, [])
        out.append(
            {
                "feature": feature.name,
                "allowed": True,
                "overall_share": items[0].get("share") if items else None,
                "by_group": [
                    {
                        "attribute": item.get("attribute"),
                        "group": g.get("group"),
                        "share": _unpublished(f) if hidden else g.get("share"),
                    }
                    for item in items
                    for g, hidden in _missing_withheld(f, item)
                ]
                or None,
            }
        )
    return out


def _missing_withheld(f: _Facts, item: Mapping[str, Any]) -> list[tuple[dict[str, Any], bool]]:
    """One feature's groups of one attribute, each with whether its share is withheld: the
    group is small, or so is its count of missing values (the share times the rows)."""
    groups = [dict(g) for g in item.get("groups") or []]
    rows = [
        {
            "attribute": item.get("attribute"),
            "group": g.get("group"),
            "n": g.get("n"),
            "missing": (
                round(float(g["share"]) * float(g["n"]))
                if _number(g.get("share")) and _number(g.get("n"))
                else None
            ),
        }
        for g in groups
    ]
    withheld = _withheld_groups(f, rows, ("missing",))
    return [(g, bool(w)) for g, w in zip(groups, withheld, strict=True)]


def _columns(f: _Facts) -> list[dict[str, Any]]:
    """Every column the release read, its role, and where it comes from (``None``: not said)."""
    sources: dict[str, Any] = dict(f.experiment.get("column_sources") or {})
    m = f.model
    roles: list[tuple[str, str, str | None]] = [
        (m.id_column, "id", None),
        (m.time_column, "time", None),
    ]
    if m.area_column and m.area_column != m.id_column:
        roles.append((m.area_column, "area (never a model input)", None))
    roles += [(ft.name, "model input", ft.kind) for ft in m.features]
    roles.append((m.label_column, "label (the outcome learnt)", None))
    for attribute in f.policy.get("sensitive_attributes") or []:
        roles.append((attribute, "sensitive attribute (audits only)", None))
    named = {column for column, _, _ in roles}
    roles += [(c, "other (never a model input)", None) for c in sources if c not in named]
    features = {ft.name: ft.source for ft in m.features}
    return [
        {
            "column": column,
            "role": role,
            "kind": kind,
            "source": features[column] if column in features else sources.get(column),
        }
        for column, role, kind in roles
    ]


def _period_range(f: _Facts) -> dict[str, Any]:
    recorded = f.experiment.get("data_periods")
    if isinstance(recorded, list) and len(recorded) == 2:
        return {"from": recorded[0], "to": recorded[1]}
    months = re.findall(r"\d{4}-\d{2}", str(f.experiment.get("training") or ""))
    return {"from": months[0] if months else None, "to": months[-1] if months else None}


def _datasheet(f: _Facts) -> dict[str, Any]:
    n, positives = f.overall.get("n"), f.overall.get("positives")
    reported = [dict(g) for g in f.report.get("groups") or []]
    withheld = _withheld_groups(f, reported, ("people", "positives"))
    groups = [
        {
            "attribute": g.get("attribute"),
            "group": g.get("group"),
            "rows": _unpublished(f) if "n" in hidden else g.get("n"),
            # The label rate gives back the count in need: withheld with any of the counts.
            "label_rate": _unpublished(f)
            if hidden
            else ((g["positives"] / g["n"]) if g.get("n") else None),
            "judged_on_its_own": bool(g.get("sufficient")),
        }
        for g, hidden in zip(reported, withheld, strict=True)
    ]
    return {
        "description": (
            f"The data set release {f.version} was trained on and audited with: monthly "
            f"{f.model.unit} snapshots; the audit read the later months, never seen in training. "
            "Counts, label rates and missingness by group are of the audited months."
        ),
        "data_fingerprint": f.experiment.get("data_fingerprint"),
        "unit": f.model.unit,
        "period_range": _period_range(f),
        "rows": f.experiment.get("data_rows"),
        "training": f.experiment.get("training"),
        "audited_periods": f.experiment.get("validation_periods"),
        "audited_rows": n,
        "label": {
            "column": f.model.label_column,
            "description": f.model.label_description,
            "horizon_months": f.experiment.get("horizon_months"),
            "rate": (positives / n) if _number(n) and n and _number(positives) else None,
        },
        "groups": groups,
        "small_groups": (
            f"counts of {f.unit_words} in a group from 1 to {f.min_group - 1:,} (the policy's "
            "min_group_size), the counts that would give them back, and the rates from them "
            "are not published"
        ),
        "missingness": _missingness(f),
        "columns": _columns(f),
    }


def _provenance(f: _Facts) -> dict[str, Any]:
    s = f.sources
    release = s.release
    files = release.get("files") or {}
    return {
        "statement": (
            f"Generated from {f.name} version {f.version} as attested: its artifact, its model "
            "folder's manifest, its audit report and its policy were checked against the signed "
            "release statement below before any fact was read."
        ),
        "artifact_sha256": release.get("artifact_sha256"),
        "artifact_sha256_verified": s.loaded.artifact_sha256 == release.get("artifact_sha256"),
        "files_manifest_sha256": hashlib.sha256(canonical(dict(files))).hexdigest(),
        "files": len(files),
        "audit_id": release.get("audit_id"),
        "report_sha256": s.report_sha256,
        "policy_name": f.policy.get("name"),
        "policy_sha256": release.get("policy_sha256"),
        "decision": f.decision,
        "attestation": {
            "log": f"{f.name}.jsonl",
            "sequence": release.get("sequence"),
            "key_id": s.key_id,
            "signed_at": release.get("at"),
            "released_by": release.get("by"),
        },
        "approvals": [
            {
                "sequence": a.get("sequence"),
                "by": a.get("by"),
                "role": a.get("role"),
                "at": a.get("at"),
            }
            for a in s.approvals
        ],
        "generated_at": f.generated_at,
    }


def _register_entry(f: _Facts, tier_1: dict[str, Any], tier_2: dict[str, Any]) -> dict[str, Any]:
    owner = tier_2["owner_and_responsibility"]
    data = tier_2["tool_specification"]
    return {
        "schema": "outreach.register-entry/1",
        "follows": (
            "the sections of the Amsterdam and Helsinki algorithm registers (purpose, datasets, "
            "data processing, non-discrimination, human oversight, risks), with the UK ATRS "
            "JSON's key names (name, description, organisation, contact_email, phase)"
        ),
        "id": f"{f.name}:{f.version}",
        "name": tier_1["name"]["value"],
        "description": tier_1["description"]["value"],
        "purpose": f.card.get("intended_use"),
        "status": f.phase,
        "phase": "production" if f.sources.in_production else "beta",
        "dates": {
            "released": f.sources.release.get("at"),
            "approved": [a.get("at") for a in f.sources.approvals],
            "audited": f.report.get("created_at"),
            "record_generated": f.generated_at,
        },
        "owner": {
            "organisation": owner["organisation"]["value"],
            "team": owner["team"]["value"],
            "senior_responsible_owner": owner["senior_responsible_owner"]["value"],
        },
        "contact_email": tier_1["contact_email"]["value"],
        "website": tier_1["website"]["value"],
        "datasets": [
            {
                "name": f"{f.name} data set {str(f.experiment.get('data_fingerprint'))[:16]}",
                "period_range": _period_range(f),
                "sources": sorted({str(c["source"]) for c in _columns(f) if c["source"]}),
            }
        ],
        "data_processing": data["models"]["value"],
        "non_discrimination": (
            f"Fairness audit {f.sources.loaded.audit_id} under the policy "
            f"“{f.policy.get('name')}”: {f.decision}. Sensitive attributes are used only to audit."
        ),
        "human_oversight": tier_1["human_oversight"]["value"],
        "risks": [r["risk"] for r in tier_2["risks_and_impact_assessments"]["risks"]["value"]],
        "impact_assessments": tier_2["risks_and_impact_assessments"]["impact_assessments"]["value"],
        "links": {
            "public_summary": "/transparency",
            "public_summary_json": "/transparency.json",
            "record": f"/oversight/transparency/{f.name}/{f.version}",
            "audit_report": f"/oversight/audits/{f.sources.loaded.audit_id}",
        },
        "hashes": {
            "artifact_sha256": f.sources.release.get("artifact_sha256"),
            "report_sha256": f.sources.report_sha256,
            "policy_sha256": f.sources.release.get("policy_sha256"),
        },
    }


def build_record(
    sources: Sources, *, settings: Mapping[str, str], generated_at: str | None = None
) -> dict[str, Any]:
    """The record from verified ``sources`` (pure: no I/O)."""
    when = generated_at or datetime.now(UTC).isoformat(timespec="seconds")
    facts = _Facts(sources, settings, when)
    datasheet = _datasheet(facts)
    tier_1 = _tier_1(facts)
    tier_2 = {
        "owner_and_responsibility": _owner(facts),
        "description_and_rationale": _rationale(facts),
        "decision_making_process": _decision_process(facts),
        "tool_specification": _tool(facts),
        "data": _data_specification(facts, datasheet),
        "risks_and_impact_assessments": {
            "impact_assessments": _assessments(facts),
            "risks": _risks(facts),
        },
    }
    if sources.report.get("review_groups"):
        facts.findings.append(
            "The audit could not judge every group; the approval took them on: "
            + "; ".join(sources.report["review_groups"])
            + "."
        )
    facts.findings.extend((sources.report.get("missingness") or {}).get("findings") or [])
    # Every document names the bytes and the signed statement it was generated from.
    origin = {
        "artifact_sha256": sources.release.get("artifact_sha256"),
        "attestation": f"{facts.name}.jsonl #{sources.release.get('sequence')}",
        "key_id": sources.key_id,
    }
    model_card = {
        "model_details": {
            "name": facts.name,
            "version": facts.version,
            "candidate": facts.model.candidate,
            "audit_id": sources.loaded.audit_id,
            "decision": facts.decision,
        },
        **facts.card,
        "performance": tier_2["tool_specification"]["models"]["value"]["performance"],
    }
    return plain_numbers(
        {
            "schema": SCHEMA,
            "name": facts.name,
            "version": facts.version,
            "generated_at": when,
            "atrs": {
                "standard": "UK ATRS v3.0",
                "generated_from": origin,
                "tier_1": tier_1,
                "tier_2": tier_2,
            },
            "register_entry": {**_register_entry(facts, tier_1, tier_2), "generated_from": origin},
            "model_card": {**model_card, "generated_from": origin},
            "datasheet": {**datasheet, "generated_from": origin},
            "provenance": _provenance(facts),
            "findings": facts.findings,
        }
    )
