"""Training-stack benchmark: generation, training, scoring with exact explanations.

Prints one table with each measurement beside its target; the scikit-learn pipeline's own
``predict_proba`` (no explanations) is measured in the same run on the same records as the peer.
"""

from __future__ import annotations

import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.scale import pick, smoke
from model.data import validate
from model.spec import ExperimentSpec, load_spec, parse_spec, read_toml
from model.synthetic import generate_preset, write_population
from model.train import train

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "experiments" / "individual_outreach.toml"
GENERATED = pick(1_000_000, 20_000)
TRAINED = pick(200_000, 20_000)
SCORED = pick(10_000, 1_000)


def _spec() -> ExperimentSpec:
    """The shipped experiment; in the smoke run without mitigation and with one split."""
    if not smoke():
        return load_spec(SPEC)
    raw, _ = read_toml(SPEC, "experiment spec")
    raw.pop("mitigation", None)
    for candidate in raw["candidates"]:  # fewer boosting rounds: it only has to run
        if "max_iter" in candidate["grid"]:
            candidate["grid"]["max_iter"] = [10]
    raw["validation"] = {"splits": 1, "step_months": 3, "window_months": 1, "min_train_periods": 6}
    return parse_spec(raw, source_path=str(SPEC))


def _best_of(func: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return min(times)


def _per_call(func: Callable[[], object], calls: int) -> float:
    for _ in range(min(calls, 50)):
        func()
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls // 5):
            func()
        samples.append((time.perf_counter() - started) / (calls // 5))
    return statistics.median(samples)


def main() -> None:
    rows: list[tuple[str, str, str, str]] = []

    def report(name: str, value: str, target: str, verdict: bool | None) -> None:
        mark = "" if verdict is None else ("ok" if verdict else "MISSED")
        rows.append((name, value, target, mark))
        print(f"  {name}: {value}", file=sys.stderr)

    print("benchmark: training stack (2 cores)", file=sys.stderr)
    seconds = _best_of(lambda: generate_preset(unit="individual", rows=GENERATED, seed=1), 2)
    report(f"generate {GENERATED:,} individual rows", f"{seconds:.1f} s", "< 15 s", seconds < 15)
    frame = generate_preset(unit="individual", rows=GENERATED, seed=1)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "population.parquet")
        started = time.perf_counter()
        write_population(frame, path)
        report(
            f"write {GENERATED:,} rows to Parquet",
            f"{time.perf_counter() - started:.1f} s",
            "-",
            None,
        )

    spec = _spec()
    population = generate_preset(unit="individual", rows=TRAINED, seed=7)
    started = time.perf_counter()
    dataset = validate(population, spec)
    report(f"validate {TRAINED:,} rows", f"{time.perf_counter() - started:.2f} s", "-", None)
    started = time.perf_counter()
    result = train(spec, dataset)
    fits = len(result.candidates) * len(result.splits)
    report(
        f"train {TRAINED:,} rows ({fits} fits: {len(result.candidates)} candidates x "
        f"{len(result.splits)} splits)",
        f"{time.perf_counter() - started:.1f} s",
        "-",
        None,
    )

    records = population.sample(SCORED, random_state=0, replace=True).reset_index(drop=True)
    features = records[list(spec.feature_names)]
    one = features.head(1)
    one_record = one.to_dict("records")
    for candidate in result.candidates:
        if candidate.config.name not in ("logistic_1", "boosted"):
            continue
        model = candidate.scoring_model
        name = candidate.config.family
        columns = {f: features[f].to_numpy() for f in spec.feature_names}

        def batch(model=model, columns=columns) -> None:
            scored = model.score_columns(columns)
            top = np.argsort(-scored.contributions, axis=1)[:, :3]
            assert top.shape[0] == len(scored)

        seconds = _best_of(batch, 5)
        rate = len(features) / seconds
        report(
            f"{name}: score + explain, batches of {SCORED:,}",
            f"{rate:,.0f} records/s",
            ">= 100,000 records/s",
            rate >= 100_000,
        )
        seconds = _best_of(functools.partial(model.score_frame, records), 5)
        report(
            f"{name}: validate + score + explain a {SCORED:,}-row frame",
            f"{len(records) / seconds:,.0f} records/s",
            "-",
            None,
        )
        pipeline = candidate.final.pipeline
        seconds = _best_of(functools.partial(pipeline.predict_proba, features), 5)
        report(
            f"{name}: peer, scikit-learn pipeline predict_proba (no explanations), {SCORED:,}",
            f"{len(features) / seconds:,.0f} records/s",
            "-",
            None,
        )

        def single(model=model) -> None:
            scored = model.score_records(one_record)
            model.reasons(scored, 0)

        per = _per_call(single, pick(2000, 5))
        report(
            f"{name}: one record, validate + score + reasons",
            f"{per * 1e3:.3f} ms",
            "< 1 ms",
            per < 1e-3,
        )
        per = _per_call(functools.partial(pipeline.predict_proba, one), pick(500, 5))
        report(
            f"{name}: peer, scikit-learn predict_proba on a one-row DataFrame",
            f"{per * 1e3:.3f} ms",
            "-",
            None,
        )

    width = max(len(r[0]) for r in rows)
    print(f"\n{'measurement':<{width}}  {'result':>20}  {'target':>22}  verdict")
    for name, value, target, mark in rows:
        print(f"{name:<{width}}  {value:>20}  {target:>22}  {mark}")


if __name__ == "__main__":
    main()
