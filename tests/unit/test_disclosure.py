"""The one small-cell rule (:mod:`audits.disclosure`): which counts are withheld, and that no
withheld count can be worked out from what is shown."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest

import audits
from audits import disclosure
from audits.policy import Policy, load_policy


def test_the_threshold_is_the_policys_min_group_size() -> None:
    shipped = load_policy(Path(audits.__file__).parent / "policies" / "default.toml")
    assert disclosure.threshold_of(shipped) == shipped.min_group_size
    assert disclosure.threshold_of(shipped.model_copy(update={"min_group_size": 30})) == 30
    assert disclosure.threshold_of({"min_group_size": 250, "min_group_positives": 20}) == 250
    # Without a readable policy: the policy's own default.
    assert disclosure.threshold_of(None) == Policy.model_fields["min_group_size"].default == 100
    assert disclosure.threshold_of({}) == 100


@pytest.mark.parametrize(
    ("counts", "shown"),
    [
        ([5, 5, 0], (5, 5, 0)),  # nothing small
        ([0, 0, 0], (0, 0, 0)),
        ([2, 5, 6], (None, None, 6)),  # one small, and the next smallest with it
        ([4, 1, 10], (None, None, 10)),  # two small adding up to 5: enough
        ([1, 2, 9, 0], (None, None, None, 0)),  # two small adding up to 3: one more
        ([3, 0, 0], (None, None, None)),  # the only cells are few: all withheld
        ([1, 4], (None, None)),
    ],
)
def test_small_counts_are_withheld_so_that_the_total_cannot_give_them_back(
    counts: list[int], shown: tuple[int | None, ...]
) -> None:
    assert disclosure.withhold(counts, 5) == shown


def _recoverable(counts: list[int], shown: tuple[int | None, ...], threshold: int) -> bool:
    """Whether the shown cells and the total pin a withheld cell down to a small count."""
    hidden = [n for n, s in zip(counts, shown, strict=True) if s is None]
    if not hidden:
        return False
    return len(hidden) == 1 or sum(hidden) < threshold


def test_no_row_shows_a_small_count_or_lets_one_be_subtracted() -> None:
    rng = random.Random(23)
    for _ in range(2_000):
        threshold = rng.choice([5, 30, 100])
        counts = [
            rng.choice([0, rng.randrange(1, threshold), rng.randrange(threshold, 400)])
            for _ in range(rng.randrange(1, 7))
        ]
        shown = disclosure.withhold(counts, threshold)
        assert all(s is None or s == 0 or s >= threshold for s in shown), (counts, shown)
        assert all(s is None or s == n for s, n in zip(shown, counts, strict=True))
        # Either nothing is withheld, everything is, or the withheld cells are two or more
        # and add up to the threshold.
        if any(s is None for s in shown) and not all(s is None for s in shown):
            assert not _recoverable(counts, shown, threshold), (counts, shown)


def test_a_table_protects_both_its_rows_and_its_columns() -> None:
    rng = random.Random(7)
    for _ in range(300):
        threshold = 100
        table = [
            [rng.choice([0, rng.randrange(1, 100), rng.randrange(100, 600)]) for _ in range(4)]
            for _ in range(rng.randrange(2, 5))
        ]
        shown = disclosure.withhold_table(table, threshold)
        lines: list[tuple[list[int], tuple[int | None, ...]]] = [
            (row, tuple(s)) for row, s in zip(table, shown, strict=True)
        ]
        lines += [
            ([row[c] for row in table], tuple(s[c] for s in shown)) for c in range(len(table[0]))
        ]
        for counts, cells in lines:
            assert all(s is None or s == 0 or s >= threshold for s in cells)
            if not all(s is None for s in cells):
                assert not _recoverable(counts, cells, threshold), (table, shown)


def test_group_rows_withhold_small_counts_their_complements_and_what_comes_from_them() -> None:
    rows: list[dict[str, Any]] = [
        {"attribute": "overall", "group": "overall", "people": 1_000, "selected": 50, "rate": 0.05},
        {"attribute": "sex", "group": "f", "people": 520, "selected": 30, "rate": 0.06},
        {"attribute": "sex", "group": "m", "people": 470, "selected": 19, "rate": 0.04},
        {"attribute": "sex", "group": "x", "people": 10, "selected": 1, "rate": 0.1},
    ]
    touched = disclosure.withhold_groups(
        rows, 100, size="people", counts=("selected",), derived=("rate",)
    )
    overall, f, m, x = rows
    assert overall == {
        "attribute": "overall",
        "group": "overall",
        "people": 1_000,
        "selected": 50,
        "rate": 0.05,
    }  # everyone: no group, shown
    # x is small, so m (the next smallest) goes with it: 1,000 - 520 cannot give x back.
    assert x["people"] is None and m["people"] is None and f["people"] == 520
    assert x["selected"] is None and x["rate"] is None
    assert set(x[disclosure.WITHHELD]) == {"people", "selected", "rate"}
    assert x[disclosure.WITHHELD]["people"] == disclosure.words(100)
    # The selected counts are all fewer than 100: the whole column, and every rate from it.
    assert f["selected"] is None and f["rate"] is None
    assert touched == {("sex", "f"), ("sex", "m"), ("sex", "x")}


def test_a_derived_value_keeps_its_shape_when_withheld() -> None:
    row: dict[str, Any] = {"ci": [0.1, 0.2], "metrics": {"recall": 0.5}, "value": 1.2}
    disclosure.blank_fields(row, ["ci", "metrics", "value"], 100)
    assert row["ci"] == [None, None] and row["metrics"] == {"recall": None}
    assert row["value"] is None
    assert set(row[disclosure.WITHHELD]) == {"ci", "metrics", "value"}


def test_the_scan_finds_every_number_under_a_count_field() -> None:
    document = {
        "population": 1_000,
        "attributes": [{"groups": [{"offered": 12, "crises": {"accepted": 3}, "rate": 0.5}]}],
        "flag": True,
    }
    found = disclosure.shown_counts(document, ["offered", "crises"])
    assert sorted(found) == [
        ("$.attributes[0].groups[0].crises.accepted", 3),
        ("$.attributes[0].groups[0].offered", 12),
    ]


@pytest.mark.parametrize("threshold", [2, 5, 100])
def test_withholding_never_shows_more_than_it_was_given(threshold: int) -> None:
    for counts in itertools.product([0, 1, threshold - 1, threshold, 3 * threshold], repeat=3):
        shown = disclosure.withhold(list(counts), threshold)
        assert len(shown) == len(counts)
        assert all(s is None or s == n for s, n in zip(shown, counts, strict=True))


def test_messages_lose_their_small_counts_of_people() -> None:
    text = (
        "too few to judge (fewer than 100 people: 45 in the reference, 12 in the period); "
        "women (sex; 1,200 people, 7 in need) has a recall ratio of 0.5; 0 people"
    )
    assert disclosure.scrub(text, 100) == (
        "too few to judge (fewer than 100 people: fewer than 100 in the reference, fewer than "
        "100 in the period); women (sex; 1,200 people, fewer than 100 in need) has a recall "
        "ratio of 0.5; 0 people"
    )
    assert disclosure.scrub_all({"a": ["3 people"], "b": 3}, 5) == {
        "a": ["fewer than 5 people"],
        "b": 3,
    }
