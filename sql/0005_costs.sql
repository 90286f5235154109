-- Hourly cost roll-ups, written by the processor inside its per-batch statement (so they
-- advance with the cursor, exactly once).
SET LOCAL ROLE mlops_owner;

CREATE FUNCTION mlops.add_hourly_costs(
    tenants text[], functions text[], models text[], hours bigint[], requests bigint[],
    prompt bigint[], completion bigint[], cached bigint[], cost_pico numeric[]
) RETURNS integer
LANGUAGE sql
AS $$
    WITH added AS (
        INSERT INTO mlops.cost_tracking AS c (
            tenant_id, function_name, model, period, period_start, request_count,
            prompt_tokens, completion_tokens, cached_tokens, cost_usd, updated_at)
        SELECT t.tenant, t.fn, t.model, 'hour', to_timestamp(t.hour * 3600), t.n, t.p, t.c,
               t.k, t.cost / 1000000000000, now()
        FROM unnest(tenants, functions, models, hours, requests, prompt, completion, cached,
                    cost_pico) AS t(tenant, fn, model, hour, n, p, c, k, cost)
        ON CONFLICT (tenant_id, function_name, model, period, period_start) DO UPDATE SET
            request_count = c.request_count + EXCLUDED.request_count,
            prompt_tokens = c.prompt_tokens + EXCLUDED.prompt_tokens,
            completion_tokens = c.completion_tokens + EXCLUDED.completion_tokens,
            cached_tokens = c.cached_tokens + EXCLUDED.cached_tokens,
            cost_usd = c.cost_usd + EXCLUDED.cost_usd,
            updated_at = now()
        RETURNING 1
    )
    SELECT count(*)::integer FROM added
$$;
REVOKE ALL ON FUNCTION mlops.add_hourly_costs(text[], text[], text[], bigint[], bigint[],
    bigint[], bigint[], bigint[], numeric[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mlops.add_hourly_costs(text[], text[], text[], bigint[], bigint[],
    bigint[], bigint[], bigint[], numeric[]) TO mlops_processor;
