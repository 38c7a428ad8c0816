"""Oversight board pages: releases and approvals, audit reports, comparisons, the policy in force,
the access log, and monitoring by group. Sensitive attributes appear only as group aggregates."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import Text, cast, func, select

from audits import limit_check
from audits.decision_summary import summarise, verdict_label
from audits.policy import assessments_from_report
from audits.report import CSS, METRIC_WORDS, gate_chart, render_body
from kernel.errors import BadInputError, ConflictError, GateError, NotFoundError, OutreachError
from lifecycle.catalogue import list_versions, read_report
from lifecycle.decisions import production_version
from monitoring.period_report import periods_index
from service import board
from service.pages.common import db, fmt_time, model_name, registry, versions_now
from service.pages.security import signed_in
from store import access_log, approvals
from store import review_requests as review_rules
from store.db import AccessLogRow, Approval
from store.queue import Caller

pages = Blueprint("oversight", __name__, url_prefix="/oversight")

LOG_PAGE = 100
MAX_NOTE = 2000


def _versions() -> list[dict[str, Any]]:
    rows = versions_now()
    for row in rows:
        row["created_text"] = fmt_time(row["created"])
    return rows


def _report_if_found(audit_id: str | None) -> dict[str, Any] | None:
    """A report for pages that list many: a missing one is noted, not fatal."""
    try:
        return read_report(registry(), audit_id) if audit_id else None
    except OutreachError:
        return None


def _report(audit_id: str) -> dict[str, Any]:
    try:
        return read_report(registry(), audit_id)
    except OutreachError as err:
        raise NotFoundError(f"There is no audit {audit_id[:80]!r}.") from err


@pages.get("/releases")
@signed_in("releases")
def releases() -> ResponseReturnValue:
    """Every registered version with its audit decision, approvals and links."""
    return _releases_page()


def _releases_page(
    *, problem: tuple[str, str, str] | None = None, note: str = "", status: int = 200
) -> ResponseReturnValue:
    """The releases page; ``problem`` (name, version, message) shows a decision form's error
    beside that form, with the note as it was typed."""
    with db().session() as session:
        approvals: dict[tuple[str, str], list[dict[str, str]]] = {}
        for a in session.scalars(select(Approval).order_by(Approval.id)):
            approvals.setdefault((a.model_name, a.model_version), []).append(
                {"decision": a.decision, "by": a.by, "note": a.note, "at": fmt_time(a.recorded_at)}
            )
    rows = _versions()
    source = current_app.extensions["outreach.model"]
    indexes: dict[str, list[dict[str, Any]]] = {}
    with db().session() as session:
        for row in rows:
            if "production" in row["aliases"] or row["serving"]:
                index = indexes.get(row["name"])
                if index is None:
                    index = indexes[row["name"]] = periods_index(session, row["name"])
                row["monitoring"] = board.monitoring_status(
                    session, row["name"], row["version"], _report_if_found, index=index
                )
            else:
                row["monitoring"] = None
    for row in rows:
        row["approvals"] = approvals.get((row["name"], row["version"]), [])
        row["options"] = board.options(row, user=g.principal.name)
        row["served"] = _why_served(row, source)
        row["label"] = verdict_label(row["decision"])
        wanted = row["awaiting_approval"] or "production" in row["aliases"]
        report = _report_if_found(row["audit_id"]) if wanted else None
        row["summary"] = summarise(report) if report else None
        # How reliable the gate was on this version's data (the report's simulated table).
        characteristics = (report or {}).get("operating_characteristics") or {}
        row["reliability"] = list(characteristics.get("sentences") or [])
    names = sorted({r["name"] for r in rows})
    return render_template(
        "oversight/releases.html",
        principal=g.principal,
        names=names,
        rows=sorted(rows, key=lambda r: (r["name"], -int(r["version"]))),
        problem=problem,
        typed_note=note,
    ), status


def _why_served(row: dict[str, Any], source: Any) -> tuple[bool, str]:
    """Whether a version is served now and why, in a sentence, from the registry's record and
    the service's own verified loading (the trust layer decides; this only reports it)."""
    current = source.current
    if current is not None and (current.name, current.version) == (row["name"], row["version"]):
        approved = f", approved by {row['approved_by']}" if row.get("approved_by") else ""
        return True, (
            f"Served: its audit {verdict_label(row['decision'])}{approved}, and its signed "
            "release statement matches the bytes being served."
        )
    if row.get("withdrawn_by") and "production" in row["aliases"]:
        return False, f"Not served: withdrawn by {row['withdrawn_by']}."
    if row.get("rejected_by"):
        return False, f"Never served: rejected by {row['rejected_by']}."
    if row.get("decision") == "FAIL":
        return False, "Never served: its audit failed."
    if not row.get("audit_id"):
        return False, "Never served: it has no audit."
    if row.get("awaiting_approval"):
        return False, "Not served yet: it waits for the board's decision."
    if "production" in row["aliases"]:
        if source.reason:
            return False, f"Not served: {source.reason}."
        return False, (
            "Not served yet: it is the production version, and the service loads it (checking "
            "its signed release statement) at its next check."
        )
    return False, "Not served: another version is the one in production."


@pages.post("/releases/<name>/<version>/decision")
@signed_in("decide_release")
def decide(name: str, version: str) -> ResponseReturnValue:
    """Approve or reject a release, with a note; recorded with who and when."""
    decision = request.form.get("decision", "")
    note = request.form.get("note", "").strip()
    known = {(r["name"], r["version"]) for r in list_versions(registry())}
    if (name, version) not in known:
        raise NotFoundError(f"There is no release {name[:120]} version {version[:20]}.")
    if decision not in ("approve", "reject"):
        message = "Choose to approve or to reject the release."
        return _releases_page(problem=(name, version, message), note=note[:MAX_NOTE], status=400)
    if not note or len(note) > MAX_NOTE:
        message = f"Write a note of 1 to {MAX_NOTE:,} characters explaining the decision."
        return _releases_page(problem=(name, version, message), note=note[:MAX_NOTE], status=400)
    approving = decision == "approve"
    try:
        promoted = approvals.decide(
            db(),
            registry(),
            name,
            version,
            trust=current_app.extensions["outreach.model"].trust(signing=True),
            decision="approve" if approving else "reject",
            by=g.principal.name,
            note=note,
        )
    except GateError as err:  # the lifecycle refused: said beside the form, nothing recorded
        message = err.message[0].upper() + err.message[1:] + "."
        return _releases_page(
            problem=(name, version, message), note=note[:MAX_NOTE], status=err.http_status
        )
    if approving:
        message = f"Approved {name} version {version}" + (
            "; it is now in production." if promoted else "."
        )
    else:
        message = f"Rejected {name} version {version}; it can never be served."
    flash(message)
    return redirect(url_for("oversight.releases"))


@pages.post("/releases/<name>/withdraw")
@signed_in("decide_release")
def withdraw(name: str) -> ResponseReturnValue:
    """The board's stop button, in two steps: the form asks for a note and shows what will
    happen on a confirmation page; confirming withdraws the model (signed, recorded, logged)."""
    note = request.form.get("note", "").strip()
    if name not in {r["name"] for r in list_versions(registry())}:
        raise NotFoundError(f"There is no registered model {name[:120]}.")
    version = production_version(registry(), name)
    if not note or len(note) > MAX_NOTE:
        message = f"Write a note of 1 to {MAX_NOTE:,} characters explaining the withdrawal."
        return _releases_page(problem=(name, "", message), note=note[:MAX_NOTE], status=400)
    if request.form.get("confirmed") != "yes":
        return render_template(
            "oversight/withdraw_confirm.html",
            principal=g.principal,
            name=name,
            version=version,
            note=note,
        )
    approvals.decide(
        db(),
        registry(),
        name,
        version,
        trust=current_app.extensions["outreach.model"].trust(signing=True),
        decision="withdraw",
        by=g.principal.name,
        note=note,
        role=g.principal.role,
        request_id=g.request_id,
    )
    flash(
        f"Withdrew {name}: nothing of it is served, and coordinators' lists are paused, until a "
        "new release passes or a version is approved again."
    )
    return redirect(url_for("oversight.releases"))


@pages.post("/releases/<name>/<version>/reaudit")
@signed_in("decide_release")
def request_reaudit(name: str, version: str) -> ResponseReturnValue:
    """Ask the analysts to audit a version again on recent data; recorded with who, when, why."""
    note = request.form.get("note", "").strip()
    known = {(r["name"], r["version"]) for r in list_versions(registry())}
    if (name, version) not in known:
        raise NotFoundError(f"There is no release {name[:120]} version {version[:20]}.")
    if not note or len(note) > MAX_NOTE:
        message = f"Write a note of 1 to {MAX_NOTE:,} characters saying why a re-audit is needed."
        return _releases_page(
            problem=(name, f"{version}/reaudit", message), note=note[:MAX_NOTE], status=400
        )
    approvals.request_reaudit(db(), name, version, by=g.principal.name, note=note)
    flash(
        f"Asked for a re-audit of {name} version {version}. The analysts see the request on "
        "their pages; the version is served as before until the board decides otherwise."
    )
    return redirect(url_for("oversight.releases") + f"#version-{name}-{version}")


@pages.get("/audits/<audit_id>")
@signed_in("audits")
def audit(audit_id: str) -> ResponseReturnValue:
    """An audit report: the same content as the HTML file, with its charts."""
    report = _report(audit_id)
    return render_template(
        "oversight/audit.html", principal=g.principal, report=report, body=render_body(report)
    )


@pages.get("/audits/<audit_id>/audit.json")
@signed_in("audits")
def audit_json(audit_id: str) -> ResponseReturnValue:
    return _report(audit_id)


@pages.get("/report.css")
def report_css() -> ResponseReturnValue:
    return CSS.read_text(), 200, {"Content-Type": "text/css; charset=utf-8"}


def _gated(report: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The report's disparities on its gated metrics, by (metric, attribute, group)."""
    gates = {(g_["metric"], g_["disparity"]) for g_ in report["policy"]["gates"]}
    return {
        (d["metric"], d["attribute"], d["group"]): d
        for d in report.get("disparities", [])
        if (d["metric"], d["kind"]) in gates
    }


def _charts(report: dict[str, Any]) -> list[Any]:
    attributes = list(dict.fromkeys(g_["attribute"] for g_ in report["groups"]))
    found = (gate_chart(report, gate, a) for gate in report["policy"]["gates"] for a in attributes)
    return [svg for svg in found if svg is not None]


@pages.get("/compare")
@signed_in("audits")
def compare() -> ResponseReturnValue:
    """Two releases' audits side by side: decisions, gated disparities and charts."""
    rows = [r for r in _versions() if r["audit_id"]]
    first, second = request.args.get("a", ""), request.args.get("b", "")
    if not first and not second and len(rows) >= 2:
        same = [r for r in rows if r["name"] == rows[-1]["name"]]
        pair = same[-2:] if len(same) >= 2 else rows[-2:]
        first, second = pair[0]["audit_id"], pair[1]["audit_id"]
    reports = [_report(a) for a in (first, second) if a]
    table: list[dict[str, Any]] = []
    gate_charts: list[list[Any]] = []
    if len(reports) == 2:
        found = [_gated(r) for r in reports]
        for key in sorted(set(found[0]) | set(found[1])):
            cells = [
                None
                if f.get(key) is None
                else {**f[key], "beyond": limit_check.beyond_report_gates(r, f[key])}
                for f, r in zip(found, reports, strict=True)
            ]
            table.append({"metric": key[0], "attribute": key[1], "group": key[2], "cells": cells})
        gate_charts = [_charts(r) for r in reports]
    return render_template(
        "oversight/compare.html",
        principal=g.principal,
        audits=rows,
        first=first,
        second=second,
        reports=reports,
        table=table,
        gate_charts=gate_charts,
        words=METRIC_WORDS,
    )


def _policy_text(report: dict[str, Any]) -> str | None:
    """The policy file's text, if it is still the one the audit recorded (same sha256)."""
    path = report["policy"].get("path")
    if not path or not Path(path).is_file():
        return None
    raw = Path(path).read_bytes()
    if hashlib.sha256(raw).hexdigest() != report["policy"]["sha256"]:
        return None
    return raw.decode("utf-8", errors="replace")


@pages.get("/policy")
@signed_in("policy")
def policy() -> ResponseReturnValue:
    """The policy each production model was audited under, readable, with its hash and history."""
    rows = [r for r in _versions() if r["audit_id"]]
    reports = {r["audit_id"]: _report_if_found(r["audit_id"]) for r in rows}
    missing = sorted(f"{r['name']} v{r['version']}" for r in rows if reports[r["audit_id"]] is None)
    in_force = []
    for name in sorted({r["name"] for r in rows}):
        production = [r for r in rows if r["name"] == name and "production" in r["aliases"]]
        report = reports[production[0]["audit_id"]] if production else None
        if production and report is not None:
            in_force.append(
                {
                    "name": name,
                    "version": production[0]["version"],
                    "policy": report["policy"],
                    "text": _policy_text(report),
                    "assessments": assessments_from_report(report),
                    "unassessed": assessments_from_report(report).problems(),
                }
            )
    history: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: r["created"]):
        found = reports[row["audit_id"]]
        if found is None:
            continue
        digest = found["policy"]["sha256"]
        entry = history.setdefault(
            digest,
            {
                "sha256": digest,
                "name": found["policy"]["name"],
                "first": row["created_text"],
                "releases": [],
            },
        )
        entry["last"] = row["created_text"]
        entry["releases"].append(f"{row['name']} v{row['version']}")
    return render_template(
        "oversight/policy.html",
        principal=g.principal,
        in_force=in_force,
        history=list(reversed(history.values())),
        missing=missing,
        frozen=current_app.extensions["outreach.model"].frozen,
    )


FULL_CHECK_SECONDS = 600


def _chain_status(force_full: bool) -> tuple[access_log.Verification, float]:
    """The chain's status: in full at most every ``FULL_CHECK_SECONDS`` (or when asked), and
    otherwise only the rows added since the last full check (linked to it), so the page stays
    fast as the log grows. Both check the signed checkpoints. A break, once found, is shown on
    every view until a full check passes; a full check also confirms the newest row an earlier
    check saw is still there. Returns the result and when the last full check ran."""
    from dataclasses import replace

    cache: dict[str, Any] = current_app.extensions.setdefault("outreach.chain_status", {})
    checkpoints = access_log.for_app(current_app).log
    now = time.time()
    full_at = float(cache.get("full_at", 0.0))
    last, broken = cache.get("last"), cache.get("broken")
    if force_full or now - full_at > FULL_CHECK_SECONDS or (last is None and broken is None):
        result = access_log.verify(db(), checkpoints=checkpoints, seen=cache.get("seen"))
        full_at = now
        total, signed = result.rows, result.checkpoints
    elif broken is not None:
        return broken, full_at
    else:
        result = access_log.verify(db(), after=last, checkpoints=checkpoints)
        total = int(cache.get("rows", 0)) + result.rows
        signed = int(cache.get("signed", 0)) + result.checkpoints
    shown = replace(result, rows=total, checkpoints=signed)
    if result.ok:
        seen = result.last or cache.get("seen")
        cache.update(
            full_at=full_at, last=result.last, rows=total, signed=signed, seen=seen, broken=None
        )
    else:
        cache.update(full_at=full_at, broken=shown)  # kept until a full check passes
    return shown, full_at


@pages.get("/access-log")
@signed_in("access_log")
def access_log_page() -> ResponseReturnValue:
    """The access log, newest first, with filters and the chain's verification status."""
    user = request.args.get("user", "")[:120]
    action = request.args.get("action", "")[:60]
    person = request.args.get("person", "")[:120]
    refused = request.args.get("refused", "") == "1"
    try:
        page = max(1, min(int(request.args.get("page", "1")), 1_000_000))
    except ValueError:
        page = 1
    statement = select(AccessLogRow)
    if user:
        statement = statement.where(AccessLogRow.user == user)
    if action:
        statement = statement.where(AccessLogRow.action == action)
    if refused:
        statement = statement.where(AccessLogRow.allowed.is_(False))
    if person:
        # The JSON list's text holds each id quoted; LIKE wildcards in the id are escaped.
        quoted = json.dumps(person)
        statement = statement.where(
            cast(AccessLogRow.subject_ids, Text).contains(quoted, autoescape=True)
        )
    with db().session() as session:
        total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
        rows = list(
            session.scalars(
                statement.order_by(AccessLogRow.id.desc())
                .limit(LOG_PAGE)
                .offset((page - 1) * LOG_PAGE)
            )
        )
        users = list(session.scalars(select(AccessLogRow.user).group_by(AccessLogRow.user)))
        actions = list(session.scalars(select(AccessLogRow.action).group_by(AccessLogRow.action)))
    verification, full_at = _chain_status(request.args.get("full") == "1")
    return render_template(
        "oversight/access_log.html",
        principal=g.principal,
        rows=rows,
        total=total,
        page=page,
        page_count=max(1, -(-total // LOG_PAGE)),
        users=sorted(users),
        actions=sorted(actions),
        filters={"user": user, "action": action, "person": person, "refused": refused},
        verification=verification,
        full_at=fmt_time(datetime.fromtimestamp(full_at, UTC)),
    )


# --- Requests for review of a listing (store.review_requests) -------------------------------------

REVIEWS_SHOWN = 200
#: What the buttons moving a request say.
REVIEW_VERBS = {"in_review": "Start the review", "resolved": "Resolve", "declined": "Decline"}
#: The page's choices of requests: those awaiting a decision (the default), one state, or all.
REVIEW_SHOWS = {"awaiting": "Awaiting a decision", **review_rules.STATES, "all": "Every state"}


@pages.get("/reviews")
@signed_in("review_list")
def reviews_page() -> ResponseReturnValue:
    """Requests for review: counts by group and month (the board only), and the requests with
    forms that move them."""
    return _reviews_page()


def _reviews_page(
    *, problem: tuple[int, str] | None = None, note: str = "", status: int = 200
) -> ResponseReturnValue:
    """The page; ``problem`` (request id, message) shows a refused move at the top and beside
    that request's form, with the note as it was typed."""
    show = request.args.get("show", "awaiting")
    show = show if show in REVIEW_SHOWS else "awaiting"
    month = request.args.get("month", "")
    try:
        month = review_rules.filed_month(month) if month else ""
    except BadInputError:
        month = ""
    states = {"awaiting": review_rules.AWAITING, "all": ()}.get(show, (show,))
    caller = Caller(g.principal, g.request_id, model_name())
    found = review_rules.list_requests(
        db(), caller, states=states, month_filed=month or None, limit=REVIEWS_SHOWN
    )
    summary = (
        review_rules.counts_by_group_and_month(
            db(), threshold=current_app.extensions["outreach.model"].disclosure_threshold()
        )
        if g.principal.may("review_summary")
        else None
    )
    return render_template(
        "oversight/reviews.html",
        principal=g.principal,
        summary=summary,
        requests=found.requests,
        total=found.total,
        show=show,
        shows=REVIEW_SHOWS,
        month=month,
        kinds=review_rules.KIND_NAMES,
        raisers=review_rules.RAISED_BY,
        states=review_rules.STATES,
        verbs=REVIEW_VERBS,
        when=fmt_time,
        problem=problem,
        typed_note=note,
    ), status


@pages.post("/reviews/<int:request_id>/state")
@signed_in("review_decide")
def move_review(request_id: int) -> ResponseReturnValue:
    """Move a request to the state its button names, with a note; kept with who and when."""
    note = request.form.get("note", "")
    try:
        moved = review_rules.transition(
            db(),
            Caller(g.principal, g.request_id, model_name()),
            request_id,
            request.form.get("state", ""),
            note,
        )
    except (BadInputError, ConflictError) as err:
        message = err.message + (f" ({'; '.join(err.details)})" if err.details else "")
        return _reviews_page(
            problem=(request_id, message), note=note[:MAX_NOTE], status=err.http_status
        )
    flash(f"Request {moved.id} is now {review_rules.STATES[moved.state].lower()}.")
    return redirect(url_for("oversight.reviews_page"))
