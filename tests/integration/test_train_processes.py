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
    assert two == one
