"""Audit benchmark: the full audit against Fairlearn MetricFrame's own bootstrap, same data.

1,000,000 rows (100,000 people over 10 months), 3 sensitive attributes and their pairwise and
three-way intersections. Ours: every group metric, comparisons with everyone else, 1,000 cluster
bootstrap resamples (whole people), effective sizes, pooled estimates, calibration and ROC AUC per
group, and the gate. MetricFrame: four count metrics with its ``n_boot`` bootstrap, time-bounded
by running a few resamples and stating the count; the per-resample cost is extrapolated to 1,000.
"""

from __future__ import annotations

import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

from audits.audit import run_audit
from audits.policy import parse_policy
from bench.scale import pick

ROOT = Path(__file__).resolve().parent.parent
ROWS = pick(1_000_000, 20_000)
MONTHS = 10
PEOPLE = ROWS // MONTHS
RESAMPLES = pick(1000, 20)
MF_RESAMPLES = 2  # MetricFrame's bootstrap costs seconds per resample at this size


def _data(
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Each person's attributes fixed over the months; need persists from month to month."""
    rng = np.random.default_rng(seed)
    people = {
        "race_ethnicity": rng.choice(
            ["A", "B", "C", "D", "E", "F"], PEOPLE, p=[0.4, 0.25, 0.22, 0.07, 0.02, 0.04]
        ).astype(object),
        "sex": rng.choice(["female", "male"], PEOPLE).astype(object),
        "age_band": rng.choice(["18-24", "25-34", "35-44", "45-54", "55-64", "65+"], PEOPLE).astype(
            object
        ),
    }
    sensitive = {k: np.repeat(v, MONTHS) for k, v in people.items()}
    clusters = np.repeat(np.arange(PEOPLE), MONTHS)
    prone = np.repeat(rng.random(PEOPLE) < 0.1, MONTHS)
    labels = (rng.random(ROWS) < np.where(prone, 0.4, 0.01)).astype(np.int8)
    scores = rng.random(ROWS) * 0.5 + 0.4 * labels
    selected = scores >= np.quantile(scores, 0.95)
    return labels, selected, scores, sensitive, clusters


def main() -> None:
    raw = tomllib.loads((ROOT / "audits" / "policies" / "default.toml").read_text())
    raw["sensitive_attributes"] = ["race_ethnicity", "sex", "age_band"]
    raw["intersections"] = [
        ["race_ethnicity", "sex"],
        ["race_ethnicity", "age_band"],
        ["sex", "age_band"],
        ["race_ethnicity", "sex", "age_band"],
    ]
    raw["bootstrap_resamples"] = RESAMPLES
    policy = parse_policy(raw)
    labels, selected, scores, sensitive, clusters = _data()
    print(
        f"benchmark: full audit, {ROWS:,} rows ({PEOPLE:,} people), 3 attributes + 4 intersections",
        file=sys.stderr,
    )
    started = time.perf_counter()
    outcome = run_audit(
        policy,
        labels=labels,
        selected=selected,
        scores=scores,
        sensitive=sensitive,
        clusters=clusters,
        periods=MONTHS,
    )
    ours = time.perf_counter() - started
    started = time.perf_counter()
    run_audit(policy, labels=labels, selected=selected, scores=scores, sensitive=sensitive)
    unclustered = time.perf_counter() - started
    groups = len(outcome.audit.groups)

    frame = pd.DataFrame(sensitive)
    metrics = {
        "selection_rate": selection_rate,
        "recall": true_positive_rate,
        "false_positive_rate": false_positive_rate,
        "false_negative_rate": false_negative_rate,
    }
    # Time-bounded: MetricFrame on one of the seven groupings (the three-way intersection; in
    # the smoke run, which only checks that it runs, race x sex).
    columns = pick(["race_ethnicity", "sex", "age_band"], ["race_ethnicity", "sex"])
    started = time.perf_counter()
    MetricFrame(
        metrics=metrics,
        y_true=labels,
        y_pred=selected.astype(int),
        sensitive_features=frame[columns],
    )
    point_seconds = time.perf_counter() - started
    started = time.perf_counter()
    MetricFrame(
        metrics=metrics,
        y_true=labels,
        y_pred=selected.astype(int),
        sensitive_features=frame[columns],
        n_boot=MF_RESAMPLES,
        ci_quantiles=[0.025, 0.975],
        random_state=0,
    )
    boot_seconds = time.perf_counter() - started
    per_resample = max(boot_seconds - point_seconds, point_seconds) / MF_RESAMPLES
    groupings = 7
    extrapolated = groupings * (point_seconds + per_resample * RESAMPLES)

    rows = [
        (
            f"ours: full audit, cluster bootstrap ({RESAMPLES:,} resamples, gate)",
            f"{ours:.1f} s",
            "< 3 s",
            "ok" if ours < 3 else "MISSED",
        ),
        ("ours: the same, rows as independent", f"{unclustered:.1f} s", "-", ""),
        ("groups and intersections audited", f"{groups}", "-", ""),
        (
            "MetricFrame: point estimates, 1 of 7 groupings (measured)",
            f"{point_seconds:.1f} s",
            "-",
            "",
        ),
        (
            f"MetricFrame: n_boot={MF_RESAMPLES}, 1 of 7 groupings (measured)",
            f"{boot_seconds:.1f} s",
            "-",
            "",
        ),
        (
            f"MetricFrame: 7 groupings, n_boot={RESAMPLES:,} (extrapolated)",
            f"{extrapolated:.0f} s",
            "-",
            "",
        ),
        (
            f"ratio MetricFrame / ours at {RESAMPLES:,} resamples",
            f"{extrapolated / ours:.0f}x",
            "-",
            "",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measurement':<{width}}  {'result':>10}  {'target':>8}  verdict")
    for name, value, target, verdict in rows:
        print(f"{name:<{width}}  {value:>10}  {target:>8}  {verdict}")


if __name__ == "__main__":
    main()
