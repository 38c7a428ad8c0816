"""The outreach funnel by group: who was offered help, reached, and helped.

"People reached" and "people helped" can be unfair in ways the list is not: a group put on the
list at its fair share but rarely reached by phone, or offered help it cannot take up, is
under-served all the same. Per period and group (from each queue entry's latest recorded
outcome), this counts the people offered outreach (the list and the evaluation lottery), those
contacted, who accepted, declined, could not be reached, and those with no outcome yet; with
labels, the crises among them.

Each group's rate of being reached and of accepting help is compared with everyone else's, as the
release gate compares (:data:`audits.metrics.REST`), by the ratio of the two rates with Katz's
log interval. The interval and the Wald test on the log ratio are the same computation, so a
ratio is called significant exactly when its interval excludes 1. A group is flagged when its
ratio is below the policy's recall limit (the share of people in need reached, the board's own
yardstick for under-serving) and significantly below 1.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from scipy.stats import norm
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audits.metrics import REST
from audits.policy import Policy
from service.db import EntryGroup, Outcome, QueueEntry

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
    z = float(norm.ppf(0.5 + level / 2))
    p_value = float(2 * norm.sf(abs(centre) / se))
    return ratio, math.exp(centre - z * se), math.exp(centre + z * se), p_value


def funnel(
    session: Session, name: str, period: str, *, level: float, limit: float | None
) -> dict[str, Any]:
    """The period's funnel by group, with each rate compared with everyone else's."""
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
        shown = []
        for row in groups:
            comparisons = {}
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
                if below:
                    warnings.append(
                        f"{attribute} = {row.group}: {rate} {hits} of {n} offered, "
                        f"{ratio:.2f} times everyone else's rate (interval {low:.2f}–{high:.2f}, "
                        f"below the policy's {limit:g})"
                    )
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
        attributes.append({"attribute": attribute, "groups": shown})
    return {
        "statuses": [*STATUSES, "no_outcome"],
        "level": level,
        "limit": limit,
        "attributes": attributes,
        "warnings": warnings,
    }
