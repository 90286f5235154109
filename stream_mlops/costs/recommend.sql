-- Named queries of the cost recommendations (stream_mlops.cost_report.recommend). They read
-- the request log itself (not the hourly roll-ups): the rules need error counts,
-- confidence, per-variant costs and prompt-length percentiles. All run in one transaction,
-- so now() (the end of the window) is the same in each.

-- Totals of the last N days at four levels: (model, variant), (model), (variant) and the
-- whole function; level = GROUPING(model, variant): 0, 1, 2, 3 respectively. Costs are
-- summed over priced rows only (an unpriced row's cost is unknown, not zero).
-- name: rec_usage
SELECT tenant_id, function_name, model, variant, GROUPING(model, variant),
       count(*),
       count(*) FILTER (WHERE status = 'error'),
       count(cost_usd),
       coalesce(sum(cost_usd), 0),
       count(confidence),
       coalesce(sum(confidence), 0),
       coalesce(sum(confidence * confidence), 0),
       sum(prompt_tokens::bigint),
       sum(cached_tokens::bigint),
       percentile_disc(ARRAY[0.5, 0.9, 0.95, 0.99]) WITHIN GROUP (ORDER BY prompt_tokens)
FROM mlops.model_performance
WHERE created_at >= now() - make_interval(days => %(days)s)
GROUP BY GROUPING SETS ((tenant_id, function_name, model, variant),
                        (tenant_id, function_name, model),
                        (tenant_id, function_name, variant),
                        (tenant_id, function_name))
ORDER BY 1, 2, 3, 4;

-- Per (tenant, function, model): requests whose prompt is above the function's outlier
-- bound, and their uncached tokens above the function's p95 (bounds computed in Python).
-- name: rec_prompt_outliers
SELECT m.tenant_id, m.function_name, m.model, count(*),
       sum(least(m.prompt_tokens - b.p95, m.prompt_tokens - m.cached_tokens))
FROM unnest(%(tenant_id)s::text[], %(function_name)s::text[], %(bound)s::float8[],
            %(p95)s::float8[]) AS b(tenant_id, function_name, bound, p95)
JOIN mlops.model_performance m
  ON m.tenant_id = b.tenant_id AND m.function_name = b.function_name
WHERE m.created_at >= now() - make_interval(days => %(days)s)
  AND m.prompt_tokens > b.bound
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;

-- Per (tenant, function, model), over rows carrying metadata.prompt_hash: how many repeat a
-- prompt seen for the same model within the cache TTL, the uncached tokens of such long
-- repeats (what caching could bill at the cached price) and of the other long rows (what
-- a cache would have to write).
-- name: rec_prompt_repeats
WITH hashed AS (
    SELECT tenant_id, function_name, model, prompt_tokens, cached_tokens,
           prompt_tokens >= %(min_tokens)s AS long_prompt,
           coalesce(created_at - lag(created_at) OVER (
               PARTITION BY tenant_id, function_name, model, metadata->>'prompt_hash'
               ORDER BY created_at, id) <= make_interval(secs => %(ttl_seconds)s), false)
               AS repeat
    FROM mlops.model_performance
    WHERE created_at >= now() - make_interval(days => %(days)s)
      AND metadata->>'prompt_hash' <> ''  -- absent, JSON null and '' carry no hash
)
SELECT tenant_id, function_name, model, count(*),
       count(*) FILTER (WHERE repeat),
       coalesce(sum(prompt_tokens - cached_tokens) FILTER (WHERE repeat AND long_prompt), 0),
       coalesce(sum(prompt_tokens - cached_tokens) FILTER (WHERE NOT repeat AND long_prompt), 0)
FROM hashed
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;

-- Price in force now for each (tenant, model): a tenant's own row first, then the newest
-- version (the same choice as the pricing trigger).
-- name: rec_current_prices
SELECT k.tenant_id, k.model, p.input_usd_per_mtok, p.cached_input_usd_per_mtok,
       p.cache_write_usd_per_mtok
FROM unnest(%(tenant_id)s::text[], %(model)s::text[]) AS k(tenant_id, model)
CROSS JOIN LATERAL mlops.request_price(k.model, k.tenant_id, now(), 0) p
WHERE p.model IS NOT NULL;

-- Experiments with a decision recorded in their results.
-- name: rec_experiment_decisions
SELECT tenant_id, function_name, name, variants, results
FROM mlops.experiments
WHERE results ? 'decision'
ORDER BY tenant_id, function_name, name;
