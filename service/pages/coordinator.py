"""Coordinators' pages: today's outreach list, a person's page, outcomes and opt-outs.

Every page that shows a person writes its access-log row first (``common.logged``). Sensitive
attributes are never read here.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from audits.charts import SignedBar, signed_chart
from service.db import OptOut, Outcome, QueueEntry
from service.pages.common import db, fmt_time, logged, model_name, shown
from service.pages.security import signed_in
from service.queue import latest_outcomes, on_list

pages = Blueprint("coordinator", __name__, url_prefix="/outreach")

F = TypeVar("F", bound=Callable[..., ResponseReturnValue])


def unless_paused(view: F) -> F:
    """While the board has withdrawn the model, lists, people and outcomes are paused (503).

    Placed under ``signed_in``, so only a signed-in coordinator sees why. Opt-outs stay open: a
    person may always leave (or rejoin) the lists.
    """

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        reason = current_app.extensions["outreach.model"].withdrawn
        if reason:
            page = render_template("coordinator/paused.html", principal=g.principal, reason=reason)
            return page, 503
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


PAGE_SIZE = 50
OUTCOMES = {
    "contacted": "Contacted",
    "accepted": "Accepted help",
    "declined": "Declined, thank you",
    "unreachable": "Could not reach",
}
STATUS_FILTERS = {"new": "Not contacted yet", **OUTCOMES}
BANDS = ("priority", "elevated", "standard")
MAX_TEXT = 2000
CHANGES_SHOWN = 25


def _periods(session: Session, name: str) -> list[str]:
    return list(
        session.scalars(
            select(QueueEntry.period)
            .where(QueueEntry.model_name == name)
            .group_by(QueueEntry.period)
            .order_by(QueueEntry.period.desc())
        )
    )


@dataclass(frozen=True)
class Filters:
    area: str
    band: str
    status: str
    page: int

    @classmethod
    def from_args(cls, areas: list[str]) -> Filters:
        area = request.args.get("area", "")
        band = request.args.get("band", "")
        status = request.args.get("status", "")
        try:
            page = max(1, min(int(request.args.get("page", "1")), 100_000))
        except ValueError:
            page = 1
        return cls(
            area if area in areas else "",
            band if band in BANDS else "",
            status if status in STATUS_FILTERS else "",
            page,
        )

    def query(self, **changes: Any) -> dict[str, Any]:
        values = {"area": self.area, "band": self.band, "status": self.status, "page": self.page}
        values.update(changes)
        return {k: v for k, v in values.items() if v != "" and not (k == "page" and v == 1)}


def _filtered(statement: Any, filters: Filters, latest: Any) -> Any:
    if filters.area:
        statement = statement.where(QueueEntry.area == filters.area)
    if filters.band:
        statement = statement.where(QueueEntry.band == filters.band)
    if filters.status == "new":
        statement = statement.where(latest.c.last_id.is_(None))
    elif filters.status:
        statement = statement.where(Outcome.status == filters.status)
    return statement


@dataclass(frozen=True)
class Changes:
    previous: str | None
    entered: list[str]
    left: list[str]
    reasons_changed: list[tuple[str, list[str], list[str]]]
    counts: tuple[int, int, int]


def _changes(session: Session, name: str, period: str, periods: list[str]) -> Changes:
    """Who entered and left the list since the previous period's, and whose reasons changed."""
    earlier = [p for p in periods if p < period]
    if not earlier:
        return Changes(None, [], [], [], (0, 0, 0))
    previous = earlier[0]

    def top_features(p: str) -> dict[str, tuple[int, list[str]]]:
        rows = session.connection().execute(  # core rows: thousands of tuples, no ORM
            select(QueueEntry.person_id, QueueEntry.rank, QueueEntry.reason_features).where(
                *on_list(name, p)
            )
        )
        return {pid: (rank, (features or "").split(",")) for pid, rank, features in rows}

    now, before = top_features(period), top_features(previous)
    entered = sorted((p for p in now if p not in before), key=lambda p: now[p][0])
    left = sorted((p for p in before if p not in now), key=lambda p: before[p][0])
    changed = sorted(
        (p for p in now if p in before and now[p][1] != before[p][1]), key=lambda p: now[p][0]
    )
    return Changes(
        previous,
        entered[:CHANGES_SHOWN],
        left[:CHANGES_SHOWN],
        [(p, before[p][1], now[p][1]) for p in changed[:CHANGES_SHOWN]],
        (len(entered), len(left), len(changed)),
    )


@pages.get("/")
@signed_in("outreach_list")
@unless_paused
def outreach_list() -> ResponseReturnValue:
    """The period's ranked list within capacity, with filters, pages and what changed."""
    name = model_name()
    with db().session() as session:
        periods = _periods(session, name)
        period = request.args.get("period") or (periods[0] if periods else "")
        if periods and period not in periods:
            abort(404, f"There is no outreach list for {period}.")
        areas = [
            a
            for a in session.scalars(
                select(QueueEntry.area)
                .where(QueueEntry.model_name == name, QueueEntry.period == period)
                .group_by(QueueEntry.area)
                .order_by(QueueEntry.area)
            )
            if a
        ]
    filters = Filters.from_args(areas)
    latest = latest_outcomes(name)
    base = (
        select(QueueEntry, Outcome)
        .outerjoin(latest, latest.c.person_id == QueueEntry.person_id)
        .outerjoin(Outcome, Outcome.id == latest.c.last_id)
        .where(*on_list(name, period))
    )
    statement = _filtered(base, filters, latest)

    def read(session: Session) -> tuple[list[str], str, dict[str, Any]]:
        total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
        rows = session.execute(
            statement.order_by(QueueEntry.rank)
            .limit(PAGE_SIZE)
            .offset((filters.page - 1) * PAGE_SIZE)
        ).all()
        changes = _changes(session, name, period, periods)
        ids = [e.person_id for e, _o in rows] + changes.entered + changes.left
        ids += [c[0] for c in changes.reasons_changed]
        version = rows[0][0].model_version if rows else ""
        entries = [_entry_view(entry, outcome) for entry, outcome in rows]
        return ids, version, {"total": total, "entries": entries, "changes": changes}

    data = shown("list", read)
    pages_total = max(1, math.ceil(data["total"] / PAGE_SIZE))
    return render_template(
        "coordinator/list.html",
        principal=g.principal,
        period=period,
        periods=periods,
        areas=areas,
        bands=BANDS,
        statuses=STATUS_FILTERS,
        filters=filters,
        page_count=pages_total,
        **data,
    )


def _entry_view(entry: QueueEntry, outcome: Outcome | None) -> dict[str, Any]:
    return {
        "id": entry.id,
        "rank": entry.rank,
        "person_id": entry.person_id,
        "period": entry.period,
        "band": entry.band,
        "percentile": entry.percentile,
        "area": entry.area or "",
        "reasons": entry.reasons,
        "services": list(dict.fromkeys(r["service"] for r in entry.reasons if r.get("service"))),
        "last": None
        if outcome is None
        else {
            "status": OUTCOMES.get(outcome.status, outcome.status),
            "at": fmt_time(outcome.recorded_at),
        },
    }


@pages.get("/people/<person_id>")
@signed_in("outreach_list")
@unless_paused
def person(person_id: str) -> ResponseReturnValue:
    """One person's offer of help: band, reasons with a chart, history, outcome and opt-out."""
    name = model_name()
    person_id = person_id[:120]

    def read(session: Session) -> tuple[list[str], str, dict[str, Any] | None]:
        entries = list(
            session.scalars(
                select(QueueEntry)
                .where(QueueEntry.model_name == name, QueueEntry.person_id == person_id)
                .order_by(QueueEntry.period.desc())
            )
        )
        if not entries:
            return [person_id], "", None
        history = list(
            session.scalars(
                select(Outcome)
                .where(Outcome.entry_id.in_([e.id for e in entries]))
                .order_by(Outcome.id.desc())
            )
        )
        opted = session.get(OptOut, person_id)
        current = next((e for e in entries if e.rank > 0), entries[0])
        return (
            [person_id],
            current.model_version,
            {
                "entry": _entry_view(current, None),
                "periods": [
                    {"period": e.period, "rank": e.rank, "band": e.band} for e in entries[:12]
                ],
                "history": [
                    {
                        "period": next(e.period for e in entries if e.id == o.entry_id),
                        "status": OUTCOMES.get(o.status, o.status),
                        "note": o.note,
                        "by": o.recorded_by,
                        "at": fmt_time(o.recorded_at),
                    }
                    for o in history
                ],
                "opted_out": None
                if opted is None
                else {"at": fmt_time(opted.recorded_at), "by": opted.recorded_by},
            },
        )

    data = shown("person", read)
    if data is None:
        abort(404, "This person is not on any outreach list.")
    chart = signed_chart(
        [
            SignedBar(r["feature"].replace("_", " "), float(r["contribution"]), r["text"])
            for r in data["entry"]["reasons"]
        ],
        title="What raised or lowered the estimate",
    )
    return render_template(
        "coordinator/person.html",
        principal=g.principal,
        person_id=person_id,
        chart=chart,
        outcomes=OUTCOMES,
        **data,
    )


def _text(field: str) -> str:
    value = request.form.get(field, "")
    if len(value) > MAX_TEXT:
        abort(400, f"The {field} may be at most {MAX_TEXT} characters.")
    return value.strip()


@pages.post("/entries/<int:entry_id>/outcome")
@signed_in("outcome")
@unless_paused
def record_outcome(entry_id: int) -> ResponseReturnValue:
    status = request.form.get("status", "")
    if status not in OUTCOMES:
        abort(400, "Choose what happened: " + ", ".join(OUTCOMES.values()) + ".")
    note = _text("note")
    with db().session() as session:
        entry = session.get(QueueEntry, entry_id)
        if entry is None or entry.model_name != model_name():
            abort(404, "This list entry does not exist.")
        person_id = entry.person_id
        if session.get(OptOut, person_id) is not None:
            abort(409, "This person asked not to be contacted; no contact can be recorded.")

    def write(session: Session) -> None:
        session.add(
            Outcome(entry_id=entry_id, status=status, note=note, recorded_by=g.principal.name)
        )

    logged("outcome", [person_id], "", write)
    flash(f"Recorded: {OUTCOMES[status]}.")
    return redirect(url_for("coordinator.person", person_id=person_id))


@pages.post("/people/<person_id>/opt-out")
@signed_in("opt_out")
def opt_out(person_id: str) -> ResponseReturnValue:
    person_id = person_id[:120]
    reason = _text("reason")

    def write(session: Session) -> None:
        if session.get(OptOut, person_id) is None:
            session.add(OptOut(person_id=person_id, recorded_by=g.principal.name, reason=reason))

    logged("opt_out", [person_id], "", write)
    flash("Recorded: this person asked not to be contacted. They are off every list from now on.")
    return redirect(url_for("coordinator.person", person_id=person_id))


@pages.post("/people/<person_id>/opt-in")
@signed_in("opt_out")
def opt_in(person_id: str) -> ResponseReturnValue:
    person_id = person_id[:120]

    def write(session: Session) -> int:
        result: Any = session.execute(delete(OptOut).where(OptOut.person_id == person_id))
        return int(result.rowcount)

    if logged("opt_in", [person_id], "", write) == 0:
        abort(404, "This person had not asked to be left out.")
    flash("Recorded: this person may be offered outreach again.")
    return redirect(url_for("coordinator.person", person_id=person_id))
