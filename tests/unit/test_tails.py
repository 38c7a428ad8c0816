"""The drift tests' tails (audits.tails) against scipy.stats, bit for bit: every branch of
the two-sided KS distribution's choice of method (Ruben-Gambino, Durbin's matrix, Pomeranz,
Smirnov, Pelz-Good, the far tail) and the chi-square's edges; and the funnel's normal quantile
and tail (scipy.special) against scipy.stats.norm."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2, kstwo

from audits.tails import chi2_sf, kstwo_sf
from monitoring.funnel import log_ratio_interval

#: Sizes on both sides of every cut-off the method depends on (140 and 100,000).
SIZES = [1, 2, 3, 5, 10, 37, 99, 100, 139, 140, 141, 200, 1_000, 11_857, 100_000, 100_001]


def _same(ours: float, theirs: float) -> bool:
    return ours == theirs or (math.isnan(ours) and math.isnan(theirs))


def _statistics(n: int, rng: np.random.Generator) -> list[float]:
    edges = [0.0, 0.5 / n, 0.5 / n + 1e-12, 1 / n, 0.5, 1 - 1 / n, 1.0, 1.5, 1e-9, -0.1]
    # n*x^2 at the cut-offs: 0.754693 (Durbin), 2.2 and 4 (Pomeranz, Smirnov), 18 and 370.
    cuts = [math.sqrt(c / n) for c in (0.754693, 2.2, 4.0, 18.0, 370.0)]
    cuts += [(1.4 / n) ** (2 / 3)]  # n*x^1.5 = 1.4 (Durbin or Pelz-Good)
    near = [c * f for c in cuts for f in (0.999, 1.0, 1.001)]
    # Statistics far above 1/sqrt(n) are all in the far tail (and slow to compute exactly at
    # large n): a few of those, many where the methods differ.
    wide, narrow = (25, 40) if n <= 1_000 else (3, 40) if n <= 20_000 else (2, 6)
    spread = rng.uniform(0, 1, wide).tolist() + rng.uniform(0, 3 / math.sqrt(n), narrow).tolist()
    return edges + near + spread


@pytest.mark.parametrize("n", SIZES)
def test_the_ks_tail_is_scipys(n: int) -> None:
    rng = np.random.default_rng(n)
    differ = [
        (x, kstwo_sf(x, n), float(kstwo.sf(x, n)))
        for x in _statistics(n, rng)
        if not _same(kstwo_sf(x, n), float(kstwo.sf(x, n)))
    ]
    assert differ == []


def test_every_method_of_the_ks_tail_is_reached() -> None:
    """The grid above reaches each method (else a branch could differ unseen)."""
    from audits import tails

    reached: set[str] = set()
    names = ("_kolmogn_dmtw", "_kolmogn_pomeranz", "_kolmogn_pelz_good")
    originals = {name: getattr(tails, name) for name in names}

    def spy(name: str):  # type: ignore[no-untyped-def]
        def called(*args, **kwargs):  # type: ignore[no-untyped-def]
            reached.add(name)
            return originals[name](*args, **kwargs)

        return called

    try:
        for name in names:
            setattr(tails, name, spy(name))
        for n in SIZES:
            for x in _statistics(n, np.random.default_rng(n)):
                kstwo_sf(x, n)
    finally:
        for name, original in originals.items():
            setattr(tails, name, original)
    assert reached == set(names)


@pytest.mark.parametrize("dof", [1, 2, 3, 7, 20, 100])
def test_the_chi_square_tail_is_scipys(dof: int) -> None:
    rng = np.random.default_rng(dof)
    values = [0.0, -1.0, 1e-10, 0.5, 1.0, 3.3, 10.0, 50.0, 300.0, 1e4, math.inf, math.nan]
    values += rng.uniform(0, 3 * dof + 10, 40).tolist()
    differ = [
        (x, chi2_sf(x, dof), float(chi2.sf(x, dof)))
        for x in values
        if not _same(chi2_sf(x, dof), float(chi2.sf(x, dof)))
    ]
    assert differ == []


def test_a_size_that_is_not_a_sample_has_no_tail() -> None:
    assert math.isnan(kstwo_sf(0.1, 0))
    assert math.isnan(kstwo_sf(math.nan, 10))
    assert math.isnan(chi2_sf(1.0, 0))


@given(
    hits=st.integers(0, 500),
    n=st.integers(1, 2_000),
    ref_hits=st.integers(0, 500),
    ref_n=st.integers(1, 2_000),
    level=st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
@settings(max_examples=300, deadline=None)
def test_the_funnels_interval_and_test_are_scipy_stats_norms(
    hits: int, n: int, ref_hits: int, ref_n: int, level: float
) -> None:
    """The funnel's Katz interval and Wald test take the normal's quantile and tail from
    scipy.special (ndtri, ndtr); with scipy.stats.norm's ppf and sf they are the same numbers."""
    from scipy.stats import norm

    hits, ref_hits = min(hits, n), min(ref_hits, ref_n)
    ours = log_ratio_interval(hits, n, ref_hits, ref_n, level)
    if ours[0] is None or ours[1] == ours[0] == ours[2]:
        return  # undefined, or no spread: no quantile or tail is used
    a, b = (hits, ref_hits) if hits and ref_hits else (hits + 0.5, ref_hits + 0.5)
    m, r = (n, ref_n) if hits and ref_hits else (n + 0.5, ref_n + 0.5)
    centre = math.log((a / m) / (b / r))
    se = math.sqrt(max(1 / a - 1 / m, 0.0) + max(1 / b - 1 / r, 0.0))
    z = float(norm.ppf(0.5 + level / 2))
    theirs = (
        math.exp(centre - z * se),
        math.exp(centre + z * se),
        float(2 * norm.sf(abs(centre) / se)),
    )
    assert ours[1:] == theirs
