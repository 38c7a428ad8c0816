"""The gate's statistics: no hidden groups, intervals and tests that agree, honest evidence."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import fisher_exact

from audits.audit import run_audit
from audits.crosscheck import crosscheck
from audits.external import OperatingPoint, audit_predictions
from audits.group_metrics import REST, audit_groups, significance
from audits.groups import build_groupings
from audits.policy import load_policy
from audits.resampling import ClusterBootstrap, confusion_cells, fine_cells
from kernel.errors import GateError
from tests.support.specs import DEFAULT_POLICY, policy_with


def _predictions(groups: dict[str, tuple[int, float]], base_rate: float = 0.2) -> pd.DataFrame:
    """People per group with exactly ``recall`` of those in need (and 5% of others) flagged."""
    frames = []
    for name, (size, recall) in groups.items():
        need = round(size * base_rate)
        reached = round(recall * need)
        others = size - need
        frames.append(
            pd.DataFrame(
                {
                    "race_ethnicity": name,
                    "crisis": np.r_[np.ones(need, int), np.zeros(others, int)],
                    "offered": np.r_[
                        np.arange(need) < reached, np.arange(others) < round(0.05 * others)
                    ].astype(int),
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)


def _external(frame: pd.DataFrame) -> tuple[Any, dict[str, Any]]:
    policy = policy_with()
    outcome, report = audit_predictions(
        frame,
        policy=policy,
        label="crisis",
        sensitive=["race_ethnicity"],
        point=OperatingPoint(decision="offered"),
        source="test",
    )
    return outcome, report


@pytest.mark.parametrize(
    ("groups", "verdict", "culprit"),
    [
        # (a) the largest group is under-served: compared with everyone else, it is caught.
        ({"A": (60_000, 0.40), "B": (25_000, 0.60), "C": (15_000, 0.60)}, "FAIL", "A"),
        # (b) a small group is under-served.
        ({"A": (60_000, 0.60), "B": (36_000, 0.60), "C": (4_000, 0.35)}, "FAIL", "C"),
        # (c) no group is: every group is judged with enough evidence, within the limit.
        ({"A": (60_000, 0.60), "B": (36_000, 0.60), "C": (4_000, 0.60)}, "PASS", None),
    ],
)
def test_external_audits_catch_the_under_served_group_wherever_it_is(
    groups: dict[str, tuple[int, float]], verdict: str, culprit: str | None
) -> None:
    _, report = _external(_predictions(groups))
    assert report["decision"] == verdict, report["breaches"] + report["review"]
    if culprit is None:
        assert not report["breaches"] and not report["review"]
        return
    recall = [b for b in report["breaches"] if b["metric"] == "recall ratio"]
    assert [b["group"] for b in recall] == [culprit]
    headline = next(h for h in report["headlines"] if h["metric"] == "recall")
    assert headline["group"] == culprit and headline["reference"] == REST
    assert report["fairlearn"]["matched"] is True


def test_the_largest_group_hides_behind_itself_under_the_old_rule() -> None:
    frame = _predictions({"A": (60_000, 0.40), "B": (25_000, 0.60), "C": (15_000, 0.60)})
    policy = policy_with(reference_group="largest", version=1)
    outcome = run_audit(
        policy,
        labels=frame["crisis"].to_numpy(),
        selected=frame["offered"].to_numpy(dtype=bool),
        scores=None,
        sensitive={"race_ethnicity": frame["race_ethnicity"].to_numpy(dtype=object)},
    )
    # Against the largest group, the others look better, never worse: nothing is caught ...
    assert not [b for b in outcome.decision.breaches if b.metric == "recall ratio"]
    # ... and the policy says that this key's meaning is not what version 2 defaults to.
    assert any("reference_group 'largest'" in n for n in outcome.decision.notes)


def _two_groups(
    group: tuple[int, int, int, int], rest: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Rows with the given (TP, FP, FN, TN) counts in group "g" and in the rest ("r")."""
    labels, selected, names = [], [], []
    for name, (tp, fp, fn, tn) in (("g", group), ("r", rest)):
        labels += [1] * tp + [0] * fp + [1] * fn + [0] * tn
        selected += [1] * tp + [1] * fp + [0] * fn + [0] * tn
        names += [name] * (tp + fp + fn + tn)
    return (
        np.array(labels),
        np.array(selected, dtype=bool),
        {"a": np.array(names, dtype=object)},
    )


cells = st.tuples(*(st.integers(0, 40) for _ in range(4)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(group=cells, rest=cells, seed=st.integers(0, 2**16))
def test_an_interval_excludes_parity_exactly_when_its_p_value_is_below_the_level(
    group: tuple[int, int, int, int], rest: tuple[int, int, int, int], seed: int
) -> None:
    labels, selected, sensitive = _two_groups(group, rest)
    if len(labels) == 0:
        return
    audit = audit_groups(
        labels,
        selected,
        None,
        build_groupings(sensitive, attributes=["a"]),
        resamples=400,
        seed=seed,
    )
    alpha = significance(audit.level)
    for d in audit.disparities:
        low, high = d.ci
        parity = 1.0 if d.kind == "ratio" else 0.0
        # Zero counts anywhere (a group with no one flagged, a reference with no one reached)
        # still give a proper interval: the Jeffreys half counts keep every resample defined.
        assert math.isfinite(low) and math.isfinite(high) and low <= high
        assert 0.0 <= d.p_value <= 1.0
        excluded = low > parity or high < parity
        if excluded:
            assert d.p_value <= alpha, d
        else:
            assert d.p_value >= alpha, d


def _newcombe(x1: int, n1: int, x2: int, n2: int, z: float = 1.959964) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p1 - p2 (Wilson intervals for each)."""

    def wilson(x: int, n: int) -> tuple[float, float]:
        p = x / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return centre - half, centre + half

    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1)
    l2, u2 = wilson(x2, n2)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt(
        (u1 - p1) ** 2 + (p2 - l2) ** 2
    )


@pytest.mark.parametrize(
    ("reached", "in_need", "rest_reached", "rest_in_need"),
    [
        (0, 8, 300, 1000),  # nobody in the small group reached
        (1, 12, 300, 1000),
        (3, 25, 300, 1000),
        (12, 30, 300, 1000),
        (20, 40, 0, 200),  # the reference reached nobody
        (5, 60, 45, 150),
        (30, 60, 60, 200),
    ],
)
def test_small_group_tests_agree_with_exact_ones(
    reached: int, in_need: int, rest_reached: int, rest_in_need: int
) -> None:
    group = (reached, 10, in_need - reached, 200)
    rest = (rest_reached, 50, rest_in_need - rest_reached, 2000)
    labels, selected, sensitive = _two_groups(group, rest)
    audit = audit_groups(
        labels, selected, None, build_groupings(sensitive, attributes=["a"]), resamples=4000
    )
    d = audit.disparity("a", "g", "recall", "difference")
    _, exact = fisher_exact(
        [[reached, in_need - reached], [rest_reached, rest_in_need - rest_reached]]
    )
    # Clear cases agree on significance with Fisher's exact test ...
    if exact < 0.005:
        assert d.p_value < 0.05
    if exact > 0.2:
        assert d.p_value > 0.05
    # ... and the interval for the difference is close to Newcombe's score interval.
    low, high = _newcombe(reached, in_need, rest_reached, rest_in_need)
    assert d.ci[0] == pytest.approx(low, abs=0.06)
    assert d.ci[1] == pytest.approx(high, abs=0.06)


def test_repeating_a_persons_rows_never_narrows_the_interval() -> None:
    rng = np.random.default_rng(4)
    people = 6_000
    groups = {"a": rng.choice(["x", "y"], people, p=[0.8, 0.2]).astype(object)}
    labels = (rng.random(people) < 0.15).astype(int)
    selected = rng.random(people) < np.where(labels == 1, 0.5, 0.05)
    ids = np.arange(people)
    groupings = build_groupings(groups, attributes=["a"])
    once = audit_groups(labels, selected, None, groupings, clusters=ids, resamples=2000)
    twice_groups = {"a": np.r_[groups["a"], groups["a"]]}
    twice_groupings = build_groupings(twice_groups, attributes=["a"])
    doubled = (np.r_[labels, labels], np.r_[selected, selected])
    clustered = audit_groups(
        *doubled, None, twice_groupings, clusters=np.r_[ids, ids], resamples=2000
    )
    naive = audit_groups(*doubled, None, twice_groupings, resamples=2000)

    def width(audit) -> float:
        low, high = audit.disparity("a", "y", "recall", "difference").ci
        return high - low

    assert width(clustered) >= 0.9 * width(once)
    assert width(naive) < 0.8 * width(clustered)  # without clustering it would narrow
    assert clustered.disparity("a", "y", "recall", "difference").effective_n == pytest.approx(
        once.disparity("a", "y", "recall", "difference").effective_n, rel=0.15
    )


def test_the_cluster_bootstrap_resamples_whole_people() -> None:
    groupings = build_groupings(
        {"a": np.array(["x", "x", "x", "y"], dtype=object)}, attributes=["a"]
    )
    labels = np.array([1, 1, 0, 1])
    selected = np.array([True, True, False, False])
    bootstrap = ClusterBootstrap(
        fine_cells(groupings, 4), confusion_cells(labels, selected), np.array([7, 7, 8, 9])
    )
    # Person 7's two true positives always move together: one weight per person, and the
    # weights add up to the number of people.
    draws = bootstrap.draw(500, np.random.default_rng(0))
    assert draws.shape == (500, 2, 4)
    seven, eight, nine = draws[:, 0, 0] / 2, draws[:, 0, 3], draws[:, 1, 2]
    assert np.allclose(seven + eight + nine, 3.0)
    assert np.allclose(draws[:, 0, 1] + draws[:, 0, 2] + draws[:, 1, 0], 0.0)
    assert bootstrap.clusters == 3 and len(bootstrap.multiplicity) == 3


def test_small_intersections_get_a_pooled_estimate_between_their_own_and_their_parents() -> None:
    rng = np.random.default_rng(2)
    n = 40_000
    a = rng.choice(["x", "y"], n).astype(object)
    b = rng.choice(["m", "f"], n).astype(object)
    small = (a == "y") & (b == "f") & (rng.random(n) < 0.004)  # a tiny "y × f" remains
    keep = ~((a == "y") & (b == "f")) | small
    a, b = a[keep], b[keep]
    labels = (rng.random(len(a)) < 0.2).astype(int)
    selected = rng.random(len(a)) < np.where(labels == 1, 0.5, 0.05)
    groupings = build_groupings({"a": a, "b": b}, attributes=["a", "b"], intersections=[["a", "b"]])
    audit = audit_groups(labels, selected, None, groupings, resamples=500)
    tiny = audit.disparity("a × b", "y × f", "recall", "ratio")
    assert not tiny.sufficient
    low, high = tiny.pooled_ci
    assert low < tiny.pooled < high
    assert high - low < tiny.ci[1] - tiny.ci[0]  # pooling narrows what the group alone says
    # Pulled towards its parent's (itself pooled) rate, from its own.
    parent_group = audit.disparity("a", "y", "recall", "ratio")
    parent = parent_group.pooled * parent_group.reference_value / tiny.reference_value
    assert min(parent, tiny.value) - 0.01 <= tiny.pooled <= max(parent, tiny.value) + 0.01


def test_the_fairlearn_crosscheck_matches_and_refuses_a_wrong_number() -> None:
    frame = _predictions({"A": (5_000, 0.5), "B": (3_000, 0.45)})
    labels = frame["crisis"].to_numpy()
    selected = frame["offered"].to_numpy(dtype=bool)
    sensitive = {"race_ethnicity": frame["race_ethnicity"].to_numpy(dtype=object)}
    outcome = run_audit(
        policy_with(),
        labels=labels,
        selected=selected,
        scores=None,
        sensitive=sensitive,
        fairlearn=True,
    )
    assert outcome.fairlearn["matched"] and outcome.fairlearn["compared"] > 0
    assert outcome.fairlearn["max_difference"] <= 1e-9
    between = outcome.fairlearn["between_groups"]["race_ethnicity"]["recall"]
    assert between["ratio_between_groups"] == pytest.approx(0.45 / 0.5, abs=1e-3)
    outcome.audit.group("race_ethnicity", "B").metrics["recall"] += 1e-6
    with pytest.raises(GateError, match="Fairlearn"):
        crosscheck(
            outcome.audit, labels=labels, selected=selected, sensitive=sensitive, metrics=["recall"]
        )


def test_the_fairlearn_crosscheck_on_counted_rows_gives_fairlearns_values_on_every_row() -> None:
    """The cross-check hands Fairlearn one weighted row per group, label and selection: every
    metric, grouping and intersection comes out as MetricFrame computes it on the rows
    themselves, a group with no one in need (recall undefined) and one with no one selected
    (precision undefined) included."""
    from fairlearn.metrics import MetricFrame

    from audits.crosscheck import FAIRLEARN_METRICS

    frame = _predictions({"A": (4_000, 0.5), "B": (2_500, 0.45), "C": (300, 0.3)})
    frame.loc[frame["race_ethnicity"] == "C", "offered"] = 0  # C: no one selected
    frame.loc[:59, "race_ethnicity"] = "D"
    frame.loc[:59, "crisis"] = 0  # D: no one in need
    rng = np.random.default_rng(3)
    frame["sex"] = rng.choice(["female", "male"], size=len(frame))
    labels = frame["crisis"].to_numpy()
    selected = frame["offered"].to_numpy(dtype=bool)
    sensitive = {c: frame[c].to_numpy(dtype=object) for c in ("race_ethnicity", "sex")}
    policy = policy_with(
        sensitive_attributes=["race_ethnicity", "sex"],
        intersections=[["race_ethnicity", "sex"]],
    )
    outcome = run_audit(policy, labels=labels, selected=selected, scores=None, sensitive=sensitive)
    checked = crosscheck(
        outcome.audit,
        labels=labels,
        selected=selected,
        sensitive=sensitive,
        metrics=list(FAIRLEARN_METRICS),
    )
    assert checked["matched"] and checked["undefined"] > 0
    assert set(checked["between_groups"]) == {"race_ethnicity", "sex", "race_ethnicity × sex"}
    for attribute, summary in checked["between_groups"].items():
        columns = attribute.split(" × ")
        rows = MetricFrame(
            metrics=FAIRLEARN_METRICS,
            y_true=labels.astype(int),
            y_pred=selected.astype(int),
            sensitive_features=frame[columns].astype(str)
            if len(columns) > 1
            else frame[columns[0]],
        )
        ratios, differences = rows.ratio(method="between_groups"), rows.difference()
        for metric, values in summary.items():
            for value, expected in (
                (values["ratio_between_groups"], ratios[metric]),
                (values["difference_between_groups"], differences[metric]),
            ):
                if math.isfinite(expected):
                    assert value == pytest.approx(expected, abs=1e-12), (attribute, metric)
                else:
                    assert value is None, (attribute, metric)


def test_a_point_estimate_beyond_a_blocking_limit_is_never_a_pass() -> None:
    # Tiny groups: nothing is significant, but B's recall is 0.7 of A's.
    frame = _predictions({"A": (300, 0.6), "B": (300, 0.42)})
    _, report = _external(frame)
    assert report["decision"] == "REVIEW"
    assert "B (race_ethnicity)" in report["review_groups"]
    assert any(
        r["kind"] == "apparent_breach" and "more month" in r["settle"] for r in report["review"]
    )


def test_old_policy_files_still_load_and_say_what_changed(tmp_path) -> None:
    old = DEFAULT_POLICY.read_text().replace("version = 2", "version = 1")
    path = tmp_path / "old.toml"
    path.write_text(old)
    policy = load_policy(path)
    assert policy.version == 1 and policy.reference_group == "rest"
    assert any("REVIEW" in note for note in policy.changed_meanings)
