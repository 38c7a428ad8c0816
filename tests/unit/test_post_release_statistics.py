"""Monitoring after release: performance expected before labels, and the lottery's estimates."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audits.group_metrics import significance
from audits.groups import build_groupings
from kernel.errors import BadInputError
from monitoring.estimates import (
    OVERALL,
    PerformanceEstimate,
    compare_with_realised,
    count_distribution,
    estimate_performance,
)
from monitoring.evaluation import (
    central_interval,
    draw_lottery,
    evaluation_estimates,
    two_sided_p_value,
)

LEVEL = 0.95
TAIL = (1 - LEVEL) / 2


def exact_pmf(probabilities: np.ndarray) -> np.ndarray:
    """The Poisson-binomial distribution by direct convolution (the plain, slow way)."""
    pmf = np.ones(1)
    for p in probabilities:
        pmf = np.r_[pmf * (1 - p), 0.0] + np.r_[0.0, pmf * p]
    return pmf


# --------------------------------------------------------------------------------------------
# Estimated performance at capacity


@dataclass(frozen=True)
class Period:
    probabilities: np.ndarray
    selected: np.ndarray
    sensitive: dict[str, np.ndarray]

    def group(self, attribute: str, name: str) -> np.ndarray:
        if attribute == OVERALL:
            return np.ones(len(self.probabilities), dtype=bool)
        return self.sensitive[attribute] == name


def _period(seed: int, bulk: int) -> Period:
    """A scored period: a bulk of people and a small group (150 people, 3 expected crises)."""
    rng = np.random.default_rng(seed)
    high = rng.uniform(0.28, 0.32, 8)
    small = np.r_[high * (2.4 / high.sum()), np.full(142, 0.6 / 142)]
    p = np.r_[rng.beta(1.2, 12.0, bulk), small]
    group = np.r_[np.full(bulk, "bulk"), np.full(len(small), "small")]
    order = rng.permutation(len(p))
    p, group = p[order], group[order]
    selected = np.zeros(len(p), dtype=bool)
    selected[np.argsort(-p, kind="stable")[: len(p) // 10]] = True
    sex = rng.choice(np.array(["female", "male"]), len(p))
    return Period(p, selected, {"group": group, "sex": sex})


@pytest.fixture(scope="module")
def period() -> Period:
    made = _period(seed=11, bulk=3850)
    small = made.group("group", "small")
    assert round(made.probabilities[small].sum(), 6) == 3.0
    assert 5 <= (small & made.selected).sum() <= 8  # the small group has people on the list
    return made


@pytest.fixture(scope="module")
def estimate(period: Period) -> PerformanceEstimate:
    return estimate_performance(
        period.probabilities,
        period.selected,
        period.sensitive,
        intersections=[("group", "sex")],
        level=LEVEL,
    )


def _realised(labels: np.ndarray, selected: np.ndarray, members: np.ndarray) -> dict:
    """Realised precision and recall of label draws (rows), NaN where undefined."""
    on_list = labels[:, members & selected].sum(axis=1)
    total = labels[:, members].sum(axis=1)
    chosen = (members & selected).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "precision": on_list / chosen if chosen else np.full(len(labels), np.nan),
            "recall": np.where(total > 0, on_list / np.maximum(total, 1), np.nan),
        }


@pytest.mark.parametrize(("attribute", "name"), [(OVERALL, OVERALL), ("group", "small")])
@pytest.mark.parametrize("metric", ["precision", "recall"])
def test_realised_values_fall_in_the_band_when_scores_are_calibrated(
    period: Period, estimate: PerformanceEstimate, attribute: str, name: str, metric: str
) -> None:
    rng = np.random.default_rng(2024)
    labels = rng.random((200, len(period.probabilities))) < period.probabilities
    realised = _realised(labels, period.selected, period.group(attribute, name))[metric]
    realised = realised[np.isfinite(realised)]
    row = estimate.group(attribute, name).as_dict()
    low, high = row[f"{metric}_low"], row[f"{metric}_high"]
    inside = ((realised >= low) & (realised <= high)).mean()
    assert len(realised) >= 180
    assert inside >= 0.90, (row, inside)
    if attribute == OVERALL:  # many crises: the band is close to its nominal 95%, not wider
        assert inside <= 0.995, (row, inside)
        assert low < row[f"{metric}_expected"] < high


def _brute_force(period: Period, draws: int, seed: int) -> dict[tuple[str, str], dict]:
    """Realised metrics of many label draws, each person a Bernoulli of their own score."""
    rng = np.random.default_rng(seed)
    keys = [(OVERALL, OVERALL), ("group", "small"), ("group", "bulk")]
    parts: dict[tuple[str, str], dict[str, list]] = {
        k: {"precision": [], "recall": []} for k in keys
    }
    for _ in range(draws // 10_000):
        labels = rng.random((10_000, len(period.probabilities))) < period.probabilities
        for key in keys:
            for metric, values in _realised(labels, period.selected, period.group(*key)).items():
                parts[key][metric].append(values)
    return {k: {m: np.concatenate(v) for m, v in parts[k].items()} for k in keys}


def test_bands_match_a_brute_force_simulation_of_every_persons_outcome() -> None:
    # 300 people: the whole population's 270 not on the list exceed the exact-set size and are
    # binned; the groups' sets are exact. Both must agree with per-person simulation.
    small_period = _period(seed=5, bulk=150)
    estimate = estimate_performance(
        small_period.probabilities, small_period.selected, small_period.sensitive
    )
    draws = 100_000
    simulated = _brute_force(small_period, draws, seed=9)
    margin = 4 * np.sqrt(TAIL * (1 - TAIL) / draws)
    for key, metrics in simulated.items():
        row = estimate.group(*key).as_dict()
        for metric, drawn in metrics.items():
            values = drawn[np.isfinite(drawn)]
            low, high = row[f"{metric}_low"], row[f"{metric}_high"]
            # Each excluded tail is below the tail probability, and moving an end inwards by one
            # attainable value would exclude at least that much: the quantiles agree.
            assert (values < low - 1e-12).mean() < TAIL + margin, (key, metric, row)
            assert (values <= low + 1e-12).mean() >= TAIL - margin, (key, metric, row)
            assert (values > high + 1e-12).mean() < TAIL + margin, (key, metric, row)
            assert (values >= high - 1e-12).mean() >= TAIL - margin, (key, metric, row)
        no_crisis = np.isnan(metrics["recall"]).mean()
        assert row["no_crisis_probability"] == pytest.approx(no_crisis, abs=4e-3)


@settings(max_examples=40, deadline=None)
@given(
    probabilities=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30),
    trials=st.lists(st.integers(0, 50), min_size=30, max_size=30),
)
def test_count_distribution_is_the_exact_sum_of_independent_counts(
    probabilities: list[float], trials: list[int]
) -> None:
    p = np.array(probabilities)
    offset, pmf = count_distribution(p)
    exact = exact_pmf(p)
    window = np.zeros(len(exact))
    window[offset : offset + len(pmf)] = pmf
    np.testing.assert_allclose(window, exact, atol=1e-12)
    # Binomial terms (the bins of large groups): the convolution of binomial distributions.
    n = np.array(trials[: len(p)])
    offset, pmf = count_distribution(p, n)
    full = exact_pmf(np.repeat(p, n))  # a binomial term is a sum of its Bernoulli trials
    window = np.zeros(len(full))
    window[offset : offset + len(pmf)] = pmf
    np.testing.assert_allclose(window, full, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    # Scores to three decimals: a group has a crisis with a chance far above rounding error.
    people=st.lists(
        st.tuples(st.integers(0, 1000).map(lambda x: x / 1000), st.booleans()),
        min_size=1,
        max_size=40,
    ),
    level=st.floats(0.5, 0.99),
)
def test_bands_are_the_exact_central_quantiles(
    people: list[tuple[float, bool]], level: float
) -> None:
    p = np.array([q for q, _ in people])
    selected = np.array([s for _, s in people])
    row = estimate_performance(p, selected, {}, level=level).overall
    tail = significance(level) / 2
    a, b = exact_pmf(p[selected]), exact_pmf(p[~selected])
    if selected.any():
        counts = np.arange(len(a)) / selected.sum()
        assert row.precision_low is not None and row.precision_high is not None
        assert a[counts < row.precision_low - 1e-12].sum() < tail + 1e-9
        assert a[counts <= row.precision_low + 1e-12].sum() >= tail - 1e-9
        assert a[counts > row.precision_high + 1e-12].sum() < tail + 1e-9
        assert a[counts >= row.precision_high - 1e-12].sum() >= tail - 1e-9
    else:
        assert row.precision_expected is row.precision_low is row.precision_high is None
    joint = np.outer(a, b)
    x, y = np.meshgrid(np.arange(len(a)), np.arange(len(b)), indexing="ij")
    defined = (x + y) > 0
    assert row.no_crisis_probability == pytest.approx(joint[0, 0], abs=1e-9)
    if p.sum() == 0:
        assert row.recall_low is None
        return
    assert row.recall_low is not None and row.recall_high is not None
    share = np.where(defined, x / np.maximum(x + y, 1), np.nan)
    mass = joint[defined].sum()
    below = joint[defined & (share < row.recall_low - 1e-12)].sum() / mass
    at_most = joint[defined & (share <= row.recall_low + 1e-12)].sum() / mass
    above = joint[defined & (share > row.recall_high + 1e-12)].sum() / mass
    at_least = joint[defined & (share >= row.recall_high - 1e-12)].sum() / mass
    assert below < tail + 1e-9 <= at_most + 2e-9
    assert above < tail + 1e-9 <= at_least + 2e-9


def test_row_order_does_not_change_the_estimate(period: Period, estimate: PerformanceEstimate):
    order = np.random.default_rng(3).permutation(len(period.probabilities))
    shuffled = estimate_performance(
        period.probabilities[order],
        period.selected[order],
        {a: v[order] for a, v in period.sensitive.items()},
        intersections=[("group", "sex")],
    )
    for mine, theirs in zip(estimate.groups, shuffled.groups, strict=True):
        for key, value in mine.as_dict().items():
            if isinstance(value, float):
                assert theirs.as_dict()[key] == pytest.approx(value, rel=1e-9, abs=1e-12)
            else:
                assert theirs.as_dict()[key] == value


@pytest.mark.parametrize(
    "container",
    [np.asarray, lambda v: np.asarray(v, dtype=object), list, pd.Series],
    ids=["numpy-text", "numpy-object", "list", "series"],
)
def test_groups_are_the_audits_groups(period: Period, container) -> None:
    columns = {a: container(v) for a, v in period.sensitive.items()}
    combos = [("group", "sex")]
    estimate = estimate_performance(
        period.probabilities, period.selected, columns, intersections=combos
    )
    groupings = build_groupings(columns, attributes=["group", "sex"], intersections=combos)
    expected = [(OVERALL, OVERALL, len(period.probabilities))]
    for grouping in groupings:
        expected += [
            (grouping.attribute, level, int(size))
            for level, size in zip(grouping.levels, grouping.sizes, strict=True)
        ]
    assert [(g.attribute, g.group, g.people) for g in estimate.groups] == expected
    assert estimate.group("group × sex", "small × male").people > 0


def test_the_dictionary_is_json_names_the_assumption_and_marks_undefined_values() -> None:
    p = np.array([0.0, 0.0, 0.3, 0.6])
    sensitive = {"area": np.array(["quiet", "quiet", "busy", "busy"])}
    nobody = estimate_performance(p, np.zeros(4, dtype=bool), sensitive).as_dict()
    text = json.dumps(nobody, allow_nan=False)
    assert "stay calibrated" in text and "2 in 10" in nobody["assumption"]
    overall = nobody["groups"][0]
    assert overall["precision_expected"] is None and overall["precision_low"] is None
    assert overall["recall_expected"] == 0.0  # no one on the list: recall is 0 when defined
    some = estimate_performance(p, np.array([True, False, True, False]), sensitive).as_dict()
    json.dumps(some, allow_nan=False)
    quiet = next(g for g in some["groups"] if g["group"] == "quiet")
    assert quiet["expected_positives"] == 0.0
    assert quiet["recall_expected"] is None and quiet["recall_low"] is None
    assert quiet["no_crisis_probability"] == 1.0
    assert quiet["precision_expected"] == 0.0 == quiet["precision_low"] == quiet["precision_high"]


def test_compare_with_realised_flags_only_values_outside_the_band(
    estimate: PerformanceEstimate,
) -> None:
    as_dict = estimate.as_dict()
    overall = estimate.overall
    small = estimate.group("group", "small")
    assert overall.precision_low is not None and overall.recall_high is not None
    assert small.precision_high is not None and small.recall_low is not None
    realised = {
        (OVERALL, OVERALL): {"precision": overall.precision_low - 0.01, "recall": None},
        ("group", "small"): {"precision": small.precision_high, "recall": small.recall_low},
        ("group", "bulk"): {"recall": 1.0},
    }
    rows = compare_with_realised(as_dict, realised)
    found = {(r["attribute"], r["group"], r["metric"]): r for r in rows}
    assert len(rows) == 2 * len(estimate.groups)
    flagged = {key for key, row in found.items() if row["outside_band"]}
    assert flagged == {(OVERALL, OVERALL, "precision"), ("group", "bulk", "recall")}
    assert found[(OVERALL, OVERALL, "precision")]["direction"] == "below"
    assert found[("group", "bulk", "recall")]["direction"] == "above"
    assert found[("group", "small", "precision")]["judged"] is True  # the end is inside
    assert found[(OVERALL, OVERALL, "recall")]["judged"] is False
    assert found[("sex", "male", "precision")]["realised"] is None
    json.dumps(rows, allow_nan=False)


@pytest.mark.parametrize(
    ("realised", "message"),
    [
        ({("group", "nobody"): {"precision": 0.1}}, "no estimate for group 'nobody'"),
        ({(OVERALL, OVERALL): {"accuracy": 0.1}}, "unknown metric 'accuracy'"),
        ({(OVERALL, OVERALL): {"recall": 1.5}}, "must be in"),
    ],
)
def test_compare_with_realised_refuses_what_it_cannot_match(
    estimate: PerformanceEstimate, realised: dict, message: str
) -> None:
    with pytest.raises(BadInputError, match="cannot compare") as caught:
        compare_with_realised(estimate.as_dict(), realised)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"probabilities": np.array([0.1, 0.2])}, "selected has shape"),
        ({"probabilities": np.array([0.1, 0.2, 1.5])}, r"probabilities must be in \[0, 1\]"),
        ({"probabilities": np.array([0.1, np.nan, 0.5])}, "position 1"),
        ({"sensitive": {"area": np.array(["a", None, "b"], dtype=object)}}, "missing values"),
        ({"sensitive": {"area": np.array(["a", "b"])}}, "has 2 values, not 3"),
        ({"intersections": [("area", "sex")]}, "unknown attributes"),
        ({"level": 1.5}, "level must be between 0 and 1"),
    ],
)
def test_estimate_performance_refuses_bad_input(change: dict, message: str) -> None:
    arguments: dict = {
        "probabilities": np.array([0.1, 0.2, 0.3]),
        "selected": np.array([False, True, True]),
        "sensitive": {"area": np.array(["a", "a", "b"])},
    }
    arguments.update(change)
    with pytest.raises(BadInputError, match=message):
        estimate_performance(**arguments)


# --------------------------------------------------------------------------------------------
# The evaluation arm


@dataclass(frozen=True)
class Population:
    """Everyone's outcome without help (y0) and with it (y1), known for the test."""

    scores: np.ndarray
    rank: np.ndarray
    y0: np.ndarray
    y1: np.ndarray
    k: int
    band_end: int

    @property
    def band(self) -> np.ndarray:
        return (self.rank > self.k) & (self.rank <= self.band_end)


@pytest.fixture(scope="module")
def population() -> Population:
    rng = np.random.default_rng(77)
    k, band_end, ranked = 300, 500, 3000
    rank = np.r_[np.arange(1, ranked + 1), np.zeros(40, dtype=int)]  # 40 opted out
    scores = np.select(
        [rank == 0, rank <= k, rank <= 400, rank <= band_end],
        [0.2, 0.5, 0.35, 0.15],
        np.linspace(0.12, 0.01, len(rank)),
    )
    y0 = (rng.random(len(rank)) < scores).astype(int)
    y1 = y0 * (rng.random(len(rank)) > 0.35)  # an offer prevents about a third of crises
    order = rng.permutation(len(rank))
    return Population(scores[order], rank[order], y0[order], y1[order], k, band_end)


def _run_lottery(
    population: Population, strata: list[tuple[int, int, int]], seed: int
) -> dict[str, np.ndarray]:
    """One period: the list, plus each stratum's (first rank, last rank, places) lottery."""
    offered = (population.rank >= 1) & (population.rank <= population.k)
    probability = offered.astype(float)
    for (first, last, places), stream in zip(
        strata, np.random.SeedSequence(seed).spawn(len(strata)), strict=True
    ):
        members = np.flatnonzero((population.rank >= first) & (population.rank <= last))
        members = members[np.argsort(population.rank[members])]
        offered[members[draw_lottery(len(members), places, stream)]] = True
        probability[members] = places / len(members)
    labels = np.where(offered, population.y1, population.y0)
    return {"labels": labels, "offered": offered, "probability": probability}


UNIFORM = [(301, 500, 50)]
#: More places near the cut-off: the upper half of the band at 0.4, the lower at 0.1.
STRATIFIED = [(301, 400, 40), (401, 500, 10)]


@pytest.mark.parametrize("strata", [UNIFORM, STRATIFIED], ids=["uniform", "stratified"])
def test_inverse_probability_estimates_recover_the_known_truth(
    population: Population, strata: list[tuple[int, int, int]]
) -> None:
    band = population.band
    below = population.rank > population.k
    truth = {
        "untreated_rate": population.y0[band].mean(),
        "treated_rate": population.y1[band].mean(),
        "effect": (population.y1 - population.y0)[band].mean(),
        "margin_recall": population.y0[band].sum() / population.y0[below].sum(),
    }
    trials = 200
    found: dict[str, list[tuple[float, float, float]]] = {name: [] for name in truth}
    naive = []
    for seed in range(trials):
        period = _run_lottery(population, strata, seed)
        result = evaluation_estimates(
            period["labels"],
            population.rank,
            period["offered"],
            period["probability"],
            population.scores,
            population.k,
            population.band_end,
            seed=seed,
        )
        for name in truth:
            estimate = getattr(result, name)
            found[name].append((estimate.value, estimate.low, estimate.high))
        naive.append(period["labels"][band & ~period["offered"]].mean())
    for name, value in truth.items():
        values, lows, highs = (np.array(column) for column in zip(*found[name], strict=True))
        covered = ((lows <= value) & (value <= highs)).mean()
        assert covered >= 0.9, (name, covered)
        error = 4 * values.std(ddof=1) / np.sqrt(trials) + 1e-9
        assert abs(values.mean() - value) <= error, (name, values.mean(), value)
    if strata is STRATIFIED:  # without the weights the untreated rate would be biased
        spread = 4 * np.std(naive, ddof=1) / np.sqrt(trials)
        assert abs(np.mean(naive) - truth["untreated_rate"]) > spread


def test_the_estimates_compare_with_the_model_and_serialise(population: Population) -> None:
    period = _run_lottery(population, UNIFORM, seed=1)
    result = evaluation_estimates(
        period["labels"],
        population.rank,
        period["offered"],
        period["probability"],
        population.scores,
        population.k,
        population.band_end,
    )
    out = result.as_dict()
    json.dumps(out, allow_nan=False)
    assert out["reason"] is None and out["reasons"] == {}
    assert out["band_size"] == 200 and out["offered_in_band"] == 50
    untreated = out["estimates"]["untreated_rate"]
    assert untreated["n"] == 150
    assert untreated["model_expected"] == pytest.approx(0.25)
    recall = out["estimates"]["margin_recall"]
    scores, band = population.scores, population.band
    expected = scores[band].sum() / scores[population.rank > population.k].sum()
    assert recall["model_expected"] == pytest.approx(expected)
    assert recall["n"] == 150 + 2500
    effect = out["estimates"]["effect"]
    assert effect["low"] <= effect["value"] <= effect["high"] and 0 <= effect["p_value"] <= 1


@settings(max_examples=60, deadline=None)
@given(
    band=st.lists(
        st.tuples(st.floats(0.05, 0.95), st.booleans(), st.booleans()), min_size=2, max_size=80
    ),
    beyond=st.integers(0, 40),
    level=st.floats(0.5, 0.995),
    seed=st.integers(0, 2**16),
)
def test_the_effects_interval_and_test_agree(
    band: list[tuple[float, bool, bool]], beyond: int, level: float, seed: int
) -> None:
    probability = np.array([p for p, _, _ in band])
    offered = np.array([o for _, o, _ in band])
    if offered.all() or not offered.any():
        offered[0] = not offered[0]
    labels = np.array([int(y) for _, _, y in band])
    size = len(band)
    rank = np.arange(1, size + beyond + 1)
    result = evaluation_estimates(
        np.r_[labels, np.arange(beyond) % 3 == 0].astype(int),
        rank,
        np.r_[offered, np.zeros(beyond, dtype=bool)],
        np.r_[probability, np.zeros(beyond)],
        np.full(size + beyond, 0.2),
        0,
        size,
        level=level,
        seed=seed,
    )
    effect = result.effect
    assert effect is not None and effect.p_value is not None
    assert (effect.p_value < significance(level)) == (effect.low > 0 or effect.high < 0)


@settings(max_examples=200, deadline=None)
@given(
    # Few distinct values and short lists: ties at the cut, where one-sided rounding would show.
    draws=st.lists(st.integers(-2, 2), min_size=1, max_size=40),
    null=st.integers(-3, 3),
    level=st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99]),
)
def test_interval_excludes_a_value_exactly_when_the_test_rejects_it(
    draws: list[int], null: int, level: float
) -> None:
    values = np.array(draws, dtype=float)
    low, high = central_interval(values, level)
    p = two_sided_p_value(values, float(null))
    assert (p < significance(level)) == (null < low or null > high)


def test_draw_lottery_is_reproducible_and_uniform() -> None:
    first = draw_lottery(200, 50, 7)
    assert np.array_equal(first, draw_lottery(200, 50, 7))
    assert np.array_equal(first, draw_lottery(200, 50, np.random.SeedSequence(7)))
    assert len(np.unique(first)) == 50 and first.min() >= 0 and first.max() < 200
    counts = np.zeros(20)
    for seed in range(2000):
        counts[draw_lottery(20, 5, seed)] += 1
    # Each position is drawn with probability 5/20: 500 of 2000 (binomial sd about 19).
    assert np.abs(counts - 500).max() < 80
    assert draw_lottery(5, 0, 1).size == 0 and np.array_equal(draw_lottery(3, 3, 1), [0, 1, 2])


@pytest.mark.parametrize(
    ("band_size", "places"), [(10, 11), (-1, 0), (10, -1), (10, 2.5), (True, 1)]
)
def test_draw_lottery_refuses_impossible_draws(band_size, places) -> None:
    with pytest.raises(BadInputError):
        draw_lottery(band_size, places, 0)


def _small_period() -> dict:
    """Ranks 1-2 on the list, 3-6 the band (2 places by lottery), 7-8 beyond, one opted out."""
    return {
        "labels": np.array([1, 0, 1, 0, 1, 0, 1, 0, 0]),
        "rank": np.array([1, 2, 3, 4, 5, 6, 7, 8, 0]),
        "offered": np.array([1, 1, 1, 0, 0, 1, 0, 0, 0], dtype=bool),
        "probability": np.array([1, 1, 0.5, 0.5, 0.5, 0.5, 0, 0, 0]),
        "scores": np.array([0.9, 0.8, 0.5, 0.4, 0.3, 0.3, 0.2, 0.1, 0.5]),
        "k": 2,
        "band_end": 6,
    }


def test_a_small_period_gives_estimates() -> None:
    result = evaluation_estimates(**_small_period())
    assert result.untreated_rate is not None and result.untreated_rate.value == 0.5
    assert result.treated_rate is not None and result.treated_rate.value == 0.5
    assert result.margin_recall is not None
    assert result.margin_recall.value == pytest.approx(2 / 3)  # 2 in the band, 1 beyond


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labels": np.array([1, 0, 1])}, "one value per person"),
        ({"labels": np.array([2, 0, 1, 0, 1, 0, 1, 0, 0])}, "labels must be 0/1"),
        ({"probability": np.array([1, 1, 0.5, 0.5, 0.5, 1.5, 0, 0, 0])}, r"in \[0, 1\]"),
        (
            {"offered": np.array([1, 1, 1, 0, 0, 1, 0, 0, 1], dtype=bool)},
            "offered people must have a selection probability above 0",
        ),
        ({"probability": np.array([1, 0.9, 0.5, 0.5, 0.5, 0.5, 0, 0, 0])}, "on the list"),
        ({"probability": np.array([1, 1, 0.5, 0.5, 0.5, 0.5, 0.2, 0, 0])}, "outside the list"),
        ({"probability": np.array([1, 1, 0.5, 0.0, 0.5, 0.5, 0, 0, 0])}, "strictly between"),
        ({"rank": np.array([1, 2, 3, 3, 5, 6, 7, 8, 0])}, "ranks must be distinct"),
        ({"rank": np.array([1, 2, 3, 4, 5, 6, 7, -8, 0])}, "whole numbers >= 0"),
        ({"band_end": 1}, r"band_end \(1\) must be at least k \(2\)"),
        ({"scores": np.array([0.9, 0.8, 0.5, 0.4, 0.3, 0.3, 0.2, 0.1, np.nan])}, "scores must"),
    ],
)
def test_evaluation_estimates_refuse_bad_input(change: dict, message: str) -> None:
    arguments = _small_period()
    arguments.update(change)
    with pytest.raises(BadInputError, match=message):
        evaluation_estimates(**arguments)


@pytest.mark.parametrize(
    ("offered_band", "probability_band", "reason"),
    [
        ([0, 0, 0, 0], [0, 0, 0, 0], "no one in the margin band was offered"),
        ([1, 1, 1, 1], [1, 1, 1, 1], "everyone in the margin band was offered"),
        ([1, 1, 1, 1], [0.5, 0.5, 0.5, 0.5], "everyone in the margin band was offered"),
        ([0, 0, 0, 0], [0.25, 0.25, 0.25, 0.25], "no one in the margin band was offered"),
    ],
)
def test_without_a_lottery_the_estimates_are_none_with_a_reason(
    offered_band: list[int], probability_band: list[float], reason: str
) -> None:
    arguments = _small_period()
    arguments["offered"] = np.array([1, 1, *offered_band, 0, 0, 0], dtype=bool)
    arguments["probability"] = np.array([1, 1, *probability_band, 0, 0, 0], dtype=float)
    result = evaluation_estimates(**arguments)
    assert result.reason is not None and reason in result.reason
    assert result.untreated_rate is result.effect is result.margin_recall is None
    out = result.as_dict()
    json.dumps(out, allow_nan=False)
    assert out["estimates"]["effect"] is None and reason in out["reasons"]["effect"]


def test_margin_recall_is_none_without_crises_below_the_cut_off() -> None:
    arguments = _small_period()
    arguments["labels"] = np.array([1, 1, 1, 0, 0, 1, 0, 0, 1])  # none untreated below k
    result = evaluation_estimates(**arguments)
    assert result.margin_recall is None and result.effect is not None
    assert "no crisis without an offer" in result.reasons["margin_recall"]
