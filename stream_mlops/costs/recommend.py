"""Cost-optimisation recommendations (pure: aggregates and prices in, recommendations out).

The I/O lives in :mod:`stream_mlops.costs.report`, which reads the last ``days`` of
``mlops.model_performance`` into a :class:`UsageSnapshot`; everything here is arithmetic on
that snapshot, so every rule is unit-testable with hand-made numbers.

Four rules, each yielding :class:`Recommendation` objects with an estimated monthly saving:

``cheaper_model``
    Another model already serving the same function costs less per request and its
    measured quality is *shown* to be not worse (see :func:`not_worse`); no experiment on
    the function concluded that model is worse.
``prompt_caching``
    A model whose price table has a cheaper cached-input price gets long (median prompt at
    least 1,024 tokens), repeating prompts, yet under 10 % of its prompt tokens are cached.
``prompt_length``
    Requests whose prompt is far longer than the function's usual prompt (above
    :func:`outlier_bound`); the saving is trimming them to the function's p95.
``variant_cost_per_success``
    Of a function's variants, one produces a successful answer more cheaply and is not
    worse; the saving is producing the other variants' successful answers at its cost.

Monthly means 30 days: a window's figure is scaled by ``30 / days``, i.e. the estimate
assumes the analysed days are typical (a function younger than the window is
under-estimated). Savings of different recommendations for the same function can overlap
(a cheaper model that is also a cheaper variant): they are alternatives, not a sum.
Estimates below ``min_monthly_savings_usd`` (one cent) are not reported.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["cheaper_model", "prompt_caching", "prompt_length", "variant_cost_per_success"]
KINDS: tuple[Kind, ...] = ("cheaper_model", "prompt_caching", "prompt_length",
                           "variant_cost_per_success")
MONTH_DAYS = 30.0
MTOK = 1_000_000.0


@dataclass(frozen=True)
class Recommendation:
    """One concrete action with its estimated saving.

    ``message`` is one sentence with the numbers; ``evidence`` holds the same numbers (and
    the test statistics) for reports. Savings are USD per 30 days, rounded to micro-dollars.
    """

    tenant_id: str
    function_name: str
    kind: Kind
    message: str
    estimated_monthly_savings_usd: float
    evidence: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class RecommendConfig:
    """Thresholds of the rules (the defaults are what the documentation describes)."""

    min_requests: int = 100  # per model / variant / function, before any comparison
    z: float = 1.645  # one-sided 95 % bounds
    error_rate_margin: float = 0.01  # a candidate may be at most 1 point worse ...
    confidence_margin: float = 0.02  # ... and its mean confidence at most 0.02 lower
    min_confidence_samples: int = 30
    min_cacheable_tokens: int = 1024  # providers cache prompts from 1,024 tokens on
    max_cached_share: float = 0.10
    min_repeat_share: float = 0.20
    cache_ttl_seconds: float = 3600.0  # a repeat later than this would miss the cache
    outlier_spread_factor: float = 3.0
    outlier_median_factor: float = 2.0
    min_monthly_savings_usd: float = 0.01


DEFAULTS = RecommendConfig()


@dataclass(frozen=True)
class UsageTotals:
    """Totals of a group of requests over the window.

    ``model`` / ``variant`` are None when the group spans all of them: (model, variant)
    is one series, (model, None) a model across variants, (None, variant) a variant across
    models and (None, None) the whole function. ``priced_requests`` counts rows with a
    cost (None: all of them); ``cost_usd`` is their sum. Percentiles are of prompt tokens.
    """

    tenant_id: str
    function_name: str
    model: str | None
    variant: str | None
    requests: int
    errors: int = 0
    cost_usd: float = 0.0
    priced_requests: int | None = None
    confidence_count: int = 0
    confidence_sum: float = 0.0
    confidence_sumsq: float = 0.0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    prompt_p50: float | None = None
    prompt_p90: float | None = None
    prompt_p95: float | None = None
    prompt_p99: float | None = None

    @property
    def priced(self) -> int:
        return self.requests if self.priced_requests is None else self.priced_requests

    @property
    def successes(self) -> int:
        return self.requests - self.errors

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def cost_per_request(self) -> float | None:
        # Over priced rows only: an unpriced row has an unknown cost, not a zero one.
        return self.cost_usd / self.priced if self.priced else None

    @property
    def cost_per_success(self) -> float | None:
        """Cost per request over the success rate: what one successful answer costs when
        failed requests are paid for too (equals cost / successes when all are priced)."""
        cpr = self.cost_per_request
        if cpr is None or self.successes == 0:
            return None
        return cpr * self.requests / self.successes

    @property
    def confidence_mean(self) -> float | None:
        return self.confidence_sum / self.confidence_count if self.confidence_count else None

    @property
    def confidence_variance(self) -> float:
        n = self.confidence_count
        if n < 2:
            return 0.0
        return max(0.0, (self.confidence_sumsq - self.confidence_sum ** 2 / n) / (n - 1))

    @property
    def cached_share(self) -> float:
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


@dataclass(frozen=True)
class CurrentPrice:
    """Current price of a model for a tenant, USD per million tokens."""

    input_usd_per_mtok: float
    cached_input_usd_per_mtok: float | None = None
    cache_write_usd_per_mtok: float | None = None


@dataclass(frozen=True)
class PromptRepeats:
    """Rows of (tenant, function, model) carrying ``metadata.prompt_hash``.

    A *repeat* is a row whose prompt hash was seen for the same model within the cache TTL
    before it. ``cacheable_tokens``: uncached prompt tokens of repeats at least
    ``min_cacheable_tokens`` long (what caching could bill at the cached price);
    ``first_seen_tokens``: uncached tokens of the other long rows (what a cache would
    have to write).
    """

    tenant_id: str
    function_name: str
    model: str
    hashed_requests: int
    repeat_requests: int
    cacheable_tokens: int
    first_seen_tokens: int = 0


@dataclass(frozen=True)
class PromptOutliers:
    """Requests of (tenant, function, model) whose prompt is above the function's
    :func:`outlier_bound`, and their uncached tokens above the function's p95."""

    tenant_id: str
    function_name: str
    model: str
    requests: int
    trimmable_tokens: int


@dataclass(frozen=True)
class DecidedExperiment:
    """An experiment with a decision in ``results`` (``variants`` as stored: a list of
    ``{"name", "weight", "model"?}``)."""

    tenant_id: str
    function_name: str
    name: str
    variants: tuple[Mapping[str, Any], ...] = field(hash=False)
    results: Mapping[str, Any] = field(hash=False)


@dataclass(frozen=True)
class UsageSnapshot:
    """Everything the rules read, for one window of ``days`` days.

    ``usage`` holds every level of :class:`UsageTotals`: cheaper_model and prompt_caching read
    the (model, None) level, variant_cost_per_success the (None, variant) level and
    prompt_length the (None, None) level. ``prices`` are keyed by (tenant, model).
    """

    days: float
    usage: Sequence[UsageTotals]
    prices: Mapping[tuple[str, str], CurrentPrice] = field(default_factory=dict, hash=False)
    repeats: Sequence[PromptRepeats] = ()
    outliers: Sequence[PromptOutliers] = ()
    experiments: Sequence[DecidedExperiment] = ()

    @property
    def per_month(self) -> float:
        return MONTH_DAYS / self.days

    def level(self, *, model: bool, variant: bool) -> dict[tuple[str, str], list[UsageTotals]]:
        """UsageTotals rows of one level, grouped by (tenant, function), in a stable order."""
        out: dict[tuple[str, str], list[UsageTotals]] = defaultdict(list)
        for u in self.usage:
            if (u.model is not None) == model and (u.variant is not None) == variant:
                out[(u.tenant_id, u.function_name)].append(u)
        return {k: sorted(v, key=lambda u: (u.model or "", u.variant or ""))
                for k, v in sorted(out.items())}


# -- statistics ----------------------------------------------------------------------------


def wilson_interval(k: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n`` (``[0, 1]`` when n = 0).

    Examples
    --------
    >>> lo, hi = wilson_interval(10, 1000, 1.645)
    >>> round(lo, 4), round(hi, 4)
    (0.006, 0.0167)
    """
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_difference_upper(k_new: int, n_new: int, k_old: int, n_old: int, z: float) -> float:
    """One-sided upper confidence bound of ``k_new/n_new - k_old/n_old``.

    Newcombe's hybrid score interval (his method 10): the Wilson bounds of each rate are
    combined, which keeps its coverage for rates near 0 such as error rates, where the
    plain normal (Wald) interval is far too narrow.

    Examples
    --------
    Two models with 1 % errors over 1,000 requests each: the new one could still be up to
    0.78 points worse (95 % one-sided), which is within a 1-point margin; 1.2 % against
    1.0 % over 3,000 requests each: up to 0.65 points worse.

    >>> round(rate_difference_upper(10, 1000, 10, 1000, 1.645), 4)
    0.0078
    >>> round(rate_difference_upper(36, 3000, 30, 3000, 1.645), 4)
    0.0065
    """
    p_new, p_old = k_new / n_new, k_old / n_old
    _, hi_new = wilson_interval(k_new, n_new, z)
    lo_old, _ = wilson_interval(k_old, n_old, z)
    return p_new - p_old + math.sqrt((hi_new - p_new) ** 2 + (p_old - lo_old) ** 2)


def mean_difference_lower(new: UsageTotals, old: UsageTotals, z: float) -> float:
    """One-sided lower confidence bound of the difference of mean confidences (new - old),
    normal approximation with unpooled (Welch) variances."""
    assert new.confidence_mean is not None and old.confidence_mean is not None
    se = math.sqrt(new.confidence_variance / new.confidence_count
                   + old.confidence_variance / old.confidence_count)
    return new.confidence_mean - old.confidence_mean - z * se


@dataclass(frozen=True)
class QualityCheck:
    """Verdict of :func:`not_worse`, with the bounds it used (for the evidence)."""

    ok: bool
    reason: str
    error_rate_diff_upper: float | None = None
    confidence_diff_lower: float | None = None


def not_worse(new: UsageTotals, old: UsageTotals,
              config: RecommendConfig = DEFAULTS) -> QualityCheck:
    """Whether ``new`` is shown to be not worse than ``old`` (a non-inferiority test).

    The rule, at one-sided level 5 % (``z`` = 1.645):

    * both have at least ``min_requests`` requests;
    * error rate: the upper bound of (error rate new - error rate old), by
      :func:`rate_difference_upper`, is at most ``error_rate_margin`` (1 point). So a
      saving is recommended only when the data *show* the candidate is not more than a
      point worse, not merely when they fail to show it is worse: with little data the
      bound is wide and nothing is recommended;
    * confidence: when both record it on at least ``min_confidence_samples`` requests, the
      lower bound of (mean new - mean old) is at least ``-confidence_margin`` (0.02). When
      neither does, confidence is not compared; when only one does, the two cannot be
      compared and the answer is no.

    Examples
    --------
    >>> old = UsageTotals("t", "fn", "big", None, requests=3000, errors=30)
    >>> not_worse(UsageTotals("t", "fn", "small", None, requests=3000, errors=36), old).ok
    True
    >>> not_worse(UsageTotals("t", "fn", "small", None, requests=3000, errors=75), old).reason
    'error rate 2.5 % vs 1.0 %: may be up to 2.1 points worse (margin 1.0)'
    >>> not_worse(UsageTotals("t", "fn", "small", None, requests=50), old).reason
    'too few requests (50 and 3000; at least 100 each)'
    """
    need = config.min_requests
    if new.requests < need or old.requests < need:
        return QualityCheck(False, f"too few requests ({new.requests} and {old.requests};"
                                   f" at least {need} each)")
    upper = rate_difference_upper(new.errors, new.requests, old.errors, old.requests, config.z)
    if upper > config.error_rate_margin:
        return QualityCheck(
            False, f"error rate {_pct(new.error_rate)} vs {_pct(old.error_rate)}: may be up to"
                   f" {100 * upper:.1f} points worse (margin {100 * config.error_rate_margin:.1f})",
            upper)
    enough_new = new.confidence_count >= config.min_confidence_samples
    enough_old = old.confidence_count >= config.min_confidence_samples
    if not enough_new and not enough_old:
        return QualityCheck(True, "error rate not worse; confidence not recorded", upper)
    if enough_new != enough_old:
        return QualityCheck(False, "confidence recorded for only one of the two", upper)
    lower = mean_difference_lower(new, old, config.z)
    if lower < -config.confidence_margin:
        return QualityCheck(
            False, f"confidence {new.confidence_mean:.2f} vs {old.confidence_mean:.2f}: may be"
                   f" up to {-lower:.3f} lower (margin {config.confidence_margin})",
            upper, lower)
    return QualityCheck(True, "error rate and confidence not worse", upper, lower)


# -- experiments ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Excluded:
    """Models and variants that an experiment on the function found worse."""

    models: frozenset[str] = frozenset()
    variants: frozenset[str] = frozenset()
    experiments: tuple[str, ...] = ()


def excluded_by_experiments(experiments: Iterable[DecidedExperiment], tenant_id: str,
                            function_name: str) -> Excluded:
    """What the function's experiments rule out.

    Assumptions about ``mlops.experiments`` (whose ``results`` the experiment tooling
    writes): ``results.decision == "treatment_worse"`` means the treatment lost. The
    treatment is the variant named by ``results.treatment`` when that is given, otherwise
    every variant but the control (the variant named ``control``, else the first listed).
    Such a variant is excluded by name, and its ``model`` (when the variant has one and it
    differs from the control's: otherwise the experiment tested something other than the
    model) is excluded as a cheaper model for the function. Other decisions exclude
    nothing.

    Examples
    --------
    >>> e = DecidedExperiment("t", "fn", "mini-test",
    ...                ({"name": "control", "weight": 0.5, "model": "gpt-4o"},
    ...                 {"name": "treatment", "weight": 0.5, "model": "gpt-4o-mini"}),
    ...                {"decision": "treatment_worse"})
    >>> x = excluded_by_experiments([e], "t", "fn")
    >>> sorted(x.models), sorted(x.variants)
    (['gpt-4o-mini'], ['treatment'])
    >>> excluded_by_experiments([e], "t", "other").models
    frozenset()
    """
    models: set[str] = set()
    variants: set[str] = set()
    names: list[str] = []
    for e in experiments:
        if (e.tenant_id, e.function_name) != (tenant_id, function_name):
            continue
        if not isinstance(e.results, Mapping) or e.results.get("decision") != "treatment_worse":
            continue
        arms = [v for v in e.variants if isinstance(v, Mapping) and isinstance(v.get("name"), str)]
        if not arms:
            continue
        control = next((v for v in arms if v["name"] == "control"), arms[0])
        named = e.results.get("treatment")
        treatments = ([v for v in arms if v["name"] == named] if isinstance(named, str)
                      else [v for v in arms if v is not control])
        for t in treatments:
            variants.add(t["name"])
            model = t.get("model")
            if isinstance(model, str) and model != control.get("model"):
                models.add(model)
        names.append(e.name)
    return Excluded(frozenset(models), frozenset(variants), tuple(names))


# -- rules ---------------------------------------------------------------------------------


def cheaper_model(snapshot: UsageSnapshot,
                  config: RecommendConfig = DEFAULTS) -> list[Recommendation]:
    """Move a model's traffic to a cheaper model that already serves the function.

    For each model of a function with at least ``min_requests`` priced requests, the
    candidates are the function's other models with a lower cost per request that
    :func:`not_worse` accepts against it and that no experiment rules out
    (:func:`excluded_by_experiments`). The cheapest such candidate is recommended.

    Saving: (cost per request current - cost per request candidate) x the current model's
    requests, scaled to 30 days. Cost per request is measured, so it includes each model's
    own prompt and completion lengths on this function.

    Examples
    --------
    >>> snap = UsageSnapshot(7, [
    ...     UsageTotals("t", "summarize", "gpt-4o", None, requests=2800, errors=28, cost_usd=16.8),
    ...     UsageTotals("t", "summarize", "gpt-4o-mini", None, requests=2800, errors=28,
    ...           cost_usd=1.12)])
    >>> [r] = cheaper_model(snap)
    >>> r.estimated_monthly_savings_usd
    67.2
    >>> print(r.message)
    fn summarize: gpt-4o-mini costs $0.0004/request vs $0.006 for gpt-4o with error rate 1.0 % vs 1.0 % over 7 days: moving its 12,000 requests/month saves ≈ $67.20/month
    """  # noqa: E501
    out = []
    for (tenant, fn), models in snapshot.level(model=True, variant=False).items():
        ruled_out = excluded_by_experiments(snapshot.experiments, tenant, fn)
        priced = [u for u in models if u.cost_per_request is not None
                  and u.priced >= config.min_requests]
        for cur in priced:
            cur_cpr = cur.cost_per_request
            assert cur_cpr is not None
            best: tuple[float, UsageTotals, QualityCheck] | None = None
            for cand in priced:
                cand_cpr = cand.cost_per_request
                assert cand_cpr is not None
                if cand_cpr >= cur_cpr or cand.model in ruled_out.models:
                    continue
                check = not_worse(cand, cur, config)
                if check.ok and (best is None or cand_cpr < best[0]):
                    best = (cand_cpr, cand, check)
            if best is None:
                continue
            cand_cpr, cand, check = best
            monthly_requests = cur.requests * snapshot.per_month
            savings = (cur_cpr - cand_cpr) * monthly_requests
            quality = f"error rate {_pct(cand.error_rate)} vs {_pct(cur.error_rate)}"
            if check.confidence_diff_lower is not None:
                quality += (f" and confidence {cand.confidence_mean:.2f} vs"
                            f" {cur.confidence_mean:.2f}")
            out.append(Recommendation(
                tenant, fn, "cheaper_model",
                f"fn {fn}: {cand.model} costs {_usd(cand_cpr)}/request vs {_usd(cur_cpr)} for"
                f" {cur.model} with {quality} over {_days(snapshot.days)}: moving its"
                f" {monthly_requests:,.0f} requests/month saves ≈ {_money(savings)}/month",
                _round(savings),
                {"current_model": cur.model, "candidate_model": cand.model,
                 "days": snapshot.days,
                 "current_requests": cur.requests, "candidate_requests": cand.requests,
                 "current_cost_per_request": cur_cpr, "candidate_cost_per_request": cand_cpr,
                 "current_error_rate": cur.error_rate, "candidate_error_rate": cand.error_rate,
                 "current_confidence": cur.confidence_mean,
                 "candidate_confidence": cand.confidence_mean,
                 "error_rate_diff_upper": check.error_rate_diff_upper,
                 "confidence_diff_lower": check.confidence_diff_lower,
                 "quality": check.reason,
                 "experiments_treatment_worse": list(ruled_out.experiments),
                 "monthly_requests": monthly_requests}))
    return out


def prompt_caching(snapshot: UsageSnapshot,
                   config: RecommendConfig = DEFAULTS) -> list[Recommendation]:
    """Cache repeated long prompts of models with a cheaper cached-input price.

    A (function, model) qualifies when: its current price has a cached-input price below
    the input price; it has at least ``min_requests`` requests; its median prompt is at
    least ``min_cacheable_tokens`` (providers do not cache shorter prompts); under
    ``max_cached_share`` (10 %) of its prompt tokens were billed as cached; and at least
    ``min_repeat_share`` (20 %) of its rows that carry ``metadata.prompt_hash`` repeat a
    prompt seen for the same model within the cache TTL.

    Without ``prompt_hash`` nothing is recommended: how often prompts repeat decides the
    whole saving, and a guessed share would give a number nobody can check. Rows without
    a hash are left out of the estimate (not extrapolated), so it is a lower bound there.

    Saving: cacheable tokens (uncached tokens of long repeats) x (input - cached price),
    minus, where the price table has a cache-write price above the input price, that
    premium on every other long hashed prompt (each might have to be written), scaled to
    30 days.

    Examples
    --------
    >>> snap = UsageSnapshot(7, [
    ...     UsageTotals("t", "rag", "gpt-4o", None, requests=210, prompt_tokens=420_000,
    ...           prompt_p50=2000)],
    ...     prices={("t", "gpt-4o"): CurrentPrice(2.5, 1.25)},
    ...     repeats=[PromptRepeats("t", "rag", "gpt-4o", hashed_requests=210,
    ...                            repeat_requests=140, cacheable_tokens=280_000)])
    >>> [r] = prompt_caching(snap)
    >>> r.estimated_monthly_savings_usd
    1.5
    """
    repeats = {(r.tenant_id, r.function_name, r.model): r for r in snapshot.repeats}
    out = []
    for (tenant, fn), models in snapshot.level(model=True, variant=False).items():
        for u in models:
            assert u.model is not None
            price = snapshot.prices.get((tenant, u.model))
            rep = repeats.get((tenant, fn, u.model))
            if (price is None or price.cached_input_usd_per_mtok is None
                    or price.cached_input_usd_per_mtok >= price.input_usd_per_mtok
                    or u.requests < config.min_requests or u.prompt_p50 is None
                    or u.prompt_p50 < config.min_cacheable_tokens
                    or u.cached_share >= config.max_cached_share
                    or rep is None or rep.hashed_requests == 0):
                continue
            repeat_share = rep.repeat_requests / rep.hashed_requests
            if repeat_share < config.min_repeat_share:
                continue
            cached_price = price.cached_input_usd_per_mtok
            write_premium = max(0.0, (price.cache_write_usd_per_mtok or 0.0)
                                - price.input_usd_per_mtok)
            window_saving = (rep.cacheable_tokens * (price.input_usd_per_mtok - cached_price)
                             - rep.first_seen_tokens * write_premium) / MTOK
            savings = window_saving * snapshot.per_month
            out.append(Recommendation(
                tenant, fn, "prompt_caching",
                f"fn {fn}: {_pct(repeat_share, 0)} of {u.model} requests repeat a prompt seen"
                f" within {_duration(config.cache_ttl_seconds)} (median"
                f" {u.prompt_p50:,.0f} tokens) but only {_pct(u.cached_share)} of prompt"
                f" tokens are cached over {_days(snapshot.days)}: putting the repeated part"
                f" first and caching it ({_usd(cached_price)} instead of"
                f" {_usd(price.input_usd_per_mtok)} per million tokens) saves"
                f" ≈ {_money(savings)}/month",
                _round(savings),
                {"model": u.model, "days": snapshot.days, "requests": u.requests,
                 "prompt_p50": u.prompt_p50, "cached_share": u.cached_share,
                 "hashed_requests": rep.hashed_requests,
                 "repeat_requests": rep.repeat_requests, "repeat_share": repeat_share,
                 "cacheable_tokens": rep.cacheable_tokens,
                 "first_seen_tokens": rep.first_seen_tokens,
                 "input_usd_per_mtok": price.input_usd_per_mtok,
                 "cached_input_usd_per_mtok": cached_price,
                 "cache_write_premium_usd_per_mtok": write_premium,
                 "cache_ttl_seconds": config.cache_ttl_seconds}))
    return out


def outlier_bound(usage: UsageTotals, config: RecommendConfig = DEFAULTS) -> float | None:
    """Prompt length above which a request of the function is an outlier.

    ``max(p50 + 3 x (p90 - p50), 2 x p50, p95)``: the first term is a quantile version of
    "mean + k sigma" that tolerates skewed distributions (p90 - p50 is about 1.3 sigma for
    a normal one, so this is near 4 sigma); the second keeps a tight distribution (p90
    close to p50) from calling every prompt slightly above the median an outlier; the
    third is what outliers are trimmed to, so nothing below it can be trimmed. None
    without percentiles.

    Examples
    --------
    >>> u = UsageTotals("t", "fn", None, None, 1000, prompt_p50=1000, prompt_p90=1500,
    ...           prompt_p95=1700)
    >>> outlier_bound(u)
    2500.0
    >>> outlier_bound(UsageTotals("t", "fn", None, None, 1000, prompt_p50=500, prompt_p90=500,
    ...                     prompt_p95=500))
    1000.0
    """
    p50, p90, p95 = usage.prompt_p50, usage.prompt_p90, usage.prompt_p95
    if p50 is None or p90 is None or p95 is None:
        return None
    return float(max(p50 + config.outlier_spread_factor * (p90 - p50),
                     config.outlier_median_factor * p50, p95))


def prompt_length(snapshot: UsageSnapshot,
                  config: RecommendConfig = DEFAULTS) -> list[Recommendation]:
    """Trim prompt-length outliers to the function's p95.

    For each function with at least ``min_requests`` requests: the requests above
    :func:`outlier_bound` (from ``snapshot.outliers``) and their uncached prompt tokens
    above the p95 (cached tokens are left alone: they are the cheap, stable prefix).
    Saving: those tokens at each model's current input price, scaled to 30 days. Models
    without a price are listed in the evidence and not counted.

    Examples
    --------
    >>> snap = UsageSnapshot(7, [
    ...     UsageTotals("t", "chat", None, None, 300, prompt_p50=500, prompt_p90=500,
    ...           prompt_p95=500)],
    ...     prices={("t", "gpt-4o"): CurrentPrice(2.5)},
    ...     outliers=[PromptOutliers("t", "chat", "gpt-4o", requests=14,
    ...                              trimmable_tokens=140_000)])
    >>> [r] = prompt_length(snap)
    >>> r.estimated_monthly_savings_usd
    1.5
    >>> print(r.message)
    fn chat: 4.7 % of requests (14 of 300) have prompts over 1,000 tokens (median 500, p95 500) over 7 days: trimming them to the p95 saves ≈ $1.50/month
    """  # noqa: E501
    by_function: dict[tuple[str, str], list[PromptOutliers]] = defaultdict(list)
    for o in snapshot.outliers:
        by_function[(o.tenant_id, o.function_name)].append(o)
    out = []
    for (tenant, fn), rows in snapshot.level(model=False, variant=False).items():
        u = rows[0]
        bound = outlier_bound(u, config)
        outs = sorted(by_function.get((tenant, fn), []), key=lambda o: o.model)
        if u.requests < config.min_requests or bound is None or not outs:
            continue
        window_saving = 0.0
        unpriced: list[str] = []
        per_model: dict[str, dict[str, float]] = {}
        for o in outs:
            price = snapshot.prices.get((tenant, o.model))
            if price is None:
                unpriced.append(o.model)
                continue
            saved = o.trimmable_tokens * price.input_usd_per_mtok / MTOK
            window_saving += saved
            per_model[o.model] = {"requests": o.requests, "trimmable_tokens": o.trimmable_tokens,
                                  "input_usd_per_mtok": price.input_usd_per_mtok,
                                  "window_saving_usd": saved}
        n_out = sum(o.requests for o in outs)
        savings = window_saving * snapshot.per_month
        out.append(Recommendation(
            tenant, fn, "prompt_length",
            f"fn {fn}: {_pct(n_out / u.requests)} of requests ({n_out:,} of {u.requests:,})"
            f" have prompts over {bound:,.0f} tokens (median {u.prompt_p50:,.0f}, p95"
            f" {u.prompt_p95:,.0f}) over {_days(snapshot.days)}: trimming them to the p95"
            f" saves ≈ {_money(savings)}/month",
            _round(savings),
            {"days": snapshot.days, "requests": u.requests, "outlier_requests": n_out,
             "outlier_bound_tokens": bound, "prompt_p50": u.prompt_p50,
             "prompt_p90": u.prompt_p90, "prompt_p95": u.prompt_p95,
             "prompt_p99": u.prompt_p99,
             "trimmable_tokens": sum(o.trimmable_tokens for o in outs),
             "models": per_model, "unpriced_models": unpriced}))
    return out


def variant_cost_per_success(snapshot: UsageSnapshot,
                             config: RecommendConfig = DEFAULTS) -> list[Recommendation]:
    """Serve a function's traffic with its variant of lowest cost per successful answer.

    Among variants with at least ``min_requests`` priced requests and some successes
    (cost per success: see :attr:`UsageTotals.cost_per_success`), by increasing cost per
    success, the first that no experiment rules out (:func:`excluded_by_experiments`) and
    that :func:`not_worse` accepts against every costlier variant (its error rate, i.e.
    its success rate, and confidence) is recommended for the costlier ones' traffic.

    Saving: for each costlier variant, its successful answers x (its cost per success -
    the recommended one's), i.e. producing as many successful answers at the lower unit
    cost, scaled to 30 days.

    Examples
    --------
    >>> snap = UsageSnapshot(7, [
    ...     UsageTotals("t", "answer", None, "control", 1000, errors=10, cost_usd=2.1),
    ...     UsageTotals("t", "answer", None, "treatment", 1000, errors=10, cost_usd=0.7)])
    >>> [r] = variant_cost_per_success(snap)
    >>> r.estimated_monthly_savings_usd
    6.0
    """
    out = []
    for (tenant, fn), variants in snapshot.level(model=False, variant=True).items():
        eligible = sorted((u for u in variants if u.priced >= config.min_requests
                           and u.cost_per_success is not None),
                          key=lambda u: (u.cost_per_success, u.variant))
        if len(eligible) < 2:
            continue
        ruled_out = excluded_by_experiments(snapshot.experiments, tenant, fn)
        for i, best in enumerate(eligible[:-1]):
            costlier = eligible[i + 1:]
            best_cps = best.cost_per_success
            assert best_cps is not None
            if best.variant in ruled_out.variants:
                continue
            checks = [not_worse(best, other, config) for other in costlier]
            if not all(c.ok for c in checks):
                continue
            window_saving = sum(o.successes * ((o.cost_per_success or 0.0) - best_cps)
                                for o in costlier)
            savings = window_saving * snapshot.per_month
            others = ", ".join(
                f"{o.variant} ({_usd(o.cost_per_success or 0.0)}, success rate"
                f" {_pct(1 - o.error_rate)})" for o in costlier)
            out.append(Recommendation(
                tenant, fn, "variant_cost_per_success",
                f"fn {fn}: variant {best.variant} costs {_usd(best_cps)} per successful"
                f" answer (success rate {_pct(1 - best.error_rate)}) vs {others} over"
                f" {_days(snapshot.days)}: serving their traffic with {best.variant} saves"
                f" ≈ {_money(savings)}/month",
                _round(savings),
                {"variant": best.variant, "days": snapshot.days,
                 "requests": best.requests, "cost_per_success": best_cps,
                 "success_rate": 1 - best.error_rate,
                 "confidence": best.confidence_mean,
                 "experiments_treatment_worse": list(ruled_out.experiments),
                 "others": [{"variant": o.variant, "requests": o.requests,
                             "successes": o.successes, "cost_per_success": o.cost_per_success,
                             "success_rate": 1 - o.error_rate,
                             "confidence": o.confidence_mean,
                             "error_rate_diff_upper": c.error_rate_diff_upper,
                             "confidence_diff_lower": c.confidence_diff_lower}
                            for o, c in zip(costlier, checks, strict=True)]}))
            break
    return out


RULES = {"cheaper_model": cheaper_model, "prompt_caching": prompt_caching,
         "prompt_length": prompt_length, "variant_cost_per_success": variant_cost_per_success}


def recommendations(snapshot: UsageSnapshot,
                    config: RecommendConfig = DEFAULTS) -> list[Recommendation]:
    """Every rule's recommendations worth at least ``min_monthly_savings_usd``, largest
    saving first (ties: tenant, function, kind).

    Examples
    --------
    >>> snap = UsageSnapshot(7, [
    ...     UsageTotals("t", "answer", None, "control", 1000, errors=10, cost_usd=2.1),
    ...     UsageTotals("t", "answer", None, "treatment", 1000, errors=10, cost_usd=0.7),
    ...     UsageTotals("t", "tiny", None, "control", 1000, cost_usd=0.001),
    ...     UsageTotals("t", "tiny", None, "treatment", 1000, cost_usd=0.0009)])
    >>> [(r.function_name, r.estimated_monthly_savings_usd) for r in recommendations(snap)]
    [('answer', 6.0)]
    """
    if snapshot.days <= 0:
        raise ValueError("days must be positive")
    recs = [r for rule in RULES.values() for r in rule(snapshot, config)
            if r.estimated_monthly_savings_usd >= config.min_monthly_savings_usd]
    return sorted(recs, key=lambda r: (-r.estimated_monthly_savings_usd, r.tenant_id,
                                       r.function_name, r.kind))


# -- formatting ----------------------------------------------------------------------------


def _round(usd: float) -> float:
    # Micro-dollars: exact enough for any bill, and free of float noise like 6.000000000001.
    return round(usd, 6) + 0.0  # + 0.0 turns -0.0 into 0.0


def _money(usd: float) -> str:
    return f"${usd:,.2f}"


def _usd(usd: float) -> str:
    """Two significant digits for unit prices (a request can cost $0.00002)."""
    if usd == 0:
        return "$0"
    if usd >= 1:
        return f"${usd:,.2f}"
    decimals = max(2, 1 - math.floor(math.log10(usd)))
    return "$" + f"{usd:.{decimals}f}".rstrip("0").rstrip(".")


def _pct(share: float, decimals: int = 1) -> str:
    return f"{100 * share:.{decimals}f} %"


def _days(days: float) -> str:
    return f"{days:g} day" + ("" if days == 1 else "s")


def _duration(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"
