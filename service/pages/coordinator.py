"""Coordinators' pages: today's outreach list, a person's page, outcomes and opt-outs.

Every rule (areas, opt-outs, what is shown, the access-log row written first) lives in
:mod:`store.queue`; these views parse forms and render. Sensitive attributes are never read here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

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
from sqlalchemy.orm import Session

from audits.charts import SignedBar, signed_chart
from kernel.errors import BadInputError, NotFoundError
from model.counterfactual import CUTOFF_BAND, from_listing
from service import person_explanation as rules
from service.pages.common import db, fmt_time, model_name
from service.pages.security import signed_in
from store import queue as queue_rules
from store import review_requests
from store.db import OptOut, Outcome, QueueEntry
from store.queue import BANDS, MAX_ID, OUTCOMES, TO_CALL, Caller, ListFilters

pages = Blueprint("coordinator", __name__, url_prefix="/outreach")

F = TypeVar("F", bound=Callable[..., ResponseReturnValue])


def unless_paused(view: F) -> F:
    """While the model is paused (withdrawn by the board, or its attestation log does not
    verify: :meth:`lifecycle.model_source.ModelSource.pause`, the API's answer too), lists, people
    and outcomes are paused (503).

    Placed under ``signed_in``, so only a signed-in coordinator sees why. Opt-outs stay open: a
    person may always leave (or rejoin) the lists.
    """

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        pause = current_app.extensions["outreach.model"].pause()
        if pause is not None:
            page = render_template(
                "coordinator/paused.html",
                principal=g.principal,
                reason=pause.detail,
                code=pause.code,
            )
            return page, 503
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


PAGE_SIZE = 50
STATUS_FILTERS = {
    "new": "Not contacted yet",
    TO_CALL: "To call (not reached yet)",
    **OUTCOMES,
}
CHANGES_SHOWN = 25


def _caller() -> Caller:
    return Caller(g.principal, g.request_id, model_name())


@dataclass(frozen=True)
class Filters:
    area: str
    band: str
    status: str
    page: int

    @classmethod
    def from_args(cls, areas: list[str] | None = None) -> Filters:
        """The list's filters from the query string; ``areas``: the areas the list may be
        filtered by (``None``: any short area name, to carry the list's view through a
        person's page and back)."""
        area = request.args.get("area", "")
        known = area in areas if areas is not None else len(area) <= MAX_ID
        band = request.args.get("band", "")
        status = request.args.get("status", "")
        try:
            page = max(1, min(int(request.args.get("page", "1")), 100_000))
        except ValueError:
            page = 1
        return cls(
            area if known else "",
            band if band in BANDS else "",
            status if status in STATUS_FILTERS else "",
            page,
        )

    def query(self, **changes: Any) -> dict[str, Any]:
        values = {"area": self.area, "band": self.band, "status": self.status, "page": self.page}
        values.update(changes)
        return {k: v for k, v in values.items() if v != "" and not (k == "page" and v == 1)}


@dataclass(frozen=True)
class Changes:
    previous: str | None
    entered: list[str]
    left: list[str]
    reasons_changed: list[tuple[str, list[str], list[str]]]
    counts: tuple[int, int, int]


def _changes(session: Session, period: str, periods: list[str]) -> Changes:
    """Who entered and left the list (within the caller's areas) since the previous period's,
    and whose reasons changed."""
    earlier = [p for p in periods if p < period]
    if not earlier:
        return Changes(None, [], [], [], (0, 0, 0))
    previous = earlier[0]

    def top_features(p: str) -> dict[str, tuple[int, list[str]]]:
        found = queue_rules.scoped_list_ids(session, g.principal, model_name(), p)
        return {pid: (rank, (features or "").split(",")) for pid, (rank, features) in found.items()}

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
    """The period's ranked list within capacity and the coordinator's areas, with filters,
    pages and what changed."""
    name = model_name()
    with db().session() as session:
        periods = queue_rules.periods(session, name)
        period = request.args.get("period") or (periods[0] if periods else "")
        if periods and period not in periods:
            raise NotFoundError(f"There is no outreach list for {period[:20]}.")
        areas = queue_rules.areas_on_list(session, g.principal, name, period)
    filters = Filters.from_args(areas)

    def changes(session: Session, _shown: list[str]) -> tuple[list[str], Changes]:
        found = _changes(session, period, periods)
        ids = found.entered + found.left + [c[0] for c in found.reasons_changed]
        return ids, found

    listing, found = queue_rules.list_queue(
        db(),
        _caller(),
        period or None,
        limit=PAGE_SIZE,
        offset=(filters.page - 1) * PAGE_SIZE,
        filters=ListFilters(filters.area, filters.band, filters.status),
        action="list",
        also_shown=changes,
    )
    pages_total = max(1, math.ceil(listing.total / PAGE_SIZE))
    found = _in_plain_words(found or Changes(None, [], [], [], (0, 0, 0)))
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
        total=listing.total,
        entries=[_entry_view(entry, outcome) for entry, outcome in listing.rows],
        changes=found,
        no_areas=not g.principal.areas,
    )


def _in_plain_words(changes: Changes) -> Changes:
    """The changed reasons named as the spec names them in words, not by their column codes."""
    names = _plain_names()

    def words(features: list[str]) -> list[str]:
        return [names.get(f, f.replace("_", " ")) for f in features if f]

    return dataclasses.replace(
        changes,
        reasons_changed=[(p, words(b), words(n)) for p, b, n in changes.reasons_changed],
    )


#: The most rows a printed list holds (a month's list within one coordinator's areas is far
#: smaller; the cap keeps one request bounded).
PRINT_LIMIT = 5000


@pages.get("/print")
@signed_in("outreach_list")
@unless_paused
def print_list() -> ResponseReturnValue:
    """The whole filtered list of a month on paper for a phone round, with an empty column to
    write each call's outcome in; logged like every view of the list (action ``print``)."""
    name = model_name()
    with db().session() as session:
        periods = queue_rules.periods(session, name)
        period = request.args.get("period") or (periods[0] if periods else "")
        if periods and period not in periods:
            raise NotFoundError(f"There is no outreach list for {period[:20]}.")
        areas = queue_rules.areas_on_list(session, g.principal, name, period)
    filters = Filters.from_args(areas)
    listing, _ = queue_rules.list_queue(
        db(),
        _caller(),
        period or None,
        limit=PRINT_LIMIT,
        filters=ListFilters(filters.area, filters.band, filters.status),
        action="print",
    )
    return render_template(
        "coordinator/print.html",
        principal=g.principal,
        period=period,
        filters=filters,
        statuses=STATUS_FILTERS,
        total=listing.total,
        cut=listing.total > PRINT_LIMIT,
        entries=[_entry_view(entry, outcome) for entry, outcome in listing.rows],
    )


@pages.get("/find")
@signed_in("outreach_list")
@unless_paused
def find_person() -> ResponseReturnValue:
    """Find a person by id: their page, opened on their latest entry (it links their other
    months); an id not on a list in the caller's areas is not found, as everywhere."""
    person = queue_rules.person_id(request.args.get("person_id", "").strip())
    return redirect(url_for("coordinator.person", person_id=person))


def _entry_view(entry: QueueEntry, outcome: Outcome | None) -> dict[str, Any]:
    return {
        "id": entry.id,
        "rank": entry.rank,
        "lottery": entry.source == "lottery",
        "person_id": entry.person_id,
        "period": entry.period,
        "band": entry.band,
        "area": entry.area or "",
        "reasons": [
            {**r, "weight": rules.weight_words(r.get("contribution"))} for r in entry.reasons
        ],
        "services": list(dict.fromkeys(r["service"] for r in entry.reasons if r.get("service"))),
        "last": None
        if outcome is None
        else {
            "status": OUTCOMES.get(outcome.status, outcome.status),
            "at": fmt_time(outcome.recorded_at),
        },
    }


def _list_view() -> dict[str, Any]:
    """The list view a coordinator came from (its month, filters and page), carried through a
    person's page and its forms so that "back" returns to the same view."""
    view = Filters.from_args().query()
    month = request.args.get("period", "")
    if month:
        with contextlib.suppress(BadInputError):  # a malformed month is dropped, not kept
            view = {"period": queue_rules.period(month), **view}
    return view


@pages.get("/people/<path:person_id>")
@signed_in("outreach_list")
@unless_paused
def person(person_id: str) -> ResponseReturnValue:
    """One person's offer of help on one month's list (``?period=``, else their latest): band,
    reasons with a chart, history, outcome and opt-out.

    For someone who asked not to be contacted, only their contact preference is shown."""
    list_view = _list_view()
    month = request.args.get("period") or None
    view = queue_rules.show_person(db(), _caller(), person_id, month=month)
    if view.opted_out is not None or view.current is None:
        return render_template(
            "coordinator/person.html",
            principal=g.principal,
            person_id=view.person_id,
            opted_out=_opt_out_view(view.opted_out),
            entry=None,
            list_view=list_view,
            review_kinds=review_requests.KINDS,
            raisers=review_requests.RAISED_BY,
        )
    entries = {e.id: e for e in view.entries}
    reasons = view.current.reasons
    names = _plain_names()
    chart = signed_chart(
        [
            SignedBar(
                names.get(str(r["feature"]), str(r["feature"]).replace("_", " ")),
                float(r["contribution"]),
                r["text"],
            )
            for r in reasons
        ],
        title="What raised or lowered the estimate",
        value_words=rules.weight_words,
    )
    current = _entry_view(view.current, None)
    return render_template(
        "coordinator/person.html",
        principal=g.principal,
        person_id=view.person_id,
        chart=chart,
        outcomes=OUTCOMES,
        entry=current,
        list_view={**list_view, "period": current["period"]},
        periods=[
            {
                "period": e.period,
                "rank": e.rank,
                "lottery": e.source == "lottery",
                "band": e.band,
            }
            for e in view.entries[:12]
        ],
        history=[
            {
                "period": entries[o.entry_id].period,
                "status": OUTCOMES.get(o.status, o.status),
                "note": o.note,
                "by": o.recorded_by,
                "at": fmt_time(o.recorded_at),
            }
            for o in view.history
        ],
        opted_out=None,
        review_kinds=review_requests.KINDS,
        raisers=review_requests.RAISED_BY,
        changes=_what_would_change(view.current),
    )


def _plain_names() -> dict[str, str]:
    """Each feature of the served model in the spec's plain words (``feature_words``)."""
    serving = current_app.extensions["outreach.model"].current
    if serving is None:
        return {}
    return {f.name: rules.feature_words(f) for f in serving.model.features}


#: How many single changes the person page lists under "What would change this".
CHANGES_LISTED = 3


def _what_would_change(entry: QueueEntry) -> dict[str, Any]:
    """Up to three single changes that would move the listing across the cut-off, from what the
    queue stored (the score and the reasons' values), by the version that made the listing."""
    serving = current_app.extensions["outreach.model"].current
    lottery = entry.source == "lottery"
    if serving is None or serving.version != entry.model_version:
        return {
            "other_version": entry.model_version,
            "changes": [],
            "considered": [],
            "lottery": lottery,
        }
    model = serving.model
    names = {f.name: rules.feature_words(f) for f in model.features}
    changes = from_listing(model, score=entry.score, reasons=entry.reasons)
    return {
        "other_version": None,
        "changes": [c.to_dict() for c in changes if c.crosses][:CHANGES_LISTED],
        "considered": [names.get(c.feature, c.feature.replace("_", " ")) for c in changes],
        "off": entry.score >= model.cutoffs[CUTOFF_BAND],
        "lottery": lottery,
    }


def _opt_out_view(opted: OptOut | None) -> dict[str, str] | None:
    if opted is None:
        return None
    return {"at": fmt_time(opted.recorded_at), "by": opted.recorded_by}


@pages.post("/entries/<entry_id:entry_id>/outcome")
@signed_in("outcome")
@unless_paused
def record_outcome(entry_id: int) -> ResponseReturnValue:
    done = queue_rules.record_outcome(
        db(), _caller(), entry_id, request.form.get("status", ""), request.form.get("note", "")
    )
    flash(f"Recorded: {OUTCOMES[done.status]}.")
    return redirect(url_for("coordinator.person", person_id=done.person_id, **_list_view()))


@pages.post("/people/<path:person_id>/opt-out")
@signed_in("opt_out")
def opt_out(person_id: str) -> ResponseReturnValue:
    person = queue_rules.opt_out(db(), _caller(), person_id, request.form.get("reason", ""))
    flash("Recorded: this person asked not to be contacted. They are off every list from now on.")
    return redirect(url_for("coordinator.person", person_id=person, **_list_view()))


@pages.post("/people/<path:person_id>/opt-in")
@signed_in("opt_out")
def opt_in(person_id: str) -> ResponseReturnValue:
    person = queue_rules.opt_in(db(), _caller(), person_id, request.form.get("reason", ""))
    flash("Recorded: this person may be offered outreach again.")
    return redirect(url_for("coordinator.person", person_id=person, **_list_view()))


@pages.post("/people/<path:person_id>/review-request")
@signed_in("review_file")
def request_review(person_id: str) -> ResponseReturnValue:
    """File a request for review of the person's listing (open while outreach is paused: a
    person may always ask)."""
    form = request.form
    filed = review_requests.file_request(
        db(),
        _caller(),
        person_id,
        form.get("kind", ""),
        form.get("raised_by", ""),
        form.get("details", ""),
    )
    number = filed.request.id
    if filed.opt_out_recorded:
        flash(
            f"Request for review {number} sent. This person asked not to be contacted: they are "
            "off every list from now on."
        )
    elif filed.request.kind == "do_not_contact":
        flash(f"Request for review {number} sent (they had already asked not to be contacted).")
    else:
        flash(f"Request for review {number} sent to the oversight board.")
    return redirect(
        url_for("coordinator.person", person_id=filed.request.person_id, **_list_view())
    )
