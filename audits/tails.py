"""Upper tails of the two distributions drift tests against, without ``scipy.stats``.

``scipy.stats`` takes most of a second to import, and a scored period needs two of its
survival functions: the chi-square's (:func:`chi2_sf`, which ``scipy.stats.chi2.sf`` computes
with ``scipy.special.chdtrc``) and the two-sided one-sample Kolmogorov-Smirnov statistic's
(:func:`kstwo_sf`, ``scipy.stats.kstwo.sf``: Simard and L'Ecuyer's choice among exact and
asymptotic methods). Both give the very numbers ``scipy.stats`` gives, bit for bit (a test
compares them over a grid), so a stored drift document is the same either way.

:func:`kstwo_sf`'s methods are SciPy's own (``scipy/stats/_ksstats.py``, SciPy 1.17; BSD
licence, Copyright (c) 2001-2002 Enthought, Inc. and 2003-2024 SciPy Developers), kept as
written there, with the CDF-only branches left out:

[1] Durbin J (1968). "The Probability that the Sample Distribution Function Lies Between Two
    Parallel Straight Lines." Annals of Mathematical Statistics, 39, 398-411.
[2] Pomeranz J (1974). "Exact Cumulative Distribution of the Kolmogorov-Smirnov Statistic for
    Small Samples (Algorithm 487)." Communications of the ACM, 17(12), 703-704.
[3] Marsaglia G, Tsang WW, Wang J (2003). "Evaluating Kolmogorov's Distribution." Journal of
    Statistical Software, 8(18), 1-4.
[6] Pelz W, Good IJ (1976). "Approximating the Lower Tail-areas of the Kolmogorov-Smirnov
    One-sample Statistic." Journal of the Royal Statistical Society, Series B, 38(2), 152-156.
[7] Simard R, L'Ecuyer P (2011). "Computing the Two-Sided Kolmogorov-Smirnov Distribution."
    Journal of Statistical Software, 39(11), 1-18.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import chdtrc, smirnov

_E128 = 128
_EP128 = np.ldexp(np.longdouble(1), _E128)
_EM128 = np.ldexp(np.longdouble(1), -_E128)

_SQRT2PI = np.sqrt(2 * np.pi)
_LOG_2PI = np.log(2 * np.pi)
_MIN_LOG = -708
_SQRT3 = np.sqrt(3)
_PI_SQUARED = np.pi**2
_PI_FOUR = np.pi**4
_PI_SIX = np.pi**6

# If B_m are the Bernoulli numbers, then Stirling coeffs are B_{2j}/(2j)/(2j-1) for j=8,...1.
_STIRLING_COEFFS = [
    -2.955065359477124183e-2,
    6.4102564102564102564e-3,
    -1.9175269175269175269e-3,
    8.4175084175084175084e-4,
    -5.952380952380952381e-4,
    7.9365079365079365079e-4,
    -2.7777777777777777778e-3,
    8.3333333333333333333e-2,
]


def chi2_sf(statistic: float, dof: int) -> float:
    """``scipy.stats.chi2.sf(statistic, dof)``: the chance of a chi-square value at least
    ``statistic`` with ``dof`` degrees of freedom (``dof`` > 0)."""
    if dof <= 0 or math.isnan(statistic):
        return math.nan
    if statistic <= 0.0:
        return 1.0
    if math.isinf(statistic):
        return 0.0
    return float(chdtrc(float(dof), float(statistic)))


def kstwo_sf(statistic: float, n: int) -> float:
    """``scipy.stats.kstwo.sf(statistic, n)``: the chance that the two-sided KS statistic of a
    sample of ``n`` (a whole number, at least 1) is at least ``statistic``."""
    if n < 1 or math.isnan(statistic):
        return math.nan
    if statistic <= 0.5 / n:  # at or below the support's lower end
        return 1.0
    if statistic >= 1.0:
        return 0.0
    return float(_kolmogn_sf(int(n), np.float64(statistic)))


def _log_nfactorial_div_n_pow_n(n: int) -> Any:
    # Computes n! / n**n = (n-1)! / n**(n-1), by Stirling's approximation with n*log(n)
    # removed up-front to avoid subtractive cancellation.
    rn = 1.0 / n
    return np.log(n) / 2 - n + _LOG_2PI / 2 + rn * np.polyval(_STIRLING_COEFFS, rn / n)


def _clip_prob(p: Any) -> Any:
    return np.clip(p, 0.0, 1.0)


def _select_and_clip_prob(cdfprob: Any, sfprob: Any, cdf: bool = True) -> Any:
    return _clip_prob(np.where(cdf, cdfprob, sfprob))


def _kolmogn_sf(n: int, x: Any) -> Any:
    """SciPy's ``_kolmogn(n, x, cdf=False)`` (Simard & L'Ecuyer [7])."""
    cdf = False
    if x >= 1.0:
        return _select_and_clip_prob(1.0, 0.0, cdf=cdf)
    if x <= 0.0:
        return _select_and_clip_prob(0.0, 1.0, cdf=cdf)
    t = n * x
    if t <= 1.0:  # Ruben-Gambino: 1/2n <= x <= 1/n
        if t <= 0.5:
            return _select_and_clip_prob(0.0, 1.0, cdf=cdf)
        if n <= 140:
            prob = np.prod(np.arange(1, n + 1) * (1.0 / n) * (2 * t - 1))
        else:
            prob = np.exp(_log_nfactorial_div_n_pow_n(n) + n * np.log(2 * t - 1))
        return _select_and_clip_prob(prob, 1.0 - prob, cdf=cdf)
    if t >= n - 1:  # Ruben-Gambino
        prob = 2 * (1.0 - x) ** n
        return _select_and_clip_prob(1 - prob, prob, cdf=cdf)
    if x >= 0.5:  # Exact: 2 * smirnov
        prob = 2 * smirnov(n, x)
        return _select_and_clip_prob(1.0 - prob, prob, cdf=cdf)

    nxsquared = t * x
    if n <= 140:
        if nxsquared <= 0.754693:
            prob = _kolmogn_dmtw(n, x, cdf=True)
            return _select_and_clip_prob(prob, 1.0 - prob, cdf=cdf)
        if nxsquared <= 4:
            prob = _kolmogn_pomeranz(n, x, cdf=True)
            return _select_and_clip_prob(prob, 1.0 - prob, cdf=cdf)
        # Now use Miller approximation of 2*smirnov
        prob = 2 * smirnov(n, x)
        return _select_and_clip_prob(1.0 - prob, prob, cdf=cdf)

    # The SF's own cutoffs on nxsquared.
    if nxsquared >= 370.0:
        return 0.0
    if nxsquared >= 2.2:
        prob = 2 * smirnov(n, x)
        return _clip_prob(prob)
    # Fall through and compute the SF as 1.0-CDF
    if nxsquared >= 18.0:
        cdfprob = 1.0
    elif n <= 100000 and n * x**1.5 <= 1.4:
        cdfprob = _kolmogn_dmtw(n, x, cdf=True)
    else:
        cdfprob = _kolmogn_pelz_good(n, x, cdf=True)
    return _select_and_clip_prob(cdfprob, 1.0 - cdfprob, cdf=cdf)


def _kolmogn_dmtw(n: int, d: Any, cdf: bool = True) -> Any:
    """Pr(D_n <= d) by the MTW approach to the Durbin matrix algorithm [1], [3]."""
    # Write d = (k-h)/n, where k is positive integer and 0 <= h < 1
    # Generate initial matrix H of size m*m where m=(2k-1)
    # Compute k-th row of (n!/n^n) * H^n, scaling intermediate results.
    # Requires memory O(m^2) and computation O(m^2 log(n)).
    if d >= 1.0:
        return _select_and_clip_prob(1.0, 0.0, cdf)
    nd = n * d
    if nd <= 0.5:
        return _select_and_clip_prob(0.0, 1.0, cdf)
    k = int(np.ceil(nd))
    h = k - nd
    m = 2 * k - 1

    H = np.zeros([m, m])  # noqa: N806 (the papers' names)

    # Initialize: v is first column (and last row) of H
    #  v[j] = (1-h^(j+1)/(j+1)!  (except for v[-1])
    #  w[j] = 1/(j)!
    # q = k-th row of H (actually i!/n^i*H^i)
    intm = np.arange(1, m + 1)
    v = 1.0 - h**intm
    w = np.empty(m)
    fac = 1.0
    for j in intm:
        w[j - 1] = fac
        fac /= j  # This might underflow.  Isn't a problem.
        v[j - 1] *= fac
    tt = max(2 * h - 1.0, 0) ** m - 2 * h**m
    v[-1] = (1.0 + tt) * fac

    for i in range(1, m):
        H[i - 1 :, i] = w[: m - i + 1]
    H[:, 0] = v
    H[-1, :] = np.flip(v, axis=0)

    Hpwr = np.eye(np.shape(H)[0])  # noqa: N806 (intermediate powers of H)
    nn = n
    expnt = 0  # Scaling of Hpwr
    Hexpnt = 0  # noqa: N806 (scaling of H)
    while nn > 0:
        if nn % 2:
            Hpwr = np.matmul(Hpwr, H)  # noqa: N806
            expnt += Hexpnt
        H = np.matmul(H, H)  # noqa: N806
        Hexpnt *= 2  # noqa: N806
        # Scale as needed.
        if np.abs(H[k - 1, k - 1]) > _EP128:
            H /= _EP128  # noqa: N806
            Hexpnt += _E128  # noqa: N806
        nn = nn // 2

    p = Hpwr[k - 1, k - 1]

    # Multiply by n!/n^n
    for i in range(1, n + 1):
        p = i * p / n
        if np.abs(p) < _EM128:
            p *= _EP128
            expnt -= _E128

    # unscale
    if expnt != 0:
        p = np.ldexp(p, expnt)

    return _select_and_clip_prob(p, 1.0 - p, cdf)


def _pomeranz_compute_j1j2(i: int, n: int, ll: int, ceilf: int, roundf: int) -> tuple[int, int]:
    """The endpoints of the interval for row i."""
    if i == 0:
        j1, j2 = -ll - ceilf - 1, ll + ceilf - 1
    else:
        # i + 1 = 2*ip1div2 + ip1mod2
        ip1div2, ip1mod2 = divmod(i + 1, 2)
        if ip1mod2 == 0:  # i is odd
            if ip1div2 == n + 1:
                j1, j2 = n - ll - ceilf - 1, n + ll + ceilf - 1
            else:
                j1, j2 = ip1div2 - 1 - ll - roundf - 1, ip1div2 + ll - 1 + ceilf - 1
        else:
            j1, j2 = ip1div2 - 1 - ll - 1, ip1div2 + ll + roundf - 1

    return max(j1 + 2, 0), min(j2, n)


def _kolmogn_pomeranz(n: int, x: Any, cdf: bool = True) -> Any:
    """Pr(D_n <= d) by the Pomeranz recursion algorithm [2]."""
    # V is n*(2n+2) matrix. Each row is convolution of the previous row and probabilities from
    # a Poisson distribution. Desired CDF probability is n! V[n-1, 2n+1] (final entry in final
    # row). Only two rows are needed at any given stage (V0 and V1, swapped each iteration);
    # only a few (contiguous) entries in each row can be non-zero (j1 and j2 below; V0s and V1s
    # track the start in the two rows). Intermediate results are scaled as needed.
    t = n * x
    ll = int(np.floor(t))
    f = 1.0 * (t - ll)  # fractional part of t
    g = min(f, 1.0 - f)
    ceilf = 1 if f > 0 else 0
    roundf = 1 if f > 0.5 else 0
    npwrs = 2 * (ll + 1)  # Maximum number of powers needed in convolutions
    gpower = np.empty(npwrs)  # gpower = (g/n)^m/m!
    twogpower = np.empty(npwrs)  # twogpower = (2g/n)^m/m!
    onem2gpower = np.empty(npwrs)  # onem2gpower = ((1-2g)/n)^m/m!
    # gpower etc are *almost* Poisson probs, just missing normalizing factor.

    gpower[0] = 1.0
    twogpower[0] = 1.0
    onem2gpower[0] = 1.0
    expnt = 0
    g_over_n, two_g_over_n, one_minus_two_g_over_n = g / n, 2 * g / n, (1 - 2 * g) / n
    for m in range(1, npwrs):
        gpower[m] = gpower[m - 1] * g_over_n / m
        twogpower[m] = twogpower[m - 1] * two_g_over_n / m
        onem2gpower[m] = onem2gpower[m - 1] * one_minus_two_g_over_n / m

    V0 = np.zeros([npwrs])  # noqa: N806
    V1 = np.zeros([npwrs])  # noqa: N806
    V1[0] = 1  # first row
    V0s, V1s = 0, 0  # noqa: N806 (start indices of the two rows)

    j1, j2 = _pomeranz_compute_j1j2(0, n, ll, ceilf, roundf)
    for i in range(1, 2 * n + 2):
        # Preserve j1, V1, V1s, V0s from last iteration
        k1 = j1
        V0, V1 = V1, V0  # noqa: N806
        V0s, V1s = V1s, V0s  # noqa: N806
        V1.fill(0.0)
        j1, j2 = _pomeranz_compute_j1j2(i, n, ll, ceilf, roundf)
        if i == 1 or i == 2 * n + 1:  # noqa: SIM108 (as SciPy writes it)
            pwrs = gpower
        else:
            pwrs = twogpower if i % 2 else onem2gpower
        ln2 = j2 - k1 + 1
        if ln2 > 0:
            conv = np.convolve(V0[k1 - V0s : k1 - V0s + ln2], pwrs[:ln2])
            conv_start = j1 - k1  # First index to use from conv
            conv_len = j2 - j1 + 1  # Number of entries to use from conv
            V1[:conv_len] = conv[conv_start : conv_start + conv_len]
            # Scale to avoid underflow.
            if 0 < np.max(V1) < _EM128:
                V1 *= _EP128  # noqa: N806
                expnt -= _E128
            V1s = V0s + j1 - k1  # noqa: N806

    # multiply by n!
    ans = V1[n - V1s]
    for m in range(1, n + 1):
        if np.abs(ans) > _EP128:
            ans *= _EM128
            expnt += _E128
        ans *= m

    # Undo any intermediate scaling
    if expnt != 0:
        ans = np.ldexp(ans, expnt)
    return _select_and_clip_prob(ans, 1.0 - ans, cdf)


def _kolmogn_pelz_good(n: int, x: Any, cdf: bool = True) -> Any:
    """The Pelz-Good approximation to Pr(D_n <= x), 0 <= x <= 1 [6].

    Start with Li-Chien, Korolyuk approximation:
        Prob(Dn <= x) ~ K0(z) + K1(z)/sqrt(n) + K2(z)/n + K3(z)/n**1.5
    where z = x*sqrt(n). Transform each K_(z) using Jacobi theta functions into a form suitable
    for small z.
    """
    if x <= 0.0:
        return _select_and_clip_prob(0.0, 1.0, cdf=cdf)
    if x >= 1.0:
        return _select_and_clip_prob(1.0, 0.0, cdf=cdf)

    z = np.sqrt(n) * x
    zsquared, zthree, zfour, zsix = z**2, z**3, z**4, z**6

    qlog = -_PI_SQUARED / 8 / zsquared
    if qlog < _MIN_LOG:  # z ~ 0.041743441416853426
        return _select_and_clip_prob(0.0, 1.0, cdf=cdf)

    q = np.exp(qlog)

    # Coefficients of terms in the sums for K1, K2 and K3
    k1a = -zsquared
    k1b = _PI_SQUARED / 4

    k2a = 6 * zsix + 2 * zfour
    k2b = (2 * zfour - 5 * zsquared) * _PI_SQUARED / 4
    k2c = _PI_FOUR * (1 - 2 * zsquared) / 16

    k3d = _PI_SIX * (5 - 30 * zsquared) / 64
    k3c = _PI_FOUR * (-60 * zsquared + 212 * zfour) / 16
    k3b = _PI_SQUARED * (135 * zfour - 96 * zsix) / 4
    k3a = -30 * zsix - 90 * z**8

    K0to3 = np.zeros(4)  # noqa: N806
    # Use a Horner scheme to evaluate sum c_i q^(i^2)
    # Reduces to a sum over odd integers.
    maxk = int(np.ceil(16 * z / np.pi))
    for k in range(maxk, 0, -1):
        m = 2 * k - 1
        msquared, mfour, msix = m**2, m**4, m**6
        qpower = np.power(q, 8 * k)
        coeffs = np.array(
            [
                1.0,
                k1a + k1b * msquared,
                k2a + k2b * msquared + k2c * mfour,
                k3a + k3b * msquared + k3c * mfour + k3d * msix,
            ]
        )
        K0to3 *= qpower  # noqa: N806
        K0to3 += coeffs  # noqa: N806
    K0to3 *= q  # noqa: N806
    K0to3 *= _SQRT2PI  # noqa: N806
    # z**10 > 0 as z > 0.04
    K0to3 /= np.array([z, 6 * zfour, 72 * z**7, 6480 * z**10])  # noqa: N806

    # Now do the other sum over the other terms, all integers k
    # K_2:  (pi^2 k^2) q^(k^2),
    # K_3:  (3pi^2 k^2 z^2 - pi^4 k^4)*q^(k^2)
    # Don't expect much subtractive cancellation so use direct calculation
    q = np.exp(-_PI_SQUARED / 2 / zsquared)
    ks = np.arange(maxk, 0, -1)
    ksquared = ks**2
    sqrt3z = _SQRT3 * z
    kspi = np.pi * ks
    qpwers = q**ksquared
    k2extra = np.sum(ksquared * qpwers)
    k2extra *= _PI_SQUARED * _SQRT2PI / (-36 * zthree)
    K0to3[2] += k2extra
    k3extra = np.sum((sqrt3z + kspi) * (sqrt3z - kspi) * ksquared * qpwers)
    k3extra *= _PI_SQUARED * _SQRT2PI / (216 * zsix)
    K0to3[3] += k3extra
    powers_of_n = np.power(n * 1.0, np.arange(len(K0to3)) / 2.0)
    K0to3 /= powers_of_n  # noqa: N806

    if not cdf:
        K0to3 *= -1  # noqa: N806
        K0to3[0] += 1

    return sum(K0to3)
