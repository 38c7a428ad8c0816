"""Releases: train, audit every candidate, gate, register, promote; and the only ways to serve.

``production`` is an MLflow alias that only a passing audit (and, where the policy asks for it, an
oversight approval) moves. :func:`load_production` is the one way to obtain a model to serve: it
refuses a version whose audit tags are missing or failed, whose approval is outstanding, or whose
artifact bytes differ from the sha256 its audit recorded, whoever moved the alias.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException

from audits.audit import AuditOutcome, run_audit
from audits.gate import Breach
from audits.metrics import GroupAudit
from audits.mitigation import mitigated_candidates
from audits.policy import Policy, load_policy
from audits.proxies import ProxyResult, check_proxies
from audits.report import (
    CandidateSummary,
    ProductionComparison,
    Subject,
    WrittenReport,
    build_report,
    new_audit_id,
    write_report,
)
from model.candidates import expand
from model.data import Dataset, ordinal_to_period
from model.errors import BadInputError, GateError, NotFoundError
from model.metrics import top_k_mask
from model.registry import Registry, log_training, sha256_file
from model.scorer import ARTIFACT_NAME, ScoringModel
from model.spec import ExperimentSpec
from model.train import CandidateResult, TrainingResult, train

Progress = Callable[[str], None]
PRODUCTION, CANDIDATE = "production", "candidate"


def _quiet(_: str) -> None:
    return None


# ----------------------------------------------------------------------------- model card


def model_card(spec: ExperimentSpec, result: TrainingResult) -> dict[str, Any]:
    """The plain-language model card printed in every release report."""
    latest = result.splits[-1]
    return {
        "intended_use": (
            f"{spec.description} Scores rank {spec.unit}s for a voluntary offer of help within "
            f"the outreach capacity ({spec.capacity.describe()}). A person may always decline."
        ),
        "out_of_scope_uses": [
            "Any enforcement, investigation, sanction, eligibility or benefit decision.",
            "Any use without a human outreach worker deciding whether and how to make contact.",
            "Any population, period or purpose other than the one this audit covers.",
        ],
        "training_data": (
            f"{latest.describe()}; data fingerprint {result.data_fingerprint[:16]}. "
            f"Label: {spec.label.description} (horizon {spec.label.horizon_months} months)."
        ),
        "evaluation_data": (
            "Held-out later months, never seen in training: "
            + ", ".join(ordinal_to_period(p) for p in latest.validation_periods)
        ),
        "features": [f"{f.name}: {f.description or f.reason}" for f in spec.features],
        "sensitive_attributes": (
            "Used only to audit: "
            + ", ".join(spec.sensitive_attributes)
            + ". Never model inputs, never shown to coordinators."
        ),
        "limitations": [
            "Recorded outcomes can under-count people who avoid services; recall for such groups "
            "is measured against what was recorded.",
            "Small groups are judged on partially pooled estimates, and every group's audit states "
            "the smallest gap it could reveal; absence of evidence is not evidence of fairness, "
            "so a group the audit cannot judge sends the release to a person.",
            "Scores are calibrated on recent data and drift as services and populations change; "
            "re-audit on new data before relying on them.",
        ],
    }


# ----------------------------------------------------------------------------- loading


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


def version_tags(registry: Registry, name: str, version: str) -> dict[str, str]:
    try:
        return dict(registry.client.get_model_version(name, version).tags)
    except MlflowException as err:
        raise NotFoundError(f"no version {version} of registered model '{name}'") from err


def refusals(tags: dict[str, str]) -> list[str]:
    """Why a version may not be served, from its recorded audit and oversight decisions.

    Servable: an audit that PASSed (approved, where the policy asks), or a REVIEW that an
    oversight user approved; never a rejected version.
    """
    problems = []
    audit_id = tags.get("audit_id")
    decision = tags.get("audit_decision", "")
    if not audit_id:
        problems.append("it has no fairness audit")
    elif decision == "REVIEW":
        if not tags.get("approved_by"):
            groups = tags.get("review_groups") or "some groups"
            problems.append(
                f"its fairness audit {audit_id} asks for a review ({groups}) that no oversight "
                "user has approved"
            )
    elif decision != "PASS":
        problems.append(f"its fairness audit {audit_id} decided {decision or 'nothing'}")
    elif tags.get("approval_required") == "true" and not tags.get("approved_by"):
        problems.append("its release is still awaiting an oversight approval")
    if tags.get("rejected_by"):
        problems.append(f"the oversight board rejected it ({tags['rejected_by']})")
    return problems


def servable(tags: dict[str, str]) -> bool:
    """Whether a version's audit and oversight decisions allow serving it."""
    return not refusals(tags)


def load_version(
    registry: Registry, name: str, version: str, *, require_pass: bool = True
) -> LoadedModel:
    """Load one registered version after checking its audit tags and artifact bytes.

    Raises
    ------
    GateError
        If the audit is missing or failed (when ``require_pass``), an approval is outstanding,
        or the artifact's sha256 differs from the one its audit recorded.
    NotFoundError
        If the version does not exist.
    """
    tags = version_tags(registry, name, version)
    audit_id = tags.get("audit_id")
    decision = tags.get("audit_decision", "")
    expected = tags.get("artifact_sha256")
    problems = refusals(tags) if require_pass else []
    if not expected:
        problems.append("no artifact sha256 was recorded for it")
    if problems or expected is None:
        raise GateError(f"refusing to serve {name} version {version}: " + "; ".join(problems))
    with tempfile.TemporaryDirectory(prefix="outreach-load-") as folder:
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}", dst_path=folder
            )
        except (MlflowException, OSError) as err:
            raise GateError(f"refusing to serve {name} version {version}: {err}") from err
        found = list(Path(local).rglob(ARTIFACT_NAME))
        if len(found) != 1:
            raise GateError(f"refusing to serve {name} version {version}: no scoring artifact")
        actual = sha256_file(found[0])
        if actual != expected:
            raise GateError(
                f"refusing to serve {name} version {version}: its artifact's sha256 {actual[:12]}"
                f" differs from the audited {expected[:12]} (the bytes were changed)"
            )
        model = ScoringModel.load(found[0])
    return LoadedModel(name, version, audit_id or "", decision, model, tags, actual)


def load_production(registry: Registry, name: str) -> LoadedModel:
    """The verified ``production`` version of ``name``; the only way to obtain a model to serve.

    Raises
    ------
    NotFoundError
        If no version holds the ``production`` alias.
    GateError
        If that version's audit is missing, failed, unapproved, or bound to other bytes.
    """
    try:
        version = registry.client.get_model_version_by_alias(name, PRODUCTION)
    except MlflowException as err:
        raise NotFoundError(f"registered model '{name}' has no production version") from err
    return load_version(registry, name, str(version.version))


# ----------------------------------------------------------------------------- release


@dataclass
class CandidateRelease:
    """One candidate's audit within a release."""

    candidate: CandidateResult
    outcome: AuditOutcome
    selected: np.ndarray
    audit_id: str
    report: dict[str, Any] = field(default_factory=dict)
    written: WrittenReport | None = None


@dataclass
class ReleaseResult:
    """What ``outreach release`` did."""

    spec: ExperimentSpec
    policy: Policy
    chosen: CandidateRelease
    candidates: list[CandidateRelease]
    promoted: bool
    awaiting_approval: bool
    training: TrainingResult

    @property
    def decision(self) -> str:
        return self.chosen.outcome.decision.verdict

    def summary(self) -> dict[str, Any]:
        """The ``release --json`` document."""
        chosen = self.chosen
        return {
            "decision": self.decision,
            "registered_model": self.spec.name,
            "version": chosen.candidate.version,
            "candidate": chosen.candidate.config.label,
            "promoted": self.promoted,
            "awaiting_approval": self.awaiting_approval,
            "audit_id": chosen.audit_id,
            "report": str(chosen.written.html_path) if chosen.written else None,
            "report_json": str(chosen.written.json_path) if chosen.written else None,
            "policy": {"name": self.policy.name, "sha256": self.policy.sha256},
            "breaches": [_finding(b) for b in chosen.outcome.decision.breaches],
            "review": [
                _finding(r, "kind", "message", "settle") for r in chosen.outcome.decision.review
            ],
            "candidates": [
                {
                    "name": c.candidate.config.name,
                    "version": c.candidate.version,
                    "decision": c.outcome.decision.verdict,
                    "audit_id": c.audit_id,
                    "precision_at_k": c.candidate.mean["precision_at_k"],
                    "recall_at_k": c.candidate.mean["recall_at_k"],
                    "worst_recall_ratio": c.outcome.worst_ratio(),
                    "breaches": len(c.outcome.decision.breaches),
                    "review": len(c.outcome.decision.review),
                }
                for c in self.candidates
            ],
        }


def _finding(item: Breach, *extra: str) -> dict[str, Any]:
    """A breach or open question as the ``release --json`` document lists it."""
    full = item.as_dict()
    keys = ("metric", "group", "attribute", "value", "ci", "limit", *extra)
    return {key: full[key] for key in keys}


def policy_for(spec: ExperimentSpec, override: str | None = None) -> Policy:
    """The spec's fairness policy (or ``override``); a missing policy is an error."""
    if override is not None:
        return load_policy(override)
    if spec.policy is None:
        raise BadInputError(
            f"experiment '{spec.name}' names no fairness policy; a release must answer to one "
            "(set 'policy' in the spec)"
        )
    return load_policy(spec.resolve_path(spec.policy))


def _check_attributes(policy: Policy, spec: ExperimentSpec) -> None:
    missing = [a for a in policy.sensitive_attributes if a not in spec.sensitive_attributes]
    if missing:
        raise BadInputError(
            f"the policy '{policy.name}' audits {', '.join(missing)}, which the experiment "
            f"'{spec.name}' does not list under sensitive_attributes"
        )


def _sensitive(policy: Policy, data: Dataset) -> dict[str, np.ndarray]:
    return {a: data.sensitive(a) for a in policy.sensitive_attributes}


def _audit_data(data: Dataset) -> dict[str, Any]:
    """What every audit of a release reads besides the decision: clusters, months, truth."""
    return {
        "labels": data.labels,
        "clusters": data.ids,
        "periods": len(np.unique(data.periods)),
        "truth": data.truth,
    }


def _production_view(
    registry: Registry, spec: ExperimentSpec, policy: Policy, data: Dataset, progress: Progress
) -> tuple[LoadedModel, np.ndarray, AuditOutcome] | None:
    try:
        production = load_production(registry, spec.name)
    except NotFoundError:
        return None
    except GateError as err:
        progress(f"the current production alias is not servable ({err}); comparing with nothing")
        return None
    if production.model.feature_names != spec.feature_names:
        progress("the production model reads other features; comparing with nothing")
        return None
    scores = production.model.score_frame(data.frame).scores
    selected = top_k_mask(scores, data.periods, data.ids, spec.capacity.k_for)
    outcome = run_audit(
        policy,
        **_audit_data(data),
        selected=selected,
        scores=scores,
        sensitive=_sensitive(policy, data),
        seed=spec.seed,
    )
    return production, selected, outcome


def _comparison(
    production: LoadedModel | None,
    production_selected: np.ndarray | None,
    selected: np.ndarray,
    data: Dataset,
    policy: Policy,
) -> ProductionComparison | None:
    if production is None or production_selected is None:
        return None
    both = int((selected & production_selected).sum())
    entering, leaving = selected & ~production_selected, production_selected & ~selected
    by_enter: dict[str, int] = {}
    by_leave: dict[str, int] = {}
    for attribute in policy.sensitive_attributes:
        values = np.asarray(data.sensitive(attribute), dtype=str)
        for group in np.unique(values):
            key = f"{attribute}: {group}"
            by_enter[key] = int((entering & (values == group)).sum())
            by_leave[key] = int((leaving & (values == group)).sum())
    return ProductionComparison(
        version=production.version,
        overlap_share=both / max(int(selected.sum()), 1),
        entering={"total": int(entering.sum()), "by_group": by_enter},
        leaving={"total": int(leaving.sum()), "by_group": by_leave},
    )


def _experiment_info(spec: ExperimentSpec, result: TrainingResult) -> dict[str, Any]:
    latest = result.splits[-1]
    return {
        "name": spec.name,
        "description": spec.description,
        "unit": spec.unit,
        "label": spec.label.column,
        "label_description": spec.label.description,
        "horizon_months": spec.label.horizon_months,
        "capacity": spec.capacity.describe(),
        "training": latest.describe(),
        "validation_periods": [ordinal_to_period(p) for p in latest.validation_periods],
        "data_fingerprint": result.data_fingerprint,
        "spec_sha256": spec.sha256,
    }


def _rank(item: CandidateRelease) -> tuple[int, int, float, float]:
    """PASS before REVIEW before FAIL; then fewer apparent breaches; then accuracy at capacity."""
    decision = item.outcome.decision
    standing = {"PASS": 2, "REVIEW": 1}.get(decision.verdict, 0)
    apparent = sum(1 for r in decision.review if r.kind in ("apparent_breach", "small_group"))
    mean = item.candidate.mean
    return (standing, -apparent, mean["precision_at_k"] or 0.0, mean["recall_at_k"] or 0.0)


def release(
    spec: ExperimentSpec,
    dataset: Dataset,
    registry: Registry,
    *,
    policy: Policy,
    progress: Progress = _quiet,
) -> ReleaseResult:
    """Train, audit every candidate, gate, register, and promote the best passing one.

    The ``candidate`` alias always moves to the chosen version; ``production`` moves only when it
    passed and the policy needs no approval (otherwise the version awaits one).
    """
    _check_attributes(policy, spec)
    configs, fitters = mitigated_candidates(spec)
    result = train(
        spec, dataset, progress=progress, configs=expand(spec) + configs, fitters=fitters
    )
    data = result.validation
    sensitive = _sensitive(policy, data)
    progress("checking whether the features stand in for sensitive attributes")
    proxies: list[ProxyResult] = check_proxies(data.features, sensitive, spec, seed=spec.seed)
    view = _production_view(registry, spec, policy, data, progress)
    production, production_selected, production_outcome = view if view else (None, None, None)
    production_audit: GroupAudit | None = production_outcome.audit if production_outcome else None
    production_truth = production_outcome.truth if production_outcome else None
    audited: list[CandidateRelease] = []
    for candidate in result.candidates:
        scores = candidate.final.validation_scores
        selected = top_k_mask(scores, data.periods, data.ids, spec.capacity.k_for)
        progress(f"auditing {candidate.config.label}")
        outcome = run_audit(
            policy,
            **_audit_data(data),
            selected=selected,
            scores=scores,
            sensitive=sensitive,
            production=production_audit,
            production_truth=production_truth,
            proxies=proxies,
            fairlearn=True,
            seed=spec.seed,
        )
        audited.append(CandidateRelease(candidate, outcome, selected, new_audit_id()))
    chosen = max(audited, key=_rank)
    run_id = log_training(registry, result, progress=progress)
    summaries = [
        CandidateSummary(
            name=c.candidate.config.name,
            version=c.candidate.version,
            decision=c.outcome.decision.verdict,
            precision_at_k=c.candidate.mean["precision_at_k"] or 0.0,
            recall_at_k=c.candidate.mean["recall_at_k"] or 0.0,
            worst_recall_ratio=c.outcome.worst_ratio(),
            chosen=c is chosen,
        )
        for c in audited
    ]
    card = model_card(spec, result)
    experiment = _experiment_info(spec, result)
    for item in audited:
        tags = version_tags(registry, spec.name, str(item.candidate.version))
        item.report = build_report(
            audit_id=item.audit_id,
            subject=Subject(
                kind="registered_model",
                name=spec.name,
                version=item.candidate.version,
                candidate=item.candidate.config.label,
                artifact_sha256=tags.get("artifact_sha256"),
                data_fingerprint=result.data_fingerprint,
            ),
            policy=policy,
            audit=item.outcome.audit,
            decision=item.outcome.decision,
            outcome_detail=item.outcome,
            operating_point={
                "kind": "top_k",
                "description": f"top {spec.capacity.describe()} by score, as trained and served",
                "capacity": spec.capacity.model_dump(exclude_none=True),
                "periods": experiment["validation_periods"],
            },
            outcome=spec.label.description,
            experiment={**experiment, "training_run_id": run_id},
            proxies=proxies,
            candidates=summaries,
            production=_comparison(production, production_selected, item.selected, data, policy),
            model_card=card,
        )
        item.written = write_report(item.report, registry.home.audits / item.audit_id)
        _record_audit(registry, spec, policy, item, tags)
        progress(
            f"{item.candidate.config.label}: {item.outcome.decision.verdict} "
            f"({len(item.outcome.decision.breaches)} breach(es), "
            f"{len(item.outcome.decision.review)} open question(s)), audit {item.audit_id}"
        )
    client = registry.client
    version = str(chosen.candidate.version)
    client.set_registered_model_alias(spec.name, CANDIDATE, version)
    promoted = awaiting = False
    verdict = chosen.outcome.decision.verdict
    if verdict == "REVIEW" or (verdict == "PASS" and policy.approval.required):
        # Never promoted automatically: an oversight user decides, naming what they took on.
        client.set_model_version_tag(spec.name, version, "awaiting_approval", "true")
        awaiting = True
    elif verdict == "PASS":
        _promote(registry, spec.name, version, reason="passed its audit")
        promoted = True
    return ReleaseResult(spec, policy, chosen, audited, promoted, awaiting, result)


def _record_audit(
    registry: Registry,
    spec: ExperimentSpec,
    policy: Policy,
    item: CandidateRelease,
    tags: dict[str, str],
) -> None:
    assert item.written is not None
    version = str(item.candidate.version)
    values = {
        "audit_id": item.audit_id,
        "audit_decision": item.outcome.decision.verdict,
        "audit_breaches": str(len(item.outcome.decision.breaches)),
        "report_sha256": item.written.sha256,
        "policy_name": policy.name,
        "policy_sha256": policy.sha256,
        "approval_required": "true" if policy.approval.required else "false",
        "review_groups": "; ".join(item.outcome.decision.review_groups)[:4000],
    }
    for key, value in values.items():
        registry.client.set_model_version_tag(spec.name, version, key, value)
    run_id = tags.get("run_id")
    if run_id:
        registry.client.log_artifact(run_id, str(item.written.json_path), "audit")
        registry.client.log_artifact(run_id, str(item.written.html_path), "audit")
        registry.client.set_tag(run_id, "audit_decision", item.outcome.decision.verdict)
        registry.client.set_tag(run_id, "audit_id", item.audit_id)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _promote(registry: Registry, name: str, version: str, *, reason: str) -> None:
    load_version(registry, name, version)  # the same checks the service makes
    client = registry.client
    try:
        previous = str(client.get_model_version_by_alias(name, PRODUCTION).version)
    except MlflowException:
        previous = ""
    client.set_registered_model_alias(name, PRODUCTION, version)
    client.set_model_version_tag(name, version, "promoted_at", _now())
    client.set_model_version_tag(name, version, "promoted_because", reason)
    if "awaiting_approval" in version_tags(registry, name, version):
        client.delete_model_version_tag(name, version, "awaiting_approval")
    if previous and previous != version:
        client.set_model_version_tag(name, version, "previous_production", previous)


# ----------------------------------------------------------------------------- oversight


def approve(registry: Registry, name: str, version: str, *, by: str, note: str) -> bool:
    """Record an oversight approval; promotes the version if it was awaiting one.

    A REVIEW version's approval is recorded with the groups its audit could not judge (tag
    ``approved_review_groups``). Returns whether the version became production.

    Raises
    ------
    GateError
        If the version failed its audit (or has none) or was rejected.
    """
    tags = version_tags(registry, name, version)
    if tags.get("audit_decision") not in ("PASS", "REVIEW"):
        raise GateError(
            f"refusing to approve {name} version {version}: its audit "
            f"{tags.get('audit_id', '(none)')} decided {tags.get('audit_decision', 'nothing')}"
        )
    if tags.get("rejected_by"):
        raise GateError(f"{name} version {version} was rejected by {tags['rejected_by']}")
    client = registry.client
    client.set_model_version_tag(name, version, "approved_by", by)
    client.set_model_version_tag(name, version, "approved_at", _now())
    client.set_model_version_tag(name, version, "approval_note", note)
    if tags.get("audit_decision") == "REVIEW":
        # The approval names the groups the audit could not judge: the approver took them on.
        client.set_model_version_tag(
            name, version, "approved_review_groups", tags.get("review_groups", "")
        )
    if tags.get("awaiting_approval") == "true":
        _promote(registry, name, version, reason=f"approved by {by}")
        return True
    return False


def reject(registry: Registry, name: str, version: str, *, by: str, note: str) -> None:
    """Record an oversight rejection; the version can never be served."""
    tags = version_tags(registry, name, version)
    client = registry.client
    try:
        production = str(client.get_model_version_by_alias(name, PRODUCTION).version)
    except MlflowException:
        production = ""
    if production == version:
        raise GateError(
            f"{name} version {version} is in production; roll back first, then reject it"
        )
    client.set_model_version_tag(name, version, "rejected_by", by)
    client.set_model_version_tag(name, version, "rejected_at", _now())
    client.set_model_version_tag(name, version, "rejection_note", note)
    if tags.get("awaiting_approval"):
        client.delete_model_version_tag(name, version, "awaiting_approval")


def rollback(registry: Registry, name: str) -> str:
    """Move ``production`` back to the latest earlier version that may be served.

    Raises
    ------
    NotFoundError
        If there is no production version.
    GateError
        If no earlier version passed its audit (and approval).
    """
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
        if servable(version_tags(registry, name, str(number))):
            _promote(registry, name, str(number), reason=f"rolled back from version {current}")
            client.set_model_version_tag(name, str(current), "rolled_back_at", _now())
            return str(number)
    raise GateError(f"no earlier version of '{name}' passed its audit; production is unchanged")


def list_versions(registry: Registry, name: str | None = None) -> list[dict[str, Any]]:
    """Registered versions with their aliases, audit decisions and metrics at capacity."""
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
                    "audit_id": tags.get("audit_id"),
                    "decision": tags.get("audit_decision"),
                    "awaiting_approval": tags.get("awaiting_approval") == "true",
                    "approved_by": tags.get("approved_by"),
                    "review_groups": tags.get("review_groups") or "",
                    "approved_review_groups": tags.get("approved_review_groups") or "",
                    "rejected_by": tags.get("rejected_by"),
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


def read_report(registry: Registry, audit_id: str) -> dict[str, Any]:
    """A stored audit report by id."""
    if not isinstance(audit_id, str) or not _AUDIT_ID.fullmatch(audit_id):
        raise NotFoundError(f"no audit '{str(audit_id)[:80]}'")
    path = registry.home.audits / audit_id / "audit.json"
    if not path.is_file():
        raise NotFoundError(f"no audit '{audit_id}'")
    return dict(json.loads(path.read_text()))
