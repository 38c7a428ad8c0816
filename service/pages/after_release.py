"""The monitoring page (``/oversight/monitoring``): after release, one period at a time.

For the oversight board and analysts, aggregates only: the period's warnings and whether a
re-audit is recommended; estimated against realised performance per group; the realised gate;
calibration; drift; the funnel by group over the latest months; the evaluation arm; and the
share of each group put on the list, month by month (:mod:`monitoring.group_shares`). The numbers
are the JSON API's (``GET /api/v1/monitoring?period=``), drawn as charts where a picture reads
faster than a table.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, g, render_template, request
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from audits import charts, disclosure, limit_check
from audits import report as report_words
from audits.decision_summary import counted_in
from audits.policy import policy_from_report
from kernel.errors import NotFoundError, OutreachError
from lifecycle.catalogue import read_report
from monitoring import group_shares as monitoring
from monitoring.funnel import funnel, recall_limit
from monitoring.period_report import period_document, periods_index
from service.pages.common import db, model_name, registry, versions_now
from service.pages.oversight import pages
from service.pages.security import signed_in
from service.person_explanation import feature_words
from store import approvals
from store import queue as queue_rules

CHART_PERIODS = 3
FUNNEL_MONTHS = 6
#: The axis of every chart of a share (0 to 1), so that shares read against each other.
SHARE = (0.0, 1.0)
#: A population stability index below this is no shift at all: not drawn as a bar.
NO_SHIFT = 0.001
#: The realised gate's metrics in words (the audit report's own words).
METRIC_WORDS = report_words.METRIC_WORDS


def _plain_names() -> dict[str, str]:
    """The served model's features in the spec's words
    (``service.person_explanation.feature_words``)."""
    serving = current_app.extensions["outreach.model"].current
    if serving is None:
        return {}
    return {f.name: feature_words(f) for f in serving.model.features}


def _report_for(audit_id: str) -> dict[str, Any] | None:
    try:
        return read_report(registry(), audit_id)
    except OutreachError:
        return None


def _in_production() -> dict[str, dict[str, Any]]:
    """Every model with a production version, by name: that version's row
    (:func:`service.pages.common.versions_now`)."""
    return {str(row["name"]): row for row in versions_now() if "production" in row["aliases"]}


@pages.get("/monitoring")
@signed_in("monitoring")
def monitoring_page() -> ResponseReturnValue:
    """One month (``?period=``, default the latest) and the months before it."""
    served = model_name()
    in_production = _in_production()
    name = request.args.get("model") or served
    if name != served and name not in in_production:
        raise NotFoundError(f"No model {name[:120]!r} is in production here.")
    chosen = request.args.get("period")
    if chosen is not None:
        queue_rules.period(chosen)
    serving = current_app.extensions["outreach.model"].current
    if name == served:
        serving_report = _report_for(serving.audit_id) if serving is not None else None
    else:  # another model in production: the audit its production version was released on
        audit_id = in_production[name].get("audit_id")
        serving_report = _report_for(str(audit_id)) if audit_id else None
    with db().session() as session:
        index = periods_index(session, name)
        views = monitoring.periods(session, name, serving_report)
        kept = {row["period"] for row in index}
        months = sorted(kept | {v.period for v in views}, reverse=True)
        if chosen is not None and chosen not in months:
            raise NotFoundError(f"no month {chosen} has been scored for {name}")
        period = chosen or (months[0] if months else None)
        document = (
            period_document(session, name, period, _report_for)
            if period is not None and period in kept
            else None
        )
        report = (
            _report_for(document["model"]["audit_id"]) if document else None
        ) or serving_report
        policy = policy_from_report(report or {})
        level = policy.interval_level if policy is not None else 0.95
        funnels = [
            funnel(
                session,
                name,
                month,
                level=level,
                limit=recall_limit(policy),
                threshold=disclosure.threshold_of(policy),
            )
            | {"period": month}
            for month in months
            if period is not None and month <= period
        ][:FUNNEL_MONTHS]
    return render_template(
        "oversight/monitoring.html",
        principal=g.principal,
        name=name,
        models=sorted({served, *in_production}),
        production_version=(in_production.get(name) or {}).get("version"),
        reaudit_requests=approvals.reaudit_requests(db(), name),
        months=months,
        labelled={row["period"] for row in index if row["labels"]},
        period=period,
        doc=document,
        flow=funnels[0] if funnels else None,
        views=views,
        statuses=monitoring.OUTCOME_STATUSES,
        report=report,
        counted=counted_in(report or {}),
        figures=_figures(document, funnels, report, _plain_names() if name == served else {}),
        selection_charts=_selection_charts(views),
        shown_interval=limit_check.shown_interval,
    )


def _figures(
    doc: dict[str, Any] | None,
    funnels: list[dict[str, Any]],
    report: dict[str, Any] | None,
    names: dict[str, str],
) -> dict[str, list[Markup]]:
    gates = (report or {}).get("policy", {}).get("gates") or []
    figures = {"funnel": _funnel_charts(funnels)}
    if doc is not None:
        figures |= {
            "performance": _performance_charts(doc),
            "realised": _realised_charts(doc, gates),
            "drift": _drift_charts(doc, names),
            "evaluation": _evaluation_charts(doc),
        }
    return figures


def _estimate_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in (doc.get("estimates") or {}).get("groups") or []]


def _band(row: dict[str, Any], metric: str) -> tuple[Any, Any, Any]:
    return row.get(f"{metric}_expected"), row.get(f"{metric}_low"), row.get(f"{metric}_high")


def _performance_charts(doc: dict[str, Any]) -> list[Markup]:
    """Per attribute: each group's estimated recall at capacity with its sampling band, beside
    the realised recall with its interval once labels are in."""
    realised = {
        (r["attribute"], r["group"]): r for r in (doc.get("realised") or {}).get("groups") or []
    }
    rows = _estimate_rows(doc)
    out = []
    for attribute in dict.fromkeys(r["attribute"] for r in rows if r["attribute"] != "overall"):
        bars = []
        for row in [r for r in rows if r["attribute"] == attribute]:
            value, low, high = _band(row, "recall")
            bars.append(charts.Bar(f"{row['group']}: estimated", value, low, high, muted=True))
            found = realised.get((attribute, row["group"]))
            if found is not None:
                ci = (found.get("ci") or {}).get("recall") or [None, None]
                bars.append(
                    charts.Bar(
                        f"{row['group']}: realised",
                        (found.get("metrics") or {}).get("recall"),
                        ci[0],
                        ci[1],
                    )
                )
        out.append(
            charts.bar_chart(
                bars,
                title=f"{doc['period']}: recall at capacity by {attribute}, estimated (band) "
                "and realised (interval)",
                axis_label="recall: share of the people who had the crisis who were on the list",
                fmt="{:.2f}",
                scale=SHARE,
            )
        )
    return out


def _realised_charts(doc: dict[str, Any], gates: list[dict[str, Any]]) -> list[Markup]:
    """One chart per measure (metric and kind: a ratio or a difference) and attribute, the
    charts of one measure on one scale."""
    realised = doc.get("realised") or {}
    by_measure: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    for d in realised.get("disparities") or []:
        if " × " in d["attribute"]:
            continue
        measure = (d["metric"], str(d.get("kind") or "ratio"))
        by_measure.setdefault(measure, {}).setdefault(d["attribute"], []).append(d)
    out = []
    for (metric, kind), attributes in by_measure.items():
        gate = next(
            (g for g in gates if g.get("metric") == metric and g.get("disparity") == kind),
            {},
        )
        limits = [v for v in (gate.get("min"), gate.get("max")) if v is not None]
        reference = 1.0 if kind == "ratio" else 0.0
        scale = charts.nice_range(
            [
                v
                for rows in attributes.values()
                for d in rows
                for v in (d.get("value"), *(d.get("ci") or [None, None]))
                if v is not None
            ]
            + [*limits, reference]
        )
        words = (
            "ratio to everyone else (1 = the same)"
            if kind == "ratio"
            else ("difference from everyone else (0 = the same)")
        )
        for attribute, rows in attributes.items():
            out.append(
                charts.bar_chart(
                    [
                        charts.Bar(
                            d["group"],
                            d.get("value"),
                            (d.get("ci") or [None, None])[0],
                            (d.get("ci") or [None, None])[1],
                            muted=not d.get("sufficient", True),
                            note="" if d.get("sufficient", True) else "too few to judge",
                        )
                        for d in rows
                    ],
                    title=f"{doc['period']}, realised {METRIC_WORDS.get(metric, metric)} "
                    f"by {attribute}: the {kind} to everyone else",
                    axis_label=words + (", lines: the policy's limits" if limits else ""),
                    reference=reference,
                    limits=limits,
                    scale=scale,
                )
            )
    return out


def _drift_charts(doc: dict[str, Any], names: dict[str, str]) -> list[Markup]:
    """The features (named in the spec's words) whose mix of values moved, largest first; a
    line instead of a chart when none did."""
    drift = doc.get("drift") or {}
    features = dict(drift.get("features") or {})
    if drift.get("score"):
        features = {"(the score)": drift["score"], **features}
    bars = []
    for name, found in features.items():
        overall = (found or {}).get("overall") or {}
        if overall.get("psi") is None:
            continue
        label = names.get(name, name.replace("_", " "))
        bars.append(charts.Bar(label, overall["psi"], note=str(overall.get("band") or "")))
    if not bars:
        return []
    bands = drift.get("psi_bands") or {"moderate": 0.1, "major": 0.25}
    moved = [b for b in bars if (b.value or 0.0) >= NO_SHIFT]
    if not moved:
        return [
            charts.nothing_to_show(
                f"{doc['period']}: nothing has moved since the release's data: every feature's "
                f"and the score's population stability index is below {NO_SHIFT}."
            )
        ]
    still = len(bars) - len(moved)
    return [
        charts.bar_chart(
            sorted(moved, key=lambda b: -(b.value or 0))[:25],
            title=f"{doc['period']}: population stability index against the release's data"
            + (f" ({still} more below {NO_SHIFT} not drawn)" if still else ""),
            axis_label="PSI (lines: 0.1 moderate, 0.25 major shift)",
            limits=[bands["moderate"], bands["major"]],
            fmt="{:.2f}",
        )
    ]


def _funnel_charts(funnels: list[dict[str, Any]]) -> list[Markup]:
    """Per attribute: each group's rate of being reached and of accepting help against everyone
    else's, over the latest months."""
    out = []
    attributes = dict.fromkeys(a["attribute"] for f in funnels for a in f["attributes"])
    scales = {
        rate: charts.nice_range(
            [
                v
                for f in funnels
                for a in f["attributes"]
                for row in a["groups"]
                for v in (
                    row["comparisons"][rate].get("ratio"),
                    *(row["comparisons"][rate].get("ci") or [None, None]),
                )
                if v is not None
            ]
            + [1.0, *([f["limit"] for f in funnels if f.get("limit")])]
        )
        for rate in ("reached", "accepted")
    }
    for attribute in attributes:
        for rate in ("reached", "accepted"):
            bars = []
            limit = None
            for f in reversed(funnels):
                limit = f.get("limit")
                for a in f["attributes"]:
                    if a["attribute"] != attribute:
                        continue
                    for row in a["groups"]:
                        c = row["comparisons"][rate]
                        ci = c.get("ci") or [None, None]
                        bars.append(
                            charts.Bar(
                                f"{row['group']}, {f['period']}",
                                c.get("ratio"),
                                ci[0],
                                ci[1],
                                note=(
                                    f"{c.get('rate') or 0:.0%} of {row['offered']}"
                                    if row["offered"] is not None and c.get("rate") is not None
                                    else "withheld: a small count"
                                ),
                            )
                        )
            if any(b.value is not None for b in bars):
                out.append(
                    charts.bar_chart(
                        bars,
                        title=f"Of those offered outreach, the share {rate} by {attribute}: "
                        "the ratio to everyone else, month by month",
                        axis_label="ratio to everyone else (1 = the same; line: the policy's "
                        "recall limit)",
                        reference=1.0,
                        limits=[limit] if limit else [],
                        scale=scales[rate],
                    )
                )
    return out


def _evaluation_charts(doc: dict[str, Any]) -> list[Markup]:
    """The arm's crisis rates at the margin, with and without an offer, beside what the model
    expected there; and the effect of an offer (a difference, so a chart of its own)."""
    evaluation = (doc.get("realised") or {}).get("evaluation") or {}
    found = evaluation.get("estimates") or {}
    words = {
        "untreated_rate": "crisis rate without an offer",
        "treated_rate": "crisis rate with an offer",
    }
    bars = []
    for key, label in words.items():
        e = found.get(key)
        if e:
            bars.append(charts.Bar(label, e["value"], e["low"], e["high"]))
    untreated = found.get("untreated_rate") or {}
    if untreated.get("model_expected") is not None:
        bars.append(
            charts.Bar("the model's expected rate", untreated["model_expected"], muted=True)
        )
    out = []
    if bars:
        out.append(
            charts.bar_chart(
                bars,
                title=f"{doc['period']}: the evaluation arm, people ranked just below the cut-off",
                axis_label="share who had the crisis (with intervals)",
                fmt="{:.2f}",
            )
        )
    effect = found.get("effect")
    if effect:
        out.append(
            charts.bar_chart(
                [
                    charts.Bar(
                        "with an offer − without", effect["value"], effect["low"], effect["high"]
                    )
                ],
                title=f"{doc['period']}: what an offer changed at the margin",
                axis_label="difference in crisis rate (0 = no change; below 0: fewer crises)",
                reference=0.0,
                fmt="{:+.2f}",
            )
        )
    return out


def _selection_charts(views: list[monitoring.PeriodView]) -> list[Markup]:
    """Per attribute: each group's share put on the list over the latest months."""
    if not views:
        return []
    out = []
    recent = views[:CHART_PERIODS]
    found = {
        (view.period, a.attribute, row.group): row
        for view in recent
        for a in view.attributes
        for row in a.groups
    }
    scale = charts.nice_range(
        [row.selection_rate for row in found.values() if "selected" not in row.withheld]
    )
    for attribute in recent[0].attributes:
        bars = []
        for row in attribute.groups:
            for view in recent:
                match = found.get((view.period, attribute.attribute, row.group))
                if match is not None and "selected" not in match.withheld:
                    bars.append(
                        charts.Bar(
                            f"{row.group}{' (reference)' if row.reference else ''}, {view.period}",
                            match.selection_rate,
                            muted=not match.sufficient,
                            note="too few to judge" if not match.sufficient else "",
                        )
                    )
        out.append(
            charts.bar_chart(
                bars,
                title=f"Share put on the list by {attribute.attribute}, latest months",
                axis_label="selection rate (hatched: too few people to judge)",
                fmt="{:.2f}",
                scale=scale,
            )
        )
    return out
