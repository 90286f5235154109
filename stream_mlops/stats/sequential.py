"""Always-valid sequential A/B tests and a sequential sample-ratio-mismatch check (pure).

Experiment results are read after every batch, i.e. the same hypothesis is looked at over
and over. A fixed-horizon test repeated like that is invalid: a Welch t-test at 5 %
checked after every event rejects a true null in 32-39 % of A/A experiments by 5,000
events and in half of them by 50,000 (``benchmarks/experiments.py``). Everything here is
*anytime-valid*: the false-positive rate is at most ``alpha`` however often, and whenever,
the numbers are read.

Difference of two means (``kind="mean"``)
    The estimate ``d = mean_T - mean_C`` has variance ``V = s_T²/n_T + s_C²/n_C``
    (Welford variances per arm). Scaled by the information ``I = 1/V``, ``S = d I`` is a
    Gaussian process with independent increments (a Brownian motion in ``I``) whatever
    the order in which the arms receive traffic, so for any effect ``θ`` the likelihood
    ratio ``exp(θ S - θ² I / 2)`` is a martingale under ``θ = 0``, and so is any mixture
    of them over ``θ``. The mixture used puts 90 % on ``½ N(+δ, τ²) + ½ N(-δ, τ²)``, with
    ``δ`` the minimum effect of interest and ``τ = spread · δ``, and 10 % on a wide
    ``N(0, (10 δ)²)``; its closed form is :func:`log_evidence`. Ville's inequality bounds
    the chance that it *ever* exceeds ``1/alpha`` by ``alpha``, so
    ``p = min(1, 1 / max_n Λ_n)`` is an always-valid p-value (Johari et al. 2017, 2022).
    A single ``N(0, τ²)`` is their normal-mixture mSPRT; centring most of the mass on
    ``±δ`` spends the evidence on the effects one cares about: at the minimum effect the
    benchmark stops after 0.97-1.01 times the fixed-horizon sample size on average
    (median 0.79-0.82), against 1.08-1.12 (0.92-0.94) for ``N(0, δ²)``. The price is
    paid when ``min_effect`` is far off the truth (1.2-1.3 times at half or twice). The
    wide part keeps effects many times ``δ`` quick to detect
    (the shifted halves' Gaussian tails alone would not), and with a density everywhere
    the test has power one against any effect.

    Without ``min_effect`` (the default) nobody has guessed the effect, and centring on
    one guess paid 1.4-1.8 times the fixed-horizon sample size for effects far from it.
    The mixture is then a grid (:func:`grid_log_evidence`): ten effects per sign,
    log-spaced over the range a fixed-horizon test detects between ``min_samples`` and
    ``GRID_TOP * expected_n`` per arm, nearly a log-uniform prior on the effect's size.
    Measured (``benchmarks/experiments_defaults.py``): 1.00-1.29 times the fixed-horizon
    sample size across effects spanning a factor of 10, within 1.2 except where that size
    is under ~400 events and the burn-in is half of it.

Difference of two proportions (``kind="proportion"``)
    The same with Bernoulli variances. The p-value uses the pooled rate (the variance
    *under the null*), which is defined as soon as either arm has seen an event; with no
    event at all in either arm there is no evidence and ``Λ = 1``.

Confidence sequences
    Inverting the test at every ``θ₀`` gives ``{θ₀ : Λ_n(θ₀) < 1/alpha}``, an interval
    around ``d`` that covers the true difference at all times simultaneously with
    probability ``1 - alpha`` (Howard et al. 2021). Per-arm intervals are the
    normal-mixture sequence of each mean; the relative lift uses the delta method with the
    same width-to-standard-error ratio as the difference (an approximation, as in the
    commercial tools). Intervals are the current ones, not intersected over time.

The guarantees are exact for normal data with known variances and hold asymptotically with
estimated ones, which is why nothing is tested before ``min_samples`` per arm (burn-in).
``benchmarks/experiments.py`` measures the type-I error on skewed latencies and rare
errors, the stopping time against a fixed-horizon test, and the SRM check.

Sample-ratio mismatch
    :class:`SRMTest` is the Dirichlet-multinomial Bayes factor of Lindon & Malek (2022):
    a test martingale for "the arms receive traffic in the expected shares", for any
    number of arms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
from scipy.special import gammaln

F64 = npt.NDArray[np.float64]
Kind = Literal["mean", "proportion"]
Arm = Literal["control", "treatment"]
Decision = Literal["continue", "treatment_better", "treatment_worse"]
KINDS: tuple[Kind, ...] = ("mean", "proportion")
ARMS: tuple[Arm, ...] = ("control", "treatment")

LOG2 = math.log(2.0)
# z_{0.975} + z_{0.80}: the default minimum effect is the one a fixed-horizon two-sided
# 5 % test of ``expected_n`` per arm finds with 80 % power.
Z_POWER = 1.959963984540054 + 0.8416212335729143
# A tenth of the mixture is a wide centred normal (sd WIDE_SCALE x the minimum effect):
# the shifted halves alone are slow on effects many times the minimum (their Gaussian
# tails), and this costs about 2 % on the stopping time at the minimum effect.
WIDE_WEIGHT = 0.1
WIDE_SCALE = 10.0
LOG_NARROW = math.log1p(-WIDE_WEIGHT)
LOG_WIDE = math.log(WIDE_WEIGHT)
# Without a minimum effect the mixture is a grid: GRID_SIZE effects per sign, log-spaced
# between those a fixed-horizon test finds with 80 % power at ``min_samples`` and at
# GRID_TOP x ``expected_n`` per arm, equal weights, each a normal of sd GRID_SPREAD x its
# centre so that neighbours overlap (tuned in benchmarks/experiments.py: more points or a
# tilt towards either end moved the mean stopping time by under 2 %).
GRID_SIZE = 10
GRID_SPREAD = 0.3
GRID_TOP = 3
LOG_GRID_WEIGHT = -math.log(2 * GRID_SIZE)


def log_evidence(diff: npt.ArrayLike, var: npt.ArrayLike, delta: npt.ArrayLike,
                 tau2: npt.ArrayLike, wide2: npt.ArrayLike = 0.0) -> F64:
    """Log of the mixture likelihood ratio ``Λ`` for an estimated difference, elementwise.

    The estimate ``diff`` is taken as ``N(θ, var)``. The mixing distribution of ``θ`` is
    ``½ N(+delta, tau2) + ½ N(-delta, tau2)``, or where ``wide2 > 0`` that with weight
    ``1 - WIDE_WEIGHT`` plus ``N(0, wide2)`` with weight ``WIDE_WEIGHT``. Each component
    makes the marginal of ``diff`` normal, and ``Λ`` is its density over ``N(0, var)``'s.

    Parameters
    ----------
    diff : array_like
        Estimated difference minus the null value.
    var : array_like
        Variance of the estimate; where it is not finite and positive there is no
        information and the result is 0 (``Λ = 1``).
    delta, tau2 : array_like
        Centres and variance of the two shifted halves (``delta = 0``: the mSPRT of Johari
        et al.). ``tau2`` must be positive where ``var`` is.
    wide2 : array_like, default 0
        Variance of the wide centred component (0: none).

    Returns
    -------
    ndarray
        ``log Λ``.

    Examples
    --------
    >>> np.round(log_evidence([0.0, 0.03, 0.03], [1e-4, 1e-4, 0.0], 0.02, 0.005**2), 3)
    array([-1.712,  3.295,  0.   ])
    >>> np.round(log_evidence([0.03, 0.3], 1e-4, 0.02, 0.005**2, 0.2**2), 3)
    array([  3.208, 443.578])
    """
    d, v = np.asarray(diff, np.float64), np.asarray(var, np.float64)
    m, t2 = np.asarray(delta, np.float64), np.asarray(tau2, np.float64)
    w2 = np.asarray(wide2, np.float64)
    ok = np.isfinite(v) & (v > 0)
    v = np.where(ok, v, 1.0)
    s = v + t2
    base = d * d / (2 * v)
    shifted = (base - 0.5 * np.log1p(t2 / v) - LOG2
               + np.logaddexp(-(d - m) ** 2 / (2 * s), -(d + m) ** 2 / (2 * s)))
    has_wide = w2 > 0
    w2 = np.where(has_wide, w2, 1.0)
    wide = base - 0.5 * np.log1p(w2 / v) - d * d / (2 * (v + w2))
    out = np.where(has_wide, np.logaddexp(LOG_NARROW + shifted, LOG_WIDE + wide), shifted)
    return cast(F64, np.where(ok, out, 0.0))


def _log_evidence(d: float, v: float, m: float, t2: float, w2: float = 0.0) -> float:
    """Scalar :func:`log_evidence` with ``math`` (an order of magnitude cheaper per call)."""
    if not 0 < v < math.inf:
        return 0.0
    s = v + t2
    a, b = -(d - m) ** 2 / (2 * s), -(d + m) ** 2 / (2 * s)
    hi = max(a, b)
    base = d * d / (2 * v)
    shifted = base - 0.5 * math.log1p(t2 / v) - LOG2 + hi + math.log1p(math.exp(min(a, b) - hi))
    if w2 <= 0:
        return shifted
    a, b = LOG_NARROW + shifted, LOG_WIDE + base - 0.5 * math.log1p(w2 / v) - d * d / (2 * (v + w2))
    hi = max(a, b)
    return hi + math.log1p(math.exp(min(a, b) - hi))


def grid_centres(min_samples: int, expected_n: int) -> F64:
    """Centres of the default grid mixture in units of ``sqrt(unit)``, largest first.

    Centre ``k`` is the effect a two-sided 5 % fixed-horizon test detects with 80 % power
    at ``n_k`` per arm, ``Z_POWER / sqrt(n_k)``, with ``n_k`` log-spaced from
    ``min_samples`` to ``GRID_TOP * expected_n``.

    Examples
    --------
    >>> np.round(grid_centres(100, 10_000)[[0, -1]], 4)
    array([0.2802, 0.0162])
    """
    n = np.geomspace(min_samples, max(GRID_TOP * expected_n, min_samples + 1), GRID_SIZE)
    out: F64 = Z_POWER / np.sqrt(n)
    return out


def grid_log_evidence(diff: npt.ArrayLike, var: npt.ArrayLike, unit: npt.ArrayLike,
                      centres: F64) -> F64:
    """Log mixture likelihood ratio over a grid of effects ``±c sqrt(unit)``, elementwise.

    The mixing distribution gives each sign and each centre ``c`` of ``centres`` equal
    weight, as ``N(±c s, (GRID_SPREAD c s)²)`` with ``s = sqrt(unit)``: close to a
    log-uniform prior on the size of the effect over the grid's range, so that every
    effect in that range is found after about the same multiple of its own
    fixed-horizon sample size, without guessing it. Any mixture of the likelihood ratios
    is a martingale under the null, so the guarantee is that of :func:`log_evidence`.

    Parameters
    ----------
    diff, var : array_like
        As in :func:`log_evidence`.
    unit : array_like
        Variance of one treatment minus one control unit (:func:`null_variance`); where
        it is not positive there is no scale and the result is 0.
    centres : ndarray
        :func:`grid_centres`.

    Returns
    -------
    ndarray
        ``log Λ``.

    Examples
    --------
    >>> c = grid_centres(100, 10_000)
    >>> np.round(grid_log_evidence([0.0, 0.03, 0.3], 1e-4, 0.1, c), 3)
    array([ -1.164,   2.601, 418.249])
    """
    d, v = np.asarray(diff, np.float64), np.asarray(var, np.float64)
    u = np.asarray(unit, np.float64)
    ok = np.isfinite(v) & (v > 0) & np.isfinite(u) & (u > 0)
    v = np.where(ok, v, 1.0)
    scale = np.sqrt(np.where(ok, u, 1.0))
    base = d * d / (2 * v)
    out: F64 | None = None
    for c in centres:
        m = c * scale
        t2 = (GRID_SPREAD * m) ** 2
        s = v + t2
        common = LOG_GRID_WEIGHT + base - 0.5 * np.log1p(t2 / v)
        for term in (common - (d - m) ** 2 / (2 * s), common - (d + m) ** 2 / (2 * s)):
            out = term if out is None else np.logaddexp(out, term)
    assert out is not None
    return cast(F64, np.where(ok, out, 0.0))


def _grid_log_evidence(d: float, v: float, unit: float, centres: Sequence[float]) -> float:
    """Scalar :func:`grid_log_evidence` with ``math``."""
    if not (0 < v < math.inf and 0 < unit < math.inf):
        return 0.0
    scale = math.sqrt(unit)
    base = d * d / (2 * v)
    terms = []
    for c in centres:
        m = c * scale
        t2 = (GRID_SPREAD * m) ** 2
        s = v + t2
        common = LOG_GRID_WEIGHT + base - 0.5 * math.log1p(t2 / v)
        terms += [common - (d - m) ** 2 / (2 * s), common - (d + m) ** 2 / (2 * s)]
    hi = max(terms)
    return hi + math.log(math.fsum(math.exp(t - hi) for t in terms))


def null_variance(kind: Kind, *, n_c: npt.ArrayLike, mean_c: npt.ArrayLike,
                  m2_c: npt.ArrayLike, n_t: npt.ArrayLike, mean_t: npt.ArrayLike,
                  m2_t: npt.ArrayLike) -> tuple[F64, F64]:
    """Variance of ``mean_T - mean_C`` under the null, and the per-unit variance sum.

    Parameters
    ----------
    kind : {"mean", "proportion"}
    n_c, mean_c, m2_c, n_t, mean_t, m2_t : array_like
        Count, mean and sum of squared deviations (Welford's ``M2``) per arm. Where an arm
        has fewer than 2 observations the variance is not finite (no evidence).

    Returns
    -------
    var : ndarray
        ``s_T²/n_T + s_C²/n_C`` for means (Welch); ``p(1-p)(1/n_T + 1/n_C)`` with the
        pooled rate ``p`` for proportions.
    unit : ndarray
        ``s_T² + s_C²`` resp. ``2 p(1-p)``: the variance of one treatment minus one control
        unit, from which the default minimum effect is derived. For proportions the rate
        is smoothed to ``(k + 1) / (n + 2)`` here so that no events still give a scale.
    """
    nc, nt = np.asarray(n_c, np.float64), np.asarray(n_t, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "mean":
            sc = np.asarray(m2_c, np.float64) / (nc - 1)
            st = np.asarray(m2_t, np.float64) / (nt - 1)
            return sc / nc + st / nt, sc + st
        k = nc * np.asarray(mean_c, np.float64) + nt * np.asarray(mean_t, np.float64)
        p = k / (nc + nt)
        smooth = (k + 1) / (nc + nt + 2)
        return p * (1 - p) * (1 / nc + 1 / nt), 2 * smooth * (1 - smooth)


def mixture_scale(unit: npt.ArrayLike, min_effect: float | None, spread: float,
                  expected_n: int) -> tuple[F64, F64, F64]:
    """Centre ``δ`` and variance ``τ²`` of the shifted halves, and the wide variance.

    ``δ`` is ``min_effect`` when given, else the effect a fixed-horizon two-sided 5 %
    test with ``expected_n`` per arm detects with 80 % power,
    ``(z_0.975 + z_0.8) sqrt(unit / expected_n)``; ``τ = spread · δ``; the wide component
    has standard deviation ``WIDE_SCALE · δ``.
    """
    u = np.asarray(unit, np.float64)
    if min_effect is None:
        delta = Z_POWER * np.sqrt(np.maximum(np.nan_to_num(u), 0.0) / expected_n)
    else:
        delta = np.full_like(u, min_effect)
    return delta, (spread * delta) ** 2, (WIDE_SCALE * delta) ** 2


def _ci_radius(var: float, log_ev: Callable[[float], float], alpha: float) -> float:
    """Half-width of ``{θ₀ : Λ(d - θ₀) < 1/alpha}`` with ``log_ev(x) = log Λ(x)`` at the
    current variance ``var`` (the set is an interval around ``d``: every component of
    ``Λ`` is even in ``x``, and their sum increases in ``|x|``)."""
    if not 0 < var < math.inf:
        return math.nan
    level = math.log(1 / alpha)
    if log_ev(0.0) >= level:  # no scale (a component of zero width): no interval
        return math.nan
    hi = math.sqrt(var)
    while log_ev(hi) < level:
        hi *= 2.0
        if hi > 1e300:
            return math.nan
    return _root(lambda x: log_ev(x) - level, 0.0, hi)


def _root(f: Callable[[float], float], lo: float, hi: float) -> float:
    """The root of an increasing ``f`` with ``f(lo) < 0 <= f(hi)``, to 1e-12 relative:
    regula falsi with the Illinois step (an end that stays put twice has its value
    halved, so both ends close in). Not scipy.optimize.brentq, whose import costs the
    processor ~23 MB; about as few evaluations (bisection took three times as many, and
    the radius is computed for every test at every scrape, under the state lock).

    Examples
    --------
    >>> round(_root(lambda x: x * x - 2.0, 0.0, 2.0), 12)
    1.414213562373
    """
    f_lo, f_hi, moved = f(lo), f(hi), 0
    while hi - lo > 1e-15 + 1e-12 * hi:
        x = hi - f_hi * (hi - lo) / (f_hi - f_lo)
        if not lo < x < hi:  # rounding at the ends: bisect instead
            x = 0.5 * (lo + hi)
        fx = f(x)
        if fx < 0:
            lo, f_lo = x, fx
            if moved == -1:
                f_hi *= 0.5
            moved = -1
        else:
            hi, f_hi = x, fx
            if moved == 1:
                f_lo *= 0.5
            moved = 1
    return 0.5 * (lo + hi)


def _normal_mixture_radius(var: float, tau2: float, alpha: float) -> float:
    """Two-sided normal-mixture confidence-sequence half-width (Howard et al. 2021, (14))."""
    if not var > 0 or not tau2 > 0:
        return math.nan
    return math.sqrt(var * (var + tau2) / tau2 * (2 * math.log(1 / alpha) + math.log1p(tau2 / var)))


@dataclass(frozen=True)
class ArmSummary:
    """One arm: ``n`` observations, their ``mean`` (a rate for proportions) and an
    always-valid interval for the true mean (``None`` before two observations)."""

    n: int
    mean: float
    ci: tuple[float, float] | None


@dataclass(frozen=True)
class ExperimentSummary:
    """The state of a :class:`SequentialTest`, ready to be stored as JSON.

    ``difference`` is treatment - control and ``lift`` treatment / control - 1, each with
    its always-valid interval at level ``1 - alpha`` (``None`` while undefined: fewer than
    ``min_samples`` per arm for the difference, a control mean of 0 for the lift).
    ``decided_at`` is the total number of observations at which ``decision`` was made.
    ``min_effect`` is the ``δ`` in use (the default one when none was given).
    ``variance_reduction`` is the share of the per-unit variance a covariate removed
    (CUPED; about the share of samples it saves), ``None`` without one.
    """

    kind: Kind
    alpha: float
    higher_is_better: bool
    control: ArmSummary
    treatment: ArmSummary
    difference: float | None
    difference_ci: tuple[float, float] | None
    lift: float | None
    lift_ci: tuple[float, float] | None
    p_value: float
    decision: Decision
    decided_at: int | None
    min_effect: float | None
    variance_reduction: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; non-finite numbers become ``None`` (JSONB rejects NaN)."""
        return cast(dict[str, Any], _finite(asdict(self)))


def _finite(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    return v


# Batches up to this size are fed one observation at a time (measured faster).
SCALAR_BATCH = 8


class SequentialTest:
    """Always-valid two-arm test of treatment - control for a mean or a proportion.

    Built by :func:`make_test`, which documents the parameters. Feed observations with
    :meth:`update` / :meth:`update_many`; read :attr:`p_value`, :attr:`decision`,
    :attr:`confidence_interval`, :attr:`lift` or :meth:`summary` at any time.

    The evidence is evaluated after every observation (``update_many`` too, with
    cumulative sums), from the first moment both arms have ``min_samples``. ``p_value``
    is the running minimum of ``1/Λ``. The decision is made the first time
    ``p_value <= alpha`` and is then final: the guarantee is about that first crossing,
    and the sign of the difference at that moment is the call. Later data still updates
    the estimates and intervals but does not revise the decision.
    """

    def __init__(self, kind: Kind, alpha: float = 0.05, higher_is_better: bool = False, *,
                 min_effect: float | None = None, spread: float = 0.25,
                 min_samples: int = 100, expected_n: int = 10_000) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        if not 0 < alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        if min_effect is not None and not (math.isfinite(min_effect) and min_effect > 0):
            raise ValueError("min_effect must be a positive number (or None)")
        if kind == "proportion" and min_effect is not None and min_effect >= 1:
            raise ValueError("a difference of proportions is below 1")
        if not (math.isfinite(spread) and spread > 0):
            raise ValueError("spread must be positive")
        if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 2:
            raise ValueError("min_samples must be an integer >= 2")
        if isinstance(expected_n, bool) or not isinstance(expected_n, int) or expected_n < 2:
            raise ValueError("expected_n must be an integer >= 2")
        self.kind: Kind = kind
        self.alpha = float(alpha)
        self.higher_is_better = bool(higher_is_better)
        self.min_effect = min_effect
        self.spread = float(spread)
        self.min_samples = min_samples
        self.expected_n = expected_n
        self._level = math.log(1 / self.alpha)
        self._grid = grid_centres(min_samples, expected_n)
        self._centres = self._grid.tolist()
        # Welford state per arm: count, mean, sum of squared deviations.
        self._n = [0, 0]
        self._mean = [0.0, 0.0]
        self._m2 = [0.0, 0.0]
        # With a pre-treatment covariate (CUPED): its mean, M2 and co-moment with x, per
        # arm; None until the first observation says whether there is one.
        self._cx = [0.0, 0.0]
        self._sxx = [0.0, 0.0]
        self._sxy = [0.0, 0.0]
        self._adjusted: bool | None = None
        self._max_log = 0.0  # running max of log Λ since the burn-in ended
        self._decision: Decision = "continue"
        self._decided_at: int | None = None

    # -- feeding -------------------------------------------------------------------------

    def _arm(self, arm: str) -> int:
        if arm == "control":
            return 0
        if arm == "treatment":
            return 1
        raise ValueError(f"arm must be 'control' or 'treatment', not {arm!r}")

    def update(self, arm: Arm, x: float, covariate: float | None = None) -> SequentialTest:
        """Add one observation ``x`` to ``arm`` and look at the evidence; returns ``self``.

        For proportions ``x`` is 0/1 (or a bool); for means any finite number.
        ``covariate`` is a pre-treatment value of the same unit (e.g. the prompt's
        length), for means only: given with the first observation, it is required with
        every one, and the test compares the regression-adjusted (CUPED) means.
        """
        i = self._arm(arm)
        x = float(x)
        self._covariate(i, x, covariate)
        if self.kind == "proportion":
            if x not in (0.0, 1.0):
                raise ValueError(f"a proportion observation is 0 or 1, not {x!r}")
        elif not math.isfinite(x):
            raise ValueError(f"observation must be finite, not {x!r}")
        n = self._n[i] + 1
        dx = x - self._mean[i]
        self._mean[i] += dx / n
        self._m2[i] += dx * (x - self._mean[i])
        self._n[i] = n
        nc, nt = self._n
        if nc >= self.min_samples and nt >= self.min_samples:
            self._look(self._scalar_log_evidence(), self.difference)
        return self

    def _covariate(self, i: int, x: float, covariate: float | None) -> None:
        has = covariate is not None
        if self._adjusted is None:
            if has and self.kind != "mean":
                raise ValueError("a covariate adjusts means only, not proportions")
            self._adjusted = has
        elif has != self._adjusted:
            raise ValueError("give a covariate with every observation or with none")
        if covariate is None:
            return
        z = float(covariate)
        if not math.isfinite(z):
            raise ValueError(f"covariate must be finite, not {covariate!r}")
        n = self._n[i] + 1  # Welford co-moments, before the mean of x moves (see update)
        dz = z - self._cx[i]
        self._cx[i] += dz / n
        self._sxx[i] += dz * (z - self._cx[i])
        self._sxy[i] += dz * (x - self._mean[i]) * (n - 1) / n

    def _cuped(self) -> tuple[float, float, float]:
        """Adjusted difference, its variance and the unit variance (pooled slope)."""
        (nc, nt), (mc, mt) = self._n, self._mean
        sxx, sxy, syy = sum(self._sxx), sum(self._sxy), self._m2
        beta = sxy / sxx if sxx > 0 else 0.0
        res = [max(syy[i] - 2 * beta * self._sxy[i] + beta * beta * self._sxx[i], 0.0)
               / (self._n[i] - 1) if self._n[i] >= 2 else math.nan for i in (0, 1)]
        d = (mt - mc) - beta * (self._cx[1] - self._cx[0])
        return d, res[0] / nc + res[1] / nt, res[0] + res[1]

    def _scalar_log_evidence(self) -> float:
        if self._adjusted:
            return self._log_ev(*self._cuped())
        (nc, nt), (mc, mt), (qc, qt) = self._n, self._mean, self._m2
        if self.kind == "mean":
            sc, st = qc / (nc - 1), qt / (nt - 1)
            var, unit = sc / nc + st / nt, sc + st
        else:
            k = nc * mc + nt * mt
            p = k / (nc + nt)
            smooth = (k + 1) / (nc + nt + 2)
            var, unit = max(p * (1 - p), 0.0) * (1 / nc + 1 / nt), 2 * smooth * (1 - smooth)
        return self._log_ev(mt - mc, var, unit)

    def _log_ev(self, d: float, var: float, unit: float) -> float:
        if self.min_effect is None:
            return _grid_log_evidence(d, var, unit, self._centres)
        delta, tau2, wide2 = self._mixture(unit)
        return _log_evidence(d, var, delta, tau2, wide2)

    def _mixture(self, unit: float) -> tuple[float, float, float]:
        delta = (self.min_effect if self.min_effect is not None
                 else Z_POWER * math.sqrt(max(unit, 0.0) / self.expected_n))
        return delta, (self.spread * delta) ** 2, (WIDE_SCALE * delta) ** 2

    def _look(self, log_lr: float, diff: float) -> None:
        self._max_log = max(self._max_log, log_lr)
        if self._decision == "continue" and self._max_log >= self._level:
            self._decide(diff, self._n[0] + self._n[1])

    def _decide(self, diff: float, at: int) -> None:
        higher = diff > 0
        self._decision = "treatment_better" if higher == self.higher_is_better \
            else "treatment_worse"
        self._decided_at = at

    def update_many(self, arm: Arm, xs: npt.ArrayLike,
                    covariates: npt.ArrayLike | None = None) -> SequentialTest:
        """Add a batch to one arm, looking after every observation; returns ``self``.

        Equivalent to ``update(arm, x)`` for each ``x`` in order (up to rounding), at a
        cost of a few numpy passes over the batch.
        """
        i = self._arm(arm)
        x = np.asarray(xs, np.float64).ravel()
        if x.size == 0:
            return self
        z = self._checked_batch(x, covariates)  # all or nothing: checked before counting
        if x.size <= SCALAR_BATCH:  # numpy's set-up costs more than a few scalar looks
            for k, v in enumerate(x.tolist()):
                self.update(arm, v, None if z is None else float(z[k]))
            return self
        if z is not None:
            return self._update_adjusted(i, x, z)
        n0, m0, q0 = self._n[i], self._mean[i], self._m2[i]
        # Sums of deviations from a shift close to the mean keep the running M2 accurate.
        c = m0 if n0 else float(x[0])
        dev = x - c
        d_sum, q_sum = np.cumsum(dev), np.cumsum(dev * dev)
        n = n0 + np.arange(1, x.size + 1, dtype=np.float64)
        lead = n0 * (m0 - c)
        mean = c + (lead + d_sum) / n
        m2 = np.maximum(q0 + n0 * (m0 - c) ** 2 + q_sum - (lead + d_sum) ** 2 / n, 0.0)
        j = 1 - i
        other_n = self._n[j]
        first = max(self.min_samples - n0 - 1, 0)  # first index where this arm is burnt in
        if other_n >= self.min_samples and first < x.size:
            sl = slice(first, None)
            nn, mm, qq = n[sl], mean[sl], m2[sl]
            om, oq = self._mean[j], self._m2[j]
            if i == 0:
                var, unit = null_variance(
                    self.kind, n_c=nn, mean_c=mm, m2_c=qq, n_t=other_n, mean_t=om, m2_t=oq)
                diff = om - mm
            else:
                var, unit = null_variance(
                    self.kind, n_c=other_n, mean_c=om, m2_c=oq, n_t=nn, mean_t=mm, m2_t=qq)
                diff = mm - om
            self._look_many(diff, var, unit, n0 + first + other_n)
        self._n[i], self._mean[i], self._m2[i] = n0 + x.size, float(mean[-1]), float(m2[-1])
        return self

    def _look_many(self, diff: F64, var: F64, unit: F64, before: int) -> None:
        """:meth:`_look` at each of a run of observations; ``before`` observations were
        counted before the first."""
        if self.min_effect is None:
            log_lr = grid_log_evidence(diff, var, unit, self._grid)
        else:
            delta, tau2, wide2 = mixture_scale(unit, self.min_effect, self.spread,
                                               self.expected_n)
            log_lr = log_evidence(diff, var, delta, tau2, wide2)
        if self._decision == "continue":
            hit = np.flatnonzero(log_lr >= self._level)
            if hit.size:
                k = int(hit[0])
                self._decide(float(diff[k]), before + k + 1)
        self._max_log = max(self._max_log, float(log_lr.max()))

    def _checked_batch(self, x: F64, covariates: npt.ArrayLike | None) -> F64 | None:
        """The batch's covariates, after checking the batch as :meth:`update` would."""
        if self.kind == "proportion":
            if not np.all((x == 0) | (x == 1)):
                raise ValueError("proportion observations are 0 or 1")
        elif not np.all(np.isfinite(x)):
            raise ValueError("observations must be finite")
        if covariates is None:
            if self._adjusted:
                raise ValueError("give a covariate with every observation or with none")
            return None
        if self.kind != "mean":
            raise ValueError("a covariate adjusts means only, not proportions")
        if self._adjusted is False:
            raise ValueError("give a covariate with every observation or with none")
        z = np.asarray(covariates, np.float64).ravel()
        if z.size != x.size:
            raise ValueError("give one covariate per observation")
        if not np.all(np.isfinite(z)):
            raise ValueError("covariates must be finite")
        return z

    def _update_adjusted(self, i: int, x: F64, z: F64) -> SequentialTest:
        """:meth:`update_many` with a covariate: the running co-moments of the batch by
        cumulative sums, as for the unadjusted means, and the CUPED evidence at every
        observation."""
        self._adjusted = True
        j = 1 - i
        n0 = self._n[i]
        n = n0 + np.arange(1, x.size + 1, dtype=np.float64)
        # Sums of deviations from shifts close to the means keep the moments accurate.
        cx = self._mean[i] if n0 else float(x[0])
        cz = self._cx[i] if n0 else float(z[0])
        lx, lz = n0 * (self._mean[i] - cx), n0 * (self._cx[i] - cz)
        dx, dz = x - cx, z - cz
        sx, sz = lx + np.cumsum(dx), lz + np.cumsum(dz)
        mean, zmean = cx + sx / n, cz + sz / n
        m2 = np.maximum(self._m2[i] + n0 * (self._mean[i] - cx) ** 2
                        + np.cumsum(dx * dx) - sx * sx / n, 0.0)
        zm2 = np.maximum(self._sxx[i] + n0 * (self._cx[i] - cz) ** 2
                         + np.cumsum(dz * dz) - sz * sz / n, 0.0)
        co = (self._sxy[i] + n0 * (self._mean[i] - cx) * (self._cx[i] - cz)
              + np.cumsum(dx * dz) - sx * sz / n)
        first = max(self.min_samples - n0 - 1, 0)  # first index where this arm is burnt in
        if self._n[j] >= self.min_samples and first < x.size:
            sl = slice(first, None)
            nn, mm, qq, zz, ss, cc = n[sl], mean[sl], m2[sl], zmean[sl], zm2[sl], co[sl]
            nj, qj, sj, cj = self._n[j], self._m2[j], self._sxx[j], self._sxy[j]
            total = ss + sj
            beta = np.divide(cc + cj, total, out=np.zeros_like(total), where=total > 0)
            res_i = np.maximum(qq - 2 * beta * cc + beta * beta * ss, 0.0) / (nn - 1)
            res_j = np.maximum(qj - 2 * beta * cj + beta * beta * sj, 0.0) / (nj - 1)
            sign = 1.0 if i == 1 else -1.0  # treatment - control
            diff = sign * ((mm - self._mean[j]) - beta * (zz - self._cx[j]))
            var, unit = res_i / nn + res_j / nj, res_i + res_j
            self._look_many(diff, var, unit, n0 + first + nj)
        self._n[i], self._mean[i], self._m2[i] = n0 + x.size, float(mean[-1]), float(m2[-1])
        self._cx[i], self._sxx[i], self._sxy[i] = float(zmean[-1]), float(zm2[-1]), float(co[-1])
        return self

    # -- persistence ---------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything needed to resume, as JSON-ready data (see :meth:`from_state`).

        The running maximum of the evidence cannot be rebuilt from per-arm aggregates, so a
        processor that restarts should keep this rather than recount.
        """
        return {"kind": self.kind, "alpha": self.alpha,
                "higher_is_better": self.higher_is_better, "min_effect": self.min_effect,
                "spread": self.spread, "min_samples": self.min_samples,
                "expected_n": self.expected_n, "n": list(self._n), "mean": list(self._mean),
                "m2": list(self._m2), "max_log_evidence": self._max_log,
                "decision": self._decision, "decided_at": self._decided_at,
                # Only with a covariate: states written before it existed stay valid.
                **({"covariate": {"mean": list(self._cx), "m2": list(self._sxx),
                                  "co": list(self._sxy)}} if self._adjusted else {})}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> SequentialTest:
        """The test that :meth:`state` described."""
        t = cls(state["kind"], state["alpha"], state["higher_is_better"],
                min_effect=state["min_effect"], spread=state["spread"],
                min_samples=state["min_samples"], expected_n=state["expected_n"])
        n, mean, m2 = ([int(v) for v in state["n"]], [float(v) for v in state["mean"]],
                       [float(v) for v in state["m2"]])
        if len(n) != 2 or len(mean) != 2 or len(m2) != 2 or min(n) < 0 or min(m2) < 0:
            raise ValueError("malformed state")
        decision = state["decision"]
        if decision not in ("continue", "treatment_better", "treatment_worse"):
            raise ValueError(f"unknown decision {decision!r}")
        t._n, t._mean, t._m2 = n, mean, m2
        cov = state.get("covariate")
        if cov is not None:
            t._adjusted = True
            t._cx, t._sxx, t._sxy = ([float(v) for v in cov[k]] for k in ("mean", "m2", "co"))
        elif sum(n):
            t._adjusted = False
        t._max_log = max(float(state["max_log_evidence"]), 0.0)
        t._decision = decision
        t._decided_at = None if state["decided_at"] is None else int(state["decided_at"])
        return t

    # -- reading -------------------------------------------------------------------------

    @property
    def n(self) -> tuple[int, int]:
        """Observations per arm, ``(control, treatment)``."""
        return self._n[0], self._n[1]

    @property
    def means(self) -> tuple[float, float]:
        """Means per arm (NaN while an arm is empty)."""
        return (self._mean[0] if self._n[0] else math.nan,
                self._mean[1] if self._n[1] else math.nan)

    @property
    def p_value(self) -> float:
        """Always-valid p-value: 1 until the burn-in ends, then never increasing."""
        return min(1.0, math.exp(-self._max_log))

    @property
    def decision(self) -> Decision:
        """``continue``, ``treatment_better`` or ``treatment_worse`` (final once made)."""
        return self._decision

    @property
    def decided_at(self) -> int | None:
        """Total observations when the decision was made, or ``None``."""
        return self._decided_at

    @property
    def difference(self) -> float:
        """Treatment - control (NaN while an arm is empty)."""
        c, t = self.means
        if self._adjusted and min(self._n) >= 2:
            return self._cuped()[0]
        return t - c

    def _arm_var(self, i: int) -> float:
        """Variance of arm ``i``'s mean: Welford's for means; for proportions the
        Agresti-Coull-style ``(k+1)/(n+2)`` rate so that 0 events still give a width."""
        n = self._n[i]
        if n < 2:
            return math.nan
        if self.kind == "mean":
            return self._m2[i] / (n - 1) / n
        p = (self._mean[i] * n + 1) / (n + 2)
        return p * (1 - p) / n

    def _unit(self) -> float:
        """Variance of one treatment minus one control unit (as in :func:`null_variance`)."""
        (nc, nt), (mc, mt), (qc, qt) = self._n, self._mean, self._m2
        if self.kind == "mean":
            return qc / (nc - 1) + qt / (nt - 1) if min(nc, nt) >= 2 else math.nan
        smooth = (nc * mc + nt * mt + 1) / (nc + nt + 2)
        return 2 * smooth * (1 - smooth)

    def _delta(self) -> float:
        return self._mixture(self._unit())[0] if self.min_effect is None else self.min_effect

    def _diff_radius(self) -> float:
        """Half-width of the difference's confidence sequence (unpooled variance)."""
        if min(self._n) < self.min_samples:
            return math.nan
        var, unit = self._arm_var(0) + self._arm_var(1), self._unit()
        if self._adjusted:
            _, var, unit = self._cuped()
        return _ci_radius(var, lambda x: self._log_ev(x, var, unit), self.alpha)

    @property
    def confidence_interval(self) -> tuple[float, float] | None:
        """Always-valid interval for treatment - control at level ``1 - alpha`` (``None``
        before the burn-in ends)."""
        r = self._diff_radius()
        if not math.isfinite(r):
            return None
        d = self.difference
        return d - r, d + r

    def _lift(self) -> tuple[float | None, tuple[float, float] | None]:
        c, t = self.means
        if not (math.isfinite(c) and c != 0):
            return None, None
        if self._adjusted and min(self._n) >= 2:
            t = c + self.difference  # the treatment's mean at the control's covariate
        lift = t / c - 1
        r = self._diff_radius()
        vc, vt = self._arm_var(0), self._arm_var(1)
        if not math.isfinite(r) or not vc + vt > 0:
            return lift, None
        # Delta method: Var(t/c) ≈ Vt/c² + t² Vc/c⁴, widened by the difference's ratio of
        # always-valid half-width to standard error.
        se = math.sqrt(vt / c**2 + t * t * vc / c**4)
        half = r / math.sqrt(vc + vt) * se
        return lift, (lift - half, lift + half)

    @property
    def lift(self) -> float | None:
        """Relative lift treatment / control - 1 (``None`` while the control mean is 0)."""
        return self._lift()[0]

    @property
    def lift_interval(self) -> tuple[float, float] | None:
        """Delta-method interval for :attr:`lift`, as wide relative to its standard error
        as the difference's confidence sequence."""
        return self._lift()[1]

    def _arm_summary(self, i: int) -> ArmSummary:
        n = self._n[i]
        mean = self._mean[i] if n else math.nan
        delta = self._delta()
        # Per-arm sequences are tuned to the same scale as the difference: the second
        # moment of the mixture, δ² + τ².
        r = _normal_mixture_radius(self._arm_var(i), delta**2 * (1 + self.spread**2), self.alpha)
        if not math.isfinite(r):
            return ArmSummary(n, mean, None)
        lo, hi = mean - r, mean + r
        if self.kind == "proportion":
            lo, hi = max(lo, 0.0), min(hi, 1.0)
        return ArmSummary(n, mean, (lo, hi))

    def summary(self) -> ExperimentSummary:
        """Everything above in one :class:`ExperimentSummary` (see ``to_dict`` for JSON)."""
        diff = self.difference
        lift, lift_ci = self._lift()
        delta = self._delta()
        return ExperimentSummary(
            kind=self.kind, alpha=self.alpha, higher_is_better=self.higher_is_better,
            control=self._arm_summary(0), treatment=self._arm_summary(1),
            difference=diff if math.isfinite(diff) else None,
            difference_ci=self.confidence_interval, lift=lift, lift_ci=lift_ci,
            p_value=self.p_value, decision=self._decision, decided_at=self._decided_at,
            min_effect=delta if math.isfinite(delta) else None,
            variance_reduction=self.variance_reduction)

    @property
    def variance_reduction(self) -> float | None:
        """Share of the per-unit variance removed by the covariate (None without one or
        before each arm has two observations)."""
        if not self._adjusted or min(self._n) < 2:
            return None
        raw = self._unit()
        return 1 - self._cuped()[2] / raw if raw > 0 else None


def make_test(kind: Kind, alpha: float = 0.05, higher_is_better: bool = False, *,
              min_effect: float | None = None, spread: float = 0.25, min_samples: int = 100,
              expected_n: int = 10_000) -> SequentialTest:
    """An always-valid sequential test of treatment - control.

    Parameters
    ----------
    kind : {"mean", "proportion"}
        ``"mean"`` for latency, cost or confidence (any real values); ``"proportion"`` for
        error rates (0/1 observations).
    alpha : float, default 0.05
        Bound on the chance of ever declaring a difference when there is none, however
        often the result is read.
    higher_is_better : bool, default False
        Direction of the metric. The default suits error rate, latency and cost; pass
        True for confidence.
    min_effect : float, optional
        Smallest absolute difference of interest, in the metric's units (e.g. 0.02 for two
        points of error rate). The mixture is centred on ``±min_effect``, where it is
        most efficient; smaller effects are still found, later. Default: none; the
        mixture is spread over a grid of effects (:func:`grid_log_evidence`), from the
        one a fixed-horizon two-sided 5 % test detects with 80 % power at
        ``min_samples`` per arm to the one at ``GRID_TOP * expected_n``, scaled by the
        current variance estimate. The summary's ``min_effect`` then reports the effect
        of ``expected_n`` (the scale of the per-arm intervals).
    spread : float, default 0.25
        Standard deviation of each mixture half relative to ``min_effect``.
    min_samples : int, default 100
        Burn-in: no evidence is looked at before both arms have this many observations,
        because the variance estimates (and the normal approximation) are poor before.
    expected_n : int, default 10000
        Per-arm sample size the experiment may plausibly reach: the default grid reaches
        effects that need up to ``GRID_TOP`` times as many.

    Returns
    -------
    SequentialTest

    Notes
    -----
    With ``Λ_n`` the mixture likelihood ratio of :func:`log_evidence` after ``n``
    observations, the p-value is ``min(1, 1/max_{k<=n} Λ_k)`` and the confidence sequence
    ``{θ₀ : Λ_n(θ₀) < 1/alpha}``; both are valid simultaneously over all ``n`` (Ville's
    inequality). The decision is final once made (see :class:`SequentialTest`).

    References
    ----------
    .. [1] R. Johari, P. Koomen, L. Pekelis, D. Walsh, "Always valid inference: continuous
       monitoring of A/B tests", Operations Research 70(3), 2022 (KDD 2017 version:
       "Peeking at A/B tests").
    .. [2] S. R. Howard, A. Ramdas, J. McAuliffe, J. Sekhon, "Time-uniform, nonparametric,
       nonasymptotic confidence sequences", Annals of Statistics 49(2), 2021.
    .. [3] H. Robbins, "Statistical methods related to the law of the iterated logarithm",
       Annals of Mathematical Statistics 41(5), 1970 (mixture martingales).

    Examples
    --------
    Error rates of 5 % (control) and 3 % (treatment), errors spread evenly:

    >>> t = make_test("proportion", min_effect=0.02)
    >>> for i in range(1, 5001):
    ...     _ = t.update("control", i % 20 == 0).update("treatment", i % 33 == 0)
    ...     if t.decision != "continue":
    ...         break
    >>> t.decision, t.decided_at, round(t.p_value, 4)
    ('treatment_better', 3079, 0.0461)
    >>> [round(v, 4) for v in t.confidence_interval]
    [-0.0402, -0.0001]
    """
    return SequentialTest(kind, alpha, higher_is_better, min_effect=min_effect,
                          spread=spread, min_samples=min_samples, expected_n=expected_n)


def srm_log_bayes_factor(counts: npt.ArrayLike, weights: npt.ArrayLike,
                         concentration: float) -> F64:
    """Log Dirichlet-multinomial Bayes factor against the expected shares, per row.

    ``counts`` has the arms on its last axis (cumulative counts give the whole path at
    once); ``weights`` are the expected shares (normalised here); the prior is
    ``Dirichlet(concentration · shares)``.

    Examples
    --------
    >>> np.round(srm_log_bayes_factor([[500, 500], [560, 440]], [1, 1], 700.0), 3)
    array([-0.444,  3.797])
    """
    c = np.asarray(counts, np.float64)
    p = np.asarray(weights, np.float64)
    p = p / p.sum()
    a = concentration * p
    n = c.sum(axis=-1)
    return cast(F64, gammaln(concentration) - gammaln(concentration + n)
                + (gammaln(a + c) - gammaln(a)).sum(axis=-1) - (c * np.log(p)).sum(axis=-1))


@dataclass(frozen=True)
class SRMSummary:
    """Counts, expected and observed shares per arm, the always-valid p-value and flag."""

    arms: list[str]
    counts: list[int]
    expected_shares: list[float]
    observed_shares: list[float | None]
    p_value: float
    mismatch: bool
    alpha: float


class SRMTest:
    """Sequential sample-ratio-mismatch test for any number of arms.

    Under the null, arm counts are multinomial with the expected shares ``p``. The Bayes
    factor of a ``Dirichlet(A p)`` mixture over the shares against ``p``,

    ``BF_n = Γ(A) / Γ(A + n) · Π Γ(A p_i + n_i) / Γ(A p_i) / Π p_i^{n_i}``,

    is a test martingale, so ``p = min(1, 1 / max_n BF_n)`` is an always-valid p-value and
    ``mismatch`` (``p <= alpha``) a flag with a lifetime false-alarm rate of at most
    ``alpha`` however often it is read. Once raised it stays raised.

    Parameters
    ----------
    weights : sequence of float or mapping of name to float
        Expected traffic weights (any positive scale); a mapping names the arms.
    alpha : float, default 0.005
        Level of the ``mismatch`` flag. A false SRM alarm stops an experiment, so it is
        stricter than the effect test's 5 %; at 0.005 a 52/48 split is flagged after a
        median of about 8,000 events (``benchmarks/experiments.py``).
    concentration : float, default 700
        ``A``: prior concentration; larger values target smaller deviations. The default
        is tuned to detect deviations of a couple of points within ~10,000 events.

    References
    ----------
    .. [1] M. Lindon, A. Malek, "Anytime-valid inference for multinomial count data",
       NeurIPS 2022.

    Examples
    --------
    >>> srm = SRMTest({"control": 1, "treatment": 1})
    >>> for i in range(3000):
    ...     _ = srm.update("treatment" if i % 5 < 3 else "control")  # 60/40
    ...     if srm.mismatch:
    ...         break
    >>> srm.n, round(srm.p_value, 5), srm.mismatch
    (593, 0.00467, True)
    """

    def __init__(self, weights: Sequence[float] | Mapping[str, float], alpha: float = 0.005,
                 concentration: float = 700.0) -> None:
        if isinstance(weights, Mapping):
            names = [str(k) for k in weights]
            w = [float(v) for v in weights.values()]
        else:
            w = [float(v) for v in weights]
            names = [str(i) for i in range(len(w))]
        if len(w) < 2:
            raise ValueError("an SRM test needs at least two arms")
        if not all(math.isfinite(v) and v > 0 for v in w):
            raise ValueError("weights must be positive")
        if not 0 < alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        if not (math.isfinite(concentration) and concentration > 0):
            raise ValueError("concentration must be positive")
        top = max(w)  # scaled first: weights near the float limits must not overflow
        total = sum(v / top for v in w)
        self.arms = names
        self.shares = [v / top / total for v in w]
        if min(self.shares) <= 0:
            raise ValueError("weights too uneven: an arm's share underflows to 0")
        self.alpha = float(alpha)
        self.concentration = float(concentration)
        self._a = [concentration * p for p in self.shares]
        self._log_p = [math.log(p) for p in self.shares]
        self._counts = [0] * len(w)
        self._log_bf = 0.0
        self._max_log_bf = 0.0
        self._index = {k: i for i, k in enumerate(names)}

    def _i(self, arm: int | str) -> int:
        if isinstance(arm, str):
            if arm in self._index:
                return self._index[arm]
        elif isinstance(arm, int | np.integer) and 0 <= arm < len(self._counts):
            return int(arm)
        raise ValueError(f"unknown arm {arm!r}")

    def update(self, arm: int | str) -> SRMTest:
        """Count one event for ``arm`` (index or name) and look; returns ``self``."""
        i = self._i(arm)
        n = sum(self._counts)
        # BF_{n+1} / BF_n for one more event in arm i: (a_i + n_i) / (A + n) / p_i.
        self._log_bf += (math.log(self._a[i] + self._counts[i]) - math.log(self.concentration + n)
                         - self._log_p[i])
        self._counts[i] += 1
        self._max_log_bf = max(self._max_log_bf, self._log_bf)
        return self

    def update_counts(self, counts: Sequence[int] | Mapping[str, int]) -> SRMTest:
        """Add a batch given as counts per arm, looking once after it; returns ``self``."""
        if isinstance(counts, Mapping):
            add = [0] * len(self._counts)
            for k, v in counts.items():
                add[self._i(k)] += int(v)
        else:
            add = [int(v) for v in counts]
            if len(add) != len(self._counts):
                raise ValueError(f"expected {len(self._counts)} counts, got {len(add)}")
        if any(v < 0 for v in add):
            raise ValueError("counts must be non-negative")
        self._counts = [c + v for c, v in zip(self._counts, add, strict=True)]
        self._log_bf = float(srm_log_bayes_factor(self._counts, self.shares, self.concentration))
        self._max_log_bf = max(self._max_log_bf, self._log_bf)
        return self

    def update_many(self, arms: Sequence[int | str] | npt.NDArray[np.integer[Any]]
                    ) -> SRMTest:
        """Add events given as a sequence of arms, looking after every one; returns
        ``self``."""
        if isinstance(arms, np.ndarray) and arms.dtype.kind in "iu":
            idx = arms.astype(np.int64).ravel()
        else:
            idx = np.array([self._i(a) for a in arms], dtype=np.int64)
        if idx.size == 0:
            return self
        k = len(self._counts)
        if idx.min() < 0 or idx.max() >= k:
            raise ValueError("arm index out of range")
        path = np.cumsum(np.eye(k, dtype=np.int64)[idx], axis=0) + np.asarray(self._counts)
        log_bf = srm_log_bayes_factor(path, self.shares, self.concentration)
        self._counts = [int(v) for v in path[-1]]
        self._log_bf = float(log_bf[-1])
        self._max_log_bf = max(self._max_log_bf, float(log_bf.max()))
        return self

    def state(self) -> dict[str, Any]:
        """Everything needed to resume, as JSON-ready data (see :meth:`from_state`)."""
        return {"arms": list(self.arms), "shares": list(self.shares), "alpha": self.alpha,
                "concentration": self.concentration, "counts": self.counts,
                "max_log_bayes_factor": self._max_log_bf}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> SRMTest:
        """The test that :meth:`state` described."""
        t = cls(dict(zip(state["arms"], state["shares"], strict=True)), state["alpha"],
                state["concentration"])
        t.update_counts([int(v) for v in state["counts"]])
        t._max_log_bf = max(t._max_log_bf, float(state["max_log_bayes_factor"]))
        return t

    @property
    def counts(self) -> list[int]:
        return list(self._counts)

    @property
    def n(self) -> int:
        return sum(self._counts)

    @property
    def p_value(self) -> float:
        """Always-valid p-value ``min(1, 1 / max BF)``; never increases."""
        return min(1.0, math.exp(-self._max_log_bf))

    @property
    def mismatch(self) -> bool:
        """True once ``p_value <= alpha``."""
        return self.p_value <= self.alpha

    def summary(self) -> SRMSummary:
        n = self.n
        return SRMSummary(arms=list(self.arms), counts=self.counts,
                          expected_shares=list(self.shares),
                          observed_shares=[c / n if n else None for c in self._counts],
                          p_value=self.p_value, mismatch=self.mismatch, alpha=self.alpha)
