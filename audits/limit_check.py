"""The one limit check: whether a group is judged on its own, and whether its disparity is beyond
a limit of the policy.

Every reader that puts a group's disparity against the policy's limits uses this module: the
release audit (:mod:`audits.group_metrics`, :mod:`audits.audit`), monitoring before outcomes are
known (``monitoring.group_shares``, ``monitoring.period_report``) and the board's pages. So an audit
and the monitoring after it cannot disagree about a group because they counted it by different
rules.

**Sufficiency** (the gate's materiality thresholds, in people): a group is judged on its own when
it has at least the policy's ``min_group_size`` people and at least ``positives_needed`` people
in need (``min_group_positives``, or the attribute's own ``min_group_positives_for``). Before
outcomes are known, the people in need are those expected from the calibrated scores.

**The check** (:func:`check`) says one of four things, in this order:

- ``too_few``: the group is below the sizes above: not judged, whatever its estimate;
- ``unknown``: its measure cannot be computed (nobody in need, no one else to compare with);
- ``beyond``: its estimate is beyond the gate's limit (:meth:`audits.policy.Gate.outside`);
- ``within``: its estimate is within the limit.

This is the comparison of an estimate with a limit. Whether evidence shows a breach beyond doubt
(a FAIL) is the gate's test (:mod:`audits.gate`), which runs only on the groups judged here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from audits.policy import Gate, Policy

Status = Literal["too_few", "unknown", "beyond", "within"]

#: Each status in the words every page and document uses.
WORDS: dict[str, str] = {
    "too_few": "too few to judge",
    "unknown": "cannot be computed",
    "beyond": "beyond the limit",
    "within": "within the limit",
}


@dataclass(frozen=True)
class Materiality:
    """The sizes from which a group of one attribute (or intersection) is judged on its own."""

    people: int
    in_need: int

    def sufficient(self, people: Any, in_need: Any) -> Any:
        """Whether groups of these sizes are judged on their own (scalars give a bool, arrays an
        array of bools)."""
        if np.ndim(people) == 0 and np.ndim(in_need) == 0:
            return bool(people >= self.people and in_need >= self.in_need)
        return (np.asarray(people) >= self.people) & (np.asarray(in_need) >= self.in_need)

    def describe(self) -> str:
        return f"{self.people:,} people and {self.in_need:,} in need"


def materiality(policy: Policy, attribute: str) -> Materiality:
    """The policy's sizes for groups of ``attribute`` (an attribute or an intersection)."""
    return Materiality(policy.min_group_size, policy.positives_needed(attribute))


def sufficient(policy: Policy, attribute: str, *, people: float, in_need: float) -> bool:
    """Whether a group of ``attribute`` with these many people, and people in need, is judged on
    its own under ``policy``."""
    return bool(materiality(policy, attribute).sufficient(people, in_need))


def _gate(gate: Gate | Mapping[str, Any]) -> Gate:
    return gate if isinstance(gate, Gate) else Gate.model_validate(dict(gate))


def judged(value: float | None, *, sufficient: bool) -> bool:
    """Whether a group's estimate is put against the limits at all: the group is judged on its
    own and its measure could be computed."""
    return sufficient and value is not None and math.isfinite(value)


def check(gate: Gate | Mapping[str, Any], value: float | None, *, sufficient: bool) -> Status:
    """A group's disparity against one gate's limit (a report's gate mapping is accepted too)."""
    if not sufficient:
        return "too_few"
    if value is None or not judged(value, sufficient=sufficient):
        return "unknown"
    return "beyond" if _gate(gate).outside(value) else "within"


def beyond_report_gates(report: Mapping[str, Any], disparity: Mapping[str, Any]) -> bool:
    """Whether a sufficient group's point estimate is beyond a limit of the report's gates.

    Parameters
    ----------
    report : mapping
        An audit report; its ``policy.gates`` are the limits.
    disparity : mapping
        One of the report's disparities: ``metric``, ``kind``, ``attribute``, ``value`` and
        ``sufficient``.

    Returns
    -------
    bool
        True when a gate on the same metric and kind, applying to the attribute, finds the
        value beyond its limit (:func:`check`); a group too small to judge is never beyond.
    """
    for found in report["policy"]["gates"]:
        gate = Gate.model_validate(found)
        if (gate.metric, gate.disparity) != (disparity["metric"], disparity["kind"]):
            continue
        if not gate.applies_to(disparity["attribute"]):
            continue
        value, judged = disparity.get("value"), bool(disparity.get("sufficient"))
        if check(gate, value, sufficient=judged) == "beyond":
            return True
    return False


def check_group(
    policy: Policy,
    gate: Gate,
    attribute: str,
    value: float | None,
    *,
    people: float,
    in_need: float,
) -> Status:
    """:func:`check` with the sufficiency rule applied to the group's sizes."""
    return check(
        gate, value, sufficient=sufficient(policy, attribute, people=people, in_need=in_need)
    )


def interval_includes(low: float | None, high: float | None, value: float) -> bool | None:
    """Whether an interval includes ``value`` (``None`` when the interval is unknown)."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return None
    return bool(low <= value <= high)


def shown_interval(
    low: float | None, high: float | None, value: float, *, decimals: int = 2
) -> tuple[float, float] | None:
    """An interval rounded for reading so that it shows ``value`` inside it exactly when it
    includes it: an end beside ``value`` on the far side is rounded away from ``value``, the
    other ends outward. (A ratio interval of 0.79 to 0.998 excludes 1 and reads 0.79–0.99, not
    0.79–1.00; one of 0.83 to 1.002 includes 1 and reads 0.83–1.01.)"""
    if interval_includes(low, high, value) is None:
        return None
    assert low is not None and high is not None
    scale = 10**decimals

    def down(x: float) -> float:
        return math.floor(round(x * scale, 6)) / scale

    def up(x: float) -> float:
        return math.ceil(round(x * scale, 6)) / scale

    if high < value:  # wholly below: its top rounded down, so it still reads below
        return down(low), min(down(high), down(value - 1 / scale))
    if low > value:  # wholly above: its bottom rounded up
        return max(up(low), up(value + 1 / scale)), up(high)
    return down(low), up(high)


def audited_in_need(report: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    """The people in need the release audit counted in each group, by (attribute, group).

    Monitoring before outcomes are known judges a group's sufficiency on these: a month has no
    evidence of need yet, only the model's expectation, so the evidence of need is the audit's,
    and monitoring judges only groups the audit could judge on their own.
    """
    out: dict[tuple[str, str], int] = {}
    for group in report.get("groups") or []:
        found = group.get("people_in_need")
        if found is not None:
            out[(str(group["attribute"]), str(group["group"]))] = int(found)
    return out
