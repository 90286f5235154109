"""Cost recommendation rules on hand-made aggregates: exact savings, and no recommendation
whenever quality is worse, data are too few or an experiment says no."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from stream_mlops.costs.recommend import (
    CurrentPrice,
    DecidedExperiment,
    PromptOutliers,
    PromptRepeats,
    Recommendation,
    UsageSnapshot,
    UsageTotals,
    cheaper_model,
    excluded_by_experiments,
    not_worse,
    outlier_bound,
    prompt_caching,
    prompt_length,
    recommendations,
    variant_cost_per_success,
)
from stream_mlops.costs.report import render_recommendations


def conf(n: int, mean: float, var: float) -> dict[str, Any]:
    """Confidence totals of ``n`` values with this mean and sample variance."""
    total = n * mean
    return {"confidence_count": n, "confidence_sum": total,
            "confidence_sumsq": (n - 1) * var + total * total / n}


def model(name: str, n: int, errors: int, cost: float, fn: str = "summarize",
          **kw: Any) -> UsageTotals:
    return UsageTotals("t", fn, name, None, n, errors, cost, **kw)


def variant(name: str, n: int, errors: int, cost: float, fn: str = "answer",
            **kw: Any) -> UsageTotals:
    return UsageTotals("t", fn, None, name, n, errors, cost, **kw)


def mini_worse(**results: Any) -> DecidedExperiment:
    return DecidedExperiment("t", "summarize", "mini-test",
                      ({"name": "control", "weight": 0.5, "model": "gpt-4o"},
                       {"name": "treatment", "weight": 0.5, "model": "gpt-4o-mini"}),
                      {"decision": "treatment_worse", **results})



# -- cheaper_model -------------------------------------------------------------------------

BIG = model("gpt-4o", 2800, 28, 16.8, **conf(2800, 0.85, 0.01))  # $0.006/request
MINI = model("gpt-4o-mini", 2800, 28, 1.12, **conf(2800, 0.86, 0.01))  # $0.0004/request


def test_cheaper_model_exact_savings_and_message() -> None:
    [r] = cheaper_model(UsageSnapshot(7, [BIG, MINI]))
    # (0.006 - 0.0004) x 2,800 requests x 30/7 days
    assert r.estimated_monthly_savings_usd == 67.2
    assert (r.tenant_id, r.function_name, r.kind) == ("t", "summarize", "cheaper_model")
    assert r.message == (
        "fn summarize: gpt-4o-mini costs $0.0004/request vs $0.006 for gpt-4o with error rate"
        " 1.0 % vs 1.0 % and confidence 0.86 vs 0.85 over 7 days: moving its 12,000"
        " requests/month saves ≈ $67.20/month")
    assert r.evidence["monthly_requests"] == pytest.approx(12_000)
    assert r.evidence["confidence_diff_lower"] > -0.02
    assert r.evidence["error_rate_diff_upper"] <= 0.01


def test_cheaper_model_picks_the_cheapest_candidate_that_is_not_worse() -> None:
    a = model("a", 1400, 14, 14.0)  # $0.01/request
    b = model("b", 1400, 70, 2.8)  # $0.002, but 5 % errors
    c = model("c", 1400, 14, 7.0)  # $0.005
    recs = cheaper_model(UsageSnapshot(7, [a, b, c]))
    assert [(r.evidence["current_model"], r.evidence["candidate_model"],
             r.estimated_monthly_savings_usd) for r in recs] == [("a", "c", 30.0)]


def test_cost_per_request_counts_priced_requests_only() -> None:
    u = model("m", 200, 0, 1.0, priced_requests=100)
    assert u.cost_per_request == 0.01
    assert model("m", 200, 0, 0.0, priced_requests=0).cost_per_request is None


PLAIN_BIG = model("gpt-4o", 3000, 30, 18.0)  # $0.006/request, no confidence recorded


@pytest.mark.parametrize(("current", "candidate", "experiments"), [
    # error rate 2.5 % vs 1.0 %
    (PLAIN_BIG, model("gpt-4o-mini", 3000, 75, 1.2), []),
    # too few requests, or too few with a cost
    (PLAIN_BIG, model("gpt-4o-mini", 99, 0, 0.0396), []),
    (PLAIN_BIG, model("gpt-4o-mini", 2800, 28, 0.0396, priced_requests=99), []),
    (model("gpt-4o", 99, 0, 0.594), MINI, []),
    # mean confidence 0.80 vs 0.85
    (BIG, model("gpt-4o-mini", 2800, 28, 1.12, **conf(2800, 0.80, 0.01)), []),
    # confidence recorded for one of the two only
    (BIG, model("gpt-4o-mini", 2800, 28, 1.12), []),
    # an experiment found the candidate worse (treatment by default, or named)
    (BIG, MINI, [mini_worse()]),
    (BIG, MINI, [mini_worse(treatment="treatment")]),
], ids=["error-rate", "few-requests", "few-priced", "few-current", "confidence-lower",
        "confidence-one-side", "experiment", "experiment-named-treatment"])
def test_cheaper_model_not_recommended(current: UsageTotals, candidate: UsageTotals,
                                       experiments: list[DecidedExperiment]) -> None:
    assert cheaper_model(UsageSnapshot(7, [current, candidate], experiments=experiments)) == []


def test_cheaper_model_needs_a_cheaper_model() -> None:
    assert cheaper_model(UsageSnapshot(7, [BIG])) == []
    same_price = model("gpt-4o-mini", 2800, 28, 16.8, **conf(2800, 0.86, 0.01))
    assert cheaper_model(UsageSnapshot(7, [BIG, same_price])) == []


def test_experiments_that_do_not_exclude_the_model() -> None:
    better = DecidedExperiment("t", "summarize", "e1", mini_worse().variants,
                        {"decision": "treatment_better"})
    other_fn = DecidedExperiment("t", "classify", "e2", mini_worse().variants,
                          {"decision": "treatment_worse"})
    # A prompt experiment on the same model says nothing about the model.
    prompt_only = DecidedExperiment("t", "summarize", "e3",
                             ({"name": "control", "model": "gpt-4o-mini"},
                              {"name": "short-prompt", "model": "gpt-4o-mini"}),
                             {"decision": "treatment_worse"})
    snap = UsageSnapshot(7, [BIG, MINI], experiments=[better, other_fn, prompt_only])
    assert [r.estimated_monthly_savings_usd for r in cheaper_model(snap)] == [67.2]
    assert excluded_by_experiments([prompt_only], "t", "summarize").variants == {"short-prompt"}


def test_experiment_treatment_default_is_every_variant_but_the_control() -> None:
    e = DecidedExperiment("t", "fn", "e", ({"name": "a", "model": "x"}, {"name": "b", "model": "y"},
                                    {"name": "c", "model": "z"}),
                   {"decision": "treatment_worse"})
    assert excluded_by_experiments([e], "t", "fn").models == {"y", "z"}  # "a" listed first
    named = DecidedExperiment("t", "fn", "e", e.variants, {"decision": "treatment_worse",
                                                    "treatment": "c"})
    assert excluded_by_experiments([named], "t", "fn").models == {"z"}
    broken = DecidedExperiment("t", "fn", "e", (), {"decision": "treatment_worse"})
    assert excluded_by_experiments([broken], "t", "fn").models == frozenset()


def test_not_worse_rule() -> None:
    old = model("old", 3000, 30, 0.0)
    assert not_worse(model("new", 3000, 36, 0.0), old).ok  # 1.2 % vs 1.0 %
    assert not not_worse(model("new", 300, 4, 0.0), model("old", 300, 3, 0.0)).ok  # too little
    check = not_worse(model("new", 3000, 36, 0.0, **conf(3000, 0.84, 0.01)),
                      model("old", 3000, 30, 0.0, **conf(3000, 0.85, 0.01)))
    assert check.ok and check.confidence_diff_lower is not None
    assert check.confidence_diff_lower == pytest.approx(-0.01 - 1.645 * (0.02 / 3000) ** 0.5)


# -- prompt_caching ------------------------------------------------------------------------

RAG = UsageTotals("t", "rag", "claude", None, 500, prompt_tokens=2_000_000, cached_tokens=50_000,
            prompt_p50=4000)
REPEATS = PromptRepeats("t", "rag", "claude", hashed_requests=500, repeat_requests=250,
                        cacheable_tokens=1_000_000, first_seen_tokens=400_000)
CLAUDE = CurrentPrice(3.0, 0.3, 3.75)


def test_prompt_caching_exact_savings_with_cache_write_premium() -> None:
    snap = UsageSnapshot(6, [RAG], prices={("t", "claude"): CLAUDE}, repeats=[REPEATS])
    [r] = prompt_caching(snap)
    # (1M x (3.00 - 0.30) - 0.4M x (3.75 - 3.00)) / 1M = $2.40 in 6 days: x 30/6.
    assert r.estimated_monthly_savings_usd == 12.0
    assert r.evidence["repeat_share"] == 0.5 and r.evidence["cached_share"] == 0.025
    assert "50 % of claude requests repeat a prompt seen within 1 h" in r.message
    assert "only 2.5 % of prompt tokens are cached" in r.message


@pytest.mark.parametrize(("usage", "price", "repeats"), [
    (RAG, CLAUDE, None),  # no prompt_hash: the repeat share is unknown
    (RAG, CLAUDE, PromptRepeats("t", "rag", "claude", 500, 95, 500_000)),  # 19 % repeat
    (UsageTotals("t", "rag", "claude", None, 500, prompt_tokens=2_000_000, cached_tokens=200_000,
           prompt_p50=4000), CLAUDE, REPEATS),  # 10 % already cached
    (UsageTotals("t", "rag", "claude", None, 500, prompt_tokens=2_000_000, prompt_p50=1023),
     CLAUDE, REPEATS),  # too short to be cached
    (UsageTotals("t", "rag", "claude", None, 99, prompt_tokens=2_000_000, prompt_p50=4000),
     CLAUDE, REPEATS),  # too few requests
    (RAG, CurrentPrice(3.0), REPEATS),  # no cached price
    (RAG, CurrentPrice(3.0, 3.0), REPEATS),  # cached price not cheaper
    (RAG, None, REPEATS),  # no price at all
])
def test_prompt_caching_not_recommended(usage: UsageTotals, price: CurrentPrice | None,
                                        repeats: PromptRepeats | None) -> None:
    snap = UsageSnapshot(6, [usage], prices={("t", "claude"): price} if price else {},
                         repeats=[repeats] if repeats else [])
    assert prompt_caching(snap) == []


# -- prompt_length -------------------------------------------------------------------------

CHAT = UsageTotals("t", "chat", None, None, 1000, prompt_p50=1000, prompt_p90=1500,
             prompt_p95=1700, prompt_p99=3000)


def test_outlier_bound() -> None:
    assert outlier_bound(CHAT) == 2500.0  # 1000 + 3 x (1500 - 1000)
    tight = UsageTotals("t", "chat", None, None, 1000, prompt_p50=800, prompt_p90=850,
                        prompt_p95=900)
    assert outlier_bound(tight) == 1600.0  # 2 x the median
    skewed = UsageTotals("t", "chat", None, None, 1000, prompt_p50=100, prompt_p90=110,
                   prompt_p95=5000)
    assert outlier_bound(skewed) == 5000.0  # never below the p95
    assert outlier_bound(UsageTotals("t", "chat", None, None, 0)) is None


def test_prompt_length_exact_savings_over_models() -> None:
    snap = UsageSnapshot(3, [CHAT], prices={("t", "gpt-4o"): CurrentPrice(2.5, 1.25),
                                            ("t", "gpt-4o-mini"): CurrentPrice(0.15)},
                         outliers=[PromptOutliers("t", "chat", "gpt-4o", 10, 100_000),
                                   PromptOutliers("t", "chat", "gpt-4o-mini", 4, 40_000),
                                   PromptOutliers("t", "chat", "in-house", 2, 9_000)])
    [r] = prompt_length(snap)
    # (100k x $2.50 + 40k x $0.15) / 1M = $0.256 in 3 days, x 10; in-house has no price.
    assert r.estimated_monthly_savings_usd == 2.56
    assert r.evidence["outlier_requests"] == 16
    assert r.evidence["unpriced_models"] == ["in-house"]
    assert r.message == (
        "fn chat: 1.6 % of requests (16 of 1,000) have prompts over 2,500 tokens (median"
        " 1,000, p95 1,700) over 3 days: trimming them to the p95 saves ≈ $2.56/month")


def test_prompt_length_not_recommended() -> None:
    outs = [PromptOutliers("t", "chat", "gpt-4o", 10, 100_000)]
    prices = {("t", "gpt-4o"): CurrentPrice(2.5)}
    few = UsageTotals("t", "chat", None, None, 99, prompt_p50=1000, prompt_p90=1500,
                      prompt_p95=1700)
    assert prompt_length(UsageSnapshot(3, [few], prices=prices, outliers=outs)) == []
    assert prompt_length(UsageSnapshot(3, [CHAT], prices=prices)) == []  # no outliers
    no_pct = UsageTotals("t", "chat", None, None, 1000)
    assert prompt_length(UsageSnapshot(3, [no_pct], prices=prices, outliers=outs)) == []
    # Only unpriced models: nothing can be priced, so nothing is worth reporting.
    unpriced = UsageSnapshot(3, [CHAT], outliers=outs)
    assert [r.estimated_monthly_savings_usd for r in prompt_length(unpriced)] == [0.0]
    assert recommendations(unpriced) == []


# -- variant_cost_per_success --------------------------------------------------------------


def test_variant_exact_savings_skipping_a_cheap_variant_that_is_worse() -> None:
    snap = UsageSnapshot(3, [variant("costly", 1000, 10, 3.0), variant("mid", 1000, 10, 1.0),
                             variant("cheap", 1000, 100, 0.5)])
    [r] = variant_cost_per_success(snap)
    # 990 successes x ($3.00 - $1.00) / 990 = $2.00 in 3 days, x 10.
    assert r.estimated_monthly_savings_usd == 20.0
    assert r.evidence["variant"] == "mid"
    assert [o["variant"] for o in r.evidence["others"]] == ["costly"]
    assert r.message.startswith("fn answer: variant mid costs $0.001 per successful answer"
                                " (success rate 99.0 %) vs costly ($0.003, success rate 99.0 %)")


def test_variant_savings_use_cost_per_success() -> None:
    snap = UsageSnapshot(3, [variant("control", 1000, 20, 2.0),
                             variant("treatment", 1000, 10, 1.0)])
    [r] = variant_cost_per_success(snap)
    # 980 successes x ($2.00/980 - $1.00/990), x 10
    assert r.estimated_monthly_savings_usd == round((2.0 - 980 / 990) * 10, 6)


def test_variant_not_recommended() -> None:
    pair = [variant("control", 1000, 10, 2.1), variant("treatment", 1000, 10, 0.7)]
    worse = DecidedExperiment("t", "answer", "e", ({"name": "control"}, {"name": "treatment"}),
                       {"decision": "treatment_worse"})
    assert variant_cost_per_success(UsageSnapshot(7, pair, experiments=[worse])) == []
    assert variant_cost_per_success(UsageSnapshot(7, pair[:1])) == []  # one variant
    few = [variant("control", 1000, 10, 2.1), variant("treatment", 99, 0, 0.01)]
    assert variant_cost_per_success(UsageSnapshot(7, few)) == []
    worse_rate = [variant("control", 1000, 10, 2.1), variant("treatment", 1000, 40, 0.7)]
    assert variant_cost_per_success(UsageSnapshot(7, worse_rate)) == []
    # A variant without a single success is an outage, not a cost question.
    dead = [variant("control", 1000, 1000, 2.1), variant("treatment", 1000, 10, 0.7)]
    assert variant_cost_per_success(UsageSnapshot(7, dead)) == []


# -- all rules -----------------------------------------------------------------------------


def test_recommendations_sorted_by_savings_and_filtered() -> None:
    snap = UsageSnapshot(
        7, [BIG, MINI, variant("control", 1000, 10, 2.1), variant("treatment", 1000, 10, 0.7),
            variant("control", 1000, 0, 0.0010, fn="tiny"),
            variant("treatment", 1000, 0, 0.0009, fn="tiny")])
    recs = recommendations(snap)
    assert [(r.function_name, r.kind, r.estimated_monthly_savings_usd) for r in recs] == [
        ("summarize", "cheaper_model", 67.2), ("answer", "variant_cost_per_success", 6.0)]
    assert len({hash(r) for r in recs}) == 2  # usable in sets despite the evidence dict
    with pytest.raises(ValueError, match="days"):
        recommendations(UsageSnapshot(0, []))


def test_render_recommendations_round_trip() -> None:
    recs = recommendations(UsageSnapshot(7, [BIG, MINI, variant("control", 1000, 10, 2.1),
                                             variant("treatment", 1000, 10, 0.7)]))
    as_json = json.loads(render_recommendations(recs, "json"))
    assert [Recommendation(**r) for r in as_json] == recs
    assert as_json[0]["evidence"]["candidate_model"] == "gpt-4o-mini"
    rows = list(csv.DictReader(io.StringIO(render_recommendations(recs, "csv"))))
    assert [float(r["estimated_monthly_savings_usd"]) for r in rows] == [67.2, 6.0]
    assert json.loads(rows[1]["evidence"])["variant"] == "treatment"
    table = render_recommendations(recs, "table")
    assert "$67.20" in table and "overlap" not in table
    assert render_recommendations([], "table").startswith("no recommendations")
    assert render_recommendations([], "json") == "[]"
    same_fn = [recs[0], Recommendation("t", "summarize", "prompt_length", "m", 1.0)]
    assert "overlap" in render_recommendations(same_fn, "table")
