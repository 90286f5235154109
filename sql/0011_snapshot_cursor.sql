-- No tenant holds back another: the cursor is a pair of snapshots, as in PgQ, instead of a
-- position below the oldest running transaction.
--
-- Everything visible in `frontier` is consumed. The rows committed since are read in a
-- window that ends at `window_end` (a snapshot taken when the window opened) in (xid, id)
-- order, and (last_xid, last_id) is how far into the window the consumer got. A window
-- holds the transactions that were running at the frontier and ended before `window_end`,
-- plus those that started after the frontier and ended before `window_end`: a writer's
-- transaction left open for an hour delays only its own rows, which join a later window
-- when it commits. Once a window is consumed it becomes the frontier.
SET LOCAL ROLE mlops_owner;

ALTER TABLE mlops.consumer_checkpoints
    ADD COLUMN frontier   pg_snapshot NOT NULL DEFAULT '1:1:',
    ADD COLUMN window_end pg_snapshot;

-- Cursors of the previous kind: every row of a transaction below last_xid was consumed,
-- and last_xid's up to last_id (the transaction had ended). As snapshots: the frontier is
-- "everything below last_xid", and a window of last_xid alone is open at last_id.
UPDATE mlops.consumer_checkpoints
SET frontier = (last_xid::text || ':' || last_xid::text || ':')::pg_snapshot,
    window_end = ((last_xid::text::numeric + 1)::text || ':'
                  || (last_xid::text::numeric + 1)::text || ':')::pg_snapshot
WHERE last_xid > '0'::xid8;

-- Whether a row is consumed by a cursor (replays, re-costing, restores).
CREATE FUNCTION mlops.is_consumed(row_xid xid8, row_id bigint, frontier pg_snapshot,
                                  window_end pg_snapshot, last_xid xid8, last_id bigint)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT pg_visible_in_snapshot(row_xid, frontier)
        OR (window_end IS NOT NULL AND pg_visible_in_snapshot(row_xid, window_end)
            AND (row_xid, row_id) <= (last_xid, last_id))
$$;
GRANT EXECUTE ON FUNCTION mlops.is_consumed(xid8, bigint, pg_snapshot, pg_snapshot, xid8,
                                            bigint) TO mlops_processor;
