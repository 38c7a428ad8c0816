"""The explanation a person can be given: why this system helped decide to offer them help.

Written to the person (for a neighbourhood model, to the area's residents and the people who
represent them) in plain words: that a computer system helped decide and a person on the
outreach team made the offer; that it is never an eligibility, benefit or enforcement decision;
which recorded facts raised the estimate most, each with its exact contribution as stored with
the queue entry; what information was used and where it comes from; that the sensitive
attributes the audit checks were not used; and how to correct wrong data, decline, ask for a
review by a person, and whom to contact.

:func:`person_explanation` is the pure core (a stored entry and the model's feature schema in,
an :class:`Explanation` out); its words come from one Jinja2 template,
``service/templates/explanation/person.txt.j2``, so the API's ``text`` field and the printable
page say exactly the same. :func:`listed_entry` is the one rule for which entry is explained,
and writes the access-log row (action ``explanation``) before anything is shown.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from flask import Flask
from jinja2 import Environment, PackageLoader, StrictUndefined
from sqlalchemy.orm import Session

from kernel.errors import NotFoundError, OutreachError, UnavailableError
from kernel.home import Home
from lifecycle.catalogue import read_report
from lifecycle.model_source import ModelSource
from lifecycle.verified_loading import load_registered
from model.registry import Registry
from model.scorer import ScoringModel
from model.spec import Feature
from model.words import feature_words
from store import queue as queue_rules
from store.db import Database, OptOut, QueueEntry

#: The access log's kind for every view of an explanation (API and printable page).
ACTION = "explanation"
#: At most this many reasons are given, only those that raised the estimate.
MAX_REASONS = 4
Unit = Literal["individual", "neighbourhood"]
UNITS: tuple[Unit, ...] = ("individual", "neighbourhood")
#: Sensitive attributes (audit-only columns) as the explanation names them, to say they were not
#: used. An attribute missing here is named by its column name in words.
SENSITIVE_WORDS: dict[str, str] = {
    "race_ethnicity": "ethnicity",
    "race": "race",
    "ethnicity": "ethnicity",
    "sex": "sex",
    "gender": "gender",
    "age_band": "age",
    "age": "age",
    "disability": "any disability",
    "majority_group": "the ethnic make-up of the area",
    "income_quintile": "the area's income level",
}


#: How much one fact moved the estimate, in words a person reads instead of the model's own
#: scale: (at least this much on that scale, the words), largest first.
WEIGHT_WORDS: tuple[tuple[float, str], ...] = ((1.0, "a lot"), (0.4, "somewhat"), (0.0, "a little"))


def weight_words(contribution: Any) -> str:
    """How much a fact raised or lowered the estimate, in words ("a lot", "somewhat", "a
    little"), from its stored contribution; never a number."""
    if isinstance(contribution, bool) or not isinstance(contribution, int | float):
        return "a little"
    size = abs(float(contribution)) if math.isfinite(contribution) else 0.0
    return next(words for least, words in WEIGHT_WORDS if size >= least)


@dataclass(frozen=True)
class StoredEntry:
    """What the explanation needs of one queue entry, as it was stored when the list was made."""

    person_id: str
    period: str
    model_name: str
    model_version: str
    audit_id: str
    reasons: tuple[Mapping[str, Any], ...]
    #: Offered through the evaluation lottery (drawn by lot just below the cut-off).
    lottery: bool = False

    @classmethod
    def of(cls, entry: QueueEntry) -> StoredEntry:
        return cls(
            entry.person_id,
            entry.period,
            entry.model_name,
            entry.model_version,
            entry.audit_id,
            tuple(dict(r) for r in entry.reasons),
            lottery=entry.source == "lottery",
        )


@dataclass(frozen=True)
class ReasonLine:
    """One fact that raised the estimate, with its exact contribution as stored."""

    feature: str
    value: Any
    contribution: float
    text: str

    @property
    def points(self) -> str:
        """The stored contribution, every stored digit kept, no trailing zeros (for readers of
        the API's numbers; the text a person reads says :attr:`weight` instead)."""
        return f"{float(self.contribution):.6f}".rstrip("0").rstrip(".")

    @property
    def weight(self) -> str:
        """How much the fact counted, in words (:func:`weight_words`)."""
        return weight_words(self.contribution)


@dataclass(frozen=True)
class DataItem:
    """One piece of information the model reads, and where it comes from (``None``: unknown)."""

    feature: str
    description: str
    source: str | None


@dataclass(frozen=True)
class Explanation:
    """The explanation of one listed entry: structured fields and the text that says them."""

    person_id: str
    unit: Unit
    period: str
    model_name: str
    model_version: str
    audit_id: str
    reasons: tuple[ReasonLine, ...]
    data_used: tuple[DataItem, ...]
    not_used: tuple[str, ...]
    contact: str | None
    text: str

    @property
    def addressed_to(self) -> str:
        if self.unit == "individual":
            return "the person"
        return f"the residents of area {self.person_id} and the people who represent them"

    def to_dict(self) -> dict[str, Any]:
        """The API's fields (besides ``purpose`` and ``request_id``)."""
        return {
            "person_id": self.person_id,
            "unit": self.unit,
            "addressed_to": self.addressed_to,
            "period": self.period,
            "reasons": [
                {
                    "feature": r.feature,
                    "value": r.value,
                    "contribution": r.contribution,
                    "text": r.text,
                }
                for r in self.reasons
            ],
            "data_used": [
                {"feature": d.feature, "description": d.description, "source": d.source}
                for d in self.data_used
            ],
            "not_used": list(self.not_used),
            "contact": self.contact,
            "model": {
                "name": self.model_name,
                "version": self.model_version,
                "audit_id": self.audit_id,
            },
            "text": self.text,
        }


def top_reasons(stored: Sequence[Mapping[str, Any]]) -> tuple[ReasonLine, ...]:
    """The stored reasons that raised the estimate, largest first, at most :data:`MAX_REASONS`;
    each contribution exactly as stored (never recomputed)."""
    raised = [
        r
        for r in stored
        if isinstance(r.get("contribution"), int | float)
        and math.isfinite(r["contribution"])
        and r["contribution"] > 0
    ]
    raised.sort(key=lambda r: -float(r["contribution"]))
    return tuple(
        ReasonLine(str(r["feature"]), r.get("value"), r["contribution"], str(r["text"]))
        for r in raised[:MAX_REASONS]
    )


def _attribute_words(attributes: Sequence[str]) -> tuple[str, ...]:
    """Each sensitive attribute in plain words, once, in the given order."""
    return tuple(
        dict.fromkeys(SENSITIVE_WORDS.get(a, a.replace("_", " ")) for a in attributes if a)
    )


def sensitive_words(attributes: Sequence[str]) -> str:
    """The sensitive attributes in words, joined: "ethnicity, sex, age or any disability"."""
    words = _attribute_words(attributes)
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def person_explanation(
    entry: StoredEntry,
    *,
    unit: Unit,
    features: Sequence[Feature],
    sensitive_attributes: Sequence[str],
    contact: str | None,
) -> Explanation:
    """The explanation of ``entry``, for the person or (``neighbourhood``) the area's residents.

    Parameters
    ----------
    entry
        The listed queue entry, with the reasons stored when the list was made.
    unit
        The model's unit: who the text is written to.
    features
        The feature schema of the model version that made the entry (descriptions, sources).
    sensitive_attributes
        The audit's sensitive attributes, named to say they were not used.
    contact
        Whom to contact (a deployment setting); ``None`` says to ask the outreach worker.
    """
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; expected one of {', '.join(UNITS)}")
    reasons = top_reasons(entry.reasons)
    data_used = tuple(
        DataItem(f.name, feature_words(f), f.source.strip() if f.source else None) for f in features
    )
    attributes = tuple(sensitive_attributes)
    not_used = _attribute_words(attributes)
    contact = contact.strip() if contact and contact.strip() else None
    text = render_text(
        unit=unit,
        person_id=entry.person_id,
        period=entry.period,
        reasons=reasons,
        data_used=data_used,
        not_used=sensitive_words(attributes),
        contact=contact,
        lottery=entry.lottery,
        model_name=entry.model_name,
        model_version=entry.model_version,
        audit_id=entry.audit_id,
    )
    return Explanation(
        entry.person_id,
        unit,
        entry.period,
        entry.model_name,
        entry.model_version,
        entry.audit_id,
        reasons,
        data_used,
        not_used,
        contact,
        text,
    )


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("service", "templates"),
        autoescape=False,  # plain text; the page escapes it when it renders the blocks
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,
    )


def render_text(**values: Any) -> str:
    """The explanation's words from ``explanation/person.txt.j2``."""
    return _environment().get_template("explanation/person.txt.j2").render(**values)


# --- The text as blocks, for the printable page -------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One block of the text: a ``title``, a ``heading``, a ``list`` of items or a
    ``paragraph``."""

    kind: Literal["title", "heading", "list", "paragraph"]
    lines: tuple[str, ...]


def blocks(text: str) -> list[Block]:
    """The text's blocks (separated by blank lines), for the page to render as HTML."""
    out: list[Block] = []
    for chunk in text.strip("\n").split("\n\n"):
        lines = tuple(line for line in chunk.split("\n") if line.strip())
        if not lines:
            continue
        if len(lines) == 2 and set(lines[1]) == {"="}:
            out.append(Block("title", lines[:1]))
        elif len(lines) == 2 and set(lines[1]) == {"-"}:
            out.append(Block("heading", lines[:1]))
        elif all(line.startswith("- ") for line in lines):
            out.append(Block("list", tuple(line[2:] for line in lines)))
        else:
            out.append(Block("paragraph", (" ".join(lines),)))
    return out


# --- Which entry is explained, logged -----------------------------------------------------------


def listed_entry(
    db: Database, caller: queue_rules.Caller, person: Any, *, month: str | None = None
) -> StoredEntry:
    """The person's latest entry on a list (the serving model's, within the caller's areas), or
    their entry on ``month``'s list when given, after writing the ``explanation`` access-log row
    in the same transaction.

    Outside the caller's areas, never listed, or opted out (they declined: no list holds
    them): a 404, logged as refused, whether or not the person exists.
    """
    person = queue_rules.person_id(person)
    if month is not None:
        month = queue_rules.period(month)

    def work(session: Session) -> tuple[list[str], str, StoredEntry]:
        entries = queue_rules.person_entries(session, caller, person)
        listed = next((e for e in entries if e.rank > 0 and month in (None, e.period)), None)
        if listed is None or session.get(OptOut, person) is not None:
            raise queue_rules.RefusalError(
                [person],
                NotFoundError("no listed entry for this person in your areas", code="not_found"),
            )
        return [person], listed.model_version, StoredEntry.of(listed)

    return queue_rules.logged(db, caller, ACTION, work)


# --- The model version behind an entry ----------------------------------------------------------


class VersionBook:
    """The feature schema and audited sensitive attributes of the version behind an entry.

    The served version answers from memory; an earlier version (entries made before a model
    swap) is fetched once from the registry, its bytes checked against the registered ones, and
    kept. One per app (:func:`for_app`), shared by the API and the pages.
    """

    def __init__(self, source: ModelSource, home: Home) -> None:
        self.source = source
        self.home = home
        self._models: dict[tuple[str, str], ScoringModel] = {}
        #: Each audit's sensitive attributes: a signed report never changes, so it is read once.
        self._attributes: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def registry(self) -> Registry:
        """The served model's registry client (one per app: :meth:`ModelSource.registry`)."""
        return self.source.registry()

    def model(self, name: str, version: str) -> ScoringModel:
        current = self.source.current
        if current is not None and (current.name, current.version) == (name, version):
            return current.model
        with self._lock:
            found = self._models.get((name, version))
        if found is not None:
            return found
        try:
            found = load_registered(self.registry(), name, version).model
        except OutreachError as err:
            raise UnavailableError(
                f"the description of {name} version {version} cannot be read now",
                details=[err.message],
                code="version_unavailable",
            ) from err
        with self._lock:
            self._models[(name, version)] = found
        return found

    def sensitive_attributes(self, audit_id: str) -> tuple[str, ...]:
        """The sensitive attributes the version's audit checked (empty if it lists none)."""
        with self._lock:
            found = self._attributes.get(audit_id)
        if found is not None:
            return found
        try:
            report = read_report(self.registry(), audit_id)
        except (OutreachError, OSError, ValueError) as err:
            raise UnavailableError(
                f"the audit report {audit_id} cannot be read now",
                details=[str(err)],
                code="audit_unavailable",
            ) from err
        policy = report.get("policy") or {}
        found = tuple(str(a) for a in policy.get("sensitive_attributes") or ())
        with self._lock:
            self._attributes[audit_id] = found
        return found


def explain_person(
    db: Database,
    caller: queue_rules.Caller,
    person: Any,
    *,
    versions: VersionBook,
    contact: str | None,
    month: str | None = None,
) -> Explanation:
    """The explanation of the person's latest listed entry, or of their entry on ``month``'s
    list (logged first, see :func:`listed_entry`), in the words of the model version that made
    the entry."""
    stored = listed_entry(db, caller, person, month=month)
    model = versions.model(stored.model_name, stored.model_version)
    unit: Unit = "neighbourhood" if model.unit == "neighbourhood" else "individual"
    return person_explanation(
        stored,
        unit=unit,
        features=model.features,
        sensitive_attributes=versions.sensitive_attributes(stored.audit_id),
        contact=contact,
    )


def for_app(app: Flask) -> VersionBook:
    """The app's :class:`VersionBook` (made on first use)."""
    found: VersionBook | None = app.extensions.get("outreach.versions")
    if found is None:
        found = app.extensions["outreach.versions"] = VersionBook(
            app.extensions["outreach.model"],
            app.extensions["outreach.home"],
        )
    return found


def contact_for(app: Flask) -> str | None:
    """Whom a person may contact: the deployment's ``CONTACT`` setting (``OUTREACH_CONTACT``),
    ``None`` when unset."""
    value = app.config.get("CONTACT")
    return str(value) if value else None
