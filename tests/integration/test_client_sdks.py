"""The Python client with today's SDK responses, and budget checks before a call, against a
real Postgres and a real processor."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg

from stream_mlops.client import RequestLogger
from tests.conftest import Roles
from tests.integration.test_consumer import drain, make_consumer
from tests.unit.test_usage_sdks import CLAUDE, EMBEDDING, GEMINI


def test_track_takes_model_provider_operation_and_usage_from_the_response(
        db_url: str) -> None:
    lg = RequestLogger(db_url, tenant_id="acme", flush_interval=0.05)
    for response in (CLAUDE, GEMINI, EMBEDDING):
        with lg.track("answer") as call:
            call.response = response
    with lg.track("answer", model="my-pinned-name") as call:  # the caller's model wins
        call.response = CLAUDE
    with lg.track("answer") as call:  # usage there but unreadable: logged, flagged
        call.response = {"model": "gpt-4o", "usage": {"prompt_tokens": -3}}
    assert lg.flush(10)
    lg.close()
    assert lg.stats.usage_errors == 1 and lg.stats.rejected == 0
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT model, provider, operation, prompt_tokens, cached_tokens,"
            " cache_write_tokens, cache_write_1h_tokens, completion_tokens, cost_usd,"
            " cost_source, metadata FROM mlops.model_performance ORDER BY id").fetchall()
    claude, gemini, embedding, pinned, broken = rows
    # claude-sonnet-4-5: 20 x 3 + 100 x 0.30 + 20 x 3.75 + 30 x 6 + 30 x 15 per million.
    assert claude == ("claude-sonnet-4-5-20250929", "anthropic", "chat", 170, 100, 50, 30, 30,
                      Decimal("0.000795000000"), "price_table", {"service_tier": "priority"})
    assert gemini[:8] == ("gemini-2.5-flash", "gcp.gemini", "generate_content", 1230, 800, 0,
                          0, 350)
    assert gemini[9] == "price_table"
    assert embedding[:3] == ("text-embedding-3-small", "openai", "embeddings")
    assert pinned[0] == "my-pinned-name" and pinned[9] == "unpriced"
    assert broken[0] == "gpt-4o" and broken[3] == 0 and broken[8:10] == (None, "unpriced")
    assert "usage.prompt_tokens must be a whole number" in broken[10]["usage_error"]


def _spend(url: str, tenant: str, function: str, usd: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO mlops.model_performance (tenant_id, function_name, model,"
                     " latency_ms, cost_usd) VALUES (%s, %s, 'm', 1, %s)", (tenant, function, usd))


def test_budget_left_and_allow_before_a_call(roles: Roles) -> None:
    su: Any
    with psycopg.connect(roles.url, autocommit=True) as su:
        su.execute("INSERT INTO mlops.thresholds (tenant_id, function_name, metric, value)"
                   " VALUES ('a', NULL, 'daily_budget_usd', 10),"
                   " ('a', 'chat', 'daily_budget_usd', 2), ('b', NULL, 'daily_budget_usd', 1),"
                   # Above the spend: only the daily budgets bind here.
                   " ('a', NULL, 'weekly_budget_usd', 100), ('a', NULL, 'monthly_budget_usd', 100)")
    _spend(roles.url, "a", "chat", "1.5")
    _spend(roles.url, "a", "search", "6")
    _spend(roles.url, "b", "chat", "0.25")
    c = make_consumer(roles.url)
    drain(c)
    c.run_jobs("config", "budgets")
    c.close()
    lg = RequestLogger(roles.pg.url_for(roles.dbname, user=roles.writer_a), tenant_id="a",
                       budget_cache_seconds=60)
    try:
        left = lg.budget_left("chat")
        day = [(b.scope, b.budget_usd, b.spent_usd, b.remaining_usd)
               for b in left if b.period == "day"]
        # The function's own budget is the tightest: $2 - $1.50; the tenant's $10 - $7.50.
        assert day == [("function", 2.0, 1.5, 0.5), ("tenant", 10.0, 7.5, 2.5)]
        assert lg.allow(0.4, "chat") and not lg.allow(0.6, "chat")
        assert lg.allow(2.4, "search") and not lg.allow(2.6, "search")
        # Tenant a's writer cannot read tenant b's budgets (row level security).
        assert lg.budget_left("chat", tenant_id="b") == []
    finally:
        lg.close()
    with roles.as_(roles.writer_b) as conn:
        rows = conn.execute("SELECT scope, period, remaining_usd FROM"
                            " mlops.budget_remaining('b', 'chat') WHERE period = 'day'"
                            ).fetchall()
    assert rows == [("tenant", "day", 0.75)]


def test_allow_answers_when_the_database_is_away() -> None:
    lg = RequestLogger("postgresql://nobody@127.0.0.1:1/none", connect_timeout=1)
    try:
        assert lg.allow(1.0, "chat") is True
        assert lg.stats.budget_unknown == 1
    finally:
        lg.close(timeout=0.1)
