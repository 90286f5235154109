-- Model cards (cards/generate.py): the evidence of one (tenant, function, model) over a
-- window [start, end), and the versions in mlops.model_cards. Columns are named like the
-- fields of the row dataclasses in cards/evidence.py and cards/generate.py.

-- The whole window. One sort per column: an ordered-set aggregate sorts its own input, so
-- the percentiles of a column are asked for together.
-- name: card_totals
SELECT 'all' AS slice_kind, '' AS slice_name, requests, errors,
       lat[1] AS latency_p50_ms, lat[2] AS latency_p95_ms, lat[3] AS latency_p99_ms,
       latency_mean_ms, cost_usd, priced, confidence_n, confidence_mean,
       conf[1] AS confidence_p10, conf[2] AS confidence_p50, conf[3] AS confidence_p90,
       prompt_tokens, completion_tokens, first_at, last_at
FROM (SELECT count(*) AS requests,
             count(*) FILTER (WHERE status = 'error') AS errors,
             percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms) AS lat,
             avg(latency_ms) AS latency_mean_ms,
             coalesce(sum(cost_usd), 0)::float8 AS cost_usd,
             count(cost_usd) AS priced,
             count(confidence) AS confidence_n,
             avg(confidence) AS confidence_mean,
             percentile_cont(ARRAY[0.1, 0.5, 0.9]) WITHIN GROUP (ORDER BY confidence) AS conf,
             coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
             coalesce(sum(completion_tokens), 0) AS completion_tokens,
             date_part('epoch', min(created_at)) AS first_at,
             date_part('epoch', max(created_at)) AS last_at
      FROM mlops.model_performance
      WHERE tenant_id = %(tenant)s AND function_name = %(function)s AND model = %(model)s
        AND created_at >= to_timestamp(%(start)s) AND created_at < to_timestamp(%(end)s)) t;

-- Slices by variant and by model version (the card shows their latency percentiles, error
-- rate, cost and mean confidence: no confidence percentiles, one sort fewer).
-- name: card_slices
SELECT slice_kind, slice_name, requests, errors,
       lat[1] AS latency_p50_ms, lat[2] AS latency_p95_ms, lat[3] AS latency_p99_ms,
       latency_mean_ms, cost_usd, priced, confidence_n, confidence_mean,
       NULL::float8 AS confidence_p10, NULL::float8 AS confidence_p50,
       NULL::float8 AS confidence_p90, prompt_tokens, completion_tokens, first_at, last_at
FROM (SELECT CASE WHEN grouping(variant) = 0 THEN 'variant' ELSE 'version' END AS slice_kind,
             coalesce(variant, version) AS slice_name,
             count(*) AS requests,
             count(*) FILTER (WHERE status = 'error') AS errors,
             percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms) AS lat,
             avg(latency_ms) AS latency_mean_ms,
             coalesce(sum(cost_usd), 0)::float8 AS cost_usd,
             count(cost_usd) AS priced,
             count(confidence) AS confidence_n,
             avg(confidence) AS confidence_mean,
             coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
             coalesce(sum(completion_tokens), 0) AS completion_tokens,
             date_part('epoch', min(created_at)) AS first_at,
             date_part('epoch', max(created_at)) AS last_at
      FROM (SELECT *, coalesce(model_version, 'unversioned') AS version
            FROM mlops.model_performance
            WHERE tenant_id = %(tenant)s AND function_name = %(function)s
              AND model = %(model)s AND created_at >= to_timestamp(%(start)s)
              AND created_at < to_timestamp(%(end)s)) w
      GROUP BY GROUPING SETS ((variant), (version))) s
ORDER BY 1, 2;

-- Latency (log-spaced bins, 4 a decade from 1 ms), confidence (tenths), days (UTC) and
-- error types, in one scan. key: the bin number, the day's epoch or the error type.
-- name: card_distributions
WITH w AS (
    SELECT status, cost_usd, coalesce(error_type, 'unspecified') AS error_type,
           least(width_bucket(log(greatest(latency_ms, 1)), 0, 5, 20), 21) AS lat_bin,
           -- least() skips NULLs: a request without confidence stays without a bin.
           CASE WHEN confidence IS NOT NULL
                THEN least(width_bucket(confidence, 0, 1, 10), 10) END AS conf_bin,
           date_part('epoch', date_trunc('day', created_at, 'UTC')) AS day
    FROM mlops.model_performance
    WHERE tenant_id = %(tenant)s AND function_name = %(function)s AND model = %(model)s
      AND created_at >= to_timestamp(%(start)s) AND created_at < to_timestamp(%(end)s))
SELECT CASE WHEN grouping(lat_bin) = 0 THEN 'latency'
            WHEN grouping(conf_bin) = 0 THEN 'confidence'
            WHEN grouping(day) = 0 THEN 'day' ELSE 'error_type' END AS kind,
       coalesce(lat_bin::text, conf_bin::text, day::bigint::text, error_type) AS key,
       count(*) AS requests,
       count(*) FILTER (WHERE status = 'error') AS errors,
       coalesce(sum(cost_usd), 0)::float8 AS cost_usd
FROM w
GROUP BY GROUPING SETS ((lat_bin), (conf_bin), (day), (error_type))
HAVING NOT (grouping(conf_bin) = 0 AND conf_bin IS NULL)
   AND NOT (grouping(error_type) = 0 AND count(*) FILTER (WHERE status = 'error') = 0)
ORDER BY 1, 2;

-- How many drift tests the window holds for the function.
-- name: card_drift_count
SELECT count(*) AS n FROM mlops.drift_detection
WHERE tenant_id = %(tenant)s AND function_name = %(function)s
  AND (model IS NULL OR model = %(model)s)
  AND detected_at >= to_timestamp(%(start)s) AND detected_at < to_timestamp(%(end)s);

-- The confirmed drifts of the window (latest 50) and the latest test of each metric.
-- name: card_drift
SELECT * FROM (
    (SELECT metric_name, test_name, statistic, p_value, threshold, effect_size,
            drift_detected, date_part('epoch', detected_at) AS detected_at
     FROM mlops.drift_detection
     WHERE tenant_id = %(tenant)s AND function_name = %(function)s
       AND (model IS NULL OR model = %(model)s) AND drift_detected
       AND detected_at >= to_timestamp(%(start)s) AND detected_at < to_timestamp(%(end)s)
     ORDER BY detected_at DESC LIMIT 50)
    UNION
    (SELECT DISTINCT ON (metric_name) metric_name, test_name, statistic, p_value, threshold,
            effect_size, drift_detected, date_part('epoch', detected_at) AS detected_at
     FROM mlops.drift_detection
     WHERE tenant_id = %(tenant)s AND function_name = %(function)s
       AND (model IS NULL OR model = %(model)s)
       AND detected_at >= to_timestamp(%(start)s) AND detected_at < to_timestamp(%(end)s)
     ORDER BY metric_name, detected_at DESC, p_value)) d
ORDER BY detected_at, metric_name;

-- Experiments on the function that ran in the window (results without the tests' state).
-- name: card_experiments
SELECT name, status, decision, primary_metric, alpha,
       date_part('epoch', started_at) AS started_at,
       date_part('epoch', stopped_at) AS stopped_at,
       results - 'state' AS results
FROM mlops.experiments
WHERE tenant_id = %(tenant)s AND function_name = %(function)s AND status <> 'draft'
  AND (stopped_at IS NULL OR stopped_at >= to_timestamp(%(start)s))
  AND started_at < to_timestamp(%(end)s)
ORDER BY started_at DESC, name LIMIT 10;

-- The function's deployment history (latest 20), whatever the window.
-- name: card_deployments
SELECT id, version, previous_version, slot, status, traffic_percent, reason, created_by,
       date_part('epoch', created_at) AS created_at,
       date_part('epoch', promoted_at) AS promoted_at,
       date_part('epoch', rolled_back_at) AS rolled_back_at
FROM mlops.deployments
WHERE tenant_id = %(tenant)s AND function_name = %(function)s
  AND created_at < to_timestamp(%(end)s)
ORDER BY created_at DESC, id DESC LIMIT 20;

-- Every change of status of the function's deployments, with its reason (latest 50).
-- name: card_deployment_transitions
SELECT t.deployment_id, d.version, t.from_status, t.to_status, t.traffic_percent, t.reason,
       t.actor, date_part('epoch', t.at) AS at
FROM mlops.deployment_transitions t
JOIN mlops.deployments d ON d.id = t.deployment_id
WHERE d.tenant_id = %(tenant)s AND d.function_name = %(function)s
  AND t.at < to_timestamp(%(end)s)
ORDER BY t.at DESC, t.id DESC LIMIT 50;

-- The latest gate result of each of the function's last deployments.
-- name: card_deployment_gates
SELECT DISTINCT ON (g.deployment_id) g.deployment_id, d.version, g.outcome,
       g.traffic_percent, g.samples_live, g.samples_new, g.metrics, g.message,
       date_part('epoch', g.checked_at) AS checked_at
FROM mlops.deployment_gate_results g
JOIN mlops.deployments d ON d.id = g.deployment_id
WHERE d.tenant_id = %(tenant)s AND d.function_name = %(function)s
  AND g.checked_at < to_timestamp(%(end)s)
ORDER BY g.deployment_id DESC, g.id DESC LIMIT 20;

-- Alerts open at generation time on the function (or its model).
-- name: card_alerts
SELECT alert_type, severity, title, state,
       date_part('epoch', first_seen) AS first_seen, date_part('epoch', last_seen) AS last_seen
FROM mlops.alerts
WHERE tenant_id = %(tenant)s AND state <> 'resolved'
  AND function_name = %(function)s AND (model IS NULL OR model = %(model)s)
ORDER BY first_seen, title LIMIT 50;

-- The models a function served in the window, else the ones it ever served, else the
-- ones of its stored cards. The processor's totals name the candidates, so the window is
-- only probed (an index lookup per model) instead of scanned; without totals (no
-- processor yet) the window is scanned.
-- name: card_models
WITH known AS (
    SELECT model FROM mlops.series_totals
    WHERE tenant_id = %(tenant)s AND function_name = %(function)s
    UNION
    SELECT model FROM mlops.model_cards
    WHERE tenant_id = %(tenant)s AND function_name = %(function)s),
served AS (
    SELECT k.model FROM known k
    WHERE EXISTS (SELECT 1 FROM mlops.model_performance p
                  WHERE p.tenant_id = %(tenant)s AND p.function_name = %(function)s
                    AND p.model = k.model AND p.created_at >= to_timestamp(%(start)s)
                    AND p.created_at < to_timestamp(%(end)s))
    UNION
    SELECT DISTINCT p.model FROM mlops.model_performance p
    WHERE NOT EXISTS (SELECT 1 FROM mlops.series_totals t
                      WHERE t.tenant_id = %(tenant)s AND t.function_name = %(function)s)
      AND p.tenant_id = %(tenant)s AND p.function_name = %(function)s
      AND p.created_at >= to_timestamp(%(start)s) AND p.created_at < to_timestamp(%(end)s))
SELECT model FROM served
UNION
SELECT model FROM mlops.series_totals
WHERE tenant_id = %(tenant)s AND function_name = %(function)s
  AND NOT EXISTS (SELECT 1 FROM served)
UNION
SELECT model FROM mlops.model_cards
WHERE tenant_id = %(tenant)s AND function_name = %(function)s
  AND NOT EXISTS (SELECT 1 FROM served)
  AND NOT EXISTS (SELECT 1 FROM mlops.series_totals
                  WHERE tenant_id = %(tenant)s AND function_name = %(function)s)
ORDER BY model;

-- Whether a function is known at all: it has rows, totals, a spec or a card.
-- name: card_function_known
SELECT EXISTS (SELECT 1 FROM mlops.model_performance
               WHERE tenant_id = %(tenant)s AND function_name = %(function)s)
    OR EXISTS (SELECT 1 FROM mlops.series_totals
               WHERE tenant_id = %(tenant)s AND function_name = %(function)s)
    OR EXISTS (SELECT 1 FROM mlops.model_card_specs
               WHERE tenant_id = %(tenant)s AND function_name = %(function)s)
    OR EXISTS (SELECT 1 FROM mlops.model_cards
               WHERE tenant_id = %(tenant)s AND function_name = %(function)s) AS known;

-- name: card_spec
SELECT spec, source FROM mlops.model_card_specs
WHERE tenant_id = %(tenant)s AND function_name = %(function)s;

-- name: put_card_spec
INSERT INTO mlops.model_card_specs (tenant_id, function_name, spec, source)
VALUES (%(tenant)s, %(function)s, %(spec)s, %(source)s)
ON CONFLICT (tenant_id, function_name)
DO UPDATE SET spec = EXCLUDED.spec, source = EXCLUDED.source, updated_at = now();

-- A new version unless the latest one says the same (content_hash); concurrent writers
-- of the same version: the first one wins, the other adds nothing. RETURNING: the version
-- made (no row: none).
-- name: insert_card
INSERT INTO mlops.model_cards (tenant_id, function_name, model, version, card, trigger, trigger_ref, content_hash, window_start, window_end)
SELECT %(tenant)s, %(function)s, %(model)s, coalesce(max(version), 0) + 1, %(card)s,
       %(trigger)s, %(trigger_ref)s, %(hash)s, to_timestamp(%(start)s),
       to_timestamp(%(end)s)
FROM mlops.model_cards
WHERE tenant_id = %(tenant)s AND function_name = %(function)s AND model = %(model)s
HAVING (SELECT content_hash FROM mlops.model_cards
        WHERE tenant_id = %(tenant)s AND function_name = %(function)s AND model = %(model)s
        ORDER BY version DESC LIMIT 1) IS DISTINCT FROM %(hash)s
ON CONFLICT (tenant_id, function_name, model, version) DO NOTHING
RETURNING version;

-- Versions of a function's cards, newest first (version NULL: every version).
-- name: card_versions
SELECT tenant_id, function_name, model, version, trigger, trigger_ref, content_hash,
       date_part('epoch', generated_at) AS generated_at, card
FROM mlops.model_cards
WHERE tenant_id = %(tenant)s AND function_name = %(function)s
  AND model = coalesce(%(model)s, model)
  AND version = coalesce(%(version)s::int, version)
ORDER BY model, version DESC
LIMIT %(limit)s;

-- The latest version of every card (of one tenant, or of all when tenant is NULL).
-- name: card_list
SELECT DISTINCT ON (tenant_id, function_name, model)
       tenant_id, function_name, model, version, trigger, trigger_ref, content_hash,
       date_part('epoch', generated_at) AS generated_at, NULL::jsonb AS card
FROM mlops.model_cards
WHERE tenant_id = coalesce(%(tenant)s, tenant_id)
ORDER BY tenant_id, function_name, model, version DESC;

-- What should make new versions, oldest first: confirmed drifts (drift alerts) and
-- promoted, rolled-back or failed deployments of the last week not yet handled, then every
-- function whose scheduled period has no card yet.
-- name: card_due
SELECT tenant_id, function_name, trigger, ref FROM (
    SELECT a.tenant_id, a.function_name, 'drift' AS trigger, 'alert:' || a.id AS ref,
           1 AS rank, a.first_seen AS at
    FROM mlops.alerts a
    WHERE a.alert_type = 'drift' AND a.function_name IS NOT NULL
      AND a.first_seen >= now() - interval '7 days'
    UNION ALL
    SELECT d.tenant_id, d.function_name, 'promoted', 'deployment:' || d.id || ':promoted',
           1, d.promoted_at
    FROM mlops.deployments d
    WHERE d.promoted_at >= now() - interval '7 days'
    UNION ALL
    SELECT d.tenant_id, d.function_name, 'rolled_back',
           'deployment:' || d.id || ':rolled_back', 1, d.rolled_back_at
    FROM mlops.deployments d
    WHERE d.rolled_back_at >= now() - interval '7 days'
    UNION ALL
    -- A failed deployment (health checks, a hard guard) sends its traffic back too.
    SELECT d.tenant_id, d.function_name, 'rolled_back', 'deployment:' || d.id || ':failed',
           1, d.finished_at
    FROM mlops.deployments d
    WHERE d.status = 'failed' AND d.finished_at >= now() - interval '7 days'
    UNION ALL
    SELECT f.tenant_id, f.function_name, 'scheduled',
           'schedule:' || floor(date_part('epoch', now()) / %(every)s)::bigint, 2, now()
    FROM (SELECT DISTINCT tenant_id, function_name FROM mlops.series_totals
          UNION
          SELECT tenant_id, function_name FROM mlops.model_card_specs) f
) due
WHERE NOT EXISTS (SELECT 1 FROM mlops.model_card_triggers t
                  WHERE (t.tenant_id, t.function_name, t.ref)
                      = (due.tenant_id, due.function_name, due.ref))
ORDER BY rank, at, tenant_id, function_name
LIMIT %(limit)s;

-- name: card_trigger_handled
INSERT INTO mlops.model_card_triggers (tenant_id, function_name, ref)
VALUES (%(tenant)s, %(function)s, %(ref)s)
ON CONFLICT DO NOTHING;
