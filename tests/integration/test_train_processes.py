"""Training and the proxy check in several processes (the demo's): the results and progress of
one process."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def people(population: pd.DataFrame) -> pd.DataFrame:
    """The shared population's first 500 people over their 20 months (a quarter of it): one
    process and two train the same candidates at any size, and the fits are the test's time."""
    first = sorted(population["person_id"].unique())[:500]
    return population.loc[population["person_id"].isin(first)].reset_index(drop=True)


def test_candidates_trained_in_two_processes_are_those_of_one(people: pd.DataFrame) -> None:
    """``workers=2`` (the demo's) fits the same candidates, mitigated ones included (their
    fitting steps travel to the workers), to the same metrics and scores, with the same lines
    of progress in the same order."""
    from audits.mitigation import mitigated_candidates
    from model.candidates import expand
    from model.data import validate
    from model.train import train
    from tests.support.specs import fast_spec

    small_spec = fast_spec(
        mitigation={"attributes": ["sex"], "methods": ["reweighing", "equal_opportunity"]}
    )
    dataset = validate(people, small_spec)
    mitigated, fitters = mitigated_candidates(small_spec)
    assert len(fitters) == 2  # the mitigated candidates' own fitting steps are exercised
    configs = expand(small_spec) + mitigated
    lines: dict[int, list[str]] = {1: [], 2: []}
    results = {
        workers: train(
            small_spec,
            dataset,
            configs=configs,
            fitters=fitters,
            workers=workers,
            progress=lines[workers].append,
        )
        for workers in (1, 2)
    }
    one, two = results[1], results[2]
    assert lines[2][0] == "fitting 8 candidate splits in 2 processes"
    assert lines[2][1:] == lines[1]
    assert [c.config for c in two.candidates] == [c.config for c in one.candidates]
    for mine, theirs in zip(two.candidates, one.candidates, strict=True):
        assert mine.per_split == theirs.per_split
        np.testing.assert_allclose(
            mine.final.validation_scores, theirs.final.validation_scores, rtol=0, atol=1e-12
        )


def test_the_proxy_check_in_two_processes_is_that_of_one(population: pd.DataFrame) -> None:
    from audits.proxies import check_proxies
    from model.data import validate
    from tests.support.specs import fast_spec

    spec = fast_spec()
    data = validate(population, spec)
    sensitive = {a: data.frame[a].to_numpy() for a in ("sex", "race_ethnicity")}
    one = check_proxies(data.features, sensitive, spec, seed=spec.seed)
    two = check_proxies(data.features, sensitive, spec, seed=spec.seed, workers=2)
    assert [r.attribute for r in two] == ["sex", "race_ethnicity"]
    # As the report records them: a worker's one native thread sums in another order than this
    # process's, so the carriers' weights may differ in their last digits (about 1e-15).
    assert [r.as_dict() for r in two] == [r.as_dict() for r in one]
    for mine, theirs in zip(two, one, strict=True):
        assert mine.roc_auc == theirs.roc_auc
        assert [f for f, _ in mine.carriers] == [f for f, _ in theirs.carriers]
        np.testing.assert_allclose(
            [w for _, w in mine.carriers], [w for _, w in theirs.carriers], rtol=1e-9
        )


def test_the_proxy_check_is_sklearns_cross_validation(population) -> None:
    """The check's own fold loop (every attribute's folds in one pool) gives what sklearn's
    cross_val_predict and a fit on the whole sample give, attribute by attribute."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from audits.proxies import _carriers, check_proxies
    from model.candidates import CandidateConfig, build_pipeline
    from model.data import validate
    from tests.support.specs import fast_spec

    spec = fast_spec()
    data = validate(population, spec)
    rows = 20_000  # under the check's sample size: it takes every row
    features = data.features.iloc[:rows]
    sensitive = {a: data.frame[a].to_numpy()[:rows] for a in ("sex", "race_ethnicity")}
    found = check_proxies(features, sensitive, spec, seed=spec.seed)
    for result in found:
        target = pd.Series(np.asarray(sensitive[result.attribute], dtype=str))
        target = target.where(target.map(target.value_counts()) >= 10, "(other)")
        pipeline = build_pipeline(
            CandidateConfig("proxy", "logistic", {"C": 1.0}), spec, seed=spec.seed
        )
        pipeline.set_params(model=LogisticRegression(C=1.0, max_iter=1000))
        folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=spec.seed)
        probabilities = cross_val_predict(
            pipeline, features, target, cv=folds, method="predict_proba"
        )
        classes = np.unique(target)
        auc = (
            roc_auc_score(target == classes[1], probabilities[:, 1])
            if len(classes) == 2
            else roc_auc_score(target, probabilities, multi_class="ovr", average="macro")
        )
        assert result.roc_auc == pytest.approx(auc, abs=1e-12)
        assert result.carriers == _carriers(pipeline.fit(features, target), spec)
        assert result.rows == rows
    assert [r.attribute for r in found] == ["sex", "race_ethnicity"]


def _workers() -> set[int]:
    """This process's live loky worker processes (Linux's /proc; the resource trackers, small
    and kept, are not workers)."""
    import os
    from pathlib import Path

    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:  # ended while listed
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"LokyProcess" in command:
            found.add(int(stat.parent.name))
    return found


def test_stop_workers_ends_the_processes_a_parallel_fit_left_waiting(population) -> None:
    """The demo serves without the fits' idle worker processes (joblib would keep them for
    five minutes); a later parallel fit starts new ones."""
    import time

    from model.data import validate
    from model.train import stop_workers, train
    from tests.support.specs import fast_spec

    spec = fast_spec()
    dataset = validate(population, spec)
    first = train(spec, dataset, workers=2)
    waiting = _workers()
    assert len(waiting) == 2  # the two workers, still up after the fit
    stop_workers()
    deadline = time.monotonic() + 10
    while _workers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _workers()
    again = train(spec, dataset, workers=2)
    assert [c.per_split for c in again.candidates] == [c.per_split for c in first.candidates]
    stop_workers()


def test_workers_started_ahead_are_the_ones_a_parallel_fit_uses(population) -> None:
    """The demo starts the fits' processes while it generates its population: the fit that
    follows runs in those very processes (no new ones started), with the same results."""
    from model.data import validate
    from model.train import start_workers, stop_workers, train
    from tests.support.specs import fast_spec

    spec = fast_spec()
    dataset = validate(population, spec)
    start_workers(2)
    ahead = _workers()
    assert len(ahead) == 2
    result = train(spec, dataset, workers=2)
    assert _workers() == ahead
    stop_workers()
    alone = train(spec, dataset, workers=1)
    assert [c.per_split for c in result.candidates] == [c.per_split for c in alone.candidates]
