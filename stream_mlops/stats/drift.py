"""Streaming drift detection with a calibrated false-alarm rate (pure: no I/O).

Why not the obvious tools
-------------------------
A drift monitor is left switched on for months, so what matters first is how often it
pages on a stream that has *not* changed. The usual recipes fail that test:

* a KS test repeated every few events is a multiple-testing machine: at ``alpha`` = 0.05
  every 25 events it raises about 17 false alarms per 10,000 events (river's KSWIN,
  the same idea, about 12-14);
* Page-Hinkley and CUSUM on raw values need the noise level in the units of the data:
  on latency in milliseconds the default threshold of 50 is crossed by noise alone;
* ADWIN's bound assumes values in [0, 1], so it misses shifts in dollar-scale costs and
  most changes in spread.

The design here
---------------
Every detector is a small bank of one-sided CUSUMs [1]_ on *log-likelihood-ratio*
increments, with thresholds set so that the bank as a whole raises at most
``false_alarm_rate`` alarms per event on a stationary stream:

``NumericDriftDetector``
    Each value ``x`` is mapped to its rank ``r`` in the reference sample (the first
    ``reference_size`` values). Ties -- integer token counts, rounded latencies -- are
    broken by a uniform draw among the tied positions, seeded by the detector's seed and
    the value's index in the stream, so ``r`` is *exactly* uniform on ``0..N`` under no
    drift whatever the data's distribution, ties included (a randomised
    probability-integral transform, [3]_). ``r`` becomes a normal score ``z`` (van der
    Waerden), and six CUSUMs watch ``z``: location up/down (designed for a shift of
    ``shift`` standard deviations), spread up/down (Klotz scores ``z**2``, designed for
    a change of scale by ``spread_ratio``) [2]_ and trend up/down (a shift of
    ``shift / 2.5``: slow drifts and ramps reach it long before ``shift``). Ranks do not
    change when the data are multiplied by any positive constant, so detections are
    identical in ms or s, dollars or cents; and one value of 10**9 moves a score by at
    most its rank, so heavy tails (Pareto, log-normal latency) cannot page on their own.
``BinaryDriftDetector``
    Bernoulli CUSUMs for an error rate moving up or down by ``odds_ratio`` [4]_.
``CategoricalDriftDetector``
    One-vs-rest Bernoulli CUSUMs, up and down, for each reference category (status codes,
    model names), plus one for categories never seen in the reference.

Calibration. Because the normal scores are exactly distribution-free, the numeric
thresholds are computed once from the scores alone. The reference is itself a sample,
though: given one reference the scores are slightly biased, and an unlucky reference
makes a CUSUM drift upward. Thresholds therefore average the false-alarm rate over the
reference's sampling distribution (a Gaussian for the score bias, the Beta posterior for a
proportion), using Siegmund's corrected approximation of the in-control run length [5]_.
The approximation errs on the safe side: the benchmark (``benchmarks/drift.py``) measures
0.6-0.9 false alarms per 10,000 events for a target of 1 on millions of events of every
family. Those alarms come mostly from unlucky references, and each one re-warms.

Dependence. Production values are autocorrelated (queues, bursts, regimes, cycles), and
partial sums of dependent values wander further than independent ones: calibrated for
independence, the CUSUMs raised 2.8-4.8 alarms per 10,000 events on stationary AR, ARMA,
bursty and cyclic streams. Each threshold is therefore multiplied by its increments'
long-run variance factor over the reference (:func:`long_run_factors`, Newey-West),
which brings those streams to 0.1-0.8 (``benchmarks/drift_dependence.py``) for 2-9 % more
delay on independent ones (12-20 % on 0.5 sd steps, which also share their budget with the
trend CUSUMs). A cycle longer than the reference is out of its reach: give
such a metric a reference that spans the cycle.

Reference and memory. The reference is the first ``reference_size`` values; after a
drift it is rebuilt from the next ``reference_size`` values (re-warm), so a shift that has
become the new normal stops paging. ``pin`` (or ``reference=``) fixes it instead. State is
O(reference size + window) per series: the reference sample, a ring of the last
``window`` values for evidence, and a few CUSUM levels (the numeric score table depends
only on the settings and is shared by all detectors).

Batches. ``update_many`` gives exactly the detections of ``update`` per value: CUSUM
levels are integers in fixed point, and ``S_t = max(0, S_{t-1} + x_t)`` is evaluated for
a whole batch as ``C_t - min(-S_0, min_{s<=t} C_s)`` with ``C`` the cumulative sum (the
Lindley recursion), restarting after an alarm.

Evidence. ``compare_windows`` runs the classical two-sample tests on the reference and
the recent window, and calls drift only when the p-value is small *and* the effect is
large enough to matter, since with enough data every p-value is small.

References
----------
.. [1] E. S. Page, "Continuous inspection schemes", Biometrika 41 (1954), 100-115.
.. [2] J. Klotz, "Nonparametric tests for scale", Ann. Math. Statist. 33 (1962), 498-512.
.. [3] A. P. Dawid, "Statistical theory: the prequential approach", J. R. Statist. Soc. A
   147 (1984), 278-292 (randomised probability-integral transform).
.. [4] M. R. Reynolds and Z. G. Stoumbos, "A CUSUM chart for monitoring a proportion when
   inspecting continuously", J. Quality Technology 31 (1999), 87-108.
.. [5] D. Siegmund, *Sequential Analysis: Tests and Confidence Intervals*, Springer
   (1985), ch. X.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, Literal, Self

import numpy as np
import numpy.typing as npt
from scipy import special

from stream_mlops.stats.twosample import (
    anderson_darling,
    chi_square,
    ks_two_sample,
    mann_whitney,
    wasserstein,
)

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Kind = Literal["numeric", "binary", "categorical"]
KINDS: tuple[Kind, ...] = ("numeric", "binary", "categorical")

# CUSUM levels are integers in units of 2**-20 of a log-likelihood ratio, so that the
# scalar and the batch path add exactly the same numbers in any order.
_FIXED = float(1 << 20)
# Columns per vectorised step: bounds the (CUSUMs x values) scratch arrays.
_CHUNK = 4096
_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


# ---------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------


def _run_length(theta: F64, drift: F64, sd: F64, overshoot: F64, h: float) -> F64:
    """Siegmund's approximation of the in-control average run length of a CUSUM.

    For increments with mean ``drift`` < 0 and ``E exp(theta * X) = 1`` the run length
    from zero to ``h`` is about ``(exp(theta H) - theta H - 1) / (theta |drift|)`` with
    ``H = h + overshoot``: the walk crosses each boundary by about ``E[Y**2] / (2 E[Y])``
    with ``Y`` the increment's part in that direction (``1.25 sd`` in all for Gaussian
    increments, close to Siegmund's 1.166 [5]_; half of each jump for Bernoulli ones).
    Where a reference makes the drift non-negative the CUSUM climbs:
    ``H**2 / (var + H drift)``.
    """
    big_h = h + overshoot
    climbs = (drift >= 0) | (theta <= 0)
    th = np.where(climbs, 1.0, theta)
    a = np.minimum(th * big_h, 700.0)
    arl_neg = (np.expm1(a) - a) / (th * np.where(climbs, 1.0, -drift))
    arl_pos = big_h**2 / (sd**2 + big_h * np.maximum(drift, 0.0))
    return np.maximum(np.where(climbs, arl_pos, arl_neg), 1.0)


def _theta_star(values: F64, probs: F64) -> F64:
    """The positive root of ``sum(probs * exp(theta * values)) = 1``, per scenario row.

    ``values`` and ``probs`` are (scenarios, support). Rows whose mean is >= 0 have no
    positive root: 0 is returned for them.
    """
    mean = (values * probs).sum(axis=1)
    vmax = values.max(axis=1)
    lo = np.zeros(len(values))
    hi = np.full(len(values), 1.0)

    def excess(theta: F64) -> F64:
        # log-sum-exp, shifted by the largest value so nothing overflows.
        m = theta[:, None] * values
        top = m.max(axis=1)
        # A degenerate reference (one value) leaves rows of zero probability: log(0) is
        # -inf there, which is the right "below 1" answer, not an error.
        with np.errstate(divide="ignore"):
            out: F64 = np.log((probs * np.exp(m - top[:, None])).sum(axis=1)) + top
        return out

    ok = (mean < 0) & (vmax > 0)
    for _ in range(200):
        grow = ok & (excess(hi) < 0)
        if not grow.any():
            break
        hi = np.where(grow, hi * 2.0, hi)
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        below = excess(mid) < 0
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return np.where(ok, 0.5 * (lo + hi), 0.0)


def _solve_threshold(values: F64, probs: F64, weights: F64, rate: float) -> float:
    """The CUSUM threshold whose false-alarm rate, averaged over scenarios, is ``rate``.

    Each scenario row is the distribution of the increments under one plausible truth
    given the reference (``weights`` sum to 1).
    """
    theta = _theta_star(values, probs)
    drift = (values * probs).sum(axis=1)
    sd = np.sqrt(np.maximum((values**2 * probs).sum(axis=1) - drift**2, 1e-300))
    overshoot = np.zeros(len(values))
    for part in (np.maximum(values, 0.0), np.maximum(-values, 0.0)):
        m1 = (part * probs).sum(axis=1)
        m2 = (part**2 * probs).sum(axis=1)
        overshoot += np.where(m1 > 0, m2 / (2 * np.where(m1 > 0, m1, 1.0)), 0.0)

    def alarm_rate(h: float) -> float:
        return float((weights / _run_length(theta, drift, sd, overshoot, h)).sum())

    lo, hi = 0.0, 1.0
    while alarm_rate(hi) > rate:
        lo, hi = hi, hi * 2.0
        if hi > 1e6:
            raise ValueError("cannot reach the false-alarm rate: the reference is too small")
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if alarm_rate(mid) > rate:
            lo = mid
        else:
            hi = mid
    return hi


def long_run_factors(increments: F64) -> F64:
    """How much dependence inflates the variance of each row's partial sums, at least 1.

    The Bartlett-kernel (Newey-West) long-run variance of each row of ``increments``
    (CUSUMs x reference values, in stream order) over its variance, ``1 + 2 Σ_k (1 - k /
    (b + 1)) r_k`` with ``r_k`` the lag-k autocorrelation and bandwidth ``b = 2 sqrt(n)``.
    Partial sums of a stationary dependent series behave like those of an independent
    one with this much more variance (a Brownian motion with the long-run variance), so
    a CUSUM threshold multiplied by it keeps the false-alarm rate that the independent
    calibration promised. Floored at 1: below 1 on an independent stream is noise.

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> e = rng.normal(size=20_000)
    >>> ar = np.empty_like(e); ar[0] = e[0]
    >>> for t in range(1, len(e)): ar[t] = 0.6 * ar[t - 1] + e[t]
    >>> np.round(long_run_factors(np.stack([e, ar])), 2)   # (1 + 0.6) / (1 - 0.6) = 4
    array([1.  , 3.93])
    """
    x = np.asarray(increments, np.float64)
    n = x.shape[1]
    x = x - x.mean(axis=1, keepdims=True)
    g0 = (x * x).sum(axis=1)
    b = min(n - 1, math.ceil(2 * math.sqrt(n)))
    acc = np.zeros(len(x))
    for k in range(1, b + 1):
        acc += (1 - k / (b + 1)) * (x[:, k:] * x[:, :-k]).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(g0 > 0, 1 + 2 * acc / np.where(g0 > 0, g0, 1.0), 1.0)
    out: F64 = np.maximum(f, 1.0)
    return out


@lru_cache(maxsize=16)
def _hermite_nodes(n: int) -> tuple[F64, F64]:
    x, w = special.roots_hermitenorm(n)
    return np.asarray(x, np.float64), np.asarray(w / w.sum(), np.float64)


def _numeric_threshold(increments: F64, n_ref: int, rate: float) -> float:
    """Threshold for a CUSUM on rank-score increments (uniform over the ranks 0..n).

    Given a reference, the probability of each rank is a spacing of the reference in
    probability space: Dirichlet(1, ..., 1), so the mean increment is off by a bias with
    variance ``var(increments) / (n + 2)``, close to Gaussian. The rate is averaged over
    that bias (Gauss-Hermite nodes).
    """
    x, w = _hermite_nodes(24)
    bias_sd = float(np.std(increments)) / math.sqrt(n_ref + 2)
    values = increments[None, :] + (x * bias_sd)[:, None]
    probs = np.full_like(values, 1.0 / len(increments))
    return _solve_threshold(values, probs, w, rate)


def _beta_nodes(a: float, b: float) -> tuple[F64, F64]:
    """Nodes and weights for expectations under Beta(a, b).

    Gauss-Hermite nodes mapped through the Beta quantile function: the rate to average
    grows steeply towards the tails, which these nodes reach (to about 1e-19).
    """
    t, w = _hermite_nodes(48)
    lower = special.betaincinv(a, b, special.ndtr(np.minimum(t, 0.0)))
    upper = special.betainccinv(a, b, special.ndtr(-np.maximum(t, 0.0)))
    return np.where(t < 0, lower, upper), w


def _bernoulli_threshold(hit: float, miss: float, count: float, n_ref: float,
                         rate: float) -> float:
    """Threshold for a Bernoulli CUSUM (``hit`` when the event occurs, else ``miss``).

    The true proportion is unknown: ``count`` events in ``n_ref`` reference values leave
    it Beta(count + 1/2, n_ref - count + 1/2) (Jeffreys), and the rate is averaged over it.
    """
    p, w = _beta_nodes(count + 0.5, n_ref - count + 0.5)
    values = np.tile(np.array([hit, miss]), (len(p), 1))
    probs = np.stack([p, 1.0 - p], axis=1)
    return _solve_threshold(values, probs, w, rate)


# ---------------------------------------------------------------------------------------
# Seeded tie-breaking: a counter-based generator, so a value's draw depends only on the
# seed and its index in the stream (not on batch boundaries or on what was drawn before).
# ---------------------------------------------------------------------------------------


def _mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def _uniform(key: int, index: int) -> float:
    return (_mix64((key + (index + 1) * _GOLDEN) & _MASK) >> 11) * 2.0**-53


def _uniforms(key: int, start: int, n: int) -> F64:
    idx = np.arange(start + 1, start + n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = idx * np.uint64(_GOLDEN) + np.uint64(key)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


# ---------------------------------------------------------------------------------------
# State summaries and evidence
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectorState:
    """What a processor shows about a detector.

    ``statistics`` maps each CUSUM's name to its level as a fraction of its threshold
    (0 = nothing unusual, above 1 = alarm); ``last_drift_index`` is the 0-based stream index
    of the last detection and ``last_drift_cusums`` names the CUSUMs that crossed there
    (e.g. ``("spread_up",)``: the spread grew).
    """

    kind: Kind
    n_seen: int
    reference_size: int
    n_reference: int
    warming_up: bool
    pinned: bool
    n_drifts: int
    last_drift_index: int | None
    last_drift_cusums: tuple[str, ...]
    statistics: Mapping[str, float]

    @property
    def level(self) -> float:
        """The highest CUSUM level relative to its threshold."""
        return max(self.statistics.values(), default=0.0)


@dataclass(frozen=True)
class TestResult:
    """One two-sample test of the recent window against the reference.

    ``drift_detected`` needs both ``p_value < threshold`` and ``effect_size`` at least the
    minimum that was asked for.
    """

    __test__ = False  # not a pytest test class

    test_name: str
    statistic: float
    p_value: float
    threshold: float
    effect_size: float
    drift_detected: bool
    n_reference: int
    n_current: int


def _psi(ref_counts: F64, cur_counts: F64) -> float:
    """Population stability index, with half a count added to every cell."""
    p = (ref_counts + 0.5) / (ref_counts.sum() + 0.5 * len(ref_counts))
    q = (cur_counts + 0.5) / (cur_counts.sum() + 0.5 * len(cur_counts))
    return float(((q - p) * np.log(q / p)).sum())


def compare_windows(reference: Sequence[Any] | npt.NDArray[Any],
                    current: Sequence[Any] | npt.NDArray[Any], kind: Kind, *,
                    alpha: float = 0.01, min_effect: float | None = None) -> list[TestResult]:
    """Two-sample tests of ``current`` against ``reference``, with effect sizes.

    Parameters
    ----------
    reference, current : array_like
        The two samples (numbers for ``"numeric"``, 0/1 for ``"binary"``, any hashable
        labels for ``"categorical"``), e.g. a detector's ``reference_sample()`` and
        ``recent_sample()``.
    kind : {"numeric", "binary", "categorical"}
    alpha : float
        Significance level, reported as each result's ``threshold``.
    min_effect : float, optional
        Smallest effect that counts as drift. Numeric: the Wasserstein distance divided by
        the reference's robust spread (IQR / 1.349, or its standard deviation when the IQR
        is 0), default 0.1. Binary and categorical: the population stability index, default
        0.01 (an error rate going from 2 % to 4 % has a PSI of 0.014).

    Returns
    -------
    list of TestResult
        Numeric: Kolmogorov-Smirnov, Mann-Whitney U and Anderson-Darling k-sample (whose
        p-value is interpolated from a table and clipped to [0.001, 0.25]: a reported
        0.001 means "0.001 or less"). Binary and categorical: chi-square on the contingency
        table of counts (all from :mod:`stream_mlops.stats.twosample`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(100.0, 10.0, 2000)
    >>> [r.drift_detected for r in compare_windows(ref, rng.normal(100.0, 10.0, 500),
    ...                                            "numeric")]
    [False, False, False]
    >>> moved = compare_windows(ref, rng.normal(110.0, 10.0, 500), "numeric")
    >>> [(r.test_name, r.drift_detected, round(r.effect_size, 1)) for r in moved]
    [('ks', True, 1.0), ('mann_whitney', True, 1.0), ('anderson_darling', True, 1.0)]
    >>> chi = compare_windows(["ok"] * 95 + ["err"] * 5, ["ok"] * 80 + ["err"] * 20,
    ...                       "categorical")[0]
    >>> chi.test_name, chi.drift_detected, round(chi.p_value, 4), round(chi.effect_size, 3)
    ('chi_square', True, 0.0028, 0.221)
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    if min_effect is not None and not min_effect >= 0.0:
        raise ValueError("min_effect must be >= 0")
    if len(reference) < 2 or len(current) < 2:
        raise ValueError("both samples need at least 2 values")
    if kind == "numeric":
        return _compare_numeric(np.asarray(reference, np.float64),
                                np.asarray(current, np.float64), alpha,
                                0.1 if min_effect is None else min_effect)
    if kind == "binary":
        ref_l: list[Hashable] = [int(v) for v in _binary_array(reference)]
        cur_l: list[Hashable] = [int(v) for v in _binary_array(current)]
    else:
        ref_l, cur_l = list(reference), list(current)
    return [_compare_counts(ref_l, cur_l, alpha, 0.01 if min_effect is None else min_effect)]


def _compare_numeric(ref: F64, cur: F64, alpha: float, min_effect: float) -> list[TestResult]:
    if not (np.isfinite(ref).all() and np.isfinite(cur).all()):
        raise ValueError("numeric samples must be finite")
    if np.unique(np.concatenate([ref, cur])).size < 2:
        # One value throughout (e.g. a constant latency): nothing differs, and the rank
        # tests are undefined; say "no difference" rather than fail.
        return [TestResult(name, 0.0, 1.0, alpha, 0.0, False, len(ref), len(cur))
                for name in ("ks", "mann_whitney", "anderson_darling")]
    q75, q25 = np.percentile(ref, [75, 25])
    spread = (q75 - q25) / 1.349 or float(np.std(ref))
    dist = wasserstein(ref, cur)
    effect = dist / spread if spread > 0 else (0.0 if dist == 0 else math.inf)
    ks, mw, ad = ks_two_sample(ref, cur), mann_whitney(ref, cur), anderson_darling([ref, cur])
    out = []
    for name, stat, p in (("ks", ks.statistic, ks.pvalue),
                          ("mann_whitney", mw.statistic, mw.pvalue),
                          ("anderson_darling", ad.statistic, ad.pvalue)):
        out.append(TestResult(name, float(stat), float(p), alpha, float(effect),
                              bool(p < alpha and effect >= min_effect), len(ref), len(cur)))
    return out


def _compare_counts(ref: list[Hashable], cur: list[Hashable], alpha: float,
                    min_effect: float) -> TestResult:
    rc, cc = Counter(ref), Counter(cur)
    cats = sorted(set(rc) | set(cc), key=repr)
    table = np.array([[rc[c] for c in cats], [cc[c] for c in cats]], np.float64)
    if len(cats) < 2:
        stat, p = 0.0, 1.0
    else:
        res = chi_square(table)
        stat, p = float(res.statistic), float(res.pvalue)
    effect = _psi(table[0], table[1])
    return TestResult("chi_square", stat, p, alpha, effect,
                      bool(p < alpha and effect >= min_effect), len(ref), len(cur))


def _binary_array(xs: Iterable[Any] | npt.NDArray[Any]) -> npt.NDArray[np.int8]:
    arr = np.asarray(xs)
    if arr.dtype == np.bool_:
        return arr.astype(np.int8)
    if arr.dtype.kind not in "biuf" or not np.isin(arr, (0, 1)).all():
        raise ValueError("binary values must be 0/1 or booleans")
    return arr.astype(np.int8)


# ---------------------------------------------------------------------------------------
# Detectors
# ---------------------------------------------------------------------------------------


@cache
def _empty(dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    return np.empty(0, dtype)


_NO_TABLE: I64 = np.zeros((0, 0), np.int64)
# The levels of a detector without a reference; they are replaced whole when it gets one
# (and only then set item by item), so one empty list serves every detector.
_NO_LEVELS: list[int] = []


class _Detector(ABC):
    """Warm-up, reference, CUSUM bank and the scalar/batch paths shared by all kinds.

    A subclass maps values to integer *codes* (a rank, 0/1, a category index) and builds,
    from a reference, a table ``(cusums, codes)`` of fixed-point increments and the
    thresholds; everything else is here.
    """

    kind: Kind
    _dtype: npt.DTypeLike = np.float64
    # A large deployment holds seven detectors per (tenant, function), most of them for
    # series with little traffic: no per-instance __dict__ (issue 18).
    __slots__ = ("_drift", "_fired", "_last_drift", "_levels", "_n_drifts", "_n_ring",
                 "_n_seen", "_n_warm", "_names", "_pinned", "_ref", "_ring", "_ring_in_warm",
                 "_table", "_thresholds", "_warm", "false_alarm_rate", "reference_size",
                 "seed", "window")

    def __init__(self, reference_size: int, false_alarm_rate: float, window: int, seed: int,
                 reference: Sequence[Any] | npt.NDArray[Any] | None) -> None:
        if not isinstance(seed, int) or seed < 0:
            raise ValueError("seed must be a non-negative integer")
        if not isinstance(reference_size, int) or reference_size < 50:
            raise ValueError("reference_size must be an integer >= 50")
        if not 0.0 < false_alarm_rate < 0.1:
            raise ValueError("false_alarm_rate (alarms per event) must be in (0, 0.1)")
        if not isinstance(window, int) or window < 1:
            raise ValueError("window must be a positive integer")
        self.seed = seed
        self.reference_size = reference_size
        self.false_alarm_rate = false_alarm_rate
        self.window = window
        # Buffers grow with the values they hold, and the warm-up buffer is freed once the
        # reference is learnt: most series of a large deployment see few requests, and a
        # full-size buffer per detector was most of the memory per series (issue 18).
        # Until then they are one shared empty array per dtype: an empty array still costs
        # 112 bytes, and they are never written in place before they are replaced.
        empty = _empty(np.dtype(self._dtype))
        self._warm = empty
        self._n_warm = 0
        self._ref: npt.NDArray[Any] = empty
        self._table: I64 = _NO_TABLE
        self._names: tuple[str, ...] = ()
        self._thresholds: tuple[int, ...] = ()
        self._levels = _NO_LEVELS
        self._pinned = False
        self._n_seen = 0
        self._n_drifts = 0
        self._last_drift: int | None = None
        self._fired: tuple[str, ...] = ()
        self._drift = False
        self._ring = empty
        self._n_ring = 0
        # Until the first reference, every value seen is in the warm-up buffer, which then
        # stands for the ring too (one copy of each value, not two).
        self._ring_in_warm = reference is None
        if reference is not None:
            self.pin(reference)

    # -- what subclasses provide ----------------------------------------------------------

    @abstractmethod
    def _coerce(self, xs: Sequence[Any] | npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Validate a batch and return it as an array of ``_dtype``."""

    @abstractmethod
    def _fit(self, ref: npt.NDArray[Any]) -> tuple[list[str], I64, list[int]]:
        """CUSUM names, increments (cusums x codes) and thresholds, in fixed point."""

    @abstractmethod
    def _codes(self, xs: npt.NDArray[Any], start: int) -> I64:
        """Codes of the values ``xs``, the first of which has stream index ``start``."""

    @abstractmethod
    def _code(self, x: Any, index: int) -> int:
        """The code of one value (the same as ``_codes`` would give)."""

    # -- reference --------------------------------------------------------------------------

    @property
    def warming_up(self) -> bool:
        """True while the reference is being collected (no detection is possible)."""
        return len(self._thresholds) == 0

    @property
    def level(self) -> float:
        """The highest CUSUM level relative to its threshold (``state().level`` without
        building the state)."""
        return max((lv / th for lv, th in zip(self._levels, self._thresholds, strict=False)),
                   default=0.0)

    @property
    def pinned(self) -> bool:
        """True while the reference is kept after a drift (:meth:`pin`)."""
        return self._pinned

    def _set_reference(self, ref: npt.NDArray[Any]) -> None:
        self._own_ring()
        ordered = ref.copy()  # _fit may sort; the dependence is read in stream order
        names, table, thresholds = self._fit(ref)
        self._ref = ref
        self._names = tuple(names)
        self._table = table
        factors = long_run_factors(table[:, self._codes(ordered, 0)] / _FIXED)
        self._thresholds = tuple(round(h * f) for h, f in zip(thresholds, factors.tolist(),
                                                              strict=True))
        self._levels = [0] * len(names)
        self._n_warm = 0
        self._warm = _empty(np.dtype(self._dtype))

    def _own_ring(self) -> None:
        """Give the ring its own copy of the values seen so far (all in the warm-up buffer
        until the first reference)."""
        if self._ring_in_warm:
            self._ring_in_warm = False
            self._write_ring(self._warm[:self._n_warm])

    def _warm_extend(self, values: npt.NDArray[Any]) -> None:
        need = self._n_warm + len(values)
        if need > len(self._warm):
            grown = np.empty(min(self.reference_size, max(64, need + need // 4)), self._dtype)
            grown[:self._n_warm] = self._warm[:self._n_warm]
            self._warm = grown
        self._warm[self._n_warm:need] = values
        self._n_warm = need

    def pin(self, sample: Sequence[Any] | npt.NDArray[Any] | None = None) -> Self:
        """Fix the reference: ``sample`` if given, else the current reference.

        A pinned reference is kept after a drift (the CUSUMs restart from zero, so a drift
        that persists is reported again); ``unpin`` or ``refresh`` ends that.
        """
        if sample is None:
            if self.warming_up:
                raise ValueError("no reference to pin yet: pass a sample or wait for warm-up")
        else:
            ref = self._coerce(sample)
            if len(ref) < 50:
                raise ValueError("a pinned reference needs at least 50 values")
            self._set_reference(ref.copy())
        self._pinned = True
        return self

    def unpin(self) -> Self:
        """Let the reference be rebuilt after the next drift."""
        self._pinned = False
        return self

    def refresh(self) -> Self:
        """Drop the reference now and collect a new one from the next values."""
        self._own_ring()
        self._pinned = False
        self._thresholds = ()
        self._levels = _NO_LEVELS
        self._n_warm = 0
        return self

    def reference_sample(self) -> npt.NDArray[Any]:
        """A copy of the reference (empty while warming up; numeric: in sorted order)."""
        return np.empty(0, self._dtype) if self.warming_up else self._ref.copy()

    def recent_sample(self) -> npt.NDArray[Any]:
        """A copy of the last ``window`` values seen, oldest first."""
        if self._ring_in_warm:
            return self._warm[max(0, self._n_warm - self.window):self._n_warm].copy()
        if self._n_ring <= self.window:
            return self._ring[:self._n_ring].copy()
        k = self._n_ring % self.window
        return np.concatenate([self._ring[k:], self._ring[:k]])

    # -- state ------------------------------------------------------------------------------

    @property
    def drift_detected(self) -> bool:
        """True if the last ``update`` (or any value of the last ``update_many``) drifted."""
        return self._drift

    @property
    def n_seen(self) -> int:
        return self._n_seen

    @property
    def n_drifts(self) -> int:
        return self._n_drifts

    def state(self) -> DetectorState:
        """A summary for dashboards and logs."""
        stats_ = {n: lv / th for n, lv, th in zip(self._names, self._levels, self._thresholds,
                                                  strict=False)}
        return DetectorState(self.kind, self._n_seen, self.reference_size,
                             self._n_warm if self.warming_up else len(self._ref),
                             self.warming_up, self._pinned, self._n_drifts, self._last_drift,
                             self._fired, stats_)

    def _on_drift(self, index: int) -> None:
        self._n_drifts += 1
        self._last_drift = index
        if self._pinned:
            self._levels = [0] * len(self._levels)
        else:
            self.refresh()

    # -- updates ----------------------------------------------------------------------------

    def update(self, x: Any) -> Self:
        """Add one value; ``drift_detected`` tells whether it completed a detection."""
        arr = self._coerce([x])
        self._drift = False
        index = self._n_seen
        self._n_seen += 1
        if not self._ring_in_warm:
            if not len(self._ring):
                self._ring = np.empty(self.window, self._dtype)
            self._ring[self._n_ring % self.window] = arr[0]
            self._n_ring += 1
        if self.warming_up:
            self._warm_extend(arr)
            if self._n_warm == self.reference_size:
                self._set_reference(self._warm)
            return self
        row: list[int] = self._table[:, self._code(arr[0], index)].tolist()
        levels = self._levels
        for j, (lv, inc) in enumerate(zip(levels, row, strict=True)):
            s = lv + inc
            levels[j] = s if s > 0 else 0
        fired = tuple(n for n, lv, th in zip(self._names, levels, self._thresholds, strict=True)
                      if lv > th)
        if fired:
            self._drift = True
            self._fired = fired
            self._on_drift(index)
        return self

    def update_many(self, xs: Sequence[Any] | npt.NDArray[Any]) -> I64:
        """Add a batch; return the indices (within ``xs``) where drift was detected.

        Exactly the detections of calling ``update`` on each value in turn.
        """
        arr = self._coerce(xs)
        n = len(arr)
        start = self._n_seen
        in_warm = self._ring_in_warm
        if not in_warm:
            self._write_ring(arr)
        found: list[int] = []
        i = 0
        while i < n:
            if self.warming_up:
                take = min(self.reference_size - self._n_warm, n - i)
                self._warm_extend(arr[i:i + take])
                i += take
                if self._n_warm == self.reference_size:
                    self._set_reference(self._warm)  # the ring takes what the buffer held
                    if in_warm:
                        self._write_ring(arr[i:])  # and the rest of this batch
                        in_warm = False
                continue
            stop = min(n, i + _CHUNK)
            j = self._run(self._codes(arr[i:stop], start + i))
            if j < 0:
                i = stop
            else:
                found.append(i + j)
                self._on_drift(start + i + j)
                i += j + 1
        self._n_seen += n
        self._drift = bool(found)
        return np.asarray(found, np.int64)

    def _run(self, codes: I64) -> int:
        """Advance the CUSUMs over ``codes``; the offset of the first alarm, or -1."""
        incr = self._table[:, codes]
        c = np.cumsum(incr, axis=1)
        low = np.minimum.accumulate(c, axis=1)
        np.minimum(low, -np.asarray(self._levels, np.int64)[:, None], out=low)
        level = c - low
        over = (level > np.asarray(self._thresholds, np.int64)[:, None]).any(axis=0)
        if over.any():
            j = int(np.argmax(over))
            self._fired = tuple(n for n, lv, th in zip(self._names, level[:, j].tolist(),
                                                       self._thresholds, strict=True)
                                if lv > th)
            return j
        self._levels = level[:, -1].tolist()
        return -1

    def _write_ring(self, arr: npt.NDArray[Any]) -> None:
        if not len(self._ring):
            self._ring = np.empty(self.window, self._dtype)
        tail = arr[-self.window:]
        pos = (self._n_ring + len(arr) - len(tail) + np.arange(len(tail))) % self.window
        self._ring[pos] = tail
        self._n_ring += len(arr)


_F32_MAX = float(np.finfo(np.float32).max)


class NumericDriftDetector(_Detector):
    """Drift in the location or the spread of a numeric metric (latency, cost, tokens).

    Parameters
    ----------
    reference_size : int, default 2000
        Values in the reference (>= 50), collected at start and after each drift.
    false_alarm_rate : float, default 1e-4
        Target alarms per event on a stationary stream, for the six CUSUMs together.
    shift : float, default 0.5
        Location change, in standard deviations of the normal scores, that the location
        CUSUMs are tuned for (smaller shifts are found too, later).
    spread_ratio : float, default 1.5
        Change of scale (and 1 / ``spread_ratio``) the spread CUSUMs are tuned for.
    window : int, default 500
        Recent values kept for ``recent_sample``.
    seed : int, default 0
        Seeds the breaking of ties; detections are a function of the seed and the data.
    reference : array_like, optional
        A pinned reference (see ``pin``).

    Notes
    -----
    State: the sorted reference, a ring of ``window`` values and six CUSUM levels;
    O(reference_size + window). The (6 x (reference_size + 1)) table of increments depends
    only on the settings and is shared by all detectors that have the same ones. NaN
    values are rejected (``ValueError``): drop missing values before updating.

    Examples
    --------
    >>> rng = np.random.default_rng(7)
    >>> latency_ms = rng.lognormal(6.0, 0.8, 6000)
    >>> latency_ms[3000:] *= 1.5                       # a slower model from event 3000
    >>> det = NumericDriftDetector(seed=1)
    >>> det.update_many(latency_ms).tolist()
    [3067]
    >>> NumericDriftDetector(seed=1).update_many(latency_ms / 1000).tolist()  # seconds
    [3067]
    >>> det.state().last_drift_cusums, det.state().n_drifts, det.state().warming_up
    (('location_up',), 1, False)
    """

    kind: Kind = "numeric"
    # Seven significant digits are more than a latency, a cost or a token count carries,
    # and half the bytes of the reference and the ring, the bulk of a function's state.
    _dtype = np.float32
    __slots__ = ("_key", "shift", "spread_ratio")

    def __init__(self, reference_size: int = 2000, false_alarm_rate: float = 1e-4, *,
                 shift: float = 0.5, spread_ratio: float = 1.5, window: int = 500,
                 seed: int = 0,
                 reference: Sequence[float] | npt.NDArray[Any] | None = None) -> None:
        if not 0.05 <= shift <= 5.0:
            raise ValueError("shift must be in [0.05, 5] standard deviations")
        if not 1.05 <= spread_ratio <= 10.0:
            raise ValueError("spread_ratio must be in [1.05, 10]")
        self.shift = shift
        self.spread_ratio = spread_ratio
        self._key = _mix64(seed & _MASK)
        super().__init__(reference_size, false_alarm_rate, window, seed, reference)

    def _coerce(self, xs: Sequence[Any] | npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        arr = np.asarray(xs, np.float64).reshape(-1)
        if np.isnan(arr).any():
            raise ValueError("numeric values must not be NaN")
        # Beyond float32's range a value is the largest there is, not an infinity: the
        # windows' tests and the stored evidence need finite numbers, and a column such
        # as query_length has no upper bound a writer must respect.
        return np.clip(arr, -_F32_MAX, _F32_MAX).astype(np.float32)

    def _fit(self, ref: npt.NDArray[Any]) -> tuple[list[str], I64, list[int]]:
        ref.sort()
        table, thresholds = _numeric_design(len(ref), self.false_alarm_rate, self.shift,
                                            self.spread_ratio)
        return ["location_up", "location_down", "spread_up", "spread_down", "trend_up",
                "trend_down"], table, list(thresholds)

    def _codes(self, xs: npt.NDArray[Any], start: int) -> I64:
        less = np.searchsorted(self._ref, xs, "left")
        ties = np.searchsorted(self._ref, xs, "right") - less
        v = _uniforms(self._key, start, len(xs))
        return less + np.floor(v * (ties + 1)).astype(np.int64)

    def _code(self, x: Any, index: int) -> int:
        less = int(np.searchsorted(self._ref, x, "left"))
        ties = int(np.searchsorted(self._ref, x, "right")) - less
        return less + math.floor(_uniform(self._key, index) * (ties + 1))


@lru_cache(maxsize=32)
def _numeric_design(n_ref: int, rate: float, shift: float,
                    ratio: float) -> tuple[I64, tuple[int, ...]]:
    """Increments (6 x ranks) and thresholds of the numeric CUSUMs, in fixed point.

    They depend on no data, so detectors with the same settings share one read-only table.
    """
    z = special.ndtri((np.arange(n_ref + 1) + 0.5) / (n_ref + 1))
    z /= math.sqrt(float(np.mean(z * z)))  # exactly unit variance over the ranks
    z2 = z * z
    lr = math.log(ratio)
    slow = shift / 2.5
    incr = np.stack([
        shift * z - shift**2 / 2,                # N(shift, 1) against N(0, 1)
        -shift * z - shift**2 / 2,               # N(-shift, 1)
        z2 / 2 * (1 - ratio**-2) - lr,           # N(0, ratio**2)
        z2 / 2 * (1 - ratio**2) + lr,            # N(0, ratio**-2)
        slow * z - slow**2 / 2,                  # N(shift / 2, 1): slow drifts, ramps
        -slow * z - slow**2 / 2,
    ])
    table = np.round(incr * _FIXED).astype(np.int64)
    table.setflags(write=False)
    # Shifts in location are the harder to catch quickly (a 0.5 sd shift carries 0.125
    # nats per value, a 1.5-fold spread 0.22), so they get most of the budget, split
    # between steps and trends (measured: a ramp to 0.5 sd over 2,000 events 980 -> 828
    # events median, a 0.5 sd step 51 -> 55); the approximation is also most
    # conservative for the spread-down CUSUM (bounded jumps).
    shares = (0.22, 0.22, 0.13, 0.05, 0.19, 0.19)
    thresholds = tuple(_fixed(_numeric_threshold(row / _FIXED, n_ref, rate * s))
                       for row, s in zip(table, shares, strict=True))
    return table, thresholds


def _fixed(h: float) -> int:
    return round(h * _FIXED)


def _bernoulli_rows(p0: float, odds_ratio: float) -> tuple[tuple[float, float],
                                                           tuple[float, float]]:
    """(hit, miss) increments for the proportion's odds going up and down by the ratio."""
    odds = p0 / (1 - p0)
    out = []
    for r in (odds_ratio, 1 / odds_ratio):
        p1 = odds * r / (1 + odds * r)
        out.append((math.log(p1 / p0), math.log((1 - p1) / (1 - p0))))
    return out[0], out[1]


class BinaryDriftDetector(_Detector):
    """Drift of a rate of 0/1 events (error flags, cache hits), up or down.

    Parameters
    ----------
    reference_size : int, default 2000
        Events in the reference (>= 50). Rare events need many: the thresholds widen with
        the uncertainty of a rate estimated from few events.
    false_alarm_rate : float, default 1e-4
        Target alarms per event on a stationary stream (both directions together).
    odds_ratio : float, default 3.0
        The change in the odds each CUSUM is tuned for (2 % -> 5.8 % at 3).
    window : int, default 500
        Recent values kept for ``recent_sample``.
    seed : int, default 0
        Accepted for a uniform API with ``NumericDriftDetector``; nothing here is random.
    reference : array_like, optional
        A pinned reference (see ``pin``).

    Notes
    -----
    Deterministic (no randomness). State: the reference (int8), a ring of ``window``
    values, two levels; O(reference_size + window).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> errors = rng.random(8000) < np.where(np.arange(8000) < 4000, 0.02, 0.06)
    >>> BinaryDriftDetector().update_many(errors).tolist()   # 2 % -> 6 % at 4000
    [4196]
    """

    kind: Kind = "binary"
    _dtype = np.int8
    __slots__ = ("odds_ratio",)

    def __init__(self, reference_size: int = 2000, false_alarm_rate: float = 1e-4, *,
                 odds_ratio: float = 3.0, window: int = 500, seed: int = 0,
                 reference: Sequence[Any] | npt.NDArray[Any] | None = None) -> None:
        if not 1.1 <= odds_ratio <= 100.0:
            raise ValueError("odds_ratio must be in [1.1, 100]")
        self.odds_ratio = odds_ratio
        super().__init__(reference_size, false_alarm_rate, window, seed, reference)

    def _coerce(self, xs: Sequence[Any] | npt.NDArray[Any]) -> npt.NDArray[np.int8]:
        return _binary_array(np.asarray(xs).reshape(-1))

    def _fit(self, ref: npt.NDArray[Any]) -> tuple[list[str], I64, list[int]]:
        n, k = len(ref), float(np.count_nonzero(ref))
        p0 = (k + 0.5) / (n + 1.0)
        rows = _bernoulli_rows(p0, self.odds_ratio)
        # Table columns are the codes 0 (no event) and 1 (event).
        table = np.round(np.array([[m, h] for h, m in rows]) * _FIXED).astype(np.int64)
        thresholds = [_fixed(_bernoulli_threshold(r[1] / _FIXED, r[0] / _FIXED, k, n,
                                                  self.false_alarm_rate / 2)) for r in table]
        return ["rate_up", "rate_down"], table, thresholds

    def _codes(self, xs: npt.NDArray[Any], start: int) -> I64:
        return xs.astype(np.int64)

    def _code(self, x: Any, index: int) -> int:
        return int(x)


class CategoricalDriftDetector(_Detector):
    """Drift in the mix of a categorical metric (status, model name, error type).

    Parameters
    ----------
    reference_size : int, default 2000
        Values in the reference (>= 50).
    false_alarm_rate : float, default 1e-4
        Target alarms per event on a stationary stream, for all its CUSUMs together.
    odds_ratio : float, default 2.0
        Change in the odds of any one category that its CUSUMs are tuned for.
    max_categories : int, default 20
        The most frequent reference categories get their own CUSUMs; rarer ones and
        categories never seen in the reference share one "unseen" bucket, watched for an
        increase (tuned for a 20-fold rise: a new category at 2 % of traffic is found
        within a few hundred events).
    window : int, default 500
        Recent values kept for ``recent_sample``.
    seed : int, default 0
        Accepted for a uniform API with ``NumericDriftDetector``; nothing here is random.
    reference : array_like, optional
        A pinned reference (see ``pin``).

    Notes
    -----
    Deterministic (no randomness). State: the reference and a ring of ``window`` values
    as two-byte codes into the labels seen (unused labels are dropped when the codes run
    out), and 2 * ``max_categories`` + 1 levels; O(reference_size + window).

    Examples
    --------
    >>> rng = np.random.default_rng(5)
    >>> before = rng.choice(["ok", "timeout", "rate_limit"], 4000, p=[0.9, 0.07, 0.03])
    >>> after = rng.choice(["ok", "timeout", "rate_limit"], 4000, p=[0.8, 0.07, 0.13])
    >>> det = CategoricalDriftDetector()
    >>> det.update_many(np.concatenate([before, after])).tolist()
    [4137]
    >>> det.update("content_filter").drift_detected   # still warming up after the drift
    False
    """

    kind: Kind = "categorical"
    # Values are held as codes into a vocabulary of the labels seen, not as Python
    # objects: a pointer per value was 8 bytes, and the reference and the ring of each of
    # a function's two categorical detectors hold 1,500 (issue 18).
    __slots__ = ("_dtype", "_labels", "_lut", "_vocab", "max_categories", "odds_ratio")

    def __init__(self, reference_size: int = 2000, false_alarm_rate: float = 1e-4, *,
                 odds_ratio: float = 2.0, max_categories: int = 20, window: int = 500,
                 seed: int = 0,
                 reference: Sequence[Any] | npt.NDArray[Any] | None = None) -> None:
        if not 1.1 <= odds_ratio <= 100.0:
            raise ValueError("odds_ratio must be in [1.1, 100]")
        if not isinstance(max_categories, int) or not 1 <= max_categories <= 1000:
            raise ValueError("max_categories must be an integer in [1, 1000]")
        self.odds_ratio = odds_ratio
        self.max_categories = max_categories
        # Two bytes a value while the labels a detector can hold at once (two references
        # and a ring) and one chunk's new ones fit in 65,536 codes.
        self._dtype = np.uint16 if 2 * reference_size + window + _CHUNK <= 1 << 16 \
            else np.uint32
        self._vocab: dict[Hashable, int] = {}  # label -> code
        self._labels: list[Hashable] = []  # code -> label
        # Reference code -> CUSUM code (a top category's index, else the unseen bucket);
        # codes learnt after the reference are past its end and go to the bucket.
        self._lut: I64 = _empty(np.dtype(np.int64))
        super().__init__(reference_size, false_alarm_rate, window, seed, reference)

    def update_many(self, xs: Sequence[Any] | npt.NDArray[Any]) -> I64:
        # In chunks, so that one call's new labels cannot overflow the code space
        # (see _new_codes); detections are those of one value at a time either way.
        if len(xs) <= _CHUNK:
            return super().update_many(xs)
        update = super().update_many
        out = np.concatenate([update(xs[i:i + _CHUNK]) + i for i in range(0, len(xs), _CHUNK)])
        self._drift = bool(len(out))
        return out

    def _coerce(self, xs: Sequence[Any] | npt.NDArray[Any]) -> npt.NDArray[Any]:
        values = xs.tolist() if isinstance(xs, np.ndarray) else list(xs)
        codes = list(map(self._vocab.get, values))
        if None in codes:
            self._new_codes(values, codes)
        return np.array(codes, self._dtype)

    def _new_codes(self, values: list[Any], codes: list[int | None]) -> None:
        """Give the labels in ``values`` never seen before a code each (in place)."""
        limit = int(np.iinfo(self._dtype).max) + 1
        if len(self._labels) + len(values) > limit:
            self._compact()
            codes[:] = map(self._vocab.get, values)  # renumbered
        vocab, labels = self._vocab, self._labels
        for i in [i for i, c in enumerate(codes) if c is None]:
            v = values[i]
            if v not in vocab:  # a label may come twice in one batch
                vocab[v] = len(labels)
                labels.append(v)
            codes[i] = vocab[v]

    def _compact(self) -> None:
        """Drop the labels no held value uses and renumber the rest (the code space is
        bounded; the labels of a long-running stream are not)."""
        held = {"_warm": self._n_warm, "_ref": len(self._ref),
                "_ring": min(self._n_ring, self.window)}
        keep = np.unique(np.concatenate([getattr(self, a)[:n] for a, n in held.items()]))
        new = np.zeros(len(self._labels), self._dtype)
        new[keep] = np.arange(len(keep))
        for name, n in held.items():
            if n:  # a copy: the shared empty arrays and the reference are never written
                arr = getattr(self, name).copy()
                arr[:n] = new[arr[:n]]
                setattr(self, name, arr)
        if len(self._lut):  # codes learnt after the reference go to the unseen bucket
            self._lut = np.append(self._lut, self._unseen())[np.minimum(keep, len(self._lut))]
        self._labels = [self._labels[c] for c in keep.tolist()]
        self._vocab = {v: c for c, v in enumerate(self._labels)}

    def _decode(self, codes: npt.NDArray[Any]) -> npt.NDArray[Any]:
        labels = np.fromiter(self._labels, object, len(self._labels))
        out: npt.NDArray[Any] = labels[codes.astype(np.intp)]
        return out

    def reference_sample(self) -> npt.NDArray[Any]:
        return self._decode(super().reference_sample())

    def recent_sample(self) -> npt.NDArray[Any]:
        return self._decode(super().recent_sample())

    def _fit(self, ref: npt.NDArray[Any]) -> tuple[list[str], I64, list[int]]:
        n = len(ref)
        labels = self._labels
        counts = np.bincount(ref, minlength=len(labels)).tolist()
        # Deterministic order: most frequent first, then by label.
        top = sorted(((labels[c], k, c) for c, k in enumerate(counts) if k),
                     key=lambda t: (-t[1], repr(t[0])))[:self.max_categories]
        k = len(top)
        self._lut = np.full(len(labels), k, np.int64)
        self._lut[[c for _, _, c in top]] = np.arange(k)
        n_unseen = n - sum(c for _, c, _ in top)
        cells = [float(c) for _, c, _ in top] + [float(n_unseen)]
        names: list[str] = []
        rows: list[I64] = []
        thresholds: list[int] = []
        budget = self.false_alarm_rate / (2 * k + 1)
        for code, count in enumerate(cells):
            p0 = (count + 0.5) / (n + 0.5 * (k + 1))
            # A category absent from the reference is a large relative change even at a
            # small share, so the unseen bucket is tuned for a 20-fold rise.
            ratio = max(self.odds_ratio, 20.0) if code == k else self.odds_ratio
            up, down = _bernoulli_rows(p0, ratio)
            label = "unseen" if code == k else str(top[code][0])
            for direction, (hit, miss) in (("up", up), ("down", down)):
                if code == k and direction == "down":
                    continue  # fewer unseen categories is no drift worth a page
                row = np.full(k + 1, round(miss * _FIXED), np.int64)
                row[code] = round(hit * _FIXED)
                names.append(f"{label}_{direction}")
                rows.append(row)
                thresholds.append(_fixed(_bernoulli_threshold(
                    round(hit * _FIXED) / _FIXED, round(miss * _FIXED) / _FIXED, count, n,
                    budget)))
        return names, np.stack(rows), thresholds

    def _codes(self, xs: npt.NDArray[Any], start: int) -> I64:
        lut = self._lut
        seen = xs < len(lut)
        out = np.full(len(xs), self._unseen(), np.int64)
        out[seen] = lut[xs[seen]]
        return out

    def _code(self, x: Any, index: int) -> int:
        return int(self._lut[x]) if x < len(self._lut) else self._unseen()

    def _unseen(self) -> int:
        """The unseen bucket's CUSUM code: the table's last column."""
        return int(self._table.shape[1]) - 1


Detector = NumericDriftDetector | BinaryDriftDetector | CategoricalDriftDetector


def make_detector(kind: Kind, **params: Any) -> Detector:
    """The recommended detector for a kind of metric.

    Parameters
    ----------
    kind : {"numeric", "binary", "categorical"}
        ``"numeric"`` for latency, cost, token counts and volumes (any scale, heavy tails
        and ties are fine); ``"binary"`` for 0/1 flags such as errors; ``"categorical"``
        for labels such as status codes or model names.
    **params
        Passed to the detector's constructor (e.g. ``reference_size``,
        ``false_alarm_rate``, ``seed``; every kind accepts those three).

    Returns
    -------
    NumericDriftDetector, BinaryDriftDetector or CategoricalDriftDetector

    Examples
    --------
    >>> type(make_detector("binary", reference_size=500)).__name__
    'BinaryDriftDetector'
    >>> make_detector("gauge")
    Traceback (most recent call last):
    ...
    ValueError: kind must be one of ('numeric', 'binary', 'categorical'), not 'gauge'
    """
    if kind == "numeric":
        return NumericDriftDetector(**params)
    if kind == "binary":
        return BinaryDriftDetector(**params)
    if kind == "categorical":
        return CategoricalDriftDetector(**params)
    raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
