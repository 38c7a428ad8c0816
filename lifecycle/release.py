"""Releases: train, audit every candidate, gate, register, promote. The board's decisions on
released versions are in :mod:`lifecycle.decisions` (named here too, as they always were).

``production`` is an MLflow alias that only a passing audit (and, where the policy asks for it, an
oversight approval) or an approved REVIEW moves. Every decision (release, approval, rejection,
withdrawal) is signed into the model's attestation log (:mod:`lifecycle.statements`); serving
trusts those statements, never the tags (:mod:`lifecycle.verified_loading`). Versions and reports
are listed by :mod:`lifecycle.catalogue`.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audits.audit import AuditOutcome, run_audit
from audits.drift import reference_profile
from audits.gate import Breach, disclosures_to_approve
from audits.group_metrics import GroupAudit
from audits.mitigation import mitigated_candidates
from audits.policy import Policy, load_policy
from audits.proxies import MissingnessResult, ProxyResult, check_missingness, check_proxies
from audits.recourse import recourse_audit
from audits.report import (
    CandidateSummary,
    ProductionComparison,
    Subject,
    WrittenReport,
    build_report,
    characteristics,
    new_audit_id,
    write_report,
)
from kernel.errors import BadInputError, GateError, NotFoundError
from lifecycle import catalogue
from lifecycle.catalogue import (
    ARTIFACT_SHA256,
    CANDIDATE,
    list_versions,
    read_report,
    version_tags,
)
from lifecycle.decisions import approve, production_version, promote, reject, rollback, withdraw
from lifecycle.freeze import ensure_not_frozen
from lifecycle.statements import Trust
from lifecycle.verified_loading import LoadedModel, load_production, load_version
from model.candidates import expand
from model.capacity_metrics import top_k_mask
from model.data import Dataset, ordinal_to_period
from model.registry import Registry, log_training
from model.spec import ExperimentSpec
from model.train import CandidateResult, TrainingResult, train
from model.words import feature_words, unit_words

Progress = Callable[[str], None]

__all__ = [
    "LoadedModel",
    "ReleaseResult",
    "approve",
    "list_versions",
    "load_production",
    "load_version",
    "production_version",
    "read_report",
    "reject",
    "release",
    "rollback",
    "withdraw",
]


def _quiet(_: str) -> None:
    return None


# ----------------------------------------------------------------------------- model card


def model_card(spec: ExperimentSpec, result: TrainingResult) -> dict[str, Any]:
    """The plain-language model card printed in every release report."""
    latest = result.splits[-1]
    counted = unit_words(spec.unit)
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
        # Each feature in plain words (never a reason template with its {value} unfilled).
        "features": [f"{feature_words(f)} ({f.name})" for f in spec.features],
        "sensitive_attributes": (
            "Used only to audit: "
            + ", ".join(spec.sensitive_attributes)
            + ". Never model inputs, never shown to coordinators."
        ),
        "limitations": [
            f"Recorded outcomes can under-count {counted.many} {counted.who} avoid services; "
            "recall for such groups is measured against what was recorded.",
            "Small groups are judged on partially pooled estimates, and every group's audit states "
            "the smallest gap it could reveal; absence of evidence is not evidence of fairness, "
            "so a group the audit cannot judge sends the release to a person.",
            "Scores are calibrated on recent data and drift as services and populations change; "
            "re-audit on new data before relying on them.",
        ],
    }


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
            "breaches": [_finding(b, "kind", "message") for b in chosen.outcome.decision.breaches],
            "review": [
                _finding(r, "kind", "message", "settle") for r in chosen.outcome.decision.review
            ],
            "warnings": [_finding(w, "kind", "message") for w in chosen.outcome.decision.warnings],
            "not_assessable": [n.as_dict() for n in chosen.outcome.decision.not_assessable],
            "disclosed_beyond": [
                n.as_dict()
                for n in disclosures_to_approve(
                    self.policy, chosen.outcome.decision, chosen.outcome.audit.clusters
                )
            ],
            "operating_characteristics": (chosen.report or {}).get("operating_characteristics"),
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


def _current_user() -> str:
    """Who runs the release (recorded, and refused as its approver)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no name for this uid (some containers)
        return f"uid {os.getuid()}"


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
    registry: Registry,
    spec: ExperimentSpec,
    policy: Policy,
    data: Dataset,
    progress: Progress,
    trust: Trust,
) -> tuple[LoadedModel, np.ndarray, AuditOutcome] | None:
    try:
        production = load_production(registry, spec.name, trust=trust)
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
        unit=spec.unit,
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


def _released_data(spec: ExperimentSpec, dataset: Dataset) -> dict[str, Any]:
    """The released data set's size and months, and where its non-feature columns come from
    (``[data.sources]``): the signed report carries them for the transparency record."""
    periods = np.unique(dataset.periods)
    return {
        "data_rows": len(dataset.frame),
        "data_periods": [ordinal_to_period(int(periods[0])), ordinal_to_period(int(periods[-1]))],
        "column_sources": dict(spec.data.sources),
    }


def _approval_needed(policy: Policy, item: CandidateRelease) -> bool:
    """Whether a PASS of this candidate waits for an oversight approval."""
    disclosed = disclosures_to_approve(policy, item.outcome.decision, item.outcome.audit.clusters)
    return policy.approval.required or bool(disclosed)


def _rank(item: CandidateRelease) -> tuple[int, int, int, float, float]:
    """PASS before REVIEW before FAIL; then fewer apparent breaches; then fewer groups too small
    to judge whose own estimate is beyond a limit (among candidates the gate cannot tell apart,
    the one with no sign of under-serving a small group); then accuracy at capacity."""
    decision = item.outcome.decision
    standing = {"PASS": 2, "REVIEW": 1}.get(decision.verdict, 0)
    apparent = sum(1 for r in decision.review if r.kind in ("apparent_breach", "not_assessable"))
    small_beyond = sum(1 for n in decision.not_assessable if n.beyond)
    mean = item.candidate.mean
    return (
        standing,
        -apparent,
        -small_beyond,
        mean["precision_at_k"] or 0.0,
        mean["recall_at_k"] or 0.0,
    )


def release(
    spec: ExperimentSpec,
    dataset: Dataset,
    registry: Registry,
    *,
    policy: Policy,
    progress: Progress = _quiet,
    released_by: str | None = None,
    trust: Trust,
    after_release: dict[str, Any] | None = None,
    workers: int = 1,
) -> ReleaseResult:
    """Train, audit every candidate, gate, register, and promote the best passing one.

    The ``candidate`` alias always moves to the chosen version; ``production`` moves only when it
    passed and the policy needs no approval (otherwise the version awaits one). Every candidate's
    decision is signed (:mod:`lifecycle.statements`), with ``released_by`` (default: the user
    running the release), who may not approve it. ``after_release``: what the months since the
    last release showed (realised results and the evaluation arm, from the service's monitoring),
    kept in every candidate's report for the board. ``workers``: processes training the
    candidates at once (:func:`model.train.train`).
    """
    released_by = released_by or _current_user()
    _check_attributes(policy, spec)
    ensure_not_frozen(trust, spec.name, "release")  # before training: nothing is registered
    configs, fitters = mitigated_candidates(spec)
    result = train(
        spec,
        dataset,
        progress=progress,
        configs=expand(spec) + configs,
        fitters=fitters,
        workers=workers,
    )
    data = result.validation
    sensitive = _sensitive(policy, data)
    progress("checking whether the features stand in for sensitive attributes")
    proxies: list[ProxyResult] = check_proxies(
        data.features, sensitive, spec, seed=spec.seed, workers=workers
    )
    missingness: list[MissingnessResult] = check_missingness(
        data.features, sensitive, spec, clusters=data.ids
    )
    view = _production_view(registry, spec, policy, data, progress, trust)
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
            missingness=missingness,
            fairlearn=True,
            seed=spec.seed,
            unit=spec.unit,
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
    progress(
        "simulating the gate's error rates on this audit's groups, "
        f"{unit_words(spec.unit).many} and months"
    )
    table = characteristics(policy, chosen.outcome, seed=spec.seed, progress=progress)
    card = model_card(spec, result)
    experiment = {**_experiment_info(spec, result), **_released_data(spec, dataset)}
    kinds = {f.name: f.kind for f in spec.features}
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
            missingness=missingness,
            candidates=summaries,
            production=_comparison(production, production_selected, item.selected, data, policy),
            model_card=card,
            # Each version's own scores: whichever version is served later is compared with them.
            reference_profile=reference_profile(
                data.features, kinds, item.candidate.final.validation_scores, sensitive
            ),
            after_release=after_release,
            # How far people just below the cut-off are from it, per group (what would change
            # their listing), on the same audit population and the version's own cut-off.
            recourse=recourse_audit(
                item.candidate.scoring_model,
                data.features,
                sensitive,
                min_group_size=policy.min_group_size,
            ),
            characteristics=table,
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
    verdict = chosen.outcome.decision.verdict
    # Never promoted automatically: a REVIEW (or a PASS the policy wants approved) waits for an
    # oversight user, who names what they took on.
    awaiting = verdict == "REVIEW" or (verdict == "PASS" and _approval_needed(policy, chosen))
    promoted = verdict == "PASS" and not awaiting
    for item in audited:
        sha = version_tags(registry, spec.name, str(item.candidate.version))[ARTIFACT_SHA256]
        _attest_release(
            trust,
            spec,
            policy,
            item,
            artifact_sha256=sha,
            promoted=promoted and item is chosen,
            offered=awaiting and item is chosen,
            released_by=released_by,
        )
    if awaiting:
        client.set_model_version_tag(spec.name, version, catalogue.AWAITING_APPROVAL, "true")
    elif promoted:
        promote(registry, spec.name, version, reason="passed its audit", trust=trust)
    return ReleaseResult(spec, policy, chosen, audited, promoted, awaiting, result)


def _record_audit(
    registry: Registry,
    spec: ExperimentSpec,
    policy: Policy,
    item: CandidateRelease,
    tags: dict[str, str],
) -> None:
    """The audit's readable cache on the version and its run (never trusted to serve)."""
    assert item.written is not None
    version = str(item.candidate.version)
    values = {
        catalogue.AUDIT_ID: item.audit_id,
        catalogue.AUDIT_DECISION: item.outcome.decision.verdict,
        catalogue.AUDIT_BREACHES: str(len(item.outcome.decision.breaches)),
        catalogue.REPORT_SHA256: item.written.sha256,
        catalogue.POLICY_NAME: policy.name,
        catalogue.POLICY_SHA256: policy.sha256,
        catalogue.APPROVAL_REQUIRED: "true" if _approval_needed(policy, item) else "false",
        catalogue.REVIEW_GROUPS: "; ".join(item.outcome.decision.review_groups)[:4000],
    }
    for key, value in values.items():
        registry.client.set_model_version_tag(spec.name, version, key, value)
    run_id = tags.get("run_id")
    if run_id:
        registry.client.log_artifact(run_id, str(item.written.json_path), "audit")
        registry.client.log_artifact(run_id, str(item.written.html_path), "audit")
        registry.client.set_tag(run_id, catalogue.AUDIT_DECISION, item.outcome.decision.verdict)
        registry.client.set_tag(run_id, catalogue.AUDIT_ID, item.audit_id)


def _attest_release(
    trust: Trust,
    spec: ExperimentSpec,
    policy: Policy,
    item: CandidateRelease,
    *,
    artifact_sha256: str,
    promoted: bool,
    offered: bool,
    released_by: str,
) -> None:
    """Sign what was decided about one candidate: its bytes, report, policy and decision, and
    whether it is the one offered for an oversight approval."""
    assert item.written is not None
    decision = item.outcome.decision
    trust.sign(
        spec.name,
        {
            "kind": "release",
            "version": str(item.candidate.version),
            "artifact_sha256": artifact_sha256,
            # Every file of the registered model folder, so that nothing beside the scoring
            # model's JSON (the pyfunc's code, MLflow's descriptors) can be swapped unseen.
            "files": item.candidate.files or {},
            "audit_id": item.audit_id,
            "report_sha256": item.written.sha256,
            "policy_sha256": policy.sha256,
            "decision": decision.verdict,
            "review_groups": "; ".join(decision.review_groups),
            # Groups the audit could not judge with this data: named in any approval of it.
            "not_assessable": "; ".join(n.name for n in decision.not_assessable),
            # A PASS waits for an approval when the policy asks for one, or when it discloses a
            # sizeable group too small to judge whose own estimate is beyond a limit.
            "approval_required": _approval_needed(policy, item),
            "disclosed_beyond": "; ".join(
                n.name
                for n in disclosures_to_approve(
                    policy, item.outcome.decision, item.outcome.audit.clusters
                )
            ),
            "promoted": promoted,
            # The release's chosen candidate waiting for an approval: approving it promotes it
            # (lifecycle.version_state.offered_for_approval; the registry tag is only a cache).
            "offered": offered,
            "by": released_by,
        },
    )
