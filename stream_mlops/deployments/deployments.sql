-- Deployments: the lifecycle API (deployments/store.py) and the gate (deployments/monitor.py).

-- name: start_deployment
INSERT INTO mlops.deployments (tenant_id, function_name, version, notes, artifact, steps,
                               min_samples, step_seconds, health_url, alpha, max_error_rate,
                               reason)
VALUES (%(tenant_id)s, %(function_name)s, %(version)s, %(notes)s, %(artifact)s,
        %(steps)s::double precision[], %(min_samples)s, %(step_seconds)s, %(health_url)s,
        %(alpha)s, %(max_error_rate)s, %(reason)s)
RETURNING id;

-- Whether a function has logged requests (a deployment of an unknown one is refused).
-- name: function_known
SELECT EXISTS (SELECT FROM mlops.model_performance
               WHERE tenant_id = %(tenant_id)s AND function_name = %(function_name)s)
    OR EXISTS (SELECT FROM mlops.deployments
               WHERE tenant_id = %(tenant_id)s AND function_name = %(function_name)s)
    AS known;

-- Columns of deployments.store.DeploymentInfo.
-- name: deployment_latest
SELECT id, tenant_id, function_name, version, slot, previous_slot, previous_version, status,
       traffic_percent, steps, step_index, min_samples, step_seconds, health_url, reason,
       notes, artifact, created_by, created_at, started_at, promoted_at, rolled_back_at,
       finished_at, gate -> 'last' AS last_gate, health, seed
FROM mlops.deployments
WHERE tenant_id = %(tenant_id)s AND function_name = %(function_name)s
ORDER BY id DESC LIMIT 1;

-- name: deployment_by_id
SELECT id, tenant_id, function_name, version, slot, previous_slot, previous_version, status,
       traffic_percent, steps, step_index, min_samples, step_seconds, health_url, reason,
       notes, artifact, created_by, created_at, started_at, promoted_at, rolled_back_at,
       finished_at, gate -> 'last' AS last_gate, health, seed
FROM mlops.deployments WHERE id = %(id)s;

-- A move by hand (promote, rollback): only from the status it was read in.
-- name: move_deployment
UPDATE mlops.deployments SET status = %(status)s, reason = %(reason)s
WHERE id = %(id)s AND status = %(expected)s
RETURNING id;

-- name: record_deployment_health
UPDATE mlops.deployments SET health = %(health)s::jsonb
WHERE id = %(id)s AND status IN ('pending', 'shifting', 'promoted');

-- Columns of deployments.store.HistoryEntry: transitions, shares and gate results of a
-- function's deployments, newest deployment first, each in time order.
-- name: deployment_history
SELECT d.id AS deployment_id, d.version, h.at, h.kind, h.status, h.traffic_percent,
       h.detail, h.actor
FROM mlops.deployments d
CROSS JOIN LATERAL (
    SELECT t.at, 'transition' AS kind, t.to_status AS status, t.traffic_percent,
           t.reason AS detail, t.actor, t.id AS seq, 0 AS ord
    FROM mlops.deployment_transitions t WHERE t.deployment_id = d.id
    UNION ALL
    SELECT s.at, 'traffic', NULL, s.traffic_percent, 'step ' || (s.step_index + 1),
           s.actor, s.id, 1
    FROM mlops.deployment_traffic s WHERE s.deployment_id = d.id
    UNION ALL
    SELECT g.checked_at, 'gate', g.outcome, g.traffic_percent, g.message, 'gate', g.id, 2
    FROM mlops.deployment_gate_results g WHERE g.deployment_id = d.id
) h
WHERE d.tenant_id = %(tenant_id)s AND d.function_name = %(function_name)s
ORDER BY d.id DESC, h.at, h.ord, h.seq
LIMIT %(limit)s;

-- Routing: the function's active deployment and what is live (deployments.routing.Route).
-- name: deployment_route
WITH t AS (SELECT coalesce(%(tenant_id)s, mlops.caller_tenant()) AS tenant)
SELECT coalesce(a.previous_slot, l.slot) AS live_slot,
       CASE WHEN a.id IS NULL THEN l.version ELSE a.previous_version END AS live_version,
       a.slot AS new_slot, a.version AS new_version, coalesce(a.seed, '') AS seed,
       coalesce(a.traffic_percent, 0) AS traffic_percent,
       coalesce(a.status = 'promoted', false) AS promoted
FROM t
CROSS JOIN mlops.live_deployment(t.tenant, %(function_name)s) l
LEFT JOIN mlops.deployments a
  ON a.tenant_id = t.tenant AND a.function_name = %(function_name)s
 AND a.status IN ('pending', 'shifting', 'promoted');

-- What the gate follows. Columns of deployments.monitor.DeploymentRow.
-- name: active_deployments
SELECT id, tenant_id, function_name, version, slot, previous_slot, previous_version, status,
       traffic_percent, steps, step_index, min_samples, step_seconds, alpha, max_error_rate,
       health, gate,
       date_part('epoch', started_at) AS started_at,
       date_part('epoch', step_started_at) AS step_started_at,
       date_part('epoch', promoted_at) AS promoted_at
FROM mlops.deployments WHERE status IN ('pending', 'shifting', 'promoted')
ORDER BY id;

-- The latest deployment of every function, with its rollback count (alerts, metrics).
-- Columns of deployments.monitor.OutcomeRow.
-- name: deployment_outcomes
SELECT DISTINCT ON (d.tenant_id, d.function_name)
       d.id, d.tenant_id, d.function_name, d.version, d.slot, d.previous_slot,
       d.previous_version, d.status, coalesce(d.reason, '') AS reason,
       coalesce(d.finished_at > now() - interval '1 day', false) AS recent,
       (SELECT count(*) FROM mlops.deployments r
        WHERE r.tenant_id = d.tenant_id AND r.function_name = d.function_name
          AND r.status = 'rolled_back') AS rollbacks
FROM mlops.deployments d
ORDER BY d.tenant_id, d.function_name, d.id DESC;

-- A deployment's requests since it started shifting that the consumer has consumed and
-- its stored gate has not counted, column-wise in cursor order (DeploymentColumns).
-- name: deployment_rows
SELECT coalesce(array_agg(deployment_slot IS NOT DISTINCT FROM %(slot)s), '{}') AS is_new,
       coalesce(array_agg(latency_ms), '{}') AS latency_ms,
       coalesce(array_agg(status = 'error'), '{}') AS is_error,
       coalesce(array_agg(coalesce(confidence, -1)), '{}') AS confidence
FROM (SELECT deployment_slot, latency_ms, status, confidence
      FROM mlops.model_performance
      WHERE tenant_id = %(tenant_id)s AND function_name = %(function_name)s
        AND created_at >= to_timestamp(%(since)s)
        AND mlops.is_consumed(xid, id, %(cursor_frontier)s::pg_snapshot,
                              %(cursor_window_end)s::pg_snapshot, %(cursor_xid)s::text::xid8,
                              %(cursor_id)s::bigint)
        AND NOT mlops.is_consumed(xid, id, %(from_frontier)s::pg_snapshot,
                                  %(from_window_end)s::pg_snapshot, %(from_xid)s::text::xid8,
                                  %(from_id)s::bigint)
      ORDER BY xid, id) r;

-- The gate's state (with the cursor it counts up to), its decision and, when it records
-- one, a gate result, in one statement: only from the status and step it was decided in,
-- so a move by hand in between wins and a rollback happens once.
-- name: write_deployment_gate
WITH u AS (
    UPDATE mlops.deployments
    SET gate = %(gate)s::jsonb, status = %(status)s, traffic_percent = %(traffic_percent)s,
        step_index = %(step_index)s,
        reason = CASE WHEN %(transition)s THEN %(message)s ELSE reason END
    WHERE id = %(id)s AND status = %(expected_status)s
      AND step_index = %(expected_step)s
    RETURNING id, tenant_id
), g AS (
    INSERT INTO mlops.deployment_gate_results (tenant_id, deployment_id, step_index,
                                               traffic_percent, outcome, samples_live,
                                               samples_new, metrics, message)
    SELECT u.tenant_id, u.id, %(step_index)s, %(traffic_percent)s, %(outcome)s,
           %(samples_live)s, %(samples_new)s, %(metrics)s::jsonb, %(message)s
    FROM u WHERE %(record)s
    RETURNING 1
)
SELECT count(*)::int AS applied FROM u;
