"""Classical two-sample tests on ``scipy.special`` alone (pure: no I/O).

The drift monitors confirm an alarm with Kolmogorov-Smirnov, Mann-Whitney U,
Anderson-Darling and chi-square tests. ``scipy.stats`` has them all, but importing it (and
``scipy.optimize``, which it pulls in) costs the processor ~46 MB of its ~130 MB before
any row; these are the same tests with the same p-values, written from their published
definitions. ``tests/unit/test_twosample.py`` checks every one against ``scipy.stats`` on
seeded samples with and without ties, of equal and unequal sizes, small and large.

Where the p-value has more than one method, the choice is scipy's default:

* Kolmogorov-Smirnov: exact when neither sample has more than 10,000 values (the
  probability that a random interleaving of the two samples stays inside the observed
  distance, computed over the lattice's anti-diagonals as a probability, so it cannot
  overflow); beyond, Kolmogorov's limiting distribution.
* Mann-Whitney U: exact when a sample has at most 8 values, nothing is tied and there
  are at most 20,000 pairs, else the normal approximation with tie and continuity
  corrections (scipy stays exact past 20,000 pairs: at 5 against 10,000 values it takes
  0.3 s where the recursion here would take 1.4 s; the drift monitors compare 20 values
  or more a side, which is always the approximation).
* Anderson-Darling k-sample (midrank, Scholz and Stephens [1]_): the p-value is
  interpolated from their table of critical values and clipped to [0.001, 0.25].
* Chi-square on a contingency table, with Yates' correction at one degree of freedom.

References
----------
.. [1] F. W. Scholz and M. A. Stephens, "K-sample Anderson-Darling tests", J. Amer.
   Statist. Assoc. 82 (1987), 918-924.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import special

F64 = npt.NDArray[np.float64]

EXACT_KS_MAX_N = 10_000  # per sample, as scipy's method="auto"
EXACT_MWU_MAX_N = 8  # the smaller sample, without ties
# ...and at most this many pairs: the exact distribution costs O((n1 n2)^2) here (1.4 s
# at 5 x 10,000; scipy 0.3 s). Past it, the normal approximation (scipy: still exact).
EXACT_MWU_MAX_PAIRS = 20_000
# Scholz and Stephens (1987), table 1: critical values b0 + b1 / sqrt(m) + b2 / m of the
# standardised statistic for k = m + 1 samples at these significance levels.
AD_SIGNIFICANCE = np.array([0.25, 0.1, 0.05, 0.025, 0.01, 0.005, 0.001])
AD_B0 = np.array([0.675, 1.281, 1.645, 1.96, 2.326, 2.573, 3.085])
AD_B1 = np.array([-0.245, 0.25, 0.678, 1.149, 1.822, 2.364, 3.615])
AD_B2 = np.array([-0.105, -0.305, -0.362, -0.391, -0.396, -0.345, -0.154])


class Outcome(NamedTuple):
    """A test statistic and its p-value."""

    statistic: float
    pvalue: float


def _sample(values: npt.ArrayLike) -> F64:
    """The values sorted, as float64; ValueError for none at all or a NaN."""
    a = np.sort(np.asarray(values, np.float64).ravel())
    if a.size == 0:
        raise ValueError("every sample needs at least one value")
    if np.isnan(a[-1]):  # NaN sorts last
        raise ValueError("samples must not contain NaN")
    return a


def wasserstein(u: npt.ArrayLike, v: npt.ArrayLike) -> float:
    """The first Wasserstein distance between two samples' empirical distributions: the
    area between their distribution functions.

    Parameters
    ----------
    u, v : array_like
        Finite values, at least one each.

    Returns
    -------
    float

    Examples
    --------
    >>> wasserstein([0.0, 1.0, 3.0], [5.0, 6.0, 8.0])
    5.0
    """
    a, b = _sample(u), _sample(v)
    values = np.sort(np.concatenate([a, b]))
    widths = np.diff(values)
    cdf_a = np.searchsorted(a, values[:-1], side="right") / a.size
    cdf_b = np.searchsorted(b, values[:-1], side="right") / b.size
    return float(np.sum(np.abs(cdf_a - cdf_b) * widths))


def ks_two_sample(x: npt.ArrayLike, y: npt.ArrayLike) -> Outcome:
    """Two-sided two-sample Kolmogorov-Smirnov test.

    Parameters
    ----------
    x, y : array_like
        The samples (at least one value each).

    Returns
    -------
    Outcome
        The largest distance between the two empirical distribution functions, and the
        probability of one at least as large when both samples come from one continuous
        distribution.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> same = ks_two_sample(rng.normal(0, 1, 300), rng.normal(0, 1, 200))
    >>> round(same.statistic, 4), round(same.pvalue, 4)
    (0.09, 0.2741)
    >>> ks_two_sample(rng.normal(0, 1, 300), rng.normal(1, 1, 200)).pvalue < 1e-10
    True
    """
    a, b = _sample(x), _sample(y)
    n1, n2 = a.size, b.size
    g = math.gcd(n1, n2)
    # On the lattice of the two empirical distribution functions, in units of
    # 1 / lcm(n1, n2): each value of x moves the difference up by n2 / g, each value of
    # y down by n1 / g. Integers, so the distance is exact.
    up, down = n2 // g, n1 // g
    lcm = n1 * up
    values = np.concatenate([a, b])
    steps = (np.searchsorted(a, values, side="right") * up
             - np.searchsorted(b, values, side="right") * down)
    h = int(np.max(np.abs(steps)))
    d = h / lcm
    if h == 0:
        return Outcome(0.0, 1.0)
    if max(n1, n2) > EXACT_KS_MAX_N:
        en = n1 * n2 / (n1 + n2)
        return Outcome(d, float(min(1.0, max(0.0, special.kolmogorov(math.sqrt(en) * d)))))
    return Outcome(d, float(min(1.0, max(0.0, 1.0 - _inside(n1, n2, up, down, h)))))


def _inside(n1: int, n2: int, up: int, down: int, h: int) -> float:
    """Probability that a uniformly random interleaving of ``n1`` and ``n2`` values keeps
    ``|i * up - j * down| < h`` at every point ``(i, j)`` on its way.

    ``P[i, j]`` (the share of paths to ``(i, j)`` that stayed inside) obeys
    ``P[i, j] = i / (i + j) * P[i - 1, j] + j / (i + j) * P[i, j - 1]``: the last step of a
    random path to ``(i, j)`` is an ``x`` with probability ``i / (i + j)``. Computed one
    anti-diagonal ``t = i + j`` at a time, over ``i``; inside is a contiguous run of
    ``i``, since ``i * up - j * down = i * (up + down) - t * down``.
    """
    if n1 > n2:  # the shorter axis makes the shorter vectors (the test is symmetric)
        n1, n2, up, down = n2, n1, down, up
    width = up + down
    p = np.zeros(n1 + 1)
    p[0] = 1.0
    i = np.arange(n1 + 1, dtype=np.float64)
    for t in range(1, n1 + n2 + 1):
        lo = max(t - n2, (t * down - h) // width + 1, 0)
        hi = min(t, n1, -((-(t * down + h)) // width) - 1)
        if lo > hi:
            return 0.0
        nxt = np.zeros(n1 + 1)
        from_x = p[lo - 1:hi] if lo > 0 else np.concatenate(([0.0], p[:hi]))
        k = i[lo:hi + 1]
        nxt[lo:hi + 1] = (k * from_x + (t - k) * p[lo:hi + 1]) / t
        p = nxt
    return float(p[n1])


def _midranks(values: F64) -> tuple[F64, npt.NDArray[np.int64]]:
    """Ranks from 1, ties given the mean of their ranks; and the size of each tie group."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts  # values below each distinct value
    ranks: F64 = (starts + (counts + 1) / 2.0)[inverse]
    return ranks, counts


def mann_whitney(x: npt.ArrayLike, y: npt.ArrayLike) -> Outcome:
    """Two-sided Mann-Whitney U test.

    Parameters
    ----------
    x, y : array_like
        The samples (at least one value each, no NaN).

    Returns
    -------
    Outcome
        ``U`` of ``x`` (pairs with the ``x`` value larger, ties counting one half) and the
        two-sided p-value.

    Examples
    --------
    >>> mann_whitney([1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0])
    Outcome(statistic=0.0, pvalue=0.05714285714285714)
    >>> rng = np.random.default_rng(2)
    >>> round(mann_whitney(rng.normal(0, 1, 400), rng.normal(0.2, 1, 400)).pvalue, 5)
    0.05529
    """
    a, b = _sample(x), _sample(y)
    n1, n2 = a.size, b.size
    ranks, ties = _midranks(np.concatenate([a, b]))
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2.0)
    u = max(u1, n1 * n2 - u1)
    if (min(n1, n2) <= EXACT_MWU_MAX_N and n1 * n2 <= EXACT_MWU_MAX_PAIRS
            and not (ties > 1).any()):
        p = 2.0 * _u_survival(int(u), n1, n2)
    else:
        n = n1 + n2
        tie_term = float(np.sum(ties.astype(np.float64) ** 3 - ties))
        s = math.sqrt(n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))))
        # The continuity correction counts all of P(U = u) in the tail.
        z = (u - n1 * n2 / 2.0 - 0.5) / s if s > 0 else math.inf
        p = 2.0 * float(special.ndtr(-z))
    return Outcome(u1, min(1.0, max(0.0, p)))


def _u_survival(u: int, m: int, n: int) -> float:
    """``P(U >= u)`` for samples of ``m`` and ``n`` distinct values under no difference.

    The largest of the ``m + n`` values is an ``x`` with probability ``m / (m + n)``, and
    then beats all ``n`` values of ``y``: ``f(m, n) = m / (m + n) f(m - 1, n) shifted by n
    + n / (m + n) f(m, n - 1)``, over ``n`` with ``m`` the smaller size.
    """
    m, n = min(m, n), max(m, n)
    size = m * n + 1
    # f[k] is the distribution of U for k values of x and the current count of y.
    f = np.zeros((m + 1, size))
    f[:, 0] = 1.0  # no y yet: U = 0
    for yn in range(1, n + 1):
        for k in range(1, m + 1):
            nxt = f[k] * (yn / (k + yn))  # the largest is a y: f(k, yn - 1)
            nxt[yn:] += f[k - 1, :size - yn] * (k / (k + yn))
            f[k] = nxt
    return float(f[m, u:].sum())


def anderson_darling(samples: Sequence[npt.ArrayLike]) -> Outcome:
    """Anderson-Darling k-sample test, midrank version (for data with ties).

    Parameters
    ----------
    samples : sequence of array_like
        At least two samples of at least one value each, four values in all.

    Returns
    -------
    Outcome
        The standardised statistic ``(A2akN - (k - 1)) / sigma`` and its p-value,
        interpolated from Scholz and Stephens' table and clipped to [0.001, 0.25] (a
        reported 0.001 means "0.001 or less").

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> same = anderson_darling([rng.normal(0, 1, 300), rng.normal(0, 1, 200)])
    >>> round(same.statistic, 4), round(same.pvalue, 4)
    (-0.6461, 0.25)
    >>> anderson_darling([rng.normal(0, 1, 300), rng.normal(0.3, 1, 200)]).pvalue
    0.001
    """
    arrays = [_sample(s) for s in samples]
    k = len(arrays)
    if k < 2:
        raise ValueError("need at least two samples")
    z = np.sort(np.concatenate(arrays))
    n_total = z.size
    if n_total < 4:
        raise ValueError("need at least four values in all")
    distinct = np.unique(z)
    if distinct.size < 2:
        raise ValueError("all values are equal")
    left = np.searchsorted(z, distinct, side="left")
    ties = np.searchsorted(z, distinct, side="right") - left
    below = left + ties / 2.0  # B_j - l_j / 2: values below z*_j, half its ties
    n = float(n_total)
    a2 = 0.0
    for s in arrays:
        right = np.searchsorted(s, distinct, side="right")
        mid = right - (right - np.searchsorted(s, distinct, side="left")) / 2.0
        terms = ties / n * (n * mid - below * s.size) ** 2 / (below * (n - below) - n * ties / 4.0)
        a2 += float(terms.sum()) / s.size
    a2 *= (n - 1.0) / n
    m = k - 1
    big_h = sum(1.0 / a.size for a in arrays)
    inv = 1.0 / np.arange(1, n_total, dtype=np.float64)  # 1/1 .. 1/(N-1)
    small_h = float(inv.sum())
    # g = sum over 1 <= i < j <= N-1 of 1 / ((N - i) j): prefix sums of 1 / (N - i).
    prefix = np.cumsum(1.0 / (n - np.arange(1, n_total - 1, dtype=np.float64)))
    g = float(np.sum(inv[1:] * prefix))
    a = (4 * g - 6) * (k - 1) + (10 - 6 * g) * big_h
    b = (2 * g - 4) * k ** 2 + 8 * small_h * k + (2 * g - 14 * small_h - 4) * big_h \
        - 8 * small_h + 4 * g - 6
    c = (6 * small_h + 2 * g - 2) * k ** 2 + (4 * small_h - 4 * g + 6) * k \
        + (2 * small_h - 6) * big_h + 4 * small_h
    d = (2 * small_h + 6) * k ** 2 - 4 * small_h * k
    variance = (a * n ** 3 + b * n ** 2 + c * n + d) / ((n - 1.0) * (n - 2.0) * (n - 3.0))
    statistic = (a2 - m) / math.sqrt(variance)
    critical = AD_B0 + AD_B1 / math.sqrt(m) + AD_B2 / m
    if statistic < critical.min():
        p = float(AD_SIGNIFICANCE.max())
    elif statistic > critical.max():
        p = float(AD_SIGNIFICANCE.min())
    else:
        fit = np.polyfit(critical, np.log(AD_SIGNIFICANCE), 2)
        p = float(np.exp(np.polyval(fit, statistic)))
    return Outcome(float(statistic), p)


def chi_square(table: npt.ArrayLike) -> Outcome:
    """Pearson's chi-square test of independence on a table of counts, with Yates'
    continuity correction when it has one degree of freedom.

    Parameters
    ----------
    table : array_like
        Two-dimensional counts whose rows and columns all have a positive total.

    Returns
    -------
    Outcome

    Examples
    --------
    >>> out = chi_square([[95, 5], [80, 20]])
    >>> round(out.statistic, 4), round(out.pvalue, 4)
    (8.96, 0.0028)
    """
    observed = np.asarray(table, np.float64)
    if observed.ndim != 2:
        raise ValueError("the table must have two dimensions")
    rows, cols = observed.sum(axis=1), observed.sum(axis=0)
    if (rows <= 0).any() or (cols <= 0).any():
        raise ValueError("every row and column needs a positive total")
    expected = np.outer(rows, cols) / observed.sum()
    dof = (observed.shape[0] - 1) * (observed.shape[1] - 1)
    if dof == 0:
        return Outcome(0.0, 1.0)
    if dof == 1:  # Yates: each count moved half a unit toward its expectation
        gap = expected - observed
        observed = observed + np.sign(gap) * np.minimum(0.5, np.abs(gap))
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return Outcome(statistic, float(special.chdtrc(dof, statistic)))
