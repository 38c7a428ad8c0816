""" "About this score": what the served version's score means, read from its audit report.

For coordinators (and analysts and the oversight board): what the score means and does not
mean, from the version's model card; how accurate it is at the outreach capacity, overall and
per group with the audit's intervals; the automation-bias warning; what to do when the reasons
look wrong. Built from the audit report of the version being served, so after a model swap the
page says what the new version's audit says.

Groups are aggregates, never anyone's own attribute. A group the audit could not judge on its
own (below the policy's minimum size, or too few people in need) is shown as "too few to judge",
without numbers; a count is shown only for groups at or above the policy's minimum size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from audits import disclosure
from audits.groups import JOIN

#: The accuracy measures shown, in the words coordinators read.
MEASURES: dict[str, str] = {
    "precision": "Of the people offered help, the share who were in need",
    "recall": "Of the people in need, the share who were offered help",
}


@dataclass(frozen=True)
class Estimate:
    """A share with its interval (``None``: not measured)."""

    value: float | None
    low: float | None = None
    high: float | None = None

    @classmethod
    def read(cls, metrics: Mapping[str, Any], ci: Mapping[str, Any] | None, key: str) -> Estimate:
        value = _number(metrics.get(key))
        bounds = (ci or {}).get(key) or (None, None)
        low, high = (_number(b) for b in list(bounds)[:2]) if len(bounds) >= 2 else (None, None)
        return cls(value, low, high)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class GroupAccuracy:
    """One group's accuracy at capacity, or ``judged = False`` ("too few to judge")."""

    attribute: str
    group: str
    #: ``None`` below the policy's minimum group size (never shown).
    people: int | None
    judged: bool
    precision: Estimate
    recall: Estimate


@dataclass(frozen=True)
class AboutScore:
    """What the "about this score" page says, for one served version."""

    name: str
    version: str
    audit_id: str
    decision: str
    unit: str
    label: str
    intended_use: str
    out_of_scope: tuple[str, ...]
    limitations: tuple[str, ...]
    capacity: str
    periods: tuple[str, ...]
    interval_level: float
    min_group_size: int
    overall: GroupAccuracy
    groups: tuple[GroupAccuracy, ...]

    @property
    def attributes(self) -> list[str]:
        return list(dict.fromkeys(g.attribute for g in self.groups))


def about_score(report: Mapping[str, Any], *, name: str, version: str) -> AboutScore:
    """The page's content from the served version's audit report (schema ``outreach.audit``).

    Parameters
    ----------
    report
        The audit report bound to the served version (``lifecycle.catalogue.read_report``).
    name, version
        The served model's name and version.
    """
    policy = report.get("policy") or {}
    card = report.get("model_card") or {}
    experiment = report.get("experiment") or {}
    point = report.get("operating_point") or {}
    minimum = disclosure.threshold_of(policy)
    overall = report.get("overall") or {}
    return AboutScore(
        name=name,
        version=version,
        audit_id=str(report.get("audit_id", "")),
        decision=str(report.get("decision", "")),
        unit=str(experiment.get("unit") or "individual"),
        label=str(experiment.get("label_description") or ""),
        intended_use=str(card.get("intended_use") or ""),
        out_of_scope=tuple(str(u) for u in card.get("out_of_scope_uses") or ()),
        limitations=tuple(str(u) for u in card.get("limitations") or ()),
        capacity=str(point.get("description") or ""),
        periods=tuple(str(p) for p in point.get("periods") or ()),
        interval_level=float(policy.get("interval_level") or 0.95),
        min_group_size=minimum,
        overall=GroupAccuracy(
            "everyone",
            "Everyone in the audit",
            _people(overall.get("n"), minimum),
            True,
            Estimate.read(overall, None, "precision"),
            Estimate.read(overall, None, "recall"),
        ),
        groups=_groups(report.get("groups") or (), minimum),
    )


def _people(n: Any, minimum: int) -> int | None:
    return int(n) if isinstance(n, int) and n >= minimum else None


def _groups(rows: Any, minimum: int) -> tuple[GroupAccuracy, ...]:
    """Each group's accuracy, its size shown by the one small-cell rule
    (:mod:`audits.disclosure`): not when small, nor when it would give a small one back."""
    sizes = [
        {"attribute": r.get("attribute"), "group": r.get("group"), "n": r.get("n")} for r in rows
    ]
    disclosure.withhold_groups(sizes, minimum, size="n")
    return tuple(
        _group(row, minimum, shown=size.get("n") is not None)
        for row, size in zip(rows, sizes, strict=True)
    )


def _group(row: Mapping[str, Any], minimum: int, *, shown: bool = True) -> GroupAccuracy:
    people = _people(row.get("n"), minimum) if shown else None
    judged = bool(row.get("sufficient")) and _people(row.get("n"), minimum) is not None
    metrics = row.get("metrics") or {}
    ci = row.get("ci") or {}
    none = Estimate(None)
    return GroupAccuracy(
        str(row.get("attribute", "")),
        str(row.get("group", "")),
        people,
        judged,
        Estimate.read(metrics, ci, "precision") if judged else none,
        Estimate.read(metrics, ci, "recall") if judged else none,
    )


def attribute_words(attribute: str) -> str:
    """A group attribute as a table's caption reads it (``age_band`` -> ``Age band``)."""
    words = " and ".join(part.strip().replace("_", " ") for part in attribute.split(JOIN))
    return words[:1].upper() + words[1:]


def percent(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.0%}"


def estimate_words(estimate: Estimate, level: float) -> str:
    """``30% (95% interval: 22% to 38%)``, or the point alone when there is no interval."""
    if estimate.value is None:
        return "not measured"
    if estimate.low is None or estimate.high is None:
        return percent(estimate.value)
    return (
        f"{percent(estimate.value)} ({level:.0%} interval: {percent(estimate.low)} to "
        f"{percent(estimate.high)})"
    )


def group_rows(about: AboutScore, attribute: str) -> Sequence[GroupAccuracy]:
    return [g for g in about.groups if g.attribute == attribute]
