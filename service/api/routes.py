"""The JSON API under ``/api/v1``: scores with reasons, the outreach queue, outcomes, opt-outs,
the serving model and its audits, health and metrics.

Every response that shows a person's score or queue entry writes its access-log row first, in
the same transaction; if that row cannot be written, nothing is shown.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.routing import BaseConverter, ValidationError

from kernel.errors import (
    BadInputError,
    ConflictError,
    DataValidationError,
    ForbiddenError,
    RateLimitedError,
    UnauthenticatedError,
    UnavailableError,
)
from lifecycle.model_source import ModelSource, Serving
from service import person_explanation as explanation
from service.api.json_body import read_json
from service.api.openapi import document
from store import access_log
from store import queue as queue_rules
from store import review_requests as review_rules
from store.accounts import Principal, authenticate
from store.db import Database, Outcome, QueueEntry

api = Blueprint("api", __name__, url_prefix="/api/v1")

PURPOSE = "outreach"
_WHOLE_NUMBER = re.compile(r"-?[0-9]+")


class EntryIdConverter(BaseConverter):
    """A queue entry id in a path: ASCII digits naming 1 to 2**63 - 1. Anything else (a sign,
    other scripts' digits, an id beyond 64 bits) matches no route: 404, never the database."""

    regex = r"[0-9]+"

    def to_python(self, value: str) -> int:
        digits = value.lstrip("0")
        if not digits or len(digits) > 19 or int(digits) > queue_rules.MAX_ENTRY_ID:
            raise ValidationError()
        return int(digits)

    def to_url(self, value: Any) -> str:
        return str(int(value))


@api.record_once
def _converters(state: Any) -> None:
    state.app.url_map.converters["entry_id"] = EntryIdConverter


def _db() -> Database:
    return current_app.extensions["outreach.db"]


def _source() -> ModelSource:
    return current_app.extensions["outreach.model"]


def not_paused() -> None:
    """Queue, outcome and score routes stop while the model is paused: withdrawn by the board,
    or its attestation log does not verify (:meth:`ModelSource.pause`, the one answer)."""
    pause = _source().pause()
    if pause is not None:
        raise UnavailableError(pause.message, details=[pause.detail], code=pause.code)


def serving() -> Serving:
    not_paused()
    current = _source().current
    if current is None:
        raise UnavailableError(
            "no verified model is being served",
            details=[_source().reason],  # public words; the detail is in the log
            code="model_unavailable",
        )
    return current


class RateLimiter:
    """Per-token sliding window (per worker process)."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit, self.window = limit, window
        self.calls: dict[str, deque[float]] = defaultdict(deque)

    def check(self, key: str) -> None:
        now = time.monotonic()
        calls = self.calls[key]
        while calls and now - calls[0] > self.window:
            calls.popleft()
        if len(calls) >= self.limit:
            retry = max(1, int(self.window - (now - calls[0])) + 1)
            raise RateLimitedError(
                f"more than {self.limit} requests a minute",
                headers={"Retry-After": str(retry)},
                code="rate_limited",
            )
        calls.append(now)


def requires(route: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Authenticate the bearer token and check the role table for ``route``."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer "):
                raise UnauthenticatedError(
                    "send 'Authorization: Bearer <token>'",
                    headers={"WWW-Authenticate": "Bearer"},
                    code="unauthenticated",
                )
            # Read on every request (no cache): a revoked token stops at once.
            principal = authenticate(_db(), header.removeprefix("Bearer ").strip())
            if principal is None:
                raise UnauthenticatedError(
                    "the token is not valid",
                    headers={"WWW-Authenticate": "Bearer"},
                    code="unauthenticated",
                )
            current_app.extensions["outreach.limiter"].check(principal.name)
            if not principal.may(route):
                raise ForbiddenError(
                    f"the {principal.role} role may not use {route}", code="forbidden"
                )
            g.principal = principal
            return view(*args, **kwargs)

        return wrapped

    return decorate


def _purpose(value: Any, *, action: str, ids: list[str]) -> None:
    """Personal data is only for outreach: a missing purpose is 400, another one 403 (logged)."""
    if value is None or value == "":
        raise BadInputError(
            "state the purpose of this request: 'outreach'",
            details=["purpose: required"],
            code="purpose_required",
        )
    if value != PURPOSE:
        # As the person typed it, but printable: no database text column holds a NUL.
        stated = "".join(c if c.isprintable() else "?" for c in str(value)[:40])
        _write_log(_log_fields(action, ids, "", purpose=stated, allowed=False))
        raise ForbiddenError(
            f"purpose {stated!r} is refused: this service is for outreach only",
            code="purpose_refused",
        )


def _log_fields(
    action: str, ids: list[str], version: str, *, purpose: str = PURPOSE, allowed: bool = True
) -> dict[str, Any]:
    principal: Principal = g.principal
    return {
        "user": principal.name,
        "role": principal.role,
        "action": action,
        "purpose": purpose,
        "subject_ids": ids,
        "model_version": version,
        "request_id": g.request_id,
        "allowed": allowed,
    }


def _appender() -> access_log.SqliteAppender | None:
    """The plain-SQLite access-log writer for this app's database (``None``: not SQLite)."""
    extensions = current_app.extensions
    if "outreach.appender" not in extensions:
        extensions["outreach.appender"] = access_log.SqliteAppender.for_database(_db())
    appender: access_log.SqliteAppender | None = extensions["outreach.appender"]
    return appender


def _write_log(fields: dict[str, Any]) -> None:
    """Write and commit one access-log row before anything is shown (the scores' hot path and
    refused purposes), through :class:`access_log.SqliteAppender` on SQLite. Conflicting writers
    retry (:func:`access_log.retrying`); if the row cannot be written, nothing is shown (503).
    The queue's actions log through :mod:`store.queue`, in their own transactions."""

    def attempt() -> None:
        appender = _appender()
        if appender is not None:
            appender.append(**fields)
            return
        with _db().transaction() as connection:
            access_log.append(connection, **fields)

    access_log.retrying(attempt)


@api.before_app_request
def _request_id() -> None:
    g.request_id = uuid.uuid4().hex[:16]
    g.started = time.perf_counter()


@api.after_app_request
def _stamp(response: Response) -> Response:
    response.headers["X-Request-ID"] = getattr(g, "request_id", "")
    if request.path.startswith("/api/"):
        # Scores, queues and audits are personal data: no browser or proxy keeps a copy.
        response.headers["Cache-Control"] = "no-store"
    metrics = current_app.extensions.get("outreach.metrics")
    if metrics is not None and request.endpoint:
        metrics.observe(
            request.endpoint,
            response.status_code,
            time.perf_counter() - getattr(g, "started", time.perf_counter()),
        )
    return response


@api.post("/score")
@requires("score")
def score() -> Any:
    """Scores, bands, percentiles and reasons for 1 to N records."""
    payload = read_json()
    unknown = sorted(set(payload) - {"purpose", "records"})
    if unknown:
        raise BadInputError(
            "unknown fields", details=[f"{k}: unknown field" for k in unknown], code="bad_input"
        )
    records = payload.get("records")
    limit = current_app.config["MAX_RECORDS"]
    if not isinstance(records, list) or not records:
        raise BadInputError(
            "'records' must be a non-empty list",
            details=["records: required, 1 or more"],
            code="bad_input",
        )
    if len(records) > limit:  # the documented maxItems: a schema violation like any other (400)
        raise BadInputError(
            f"at most {limit} records per request",
            details=[f"records: {len(records)} given, at most {limit}"],
            code="too_many_records",
        )
    ids: list[str] = []
    problems: list[str] = []
    for i, record in enumerate(records):
        value = record.get("id") if isinstance(record, dict) else None
        try:  # the one id rule (store.queue.person_id)
            ids.append(queue_rules.person_id(value, field=f"records[{i}].id"))
        except BadInputError:
            problems.append(
                f"records[{i}].id: required, a string or an integer of 1 to "
                f"{queue_rules.MAX_ID} characters"
            )
            ids.append("")
    opted = queue_rules.opted_out_among(_db(), ids) if not problems else set()
    if opted:  # an opt-out means not scored: the request is refused before any score
        raise ConflictError(
            "a person in the records opted out of outreach: they are not scored",
            details=[f"records[{i}].id: opted out" for i, p in enumerate(ids) if p in opted],
            code="opted_out",
        )
    current = serving()
    try:
        batch = current.model.score_records(records, allowed_extra={"id"})
    except DataValidationError as err:
        raise BadInputError(
            err.message, details=problems + list(err.details), code="invalid_records"
        ) from err
    if problems:
        raise BadInputError("the records are invalid", details=problems, code="invalid_records")
    _purpose(payload.get("purpose"), action="score", ids=ids)
    results = [
        {
            "id": record["id"],
            "score": round(score, 6),
            "percentile": round(percentile, 1),
            "band": band,
            "reasons": reasons,
        }
        for record, score, percentile, band, reasons in zip(
            records,
            batch.scores.tolist(),
            batch.percentiles.tolist(),
            batch.bands.tolist(),
            current.model.reason_dicts(batch),
            strict=True,
        )
    ]
    _write_log(_log_fields("score", ids, current.version))
    metrics = current_app.extensions.get("outreach.metrics")
    if metrics is not None:
        metrics.scored(current.name, current.version, len(results))
    return jsonify(
        {
            "purpose": PURPOSE,
            "model": current.block(),
            "results": results,
            "request_id": g.request_id,
        }
    )


def _int_arg(name: str, default: int, *, low: int, high: int) -> int:
    """A whole-number query parameter (ASCII digits, an optional minus), given at most once,
    from ``low`` to ``high``; ``default`` when absent."""
    given = request.args.getlist(name)
    if not given:
        return default
    if len(given) > 1:
        raise BadInputError(
            f"'{name}' may be given once", details=[f"{name}: given {len(given)} times"]
        )
    raw = given[0]
    if not _WHOLE_NUMBER.fullmatch(raw):
        raise BadInputError(
            f"'{name}' must be a whole number", details=[f"{name}: {raw[:40]!r}"], code="bad_input"
        )
    if len(raw.lstrip("-")) > 18 or not low <= int(raw) <= high:
        raise BadInputError(
            f"'{name}' must be between {low} and {high}",
            details=[f"{name}: {raw[:40]}"],
            code="bad_input",
        )
    return int(raw)


def entry_dict(entry: QueueEntry, last: Outcome | None) -> dict[str, Any]:
    return {
        "entry_id": entry.id,
        "rank": entry.rank,
        "person_id": entry.person_id,
        "period": entry.period,
        "score": entry.score,
        "percentile": entry.percentile,
        "band": entry.band,
        "reasons": entry.reasons,
        "model": {
            "name": entry.model_name,
            "version": entry.model_version,
            "audit_id": entry.audit_id,
        },
        "last_outcome": None
        if last is None
        else {
            "status": last.status,
            "note": last.note,
            "at": last.recorded_at.isoformat(),
        },
    }


def _caller() -> queue_rules.Caller:
    return queue_rules.Caller(g.principal, g.request_id, _source().name)


def _fields(payload: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise BadInputError(
            f"the {what} has unknown fields", details=[f"{k}: unknown field" for k in unknown]
        )


@api.get("/queue")
@requires("queue")
def queue() -> Any:
    """The period's ranked outreach list within capacity and the caller's areas, opted-out
    people excluded."""
    not_paused()
    limit = _int_arg("limit", 50, low=1, high=1000)
    offset = _int_arg("offset", 0, low=0, high=10_000_000)
    raw_period = request.args.get("period")
    period = queue_rules.period(raw_period) if raw_period else None
    _purpose(request.args.get("purpose"), action="queue", ids=[])
    listing, _ = queue_rules.list_queue(_db(), _caller(), period, limit=limit, offset=offset)
    return jsonify(
        {
            "purpose": PURPOSE,
            "period": listing.period,
            "limit": limit,
            "offset": offset,
            "total": listing.total,
            "entries": [entry_dict(entry, last) for entry, last in listing.rows],
            "request_id": g.request_id,
        }
    )


@api.post("/queue/<entry_id:entry_id>/outcome")
@requires("outcome")
def outcome(entry_id: int) -> Any:
    """Record what happened when outreach was offered."""
    not_paused()
    payload = read_json()
    _fields(payload, {"purpose", "status", "note"}, "outcome")
    queue_rules.outcome_status(payload.get("status"))
    queue_rules.free_text(payload.get("note"), field="note")
    _purpose(payload.get("purpose"), action="outcome", ids=[])
    done = queue_rules.record_outcome(
        _db(), _caller(), entry_id, payload.get("status"), payload.get("note")
    )
    return jsonify(
        {
            "outcome_id": done.outcome_id,
            "entry_id": done.entry_id,
            "status": done.status,
            "request_id": g.request_id,
        }
    ), 201


@api.post("/opt-outs")
@requires("opt_out")
def add_opt_out() -> Any:
    """A person asked not to be contacted: they leave every list from now on."""
    payload = read_json()
    _fields(payload, {"purpose", "person_id", "reason"}, "opt-out")
    person = queue_rules.person_id(payload.get("person_id"))
    queue_rules.free_text(payload.get("reason"), field="reason")
    _purpose(payload.get("purpose"), action="opt_out", ids=[person])
    queue_rules.opt_out(_db(), _caller(), person, payload.get("reason"))
    return jsonify({"person_id": person, "opted_out": True, "request_id": g.request_id}), 201


@api.delete("/opt-outs/<path:person_id>")
@requires("opt_out")
def remove_opt_out(person_id: str) -> Any:
    """The person asked to be offered outreach again (a JSON body with the reason)."""
    payload = read_json()
    _fields(payload, {"purpose", "reason"}, "opt-in")
    person = queue_rules.person_id(person_id)
    queue_rules.free_text(payload.get("reason"), field="reason", required=True)
    _purpose(payload.get("purpose"), action="opt_in", ids=[person])
    queue_rules.opt_in(_db(), _caller(), person, payload.get("reason"))
    return Response(status=204)


@api.get("/people/<path:person_id>/explanation")
@requires("explanation")
def person_explanation(person_id: str) -> Any:
    """The explanation a person can be given (service.person_explanation): the plain-language text
    and the fields it says, for their latest listed entry; logged as ``explanation``."""
    not_paused()
    person = queue_rules.person_id(person_id)
    _purpose(request.args.get("purpose"), action=explanation.ACTION, ids=[person])
    found = explanation.explain_person(
        _db(),
        _caller(),
        person,
        versions=explanation.for_app(current_app),
        contact=explanation.contact_for(current_app),
    )
    return jsonify({"purpose": PURPOSE, **found.to_dict(), "request_id": g.request_id})


# --- Requests for review of a listing (store.review_requests) -------------------------------------


def review_dict(view: review_rules.RequestView) -> dict[str, Any]:
    """A request for review as the API shows it: never anyone's sensitive attributes."""
    return {
        "id": view.id,
        "person_id": view.person_id,
        "model": {"name": view.model_name},
        "period": view.period,
        "entry_id": view.entry_id,
        "kind": view.kind,
        "raised_by": view.raised_by,
        "details": view.details,
        "state": view.state,
        "next_states": list(view.next_states),
        "filed_by": view.filed_by,
        "created_at": view.created_at.isoformat(),
        "updated_at": view.updated_at.isoformat(),
        "history": [
            {"state": e.state, "note": e.note, "by": e.by, "at": e.at.isoformat()}
            for e in view.history
        ],
    }


@api.post("/review-requests")
@requires("review_file")
def file_review_request() -> Any:
    """A coordinator files a request for review of a person's listing (wrong data, or the
    person asked not to be contacted, which also takes them off every list)."""
    payload = read_json()
    _fields(payload, {"purpose", "person_id", "kind", "raised_by", "details"}, "review request")
    person = queue_rules.person_id(payload.get("person_id"))
    review_rules.request_kind(payload.get("kind"))
    review_rules.who_raised(payload.get("raised_by"))
    queue_rules.free_text(payload.get("details"), field="details")
    _purpose(payload.get("purpose"), action="review_request", ids=[person])
    filed = review_rules.file_request(
        _db(),
        _caller(),
        person,
        payload.get("kind"),
        payload.get("raised_by"),
        payload.get("details"),
    )
    return jsonify(
        {
            **review_dict(filed.request),
            "opt_out_recorded": filed.opt_out_recorded,
            "request_id": g.request_id,
        }
    ), 201


@api.get("/review-requests")
@requires("review_list")
def review_requests() -> Any:
    """Requests for review, newest first, with their history (filter by state and month)."""
    limit = _int_arg("limit", 100, low=1, high=1000)
    offset = _int_arg("offset", 0, low=0, high=10_000_000)
    state = request.args.get("state") or ""
    month = request.args.get("month") or ""
    states = [review_rules.request_state(state)] if state else []
    if month:
        review_rules.filed_month(month)
    _purpose(request.args.get("purpose"), action="review_requests", ids=[])
    found = review_rules.list_requests(
        _db(), _caller(), states=states, month_filed=month or None, limit=limit, offset=offset
    )
    return jsonify(
        {
            "purpose": PURPOSE,
            "state": state or None,
            "month": month or None,
            "limit": limit,
            "offset": offset,
            "total": found.total,
            "requests": [review_dict(view) for view in found.requests],
            "request_id": g.request_id,
        }
    )


@api.post("/review-requests/<request_id>/state")
@requires("review_decide")
def move_review_request(request_id: str) -> Any:
    """Move a request to its next state (in review, resolved or declined), with a note."""
    number = review_rules.request_number(request_id)
    payload = read_json()
    _fields(payload, {"purpose", "state", "note"}, "state change")
    review_rules.request_state(payload.get("state"))
    queue_rules.free_text(payload.get("note"), field="note", required=True)
    _purpose(payload.get("purpose"), action="review_transition", ids=[])
    moved = review_rules.transition(
        _db(), _caller(), number, payload.get("state"), payload.get("note")
    )
    return jsonify({**review_dict(moved), "request_id": g.request_id})


@api.get("/review-requests/summary")
@requires("review_summary")
def review_summary() -> Any:
    """Requests counted by month, kind, state and sensitive group: aggregates only, small
    counts withheld."""
    summary = review_rules.counts_by_group_and_month(
        _db(), threshold=_source().disclosure_threshold()
    )

    def row(found: review_rules.CountRow) -> dict[str, Any]:
        return {
            "month": found.month,
            "kind": found.kind,
            "state": found.state,
            "total": found.total,
        }

    return jsonify(
        {
            "threshold": summary.threshold,
            "rows": [row(r) for r in summary.totals],
            "attributes": [
                {
                    "attribute": a.attribute,
                    "groups": list(a.groups),
                    "rows": [
                        {
                            **row(r),
                            "counts": [
                                {"group": g_, "count": n, "withheld": n is None}
                                for g_, n in zip(a.groups, r.counts, strict=True)
                            ],
                        }
                        for r in a.rows
                    ],
                }
                for a in summary.attributes
            ],
            "request_id": g.request_id,
        }
    )


@api.get("/model")
@requires("model")
def model_info() -> Any:
    """The serving model, its audit, and the input schema a record must follow."""
    current = serving()
    return jsonify(
        {
            **current.block(),
            "candidate": current.model.candidate,
            "label": current.model.label_description,
            "capacity": current.model.capacity,
            "input_schema": current.model.input_schema(),
            "request_id": g.request_id,
        }
    )


@api.get("/audits")
@requires("audits")
def audits() -> Any:
    """Every registered version's audit decision and its state now (from the signed
    statements, :mod:`lifecycle.version_state`; never from registry tags)."""
    from lifecycle.verified_loading import version_states

    source = _source()
    rows = version_states(source.registry(), source.name, trust=source.trust())
    return jsonify({"audits": [r for r in rows if r["audit_id"]], "request_id": g.request_id})


@api.get("/audits/<audit_id>")
@requires("audits")
def audit(audit_id: str) -> Any:
    """One audit report (the JSON source of truth)."""
    from lifecycle.catalogue import read_report

    return jsonify(read_report(_source().registry(), audit_id))


@api.get("/monitoring")
@requires("monitoring")
def monitoring() -> Any:
    """After release, aggregates only: without ``period``, the scored periods; with it, that
    period's estimates, drift, funnel, realised results and evaluation arm, with warnings."""
    from kernel.errors import OutreachError
    from lifecycle.catalogue import read_report
    from monitoring.period_report import period_document, periods_index

    name = _source().name
    period = request.args.get("period")
    with _db().session() as session:
        if period is None:
            return jsonify(
                {"model": name, "periods": periods_index(session, name), "request_id": g.request_id}
            )
        queue_rules.period(period)
        registry = _source().registry()

        def report_for(audit_id: str) -> dict[str, Any] | None:
            try:
                return read_report(registry, audit_id)
            except OutreachError:
                return None

        document = period_document(session, name, period, report_for)
    return jsonify({**document, "request_id": g.request_id})


@api.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok"})


@api.get("/readyz")
def readyz() -> Any:
    # Anyone may ask: the reasons are the loader's public words; the detail (paths, URIs, the
    # registry's own error) is in the log and on the signed-in pages.
    source = _source()
    current = source.current
    if source.alarm:
        return jsonify(
            {"status": "log_invalid", "code": "attestation_log_invalid", "problem": source.reason}
        ), 503
    if source.withdrawn:
        return jsonify({"status": "withdrawn", "problem": source.reason}), 503
    if current is None:
        return jsonify({"status": "not ready", "problem": source.reason}), 503
    ready: dict[str, Any] = {
        "status": "degraded" if current.degraded else "ready",
        "model": current.block(),
    }
    if current.degraded:
        ready["problem"] = source.reason
    return jsonify(ready)


@api.get("/metrics")
def metrics() -> Any:
    return current_app.extensions["outreach.metrics"].response()


@api.get("/openapi.json")
def openapi() -> Any:
    current = _source().current
    return jsonify(
        document(current.model if current else None, max_records=current_app.config["MAX_RECORDS"])
    )
