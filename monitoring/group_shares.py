"""Monitoring for the oversight board: per period, who was put on the list and what came of it.

Counts come from what batch scoring recorded (``period_groups``, ``entry_groups``) and the
coordinators' outcomes. Sensitive attributes appear here only as group aggregates. A period is
flagged when a group's disparity is beyond a limit of the policy the serving model was audited
under, for the gates that can be judged before outcomes are known:

- ``selection_rate``: the group's share put on the list, against everyone else's (or the
  policy's reference group's);
- ``flagged_to_need``: the group's share of the list over its share of need, with need taken
  from the release audit (the last months whose outcomes were known).

A group is judged only where :mod:`audits.limit_check` judges it: enough people this month, and
enough people in need in the release audit (so a group the audit could not judge is not judged
here either).

Gates on outcome-based metrics (recall, precision...) need the crises that follow and are judged
at the next audit, not here.

Small counts are withheld by :mod:`audits.disclosure` (threshold: the policy's
``min_group_size``): a row's ``withheld`` names its counts (``population``, ``selected``, each
outcome status) and derived values (``selection_rate``, ``ratios``) not to be shown; the judging
above runs on the full counts and its warnings name no count.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audits import disclosure, limit_check
from audits.group_metrics import REST, reference_index
from audits.groups import Grouping
from audits.policy import Policy, policy_from_report
from store.db import EntryGroup, Outcome, PeriodGroup, QueueEntry

OUTCOME_STATUSES = ("contacted", "accepted", "declined", "unreachable")
JUDGED_METRICS = ("selection_rate", "flagged_to_need")
INTERSECTION = " × "


def audited_attributes(report: dict[str, Any]) -> list[str]:
    """The single sensitive attributes an audit report covers (intersections left out)."""
    seen: list[str] = []
    for group in report.get("groups", []):
        attribute = str(group["attribute"])
        if INTERSECTION not in attribute and attribute not in seen:
            seen.append(attribute)
    return seen


@dataclass
class GroupRow:
    group: str
    population: int
    selected: int
    reference: bool = False
    sufficient: bool = True
    ratios: dict[str, float | None] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    #: Counts and derived values not to be shown (:mod:`audits.disclosure`).
    withheld: set[str] = field(default_factory=set)

    @property
    def selection_rate(self) -> float:
        return self.selected / self.population if self.population else math.nan


@dataclass
class AttributeView:
    attribute: str
    groups: list[GroupRow]
    warnings: list[str]


@dataclass
class PeriodView:
    period: str
    population: int
    selected: int
    attributes: list[AttributeView]
    #: Counts of people in a group below this are withheld (:mod:`audits.disclosure`).
    threshold: int = disclosure.DEFAULT_THRESHOLD

    @property
    def warnings(self) -> list[str]:
        return [w for a in self.attributes for w in a.warnings]


def _need_shares(report: dict[str, Any], attribute: str) -> dict[str, float]:
    out = {}
    for g in report.get("groups", []):
        share = (g.get("metrics") or {}).get("share_in_need")
        if g["attribute"] == attribute and share is not None:
            out[str(g["group"])] = float(share)
    return out


def _reference(rows: list[GroupRow], attribute: str, rule: Any) -> GroupRow | None:
    """The group each row is compared with, as the audit chooses it (:func:`reference_index`):
    ``None`` when each group is compared with everyone else."""
    if not rows:
        return None
    grouping = Grouping(
        attribute,
        tuple(r.group for r in rows),
        np.repeat(np.arange(len(rows)), [r.population for r in rows]),
    )
    index = reference_index(grouping, rule)
    return None if index is None else rows[index]


def share_warnings(
    attribute: str,
    rows: list[GroupRow],
    policy: Policy,
    need: dict[str, float],
    in_need: Mapping[tuple[str, str], int],
) -> list[str]:
    """Warnings where a group's list share is beyond a limit of the audit's policy.

    The policy is the one the serving model's audit applied (rebuilt from its report), the
    comparison is the audit's (everyone else, by default), and the limit check and its
    sufficiency rule are the gate's (:mod:`audits.limit_check`): the month's people, and the
    people in need the audit counted (``in_need``).
    """
    warnings: list[str] = []
    for row in rows:
        row.sufficient = limit_check.sufficient(
            policy,
            attribute,
            people=row.population,
            in_need=in_need.get((attribute, row.group), 0),
        )
    ref = _reference(rows, attribute, policy.reference_group)
    if ref is not None:
        ref.reference = True
    everyone = GroupRow("(all)", sum(r.population for r in rows), sum(r.selected for r in rows))

    def against(row: GroupRow) -> GroupRow:
        if ref is not None:
            return ref
        return GroupRow(
            REST, everyone.population - row.population, everyone.selected - row.selected
        )

    for row in rows:  # always shown, judged only where the policy gates it
        rate, ref_rate = row.selection_rate, against(row).selection_rate
        row.ratios["selection_rate"] = rate / ref_rate if ref_rate and math.isfinite(rate) else None
    total = everyone.selected or 1
    for gate in policy.gates:
        metric = gate.metric
        if metric not in JUDGED_METRICS or not gate.applies_to(attribute):
            continue

        def value(row: GroupRow, metric: str = metric) -> float | None:
            if metric == "selection_rate":
                return row.selection_rate
            share = need.get(row.group)
            return (row.selected / total) / share if share else None

        for row in rows:
            other = against(row)
            mine = value(row)
            base = _rest_value(metric, row, rows, need, total) if ref is None else value(other)
            if mine is None or base is None or not math.isfinite(mine) or not base:
                row.ratios[metric] = None
                continue
            disparity = mine / base if gate.disparity == "ratio" else mine - base
            row.ratios[metric] = disparity
            status = limit_check.check(gate, disparity, sufficient=row.sufficient)
            if row.reference or status != "beyond":
                continue
            below = gate.min is not None and disparity < gate.min
            limit = f"at least {gate.min:g}" if below else f"at most {gate.max:g}"
            kind = "a blocking gate" if gate.action == "block" else "a warning gate"
            warnings.append(
                f"{attribute} = {row.group}: {metric.replace('_', ' ')} {gate.disparity} "
                f"{disparity:.2f} against {other.group} (policy: {limit}; {kind})"
            )
    return warnings


def _rest_value(
    metric: str, row: GroupRow, rows: list[GroupRow], need: dict[str, float], total: int
) -> float | None:
    """Everyone else's value of a metric, against which ``row`` is compared."""
    others = [r for r in rows if r is not row]
    population = sum(r.population for r in others)
    selected = sum(r.selected for r in others)
    if metric == "selection_rate":
        return selected / population if population else None
    share = sum(need.get(r.group, 0.0) for r in others)
    return (selected / total) / share if share else None


def periods(
    session: Session, name: str, report: dict[str, Any] | None, *, limit: int = 12
) -> list[PeriodView]:
    """The latest ``limit`` scored periods, newest first, with group counts and outcomes."""
    policy = policy_from_report(report or {})
    labels = list(
        session.scalars(
            select(PeriodGroup.period)
            .where(PeriodGroup.model_name == name)
            .group_by(PeriodGroup.period)
            .order_by(PeriodGroup.period.desc())
            .limit(limit)
        )
    )
    if not labels:
        return []
    counts = session.execute(
        select(PeriodGroup).where(PeriodGroup.model_name == name, PeriodGroup.period.in_(labels))
    ).scalars()
    table: dict[str, dict[str, list[GroupRow]]] = defaultdict(lambda: defaultdict(list))
    for c in counts:
        table[c.period][c.attribute].append(GroupRow(c.group_name, c.population, c.selected))
    # The latest outcome of each queued entry, counted by group.
    latest = (
        select(Outcome.entry_id, func.max(Outcome.id).label("last"))
        .group_by(Outcome.entry_id)
        .subquery()
    )
    outcome_rows = session.execute(
        select(QueueEntry.period, EntryGroup.attribute, EntryGroup.group_name, Outcome.status)
        .join(EntryGroup, EntryGroup.entry_id == QueueEntry.id)
        .join(latest, latest.c.entry_id == QueueEntry.id)
        .join(Outcome, Outcome.id == latest.c.last)
        .where(QueueEntry.model_name == name, QueueEntry.period.in_(labels))
    )
    tally: dict[tuple[str, str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for period, attribute, group, status in outcome_rows:
        tally[(period, attribute, group)][status] += 1
    views = []
    for label in labels:
        attributes = []
        for attribute in sorted(table[label]):
            rows = sorted(table[label][attribute], key=lambda r: r.group)
            for row in rows:
                row.outcomes = dict(tally.get((label, attribute, row.group), {}))
            warnings = (
                share_warnings(
                    attribute,
                    rows,
                    policy,
                    _need_shares(report or {}, attribute),
                    limit_check.audited_in_need(report or {}),
                )
                if policy is not None
                else []
            )
            _withhold(rows, disclosure.threshold_of(policy))
            attributes.append(AttributeView(attribute, rows, warnings))
        first = next(iter(table[label].values()))
        views.append(
            PeriodView(
                label,
                sum(r.population for r in first),
                sum(r.selected for r in first),
                attributes,
                disclosure.threshold_of(policy),
            )
        )
    return views


def _withhold(rows: list[GroupRow], threshold: int) -> None:
    """Name each row's counts (and what is computed from them) to withhold, in place: each
    count column over the groups of one attribute adds up to the period's totals."""
    columns: dict[str, list[int]] = {
        "population": [r.population for r in rows],
        "selected": [r.selected for r in rows],
        **{s: [r.outcomes.get(s, 0) for r in rows] for s in OUTCOME_STATUSES},
    }
    for column, values in columns.items():
        for row, shown in zip(rows, disclosure.withhold(values, threshold), strict=True):
            if shown is None:
                row.withheld.add(column)
    for row in rows:
        if "population" in row.withheld:
            row.withheld |= set(columns)
        if row.withheld & {"population", "selected"}:
            row.withheld |= {"selection_rate", "ratios"}
