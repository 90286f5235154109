-- Named queries of the alert lifecycle, its outbox and the alert commands.

-- name: firing_alerts
SELECT count(*) AS firing FROM mlops.alerts WHERE state = 'firing';

-- name: open_alerts
SELECT tenant_id, fingerprint, severity, state,
       date_part('epoch', coalesce(notified_at, first_seen)) AS notified_at,
       date_part('epoch', last_seen) AS last_seen
FROM mlops.alerts WHERE state <> 'resolved' AND alert_type = %(type)s;

-- name: alert_thresholds
SELECT tenant_id, function_name, metric, value FROM mlops.thresholds;

-- One open episode per (tenant, fingerprint): a replayed "fire" only refreshes it.
-- fire_alert, update_alert and resolve_alert: columns of alerts.store.WrittenAlert.
-- name: fire_alert
INSERT INTO mlops.alerts AS a (tenant_id, alert_type, severity, function_name, fingerprint,
                               title, message, details, rule, value, threshold, notified_at)
VALUES (%(tenant_id)s, %(alert_type)s, %(severity)s, %(function_name)s, %(fingerprint)s,
        %(title)s, %(message)s, %(details)s, %(rule)s, %(value)s, %(threshold)s, now())
ON CONFLICT (tenant_id, fingerprint) WHERE state <> 'resolved' DO UPDATE
SET last_seen = now(), message = EXCLUDED.message, details = EXCLUDED.details,
    value = EXCLUDED.value, severity = EXCLUDED.severity
RETURNING id, (xmax = 0) AS created;

-- name: update_alert
UPDATE mlops.alerts
SET last_seen = now(), message = %(message)s, details = %(details)s, value = %(value)s,
    severity = %(severity)s,
    notified_at = CASE WHEN %(notify)s THEN now() ELSE notified_at END
WHERE tenant_id = %(tenant_id)s AND fingerprint = %(fingerprint)s AND state <> 'resolved'
RETURNING id, state;

-- name: resolve_alert
UPDATE mlops.alerts
SET state = 'resolved', resolved_at = now(), last_seen = now(), message = %(message)s,
    value = %(value)s
WHERE tenant_id = %(tenant_id)s AND fingerprint = %(fingerprint)s AND state <> 'resolved'
RETURNING id;

-- The message is the alert as it is now: a late e-mail must not show what came after.
-- name: queue_notification
INSERT INTO mlops.alert_outbox (alert_id, tenant_id, kind, severity, function_name, title,
                                message, first_seen)
SELECT a.id, a.tenant_id, %(kind)s, a.severity, a.function_name, a.title, a.message,
       a.first_seen
FROM mlops.alerts a WHERE a.id = %(alert_id)s;

-- Due messages, locked so that two senders never take the same one.
-- Columns of alerts.outbox.DueNotification.
-- name: claim_notifications
-- (Rows queued before the outbox kept a copy fall back to the alert's columns.)
SELECT o.id, o.kind, o.attempts, a.tenant_id,
       coalesce(o.severity, a.severity) AS severity,
       coalesce(o.function_name, a.function_name) AS function_name,
       coalesce(o.title, a.title) AS title, coalesce(o.message, a.message) AS message,
       a.rule, a.state,
       date_part('epoch', coalesce(o.first_seen, a.first_seen)) AS first_seen
FROM mlops.alert_outbox o JOIN mlops.alerts a ON a.id = o.alert_id
WHERE o.sent_at IS NULL AND o.next_attempt_at <= now()
ORDER BY o.id
LIMIT 50
FOR UPDATE OF o SKIP LOCKED;

-- name: mark_sent
UPDATE mlops.alert_outbox SET sent_at = now(), attempts = attempts + 1, last_error = NULL
WHERE id = ANY(%(ids)s::bigint[]);

-- name: mark_failed
UPDATE mlops.alert_outbox
SET attempts = attempts + 1, last_error = %(error)s,
    next_attempt_at = now() + make_interval(secs => least(300, 2 ^ (attempts + 1)))
WHERE id = ANY(%(ids)s::bigint[]);

-- Columns of cli.alerts.AlertRow.
-- name: list_alerts
SELECT id, state, severity, tenant_id, function_name, rule, title, message,
       first_seen, last_seen, resolved_at
FROM mlops.alerts
WHERE (%(all)s OR state <> 'resolved')
ORDER BY last_seen DESC LIMIT %(limit)s;

-- name: acknowledge_alert
UPDATE mlops.alerts SET state = 'acknowledged', acknowledged_by = current_user,
                        acknowledged_at = now()
WHERE id = %(id)s AND state = 'firing' RETURNING id;

-- name: close_alert
UPDATE mlops.alerts SET state = 'resolved', resolved_at = now()
WHERE id = %(id)s AND state <> 'resolved' RETURNING id;

-- Alert episodes opened after a given one (the demo prints them as they come).
-- Columns of dev.demo.NewAlert.
-- name: alerts_after
SELECT id, severity, title FROM mlops.alerts WHERE id > %(after)s ORDER BY id LIMIT 20;

-- name: last_alert_id
SELECT coalesce(max(id), 0) AS last_id FROM mlops.alerts;

-- name: alert_state
SELECT state FROM mlops.alerts WHERE id = %(id)s;
