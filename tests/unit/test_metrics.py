"""Capacity metrics: top-k selects exactly k per period, independent of row order."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from model.capacity_metrics import capacity_metrics, random_baseline, top_k_mask


@st.composite
def ranked_periods(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    n = draw(st.integers(1, 200))
    scores = draw(arrays(float, n, elements=st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0])))
    periods = draw(arrays(np.int64, n, elements=st.integers(0, 3)))
    ids = np.arange(n)
    k = draw(st.integers(1, 50))
    return scores, periods, ids, k


@settings(max_examples=100, deadline=None)
@given(ranked_periods(), st.randoms())
def test_top_k_selects_exactly_k_per_period_whatever_the_row_order(case, rnd) -> None:
    scores, periods, ids, k = case
    mask = top_k_mask(scores, periods, ids, lambda n: min(k, n))
    for p in np.unique(periods):
        in_period = periods == p
        assert mask[in_period].sum() == min(k, in_period.sum())
        chosen, left = scores[in_period & mask], scores[in_period & ~mask]
        if len(left):
            assert chosen.min() >= left.max()
    order = np.array(rnd.sample(range(len(scores)), len(scores)))
    shuffled = top_k_mask(scores[order], periods[order], ids[order], lambda n: min(k, n))
    assert set(ids[order][shuffled]) == set(ids[mask])


def test_capacity_metrics_by_hand() -> None:
    labels = np.array([1, 0, 1, 0, 0, 1])
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.1, 0.05])
    selected = np.array([True, True, True, False, False, False])
    m = capacity_metrics(labels, scores, selected)
    assert m.precision_at_k == 2 / 3
    assert m.recall_at_k == 2 / 3
    assert m.k == 3 and m.positives == 3


def test_random_baseline_is_the_expectation() -> None:
    labels = np.array([1] * 10 + [0] * 90)
    m = random_baseline(labels, 5)
    assert m.precision_at_k == 0.1 and m.recall_at_k == 0.05 and m.roc_auc == 0.5
