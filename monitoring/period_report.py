"""One period's monitoring document: what the oversight board and analysts read after release.

It gathers, for a scored period of the serving model:

- the list and the evaluation lottery (``ScoredPeriod``);
- the **estimated** precision and recall at capacity per group, made from the calibrated scores
  when the period was scored, and the gated disparities those estimates imply: a group whose
  estimate is beyond a limit of the audit's policy makes a **re-audit recommended**;
- **drift** of every feature and of the score against the release's reference;
- the **funnel** by group (:mod:`monitoring.funnel`);
- once labels are ingested, the **realised** results (:mod:`monitoring.labels`): the release gate's
  verdict on the period, calibration, realised against estimated, and the evaluation arm;
- every warning in plain words, and whether a re-audit is recommended, with its reasons.

Selection-rate checks that need no outcome stay in :mod:`monitoring.group_shares`.

Every group's counts go through :mod:`audits.disclosure` (threshold: the audit policy's
``min_group_size``) before the document leaves: small counts, the counts that would give them
back, and whatever was computed from them are ``null`` with a ``"withheld"`` note
(:func:`withhold_small_cells`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from audits import disclosure, limit_check
from audits.decision_summary import counted_in
from audits.policy import Gate, Policy, policy_from_report
from audits.report import plain_numbers
from kernel.errors import NotFoundError
from monitoring.funnel import funnel, recall_limit
from store.db import PeriodLabels, ScoredPeriod

ESTIMATED_METRICS = ("recall", "precision", "selection_rate", "flagged_to_need")
OVERALL = ("overall", "overall")


def _sums(row: Mapping[str, Any]) -> dict[str, float]:
    """People, selected, expected crises and expected crises on the list of an estimate row."""
    people = float(row.get("people") or 0)
    selected = float(row.get("selected") or 0)
    expected = float(row.get("expected_positives") or 0)
    found = float(row.get("expected_reached") or 0)
    return {"people": people, "selected": selected, "expected": expected, "found": found}


def _metric(metric: str, s: Mapping[str, float], total: Mapping[str, float]) -> float | None:
    if metric == "recall":
        return s["found"] / s["expected"] if s["expected"] else None
    if metric == "precision":
        return s["found"] / s["selected"] if s["selected"] else None
    if metric == "selection_rate":
        return s["selected"] / s["people"] if s["people"] else None
    if not total["selected"] or not total["expected"] or not s["expected"]:
        return None
    return (s["selected"] / total["selected"]) / (s["expected"] / total["expected"])


def estimated_disparities(
    estimates: Mapping[str, Any],
    policy: Policy,
    in_need: Mapping[tuple[str, str], float] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Each gated metric's estimated disparity per group against everyone else, and the
    reasons to re-audit: a group judged on its own whose estimate is beyond a blocking or
    warning limit of the policy.

    Judged by :mod:`audits.limit_check`: the month's people, and the people in need the release
    audit counted (``in_need``, :func:`audits.limit_check.audited_in_need`); without them, the
    crises the month's scores expect."""
    rows = [r for r in estimates.get("groups") or [] if r.get("attribute") != "overall"]
    keys = ("people", "selected", "expected", "found")
    out: list[dict[str, Any]] = []
    reasons: list[str] = []
    for gate in policy.gates:
        if gate.metric not in ESTIMATED_METRICS:
            continue
        for row in rows:
            attribute, group = str(row["attribute"]), str(row["group"])
            if not gate.applies_to(attribute):
                continue
            mine = _sums(row)
            siblings = [r for r in rows if r["attribute"] == attribute]
            total = {k: sum(_sums(r)[k] for r in siblings) for k in keys}
            rest = {k: total[k] - mine[k] for k in total}
            value, base = _metric(gate.metric, mine, total), _metric(gate.metric, rest, total)
            disparity = _disparity(gate, value, base)
            need = mine["expected"] if in_need is None else in_need.get((attribute, group), 0)
            sufficient = limit_check.sufficient(
                policy, attribute, people=mine["people"], in_need=need
            )
            status = limit_check.check(gate, disparity, sufficient=sufficient)
            beyond = status == "beyond"
            out.append(
                {
                    "attribute": attribute,
                    "group": group,
                    "metric": gate.metric,
                    "kind": gate.disparity,
                    "value": disparity,
                    "group_value": value,
                    "rest_value": base,
                    "limit": gate.describe(),
                    "sufficient": sufficient,
                    "beyond_limit": beyond,
                    "status": limit_check.WORDS[status],
                }
            )
            if beyond:
                reasons.append(
                    f"estimated {gate.metric.replace('_', ' ')} {gate.disparity} for {attribute} "
                    f"= {group} is {disparity:.2f} against everyone else ({gate.describe()})"
                )
    return out, reasons


def _disparity(gate: Gate, value: float | None, base: float | None) -> float | None:
    if value is None or base is None:
        return None
    if gate.disparity == "ratio":
        return value / base if base else None
    return value - base


def _lottery(row: ScoredPeriod) -> dict[str, Any] | None:
    if not row.lottery_places:
        return None
    band = row.band_end - row.capacity
    return {
        "places": row.lottery_places,
        "band": [row.capacity + 1, row.band_end],
        "probability": row.lottery_places / band if band else None,
        "seed": row.lottery_seed,
    }


def periods_index(session: Session, name: str) -> list[dict[str, Any]]:
    """Every scored period of ``name``, newest first, with whether labels came back."""
    labelled = {
        p: r
        for p, r in session.execute(
            select(PeriodLabels.period, PeriodLabels.realised).where(
                PeriodLabels.model_name == name
            )
        )
    }
    out = []
    for row in session.scalars(
        select(ScoredPeriod)
        .where(ScoredPeriod.model_name == name)
        .order_by(ScoredPeriod.period.desc())
    ):
        realised = labelled.get(row.period)
        out.append(
            {
                "period": row.period,
                "model_version": row.model_version,
                "population": row.population,
                "capacity": row.capacity,
                "lottery_places": row.lottery_places,
                "labels": row.period in labelled,
                "drift_major": bool((row.drift or {}).get("any_major")),
                "realised_verdict": (realised or {}).get("decision", {}).get("verdict"),
            }
        )
    return out


def period_document(
    session: Session,
    name: str,
    period: str,
    report_for: Any,
) -> dict[str, Any]:
    """The monitoring document of one scored period (see the module's docstring).

    ``report_for(audit_id)`` returns the audit report of the model that scored the period, or
    ``None`` when it cannot be read.
    """
    row = session.scalars(
        select(ScoredPeriod).where(ScoredPeriod.model_name == name, ScoredPeriod.period == period)
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"no scored period {period} for {name}", code="period_not_found")
    report = report_for(row.audit_id) or {}
    policy = policy_from_report(report)
    labels = session.scalars(
        select(PeriodLabels).where(PeriodLabels.model_name == name, PeriodLabels.period == period)
    ).one_or_none()
    warnings: list[str] = []
    reaudit: list[str] = []
    notes: list[str] = []
    estimates = row.estimates
    disparities: list[dict[str, Any]] = []
    if estimates and policy is not None:
        disparities, reasons = estimated_disparities(
            estimates, policy, limit_check.audited_in_need(report)
        )
        reaudit += reasons
        warnings += [f"estimated before labels: {r}" for r in reasons]
    drift = row.drift
    if drift is None:
        notes.append(
            "drift: the serving model's audit carries no reference profile (released before "
            "drift monitoring); re-release to compare with its validation data"
        )
    else:
        warnings += [f"drift: {w}" for w in drift.get("warnings") or []]
    threshold = disclosure.threshold_of(policy)
    flow = funnel(
        session,
        name,
        period,
        level=policy.interval_level if policy else 0.95,
        limit=recall_limit(policy),
        threshold=threshold,
    )
    warnings += [f"funnel: {w}" for w in flow["warnings"]]
    realised = labels.realised if labels is not None else None
    if realised:
        warnings += list(realised.get("warnings") or [])
        if realised.get("reaudit_recommended"):
            reaudit += [f"realised: {r}" for r in realised.get("reaudit_reasons") or []]
    else:
        notes.append(
            "labels: not ingested yet (outreach labels ingest FILE); until then the estimates "
            "stand in for the realised results, on the assumption that the scores stay "
            "calibrated"
        )
    if policy is None:
        notes.append("the serving model's audit report is missing: no policy limits checked")
    estimates, drift, realised = withhold_small_cells(
        estimates, disparities, drift, realised, threshold
    )
    document = plain_numbers(
        {
            "model": {"name": name, "version": row.model_version, "audit_id": row.audit_id},
            "disclosure": {
                "threshold": threshold,
                "rule": (
                    f"counts of {counted_in(report).many} in a group from 1 to {threshold - 1:,} "
                    "(the policy's min_group_size), the counts that would give them back, and "
                    "what is computed from them are withheld (null, named under 'withheld')"
                ),
            },
            "period": period,
            "scored_at": row.scored_at.isoformat() if row.scored_at else None,
            "population": row.population,
            "capacity": row.capacity,
            "lottery": _lottery(row),
            "policy": {
                "name": report.get("policy", {}).get("name"),
                "sha256": report.get("policy", {}).get("sha256"),
            },
            "estimates": estimates,
            "estimated_disparities": disparities,
            "drift": drift,
            "funnel": flow,
            "labels": (
                {
                    "labelled": labels.labelled,
                    "positives": labels.positives,
                    "unlabelled": labels.unlabelled,
                    "ingested_by": labels.ingested_by,
                    "ingested_at": labels.ingested_at.isoformat() if labels.ingested_at else None,
                }
                if labels is not None
                else None
            ),
            "realised": realised,
            "warnings": warnings,
            "notes": notes,
            "reaudit_recommended": bool(reaudit),
            "reaudit_reasons": reaudit,
        }
    )
    # Messages written at scoring or ingest (the gate's, drift's) name group sizes in words.
    return dict(disclosure.scrub_all(document, threshold))


ESTIMATE_DERIVED = (
    "expected_positives",
    "expected_reached",
    "precision_expected",
    "precision_low",
    "precision_high",
    "recall_expected",
    "recall_low",
    "recall_high",
    "no_crisis_probability",
)
DISPARITY_DERIVED = ("value", "group_value", "rest_value", "reference_value", "ci", "p_value")


def withhold_small_cells(
    estimates: Mapping[str, Any] | None,
    disparities: list[dict[str, Any]],
    drift: Mapping[str, Any] | None,
    realised: Mapping[str, Any] | None,
    threshold: int,
) -> tuple[Any, Any, Any]:
    """Copies of a period's stored estimates, drift and realised results (and ``disparities``,
    in place) with small cells withheld by :mod:`audits.disclosure`."""
    estimates, drift, realised = (copy.deepcopy(x) for x in (estimates, drift, realised))
    touched: set[tuple[str, str]] = set()
    if estimates:
        touched |= disclosure.withhold_groups(
            estimates.get("groups") or [],
            threshold,
            size="people",
            counts=("selected",),
            derived=ESTIMATE_DERIVED,
        )
    for row in disparities:
        if (str(row["attribute"]), str(row["group"])) in touched:
            disclosure.blank_fields(row, DISPARITY_DERIVED, threshold)
    if drift:
        for feature in [drift.get("score") or {}, *(drift.get("features") or {}).values()]:
            disclosure.withhold_groups(
                feature.get("groups") or [],
                threshold,
                size="n_period",
                counts=("n_reference",),
                derived=("psi", "band", "test"),
            )
    if realised:
        found = disclosure.withhold_groups(
            realised.get("groups") or [],
            threshold,
            size="n",
            counts=("people", "positives", "people_in_need"),
            derived=("metrics", "ci", "effective_n"),
        )
        calibration = realised.get("calibration") or {}
        found |= disclosure.withhold_groups(
            calibration.get("groups") or [],
            threshold,
            size="people",
            counts=("observed",),
            derived=("expected", "ratio", "ci"),
        )
        for key in ("disparities", "against_estimates"):
            for row in realised.get(key) or []:
                if (str(row.get("attribute")), str(row.get("group"))) in found | touched:
                    disclosure.blank_fields(
                        row,
                        [
                            k
                            for k, v in row.items()
                            if k not in ("attribute", "group")
                            and (isinstance(v, float | list) or k in DISPARITY_DERIVED)
                        ],
                        threshold,
                    )
    return estimates, drift, realised


def after_release_evidence(
    session: Session, name: str, *, limit: int = 12
) -> dict[str, Any] | None:
    """What the labelled months of ``name`` showed, for the next release's audit report.

    Per labelled month (newest first, at most ``limit``): the version that scored it, the
    realised verdict and its breaches, overall calibration, and the evaluation arm's estimates
    with their intervals. ``None`` when no month has labels.
    """
    rows = session.execute(
        select(PeriodLabels, ScoredPeriod)
        .join(
            ScoredPeriod,
            (ScoredPeriod.model_name == PeriodLabels.model_name)
            & (ScoredPeriod.period == PeriodLabels.period),
        )
        .where(PeriodLabels.model_name == name)
        .order_by(PeriodLabels.period.desc())
        .limit(limit)
    ).all()
    if not rows:
        return None
    months = []
    for labels, scored in rows:
        realised = labels.realised or {}
        decision = realised.get("decision") or {}
        overall = next(
            (
                c
                for c in (realised.get("calibration") or {}).get("groups") or []
                if c.get("attribute") == "overall"
            ),
            None,
        )
        months.append(
            {
                "period": labels.period,
                "model_version": scored.model_version,
                "audit_id": scored.audit_id,
                "labelled": labels.labelled,
                "positives": labels.positives,
                "verdict": decision.get("verdict"),
                "breaches": [b.get("message") for b in decision.get("breaches") or []],
                "reaudit_recommended": bool(realised.get("reaudit_recommended")),
                "calibration": overall,
                "lottery_places": scored.lottery_places,
                "evaluation": (realised.get("evaluation") or {}).get("estimates"),
            }
        )
    return plain_numbers(
        {
            "model": name,
            "months": months,
            "caveat": (
                "Realised results count crises that help prevented as misses; the evaluation "
                "arm's estimates at the margin do not."
            ),
        }
    )
