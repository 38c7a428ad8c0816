"""The gate's operating characteristics: its decisions on audits whose truth is known.

Every row runs the audit's own code (:func:`audits.audit.run_audit`, what ``outreach audit
--predictions`` and a release call) on simulated populations with fixed seeds
(:mod:`bench.gate_scenarios`), under the shipped policy unless the row says otherwise, and counts
how often the gate FAILs, asks (REVIEW) or PASSes. The last rows time ``outreach policy
simulate`` with 200 replicates per cell on the shipped audit window's shape.

``python -m bench gate`` prints the docs' tables; ``OUTREACH_BENCH_REPS`` sets the
replicates per row (default 100).
"""

from __future__ import annotations

import os
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

from audits.operating_characteristics import AuditShape, GroupShape, operating_characteristics
from audits.policy import Policy, parse_policy
from bench.gate_scenarios import Scenario, independent, run
from bench.scale import pick

ROOT = Path(__file__).resolve().parent.parent
RACE = "race_ethnicity"


def _policy(**changes: object) -> Policy:
    raw = tomllib.loads((ROOT / "audits" / "policies" / "default.toml").read_text())
    raw.update(changes)
    return parse_policy(raw, sha256="bench")


def _race_only(**changes: object) -> Policy:
    return _policy(sensitive_attributes=[RACE], intersections=[], **changes)


def _reps() -> int:
    return int(os.environ.get("OUTREACH_BENCH_REPS", str(pick(100, 1))))


def _row(label: str, tally: object, extra: str = "") -> None:
    from bench.gate_scenarios import Tally

    assert isinstance(tally, Tally)
    print(
        f"| {label} | {tally.replicates} | {tally.share('FAIL'):.1%} | {tally.share('REVIEW'):.1%} "
        f"| {tally.share('PASS'):.1%} | {tally.mean_questions:.2f} | {extra} |",
        flush=True,
    )


def fair_model(reps: int) -> None:
    print("\nFair model, the shipped audit window (8,333 people x 6 months, clustered, ids):")
    print(
        "| min people in need | audits | FAIL | REVIEW | PASS | questions | coverage "
        "| PASS awaiting the board's acceptance of a disclosed group |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for threshold, race in pick(
        ((80, None), (120, None), (150, None), (200, None)), ((200, None),)
    ):
        policy = _policy(
            min_group_positives=threshold,
            min_group_positives_for={} if race is None else {RACE: race},
        )
        tally = run(Scenario(), policy, replicates=reps, seed=threshold, coverage=True)
        label = str(threshold) if race is None else f"{threshold}, race and ethnicity {race}"
        coverage = f"{tally.covered / max(tally.intervals, 1):.1%}"
        _row(label, tally, f"{coverage} | {tally.waits / max(tally.replicates, 1):.1%}")


def near_the_limit(reps: int) -> None:
    print(
        f"\nA group of 10% truly near the limit, {pick(200_000, 20_000):,} independent rows, "
        "the rest fair:"
    )
    print("| true ratio | audits | FAIL | REVIEW | PASS | questions | the group FAILs |")
    print("|---|---|---|---|---|---|---|")
    shares = {RACE: {"A": 0.5, "B": 0.4, "Target": 0.1}}
    for ratio in (0.80, 0.82):
        tally = run(
            independent(pick(200_000, 20_000), shares, {(RACE, "Target"): ratio}),
            _race_only(),
            replicates=reps,
            seed=int(ratio * 100),
        )
        _row(f"{ratio:.2f}", tally, f"{tally.group_share(f'Target ({RACE})', 'fail'):.1%}")


def material_breach(reps: int) -> None:
    print(
        "\nA material group truly at 0.6 of the rest's recall, "
        f"{pick(200_000, 20_000):,} independent rows:"
    )
    print("| group | audits | FAIL | REVIEW | PASS | questions | the group FAILs / PASSes |")
    print("|---|---|---|---|---|---|---|")
    shares = {RACE: {"Largest": 0.6, "B": 0.3, "Ten percent": 0.1}}
    for group in ("Largest", "Ten percent"):
        tally = run(
            independent(pick(200_000, 20_000), shares, {(RACE, group): 0.6}),
            _race_only(),
            replicates=reps,
            seed=6,
        )
        name = f"{group} ({RACE})"
        _row(
            group,
            tally,
            f"{tally.group_share(name, 'fail'):.1%} / {tally.group_share(name, 'pass'):.1%}",
        )


def thin_groups(reps: int) -> None:
    print("\nGroups the data cannot judge (shipped window, clustered):")
    print(
        "| case | audits | FAIL | REVIEW | PASS | questions | the group: named / passed unnamed |"
    )
    print("|---|---|---|---|---|---|---|")
    shares = {RACE: {"Most": 0.977, "Tiny": 0.023}}
    tally = run(
        Scenario(shares=shares, ratios={(RACE, "Tiny"): 0.5}), _race_only(), replicates=reps, seed=8
    )
    name = f"Tiny ({RACE})"
    named = 1 - tally.group_share(name, "pass")
    _row(
        "a group of about 15 people in need at 0.5",
        tally,
        f"{named:.1%} / {tally.group_share(name, 'pass'):.1%}",
    )


def many_comparisons(reps: int) -> None:
    print(
        "\nA fair model with 120 groups judged on their own "
        f"({pick(240_000, 24_000):,} independent rows):"
    )
    print("| case | audits | FAIL | REVIEW | PASS | questions | |")
    print("|---|---|---|---|---|---|---|")
    shares = {RACE: {f"g{i:03d}": 1.0 for i in range(120)}}
    tally = run(
        independent(pick(240_000, 24_000), shares, at_risk=0.25),
        _race_only(min_group_positives=80),
        replicates=max(reps // 4, pick(10, 1)),
        seed=12,
    )
    _row("120 comparisons", tally)


def simulate_timing() -> None:
    print(
        f"\n`outreach policy simulate`, {pick(200, 4)} replicates per cell, "
        "the shipped window's shape:"
    )
    shape = AuditShape(
        groups=tuple(
            GroupShape(attribute, group, people, need, 3.5, 6.0)
            for attribute, group, people, need in (
                (RACE, "White", 3311, 249),
                (RACE, "Black", 2104, 208),
                (RACE, "Hispanic or Latino", 1849, 148),
                ("sex", "female", 4314, 372),
                ("sex", "male", 4019, 314),
                ("disability", "no", 6496, 514),
                ("disability", "yes", 1837, 172),
                ("age_band", "25-34", 1810, 139),
            )
        ),
        total_people=8333,
        total_people_in_need=686,
        rows_per_person=6.0,
        rows_per_person_in_need=3.5,
        rates={"recall": 0.29},
        persistence=0.99,
    )
    for threshold in (200, 80):
        policy = _policy(min_group_positives=threshold, min_group_positives_for={})
        started = time.perf_counter()
        table = operating_characteristics(policy, shape, replicates=pick(200, 4), seed=1)
        took = time.perf_counter() - started
        assert table is not None
        print(
            f"- {len(table.groups)} judged group(s) x 6 ratios x {pick(200, 4)} replicates: "
            f"{took:.1f} s "
            f"(min people in need {threshold})"
        )
        for group in table.groups:
            cells = ", ".join(
                f"{r}: {c.fail:.0%}/{c.question:.0%}/{c.passed:.0%}"
                for r, c in sorted(group.cells.items())
            )
            print(f"  {group.group} ({group.attribute}, {group.people_in_need} in need): {cells}")


def main() -> None:
    reps = _reps()
    print(f"benchmark: the gate's error rates, {reps} audits per row", file=sys.stderr)
    np.seterr(all="ignore")
    fair_model(reps)
    near_the_limit(reps)
    material_breach(max(reps // 2, pick(10, 1)))
    thin_groups(reps)
    many_comparisons(reps)
    simulate_timing()


if __name__ == "__main__":
    main()
