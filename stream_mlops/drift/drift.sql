-- Drift evidence and the user's reference decisions (drift/monitor.py, drift/store.py).

-- name: insert_drift_evidence
INSERT INTO mlops.drift_detection (tenant_id, function_name, metric_name, test_name,
                                   statistic, p_value, threshold, effect_size,
                                   drift_detected, reference_window, current_window)
SELECT r.tenant_id, r.function_name, r.metric_name, r.test_name, r.statistic, r.p_value,
       r.threshold, r.effect_size, r.drift_detected, r.reference_window, r.current_window
FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(
    tenant_id text, function_name text, metric_name text, test_name text,
    statistic float8, p_value float8, threshold float8, effect_size float8,
    drift_detected boolean, reference_window jsonb, current_window jsonb);

-- Per function and metric: the latest evidence (its smallest p-value), the reference
-- decision in force and whether a drift alert is open. Columns named like the keys of
-- drift.store.drift_status's dicts.
-- name: drift_status
WITH latest AS (
    SELECT DISTINCT ON (tenant_id, function_name, metric_name)
           tenant_id, function_name, metric_name, test_name, p_value, threshold,
           effect_size, drift_detected, detected_at
    FROM mlops.drift_detection
    ORDER BY tenant_id, function_name, metric_name, detected_at DESC, p_value)
SELECT l.tenant_id AS tenant, l.function_name AS function, l.metric_name AS metric,
       l.test_name AS test, l.p_value, l.threshold, l.effect_size, l.drift_detected,
       l.detected_at AS tested_at,
       coalesce(m.pinned, false) OR coalesce(f.pinned, false) AS pinned,
       greatest(m.relearn_from, f.relearn_from) AS relearn_from,
       EXISTS (SELECT 1 FROM mlops.alerts a
               WHERE a.tenant_id = l.tenant_id AND a.state <> 'resolved'
                 AND a.fingerprint = 'drift:' || l.function_name || ':' || l.metric_name)
           AS alert_open
FROM latest l
LEFT JOIN mlops.drift_references m
       ON (m.tenant_id, m.function_name, m.metric) = (l.tenant_id, l.function_name, l.metric_name)
LEFT JOIN mlops.drift_references f
       ON (f.tenant_id, f.function_name, f.metric) = (l.tenant_id, l.function_name, '*')
WHERE l.tenant_id = coalesce(%(tenant)s, l.tenant_id)
ORDER BY 1, 2, 3;

-- name: pin_reference
INSERT INTO mlops.drift_references (tenant_id, function_name, metric, pinned)
VALUES (%(tenant)s, %(function)s, %(metric)s, %(pinned)s)
ON CONFLICT (tenant_id, function_name, metric)
DO UPDATE SET pinned = EXCLUDED.pinned, updated_at = now();

-- name: relearn_reference
INSERT INTO mlops.drift_references (tenant_id, function_name, metric, relearn_from)
VALUES (%(tenant)s, %(function)s, %(metric)s, now())
ON CONFLICT (tenant_id, function_name, metric)
DO UPDATE SET relearn_from = now(), updated_at = now()
RETURNING relearn_from;

-- name: function_tenants
SELECT DISTINCT tenant_id FROM mlops.series_totals WHERE function_name = %(function)s
ORDER BY 1 LIMIT 20;

-- name: functions_seen
SELECT DISTINCT function_name FROM mlops.series_totals WHERE tenant_id = %(tenant)s
ORDER BY 1 LIMIT 20;

-- The user's reference decisions (columns of drift.monitor.ReferenceRow).
-- name: drift_references
SELECT tenant_id, function_name, metric, pinned,
       date_part('epoch', relearn_from) AS relearn_from
FROM mlops.drift_references;

-- Rows of one function in a time range, column-wise, for the on-demand drift report.
-- Columns of drift.report.Window.
-- name: drift_window
SELECT array_agg(latency_ms) AS latency_ms, array_agg(coalesce(query_length, -1)) AS query_length,
       array_agg(coalesce(confidence, -1)) AS confidence,
       array_agg(coalesce((cost_usd * 1000000000000)::bigint, -1)) AS cost_pico,
       array_agg(status = 'error') AS is_error,
       array_agg(coalesce(error_type, 'unknown')) AS error_type,
       array_agg(model) AS model, count(*) AS rows
FROM (SELECT * FROM mlops.model_performance
      WHERE tenant_id = %(tenant)s AND function_name = %(function)s
        AND created_at >= %(start)s AND created_at < %(end)s
      ORDER BY created_at DESC LIMIT %(limit)s) w;

-- name: drift_functions
SELECT DISTINCT tenant_id, function_name FROM mlops.model_performance
WHERE created_at >= %(since)s;

-- Requests and summed latency per function and hour of the last 8 days, from the cost
-- roll-ups (written with the cursor, so exactly what was consumed): the volume baselines
-- and hour-of-day latency profiles after a restart (columns of drift.monitor.HourRow).
-- An hour whose latency is not known for every model (rolled up before migration 0017)
-- has none.
-- name: recent_hourly_latency
SELECT tenant_id, function_name, (date_part('epoch', period_start) / 3600)::bigint AS hour,
       sum(request_count)::bigint AS requests,
       CASE WHEN bool_and(latency_ms_sum IS NOT NULL) THEN sum(latency_ms_sum) END
           AS latency_ms_sum
FROM mlops.cost_tracking
WHERE period = 'hour' AND period_start >= date_trunc('hour', now()) - interval '8 days'
GROUP BY 1, 2, 3;
