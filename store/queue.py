"""The outreach queue and the one rule for each action on it, called by the API and the pages.

Each action is one function here: listing a period's queue, showing a person, recording an
outcome, opting out and opting back in. Each checks the caller's areas, writes its access-log row
in the same transaction as its read or write, and raises from the project's exception tree. The
adapters (``service.api.routes``, ``service.pages.coordinator``) only parse input and render output;
no SQL lives in them.

**Areas.** A coordinator acts only within the areas an admin assigned (``outreach users areas``).
A person's area is the area of their latest queue entry of the serving model. Anything outside
the caller's areas is answered exactly as if it did not exist (404), so a refusal never confirms
that a person is known, and the refusal is written to the access log (``allowed = False``). A
coordinator with no area sees nothing. ``*`` stands for every area, including entries whose
area was not recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, bindparam, false, func, or_, select, true
from sqlalchemy.orm import Session

from kernel.errors import BadInputError, ConflictError, NotFoundError, OutreachError
from model import rules
from store import access_log
from store.accounts import Principal
from store.db import Database, OptIn, OptOut, Outcome, QueueEntry

T = TypeVar("T")

#: What can happen when outreach is offered: stored value -> the words coordinators read.
OUTCOMES: dict[str, str] = {
    "contacted": "Contacted",
    "accepted": "Accepted help",
    "declined": "Declined, thank you",
    "unreachable": "Could not reach",
}
BANDS = ("priority", "elevated", "standard")
#: The id and month rules are the one rule table's (:mod:`model.rules`), named here for the
#: adapters and the OpenAPI document.
MAX_ID = rules.MAX_ID
ID_PATTERN = rules.ID_PATTERN
PERIOD_PATTERN = rules.MONTH_PATTERN
#: A note or reason may hold anything but NUL (no database text column can).
TEXT_PATTERN = "^[^\\u0000]*$"
#: The largest database integer: an entry id beyond it names nothing.
MAX_ENTRY_ID = 2**63 - 1
#: The longest note or reason.
MAX_TEXT = 2000
#: The area that stands for every area.
ALL_AREAS = "*"
PURPOSE = "outreach"


def person_id(value: Any, *, field: str = "person_id") -> str:
    """A person id as stored, by the one id rule (:func:`model.rules.id_problem`)."""
    problem = rules.id_problem(value)
    if problem is not None:
        raise BadInputError(
            f"a person id is a string or an integer of 1 to {MAX_ID} characters, "
            "without control characters",
            details=[f"{field}: {problem}"],
            code="invalid_id",
        )
    return rules.id_text(value)


def period(value: Any, *, field: str = "period") -> str:
    """A list's period as stored, by the one month rule (:func:`model.rules.month_problem`)."""
    problem = rules.month_problem(value)
    if problem is not None:
        raise BadInputError(
            "a period is a month written YYYY-MM",
            details=[f"{field}: {problem}"],
            code="invalid_period",
        )
    return str(value)


def free_text(value: Any, *, field: str, required: bool = False) -> str:
    """A note or reason: text of at most ``MAX_TEXT`` characters (stripped)."""
    if value is None:
        value = ""
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise BadInputError(
            f"the {field} must be text of at most {MAX_TEXT:,} characters",
            details=[f"{field}: text of at most {MAX_TEXT} characters"],
        )
    if "\x00" in value:  # no database text column can hold it (PostgreSQL refuses it)
        raise BadInputError(
            f"the {field} may not contain a NUL character", details=[f"{field}: NUL character"]
        )
    text = value.strip()
    if required and not text:
        raise BadInputError(f"a {field} is required", details=[f"{field}: required"])
    return text


def outcome_status(value: Any) -> str:
    if not isinstance(value, str) or value not in OUTCOMES:  # a list or object is unhashable
        raise BadInputError(
            "the outcome is not one of the recorded kinds",
            details=[f"status: must be one of {', '.join(OUTCOMES)}"],
        )
    return str(value)


@dataclass(frozen=True)
class Caller:
    """Who acts, for which request, on which model's queue."""

    principal: Principal
    request_id: str
    model: str


def in_areas(principal: Principal) -> ColumnElement[bool]:
    """Condition for queue entries inside the caller's areas (nothing when they have none)."""
    areas = principal.areas
    if ALL_AREAS in areas:
        return true()
    if not areas:
        return false()
    return QueueEntry.area.in_(sorted(areas))


def _covers(principal: Principal, area: str | None) -> bool:
    return ALL_AREAS in principal.areas or (area is not None and area in principal.areas)


def on_list(name: str, period: str) -> list[ColumnElement[bool]]:
    """Conditions for the entries on ``period``'s list: within capacity, not opted out."""
    return [
        QueueEntry.model_name == name,
        QueueEntry.period == period,
        QueueEntry.rank > 0,
        QueueEntry.person_id.not_in(select(OptOut.person_id)),
    ]


def latest_outcomes(name: str, principal: Principal | None = None) -> Any:
    """Each person's latest recorded outcome id (``person_id``, ``last_id``), whichever month's
    list it was recorded on, so someone who declined last month does not look untouched now.

    With ``principal``: only outcomes recorded on entries inside their areas, so a person who
    moved does not carry another area's notes onto an old list.
    """
    statement = (
        select(QueueEntry.person_id, func.max(Outcome.id).label("last_id"))
        .join(QueueEntry, QueueEntry.id == Outcome.entry_id)
        .where(QueueEntry.model_name == name)
    )
    if principal is not None:
        statement = statement.where(in_areas(principal))
    return statement.group_by(QueueEntry.person_id).subquery()


def logged(
    db: Database,
    caller: Caller,
    action: str,
    work: Callable[[Session], tuple[Sequence[str], str, T]],
) -> T:
    """Run ``work`` and append its access-log row in one transaction (retried on a race).

    Every action on people runs through here (this module's, and :mod:`store.review_requests`').
    ``work`` returns (person ids concerned, model version, result). If it raises
    :class:`RefusalError`, the refusal is logged (``allowed = False``) and committed, then the
    refusal's error is raised.
    """

    def attempt() -> T | RefusalError:
        with db.session() as session:
            try:
                ids, version, result = work(session)
            except RefusalError as refused:
                session.rollback()
                access_log.append(session, **log_fields(caller, action, refused.ids, allowed=False))
                return refused
            access_log.append(session, **log_fields(caller, action, ids, version=version))
            return result

    outcome = access_log.retrying(attempt)
    if isinstance(outcome, RefusalError):
        raise outcome.error
    return outcome


def log_fields(
    caller: Caller, action: str, ids: Sequence[str], *, version: str = "", allowed: bool = True
) -> dict[str, Any]:
    """An access-log row's fields for ``caller``'s ``action`` on ``ids``."""
    return {
        "user": caller.principal.name,
        "role": caller.principal.role,
        "action": action,
        "purpose": PURPOSE,
        "subject_ids": list(dict.fromkeys(ids)),
        "model_version": version,
        "request_id": caller.request_id,
        "allowed": allowed,
    }


class RefusalError(OutreachError):
    """Raised inside :func:`logged`'s work: a refusal to log before its public ``error`` is
    raised (it never escapes :func:`logged`)."""

    def __init__(self, ids: Sequence[str], error: OutreachError) -> None:
        super().__init__(error.message)
        self.ids, self.error = list(ids), error


def _not_found(person: str) -> RefusalError:
    return RefusalError(
        [person],
        NotFoundError("no such person on a list in your areas", code="not_found"),
    )


def person_entries(session: Session, caller: Caller, person: str) -> list[QueueEntry]:
    """The person's entries of the serving model, newest period first, if in the caller's
    areas; otherwise :class:`RefusalError` (404), whether or not the person exists."""
    entries = list(
        session.scalars(
            select(QueueEntry)
            .where(QueueEntry.model_name == caller.model, QueueEntry.person_id == person)
            .order_by(QueueEntry.period.desc(), QueueEntry.id.desc())
        )
    )
    if not entries or not _covers(caller.principal, entries[0].area):
        raise _not_found(person)
    return entries


# --- Listing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListFilters:
    area: str = ""
    band: str = ""
    status: str = ""  # "" | "new" | "to_call" | one of OUTCOMES


#: The list filter for a phone round: not contacted yet, or could not be reached last time.
TO_CALL = "to_call"


@dataclass(frozen=True)
class Listing:
    period: str | None
    total: int
    rows: list[tuple[QueueEntry, Outcome | None]]


def periods(session: Session, name: str) -> list[str]:
    """The periods that have a list, newest first."""
    return list(
        session.scalars(
            select(QueueEntry.period)
            .where(QueueEntry.model_name == name)
            .group_by(QueueEntry.period)
            .order_by(QueueEntry.period.desc())
        )
    )


def areas_on_list(session: Session, principal: Principal, name: str, period: str) -> list[str]:
    """The areas of ``period``'s entries that the caller may see (for a filter)."""
    found = session.scalars(
        select(QueueEntry.area)
        .where(QueueEntry.model_name == name, QueueEntry.period == period, in_areas(principal))
        .group_by(QueueEntry.area)
        .order_by(QueueEntry.area)
    )
    return [a for a in found if a]


def _listing(
    session: Session,
    principal: Principal,
    name: str,
    period: str,
    filters: ListFilters,
    limit: int,
    offset: int,
) -> Listing:
    latest = latest_outcomes(name, principal)
    statement = (
        select(QueueEntry, Outcome)
        .outerjoin(latest, latest.c.person_id == QueueEntry.person_id)
        .outerjoin(Outcome, Outcome.id == latest.c.last_id)
        .where(*on_list(name, period), in_areas(principal))
    )
    if filters.area:
        statement = statement.where(QueueEntry.area == filters.area)
    if filters.band:
        statement = statement.where(QueueEntry.band == filters.band)
    if filters.status == "new":
        statement = statement.where(latest.c.last_id.is_(None))
    elif filters.status == TO_CALL:
        statement = statement.where(
            or_(latest.c.last_id.is_(None), Outcome.status == "unreachable")
        )
    elif filters.status:
        statement = statement.where(Outcome.status == filters.status)
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    rows = session.execute(statement.order_by(QueueEntry.rank).limit(limit).offset(offset)).all()
    return Listing(period, int(total), [(entry, outcome) for entry, outcome in rows])


def list_queue(
    db: Database,
    caller: Caller,
    period: str | None,
    *,
    limit: int,
    offset: int = 0,
    filters: ListFilters = ListFilters(),
    action: str = "queue",
    also_shown: Callable[[Session, list[str]], tuple[list[str], T]] | None = None,
) -> tuple[Listing, T | None]:
    """A page of ``period``'s list (default: the latest) within the caller's areas, each entry
    with the person's latest outcome; logged as one ``queue`` view of the ids shown.

    ``also_shown(session, ids)`` may read more for the same view (the page's month-to-month
    changes) and returns the extra ids it shows with its data, logged in the same row. ``action``
    names the view in the log (the API's ``queue``, the page's ``list``).
    """

    def work(session: Session) -> tuple[list[str], str, tuple[Listing, T | None]]:
        chosen = period or next(iter(periods(session, caller.model)), None)
        if chosen is None:
            return [], "", (Listing(None, 0, []), None)
        listing = _listing(session, caller.principal, caller.model, chosen, filters, limit, offset)
        ids = [entry.person_id for entry, _ in listing.rows]
        extra: T | None = None
        if also_shown is not None:
            more, extra = also_shown(session, ids)
            ids += more
        version = listing.rows[0][0].model_version if listing.rows else ""
        return ids, version, (listing, extra)

    return logged(db, caller, action, work)


def scoped_list_ids(
    session: Session, principal: Principal, name: str, period: str
) -> dict[str, tuple[int, str | None]]:
    """Everyone on ``period``'s list within the caller's areas: id -> (rank, main reasons'
    features, comma-joined). Core rows, no ORM: lists have thousands of entries."""
    rows = session.connection().execute(
        select(QueueEntry.person_id, QueueEntry.rank, QueueEntry.reason_features).where(
            *on_list(name, period), in_areas(principal)
        )
    )
    return {pid: (rank, features) for pid, rank, features in rows}


# --- A person ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonView:
    """What a coordinator may see of one person. For someone who opted out, only
    ``opted_out`` is set: no band, percentile, reasons or history."""

    person_id: str
    opted_out: OptOut | None
    current: QueueEntry | None = None
    entries: tuple[QueueEntry, ...] = ()
    history: tuple[Outcome, ...] = ()


def show_person(
    db: Database, caller: Caller, person: str, *, month: str | None = None
) -> PersonView:
    """One person as the caller may see them; a 404 (logged) outside their areas.

    ``current`` is the entry of ``month`` when given (the list the caller came from; a logged
    404 when the person has no entry that month), else the latest entry on a list.
    """
    person = person_id(person)
    if month is not None:
        month = period(month)

    def work(session: Session) -> tuple[list[str], str, PersonView]:
        entries = person_entries(session, caller, person)
        opted = session.get(OptOut, person)
        if opted is not None:
            return [person], "", PersonView(person, opted)
        history = session.scalars(
            select(Outcome)
            .where(Outcome.entry_id.in_([e.id for e in entries]))
            .order_by(Outcome.id.desc())
        )
        if month is not None:
            found = next((e for e in entries if e.period == month), None)
            if found is None:
                raise RefusalError(
                    [person],
                    NotFoundError(
                        f"this person has no entry on the {month} list in your areas",
                        code="not_found",
                    ),
                )
            current = found
        else:
            current = next((e for e in entries if e.rank > 0), entries[0])
        view = PersonView(person, None, current, tuple(entries), tuple(history))
        return [person], current.model_version, view

    return logged(db, caller, "person", work)


# --- Actions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedOutcome:
    outcome_id: int
    entry_id: int
    person_id: str
    status: str


def _outcome(
    session: Session, caller: Caller, entry_id: int, status: str, note: str | None
) -> tuple[list[str], str, RecordedOutcome]:
    """One outcome's rule and row, inside ``session`` (for :func:`logged`)."""
    entry = session.get(QueueEntry, entry_id) if 0 < entry_id <= MAX_ENTRY_ID else None
    refused = NotFoundError("no such queue entry on a list in your areas")
    if entry is None or entry.model_name != caller.model or entry.rank <= 0:
        raise RefusalError([] if entry is None else [entry.person_id], refused)
    try:  # the person's area now, as for their page: not the area of an old entry
        person_entries(session, caller, entry.person_id)
    except RefusalError as err:
        raise RefusalError(err.ids, refused) from err
    if session.get(OptOut, entry.person_id) is not None:
        raise RefusalError(
            [entry.person_id],
            ConflictError(
                "this person asked not to be contacted; no contact can be recorded",
                code="opted_out",
            ),
        )
    row = Outcome(entry_id=entry.id, status=status, note=note, recorded_by=caller.principal.name)
    session.add(row)
    session.flush()
    return (
        [entry.person_id],
        entry.model_version,
        RecordedOutcome(row.id, entry.id, entry.person_id, status),
    )


def record_outcome(
    db: Database, caller: Caller, entry_id: int, status: Any, note: Any
) -> RecordedOutcome:
    """Record what happened when outreach was offered.

    Only on the serving model's entries that are on a list, inside the caller's areas (else a
    logged 404), and never for someone who asked not to be contacted (409, logged).
    """
    status = outcome_status(status)
    note = free_text(note, field="note")
    return logged(
        db, caller, "outcome", lambda session: _outcome(session, caller, entry_id, status, note)
    )


def record_outcome_batch(
    db: Database, caller: Caller, outcomes: Sequence[tuple[int, Any, Any]]
) -> list[RecordedOutcome]:
    """Record several outcomes (entry id, status, note) as :func:`record_outcome` records each,
    in one transaction: each by the same rule, with its own access-log row.

    If any is refused, none of the batch is kept: each is then recorded alone by
    :func:`record_outcome`, so the outcomes before it are kept and its refusal is logged and
    raised exactly as one at a time.
    """
    checked = [(e, outcome_status(s), free_text(n, field="note")) for e, s, n in outcomes]

    def attempt() -> list[RecordedOutcome]:
        done = []
        with db.session() as session:
            for entry_id, status, note in checked:
                ids, version, result = _outcome(session, caller, entry_id, status, note)
                access_log.append(session, **log_fields(caller, "outcome", ids, version=version))
                done.append(result)
        return done

    try:
        return access_log.retrying(attempt)
    except RefusalError:
        return [record_outcome(db, caller, e, s, n) for e, s, n in checked]


def opted_out_among(db: Database, people: Sequence[str]) -> set[str]:
    """Which of ``people`` opted out: an opt-out means not scored, on every path (the API's
    ``/score``, batch scoring, the Spark job's ``queue load``)."""
    wanted = sorted(set(people))
    found: set[str] = set()
    if len(wanted) <= OPT_OUT_PLAIN_MAX:  # the hot path of /score: one plain SQLite read
        rows = db.plain_rows(_opted_out_sql(len(wanted)), wanted) if wanted else []
        if rows is not None:
            return {row[0] for row in rows}
    # A read: one consistent snapshot, without the writers' lock.
    with db.snapshot() as connection:
        for start in range(0, len(wanted), 1000):
            part = wanted[start : start + 1000]
            found.update(connection.scalars(_opted_out_query(), {"people": part}))
    return found


#: Up to this many ids are checked in one plain SQLite statement (SQLite's default limit of
#: variables is far above it); more go through the snapshot in parts of 1,000.
OPT_OUT_PLAIN_MAX = 1000


@cache
def _opted_out_sql(count: int) -> str:
    """The opt-out check for ``count`` ids as one plain SQLite statement (built once per count)."""
    marks = ", ".join("?" * count)
    return f"SELECT person_id FROM {OptOut.__tablename__} WHERE person_id IN ({marks})"


@cache
def _opted_out_query() -> Select[str]:
    """The opt-out check's query, built once (building it cost as much as running it)."""
    return select(OptOut.person_id).where(OptOut.person_id.in_(bindparam("people", expanding=True)))


def opt_out(db: Database, caller: Caller, person: Any, reason: Any) -> str:
    """A person asked not to be contacted: they leave every list from now on (idempotent)."""
    person = person_id(person)
    reason = free_text(reason, field="reason")

    def work(session: Session) -> tuple[list[str], str, str]:
        person_entries(session, caller, person)
        add_opt_out(session, caller, person, reason)
        return [person], "", person

    return logged(db, caller, "opt_out", work)


def add_opt_out(session: Session, caller: Caller, person: str, reason: str) -> bool:
    """Inside an action's transaction, once the person is known to be in the caller's areas:
    record that they asked not to be contacted. ``False`` if they already had (kept as it was)."""
    if session.get(OptOut, person) is not None:
        return False
    session.add(OptOut(person_id=person, recorded_by=caller.principal.name, reason=reason))
    return True


def opt_in(db: Database, caller: Caller, person: Any, reason: Any) -> str:
    """A person who had opted out asked to be offered outreach again; a reason is required
    and kept with who recorded it."""
    person = person_id(person)
    reason = free_text(reason, field="reason", required=True)

    def work(session: Session) -> tuple[list[str], str, str]:
        person_entries(session, caller, person)
        opted = session.get(OptOut, person)
        if opted is None:
            raise RefusalError([person], NotFoundError("this person had not asked to be left out"))
        session.delete(opted)
        session.add(OptIn(person_id=person, reason=reason, recorded_by=caller.principal.name))
        return [person], "", person

    return logged(db, caller, "opt_in", work)
