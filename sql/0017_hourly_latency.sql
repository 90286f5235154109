-- Hourly latency in the cost roll-ups: the drift monitor's hour-of-day profiles (latency
-- relative to its hour, so a daily cycle is not drift) and its volume baselines are
-- rebuilt from them after a restart instead of starting a day blind.
--
-- NULL: not known (hours rolled up before this migration, and the hour in progress while
-- it ran); the processor leaves such hours out of a profile.
SET LOCAL ROLE mlops_owner;

ALTER TABLE mlops.cost_tracking ADD COLUMN latency_ms_sum double precision;

DROP FUNCTION mlops.add_hourly_costs(text[], text[], text[], bigint[], bigint[], bigint[],
    bigint[], bigint[], numeric[]);

CREATE FUNCTION mlops.add_hourly_costs(
    tenants text[], functions text[], models text[], hours bigint[], requests bigint[],
    prompt bigint[], completion bigint[], cached bigint[], cost_pico numeric[],
    latency_ms double precision[]
) RETURNS integer
LANGUAGE sql
AS $$
    WITH added AS (
        INSERT INTO mlops.cost_tracking AS c (
            tenant_id, function_name, model, period, period_start, request_count,
            prompt_tokens, completion_tokens, cached_tokens, cost_usd, latency_ms_sum,
            updated_at)
        SELECT t.tenant, t.fn, t.model, 'hour', to_timestamp(t.hour * 3600), t.n, t.p, t.c,
               t.k, t.cost / 1000000000000, t.latency, now()
        FROM unnest(tenants, functions, models, hours, requests, prompt, completion, cached,
                    cost_pico, latency_ms) AS t(tenant, fn, model, hour, n, p, c, k, cost,
                                                latency)
        ON CONFLICT (tenant_id, function_name, model, period, period_start) DO UPDATE SET
            request_count = c.request_count + EXCLUDED.request_count,
            prompt_tokens = c.prompt_tokens + EXCLUDED.prompt_tokens,
            completion_tokens = c.completion_tokens + EXCLUDED.completion_tokens,
            cached_tokens = c.cached_tokens + EXCLUDED.cached_tokens,
            cost_usd = c.cost_usd + EXCLUDED.cost_usd,
            latency_ms_sum = c.latency_ms_sum + EXCLUDED.latency_ms_sum,
            updated_at = now()
        RETURNING 1
    )
    SELECT count(*)::integer FROM added
$$;
REVOKE ALL ON FUNCTION mlops.add_hourly_costs(text[], text[], text[], bigint[], bigint[],
    bigint[], bigint[], bigint[], numeric[], double precision[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mlops.add_hourly_costs(text[], text[], text[], bigint[], bigint[],
    bigint[], bigint[], bigint[], numeric[], double precision[]) TO mlops_processor;
