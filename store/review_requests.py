"""Requests for review of a listing, and the one rule for each action on them.

A person (through a coordinator, by phone or letter) or the coordinator themself may ask for a
listing to be looked at again: some of the data about the person is wrong, or the person asked
not to be contacted. Called by the API and the pages alike:

- :func:`file_request`: a coordinator files a request about a person on a list in their areas,
  under the same rule and with the same logged 404 as the person's page (:mod:`store.queue`).
  It attaches to the person's latest queue entry of the serving model (its model, period and
  id). A ``do_not_contact`` request also records the opt-out, in the same transaction (someone
  who had already opted out stays so, and the request is filed all the same).
- :func:`transition`: the oversight board (or an admin) moves a request ``open`` ->
  ``in_review`` -> ``resolved`` or ``declined``, or from ``open`` straight to either, with a
  note. Any other move is a 409; an unknown request a 404. Every state a request enters is kept
  with who moved it and why (``review_request_events``, append-only).
- :func:`list_requests`: the requests, with their history, for the board (no sensitive
  attribute of anyone).
- :func:`counts_by_group_and_month`: aggregates only.

Filing, listing and moving read or write a person's data: each writes its access-log row in the
same transaction (:func:`store.queue.logged`); refusals are logged with ``allowed = False``.

**Counts by group.** Per month filed (``YYYY-MM``, UTC), kind and state: how many requests, and
per sensitive attribute how many came from each group of the request's queue entry
(``entry_groups``; ``unknown`` when the entry has no group, or is gone). So that no one is
singled out, small counts are withheld by the one rule of :mod:`audits.disclosure` (the
threshold is the serving policy's ``min_group_size``, passed in by the caller): a group's count
below it is withheld, and further non-zero cells of the same row and attribute, smallest first,
until the withheld cells are at least two and add up to at least the threshold, so the row's
total (which the list of requests shows anyway) cannot give a small count back. Where that
cannot be done, the attribute's whole row is withheld.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from audits import disclosure
from kernel.errors import BadInputError, ConflictError, NotFoundError
from model import rules
from store import access_log
from store import queue as queue_rules
from store.db import Database, EntryGroup, ReviewRequest, ReviewRequestEvent, utcnow
from store.queue import Caller, RefusalError

#: What a request is about: stored value -> the words people read.
KINDS: dict[str, str] = {
    "wrong_data": "Some of the data about them is wrong",
    "do_not_contact": "They asked not to be contacted",
}
#: The same, short, for tables.
KIND_NAMES: dict[str, str] = {"wrong_data": "Wrong data", "do_not_contact": "Do not contact"}
#: Who raised it.
RAISED_BY: dict[str, str] = {
    "person": "The person asked (by phone, letter or in person)",
    "coordinator": "The coordinator noticed it",
}
STATES: dict[str, str] = {
    "open": "Open",
    "in_review": "In review",
    "resolved": "Resolved",
    "declined": "Declined",
}
#: The only moves a request can make.
NEXT_STATES: dict[str, tuple[str, ...]] = {
    "open": ("in_review", "resolved", "declined"),
    "in_review": ("resolved", "declined"),
    "resolved": (),
    "declined": (),
}
#: Requests not yet decided.
AWAITING = ("open", "in_review")
#: The group of a request whose entry has no group for an attribute (or is gone).
UNKNOWN = "unknown"
#: A request id: ASCII digits naming 1 to 2**63 - 1 (as a queue entry's).
MAX_REQUEST_ID = queue_rules.MAX_ENTRY_ID
_DIGITS = re.compile("[0-9]+")
#: The text ``free_text(..., required=True)`` takes, as a JSON Schema pattern: no NUL, and one
#: character at least that ``str.strip`` keeps (``str.isspace`` is false for it).
REQUIRED_TEXT_PATTERN = (
    "^[^\\u0000]*"
    "[^\\u0000\\t-\\r\\u001c-\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000]"
    "[^\\u0000]*$"
)


# --- Validation ---------------------------------------------------------------------------------


def _one_of(value: Any, choices: Mapping[str, str], field: str, what: str) -> str:
    if not isinstance(value, str) or value not in choices:  # a list or object is unhashable
        raise BadInputError(
            f"the {what} is not one of those known",
            details=[f"{field}: must be one of {', '.join(choices)}"],
        )
    return value


def request_kind(value: Any) -> str:
    return _one_of(value, KINDS, "kind", "kind of request")


def who_raised(value: Any) -> str:
    return _one_of(value, RAISED_BY, "raised_by", "person who raised the request")


def request_state(value: Any) -> str:
    return _one_of(value, STATES, "state", "state")


def filed_month(value: Any) -> str:
    """A month filed, as ``YYYY-MM``, by the one month rule (:func:`model.rules.month_problem`)."""
    problem = rules.month_problem(value)
    if problem is not None:
        raise BadInputError(
            "a month is written YYYY-MM",
            details=[f"month: {problem}"],
            code="invalid_month",
        )
    return str(value)


def request_number(value: str | int) -> int:
    """A request id from a path: 1 to 2**63 - 1 in ASCII digits; anything else names nothing
    (404, without reaching the database)."""
    text = str(value)
    digits = text.lstrip("0")
    if not _DIGITS.fullmatch(text) or not digits or len(digits) > 19:
        raise NotFoundError("no such review request", code="not_found")
    if int(digits) > MAX_REQUEST_ID:
        raise NotFoundError("no such review request", code="not_found")
    return int(digits)


# --- What is read -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    state: str
    note: str
    by: str
    at: datetime


@dataclass(frozen=True)
class RequestView:
    """A request as the board and its filer see it: never anyone's sensitive attributes."""

    id: int
    person_id: str
    model_name: str
    period: str
    entry_id: int | None
    kind: str
    raised_by: str
    details: str
    state: str
    filed_by: str
    created_at: datetime
    updated_at: datetime
    history: tuple[Event, ...]

    @property
    def next_states(self) -> tuple[str, ...]:
        return NEXT_STATES[self.state]


def _view(row: ReviewRequest, events: Iterable[ReviewRequestEvent]) -> RequestView:
    return RequestView(
        id=row.id,
        person_id=row.person_id,
        model_name=row.model_name,
        period=row.period,
        entry_id=row.entry_id,
        kind=row.kind,
        raised_by=row.raised_by,
        details=row.details,
        state=row.state,
        filed_by=row.filed_by,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
        history=tuple(Event(e.state, e.note, e.by, _utc(e.at)) for e in events),
    )


def _utc(moment: datetime) -> datetime:
    """SQLite keeps no zone; everything is stored in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _histories(session: Session, ids: Sequence[int]) -> dict[int, list[ReviewRequestEvent]]:
    found: dict[int, list[ReviewRequestEvent]] = defaultdict(list)
    if ids:
        for event in session.scalars(
            select(ReviewRequestEvent)
            .where(ReviewRequestEvent.request_id.in_(ids))
            .order_by(ReviewRequestEvent.id)
        ):
            found[event.request_id].append(event)
    return found


# --- Actions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filed:
    request: RequestView
    #: Whether filing recorded a new opt-out (``do_not_contact`` for someone not yet opted out).
    opt_out_recorded: bool


def file_request(
    db: Database, caller: Caller, person: Any, kind: Any, raised_by: Any, details: Any
) -> Filed:
    """A coordinator files a request about a person on a list in their areas (else a logged
    404); ``do_not_contact`` also takes the person off every list, in the same transaction."""
    person = queue_rules.person_id(person)
    what = request_kind(kind)
    who = who_raised(raised_by)
    text = queue_rules.free_text(details, field="details")

    def work(session: Session) -> tuple[list[str], str, Filed]:
        latest = queue_rules.person_entries(session, caller, person)[0]
        now = utcnow()
        row = ReviewRequest(
            person_id=person,
            model_name=latest.model_name,
            period=latest.period,
            entry_id=latest.id,
            kind=what,
            raised_by=who,
            details=text,
            state="open",
            filed_by=caller.principal.name,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        session.flush()
        recorded, note = False, "filed"
        if what == "do_not_contact":
            reason = f"review request {row.id}" + (f": {text}" if text else "")
            recorded = queue_rules.add_opt_out(session, caller, person, reason)
            if recorded:  # the opt-out is an action on the person of its own, logged as one
                access_log.append(session, **queue_rules.log_fields(caller, "opt_out", [person]))
                note = "filed; the person was taken off every list"
            else:
                note = "filed; the person had already asked not to be contacted"
        event = ReviewRequestEvent(
            request_id=row.id, state="open", note=note, by=caller.principal.name, at=now
        )
        session.add(event)
        session.flush()
        return [person], latest.model_version, Filed(_view(row, [event]), recorded)

    return queue_rules.logged(db, caller, "review_request", work)


def transition(db: Database, caller: Caller, request_id: int, to: Any, note: Any) -> RequestView:
    """Move a request to state ``to`` with a note (required), kept in its history with who
    moved it. A move :data:`NEXT_STATES` does not allow is a 409; an unknown id a 404 (both
    logged as refused)."""
    target = request_state(to)
    text = queue_rules.free_text(note, field="note", required=True)

    def work(session: Session) -> tuple[list[str], str, RequestView]:
        row = (
            session.get(ReviewRequest, request_id, with_for_update=True)
            if 0 < request_id <= MAX_REQUEST_ID
            else None
        )
        if row is None:
            raise RefusalError([], NotFoundError("no such review request", code="not_found"))
        allowed = NEXT_STATES[row.state]
        if target not in allowed:
            onward = f"it can move to {' or '.join(allowed)}" if allowed else "it is closed"
            raise RefusalError(
                [row.person_id],
                ConflictError(
                    f"this request is {row.state}: {onward}",
                    details=[f"state: {row.state} -> {target} is not allowed"],
                    code="invalid_transition",
                ),
            )
        now = utcnow()
        row.state, row.updated_at = target, now
        session.add(
            ReviewRequestEvent(
                request_id=row.id, state=target, note=text, by=caller.principal.name, at=now
            )
        )
        session.flush()
        return [row.person_id], "", _view(row, _histories(session, [row.id])[row.id])

    return queue_rules.logged(db, caller, "review_transition", work)


@dataclass(frozen=True)
class RequestList:
    total: int
    requests: list[RequestView]


def list_requests(
    db: Database,
    caller: Caller,
    *,
    states: Sequence[str] = (),
    month_filed: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> RequestList:
    """Requests in ``states`` (default: every state) filed in ``month_filed`` (default: any),
    newest first, each with its history; logged as one view of the people shown."""
    wanted = [request_state(s) for s in states]
    conditions: list[ColumnElement[bool]] = []
    if wanted:
        conditions.append(ReviewRequest.state.in_(wanted))
    if month_filed:
        start, end = _month_bounds(filed_month(month_filed))
        conditions += [ReviewRequest.created_at >= start, ReviewRequest.created_at < end]

    def work(session: Session) -> tuple[list[str], str, RequestList]:
        total = session.scalar(select(func.count(ReviewRequest.id)).where(*conditions)) or 0
        rows = list(
            session.scalars(
                select(ReviewRequest)
                .where(*conditions)
                .order_by(ReviewRequest.created_at.desc(), ReviewRequest.id.desc())
                .limit(limit)
                .offset(offset)
            )
        )
        histories = _histories(session, [r.id for r in rows])
        views = [_view(r, histories[r.id]) for r in rows]
        return [v.person_id for v in views], "", RequestList(int(total), views)

    return queue_rules.logged(db, caller, "review_requests", work)


def _month_bounds(value: str) -> tuple[datetime, datetime]:
    year, number = int(value[:4]), int(value[5:])
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return start, end


# --- Counts by group and month ------------------------------------------------------------------


@dataclass(frozen=True)
class CountRow:
    """One month, kind and state: how many requests, and (per attribute) per group."""

    month: str
    kind: str
    state: str
    total: int
    #: Aligned with the attribute's groups; ``None``: withheld.
    counts: tuple[int | None, ...] = ()


@dataclass(frozen=True)
class AttributeCounts:
    attribute: str
    groups: tuple[str, ...]
    rows: tuple[CountRow, ...]


@dataclass(frozen=True)
class Summary:
    threshold: int
    totals: tuple[CountRow, ...]
    attributes: tuple[AttributeCounts, ...]


@dataclass(frozen=True)
class Filing:
    """What the counts know of one request: no person, only where it falls."""

    month: str
    kind: str
    state: str
    groups: Mapping[str, str]


def _row_order(key: tuple[str, str, str]) -> tuple[int, int, int, tuple[str, str, str]]:
    """Newest month first, then kinds and states in their order of :data:`KINDS`, :data:`STATES`."""
    kinds, states = list(KINDS), list(STATES)
    return (
        -int(key[0].replace("-", "")),
        kinds.index(key[1]) if key[1] in kinds else len(kinds),
        states.index(key[2]) if key[2] in states else len(states),
        key,
    )


def summarise(
    filings: Iterable[Filing],
    groups: Mapping[str, Sequence[str]],
    *,
    threshold: int,
) -> Summary:
    """Counts per month (newest first), kind and state, in total and per group of each
    attribute (``groups``: attribute -> its known groups; groups and attributes the filings
    name are added), small counts withheld (:func:`audits.disclosure.withhold`). A filing
    without a group for an attribute counts as :data:`UNKNOWN`."""
    found = list(filings)
    totals = Counter((f.month, f.kind, f.state) for f in found)
    keys = sorted(totals, key=_row_order)
    named = {a for f in found for a in f.groups}
    attributes = []
    for attribute in sorted(set(groups) | named):
        seen = [f.groups.get(attribute, UNKNOWN) for f in found]
        names = tuple(dict.fromkeys([*groups.get(attribute, ()), *sorted(set(seen))]))
        per = Counter(
            (f.month, f.kind, f.state, group) for f, group in zip(found, seen, strict=True)
        )
        rows = tuple(
            CountRow(
                *key,
                totals[key],
                disclosure.withhold([per[(*key, g)] for g in names], threshold),
            )
            for key in keys
        )
        attributes.append(AttributeCounts(attribute, names, rows))
    return Summary(threshold, tuple(CountRow(*key, totals[key]) for key in keys), tuple(attributes))


def counts_by_group_and_month(db: Database, *, threshold: int) -> Summary:
    """Every request counted by month filed, kind, state and sensitive group (aggregates only:
    no person is read out, so no access-log row)."""
    with db.snapshot() as connection:
        requests = connection.execute(
            select(
                ReviewRequest.id,
                ReviewRequest.created_at,
                ReviewRequest.kind,
                ReviewRequest.state,
                EntryGroup.attribute,
                EntryGroup.group_name,
            ).outerjoin(EntryGroup, EntryGroup.entry_id == ReviewRequest.entry_id)
        ).all()
        known = connection.execute(
            select(EntryGroup.attribute, EntryGroup.group_name).distinct()
        ).all()
    where: dict[int, tuple[str, str, str]] = {}
    found: dict[int, dict[str, str]] = defaultdict(dict)
    for row_id, created, what, status, attribute, group in requests:
        where[row_id] = (f"{_utc(created):%Y-%m}", what, status)
        if attribute is not None:
            found[row_id][attribute] = group
    groups: dict[str, list[str]] = defaultdict(list)
    for attribute, group in sorted(known):
        groups[attribute].append(group)
    filings = (Filing(*where[i], found.get(i, {})) for i in where)
    return summarise(filings, groups, threshold=threshold)
