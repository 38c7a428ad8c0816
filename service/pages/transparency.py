"""Transparency pages: the public tier-1 summary of the serving model, and each released
version's full record for the oversight board.

``GET /transparency`` needs no sign-in and shows no personal data: the ATRS tier-1 summary of the
version being served, generated from its attested release (:mod:`lifecycle.transparency_record`),
with the hashes it was generated from. JSON at ``GET /transparency.json`` (or ``/transparency`` with
``Accept: application/json``). When nothing is served it answers 503 and says so.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, g, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from mlflow.exceptions import MlflowException

from kernel.errors import BadInputError, OutreachError, UnavailableError
from lifecycle import transparency_record as transparency
from lifecycle.catalogue import report_sha256
from lifecycle.statements import refusal
from lifecycle.transparency_record import (
    load_settings,
    public_summary,
    render_body,
    settings_path,
    transparency_record,
)
from service.pages.common import registry
from service.pages.security import signed_in

pages = Blueprint("transparency", __name__)

#: Where the record's own styles live (beside the audit report's, which the record page also uses).
CSS_FILE = "transparency.css"
#: Records kept in memory (each verified when built; a changed log or report builds it again).
CACHED_RECORDS = 16
_lock = threading.Lock()


def _settings() -> dict[str, str]:
    """The deployment's transparency settings (its name, team, contact), if it wrote them."""
    path = settings_path(current_app.extensions["outreach.home"])
    try:
        return load_settings(path if path.is_file() else None)
    except BadInputError as err:  # the deployment's file, not the caller's input
        raise UnavailableError(
            "the deployment's transparency settings are invalid", details=err.details
        ) from err


def record_for(name: str, version: str) -> dict[str, Any]:
    """A version's record, built from its attested release (which verifies the version's bytes
    again); kept while its attestation log, audit report and the settings are unchanged."""
    home = current_app.extensions["outreach.home"]
    trust = current_app.extensions["outreach.model"].trust()
    settings = _settings()
    log = trust.log(name)
    stat = log.stat() if log.exists() else None
    audit_id = str((trust.standing(name, version).release or {}).get("audit_id", ""))
    key = (
        name,
        version,
        (stat.st_size, stat.st_mtime_ns) if stat else None,
        report_sha256(home.audits, audit_id) if audit_id else None,
        tuple(sorted(settings.items())),
    )
    cache: dict[Any, dict[str, Any]] = current_app.extensions.setdefault(
        "outreach.transparency", {}
    )
    with _lock:
        if key in cache:
            return cache[key]
    try:
        record = transparency_record(registry(), trust, name, version, settings=settings)
    except MlflowException as err:
        raise UnavailableError("the model registry cannot be reached; try again later") from err
    with _lock:
        while len(cache) >= CACHED_RECORDS:  # an old key never matches again: drop the oldest
            cache.pop(next(iter(cache)))
        cache[key] = record
    return record


def has_record(name: str, version: str) -> bool:
    """Whether the signed statements let ``version`` be served, so that it has a record (its
    bytes are checked again when the record is built)."""
    home = current_app.extensions["outreach.home"]
    try:
        state = current_app.extensions["outreach.model"].trust().state(name, None)
    except OutreachError:
        return False
    if not state.valid:  # an invalid log vouches for nothing (lifecycle.version_state)
        return False
    found = state.version(version).standing
    release = found.release or {}
    if not release:
        return False
    audit_id = str(release.get("audit_id", ""))
    attested = str(release.get("artifact_sha256", ""))
    return not refusal(found, version, attested, report_sha256(home.audits, audit_id))


@pages.app_context_processor
def _helpers() -> dict[str, Any]:
    return {"has_transparency_record": has_record}


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return (
        best == "application/json"
        and request.accept_mimetypes[best] > (request.accept_mimetypes["text/html"])
    )


def _public(as_json: bool) -> ResponseReturnValue:
    source = current_app.extensions["outreach.model"]
    serving = source.current
    problem = ""
    summary: dict[str, Any] | None = None
    if serving is None:
        problem = (
            f"No model is being served at the moment ({source.reason or 'no verified model'})."
        )
    else:
        try:
            summary = public_summary(record_for(serving.name, serving.version))
        except Exception as err:  # a refusal or an unreachable registry: 503, never a 500
            current_app.logger.error("no transparency record for %s: %s", serving.name, err)
            problem = "The record of the model being served cannot be verified at the moment."
    if summary is None:
        if as_json:
            error = {"code": "unavailable", "message": problem, "details": []}
            return jsonify({"error": error, "request_id": g.get("request_id", "")}), 503
        page = render_template(
            "transparency/summary.html", summary=None, problem=problem, contact=_contact(None)
        )
        return page, 503
    if as_json:
        return jsonify(summary)
    return render_template(
        "transparency/summary.html", summary=summary, problem="", contact=_contact(summary)
    )


def _contact(summary: dict[str, Any] | None) -> str:
    """Whom a person may contact: the deployment's contact setting, else the summary's email."""
    setting = current_app.config.get("CONTACT")
    if setting:
        return str(setting)
    field = ((summary or {}).get("tier_1") or {}).get("contact_email") or {}
    value = field.get("value") if isinstance(field, dict) else None
    return str(value) if value and value != transparency.AGENCY else ""


@pages.get("/transparency")
def summary() -> ResponseReturnValue:
    """The public summary of the serving model (HTML, or JSON when the client prefers it)."""
    return _public(_wants_json())


@pages.get("/transparency.json")
def summary_json() -> ResponseReturnValue:
    """The public summary of the serving model as JSON."""
    return _public(True)


@pages.get("/transparency.css")
def record_css() -> ResponseReturnValue:
    css = (Path(transparency.__file__).parent / "templates" / CSS_FILE).read_text()
    return css, 200, {"Content-Type": "text/css; charset=utf-8"}


@pages.get("/oversight/transparency/<name>/<version>")
@signed_in("releases")
def record_page(name: str, version: str) -> ResponseReturnValue:
    """A released version's full transparency record, for the oversight board."""
    record = record_for(name[:200], version[:20])
    return render_template(
        "transparency/record.html", principal=g.principal, record=record, body=render_body(record)
    )


@pages.get("/oversight/transparency/<name>/<version>/transparency.json")
@signed_in("releases")
def record_json(name: str, version: str) -> ResponseReturnValue:
    """The same record as JSON."""
    return jsonify(record_for(name[:200], version[:20]))
