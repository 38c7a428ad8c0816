"""The outreach funnel by group: who was offered help, reached, and helped.

"People reached" and "people helped" can be unfair in ways the list is not: a group put on the
list at its fair share but rarely reached by phone, or offered help it cannot take up, is
under-served all the same. Per period and group (from each queue entry's latest recorded
outcome), this counts the people offered outreach (the list and the evaluation lottery), those
contacted, who accepted, declined, could not be reached, and those with no outcome yet; with
labels, the crises among them.

Each group's rate of being reached and of accepting help is compared with everyone else's, as the
release gate compares (:data:`audits.group_metrics.REST`), by the ratio of the two rates with Katz's
log interval. The interval and the Wald test on the log ratio are the same computation, so a
ratio is called significant exactly when its interval excludes 1. A group is flagged when its
ratio is below the policy's recall limit (the share of people in need reached, the board's own
yardstick for under-serving) and significantly below 1.

Small cells are withheld by the one rule of :mod:`audits.disclosure`: a group's offered count,
each status, the lottery, the labelled and the crises from 1 to the threshold (the policy's
``min_group_size``) are ``null`` with a ``"withheld"`` note, with complementary cells so that no
withheld count comes back from a row's offered total or from the groups of an attribute; a rate,
ratio or interval computed from a withheld count is withheld with it, and a flag on a withheld
group names no count.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from scipy.special import ndtr, ndtri
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audits import disclosure
from audits.group_metrics import REST
from audits.policy import Policy
from store.db import EntryGroup, Outcome, QueueEntry

STATUSES = ("contacted", "accepted", "declined", "unreachable")
#: Outcomes that mean the person was reached (an offer was actually put to them).
REACHED = ("contacted", "accepted", "declined")
RATES = ("reached", "accepted")


@dataclass
class FunnelRow:
    attribute: str
    group: str
    offered: int = 0
    lottery: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    crises: dict[str, int] = field(default_factory=dict)
    labelled: int = 0

    @property
    def no_outcome(self) -> int:
        return self.offered - sum(self.counts.get(s, 0) for s in STATUSES)

    def count(self, rate: str) -> int:
        if rate == "reached":
            return sum(self.counts.get(s, 0) for s in REACHED)
        return self.counts.get(rate, 0)


def recall_limit(policy: Policy | None) -> float | None:
    """The policy's lower limit on recall: the yardstick for a group reached too rarely."""
    if policy is None:
        return None
    return next((g.min for g in policy.gates if g.metric == "recall" and g.min), None)


def log_ratio_interval(
    hits: int, n: int, ref_hits: int, ref_n: int, level: float
) -> tuple[float | None, float | None, float | None, float | None]:
    """Ratio of two proportions with Katz's log interval and the matching Wald test.

    Returns ``(ratio, low, high, p_value)``; a zero count gets the usual 0.5 correction in the
    interval and test (never in the point estimate). ``None`` where a rate is undefined.
    """
    if n == 0 or ref_n == 0 or ref_hits == 0:
        return None, None, None, None
    ratio = (hits / n) / (ref_hits / ref_n)
    a, b = (hits, ref_hits) if hits and ref_hits else (hits + 0.5, ref_hits + 0.5)
    m, r = (n, ref_n) if hits and ref_hits else (n + 0.5, ref_n + 0.5)
    centre = math.log((a / m) / (b / r))
    se = math.sqrt(max(1 / a - 1 / m, 0.0) + max(1 / b - 1 / r, 0.0))
    if se == 0:
        return ratio, ratio, ratio, 1.0
    # scipy.stats.norm's ppf and sf are these (ndtri(q) and ndtr(-x)), without importing
    # scipy.stats into the service's processes; tests/unit/test_tails.py holds them equal.
    z = float(ndtri(0.5 + level / 2))
    p_value = float(2 * ndtr(-abs(centre) / se))
    return ratio, math.exp(centre - z * se), math.exp(centre + z * se), p_value


def funnel(
    session: Session,
    name: str,
    period: str,
    *,
    level: float,
    limit: float | None,
    threshold: int = disclosure.DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """The period's funnel by group, with each rate compared with everyone else's, small cells
    withheld (``threshold``: the policy's ``min_group_size``)."""
    entries = select(QueueEntry.id).where(
        QueueEntry.model_name == name, QueueEntry.period == period, QueueEntry.rank > 0
    )
    latest = (
        select(Outcome.entry_id, func.max(Outcome.id).label("last"))
        .where(Outcome.entry_id.in_(entries))
        .group_by(Outcome.entry_id)
        .subquery()
    )
    # Counted by the database: a few hundred (group, source, status, label) cells, not a row per
    # entry and attribute.
    rows = session.execute(
        select(
            EntryGroup.attribute,
            EntryGroup.group_name,
            QueueEntry.source,
            QueueEntry.label,
            Outcome.status,
            func.count(),
        )
        .join(EntryGroup, EntryGroup.entry_id == QueueEntry.id)
        .outerjoin(latest, latest.c.entry_id == QueueEntry.id)
        .outerjoin(Outcome, Outcome.id == latest.c.last)
        .where(QueueEntry.model_name == name, QueueEntry.period == period, QueueEntry.rank > 0)
        .group_by(
            EntryGroup.attribute,
            EntryGroup.group_name,
            QueueEntry.source,
            QueueEntry.label,
            Outcome.status,
        )
    )
    table: dict[tuple[str, str], FunnelRow] = {}
    for attribute, group, source, label, status, count in rows:
        row = table.setdefault((attribute, group), FunnelRow(attribute, group))
        row.offered += count
        row.lottery += count if source == "lottery" else 0
        key = status or "no_outcome"
        row.counts[key] = row.counts.get(key, 0) + count
        if label is not None:
            row.labelled += count
            row.crises[key] = row.crises.get(key, 0) + int(label) * count
    by_attribute: dict[str, list[FunnelRow]] = defaultdict(list)
    for row in table.values():
        by_attribute[row.attribute].append(row)
    attributes = []
    warnings: list[str] = []
    for attribute in sorted(by_attribute):
        groups = sorted(by_attribute[attribute], key=lambda r: r.group)
        total = {rate: sum(r.count(rate) for r in groups) for rate in RATES}
        offered = sum(r.offered for r in groups)
        shown: list[dict[str, Any]] = []
        for row in groups:
            comparisons: dict[str, dict[str, Any]] = {}
            for rate in RATES:
                hits, n = row.count(rate), row.offered
                ratio, low, high, p_value = log_ratio_interval(
                    hits, n, total[rate] - hits, offered - n, level
                )
                below = (
                    limit is not None
                    and ratio is not None
                    and high is not None
                    and ratio < limit
                    and high < 1.0
                )
                comparisons[rate] = {
                    "rate": hits / n if n else None,
                    "ratio": ratio,
                    "ci": [low, high],
                    "p_value": p_value,
                    "against": REST,
                    "flagged": below,
                }
            shown.append(
                {
                    "group": row.group,
                    "offered": row.offered,
                    "lottery": row.lottery,
                    **{s: row.counts.get(s, 0) for s in STATUSES},
                    "no_outcome": row.no_outcome,
                    "labelled": row.labelled,
                    "crises": dict(row.crises),
                    "comparisons": comparisons,
                }
            )
        _withhold_small(shown, threshold)
        for cell in shown:
            for rate, c in cell["comparisons"].items():
                if not c["flagged"]:
                    continue
                reached = _count(cell, rate)
                if c["ratio"] is None or reached is None or cell["offered"] is None:
                    warnings.append(
                        f"{attribute} = {cell['group']}: {rate} rate significantly below "
                        f"everyone else's and below the policy's {limit:g} (counts withheld: "
                        f"{disclosure.words(threshold)})"
                    )
                    continue
                low, high = c["ci"]
                warnings.append(
                    f"{attribute} = {cell['group']}: {rate} {reached} of {cell['offered']} "
                    "offered, "
                    f"{c['ratio']:.2f} times everyone else's rate (interval {low:.2f}–"
                    f"{high:.2f}, below the policy's {limit:g})"
                )
        attributes.append({"attribute": attribute, "groups": shown})
    return {
        "threshold": threshold,
        "statuses": [*STATUSES, "no_outcome"],
        "level": level,
        "limit": limit,
        "attributes": attributes,
        "warnings": warnings,
    }


#: The counts of a funnel row that are parts of its ``offered`` (they add up to it).
_PARTS = (*STATUSES, "no_outcome")


def _count(cell: dict[str, Any], rate: str) -> int | None:
    """A shown row's count behind ``rate`` (``None`` if any part of it is withheld)."""
    parts = REACHED if rate == "reached" else (rate,)
    values = [cell[p] for p in parts]
    return None if any(v is None for v in values) else sum(values)


def _withhold_small(shown: list[dict[str, Any]], threshold: int) -> None:
    """Withhold the attribute's small cells (:mod:`audits.disclosure`), in place.

    Columns (offered, lottery, each status, labelled, crises by status) add up over the groups
    to the period's totals; each row's statuses add up to its offered. A withheld offered count
    withholds the whole row; a rate, ratio, interval or p-value from a withheld count goes too.
    """
    if not shown:
        return
    crisis_keys = sorted({k for cell in shown for k in cell["crises"]})
    columns = list(_PARTS)
    table = disclosure.withhold_table(
        [[int(cell[k]) for k in columns] for cell in shown], threshold
    )
    why, because = disclosure.words(threshold), disclosure.derived_words(threshold)
    single = {
        key: disclosure.withhold([int(cell[key]) for cell in shown], threshold)
        for key in ("offered", "lottery", "labelled")
    }
    crises = disclosure.withhold_table(
        [[int(cell["crises"].get(k, 0)) for k in crisis_keys] for cell in shown], threshold
    )
    for i, cell in enumerate(shown):
        whole = single["offered"][i] is None
        gone = ["offered"] if whole else []
        gone += [k for j, k in enumerate(columns) if whole or table[i][j] is None]
        gone += [k for k in ("lottery", "labelled") if whole or single[k][i] is None]
        if gone:
            disclosure.mark(cell, gone, why)
        if whole or any(v is None for v in crises[i]) or cell["labelled"] is None:
            hidden = [
                k
                for j, k in enumerate(crisis_keys)
                if whole or cell["labelled"] is None or crises[i][j] is None
            ]
            if hidden:
                cell["crises"] = {k: None if k in hidden else v for k, v in cell["crises"].items()}
                cell.setdefault(disclosure.WITHHELD, {})["crises"] = {k: why for k in hidden}
        for rate, c in cell["comparisons"].items():
            if whole or _count(cell, rate) is None:
                for key in ("rate", "ratio", "p_value"):
                    c[key] = None
                c["ci"] = [None, None]
                c[disclosure.WITHHELD] = because
