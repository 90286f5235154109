"""The maintained price source (genai-prices) through the database: every (model, usage)
priced by the insert trigger as genai-prices itself prices it, names as callers send them,
tiers, 1-hour cache writes, dated versions; sync keeps what people imported."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import psycopg
import pytest

from stream_mlops.costs.price_source import DEFAULT_PROVIDERS, load
from stream_mlops.costs.price_store import (
    import_prices,
    price_aliases,
    price_book,
    sync_prices,
)
from stream_mlops.costs.pricing import (
    Price,
    PriceMapError,
    model_key,
    parse_price_map,
    undated_model_key,
)
from tests.integration.test_cli import assert_one_line_error, cli

PICO = Decimal("0.000000000001")


def _names(model_id: str, rng: random.Random) -> list[str]:
    """How callers name a model: as listed, with a provider prefix, upper case, dated.
    (Ids that carry a provider of their own, ``perplexity/glm-5.3``, only as listed: the
    prefix is what tells them from the maker's model of that name.)"""
    if "/" in model_id:
        return [model_id]
    return [model_id, f"openrouter/{model_id}", model_id.upper(),
            f"{model_id}-20{rng.randint(24, 26)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"]


def _cases(n: int) -> list[tuple[str, str, dict[str, int], datetime]]:
    """(provider, name, usage, time): every model of the default providers under the
    names genai-prices itself recognises, with usage across cache reads, 5-minute and
    1-hour writes and long prompts, at times across the dated price changes."""
    rng = random.Random(17)
    source = load()
    provider_of = {p.model: p.provider for p in source.prices}
    out = []
    for model, provider in sorted(provider_of.items()):
        for name in _names(model, rng):
            try:  # only names genai-prices matches to this very model count
                found = genai_prices.calc_price(genai_prices.Usage(input_tokens=1), name,
                                                provider_id=provider).model.id
            except LookupError:
                continue
            if found != model:
                continue
            prompt = rng.choice([rng.randint(1, 5000), rng.randint(100_001, 300_000)])
            cached = rng.randint(0, prompt // 2) if rng.random() < 0.6 else 0
            write = rng.randint(0, (prompt - cached) // 2) if rng.random() < 0.5 else 0
            hour = rng.randint(0, write) if rng.random() < 0.5 else 0
            usage = {"prompt": prompt, "cached": cached, "write": write, "hour": hour,
                     "completion": rng.randint(0, 4000)}
            at = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=rng.randint(0, 1060),
                                                              seconds=rng.randint(0, 86399))
            out.append((provider, name, usage, at))
    rng.shuffle(out)
    return out[:n]


def test_every_model_prices_as_genai_prices_does_to_the_pico_dollar(db_url: str) -> None:
    cases = _cases(600)
    assert len(cases) >= 200
    expected = []
    for provider, name, u, at in cases:
        usage = genai_prices.Usage(
            input_tokens=u["prompt"], cache_read_tokens=u["cached"],
            cache_write_tokens=u["write"], cache_write_1h_tokens=u["hour"],
            output_tokens=u["completion"])
        price = genai_prices.calc_price(usage, name, provider_id=provider,
                                        genai_request_timestamp=at)
        expected.append(price.total_price.quantize(PICO))
    with psycopg.connect(db_url, autocommit=True) as conn:
        for _, name, u, at in cases:
            conn.execute(
                "SELECT mlops.log_request(function_name => 'f', model => %s, latency_ms => 1,"
                " prompt_tokens => %s, cached_tokens => %s, cache_write_tokens => %s,"
                " cache_write_1h_tokens => %s, completion_tokens => %s, created_at => %s)",
                (name, u["prompt"], u["cached"], u["write"], u["hour"], u["completion"], at))
        got = conn.execute("SELECT model, cost_usd, cost_source FROM mlops.model_performance"
                           " ORDER BY id").fetchall()
        book = price_book(conn)
    wrong = [(c[1], c[2], c[3].date(), g[1], e) for c, g, e in zip(cases, got, expected,
                                                                   strict=True)
             if g[1] != e or g[2] != "price_table"]
    assert wrong == [], "\n".join(map(str, wrong))
    # The row keeps the name the caller sent.
    assert [g[0] for g in got] == [c[1] for c in cases]
    # The processor's price book (caller-sent costs are checked with it) agrees too.
    import numpy as np
    pico = book.cost_pico(
        [c[1] for c in cases], ["default"] * len(cases),
        np.array([c[3].timestamp() for c in cases]),
        prompt=np.array([c[2]["prompt"] for c in cases]),
        completion=np.array([c[2]["completion"] for c in cases]),
        cached=np.array([c[2]["cached"] for c in cases]),
        cache_write=np.array([c[2]["write"] for c in cases]),
        cache_write_1h=np.array([c[2]["hour"] for c in cases]))
    assert pico.tolist() == [int(e / PICO) for e in expected]


CORPUS = ["gpt-4o", "GPT-4o-2024-08-06", "openai/gpt-4o", "openrouter/anthropic/claude-x",
          "models/gemini-1.5-pro-002", "claude-sonnet-4-5@20250929", "o3", "gpt-3.5-turbo-0125",
          "text-embedding-ada-002", "m-2024-1-1", "a/b/c-20251301", "x@y", "-001", ""]


def test_the_database_and_python_normalise_names_alike(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        got = conn.execute("SELECT n, mlops.model_key(n), mlops.undated_model_key(n)"
                           " FROM unnest(%s::text[]) n", (CORPUS,)).fetchall()
    assert got == [(n, model_key(n), undated_model_key(n)) for n in CORPUS]


def test_dated_and_prefixed_names_price_alike_and_unknown_stays_unpriced(db_url: str) -> None:
    names = ["gpt-4o", "gpt-4o-2024-08-06", "openai/gpt-4o", "gpt-4o-2031-01-01",
             "claude-sonnet-4-5-20250929", "claude-sonnet-4-5", "anthropic/claude-sonnet-4.5",
             "acme-llm-9"]
    with psycopg.connect(db_url, autocommit=True) as conn:
        for n in names:
            conn.execute("SELECT mlops.log_request(function_name => 'f', model => %s,"
                         " latency_ms => 1, prompt_tokens => 1000, completion_tokens => 100)",
                         (n,))
        got = conn.execute("SELECT model, cost_usd, cost_source FROM mlops.model_performance"
                           " ORDER BY id").fetchall()
    # gpt-4o: 1000 x 2.50 + 100 x 10; claude-sonnet-4-5: 1000 x 3 + 100 x 15 (per million).
    gpt, claude = Decimal("0.003500000000"), Decimal("0.004500000000")
    assert got == [(n, gpt, "price_table") for n in names[:4]] + [
        (n, claude, "price_table") for n in names[4:7]] + [("acme-llm-9", None, "unpriced")]


def test_long_prompts_cross_the_tier_and_one_hour_writes_cost_more(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        def cost(prompt: int, write: int = 0, hour: int = 0) -> Decimal:
            row = conn.execute(
                "SELECT mlops.request_cost('claude-sonnet-4-5', 'default', now(), %s, 0, 0,"
                " %s, %s)", (prompt, write, hour)).fetchone()
            assert row is not None
            return Decimal(row[0])
        # $3 per million input up to 200k tokens; past it every token at $6.
        assert cost(200_000) == Decimal("0.6")
        assert cost(200_001) == Decimal("1.200006")
        # 1000 written: $3.75 per million for 5 minutes, $6 for an hour.
        assert cost(1000, 1000) == Decimal("0.00375")
        assert cost(1000, 1000, 1000) == Decimal("0.006")


def test_sync_is_idempotent_and_keeps_what_people_imported(db_url: str) -> None:
    own = Price("gpt-4o", "openai", Decimal(2), Decimal(8), effective_from=0.0,
                source="our contract")
    tenant = Price("gpt-4o", "openai", Decimal(1), Decimal(4), tenant_id="acme",
                   effective_from=0.0, source="acme's deal")
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert sync_prices(conn).added == []  # migrate synced already
        assert len(import_prices(conn, [own, tenant])) == 2
        assert sync_prices(conn).added == []
        rows = conn.execute(
            "SELECT tenant_id, input_usd_per_mtok, source, synced FROM mlops.model_prices"
            " WHERE model = 'gpt-4o' ORDER BY tenant_id, effective_from").fetchall()
        assert rows == [("acme", Decimal(1), "acme's deal", False),
                        (None, Decimal(2), "our contract", False),
                        (None, Decimal("2.5"), f"genai-prices {genai_prices.__version__}", True)]
        # Imported prices win over the source's where both are in force, even an older one.
        for tenant_id in ("acme", "other"):
            conn.execute("SELECT mlops.log_request(function_name => 'f', model => %s,"
                         " latency_ms => 1, prompt_tokens => 1000000, tenant_id => %s)",
                         ("gpt-4o-2024-08-06", tenant_id))
        costs = conn.execute("SELECT tenant_id, cost_usd FROM mlops.model_performance"
                             " ORDER BY tenant_id").fetchall()
    assert costs == [("acme", Decimal(1)), ("other", Decimal(2))]


def test_a_name_that_is_another_model_after_normalisation_is_refused(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        with pytest.raises(PriceMapError, match="'OpenAI/GPT-4o' and 'gpt-4o' are one model"):
            import_prices(conn, [Price("OpenAI/GPT-4o", "openai", Decimal(1), Decimal(2))])
        assert not [a for a in price_aliases(conn) if a.model == "OpenAI/GPT-4o"]
    with pytest.raises(PriceMapError, match="'GPT-4o' and 'gpt-4o' are one model"):
        parse_price_map({"models": [
            {"model": "gpt-4o", "provider": "p", "input_usd_per_mtok": 1,
             "output_usd_per_mtok": 1},
            {"model": "GPT-4o", "provider": "p", "input_usd_per_mtok": 2,
             "output_usd_per_mtok": 2}]}, effective_from=0.0, source="s")


@pytest.mark.parametrize(("entry", "message"), [
    ({"input_usd_per_mtok": -1}, "expected a finite number >= 0, got -1"),
    ({"input_usd_per_mtok": "NaN"}, "expected a finite number >= 0"),
    ({"output_usd_per_mtok": 5e6}, "not a plausible price"),
    ({"cache_write_1h_usd_per_mtok": -0.5}, "cache_write_1h_usd_per_mtok: expected a finite"),
    ({"above_input_tokens": 1.5}, "above_input_tokens: expected a whole number"),
])
def test_absurd_prices_are_refused_with_the_field(entry: dict[str, Any], message: str) -> None:
    base = {"model": "m", "provider": "p", "input_usd_per_mtok": 1, "output_usd_per_mtok": 1}
    with pytest.raises(PriceMapError, match=re.escape(message)):
        parse_price_map({"models": [{**base, **entry}]}, effective_from=0.0, source="s")


def test_a_tier_needs_its_base_price() -> None:
    with pytest.raises(PriceMapError, match="needs the base price of m"):
        parse_price_map({"models": [{"model": "m", "provider": "p", "input_usd_per_mtok": 1,
                                     "output_usd_per_mtok": 1,
                                     "above_input_tokens": 200000}]},
                        effective_from=0.0, source="s")


def test_usage_the_client_could_not_read_is_unpriced_not_free(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SELECT mlops.log_request(function_name => 'f', model => 'gpt-4o',"
                     " latency_ms => 1, metadata => %s::jsonb)",
                     ('{"usage_error": "usage.prompt_tokens is missing"}',))
        row = conn.execute("SELECT cost_usd, cost_source FROM mlops.model_performance"
                           ).fetchone()
    assert row == (None, "unpriced")


def test_prices_sync_and_list_name_the_source_and_date(db_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": db_url}
    out = cli("prices", "sync", env=env)
    assert out.returncode == 0, out.stderr
    version = genai_prices.__version__
    assert f"genai-prices {version}: " in out.stdout
    assert "0 price row(s) added" in out.stdout  # migrate synced already
    assert "prices by time of day: deepseek/" in out.stdout
    listed = cli("prices", "list", "--model", "gpt-4o-2024-08-06", env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[1].split()[:3] == ["gpt-4o", "*", "2000-01-01"]
    assert lines[1].endswith(f"genai-prices {version}")
    assert_one_line_error(cli("prices", "sync", "--provider", "nope", env=env),
                          "unknown provider(s) nope", "openai")
    assert_one_line_error(cli("prices", "list", "--model", "acme-llm-9", env=env),
                          "acme-llm-9: no price and no alias")


def test_the_default_providers_cover_the_families_callers_use() -> None:
    models = {p.model for p in load().prices}
    for family in ("gpt-4o", "gpt-4.1", "o3", "o4-mini", "gpt-5", "claude-sonnet-4-5",
                   "claude-haiku-4-5", "claude-opus-4-1", "gemini-2.5-pro", "gemini-2.5-flash",
                   "mistral-large", "grok-4", "command-r-plus"):
        assert any(m == family or m.startswith(family) for m in models), family
    assert set(DEFAULT_PROVIDERS) <= {p.provider for p in load().prices} | {"deepseek"}
