-- Experiments: configuration, lifecycle and live results (experiments/store.py, monitor.py).

-- name: create_experiment
INSERT INTO mlops.experiments (tenant_id, name, function_name, variants, primary_metric,
                               guardrails, alpha, min_effect, min_samples, auto_stop,
                               description, covariate)
VALUES (%(tenant_id)s, %(name)s, %(function_name)s, %(variants)s::jsonb,
        %(primary_metric)s, %(guardrails)s, %(alpha)s, %(min_effect)s, %(min_samples)s,
        %(auto_stop)s, %(description)s, %(covariate)s)
RETURNING id;

-- name: set_experiment_status
UPDATE mlops.experiments SET status = %(status)s
WHERE tenant_id = %(tenant_id)s AND name = %(name)s
RETURNING id, status;

-- Columns of experiments.store.ExperimentRow (the fields of Experiment).
-- name: get_experiment
SELECT id, tenant_id, name, function_name, status, variants, primary_metric, guardrails,
       alpha, min_effect, min_samples, seed, auto_stop, decision, results, description,
       covariate, created_at, started_at, stopped_at, concluded_at
FROM mlops.experiments WHERE tenant_id = %(tenant_id)s AND name = %(name)s;

-- Columns of experiments.store.ExperimentRow.
-- name: list_experiments
SELECT id, tenant_id, name, function_name, status, variants, primary_metric, guardrails,
       alpha, min_effect, min_samples, seed, auto_stop, decision, results, description,
       covariate, created_at, started_at, stopped_at, concluded_at
FROM mlops.experiments ORDER BY created_at DESC;

-- What the processor follows: every experiment that is running (or was, to keep its
-- numbers exported until it is concluded).
-- Columns of experiments.monitor.LiveExperimentRow.
-- name: live_experiments
SELECT id::text AS id, tenant_id, name, function_name, status, variants, primary_metric,
       guardrails, alpha, min_effect, min_samples, auto_stop, covariate, results
FROM mlops.experiments WHERE status IN ('running', 'stopped');

-- Results only while the experiment still runs: a stop by hand wins over a late write.
-- name: write_experiment_results
UPDATE mlops.experiments
SET results = %(results)s::jsonb, decision = %(decision)s, updated_at = now(),
    status = CASE WHEN %(conclude)s THEN 'concluded' ELSE status END
WHERE id = %(id)s::uuid AND status = 'running';

-- An experiment's rows the consumer has consumed and its stored state has not counted,
-- column-wise, in cursor order
-- (one row of arrays: experiments.monitor.ArmColumns).
-- name: experiment_rows
SELECT coalesce(array_agg(tenant_id), '{}') AS tenant_id,
       coalesce(array_agg(variant), '{}') AS variant,
       coalesce(array_agg(latency_ms), '{}') AS latency_ms,
       coalesce(array_agg(status = 'error'), '{}') AS is_error,
       coalesce(array_agg(coalesce(confidence, -1)), '{}') AS confidence,
       coalesce(array_agg(coalesce((cost_usd * 1000000000000)::bigint, -1)), '{}') AS cost_pico,
       coalesce(array_agg(coalesce(query_length, -1)), '{}') AS query_length
FROM (SELECT tenant_id, variant, latency_ms, status, confidence, cost_usd, query_length
      FROM mlops.model_performance
      WHERE experiment_id = %(id)s::uuid
        AND mlops.is_consumed(xid, id, %(cursor_frontier)s::pg_snapshot,
                              %(cursor_window_end)s::pg_snapshot, %(cursor_xid)s::text::xid8,
                              %(cursor_id)s::bigint)
        AND NOT mlops.is_consumed(xid, id, %(from_frontier)s::pg_snapshot,
                                  %(from_window_end)s::pg_snapshot, %(from_xid)s::text::xid8,
                                  %(from_id)s::bigint)
      ORDER BY xid, id) r;

-- Whether an experiment's stored state counts rows the consumer has not consumed (a state
-- from a restored database of a later time).
-- name: experiment_ahead
SELECT EXISTS (
    SELECT FROM mlops.model_performance
    WHERE experiment_id = %(id)s::uuid
      AND mlops.is_consumed(xid, id, %(from_frontier)s::pg_snapshot,
                            %(from_window_end)s::pg_snapshot, %(from_xid)s::text::xid8,
                            %(from_id)s::bigint)
      AND NOT mlops.is_consumed(xid, id, %(cursor_frontier)s::pg_snapshot,
                                %(cursor_window_end)s::pg_snapshot, %(cursor_xid)s::text::xid8,
                                %(cursor_id)s::bigint)) AS ahead;
