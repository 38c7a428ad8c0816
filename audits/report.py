"""Audit reports: a versioned JSON document (the source of truth) and an HTML page from it.

The JSON is built from the audit's values by :func:`build_report`; :func:`render_html` turns it
into one self-contained page (inline CSS and SVG charts) for non-technical readers;
:func:`write_report` writes both atomically into a folder named by the audit id.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from audits import decision_summary as summary_words
from audits.audit import AuditOutcome, headlines, label_bias_sensitivity
from audits.charts import Bar, Point, bar_chart, scatter_chart
from audits.gate import Decision
from audits.group_metrics import GroupAudit
from audits.operating_characteristics import (
    AuditShape,
    operating_characteristics,
    persistence_from,
    shape_from_report,
)
from audits.policy import Policy
from audits.proxies import MISSINGNESS_ALPHA, MISSINGNESS_RATIO, MissingnessResult, ProxyResult
from kernel.errors import BadInputError
from model.words import UnitWords, unit_words

SCHEMA = "outreach.audit/2"
#: What each decision means, in the words an oversight board reads.
DECISION_WORDS = {
    "PASS": (
        "every group the data can judge is within every blocking limit; groups too small to "
        "judge are named below"
    ),
    "REVIEW": (
        "the audit could not settle every question: the oversight board must decide, and its "
        "approval names the groups that could not be judged; nothing is promoted automatically"
    ),
    "FAIL": "the evidence shows a breach of a blocking limit; this version can never be served",
}
#: The gated metrics in words: owned by :mod:`audits.decision_summary`, re-exported here.
METRIC_WORDS = summary_words.METRIC_WORDS


def plain_numbers(value: Any) -> Any:
    """``value`` with floats rounded to 6 places and NaN or infinity as ``None`` (JSON-safe)."""
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    if isinstance(value, tuple | list):
        return [plain_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: plain_numbers(v) for k, v in value.items()}
    return value


def new_audit_id(now: datetime | None = None) -> str:
    """A sortable, unique audit id: ``audit-YYYYMMDDTHHMMSS-<8 hex>``."""
    now = now or datetime.now(UTC)
    return f"audit-{now:%Y%m%dT%H%M%S}-{os.urandom(4).hex()}"


@dataclass(frozen=True)
class CandidateSummary:
    """One candidate's place in the accuracy-fairness trade-off."""

    name: str
    version: str | None
    decision: str
    precision_at_k: float
    recall_at_k: float
    worst_recall_ratio: float | None
    chosen: bool = False


@dataclass(frozen=True)
class ProductionComparison:
    """How the candidate's outreach list overlaps with the production model's."""

    version: str
    overlap_share: float
    entering: dict[str, Any] = field(default_factory=dict)
    leaving: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Subject:
    """What was audited."""

    kind: str
    name: str
    version: str | None = None
    candidate: str | None = None
    artifact_sha256: str | None = None
    data_fingerprint: str | None = None


def _summary_sentences(
    audit: GroupAudit, outcome: str, policy: Policy, counted: UnitWords
) -> list[str]:
    sentences = []
    for attribute in dict.fromkeys(g.attribute for g in audit.groups):
        groups = [
            g
            for g in audit.groups
            if g.attribute == attribute and g.sufficient and math.isfinite(g.metrics["recall"])
        ]
        if len(groups) < 2:
            continue
        best = max(groups, key=lambda g: g.metrics["recall"])
        worst = min(groups, key=lambda g: g.metrics["recall"])
        sentences.append(
            f"Of the {counted.many} {counted.who} later {outcome}, the model would have offered "
            "outreach to "
            f"{best.metrics['recall']:.0%} of those with {attribute} “{best.group}” and "
            f"{worst.metrics['recall']:.0%} of those with {attribute} “{worst.group}”."
        )
    small = [g for g in audit.groups if not g.sufficient]
    if small:
        what = (
            "each sends the release to a person"
            if policy.not_assessable_action == "review"
            else "each is named here and in the approval, never passed silently"
        )
        exceptions = "".join(
            f"; for {attribute}, {count:,}"
            for attribute, count in policy.min_group_positives_for.items()
        )
        sentences.append(
            f"{len(small)} group(s) could not be judged on their own with this data (fewer than "
            f"{policy.min_group_size:,} {counted.many} or {policy.min_group_positives:,} "
            f"{counted.many} in need"
            f"{exceptions}); {what}."
        )
    return sentences


def build_report(
    *,
    audit_id: str,
    subject: Subject,
    policy: Policy,
    audit: GroupAudit,
    decision: Decision,
    operating_point: dict[str, Any],
    outcome: str,
    experiment: dict[str, Any] | None = None,
    proxies: Sequence[ProxyResult] = (),
    missingness: Sequence[MissingnessResult] = (),
    candidates: Sequence[CandidateSummary] = (),
    production: ProductionComparison | None = None,
    model_card: dict[str, Any] | None = None,
    created_at: datetime | None = None,
    outcome_detail: AuditOutcome | None = None,
    reference_profile: dict[str, Any] | None = None,
    after_release: dict[str, Any] | None = None,
    recourse: dict[str, Any] | None = None,
    characteristics: dict[str, Any] | None = None,
    unit: str | None = None,
) -> dict[str, Any]:
    """The audit report as a JSON-ready mapping (schema ``outreach.audit/2``).

    ``reference_profile`` is the drift reference of the audited data and scores
    (:func:`audits.drift.reference_profile`), kept under ``"reference_profile"`` so that the
    signed report carries it. ``characteristics`` is the gate's operating-characteristics table
    (:mod:`audits.operating_characteristics`) for this audit's shape. ``recourse`` is
    :func:`audits.recourse.recourse_audit`'s section (how far people just below the cut-off
    are from it, per group), ``None`` when not computed. ``unit`` is the spec's unit (the
    ``experiment``'s when not given; people when neither says): recorded as ``"unit"``, it
    decides whether the report's words count people or areas
    (:func:`audits.decision_summary.counted_in`).
    """
    unit = unit if unit is not None else (experiment or {}).get("unit")
    created = (created_at or datetime.now(UTC)).isoformat(timespec="seconds")
    truth = None
    if outcome_detail is not None and outcome_detail.truth is not None:
        assert outcome_detail.truth_decision is not None
        truth = {
            "decision": outcome_detail.truth_decision.verdict,
            "judged": policy.evidence.judge_truth,
            "headlines": headlines(policy, outcome_detail.truth),
            "groups": group_rows(outcome_detail.truth),
            "overall": outcome_detail.truth.overall,
        }
    return plain_numbers(
        {
            "schema": SCHEMA,
            "audit_id": audit_id,
            "created_at": created,
            "subject": asdict(subject),
            "unit": unit,
            "experiment": experiment,
            "outcome": outcome,
            "policy": {
                "name": policy.name,
                "sha256": policy.sha256,
                "path": policy.source_path,
                "intervention": policy.intervention,
                "decision_rule": policy.decision_rule,
                "interval_level": policy.interval_level,
                "bootstrap_resamples": audit.resamples,
                "min_group_size": policy.min_group_size,
                "min_group_positives": policy.min_group_positives,
                "min_group_positives_for": dict(policy.min_group_positives_for),
                "small_groups": policy.small_groups,
                "not_assessable": policy.not_assessable_action,
                "pass_rule": policy.evidence.pass_rule,
                "reference_group": policy.reference_group,
                "version": policy.version,
                "sensitive_attributes": list(policy.sensitive_attributes),
                "intersections": [list(combo) for combo in policy.intersections],
                "multiple_comparisons": policy.multiple_comparisons,
                "underpowered": policy.evidence.underpowered,
                "gates": [g.model_dump() for g in policy.gates],
                "no_regression_tolerance": policy.no_regression.tolerance,
                "proxy_max_auc": policy.proxies.max_auc,
                "missingness_action": policy.missingness.action,
                "approval_required": policy.approval.required,
                "evaluation": policy.evaluation.model_dump(),
                "impact_assessments": policy.impact_assessments.model_dump(mode="json"),
            },
            "operating_point": operating_point,
            "decision": decision.verdict,
            "decision_meaning": DECISION_WORDS[decision.verdict],
            "breaches": [b.as_dict() for b in decision.breaches],
            "review": [r.as_dict() for r in decision.review],
            "review_groups": list(decision.review_groups),
            "not_assessable": [n.as_dict() for n in decision.not_assessable],
            "families": [f.as_dict() for f in decision.families],
            "operating_characteristics": characteristics,
            "evidence": {
                "clusters": audit.clusters,
                "periods": audit.periods,
                "resamples": audit.resamples,
                "persistence": persistence_from(group_rows(audit)),
                "comparison": "everyone else"
                if policy.reference_group == "rest"
                else policy.reference_group,
            },
            "headlines": headlines(policy, audit),
            "label_bias_sensitivity": label_bias_sensitivity(policy, audit, unit_words(unit)),
            "truth": truth,
            "fairlearn": outcome_detail.fairlearn if outcome_detail else {},
            "warnings": [b.as_dict() for b in decision.warnings],
            "insufficient_groups": list(decision.insufficient),
            "notes": list(decision.notes),
            "summary": _summary_sentences(audit, outcome, policy, unit_words(unit)),
            "overall": audit.overall,
            "groups": group_rows(audit),
            "disparities": [asdict(d) for d in audit.disparities],
            "spreads": [asdict(s) for s in audit.spreads],
            "proxies": [p.as_dict() for p in proxies],
            "missingness": {
                "rule": (
                    f"a group is flagged when its share missing and everyone else's differ by a "
                    f"factor of at least {MISSINGNESS_RATIO:g} and a chi-square test gives "
                    f"p < {MISSINGNESS_ALPHA:g}"
                ),
                "features": [m.as_dict() for m in missingness],
                "findings": [f for m in missingness for f in m.findings],
            },
            "candidates": [asdict(c) for c in candidates],
            "production_comparison": asdict(production) if production else None,
            "model_card": model_card,
            "reference_profile": reference_profile,
            "after_release": after_release,
            "recourse": recourse,
        }
    )


def audit_shape(policy: Policy, outcome: AuditOutcome) -> AuditShape:
    """An audit's groups, people, months and persistence, as the simulation reads them."""
    rows = group_rows(outcome.audit)
    return shape_from_report(
        {
            "groups": rows,
            "overall": outcome.audit.overall,
            "evidence": {"persistence": persistence_from(rows)},
            "truth": {"judged": outcome.truth is not None and policy.evidence.judge_truth},
        }
    )


def characteristics(
    policy: Policy,
    outcome: AuditOutcome,
    *,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any] | None:
    """The gate's operating characteristics on this audit's shape
    (:mod:`audits.operating_characteristics`), as the report carries them; ``None`` when the policy
    has no gate the simulation can draw."""
    shape = audit_shape(policy, outcome)
    table = operating_characteristics(
        policy, shape, replicates=policy.evidence.simulations, seed=seed, progress=progress
    )
    return None if table is None else plain_numbers(table.as_dict())


def group_rows(audit: GroupAudit) -> list[dict[str, Any]]:
    return [
        {
            "attribute": g.attribute,
            "group": g.group,
            "n": g.n,
            "positives": g.positives,
            "people": g.people,
            "people_in_need": g.people_in_need,
            "flagged": g.flagged,
            "reference": g.reference,
            "sufficient": g.sufficient,
            "note": g.note,
            "metrics": g.metrics,
            "ci": g.ci,
            "effective_n": g.effective_n,
        }
        for g in audit.groups
    ]


# ----------------------------------------------------------------------------- charts


def gate_chart(report: dict[str, Any], gate: dict[str, Any], attribute: str) -> Markup | None:
    """One gated metric's disparities for one attribute, with intervals and the limit."""
    rows = [
        d
        for d in report["disparities"]
        if d["attribute"] == attribute
        and d["metric"] == gate["metric"]
        and d["kind"] == gate["disparity"]
    ]
    if not rows:
        return None
    neutral = 1.0 if gate["disparity"] == "ratio" else 0.0
    reference = rows[0]["reference"]
    bars = [Bar(f"{reference} (reference)" if reference != "everyone else" else "parity", neutral)]
    for d in rows:
        low, high = d["ci"] if d["ci"] else (None, None)
        bars.append(
            Bar(
                d["group"],
                d["value"],
                low,
                high,
                muted=not d["sufficient"],
                note="" if d["sufficient"] else "too small to judge",
            )
        )
    limits = [v for v in (gate.get("min"), gate.get("max")) if v is not None]
    words = METRIC_WORDS.get(gate["metric"], gate["metric"])
    return bar_chart(
        bars,
        title=f"{words.capitalize()} by {attribute}",
        axis_label=f"{gate['disparity']} to the reference group (line at parity)",
        reference=neutral,
        limits=limits,
    )


def tradeoff_chart(report: dict[str, Any]) -> Markup | None:
    """Every candidate's precision at capacity against its worst group's recall ratio."""
    rows = [c for c in report["candidates"] if c["worst_recall_ratio"] is not None]
    if len(rows) < 2:
        return None
    recall_gate = next(
        (g for g in report["policy"]["gates"] if g["metric"] == "recall" and g.get("min")), None
    )
    return scatter_chart(
        [
            Point(
                c["name"],
                c["precision_at_k"],
                c["worst_recall_ratio"],
                c["decision"] == "PASS",
                c["chosen"],
                state=summary_words.verdict_label(c["decision"]),
                review=c["decision"] == "REVIEW",
            )
            for c in rows
        ],
        title="Candidates: accuracy against fairness",
        x_label="precision at capacity (share offered outreach who were in need)",
        y_label="worst group's recall ratio",
        y_limit=recall_gate["min"] if recall_gate else None,
    )


def template_environment(*packages: str) -> Environment:
    """The Jinja2 environment of self-contained pages (reports; with ``"lifecycle"``, transparency
    records): the templates of ``packages`` first, then the audits' own (styles included)."""
    loaders = [PackageLoader(package, "templates") for package in (*packages, "audits")]
    return Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _context(report: dict[str, Any]) -> dict[str, Any]:
    charts = []
    attributes = list(dict.fromkeys(g["attribute"] for g in report["groups"]))
    for gate in report["policy"]["gates"]:
        for attribute in attributes:
            svg = gate_chart(report, gate, attribute)
            if svg:
                charts.append({"gate": gate, "attribute": attribute, "svg": svg})
    return {
        "report": report,
        "decision_summary": summary_words.summarise(report),
        "charts": charts,
        "tradeoff": tradeoff_chart(report),
        "words": METRIC_WORDS,
        "attributes": attributes,
        "counted": summary_words.counted_in(report),
    }


def render_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page for the report (no network access needed to read it)."""
    return template_environment().get_template("report.html.j2").render(_context(report))


def render_body(report: dict[str, Any]) -> Markup:
    """The report's content without its page, for pages that frame it (styles: :data:`CSS`)."""
    template = template_environment().get_template("report_body.html.j2")
    return Markup(template.render(_context(report)))


#: Where the report's styles live (inlined by :func:`render_html`).
CSS = Path(__file__).parent / "templates" / "report.css"


def _atomic_write(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class WrittenReport:
    folder: Path
    json_path: Path
    html_path: Path
    sha256: str


def check_report_folder(folder: str | Path) -> Path:
    """A folder the report can be written into (made if missing), or a clear error.

    Raises
    ------
    BadInputError
        When the path is a file or a device, or cannot be made or written.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise BadInputError(f"--out {folder} is not a folder (it is a file or a device)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BadInputError(f"cannot make the report folder {folder}: {err.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BadInputError(f"cannot write into the report folder {folder}: permission denied")
    return folder


def write_report(report: dict[str, Any], folder: str | Path) -> WrittenReport:
    """Write ``audit.json`` and ``audit.html`` into ``folder``; return paths and JSON sha256.

    Raises
    ------
    BadInputError
        When the folder cannot be written (nothing partial is left: each file is replaced
        atomically).
    """
    folder = check_report_folder(folder)
    data = json.dumps(report, indent=2, sort_keys=True).encode()
    json_path, html_path = folder / "audit.json", folder / "audit.html"
    try:
        _atomic_write(html_path, render_html(report).encode())
        _atomic_write(json_path, data)
    except OSError as err:
        raise BadInputError(f"cannot write the report into {folder}: {err.strerror}") from None
    return WrittenReport(folder, json_path, html_path, hashlib.sha256(data).hexdigest())
