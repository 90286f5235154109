"""Cost recommendations against real Postgres: the named queries feed the rules, and each
rule's saving comes out exact."""

from __future__ import annotations

import asyncio
import csv
import io
import json

import psycopg
import pytest

from stream_mlops.costs.report import (
    CostMonitor,
    analyze,
    load_snapshot,
    recommend,
    render_recommendations,
    render_report,
)

# The tenant's own prices (they override the seeded global ones, whatever those become).
PRICES = (
    "INSERT INTO mlops.model_prices (model, provider, tenant_id, input_usd_per_mtok,"
    " output_usd_per_mtok, cached_input_usd_per_mtok) VALUES"
    " ('gpt-4o', 'openai', 'default', 2.5, 10, 1.25),"
    " ('gpt-4o-mini', 'openai', 'default', 0.15, 0.6, 0.075)"
)
# 1,000 requests per model, 1 % errors; gpt-4o-mini is $0.0056/request cheaper and a little
# more confident: (0.006 - 0.0004) x 1000 x 30/7 = $24.00/month.
TWO_MODELS = (
    "INSERT INTO mlops.model_performance (function_name, model, latency_ms, prompt_tokens,"
    " cost_usd, confidence, status, error_type, created_at)"
    " SELECT %(fn)s, m.model, 100, 200, m.cost, 0.80 + (g %% 11) * 0.01 + m.dconf,"
    "        CASE WHEN g %% 100 = 0 THEN 'error' ELSE 'success' END,"
    "        CASE WHEN g %% 100 = 0 THEN 'Timeout' END, now() - g * interval '1 minute'"
    " FROM generate_series(1, 1000) g,"
    "      (VALUES ('gpt-4o', 0.006, 0.0), ('gpt-4o-mini', 0.0004, 0.01)) AS m(model, cost, dconf)"
)
WORSE_MINI = (
    # Experiments start as drafts; this one ran and concluded that gpt-4o-mini is worse.
    "INSERT INTO mlops.experiments (name, function_name, variants, results)"
    " VALUES ('mini-on-classify', 'classify',"
    " '[{\"name\": \"control\", \"weight\": 0.5, \"model\": \"gpt-4o\"},"
    "   {\"name\": \"treatment\", \"weight\": 0.5, \"model\": \"gpt-4o-mini\"}]',"
    " '{\"decision\": \"treatment_worse\"}');"
    " UPDATE mlops.experiments SET status = 'running' WHERE name = 'mini-on-classify';"
    " UPDATE mlops.experiments SET status = 'concluded' WHERE name = 'mini-on-classify'"
)
ROWS = [
    # Outside the 7-day window: would make gpt-4o-mini fail everywhere if it were counted.
    "INSERT INTO mlops.model_performance (function_name, model, latency_ms, cost_usd, status,"
    " created_at) SELECT 'summarize', 'gpt-4o-mini', 1, 1, 'error', now() - interval '10 days'"
    " FROM generate_series(1, 500)",
    # A few unpriced rows (no price for the model): cost unknown, never $0.
    "INSERT INTO mlops.model_performance (function_name, model, latency_ms, prompt_tokens)"
    " SELECT 'summarize', 'in-house', 1, 200 FROM generate_series(1, 5)",
    # rag: 210 prompts of 2,000 tokens, 70 distinct, none cached, all within minutes:
    # 140 repeats x 2,000 tokens x ($2.50 - $1.25)/M x 30/7 = $1.50/month.
    "INSERT INTO mlops.model_performance (function_name, model, latency_ms, prompt_tokens,"
    " cost_usd, metadata, created_at)"
    " SELECT 'rag', 'gpt-4o', 1, 2000, 0.005, jsonb_build_object('prompt_hash', 'h' || g % 70),"
    "        now() - g * interval '1 second' FROM generate_series(1, 210) g",
    # chat: 286 prompts of 500 tokens and 14 of 10,500: p50 = p90 = p95 = 500, bound 1,000;
    # 14 x 10,000 tokens x $2.50/M x 30/7 = $1.50/month.
    "INSERT INTO mlops.model_performance (function_name, model, latency_ms, prompt_tokens,"
    " cost_usd, created_at)"
    " SELECT 'chat', 'gpt-4o', 1, CASE WHEN g <= 14 THEN 10500 ELSE 500 END, 0.001,"
    "        now() - g * interval '1 minute' FROM generate_series(1, 300) g",
    # answer: two variants of one model, 1 % errors each; treatment costs $0.0014 less per
    # request: 990 successes x $0.0014 x 1000/990 x 30/7 = $6.00/month.
    "INSERT INTO mlops.model_performance (function_name, model, variant, latency_ms,"
    " prompt_tokens, cost_usd, status, created_at)"
    " SELECT 'answer', 'gpt-4o-mini', v.variant, 1, 300, v.cost,"
    "        CASE WHEN g % 100 = 0 THEN 'error' ELSE 'success' END,"
    "        now() - g * interval '1 minute'"
    " FROM generate_series(1, 1000) g,"
    "      (VALUES ('control', 0.0021), ('treatment', 0.0007)) AS v(variant, cost)",
]


def seed(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(PRICES)
        conn.execute(TWO_MODELS, {"fn": "summarize"})
        conn.execute(TWO_MODELS, {"fn": "classify"})  # the same, but an experiment says no
        conn.execute(WORSE_MINI)
        for sql in ROWS:
            conn.execute(sql)


def test_recommendations_with_exact_savings(db_url: str) -> None:
    seed(db_url)
    with psycopg.connect(db_url) as conn:
        recs = recommend(conn, 7)
        assert [(r.function_name, r.kind, r.estimated_monthly_savings_usd) for r in recs] == [
            ("summarize", "cheaper_model", 24.0),
            ("answer", "variant_cost_per_success", 6.0),
            ("chat", "prompt_length", 1.5),
            ("rag", "prompt_caching", 1.5),
        ]
        s = recs[0]
        assert s.tenant_id == "default"
        assert (s.evidence["current_model"], s.evidence["candidate_model"]) == (
            "gpt-4o", "gpt-4o-mini")
        assert s.evidence["current_requests"] == 1000
        assert s.evidence["current_error_rate"] == pytest.approx(0.01)
        assert s.message.startswith("fn summarize: gpt-4o-mini costs $0.0004/request vs $0.006"
                                    " for gpt-4o with error rate 1.0 % vs 1.0 % and confidence")
        assert s.message.endswith("saves ≈ $24.00/month")
        chat = recs[2]
        assert (chat.evidence["outlier_requests"], chat.evidence["trimmable_tokens"]) == (
            14, 140_000)
        assert chat.evidence["outlier_bound_tokens"] == 1000.0
        rag = recs[3]
        assert (rag.evidence["hashed_requests"], rag.evidence["repeat_requests"],
                rag.evidence["cacheable_tokens"]) == (210, 140, 280_000)

        # classify is held back only by the experiment: without its verdict it qualifies.
        conn.execute("UPDATE mlops.experiments"
                     " SET results = '{\"decision\": \"treatment_better\"}'")
        conn.commit()
        again = recommend(conn, 7)
        assert [(r.function_name, r.estimated_monthly_savings_usd) for r in again
                if r.kind == "cheaper_model"] == [("classify", 24.0), ("summarize", 24.0)]

        # Inside a transaction of the caller's own, the same snapshot logic holds.
        conn.execute("SELECT 1")
        assert recommend(conn, 7) == again


def test_snapshot_levels_and_prices(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        assert recommend(conn, 7) == []  # an empty log: no rows, no error
    seed(db_url)
    with psycopg.connect(db_url) as conn:
        snap = load_snapshot(conn, 7)
    fn = {(u.function_name, u.model, u.variant): u for u in snap.usage}
    whole = fn[("summarize", None, None)]
    assert whole.requests == 2005  # the 500 old rows are outside the window
    assert fn[("summarize", "in-house", None)].priced_requests == 0  # unpriced, not $0
    assert fn[("summarize", "in-house", None)].cost_per_request is None
    assert fn[("answer", None, "treatment")].cost_usd == pytest.approx(0.7)
    assert fn[("summarize", "gpt-4o", "control")].errors == 10
    assert snap.prices[("default", "gpt-4o")].cached_input_usd_per_mtok == 1.25
    assert ("default", "in-house") not in snap.prices
    assert [e.name for e in snap.experiments] == ["mini-on-classify"]


def test_monitor_api_and_exports_parse_back(db_url: str) -> None:
    seed(db_url)
    monitor = CostMonitor(db_url)
    recs = asyncio.run(monitor.recommendations(days=7))
    assert recs == monitor.recommendations_sync(days=7)
    assert len(recs) == 4

    as_json = json.loads(render_recommendations(recs, "json"))
    assert [r["estimated_monthly_savings_usd"] for r in as_json] == [24.0, 6.0, 1.5, 1.5]
    assert as_json[0]["evidence"]["candidate_model"] == "gpt-4o-mini"

    rows = list(csv.DictReader(io.StringIO(render_recommendations(recs, "csv"))))
    assert [(r["function_name"], r["kind"], float(r["estimated_monthly_savings_usd"]))
            for r in rows] == [(r.function_name, r.kind, r.estimated_monthly_savings_usd)
                               for r in recs]
    assert json.loads(rows[3]["evidence"])["repeat_requests"] == 140
    assert rows[0]["message"] == recs[0].message

    table = render_recommendations(recs, "table")
    assert "$24.00" in table and "default/summarize" in table

    # Together with the analysis (empty here: no processor has rolled costs up yet).
    with psycopg.connect(db_url) as conn:
        costs = analyze(conn, 7)
    report = json.loads(render_report(costs, recs, "json"))
    assert report["functions"] == [] and len(report["recommendations"]) == 4
    joined = list(csv.DictReader(io.StringIO(render_report(costs, recs, "csv"))))
    assert [r["kind"] for r in joined] == [r.kind for r in recs]
    assert joined[0]["total_cost"] == ""
