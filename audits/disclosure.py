"""Small-cell suppression: the one rule for every count of people published or shown.

Every group-level count the service shows or publishes (the monitoring API and pages, the
funnel, the review-request summary, the transparency record) goes through this module, so one
rule decides everywhere:

- **The threshold** is the policy's ``min_group_size`` (people): the size from which the board's
  own policy judges a group on its own is also the size from which a group's counts are shown.
  No separate policy key; ``min_group_positives`` (people in need) is a judging rule, not this
  one. Without a readable policy, the policy's default applies (:data:`DEFAULT_THRESHOLD`).
- **A cell** (a count of people in a group) from 1 to ``threshold - 1`` is withheld. A zero is
  shown: it singles no one out, and hiding it would tell nothing the total does not.
- **Complementary cells**: where cells add up to a total that is shown (a row's parts, or the
  groups of one attribute), more non-zero cells are withheld, smallest first, until the withheld
  cells are at least two and add up to at least the threshold, so that no small count can be
  worked out by subtraction; all of them, if that cannot be done (:func:`withhold`,
  :func:`withhold_table`).
- **Derived values**: a rate, ratio, interval or p-value computed from a withheld cell is
  withheld with it (otherwise the count comes back from the rate and the other cell).

How a withheld value looks: ``null`` in JSON, with a ``"withheld"`` object beside it naming each
withheld field and why (:func:`words`: "fewer than 100 people, or would reveal such a count",
the same for a small cell and a complementary one, since telling them apart narrows the small
one down); on pages, "withheld" with the same words.
Counts of everyone (the whole period, the whole list) describe no group and are shown.
Messages written before the rule applies (the gate's, drift's) have their small counts of
people replaced by "fewer than 100" (:func:`scrub`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any

from model.words import PEOPLE, UnitWords

#: The policy's default ``min_group_size``: the threshold when no policy can be read.
DEFAULT_THRESHOLD = 100
#: The JSON key beside withheld fields: field name -> why.
WITHHELD = "withheld"


def threshold_of(policy: Any) -> int:
    """The threshold taken from a policy: a :class:`audits.policy.Policy`, a report's policy
    block (a mapping), or ``None`` (the default)."""
    if policy is None:
        return DEFAULT_THRESHOLD
    value = (
        policy.get("min_group_size")
        if isinstance(policy, Mapping)
        else getattr(policy, "min_group_size", None)
    )
    return int(value) if value else DEFAULT_THRESHOLD


def words(threshold: int, counted: UnitWords = PEOPLE) -> str:
    """Why a count is withheld, the same words for a small cell and a complementary one (telling
    them apart would narrow the small one down); ``counted``: people, or areas."""
    return f"fewer than {threshold:,} {counted.many}, or would reveal such a count"


def small(count: Any, threshold: int) -> bool:
    """Whether one count of people is withheld on its own (1 to ``threshold - 1``)."""
    return isinstance(count, int | float) and 0 < count < threshold


def withhold(
    counts: Sequence[int], threshold: int, hidden: Iterable[int] = ()
) -> tuple[int | None, ...]:
    """One row of counts that add up to a shown total, with small ones withheld (``None``).

    Each count from 1 to ``threshold - 1`` is withheld (and those in ``hidden``, withheld for
    another reason); then, if any is withheld, more non-zero ones, smallest first, until the
    withheld ones are at least two and add up to at least ``threshold``; all of them (zeros too)
    if that cannot be done.
    """
    out = _hide(counts, threshold, set(hidden))
    return tuple(None if i in out else n for i, n in enumerate(counts))


def _hide(counts: Sequence[int], threshold: int, hidden: set[int]) -> set[int]:
    def enough(cells: set[int]) -> bool:
        return len(cells) >= 2 and sum(counts[i] for i in cells) >= threshold

    cells = hidden | {i for i, n in enumerate(counts) if small(n, threshold)}
    if not cells:
        return cells
    order = sorted((i for i, n in enumerate(counts) if n > 0), key=lambda i: (counts[i], i))
    for i in order:
        if enough(cells):
            break
        cells.add(i)
    if not enough(cells):
        return set(range(len(counts)))
    return cells


def withhold_table(
    table: Sequence[Sequence[int]],
    threshold: int,
    *,
    rows_add_up: bool = True,
    columns_add_up: bool = True,
) -> list[list[int | None]]:
    """A table of counts with small cells withheld, and complementary cells so that neither a
    row's total nor a column's total (when they add up to something shown or known) gives a
    withheld cell back. Rows and columns are withheld in turn until nothing changes."""
    hidden = {
        (r, c) for r, row in enumerate(table) for c, n in enumerate(row) if small(n, threshold)
    }
    while True:
        before = len(hidden)
        if rows_add_up:
            for r, row in enumerate(table):
                mine = {c for (rr, c) in hidden if rr == r}
                hidden |= {(r, c) for c in (_hide(row, threshold, mine) if mine else ())}
        if columns_add_up and table:
            for c in range(len(table[0])):
                column = [row[c] for row in table]
                mine = {r for (r, cc) in hidden if cc == c}
                hidden |= {(r, c) for r in (_hide(column, threshold, mine) if mine else ())}
        if len(hidden) == before:
            break
    return [
        [None if (r, c) in hidden else n for c, n in enumerate(row)] for r, row in enumerate(table)
    ]


def mark(
    record: MutableMapping[str, Any], fields: Iterable[str], why: str
) -> MutableMapping[str, Any]:
    """Set each of ``fields`` of ``record`` to ``None`` and name it in its ``"withheld"`` object."""
    note = record.setdefault(WITHHELD, {})
    for name in fields:
        record[name] = None
        note[name] = why
    return record


def derived_words(threshold: int) -> str:
    """Why a derived value is withheld."""
    return f"computed from a withheld count ({words(threshold)})"


def shown_counts(document: Any, fields: Iterable[str], path: str = "$") -> list[tuple[str, float]]:
    """Every number found under a key named in ``fields`` anywhere in ``document`` (JSON-like),
    with its path: what a check for small cells reads."""
    names = set(fields)
    found: list[tuple[str, float]] = []

    def walk(value: Any, where: str, counted: bool) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(item, f"{where}.{key}", counted or key in names)
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                walk(item, f"{where}[{i}]", counted)
        elif counted and isinstance(value, int | float) and not isinstance(value, bool):
            found.append((where, value))

    walk(document, path, False)
    return found


def _blank(value: Any) -> Any:
    """A derived value withheld, keeping its shape (a mapping's keys, a list's length)."""
    if isinstance(value, Mapping):
        return {k: _blank(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [None for _ in value]
    return None


def withhold_groups(
    rows: Sequence[MutableMapping[str, Any]],
    threshold: int,
    *,
    size: str,
    counts: Sequence[str] = (),
    derived: Sequence[str] = (),
    by: str = "attribute",
    keep: Iterable[str] = ("overall",),
) -> set[tuple[str, str]]:
    """Group rows (dicts with ``attribute`` and ``group``) with small counts withheld, in place.

    Within each attribute (``by``), every count column (``size`` and ``counts``) adds up over
    the groups to a total shown or known, so each is withheld as a column (:func:`withhold`). A
    group whose ``size`` is withheld has all its counts and ``derived`` values withheld; a group
    with any count withheld has its ``derived`` values withheld (they were computed from it).
    Rows whose ``by`` is in ``keep`` (everyone) are left alone. Returns the (attribute, group)
    pairs with anything withheld.
    """
    why, because = words(threshold), derived_words(threshold)
    columns = [size, *[c for c in counts if c != size]]
    by_attribute: dict[str, list[MutableMapping[str, Any]]] = {}
    for row in rows:
        if str(row.get(by)) not in keep:
            by_attribute.setdefault(str(row.get(by)), []).append(row)
    touched: set[tuple[str, str]] = set()
    for group_rows in by_attribute.values():
        hidden: dict[int, set[str]] = {i: set() for i in range(len(group_rows))}
        for column in columns:
            values = [r.get(column) for r in group_rows]
            if not any(isinstance(v, int | float) for v in values):
                continue
            numbers = [int(v) if isinstance(v, int | float) else 0 for v in values]
            for i, shown in enumerate(withhold(numbers, threshold)):
                if shown is None and values[i] is not None:
                    hidden[i].add(column)
        for i, row in enumerate(group_rows):
            if not hidden[i]:
                continue
            gone = columns if size in hidden[i] else sorted(hidden[i])
            mark(row, [c for c in gone if c in row], why)
            note = row.setdefault(WITHHELD, {})
            for name in derived:
                if name in row:
                    row[name] = _blank(row[name])
                    note[name] = because
            touched.add((str(row.get(by)), str(row.get("group"))))
    return touched


def blank_fields(
    row: MutableMapping[str, Any], fields: Iterable[str], threshold: int
) -> MutableMapping[str, Any]:
    """Withhold ``fields`` of a row derived from a withheld count (same shapes, ``None``)."""
    note = row.setdefault(WITHHELD, {})
    for name in fields:
        if name in row:
            row[name] = _blank(row[name])
            note[name] = derived_words(threshold)
    return row


#: Counts of people (or areas) in words, as the gate, drift and labels write them in their
#: messages.
_COUNTED = re.compile(r"\b(\d[\d,]*)( people| areas| in need| in the reference| in the period)\b")


def scrub(text: str, threshold: int) -> str:
    """``text`` with each count of people it names ("40 people", "40 areas", "3 in need", "12 in
    the period") from 1 to ``threshold - 1`` replaced by "fewer than <threshold>"."""

    def replace(found: re.Match[str]) -> str:
        count = int(found.group(1).replace(",", ""))
        if small(count, threshold):
            return f"fewer than {threshold:,}{found.group(2)}"
        return found.group(0)

    return _COUNTED.sub(replace, text)


def scrub_all(document: Any, threshold: int) -> Any:
    """A JSON-like document with every string scrubbed (:func:`scrub`)."""
    if isinstance(document, str):
        return scrub(document, threshold)
    if isinstance(document, Mapping):
        return {k: scrub_all(v, threshold) for k, v in document.items()}
    if isinstance(document, list | tuple):
        return [scrub_all(v, threshold) for v in document]
    return document
