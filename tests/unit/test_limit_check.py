"""The one limit check (audits.limit_check): the audit and monitoring say the same about a group
that is too small to judge, beyond the limit, or within it; and intervals read as flagged."""

from __future__ import annotations

import math

import numpy as np
import pytest

from audits import limit_check
from audits.audit import run_audit
from audits.policy import Gate
from monitoring.group_shares import GroupRow, share_warnings
from monitoring.period_report import estimated_disparities
from tests.support.specs import policy_text

RECALL = Gate(metric="recall", disparity="ratio", min=0.8)

#: (group, people, people in need, of them on the list): one group within the limit, one far
#: beyond it, one too small to judge; each person has one row.
GROUPS = (
    ("within", 3_000, 600, 300),
    ("beyond", 3_000, 600, 120),
    ("small", 60, 12, 1),
)


def _population() -> dict[str, np.ndarray]:
    group, labels, selected = [], [], []
    for name, people, in_need, reached in GROUPS:
        group += [name] * people
        labels += [1] * in_need + [0] * (people - in_need)
        on_list = [True] * reached + [False] * (in_need - reached)
        on_list += [True] * (people // 10) + [False] * (people - in_need - people // 10)
        selected += on_list
    return {
        "group": np.array(group, dtype=object),
        "labels": np.array(labels, dtype=np.int8),
        "selected": np.array(selected, dtype=bool),
    }


@pytest.fixture(scope="module")
def policy():
    return policy_text(**{"bootstrap_resamples = 1000": "bootstrap_resamples = 200"})


def test_sufficiency_is_the_gates_materiality_in_people(policy) -> None:
    assert (policy.min_group_size, policy.min_group_positives) == (100, 200)
    rule = limit_check.materiality(policy, "race_ethnicity")
    assert rule.sufficient(100, 200) and not rule.sufficient(99, 10_000)
    assert not rule.sufficient(10_000, 199)
    both = rule.sufficient(np.array([100, 99, 500]), np.array([200, 300, 199]))
    assert both.tolist() == [True, False, False]
    assert limit_check.sufficient(policy, "sex", people=5_000, in_need=250)


@pytest.mark.parametrize(
    ("value", "sufficient", "expected"),
    [
        (0.5, False, "too_few"),
        (float("nan"), True, "unknown"),
        (None, True, "unknown"),
        (0.79, True, "beyond"),
        (0.8, True, "within"),
        (1.4, True, "within"),
    ],
)
def test_the_check_in_its_order(value, sufficient: bool, expected: str) -> None:
    assert limit_check.check(RECALL, value, sufficient=sufficient) == expected
    as_mapping = {"metric": "recall", "disparity": "ratio", "min": 0.8}
    assert limit_check.check(as_mapping, value, sufficient=sufficient) == expected


def test_the_audit_and_monitoring_say_the_same_about_each_group(policy) -> None:
    rows = _population()
    outcome = run_audit(
        policy,
        labels=rows["labels"],
        selected=rows["selected"],
        scores=None,
        sensitive={"race_ethnicity": rows["group"]},
    )
    audited = {
        d.group: limit_check.check(RECALL, d.value, sufficient=d.sufficient)
        for d in outcome.audit.disparities
        if (d.metric, d.kind, d.attribute) == ("recall", "ratio", "race_ethnicity")
    }
    assert audited == {"within": "within", "beyond": "beyond", "small": "too_few"}
    assert {n.group for n in outcome.decision.not_assessable} == {"small"}

    # Monitoring before outcomes: the month's estimates with the same counts, judged with the
    # people in need the audit counted.
    report = {
        "groups": [
            {"attribute": g.attribute, "group": g.group, "people_in_need": g.people_in_need}
            for g in outcome.audit.groups
        ]
    }
    estimates = {
        "groups": [
            {
                "attribute": "race_ethnicity",
                "group": name,
                "people": people,
                "selected": reached + people // 10,
                "expected_positives": in_need,
                "expected_reached": reached,
            }
            for name, people, in_need, reached in GROUPS
        ]
    }
    found, reasons = estimated_disparities(estimates, policy, limit_check.audited_in_need(report))
    monitored = {
        r["group"]: r["status"] for r in found if (r["metric"], r["kind"]) == ("recall", "ratio")
    }
    assert monitored == {g: limit_check.WORDS[s] for g, s in audited.items()}
    assert len(reasons) == 1 and "race_ethnicity = beyond" in reasons[0]

    # The list shares (monitoring.group_shares) judge the same groups: the small one never.
    share = Gate(metric="selection_rate", disparity="ratio", min=0.999, max=1.001)
    judged_policy = policy.model_copy(update={"gates": (share,)})
    month = [GroupRow(name, people, reached + people // 10) for name, people, _, reached in GROUPS]
    warnings = share_warnings(
        "race_ethnicity", month, judged_policy, {}, limit_check.audited_in_need(report)
    )
    assert {r.group: r.sufficient for r in month} == {
        "within": True,
        "beyond": True,
        "small": False,
    }
    assert warnings and not any("= small" in w for w in warnings)


def test_a_group_the_audit_could_not_judge_is_not_judged_by_monitoring(policy) -> None:
    """A large group with too few people in need in the audit (as White was) is not judged in
    the month, however far its estimate lies beyond the limit."""
    estimates = {
        "groups": [
            {
                "attribute": "race_ethnicity",
                "group": name,
                "people": 20_000,
                "selected": selected,
                "expected_positives": 1_000,
                "expected_reached": reached,
            }
            for name, selected, reached in (("White", 1_000, 200), ("Other", 1_000, 600))
        ]
    }
    audited = {("race_ethnicity", "White"): 150, ("race_ethnicity", "Other"): 900}
    found, reasons = estimated_disparities(estimates, policy, audited)
    white = next(r for r in found if r["group"] == "White" and r["metric"] == "recall")
    assert white["value"] < 0.8 and not white["beyond_limit"]
    assert white["status"] == "too few to judge" and reasons == []


@pytest.mark.parametrize(
    ("low", "high", "shown"),
    [
        (0.79, 0.998, (0.79, 0.99)),  # excludes 1: flagged, and reads so
        (0.83, 1.002, (0.83, 1.01)),  # includes 1: not flagged, and reads so
        (1.004, 1.3, (1.01, 1.3)),
        (0.5, 0.9999999, (0.5, 0.99)),
    ],
)
def test_an_interval_reads_as_including_one_exactly_when_it_does(low, high, shown) -> None:
    assert limit_check.shown_interval(low, high, 1.0) == shown


def test_shown_intervals_never_contradict_the_flag() -> None:
    rng = np.random.default_rng(0)
    for _ in range(2_000):
        low, high = sorted(rng.uniform(0.7, 1.3, 2))
        includes = limit_check.interval_includes(low, high, 1.0)
        shown = limit_check.shown_interval(low, high, 1.0)
        assert shown is not None
        assert (shown[0] <= 1.0 <= shown[1]) is includes
        assert shown[0] <= low + 1e-9 or not includes
    assert limit_check.shown_interval(None, 1.0, 1.0) is None
    assert limit_check.interval_includes(math.nan, 1.0, 1.0) is None


@pytest.mark.parametrize(
    ("value", "sufficient", "attribute", "expected"),
    [
        (0.7, True, "sex", True),
        (0.9, True, "sex", False),
        (0.7, False, "sex", False),  # too few to judge
        (0.7, True, "race_ethnicity", False),  # the gate is limited to sex
    ],
)
def test_a_report_estimate_is_beyond_a_gate_only_when_judged_and_covered(
    value: float, sufficient: bool, attribute: str, expected: bool
) -> None:
    """What the board's comparison page marks as beyond a limit of a release's gates."""
    gate = {"metric": "recall", "disparity": "ratio", "min": 0.8, "attributes": ["sex"]}
    report = {"policy": {"gates": [gate]}}
    disparity = {
        "metric": "recall",
        "kind": "ratio",
        "attribute": attribute,
        "value": value,
        "sufficient": sufficient,
    }
    assert limit_check.beyond_report_gates(report, disparity) is expected
