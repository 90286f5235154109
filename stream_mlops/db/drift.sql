-- Drift evidence (stream_mlops/db/drift_store.py).

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

-- name: latest_drift
SELECT DISTINCT ON (tenant_id, function_name, metric_name, test_name)
       tenant_id, function_name, metric_name, test_name, statistic, p_value, threshold,
       effect_size, drift_detected, detected_at
FROM mlops.drift_detection
ORDER BY tenant_id, function_name, metric_name, test_name, detected_at DESC;

-- Rows of one function in a time range, column-wise, for the on-demand drift report.
-- name: drift_window
SELECT array_agg(latency_ms), array_agg(coalesce(query_length, -1)),
       array_agg(coalesce(confidence, -1)),
       array_agg(coalesce((cost_usd * 1000000000000)::bigint, -1)),
       array_agg(status = 'error'), array_agg(coalesce(error_type, 'unknown')),
       array_agg(model), count(*)
FROM (SELECT * FROM mlops.model_performance
      WHERE tenant_id = %(tenant)s AND function_name = %(function)s
        AND created_at >= %(start)s AND created_at < %(end)s
      ORDER BY created_at DESC LIMIT %(limit)s) w;

-- name: drift_functions
SELECT DISTINCT tenant_id, function_name FROM mlops.model_performance
WHERE created_at >= %(since)s;
