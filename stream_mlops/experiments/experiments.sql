-- Experiments: configuration, lifecycle and live results (stream_mlops/db/experiments.py).

-- name: create_experiment
INSERT INTO mlops.experiments (tenant_id, name, function_name, variants, primary_metric,
                               guardrails, alpha, min_effect, min_samples, auto_stop,
                               description)
VALUES (%(tenant_id)s, %(name)s, %(function_name)s, %(variants)s::jsonb,
        %(primary_metric)s, %(guardrails)s, %(alpha)s, %(min_effect)s, %(min_samples)s,
        %(auto_stop)s, %(description)s)
RETURNING id;

-- name: set_experiment_status
UPDATE mlops.experiments SET status = %(status)s
WHERE tenant_id = %(tenant_id)s AND name = %(name)s
RETURNING id, status;

-- name: get_experiment
SELECT id, tenant_id, name, function_name, status, variants, primary_metric, guardrails,
       alpha, min_effect, min_samples, seed, auto_stop, decision, results, description,
       created_at, started_at, stopped_at, concluded_at
FROM mlops.experiments WHERE tenant_id = %(tenant_id)s AND name = %(name)s;

-- name: list_experiments
SELECT id, tenant_id, name, function_name, status, variants, primary_metric, guardrails,
       alpha, min_effect, min_samples, seed, auto_stop, decision, results, description,
       created_at, started_at, stopped_at, concluded_at
FROM mlops.experiments ORDER BY created_at DESC;

-- What the processor follows: every experiment that is running (or was, to keep its
-- numbers exported until it is concluded).
-- name: live_experiments
SELECT id::text, tenant_id, name, function_name, status, variants, primary_metric,
       guardrails, alpha, min_effect, min_samples, auto_stop, results
FROM mlops.experiments WHERE status IN ('running', 'stopped');

-- Results only while the experiment still runs: a stop by hand wins over a late write.
-- name: write_experiment_results
UPDATE mlops.experiments
SET results = %(results)s::jsonb, decision = %(decision)s, updated_at = now(),
    status = CASE WHEN %(conclude)s THEN 'concluded' ELSE status END
WHERE id = %(id)s::uuid AND status = 'running';

-- name: experiment_rows
SELECT variant, latency_ms, status = 'error', coalesce(confidence, -1),
       coalesce((cost_usd * 1000000000000)::bigint, -1)
FROM mlops.model_performance
WHERE experiment_id = %(id)s::uuid
  AND (xid, id) > (%(from_xid)s::text::xid8, %(from_id)s::bigint)
  AND (xid, id) <= (%(xid)s::text::xid8, %(last_id)s::bigint)
ORDER BY xid, id;
