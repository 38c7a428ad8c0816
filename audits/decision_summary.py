"""The one-screen summary of an audit's decision, in the words an oversight board reads.

Every sentence is generated from the gate's decision as the report records it (``decision``,
``breaches``, ``review`` and, where the gate gives it, ``not_assessable``), so the summary above a
report, its charts' labels, the releases page and the approval text cannot disagree with the
decision or with each other. Pure: a report mapping in, a :class:`DecisionSummary` out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from model.words import UnitWords, unit_words

#: What each decision is called wherever a candidate or version is labelled (chart labels,
#: tables, the releases page): one vocabulary.
VERDICT_LABELS: dict[str, str] = {
    "PASS": "passes",
    "REVIEW": "for the board to decide",
    "FAIL": "fails",
}

#: The gated metrics in words (the same as the report's).
METRIC_WORDS = {
    "selection_rate": "share offered outreach",
    "recall": "share of people in need who were offered outreach",
    "precision": "share of those offered outreach who were in need",
    "false_positive_rate": "share of people not in need who were offered outreach",
    "false_negative_rate": "share of people in need who were missed",
    "flagged_to_need": "share of outreach against share of need",
}
#: Review items whose estimate lies beyond the limit (the evidence could still be chance).
BEYOND = ("apparent_breach",)
#: How many groups a folded line names before "and N more".
NAMED = 8


@dataclass(frozen=True)
class DecisionSummary:
    """The decision on one screen: a headline, the worst concerns first, the groups that could
    not be judged folded into lines, and what approving commits the board to."""

    verdict: str
    label: str
    headline: str
    concerns: tuple[str, ...]
    open_line: str
    not_assessable_line: str
    decision_sentence: str
    commitment: str
    beyond: int
    open_groups: int
    not_assessable: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "label": self.label,
            "headline": self.headline,
            "concerns": list(self.concerns),
            "open_line": self.open_line,
            "not_assessable_line": self.not_assessable_line,
            "decision_sentence": self.decision_sentence,
            "commitment": self.commitment,
        }


def counted_in(report: Mapping[str, Any]) -> UnitWords:
    """What an audit report's groups count: people, or areas for a neighbourhood experiment
    (the report's ``unit``, else its experiment's; people for an external audit)."""
    unit = report.get("unit") or (report.get("experiment") or {}).get("unit")
    return unit_words(unit)


def verdict_label(verdict: str | None) -> str:
    """A decision's label in the one vocabulary ("passes", "for the board to decide", "fails")."""
    return VERDICT_LABELS.get(str(verdict or ""), "not audited")


def _metric_words(metric: str) -> str:
    """ "recall ratio" -> "share of people in need who were offered outreach (ratio)"."""
    name, _, kind = str(metric).partition(" ")
    words = METRIC_WORDS.get(name)
    if words is None:
        return str(metric).replace("_", " ")
    return f"{words}{f' ({kind})' if kind else ''}"


def _limit_words(limit: str) -> str:
    """ ">= 0.8" inside "recall ratio >= 0.8" -> "at least 0.8"."""
    bounds = re.findall(r"(>=|<=)\s*(-?[\d.]+)", str(limit))
    if not bounds:
        return str(limit)
    return " and ".join(("at least " if op == ">=" else "at most ") + v for op, v in bounds)


def _how_far(item: Mapping[str, Any]) -> float:
    """How far beyond its limit an estimate lies (larger: worse); 0 when unknown."""
    value = item.get("value")
    if not isinstance(value, int | float) or not math.isfinite(value):
        return 0.0
    worst = 0.0
    for op, bound in re.findall(r"(>=|<=)\s*(-?[\d.]+)", str(item.get("limit", ""))):
        gap = float(bound) - value if op == ">=" else value - float(bound)
        worst = max(worst, gap)
    return worst


def _number(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) and math.isfinite(value) else "–"


def _group(item: Mapping[str, Any]) -> str:
    return f"{item.get('group', '?')} ({str(item.get('attribute', '?')).replace('_', ' ')})"


def _sentence(item: Mapping[str, Any], *, sure: bool) -> str:
    """One concern in a sentence: the group, the measure, its value against the limit."""
    if item.get("kind") in ("proxy", "missingness", "regression") or not item.get("limit"):
        message = str(item.get("message") or "").strip()
        return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")
    doubt = "" if sure else "; the evidence could still be chance"
    return (
        f"{_group(item)} is beyond the limit: {_metric_words(item.get('metric', ''))} "
        f"{_number(item.get('value'))} to everyone else, where the policy asks for "
        f"{_limit_words(str(item.get('limit', '')))}{doubt}."
    )


def _folded(groups: Sequence[str]) -> str:
    named = list(dict.fromkeys(groups))
    shown = ", ".join(named[:NAMED])
    return shown + (f" and {len(named) - NAMED} more" if len(named) > NAMED else "")


def summarise(report: Mapping[str, Any]) -> DecisionSummary:
    """The decision summary of an audit report (``audits.report.build_report``'s mapping).

    Reads ``not_assessable`` (each item: group, attribute, people, people_in_need, why) when the
    gate gave it, and works without it.
    """
    verdict = str(report.get("decision") or "")
    breaches = sorted(report.get("breaches") or [], key=lambda b: -_how_far(b))
    review = list(report.get("review") or [])

    def is_beyond(r: Mapping[str, Any]) -> bool:
        # A group too small to judge whose own data show it beyond the limit counts as beyond.
        return r.get("kind") in BEYOND or (r.get("kind") == "not_assessable" and _how_far(r) > 0)

    beyond = sorted((r for r in review if is_beyond(r)), key=lambda r: -_how_far(r))
    others = [r for r in review if not is_beyond(r)]
    unjudged = [r for r in others if r.get("kind") not in ("missingness", "nothing_judged")]
    nothing_judged = [r for r in others if r.get("kind") == "nothing_judged"]
    gaps = [r for r in others if r.get("kind") == "missingness"]
    not_assessable = list(report.get("not_assessable") or [])

    concerns = [_sentence(b, sure=True) for b in breaches]
    concerns += [_sentence(r, sure=False) for r in beyond]
    concerns += [_sentence(r, sure=False) for r in gaps]
    concerns += [
        f"No group could be judged on its own on {_metric_words(r.get('metric', ''))}, where "
        f"the policy asks for {_limit_words(str(r.get('limit', '')))}: the data are too thin "
        "for this limit, so the board decides."
        for r in nothing_judged
    ]
    open_groups = list(dict.fromkeys(_group(r) for r in unjudged))
    open_line = (
        f"{len(open_groups)} group{'s' if len(open_groups) != 1 else ''} "
        f"{'have' if len(open_groups) != 1 else 'has'} too little evidence to judge either way: "
        f"{_folded(open_groups)}."
        if open_groups
        else ""
    )
    missing_groups = [_group(n) for n in not_assessable]
    # Too small to judge, but their own estimates are beyond a limit: named among the concerns.
    flagged = {_group(r) for r in beyond}
    disclosed = [
        f"{_group(n)} could not be judged with this data ({n.get('people_in_need', '?')} "
        f"{counted_in(report).many} "
        f"in need), and its own estimate, {_number(n.get('estimate'))} of everyone else's, is "
        "beyond the limit."
        for n in not_assessable
        if n.get("beyond_limit") and _group(n) not in flagged
    ]
    concerns += disclosed
    not_assessable_line = (
        f"{len(missing_groups)} group{'s' if len(missing_groups) != 1 else ''} could not be "
        f"judged with this data: {_folded(missing_groups)}."
        if missing_groups
        else ""
    )
    n_beyond = len(breaches) + len(beyond)
    if verdict == "FAIL":
        headline = (
            f"FAIL: {len(breaches)} finding{'s' if len(breaches) != 1 else ''} beyond a blocking "
            "limit. This version can never be served."
        )
        decision_sentence = (
            f"The release is blocked by {len(breaches)} finding"
            f"{'s' if len(breaches) != 1 else ''} beyond a blocking limit."
        )
        commitment = "There is nothing to approve: a version that fails its audit is never served."
    elif verdict == "REVIEW":
        parts = []
        if beyond:
            parts.append(
                f"{len(beyond)} group{'s are' if len(beyond) != 1 else ' is'} beyond a limit, "
                "though the evidence could be chance"
            )
        if gaps:
            parts.append(f"{len(gaps)} gap{'s' if len(gaps) != 1 else ''} in the data differ")
        if nothing_judged:
            parts.append(
                f"no group could be judged on its own against {len(nothing_judged)} "
                f"limit{'s' if len(nothing_judged) != 1 else ''}"
            )
        if open_groups:
            parts.append(
                f"{len(open_groups)} group{'s' if len(open_groups) != 1 else ''} could not be "
                "judged either way"
            )
        headline = (
            "REVIEW: "
            + ("; ".join(parts) or "the audit could not settle every question")
            + ". The board decides."
        )
        decision_sentence = (
            f"{len(beyond)} group{'s are' if len(beyond) != 1 else ' is'} beyond a blocking "
            "limit, but the evidence could be chance: no group is beyond it beyond doubt, and "
            "the board decides."
            if beyond
            else "No group is beyond a blocking limit; some questions are open (below), and "
            "the board decides."
        )
        taken = len(review)
        commitment = (
            "Approving serves this version to coordinators at once and records that the board "
            f"takes on the {taken} open question{'s' if taken != 1 else ''} above; monthly "
            "monitoring checks each group again as outcomes come in. Rejecting means it is never "
            "served."
        )
    else:
        headline = "PASS: every group judged on its own is within every blocking limit."
        decision_sentence = (
            "No group judged on its own is beyond a blocking limit; the groups too small to "
            "judge are named."
            if missing_groups
            else "No group is beyond a blocking limit, and every question is settled."
        )
        commitment = (
            "Approving, where the policy asks for it, serves this version at once and records "
            f"that the board accepts the {len(disclosed)} group"
            f"{'s' if len(disclosed) != 1 else ''} too small to judge whose own estimates are "
            "beyond the limit."
            if disclosed
            else "Approving, where the policy asks for it, serves this version at once; the "
            "audit leaves the board no open question."
        )
    return DecisionSummary(
        verdict=verdict,
        label=verdict_label(verdict),
        headline=headline,
        concerns=tuple(concerns),
        open_line=open_line,
        not_assessable_line=not_assessable_line,
        decision_sentence=decision_sentence,
        commitment=commitment,
        beyond=n_beyond,
        open_groups=len(open_groups),
        not_assessable=len(missing_groups),
    )
