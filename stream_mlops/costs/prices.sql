-- Price versions and re-costing (see price_store.py).

-- Columns named like the fields of pricing.Price.
-- name: price_versions
SELECT model, provider, tenant_id, input_usd_per_mtok AS input, output_usd_per_mtok AS output,
       cached_input_usd_per_mtok AS cached_input, cache_write_usd_per_mtok AS cache_write,
       date_part('epoch', effective_from) AS effective_from, source,
       cache_write_1h_usd_per_mtok AS cache_write_1h, above_input_tokens,
       usd_per_krequests AS per_krequests, synced
FROM mlops.model_prices
ORDER BY model, tenant_id NULLS FIRST, effective_from, above_input_tokens;

-- name: price_aliases
SELECT alias, tenant_id, model, source FROM mlops.model_aliases ORDER BY alias, tenant_id;

-- A row with the same (model, tenant, effective_from, tier) is a correction: it is
-- replaced, except that a sync (%(sync)s) never replaces what a person imported.
-- name: upsert_price
INSERT INTO mlops.model_prices AS p (
    model, provider, tenant_id, input_usd_per_mtok, output_usd_per_mtok,
    cached_input_usd_per_mtok, cache_write_usd_per_mtok, cache_write_1h_usd_per_mtok,
    above_input_tokens, usd_per_krequests, effective_from, source, synced)
VALUES (%(model)s, %(provider)s, %(tenant_id)s, %(input)s, %(output)s, %(cached_input)s,
        %(cache_write)s, %(cache_write_1h)s, %(above_input_tokens)s, %(per_krequests)s,
        to_timestamp(%(effective_from)s), %(source)s, %(sync)s)
ON CONFLICT (model, coalesce(tenant_id, ''), effective_from, above_input_tokens) DO UPDATE SET
    provider = EXCLUDED.provider,
    input_usd_per_mtok = EXCLUDED.input_usd_per_mtok,
    output_usd_per_mtok = EXCLUDED.output_usd_per_mtok,
    cached_input_usd_per_mtok = EXCLUDED.cached_input_usd_per_mtok,
    cache_write_usd_per_mtok = EXCLUDED.cache_write_usd_per_mtok,
    cache_write_1h_usd_per_mtok = EXCLUDED.cache_write_1h_usd_per_mtok,
    usd_per_krequests = EXCLUDED.usd_per_krequests,
    source = EXCLUDED.source, synced = EXCLUDED.synced
WHERE NOT %(sync)s OR p.synced;

-- Tiers a new version of a model no longer has (the version is written whole).
-- name: drop_other_tiers
DELETE FROM mlops.model_prices
WHERE model = %(model)s AND tenant_id IS NOT DISTINCT FROM %(tenant_id)s
  AND effective_from = to_timestamp(%(effective_from)s)
  AND above_input_tokens <> ALL (%(tiers)s::integer[])
  AND synced = %(sync)s;

-- name: upsert_alias
INSERT INTO mlops.model_aliases AS a (alias, model, tenant_id, source)
VALUES (%(alias)s, %(model)s, %(tenant_id)s, %(source)s)
ON CONFLICT (alias, coalesce(tenant_id, '')) DO UPDATE SET
    model = EXCLUDED.model, source = EXCLUDED.source, created_at = now()
WHERE a.model <> EXCLUDED.model AND (NOT %(sync)s OR a.source LIKE 'genai-prices%%');

-- Every cursor is locked first: a processor's per-batch statement waits, and then fails its
-- compare-and-set on state_version and reloads the totals changed here.
-- Columns of core.monitor.Cursor (and the consumer's name).
-- name: lock_checkpoints
SELECT consumer, frontier::text AS frontier, window_end::text AS window_end,
       last_xid::text AS xid, last_id AS id
FROM mlops.consumer_checkpoints ORDER BY consumer FOR UPDATE;

-- Re-cost rows priced by the table (or unpriced) since a time; callers' own costs stay.
-- Returns, per series and hour, the change for rows consumed by the given cursor.
-- name: recompute_costs
WITH fresh AS (
    SELECT m.id, m.cost_usd AS old_cost,
           mlops.request_cost(m.model, m.tenant_id, m.created_at, m.prompt_tokens,
                              m.completion_tokens, m.cached_tokens,
                              m.cache_write_tokens, m.cache_write_1h_tokens) AS new_cost
    FROM mlops.model_performance m
    WHERE m.created_at >= %(since)s AND m.cost_source IN ('price_table', 'unpriced')
), changed AS (
    UPDATE mlops.model_performance m
    SET cost_usd = f.new_cost,
        cost_source = CASE WHEN f.new_cost IS NULL THEN 'unpriced' ELSE 'price_table' END
    FROM fresh f
    WHERE m.id = f.id AND f.new_cost IS DISTINCT FROM f.old_cost
    RETURNING m.xid, m.id, m.tenant_id, m.function_name, m.model, m.variant, m.created_at,
              f.old_cost, f.new_cost
)
SELECT tenant_id, function_name, model, variant,
       floor(date_part('epoch', created_at) / 3600)::bigint AS hour,
       mlops.is_consumed(xid, id, %(cursor_frontier)s::pg_snapshot,
                         %(cursor_window_end)s::pg_snapshot, %(cursor_xid)s::text::xid8,
                         %(cursor_id)s::bigint) AS consumed,
       count(*) AS rows_changed,
       sum(coalesce(new_cost, 0) - coalesce(old_cost, 0)) AS cost_delta,
       count(*) FILTER (WHERE old_cost IS NULL) - count(*) FILTER (WHERE new_cost IS NULL)
           AS newly_priced
FROM changed
GROUP BY 1, 2, 3, 4, 5, 6;

-- name: shift_hourly_cost
UPDATE mlops.cost_tracking
SET cost_usd = cost_usd + %(delta)s, updated_at = now()
WHERE tenant_id = %(tenant)s AND function_name = %(function)s AND model = %(model)s
  AND period = 'hour' AND period_start = to_timestamp(%(hour)s * 3600);

-- name: shift_series_cost
UPDATE mlops.series_totals
SET cost_pico_usd = cost_pico_usd + %(delta)s * 1000000000000,
    unpriced_count = unpriced_count - %(newly_priced)s, updated_at = now()
WHERE consumer = %(consumer)s AND tenant_id = %(tenant)s AND function_name = %(function)s
  AND model = %(model)s AND variant = %(variant)s;

-- name: bump_state_version
UPDATE mlops.consumer_checkpoints SET state_version = state_version + 1
WHERE consumer = %(consumer)s;
