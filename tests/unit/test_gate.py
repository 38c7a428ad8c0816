"""The gate: known disparities are caught, parity passes, small groups never pass silently."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from audits.audit import run_audit
from audits.gate import evaluate, holm
from audits.policy import Policy, load_policy, parse_policy
from kernel.errors import SpecError
from tests.support.specs import DEFAULT_POLICY, policy_with


def _decisions(recall_by_group: dict[str, float], n: int = 4000, seed: int = 0):
    """Per group: a fifth in need, exactly ``recall`` of them offered outreach, 2% of others.

    ``seed`` only shuffles rows, so every group's metrics are exact.
    """
    groups, labels, selected = [], [], []
    for group, recall in recall_by_group.items():
        need = n // 5
        offered_need = round(recall * need)
        offered_other = round(0.02 * (n - need))
        labels.append(np.r_[np.ones(need, int), np.zeros(n - need, int)])
        selected.append(
            np.r_[
                np.arange(need) < offered_need,
                np.arange(n - need) < offered_other,
            ]
        )
        groups += [group] * n
    order = np.random.default_rng(seed).permutation(len(groups))
    return (
        np.concatenate(labels)[order],
        np.concatenate(selected)[order],
        {"race_ethnicity": np.array(groups, dtype=object)[order]},
    )


def _audit(policy: Policy, recall_by_group: dict[str, float], **kwargs):
    labels, selected, sensitive = _decisions(recall_by_group, **kwargs)
    return run_audit(policy, labels=labels, selected=selected, scores=None, sensitive=sensitive)


def test_default_policy_loads_with_hash() -> None:
    policy = load_policy(DEFAULT_POLICY)
    assert len(policy.sha256) == 64 and policy.gates[0].metric == "recall"


def test_a_missing_policy_is_an_error_not_a_skip(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no fairness policy"):
        load_policy(None)
    with pytest.raises(SpecError, match="cannot read"):
        load_policy(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"intervention": "punitive"}, "intervention: Input should be 'assistive'"),
        (
            {"gates": [{"metric": "recall", "disparity": "ratio"}]},
            "gates[0]: give 'min', 'max' or both",
        ),
        ({"intersections": [["race_ethnicity", "income"]]}, "not in sensitive_attributes"),
        ({"gates": [{"metric": "accuracy", "disparity": "ratio", "min": 1}]}, "gates[0].metric"),
        ({"interval_level": 1.5}, "interval_level"),
        ({"missingness": {"action": "ignore"}}, "missingness.action"),
    ],
)
def test_invalid_policies_name_the_key(change: dict, expected: str) -> None:
    raw = tomllib.loads(DEFAULT_POLICY.read_text())
    raw.update(change)
    with pytest.raises(SpecError) as caught:
        parse_policy(raw)
    assert any(expected in d for d in caught.value.details), caught.value.details


def test_injected_disparity_fails_naming_the_group() -> None:
    outcome = _audit(policy_with(), {"A": 0.6, "B": 0.6, "C": 0.3})
    assert outcome.decision.verdict == "FAIL"
    (breach,) = outcome.decision.breaches
    assert breach.group == "C" and breach.metric == "recall ratio"
    assert breach.value == pytest.approx(0.5)
    assert breach.ci[0] < breach.value < breach.ci[1]


def test_parity_passes() -> None:
    outcome = _audit(policy_with(), {"A": 0.6, "B": 0.6, "C": 0.6})
    assert outcome.decision.verdict == "PASS" and not outcome.decision.breaches


@pytest.mark.parametrize(
    ("rule", "verdict"),
    [
        ("point_estimate", "FAIL"),
        ("significant_breach", "REVIEW"),
        ("confident_breach", "REVIEW"),
        ("confident_pass", "REVIEW"),
    ],
)
def test_decision_rules_on_a_noisy_small_gap(rule: str, verdict: str) -> None:
    # A small group slightly below the limit: only a point-estimate rule fails it outright; the
    # others cannot call it a breach, and never pass it either: a person decides.
    outcome = _audit(policy_with(decision_rule=rule), {"A": 0.6, "B": 0.45}, n=400)
    ratio = outcome.audit.disparity("race_ethnicity", "B", "recall", "ratio").value
    assert ratio == pytest.approx(0.75)
    assert outcome.decision.verdict == verdict


@pytest.mark.parametrize(
    "changes",
    [
        {"not_assessable": "review"},
        # An older file without the key: small_groups = "block" still means a person decides.
        {"not_assessable": None, "small_groups": "block"},
    ],
)
def test_small_groups_are_never_passed_silently(changes: dict) -> None:
    labels, selected, sensitive = _decisions({"A": 0.6, "B": 0.6})
    sensitive["race_ethnicity"][:40] = "Small"
    outcome = run_audit(
        policy_with(not_assessable="disclose"),
        labels=labels,
        selected=selected,
        scores=None,
        sensitive=sensitive,
    )
    assert outcome.decision.verdict == "PASS"
    (named,) = outcome.decision.not_assessable
    assert (named.group, named.people) == ("Small", 40)
    assert any(s.startswith("Small (race_ethnicity)") for s in outcome.decision.insufficient)
    assert outcome.decision.notes
    raw = {k: v for k, v in changes.items() if v is not None}
    policy = policy_with(**raw)
    if "not_assessable" not in raw:
        policy = policy.model_copy(update={"not_assessable": None})
    blocking = run_audit(policy, labels=labels, selected=selected, scores=None, sensitive=sensitive)
    assert blocking.decision.verdict == "REVIEW"
    assert "Small (race_ethnicity)" in blocking.decision.review_groups
    assert all(r.kind == "not_assessable" for r in blocking.decision.review)


def test_regression_against_production_fails() -> None:
    policy = policy_with()
    production = _audit(policy, {"A": 0.6, "B": 0.6}).audit
    candidate = _audit(policy, {"A": 0.6, "B": 0.51}, seed=1).audit
    decision = evaluate(policy, candidate, production=production)
    assert decision.verdict == "FAIL"
    assert [b.kind for b in decision.breaches] == ["regression"]


def test_gate_is_independent_of_row_order() -> None:
    policy = policy_with()
    labels, selected, sensitive = _decisions({"A": 0.6, "B": 0.5, "C": 0.35})
    order = np.random.default_rng(1).permutation(len(labels))
    one = run_audit(policy, labels=labels, selected=selected, scores=None, sensitive=sensitive)
    two = run_audit(
        policy,
        labels=labels[order],
        selected=selected[order],
        scores=None,
        sensitive={k: v[order] for k, v in sensitive.items()},
    )
    assert one.decision.verdict == two.decision.verdict
    assert [(b.group, round(b.value, 12)) for b in one.decision.breaches] == [
        (b.group, round(b.value, 12)) for b in two.decision.breaches
    ]


def test_holm_adjustment() -> None:
    adjusted = holm([0.01, 0.04, 0.03, math.nan])
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(adjusted[3])


def test_a_gate_can_be_limited_to_some_attributes() -> None:
    labels, selected, sensitive = _decisions({"A": 0.6, "B": 0.3})
    sensitive["income"] = sensitive.pop("race_ethnicity")
    policy = policy_with(
        sensitive_attributes=["income"],
        intersections=[],
        gates=[
            {
                "metric": "recall",
                "disparity": "ratio",
                "min": 0.8,
                "attributes": ["income"],
                "action": "warn",
            }
        ],
    )
    outcome = run_audit(policy, labels=labels, selected=selected, scores=None, sensitive=sensitive)
    assert outcome.decision.verdict == "PASS" and outcome.decision.warnings[0].group == "B"
