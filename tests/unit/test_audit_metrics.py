"""Group metrics: equal to Fairlearn's MetricFrame, honest about small groups, order-free."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import precision_score, roc_auc_score

from audits.group_metrics import audit_groups, group_auc
from audits.groups import JOIN, build_groupings


def _precision(y_true, y_pred) -> float:
    return precision_score(y_true, y_pred, zero_division=np.nan)


FAIRLEARN = {
    "selection_rate": selection_rate,
    "recall": true_positive_rate,
    "precision": _precision,
    "false_positive_rate": false_positive_rate,
    "false_negative_rate": false_negative_rate,
}


def _population(seed: int, n: int = 20_000) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    rng = np.random.default_rng(seed)
    groups = {
        "a": rng.choice(["x", "y", "z"], n, p=[0.6, 0.3, 0.1]),
        "b": rng.choice(["m", "f"], n),
    }
    labels = (rng.random(n) < 0.1 + 0.05 * (groups["a"] == "z")).astype(int)
    scores = rng.random(n) + 0.4 * labels
    selected = scores >= np.quantile(scores, 0.9)
    return labels, selected, scores, groups


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("attributes", [["a"], ["b"], ["a", "b"]])
def test_group_metrics_equal_metricframe(seed: int, attributes: list[str]) -> None:
    labels, selected, scores, groups = _population(seed)
    intersections = [attributes] if len(attributes) > 1 else []
    singles = attributes if len(attributes) == 1 else []
    groupings = build_groupings(groups, attributes=singles, intersections=intersections)
    audit = audit_groups(labels, selected, scores, groupings, resamples=0)
    frame = MetricFrame(
        metrics=FAIRLEARN,
        y_true=labels,
        y_pred=selected.astype(int),
        sensitive_features=pd.DataFrame({a: groups[a] for a in attributes}),
    )
    attribute = JOIN.join(attributes)
    for key, row in frame.by_group.iterrows():
        name = JOIN.join(key) if isinstance(key, tuple) else str(key)
        result = audit.group(attribute, name)
        for metric in FAIRLEARN:
            assert result.metrics[metric] == pytest.approx(row[metric], abs=1e-9), metric
        in_group = np.all(
            [groups[a] == part for a, part in zip(attributes, name.split(JOIN), strict=True)],
            axis=0,
        )
        assert result.metrics["roc_auc"] == pytest.approx(
            roc_auc_score(labels[in_group], scores[in_group]), abs=1e-9
        )


def test_count_bootstrap_agrees_with_metricframe_bootstrap() -> None:
    labels, selected, _, groups = _population(5, n=8_000)
    groupings = build_groupings(groups, attributes=["a"])
    audit = audit_groups(labels, selected, None, groupings, resamples=400, seed=1)
    frame = MetricFrame(
        metrics={"recall": true_positive_rate, "selection_rate": selection_rate},
        y_true=labels,
        y_pred=selected.astype(int),
        sensitive_features=groups["a"],
        n_boot=100,
        ci_quantiles=[0.025, 0.975],
        random_state=3,
    )
    low, high = frame.by_group_ci
    for name in ("x", "y", "z"):
        ours = audit.group("a", name)
        for metric in ("recall", "selection_rate"):
            width = high.loc[name, metric] - low.loc[name, metric]
            assert ours.ci[metric][0] == pytest.approx(low.loc[name, metric], abs=0.25 * width)
            assert ours.ci[metric][1] == pytest.approx(high.loc[name, metric], abs=0.25 * width)


def test_group_auc_matches_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 4, 3000)
    labels = rng.integers(0, 2, 3000)
    scores = np.round(rng.random(3000), 1) + 0.1 * labels
    ours = group_auc(labels, scores, codes, 4)
    for g in range(4):
        assert ours[g] == pytest.approx(roc_auc_score(labels[codes == g], scores[codes == g]))


def test_small_groups_are_reported_not_passed() -> None:
    labels, selected, scores, groups = _population(0, n=5_000)
    groups["a"] = groups["a"].astype(object)
    groups["a"][:30] = "tiny"
    groupings = build_groupings(groups, attributes=["a"])
    audit = audit_groups(labels, selected, scores, groupings, min_group_size=100, resamples=50)
    tiny = audit.group("a", "tiny")
    assert not tiny.sufficient and "not assessable with this data" in tiny.note
    assert not any(d.sufficient for d in audit.disparities if d.group == "tiny")


def test_row_order_does_not_change_results() -> None:
    labels, selected, scores, groups = _population(4, n=5_000)
    order = np.random.default_rng(9).permutation(len(labels))
    first = audit_groups(
        labels, selected, scores, build_groupings(groups, attributes=["a"]), resamples=0
    )
    shuffled = audit_groups(
        labels[order],
        selected[order],
        scores[order],
        build_groupings({k: v[order] for k, v in groups.items()}, attributes=["a"]),
        resamples=0,
    )
    for g in first.groups:
        other = shuffled.group(g.attribute, g.group)
        for metric, value in g.metrics.items():
            assert other.metrics[metric] == pytest.approx(value, abs=1e-12, nan_ok=True)


def test_intersections_only_list_combinations_that_occur() -> None:
    groupings = build_groupings(
        {"a": np.array(["x", "x", "y"]), "b": np.array(["m", "f", "m"])},
        attributes=[],
        intersections=[["a", "b"]],
    )
    (grouping,) = groupings
    assert grouping.attribute == "a × b"
    assert grouping.levels == ("x × f", "x × m", "y × m")
    assert list(grouping.sizes) == [1, 1, 1]
