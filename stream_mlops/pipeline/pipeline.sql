-- Named queries of the pipeline: cursor, batches, checkpoint, restart state.

-- name: system_identifier
SELECT system_identifier::text FROM pg_control_system();

-- Columns of pipeline.repository.Checkpoint.
-- name: get_checkpoint
SELECT system_identifier, frontier::text AS frontier, window_end::text AS window_end,
       last_xid::text AS last_xid, last_id, events_total,
       quarantined_total, date_part('epoch', updated_at) AS updated_at, id_horizon,
       state_version
FROM mlops.consumer_checkpoints WHERE consumer = %(consumer)s;

-- name: create_checkpoint
INSERT INTO mlops.consumer_checkpoints (consumer, system_identifier)
VALUES (%(consumer)s, %(system_identifier)s)
ON CONFLICT (consumer) DO NOTHING;

-- Columns of pipeline.repository.SeriesRow.
-- name: load_series
SELECT tenant_id, function_name, model, variant, success_count, error_count,
       latency_sum_seconds, latency_buckets, prompt_tokens, completion_tokens, cached_tokens,
       input_token_buckets, output_token_buckets, cost_pico_usd::text AS cost_pico,
       unpriced_count, confidence_count, confidence_sum, confidence_buckets,
       coalesce(date_part('epoch', last_event_at), '-Infinity') AS last_event_at
FROM mlops.series_totals WHERE consumer = %(consumer)s
ORDER BY tenant_id, function_name, model, variant;

-- The next rows of the window (see sql/0011_snapshot_cursor.sql): rows of transactions
-- visible in the window's end snapshot and not in the frontier, after (xid, id), in
-- (xid, id) order. A window opens with the current snapshot when none is open. Two
-- index ranges, merged in order: the transactions that were running at the frontier, and
-- those that started after it. A transaction still open does not hold anything else back.
-- The batch comes back as one row of arrays (column-wise, in cursor order: the aggregate
-- reads the LIMIT's ordered index scans), which costs far less than a Python tuple per
-- row; the columns are named like the fields of core.batch.RawBatch.
-- name: fetch_batch
WITH s AS MATERIALIZED (
    SELECT w::text AS window_end, pg_snapshot_xmax(f) AS fx, pg_snapshot_xmax(w) AS wx,
           ARRAY(SELECT pg_snapshot_xip(f)) AS fxip, ARRAY(SELECT pg_snapshot_xip(w)) AS wxip
    FROM (SELECT %(frontier)s::pg_snapshot AS f,
                 coalesce(%(window_end)s::pg_snapshot, pg_current_snapshot()) AS w) x
), batch AS (
    -- Each range is read in index order and cut at the limit before the two are merged:
    -- a batch costs the same however large the window.
    (SELECT xid, id, tenant_id, function_name, model, variant, created_at, latency_ms,
            prompt_tokens, completion_tokens, cached_tokens, cost_usd, confidence, status,
            cache_write_tokens, cost_source, experiment_id, query_length, error_type,
            cache_write_1h_tokens, operation, provider
     FROM mlops.model_performance
     WHERE xid = ANY ((SELECT fxip FROM s)::xid8[]) AND xid < (SELECT wx FROM s)
       AND xid <> ALL ((SELECT wxip FROM s)::xid8[])
       AND (xid, id) > (%(xid)s::text::xid8, %(id)s::bigint)
     ORDER BY xid, id LIMIT %(limit)s)
    UNION ALL
    (SELECT xid, id, tenant_id, function_name, model, variant, created_at, latency_ms,
            prompt_tokens, completion_tokens, cached_tokens, cost_usd, confidence, status,
            cache_write_tokens, cost_source, experiment_id, query_length, error_type,
            cache_write_1h_tokens, operation, provider
     FROM mlops.model_performance
     WHERE xid >= (SELECT fx FROM s) AND xid < (SELECT wx FROM s)
       AND xid <> ALL ((SELECT wxip FROM s)::xid8[])
       AND (xid, id) > (%(xid)s::text::xid8, %(id)s::bigint)
     ORDER BY xid, id LIMIT %(limit)s)
    ORDER BY xid, id
    LIMIT %(limit)s
)
SELECT count(*) AS rows, (SELECT window_end FROM s) AS window_end,
       array_agg(xid::text::bigint) AS xid,
       array_agg(id) AS id,
       array_agg(tenant_id || chr(31) || function_name || chr(31) || model || chr(31) || variant)
           AS key,
       array_agg(date_part('epoch', created_at)) AS created_at,
       array_agg(latency_ms) AS latency_ms,
       array_agg(prompt_tokens::bigint) AS prompt_tokens,
       array_agg(completion_tokens::bigint) AS completion_tokens,
       array_agg(cached_tokens::bigint) AS cached_tokens,
       array_agg(coalesce((cost_usd * 1000000000000)::bigint, -1)) AS cost_pico,
       array_agg(coalesce(confidence, -1)) AS confidence,
       array_agg(status = 'error') AS is_error,
       array_agg(cache_write_tokens::bigint) AS cache_write_tokens,
       array_agg(cost_source = 'caller') AS caller_cost,
       array_agg(experiment_id::text) AS experiment_id,
       array_agg(coalesce(query_length, -1)) AS query_length,
       array_agg(error_type) AS error_type,
       array_agg(cache_write_1h_tokens::bigint) AS cache_write_1h_tokens,
       -- NULL for the usual ('chat', provider from the price table): cheap to send.
       array_agg(nullif(operation || chr(31) || coalesce(provider, ''), 'chat' || chr(31)))
           AS gen_ai
FROM batch;

-- Rows already consumed by the cursor, newest first: those created after %(since)s
-- (unix seconds), at most %(limit)s (NULL: all). Restarts replay them into the
-- monitors; a tuple per row is fine there. Columns named like core.batch.RawBatch's fields.
-- name: consumed_rows
SELECT xid::text::bigint AS xid, id,
       tenant_id || chr(31) || function_name || chr(31) || model || chr(31) || variant AS key,
       date_part('epoch', created_at) AS created_at, latency_ms,
       prompt_tokens::bigint AS prompt_tokens, completion_tokens::bigint AS completion_tokens,
       cached_tokens::bigint AS cached_tokens,
       coalesce((cost_usd * 1000000000000)::bigint, -1) AS cost_pico,
       coalesce(confidence, -1) AS confidence, status = 'error' AS is_error,
       cache_write_tokens::bigint AS cache_write_tokens, cost_source = 'caller' AS caller_cost,
       experiment_id::text AS experiment_id, coalesce(query_length, -1) AS query_length,
       error_type, cache_write_1h_tokens::bigint AS cache_write_1h_tokens,
       nullif(operation || chr(31) || coalesce(provider, ''), 'chat' || chr(31)) AS gen_ai
FROM mlops.model_performance
WHERE mlops.is_consumed(xid, id, %(cursor_frontier)s::pg_snapshot, %(cursor_window_end)s::pg_snapshot,
                        %(cursor_xid)s::text::xid8, %(cursor_id)s::bigint)
  AND created_at > to_timestamp(%(since)s)
ORDER BY xid DESC, id DESC
LIMIT %(limit)s;

-- The oldest committed row the consumer has not taken yet (the first in cursor order of
-- the two ranges fetch_batch reads): its age is the processor's lag.
-- name: oldest_pending
SELECT date_part('epoch', min(created_at)) AS created_at FROM (
    (SELECT created_at FROM mlops.model_performance
     WHERE xid = ANY (ARRAY(SELECT pg_snapshot_xip(%(cursor_frontier)s::pg_snapshot)))
       AND NOT mlops.is_consumed(xid, id, %(cursor_frontier)s::pg_snapshot, %(cursor_window_end)s::pg_snapshot,
                               %(cursor_xid)s::text::xid8, %(cursor_id)s::bigint)
     ORDER BY xid, id LIMIT 1)
    UNION ALL
    (SELECT created_at FROM mlops.model_performance
     WHERE xid >= pg_snapshot_xmax(%(cursor_frontier)s::pg_snapshot)
       AND NOT mlops.is_consumed(xid, id, %(cursor_frontier)s::pg_snapshot, %(cursor_window_end)s::pg_snapshot,
                               %(cursor_xid)s::text::xid8, %(cursor_id)s::bigint)
     ORDER BY xid, id LIMIT 1)
) p;

-- How long the oldest open writing transaction (anywhere in the cluster) has been running
-- (its rows wait for it; nothing else does).
-- name: horizon_age
SELECT coalesce(max(date_part('epoch', now() - xact_start)), 0)
FROM pg_stat_activity
WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid();

-- name: database_now
SELECT date_part('epoch', now()) AS now;

-- What a batch changes in the pipeline's own tables, in one statement: advance the cursor
-- (compare-and-set: no row when someone else moved it, and then nothing else is written),
-- upsert the absolute totals of the series the batch touched, quarantine bad rows. The
-- monitors' writes follow in the same transaction (Repository.persist).
-- name: persist_batch
WITH checkpoint AS (
    UPDATE mlops.consumer_checkpoints
    SET frontier = %(new_frontier)s::pg_snapshot, window_end = %(new_window_end)s::pg_snapshot,
        last_xid = %(new_xid)s::text::xid8, last_id = %(new_id)s,
        id_horizon = coalesce(
            pg_sequence_last_value('mlops.model_performance_id_seq'), id_horizon),
        events_total = events_total + %(events)s,
        quarantined_total = quarantined_total + %(quarantined)s,
        updated_at = now()
    WHERE consumer = %(consumer)s AND frontier::text = %(old_frontier)s
      AND window_end::text IS NOT DISTINCT FROM %(old_window_end)s
      AND last_xid = %(old_xid)s::text::xid8 AND last_id = %(old_id)s
      AND state_version = %(version)s
    RETURNING date_part('epoch', updated_at) AS at
), series AS (
    INSERT INTO mlops.series_totals AS s (
        consumer, tenant_id, function_name, model, variant,
        success_count, error_count, latency_sum_seconds, latency_buckets,
        prompt_tokens, completion_tokens, cached_tokens, input_token_buckets,
        output_token_buckets, cost_pico_usd, unpriced_count, confidence_count,
        confidence_sum, confidence_buckets,
        last_event_at, updated_at)
    SELECT %(consumer)s, t.tenant_id, t.function_name, t.model, t.variant,
           t.success_count, t.error_count, t.latency_sum_seconds,
           (%(latency_buckets)s::bigint[])[(t.n - 1) * %(nl)s + 1 : t.n * %(nl)s],
           t.prompt_tokens, t.completion_tokens, t.cached_tokens,
           (%(input_token_buckets)s::bigint[])[(t.n - 1) * %(nt)s + 1 : t.n * %(nt)s],
           (%(output_token_buckets)s::bigint[])[(t.n - 1) * %(nt)s + 1 : t.n * %(nt)s],
           t.cost_pico_usd, t.unpriced_count, t.confidence_count, t.confidence_sum,
           (%(confidence_buckets)s::bigint[])[(t.n - 1) * %(nc)s + 1 : t.n * %(nc)s],
           to_timestamp(nullif(t.last_event_at, 0)), now()
    -- Flat array literals, one per column (bucket matrices row-major, sliced per series):
    -- far cheaper to build and parse than a row or a JSON object per series.
    FROM unnest(%(tenant_id)s::text[], %(function_name)s::text[], %(model)s::text[],
                %(variant)s::text[], %(success_count)s::bigint[], %(error_count)s::bigint[],
                %(latency_sum_seconds)s::float8[], %(prompt_tokens)s::bigint[],
                %(completion_tokens)s::bigint[], %(cached_tokens)s::bigint[],
                %(cost_pico_usd)s::numeric[], %(unpriced_count)s::bigint[],
                %(confidence_count)s::bigint[], %(confidence_sum)s::float8[],
                %(last_event_at)s::float8[])
         WITH ORDINALITY AS t(tenant_id, function_name, model, variant, success_count,
                              error_count, latency_sum_seconds, prompt_tokens,
                              completion_tokens, cached_tokens, cost_pico_usd, unpriced_count,
                              confidence_count, confidence_sum, last_event_at, n)
    WHERE EXISTS (SELECT FROM checkpoint)
    ON CONFLICT (consumer, tenant_id, function_name, model, variant) DO UPDATE SET
        success_count = EXCLUDED.success_count,
        error_count = EXCLUDED.error_count,
        latency_sum_seconds = EXCLUDED.latency_sum_seconds,
        latency_buckets = EXCLUDED.latency_buckets,
        prompt_tokens = EXCLUDED.prompt_tokens,
        completion_tokens = EXCLUDED.completion_tokens,
        cached_tokens = EXCLUDED.cached_tokens,
        input_token_buckets = EXCLUDED.input_token_buckets,
        output_token_buckets = EXCLUDED.output_token_buckets,
        cost_pico_usd = EXCLUDED.cost_pico_usd,
        unpriced_count = EXCLUDED.unpriced_count,
        confidence_count = EXCLUDED.confidence_count,
        confidence_sum = EXCLUDED.confidence_sum,
        confidence_buckets = EXCLUDED.confidence_buckets,
        last_event_at = EXCLUDED.last_event_at,
        updated_at = EXCLUDED.updated_at
), quarantined AS (
    INSERT INTO mlops.quarantine (consumer, tenant_id, source_id, reason, row_data)
    SELECT %(consumer)s, m.tenant_id, m.id, r.reason, to_jsonb(m)
    FROM unnest(%(quarantine_ids)s::bigint[], %(quarantine_reasons)s::text[]) AS r(id, reason)
    JOIN mlops.model_performance m ON m.id = r.id
    WHERE EXISTS (SELECT FROM checkpoint)
    ON CONFLICT (consumer, source_table, source_id) DO NOTHING
)
-- No checkpoint row: the cursor moved; the error rolls back everything sent with it.
SELECT coalesce((SELECT at FROM checkpoint), mlops.cursor_moved(%(consumer)s)) AS at;

-- name: try_lock
SELECT pg_try_advisory_lock(hashtextextended('stream_mlops.consumer:' || %(consumer)s, 0));

-- After a dump/restore into another cluster the stored xids mean nothing there. A row was
-- consumed iff its id is at or below the cursor's id horizon (rows written since, here or
-- there, have higher ids) and the cursor consumed it in the old cluster's terms.
-- Consumed rows get xid 1, the rest xid 2 (both below any live transaction id), and the
-- cursor's frontier becomes "everything below 2"; new rows get real xids and sort after
-- both. The caller holds a lock that keeps writers out meanwhile.
-- name: rewrite_restored_xids
UPDATE mlops.model_performance
SET xid = CASE WHEN id <= %(id_horizon)s
                    AND mlops.is_consumed(xid, id, %(cursor_frontier)s::pg_snapshot, %(cursor_window_end)s::pg_snapshot,
                                        %(cursor_xid)s::text::xid8, %(cursor_id)s::bigint)
               THEN '1'::xid8 ELSE '2'::xid8 END;

-- name: reset_checkpoint_after_restore
UPDATE mlops.consumer_checkpoints
SET system_identifier = %(system_identifier)s, frontier = '2:2:', window_end = NULL,
    last_xid = '0'::xid8, last_id = 0, updated_at = now()
WHERE consumer = %(consumer)s;
