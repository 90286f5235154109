-- The feature store's statements (the functions are in sql/0012_features.sql).

-- name: define_feature
SELECT mlops.define_feature(name => %(name)s, entity_type => %(entity_type)s,
                            value_type => %(value_type)s, ttl => %(ttl)s,
                            description => %(description)s,
                            vector_length => %(vector_length)s, owner => %(owner)s,
                            tags => %(tags)s, tenant_id => %(tenant_id)s);

-- name: list_features
SELECT tenant_id, entity_type, name, value_type, vector_length,
       extract(epoch FROM ttl)::double precision AS ttl_seconds, description, owner, tags,
       created_at, updated_at
FROM mlops.list_features(%(entity_type)s, %(tenant_id)s);

-- name: put_features
SELECT written, quarantined
FROM mlops.put_features(%(entity_type)s, %(rows)s, %(tenant_id)s, %(max_future_seconds)s);

-- name: feature_read_async_commit
SET LOCAL synchronous_commit = off;

-- name: get_online_features
SELECT entity_id, features
FROM mlops.get_online_features(%(entity_type)s, %(entity_ids)s, %(names)s, %(tenant_id)s);

-- name: get_historical_features
SELECT features
FROM mlops.get_historical_features(%(entity_type)s, %(entity_ids)s, %(timestamps)s,
                                   %(names)s, %(tenant_id)s);

-- The processor's feature monitor (stream_mlops/features/monitor.py). --------------------

-- name: feature_definitions_all
SELECT tenant_id, entity_type, name, value_type,
       extract(epoch FROM ttl)::double precision AS ttl_seconds
FROM mlops.feature_definitions ORDER BY tenant_id, entity_type, name;

-- name: feature_cursors
SELECT source, last_xid::text AS last_xid, last_id
FROM mlops.feature_monitor_cursor WHERE consumer = %(consumer)s;

-- Where a monitor without a cursor starts: after every transaction that has ended.
-- name: feature_cursor_start
SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::numeric - 1)::text AS last_xid,
       9223372036854775807::bigint AS last_id;

-- Values written since the cursor by transactions that have all ended (below the
-- snapshot's xmin, so none can still commit behind the cursor).
-- name: feature_values_since
SELECT xid::text AS xid, id, tenant_id, feature_group AS entity_type, feature_name, value,
       extract(epoch FROM event_time)::double precision AS event_time,
       extract(epoch FROM created_at)::double precision AS created_at
FROM mlops.feature_store
WHERE xid < pg_snapshot_xmin(pg_current_snapshot())
  AND (xid, id) > (%(last_xid)s::xid8, %(last_id)s::bigint)
ORDER BY xid, id
LIMIT %(limit)s;

-- name: feature_reads_since
SELECT xid::text AS xid, id, tenant_id, entity_type, names, entities, missing,
       extract(epoch FROM read_at)::double precision AS read_at
FROM mlops.feature_reads
WHERE xid < pg_snapshot_xmin(pg_current_snapshot())
  AND (xid, id) > (%(last_xid)s::xid8, %(last_id)s::bigint)
ORDER BY xid, id
LIMIT %(limit)s;

-- name: feature_stats_rows
SELECT tenant_id, entity_type, feature_name, writes_total, reads_total, missing_total,
       extract(epoch FROM last_event_time)::double precision AS last_event_time,
       extract(epoch FROM last_write_at)::double precision AS last_write_at, gaps
FROM mlops.feature_stats WHERE consumer = %(consumer)s;

-- The cursors and the changed features' statistics, in one statement (one transaction).
-- name: save_feature_state
WITH cursors AS (
    INSERT INTO mlops.feature_monitor_cursor AS c (consumer, source, last_xid, last_id)
    VALUES (%(consumer)s, 'values', %(values_xid)s::xid8, %(values_id)s),
           (%(consumer)s, 'reads', %(reads_xid)s::xid8, %(reads_id)s)
    ON CONFLICT (consumer, source) DO UPDATE
    SET last_xid = EXCLUDED.last_xid, last_id = EXCLUDED.last_id, updated_at = now()
    RETURNING 1)
INSERT INTO mlops.feature_stats AS s (consumer, tenant_id, entity_type, feature_name,
                                      writes_total, reads_total, missing_total,
                                      last_event_time, last_write_at, gaps)
SELECT %(consumer)s, r.tenant_id, r.entity_type, r.feature_name, r.writes_total,
       r.reads_total, r.missing_total, to_timestamp(r.last_event_time),
       to_timestamp(r.last_write_at),
       ARRAY(SELECT jsonb_array_elements_text(r.gaps)::double precision)
FROM jsonb_to_recordset(%(stats)s) AS r(
    tenant_id text, entity_type text, feature_name text, writes_total bigint,
    reads_total bigint, missing_total bigint, last_event_time double precision,
    last_write_at double precision, gaps jsonb)
WHERE (SELECT count(*) FROM cursors) = 2
ON CONFLICT (consumer, tenant_id, entity_type, feature_name) DO UPDATE
SET writes_total = EXCLUDED.writes_total, reads_total = EXCLUDED.reads_total,
    missing_total = EXCLUDED.missing_total, last_event_time = EXCLUDED.last_event_time,
    last_write_at = EXCLUDED.last_write_at, gaps = EXCLUDED.gaps, updated_at = now();

-- What `stream-mlops features stats` shows: every definition with what the processor
-- knows of it, and its open alerts.
-- name: feature_stats_report
SELECT d.tenant_id, d.entity_type, d.name, d.value_type,
       extract(epoch FROM d.ttl)::double precision AS ttl_seconds,
       coalesce(s.writes_total, 0) AS writes_total,
       coalesce(s.reads_total, 0) AS reads_total,
       coalesce(s.missing_total, 0) AS missing_total,
       s.last_event_time, s.last_write_at,
       (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY g)
        FROM unnest(s.gaps) g)::double precision AS usual_interval_seconds,
       coalesce((SELECT array_agg(split_part(a.fingerprint, ':', 2) ORDER BY a.fingerprint)
                 FROM mlops.alerts a
                 WHERE a.tenant_id = d.tenant_id AND a.alert_type = 'feature'
                   AND a.state <> 'resolved'
                   AND a.fingerprint IN ('feature:stale:' || d.entity_type || ':' || d.name,
                                         'feature:drift:' || d.entity_type || ':' || d.name)),
                '{}') AS open_alerts
FROM mlops.feature_definitions d
LEFT JOIN mlops.feature_stats s
  ON s.consumer = %(consumer)s AND s.tenant_id = d.tenant_id
 AND s.entity_type = d.entity_type AND s.feature_name = d.name
WHERE %(tenant_id)s::text IS NULL OR d.tenant_id = %(tenant_id)s
ORDER BY d.tenant_id, d.entity_type, d.name;
