"""The decision on one screen: generated from the gate's decision, so that the summary, the
report's decision section and its chart labels say the same thing."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from audits.decision_summary import VERDICT_LABELS, summarise, verdict_label
from audits.report import render_body, render_html
from lifecycle.catalogue import list_versions, read_report
from model.registry import connect
from tests.support.homes import Site

BEYOND = {
    "metric": "recall ratio",
    "attribute": "race_ethnicity",
    "group": "American Indian or Alaska Native",
    "value": 0.265,
    "ci": [0.077, 0.9],
    "limit": "recall ratio >= 0.8",
    "kind": "apparent_breach",
    "blocking": True,
    "message": "beyond the limit but not clearly beyond noise",
    "settle": "about 1045 more month(s) of data like this",
    "p_value": 0.2,
    "effective_n": 300.0,
}


def unjudged(group: str, attribute: str = "age_band") -> dict[str, Any]:
    return {**BEYOND, "group": group, "attribute": attribute, "kind": "underpowered", "value": 0.9}


@pytest.fixture(scope="module")
def stored(site: Site) -> dict[str, Any]:
    """A real report of the site's release awaiting approval."""
    registry = connect(site.home)
    name, version = site.awaiting
    row = next(r for r in list_versions(registry, name) if r["version"] == version)
    return read_report(registry, row["audit_id"])


def with_decision(report: dict[str, Any], **decision: Any) -> dict[str, Any]:
    changed = copy.deepcopy(report)
    changed.update(decision)
    return changed


def test_a_chosen_candidate_beyond_the_limit_reads_the_same_everywhere(
    stored: dict[str, Any],
) -> None:
    candidates = copy.deepcopy(stored["candidates"]) or [
        {
            "name": "logistic",
            "version": None,
            "decision": "REVIEW",
            "precision_at_k": 0.3,
            "recall_at_k": 0.2,
            "worst_recall_ratio": 0.265,
            "chosen": True,
        }
    ]
    while len(candidates) < 2:
        candidates.append({**candidates[0], "name": "boosted", "chosen": False})
    for c in candidates:
        c["decision"], c["worst_recall_ratio"] = ("REVIEW", 0.265) if c["chosen"] else ("FAIL", 0.2)
    report = with_decision(
        stored,
        decision="REVIEW",
        breaches=[],
        review=[BEYOND, unjudged("18-24"), unjudged("65+"), unjudged("female", "sex")],
        candidates=candidates,
        not_assessable=[],
    )
    summary = summarise(report)
    assert summary.headline.startswith("REVIEW: 1 group is beyond a limit")
    assert (
        "American Indian or Alaska Native (race ethnicity) is beyond the limit"
        in (summary.concerns[0])
    )
    assert "0.27" in summary.concerns[0] and "at least 0.8" in summary.concerns[0]
    assert summary.open_line.startswith("3 groups have too little evidence to judge either way")
    assert summary.not_assessable_line == ""
    body = str(render_body(report))
    assert summary.headline in body and summary.commitment in body
    decision = body.split('<h2 id="decision">', 1)[1].split("</section>", 1)[0]
    assert "no breach" not in body.lower() and "no group is beyond a blocking limit;" not in body
    assert summary.decision_sentence in decision
    assert "1 group is beyond a blocking limit, but the evidence could be chance" in decision
    labels = re.findall(r"\(([^()]*, chosen)\)</text>", body)
    assert labels == [f"{VERDICT_LABELS['REVIEW']}, chosen"]
    assert f"({VERDICT_LABELS['FAIL']})" in body and "(fails, chosen)" not in body
    assert summary.label == verdict_label("REVIEW") == "for the board to decide"
    assert "<svg" in render_html(report)


def test_not_assessable_groups_fold_into_one_line_and_a_pass_says_no_breach_once(
    stored: dict[str, Any],
) -> None:
    missing = [
        {
            "group": g,
            "attribute": "race_ethnicity",
            "people": 40,
            "people_in_need": 2,
            "why": "too few people in need",
        }
        for g in ("Asian", "Multiracial or other", "Pacific Islander")
    ]
    report = with_decision(
        stored, decision="PASS", breaches=[], review=[], warnings=[], not_assessable=missing
    )
    summary = summarise(report)
    assert summary.headline.startswith("PASS: ")
    assert summary.not_assessable_line == (
        "3 groups could not be judged with this data: Asian (race ethnicity), Multiracial or "
        "other (race ethnicity), Pacific Islander (race ethnicity)."
    )
    body = str(render_body(report))
    assert body.count(summary.not_assessable_line) == 1
    assert summary.decision_sentence in body
    assert "beyond the limit" not in body.split('<h2 id="charts">', 1)[0]


def test_a_gate_that_could_judge_no_group_is_one_concern_not_a_group(
    stored: dict[str, Any],
) -> None:
    nothing = {
        **BEYOND,
        "attribute": "(all)",
        "group": "(no group)",
        "kind": "nothing_judged",
        "value": None,
        "ci": [None, None],
        "message": "no group could be judged on its own under recall ratio >= 0.8",
    }
    summary = summarise(
        with_decision(stored, decision="REVIEW", breaches=[], review=[nothing], warnings=[])
    )
    assert "(no group)" not in " ".join([*summary.concerns, summary.open_line])
    assert any(c.startswith("No group could be judged on its own on") for c in summary.concerns)
    assert "at least 0.8" in summary.concerns[-1] and "the board decides" in summary.concerns[-1]
    assert summary.headline == (
        "REVIEW: no group could be judged on its own against 1 limit. The board decides."
    )


def test_a_fail_puts_the_worst_breach_first(stored: dict[str, Any]) -> None:
    near = {**BEYOND, "kind": "disparity", "group": "Black", "value": 0.75}
    far = {**BEYOND, "kind": "disparity", "group": "White", "value": 0.3}
    report = with_decision(stored, decision="FAIL", breaches=[near, far], review=[])
    summary = summarise(report)
    assert summary.headline.startswith("FAIL: 2 findings beyond a blocking limit")
    assert summary.concerns[0].startswith("White (race ethnicity)")
    assert "could still be chance" not in summary.concerns[0]
    assert "never served" in summary.commitment
