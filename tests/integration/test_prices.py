"""Prices against a real PostgreSQL: both token conventions, import, re-costing with the
aggregates following, caller-sent costs checked against the table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import psycopg

from stream_mlops.client.logger import COLUMNS, request_row
from stream_mlops.client.usage import usage_from
from stream_mlops.costs.monitor import CostTracker
from stream_mlops.costs.price_store import import_prices, load_price_map, price_book, recompute
from tests.integration.test_cli import assert_one_line_error, cli
from tests.integration.test_consumer import drain, make_consumer, memory_totals

LOG = ("SELECT mlops.log_request(function_name => 'f', model => %s, latency_ms => 1, "
       "prompt_tokens => %s, completion_tokens => %s, cached_tokens => %s, "
       "cache_write_tokens => %s)")


def _costs(conn: psycopg.Connection[tuple[object, ...]]) -> list[object]:
    return [r[0] for r in conn.execute(
        "SELECT cost_usd FROM mlops.model_performance ORDER BY id").fetchall()]


def test_both_cached_token_conventions_cost_the_same(db_url: str) -> None:
    # The same request as OpenAI and as Anthropic report it: 1,000 input tokens of which
    # 600 read from the cache and 200 written to it, 50 output tokens.
    openai = usage_from({"usage": {"prompt_tokens": 1000, "completion_tokens": 50,
                                   "prompt_tokens_details": {"cached_tokens": 600}}})
    anthropic = usage_from({"usage": {"input_tokens": 200, "output_tokens": 50,
                                      "cache_read_input_tokens": 600,
                                      "cache_creation_input_tokens": 200}})
    assert openai is not None and anthropic is not None
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(LOG, ("gpt-4o", openai.prompt_tokens, openai.completion_tokens,
                           openai.cached_tokens, openai.cache_write_tokens))
        conn.execute(LOG, ("claude-sonnet-4", anthropic.prompt_tokens,
                           anthropic.completion_tokens, anthropic.cached_tokens,
                           anthropic.cache_write_tokens))
        gpt, claude = _costs(conn)
    # gpt-4o: 400 x 2.50 + 600 x 1.25 + 50 x 10 per million tokens.
    assert gpt == Decimal("0.002250000000")
    # claude-sonnet-4: 200 x 3 + 600 x 0.30 + 200 x 3.75 (cache write) + 50 x 15.
    assert claude == Decimal("0.002280000000")


def test_the_trigger_and_the_processor_price_alike(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        for i in range(40):
            model = ("gpt-4o-mini", "claude-3-5-haiku", "gemini-2.5-pro", "o3")[i % 4]
            conn.execute(LOG, (model, 100 + 37 * i, 3 * i, 7 * i % 50, 11 * i % 40))
        rows = conn.execute(
            "SELECT model, tenant_id, date_part('epoch', created_at), prompt_tokens,"
            " completion_tokens, cached_tokens, cache_write_tokens,"
            " (cost_usd * 1e12)::bigint FROM mlops.model_performance ORDER BY id").fetchall()
        book = price_book(conn)
        # The trigger's inline arithmetic and mlops.request_cost (used to re-cost) agree.
        differ = conn.execute(
            "SELECT count(*) FROM mlops.model_performance WHERE cost_usd IS DISTINCT FROM"
            " mlops.request_cost(model, tenant_id, created_at, prompt_tokens,"
            " completion_tokens, cached_tokens, cache_write_tokens)").fetchone()
    assert differ == (0,)
    cols = list(zip(*rows, strict=True))
    got = book.cost_pico(list(cols[0]), list(cols[1]), np.array(cols[2], float),
                         prompt=np.array(cols[3]), completion=np.array(cols[4]),
                         cached=np.array(cols[5]), cache_write=np.array(cols[6]))
    assert got.tolist() == list(cols[7])


def test_unknown_model_is_flagged_not_free(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(LOG, ("acme-llm-9", 100, 10, 0, 0))
        row = conn.execute("SELECT cost_usd, cost_source FROM mlops.model_performance"
                           ).fetchone()
    assert row == (None, "unpriced")


def test_import_is_idempotent_and_recompute_moves_the_aggregates(
        db_url: str, tmp_path: Path) -> None:
    t0 = datetime.now(UTC) - timedelta(hours=3)
    with psycopg.connect(db_url, autocommit=True) as conn:
        for h in range(3):  # rows of an unpriced model and of a mispriced one, 3 hours
            for i in range(10):
                for model in ("acme-llm-9", "gpt-4o-mini"):
                    conn.execute(
                        "INSERT INTO mlops.model_performance (function_name, model, latency_ms,"
                        " prompt_tokens, completion_tokens, created_at)"
                        " VALUES ('f', %s, 1, %s, 20, %s)",
                        (model, 1000 + i, t0 + timedelta(hours=h, minutes=i)))
    c = make_consumer(db_url)
    assert drain(c) == 60
    # A LiteLLM-style map: adds acme-llm-9 and corrects gpt-4o-mini, both from t0.
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({
        "sample_spec": {"max_tokens": "set to max"},
        "acme-llm-9": {"litellm_provider": "acme", "input_cost_per_token": 1e-06,
                       "output_cost_per_token": 2e-06},
        "gpt-4o-mini": {"litellm_provider": "openai", "input_cost_per_token": 3e-07,
                        "output_cost_per_token": 1.2e-06},
    }))
    prices = load_price_map(path, effective_from=(t0 - timedelta(minutes=1)).timestamp())
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert len(import_prices(conn, prices)) == 2
        assert import_prices(conn, prices) == []  # the same map twice changes nothing
        # Rows consumed before the correction keep their cost until re-costed.
        before = conn.execute("SELECT count(*) FROM mlops.model_performance"
                              " WHERE cost_source = 'unpriced'").fetchone()
        assert before == (30,)
        # One more unconsumed row, re-costed too: the processor reads it with its new cost.
        conn.execute("INSERT INTO mlops.model_performance (function_name, model, latency_ms,"
                     " prompt_tokens, completion_tokens) VALUES ('f', 'gpt-4o-mini', 1, 10, 1)")
        r = recompute(conn, t0 - timedelta(minutes=5))
    assert (r.rows, r.consumed_rows, r.newly_priced) == (60, 60, 30)
    # The processor's next batch fails its compare-and-set (state version) and reloads.
    try:
        c.step()
        raise AssertionError("expected a cursor conflict after re-costing")
    except Exception as exc:
        assert "re-costed" in str(exc)
    c.close()
    c = make_consumer(db_url)
    assert drain(c) == 1
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM mlops.model_performance"
                            " WHERE cost_source = 'unpriced'").fetchone() == (0,)
        # gpt-4o-mini at the corrected price: 3 x sum(1000..1009) x 0.30 + 30 x 20 x 1.20 / 1e6.
        assert conn.execute(
            "SELECT sum(cost_usd) FROM mlops.model_performance WHERE model = 'gpt-4o-mini'"
            " AND prompt_tokens >= 1000").fetchone() == (Decimal("0.009760500000"),)
        diff = conn.execute(
            "SELECT count(*) FROM (SELECT model, floor(date_part('epoch', created_at) / 3600)"
            " AS h, count(*) AS n, sum(cost_usd) AS cost FROM mlops.model_performance"
            " GROUP BY 1, 2) m FULL JOIN mlops.cost_tracking c ON (c.model,"
            " date_part('epoch', c.period_start) / 3600) = (m.model, m.h)"
            " WHERE m.n IS DISTINCT FROM c.request_count OR m.cost IS DISTINCT FROM c.cost_usd"
            ).fetchone()
        assert diff == (0,)  # hourly roll-ups equal the re-costed rows, hour by hour
        row = conn.execute("SELECT count(*), sum(cost_usd) FROM mlops.model_performance"
                           ).fetchone()
        unpriced = conn.execute("SELECT sum(unpriced_count) FROM mlops.series_totals"
                                ).fetchone()
    assert row is not None and memory_totals(c) == (row[0], row[1])
    assert unpriced == (0,)
    c.close()


def test_caller_cost_off_the_price_table_is_counted_and_alerted(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = [request_row(function_name="chat", model="gpt-4o", latency_ms=10,
                            prompt_tokens=1000, completion_tokens=100,
                            # A stale hard-coded price: $5/$15 instead of $2.50/$10.
                            cost_usd=Decimal("0.0065") if i < 8 else Decimal("0.0035"))
                for i in range(12)]
        conn.execute(
            f"INSERT INTO mlops.model_performance ({', '.join(COLUMNS)}) SELECT * FROM"
            f" jsonb_to_recordset(%s::jsonb) AS r({', '.join(_types())})",
            (json.dumps([dict(zip(COLUMNS, _jsonable(r), strict=True)) for r in rows]),))
    c = make_consumer(db_url)
    assert drain(c) == 12
    tracker = c.processor.monitor(CostTracker)
    assert tracker.mismatch[("default", "gpt-4o")][:2] == [8, 12]
    c.run_jobs("rules")  # evaluates the rules and writes alert changes
    with psycopg.connect(db_url) as conn:
        alerts = conn.execute("SELECT fingerprint, message FROM mlops.alerts"
                              " WHERE fingerprint LIKE 'cost:mismatch:%'").fetchall()
    assert len(alerts) == 1
    fingerprint, message = alerts[0]
    assert fingerprint == "cost:mismatch:gpt-4o"
    assert "8 of 12 requests to gpt-4o" in message
    assert "$0.006500 per request sent against $0.003500" in message
    c.close()
    c = make_consumer(db_url)  # a restart neither re-pages nor resolves the episode
    c.run_jobs("rules")
    with psycopg.connect(db_url) as conn:
        states = conn.execute("SELECT state FROM mlops.alerts"
                              " WHERE fingerprint = 'cost:mismatch:gpt-4o'").fetchall()
    assert states == [("firing",)]
    c.close()


def test_cli_prices_import_list_recompute_and_bad_input(db_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": db_url}
    good = tmp_path / "ours.json"
    good.write_text(json.dumps({"source": "test", "as_of": "2026-01-01", "models": [
        {"model": "acme-llm-9", "provider": "acme", "input_usd_per_mtok": 1,
         "output_usd_per_mtok": 2, "cache_write_usd_per_mtok": 1.25}]}))
    out = cli("prices", "import", str(good), env=env)
    assert out.returncode == 0, out.stderr
    assert "1 price version(s) added or corrected: acme-llm-9" in out.stdout
    again = cli("prices", "import", str(good), env=env)
    assert "0 price version(s)" in again.stdout
    listed = cli("prices", "list", "--model", "acme-llm-9", env=env)
    assert "2026-01-01 00:00" in listed.stdout and "1.25" in listed.stdout
    assert cli("prices", "recompute", "--since", "2026-01-01", env=env).returncode == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"models": [{"model": "x", "provider": "y",
                                           "input_usd_per_mtok": -1,
                                           "output_usd_per_mtok": 1}]}))
    assert_one_line_error(cli("prices", "import", str(bad), env=env),
                          "models[0].input_usd_per_mtok", ">= 0")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert_one_line_error(cli("prices", "import", str(broken), env=env), "not valid JSON")
    assert_one_line_error(cli("prices", "import", str(tmp_path / "nope.json"), env=env),
                          "cannot read")
    assert_one_line_error(cli("prices", "recompute", "--since", "yesterday", env=env),
                          "ISO date")
    assert_one_line_error(cli("prices", "recompute", "--since", "9999-12-31T23:59:59-05:00",
                              env=env), "out of the range of dates")
    # --effective-from wins over the map's as_of.
    cut = tmp_path / "cut.json"
    cut.write_text(good.read_text().replace('"input_usd_per_mtok": 1,',
                                            '"input_usd_per_mtok": 0.5,'))
    out = cli("prices", "import", str(cut), "--effective-from", "2027-06-01", env=env)
    assert "1 price version(s)" in out.stdout, out
    listed = cli("prices", "list", "--model", "acme-llm-9", env=env)
    assert "2027-06-01 00:00" in listed.stdout


def _map(tmp_path: Path, name: str, models: object) -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"models": models}))
    return str(path)


def test_cli_price_maps_with_impossible_entries_are_refused(db_url: str,
                                                          tmp_path: Path) -> None:
    env = {"DATABASE_URL": db_url}

    def entry(**kw: object) -> dict[str, object]:
        return {"model": "m", "provider": "p", "input_usd_per_mtok": 1,
                "output_usd_per_mtok": 2} | kw

    for name, models, needle in [
        ("huge", [entry(input_usd_per_mtok=1e30)], "is not a plausible price"),
        ("tiny", [entry(output_usd_per_mtok=1e-7)], "below the price table's resolution"),
        ("list-name", [entry(model=["a"])], "needs at least model and provider (strings)"),
        ("blank", [entry(model="  ")], "needs at least model and provider"),
        ("escape", [entry(model="m\x1b[31m")], "models[0]: model must not contain control"),
        ("twice", [entry(), entry(input_usd_per_mtok=3)],
         "models[1]: m has a second price from the same date (first at models[0])"),
    ]:
        assert_one_line_error(cli("prices", "import", _map(tmp_path, name, models), env=env),
                              needle)
    latin = tmp_path / "latin1.json"
    latin.write_bytes('{"models": [{"model": "caf\u00e9"}]}'.encode("latin-1"))
    assert_one_line_error(cli("prices", "import", str(latin), env=env), "not UTF-8 text")


def _types() -> list[str]:
    kinds = {"created_at": "timestamptz", "latency_ms": "float8", "confidence": "float8",
             "cost_usd": "numeric", "experiment_id": "uuid", "metadata": "jsonb"}
    ints = {"prompt_tokens", "completion_tokens", "cached_tokens", "query_length",
            "cache_write_tokens", "cache_write_1h_tokens"}
    return [f"{c} {'int4' if c in ints else kinds.get(c, 'text')}" for c in COLUMNS]


def _jsonable(row: tuple[object, ...]) -> list[object]:
    out = list(row)
    i = COLUMNS.index("created_at")
    out[i] = datetime.fromtimestamp(float(str(out[i])), UTC).isoformat()
    m = COLUMNS.index("metadata")
    out[m] = out[m] or {}
    return out
