-- Named queries of the cost monitor's restart state and the cost report.

-- Hourly roll-ups the cost windows are rebuilt from (columns of costs.monitor.HourlyCostRow).
-- name: recent_hourly_costs
SELECT tenant_id, function_name, model,
       (date_part('epoch', period_start) / 3600)::bigint AS hour,
       (cost_usd * 1000000000000)::numeric(38, 0)::bigint AS cost_pico,
       request_count AS requests
FROM mlops.cost_tracking
WHERE period = 'hour' AND period_start >= date_trunc('hour', now()) - interval '35 days';

-- The last hour's consumed rows per series and minute (columns of costs.monitor.MinuteCostRow).
-- name: recent_minute_costs
SELECT tenant_id || chr(31) || function_name || chr(31) || model || chr(31) || variant AS key,
       floor(date_part('epoch', created_at) / 60)::bigint AS minute,
       coalesce(sum((cost_usd * 1000000000000)::bigint), 0) AS cost_pico, count(*) AS requests
FROM mlops.model_performance
WHERE created_at >= date_trunc('minute', now()) - interval '60 minutes'
  AND mlops.is_consumed(xid, id, %(cursor_frontier)s::pg_snapshot,
                        %(cursor_window_end)s::pg_snapshot, %(cursor_xid)s::text::xid8,
                        %(cursor_id)s::bigint)
GROUP BY 1, 2;

-- Cost per function over the last N days and the N days before (from the roll-ups).
-- name: cost_by_function
SELECT tenant_id, function_name,
       coalesce(sum(cost_usd) FILTER (WHERE period_start >= now() - make_interval(days => %(days)s)), 0),
       coalesce(sum(request_count) FILTER (WHERE period_start >= now() - make_interval(days => %(days)s)), 0),
       coalesce(sum(cost_usd) FILTER (WHERE period_start < now() - make_interval(days => %(days)s)), 0),
       coalesce(sum(request_count) FILTER (WHERE period_start < now() - make_interval(days => %(days)s)), 0)
FROM mlops.cost_tracking
WHERE period = 'hour' AND period_start >= date_trunc('hour', now() - make_interval(days => 2 * %(days)s))
GROUP BY 1, 2
ORDER BY 3 DESC, 1, 2;

-- A batch's hourly roll-up, written in the batch's transaction (see CostTracker._hourly).
-- name: add_hourly_costs
SELECT mlops.add_hourly_costs(%(tenant)s::text[], %(function)s::text[], %(model)s::text[],
    %(hour)s::bigint[], %(requests)s::bigint[], %(prompt)s::bigint[], %(completion)s::bigint[],
    %(cached)s::bigint[], %(cost)s::numeric[], %(latency)s::float8[]);

-- Where every budget stands ({"rows": costs.monitor.CostTracker.budget_rows}); budgets no
-- longer set are dropped.
-- name: write_budget_status
WITH fresh AS (
    SELECT * FROM jsonb_to_recordset(%(status)s::jsonb -> 'rows') AS r(
        tenant_id text, function_name text, period text, period_start double precision,
        period_end double precision, budget_usd double precision, spent_usd double precision)
), gone AS (
    DELETE FROM mlops.budget_status b
    WHERE NOT EXISTS (SELECT FROM fresh f WHERE (f.tenant_id, f.function_name, f.period)
                                                = (b.tenant_id, b.function_name, b.period))
)
INSERT INTO mlops.budget_status AS b (tenant_id, function_name, period, period_start,
                                      period_end, budget_usd, spent_usd, updated_at)
SELECT tenant_id, function_name, period, to_timestamp(period_start), to_timestamp(period_end),
       budget_usd, spent_usd, now()
FROM fresh
ON CONFLICT (tenant_id, function_name, period) DO UPDATE SET
    period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end,
    budget_usd = EXCLUDED.budget_usd, spent_usd = EXCLUDED.spent_usd, updated_at = now();
