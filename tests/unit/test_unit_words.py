"""The gate's reasons, the report and the disclosure words count what the experiment ranks: people
for the individual experiment, areas for the neighbourhood one (model.words.unit_words)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from audits import disclosure
from audits.audit import AuditOutcome, run_audit
from audits.decision_summary import counted_in, summarise
from audits.report import Subject, build_report, render_html
from model.spec import load_spec
from model.words import AREAS, PEOPLE, unit_words
from tests.support.specs import INDIVIDUAL_SPEC, NEIGHBOURHOOD_SPEC, policy_with

SPECS = [(INDIVIDUAL_SPEC, "people", "areas"), (NEIGHBOURHOOD_SPEC, "areas", "people")]
#: A count followed by the unit: "4,000 areas".
COUNTED = r"\b\d[\d,]* {}\b"


def _outcome(unit: str) -> AuditOutcome:
    """Three groups: A far below the recall limit, B within it, C too small to judge."""
    groups, labels, selected = [], [], []
    for group, recall, n in (("A", 0.4, 4000), ("B", 0.9, 4000), ("C", 0.9, 40)):
        need = n // 5
        labels.append(np.r_[np.ones(need, int), np.zeros(n - need, int)])
        selected.append(np.r_[np.arange(need) < round(recall * need), np.zeros(n - need, bool)])
        groups += [group] * n
    policy = policy_with(sensitive_attributes=["race_ethnicity"], intersections=[])
    return run_audit(
        policy,
        labels=np.concatenate(labels),
        selected=np.concatenate(selected),
        scores=None,
        sensitive={"race_ethnicity": np.array(groups, dtype=object)},
        unit=unit,
    )


def _report(unit: str, outcome: AuditOutcome) -> dict:
    policy = policy_with(sensitive_attributes=["race_ethnicity"], intersections=[])
    return build_report(
        audit_id="test",
        subject=Subject(kind="candidate", name="test"),
        policy=policy,
        audit=outcome.audit,
        decision=outcome.decision,
        operating_point={"kind": "top_k", "description": "top k"},
        outcome="had a crisis",
        experiment={"unit": unit},
    )


def test_each_unit_has_its_words() -> None:
    assert unit_words("individual") is PEOPLE and unit_words(None) is PEOPLE
    assert unit_words("neighbourhood") is AREAS
    assert (AREAS.one, AREAS.many, AREAS.who) == ("area", "areas", "that")
    with pytest.raises(ValueError, match="unknown unit 'household'"):
        unit_words("household")


@pytest.mark.parametrize(("spec_path", "word", "other"), SPECS)
def test_the_gates_reasons_count_the_specs_unit(spec_path: Path, word: str, other: str) -> None:
    unit = load_spec(spec_path).unit
    assert unit_words(unit).many == word
    outcome = _outcome(unit)
    decision = outcome.decision
    messages = [b.message for b in [*decision.breaches, *decision.review, *decision.warnings]]
    messages += [n.why for n in decision.not_assessable]
    messages += [g.note for g in outcome.audit.groups if g.note]
    assert decision.breaches and decision.not_assessable
    counted = [m for m in messages if re.search(COUNTED.format(word), m)]
    assert counted, messages
    assert any(f"40 {word}, 8 in need" in m for m in messages)  # C, too small to judge
    assert not [m for m in messages if re.search(COUNTED.format(other), m)]


@pytest.mark.parametrize(("spec_path", "word", "other"), SPECS)
def test_the_report_counts_the_specs_unit(spec_path: Path, word: str, other: str) -> None:
    unit = load_spec(spec_path).unit
    report = _report(unit, _outcome(unit))
    assert report["unit"] == unit and counted_in(report).many == word
    summary = " ".join(report["summary"])
    assert f"Of the {word} {unit_words(unit).who} later had a crisis" in summary
    assert f"{word} in need" in summary and f" {other}" not in summary
    sentences = " ".join(r["sentence"] for r in report["label_bias_sensitivity"])
    assert f"those {word} were not offered" in sentences and other not in sentences
    concerns = " ".join(summarise(report).concerns)
    assert not re.search(COUNTED.format(other), concerns)
    html = render_html(report)
    assert f"40 {word}, 8 in need" in html  # the groups the gate could not judge
    assert f'<th scope="col">{word}</th>' in html and f"resamples of whole {word}" in html
    assert f"{word.capitalize()} offered outreach:" in html
    assert f"can miss {word} {unit_words(unit).who} avoid services" in html
    assert not re.search(COUNTED.format(other), html)


def test_a_report_without_a_unit_counts_people() -> None:
    assert counted_in({}) is PEOPLE
    assert counted_in({"experiment": {"unit": "neighbourhood"}}) is AREAS
    assert counted_in({"unit": "neighbourhood", "experiment": None}) is AREAS


@pytest.mark.parametrize(("spec_path", "word", "other"), SPECS)
def test_small_counts_of_either_unit_are_withheld(spec_path: Path, word: str, other: str) -> None:
    counted = unit_words(load_spec(spec_path).unit)
    text = f"C (race_ethnicity; 40 {word}, 8 in need); D: 4,000 {word}"
    assert disclosure.scrub(text, 100) == (
        f"C (race_ethnicity; fewer than 100 {word}, fewer than 100 in need); D: 4,000 {word}"
    )
    assert disclosure.words(100, counted) == f"fewer than 100 {word}, or would reveal such a count"
