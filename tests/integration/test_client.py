"""The buffered Python client against a real Postgres, including an outage."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest

from stream_mlops.client import RequestLogger
from stream_mlops.dev.embedded import EmbeddedPostgres
from tests.conftest import new_database


def fetch(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT function_name, model, status, error_type, prompt_tokens, cached_tokens,"
            " completion_tokens, cost_source, tenant_id, latency_ms FROM mlops.model_performance"
            " ORDER BY id").fetchall()


def test_logged_rows_are_written_in_batches(db_url: str) -> None:
    lg = RequestLogger(db_url, tenant_id="acme", batch_size=100, flush_interval=0.05)
    for i in range(250):
        lg.log(function_name="f", model="gpt-4o-mini", latency_ms=float(i), prompt_tokens=10,
               metadata={"i": i, "user": "u\"1"} if i == 7 else None,
               cost_usd=Decimal("0.000000000001") if i == 8 else None)
    assert lg.flush(10)
    lg.close()
    with psycopg.connect(db_url) as conn:
        meta = conn.execute("SELECT metadata, cost_usd, cost_source FROM mlops.model_performance"
                            " WHERE latency_ms IN (0, 7, 8) ORDER BY latency_ms").fetchall()
    assert meta[0][0] == {} and meta[1][0] == {"i": 7, "user": 'u"1'}
    assert (meta[2][1], meta[2][2]) == (Decimal("0.000000000001"), "caller")
    rows = fetch(db_url)
    assert len(rows) == 250 and {r[8] for r in rows} == {"acme"}
    assert {r[7] for r in rows} == {"price_table", "caller"}  # priced by the trigger
    assert (lg.stats.logged, lg.stats.written, lg.stats.dropped) == (250, 250, 0)


def test_track_records_usage_errors_and_reraises(db_url: str) -> None:
    lg = RequestLogger(db_url, flush_interval=0.05)
    with lg.track("summarize", "gpt-4o-mini", variant="treatment") as call:
        time.sleep(0.01)
        call.response = SimpleNamespace(usage=SimpleNamespace(
            prompt_tokens=500, completion_tokens=40,
            prompt_tokens_details=SimpleNamespace(cached_tokens=100)))
        call.set(confidence=0.8)
    with pytest.raises(TimeoutError), lg.track("summarize", "gpt-4o-mini"):
        raise TimeoutError("upstream took too long")
    with lg.track("summarize", "gpt-4o-mini") as call:
        call.set(confidence=7)  # a bad value: not logged, counted, and the call goes on
    assert lg.flush(10)
    lg.close()
    rows = fetch(db_url)
    assert rows[0][:7] == ("summarize", "gpt-4o-mini", "success", None, 500, 100, 40)
    assert rows[0][9] >= 10
    assert rows[1][2:4] == ("error", "TimeoutError")
    assert len(rows) == 2 and lg.stats.rejected == 1


def test_decorator_for_sync_and_async_functions(db_url: str) -> None:
    lg = RequestLogger(db_url, flush_interval=0.05)

    @lg.traced("classify", "claude-3-5-haiku")
    def classify(text: str) -> dict[str, Any]:
        return {"label": text, "usage": {"input_tokens": 10, "output_tokens": 2,
                                         "cache_read_input_tokens": 90}}

    @lg.traced("extract", "gpt-4o")
    async def extract() -> None:
        raise ValueError("bad json from the model")

    assert classify("x")["label"] == "x"
    with pytest.raises(ValueError, match="bad json"):
        asyncio.run(extract())
    assert lg.flush(10)
    lg.close()
    rows = fetch(db_url)
    assert rows[0][:7] == ("classify", "claude-3-5-haiku", "success", None, 100, 90, 2)
    assert rows[1][:4] == ("extract", "gpt-4o", "error", "ValueError")


def test_rows_refused_by_the_database_do_not_sink_the_batch(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as su:
        role = "client_writer_" + db_url.rsplit("_", 1)[1]
        su.execute(f"CREATE ROLE {role} LOGIN IN ROLE mlops_writer")
        su.execute("INSERT INTO mlops.tenant_roles VALUES (%s, 'a')", (role,))
    lg = RequestLogger(db_url.replace("postgres@", f"{role}@"), tenant_id="a",
                       flush_interval=0.05)
    for i in range(10):
        lg.log(function_name="f", model="m", latency_ms=1.0,
               tenant_id="b" if i == 3 else "a")  # tenant b is not this role's
    assert lg.flush(10)
    lg.close()
    assert len(fetch(db_url)) == 9
    assert (lg.stats.written, lg.stats.rejected) == (9, 1)
    assert "row-level security" in lg.stats.last_error


def test_outage_keeps_rows_within_the_bound_and_counts_drops(own_pg: EmbeddedPostgres) -> None:
    url = new_database(own_pg)
    lg = RequestLogger(url, max_buffer=500, batch_size=100, flush_interval=0.05,
                       connect_timeout=1)
    lg.log(function_name="before", model="m", latency_ms=1.0)
    assert lg.flush(10)
    own_pg.stop("immediate")
    started = time.perf_counter()
    for i in range(700):
        lg.log(function_name="during", model="m", latency_ms=float(i))
    spent = time.perf_counter() - started
    assert spent < 0.5, f"logging blocked the caller for {spent:.2f} s"
    time.sleep(0.5)
    assert lg.stats.dropped == 200  # 700 into a buffer of 500: the oldest 200 go
    own_pg.start()
    assert lg.flush(30), lg.stats
    lg.close()
    rows = fetch(url)
    during = [r[9] for r in rows if r[0] == "during"]
    assert len(rows) == 501 and during == [float(i) for i in range(200, 700)]
    assert (lg.stats.logged, lg.stats.written, lg.stats.dropped) == (701, 501, 200)
    assert lg.stats.failed_flushes >= 1
