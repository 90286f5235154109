-- A batch's persist is one pipeline ending in one Sync, i.e. one implicit transaction: the
-- cursor's compare-and-set fails the persist statement itself (with this error), which
-- rolls back the series totals and the monitors' writes sent with it. Before, the
-- processor read the statement's result and then sent COMMIT: one round trip more a batch.
SET LOCAL ROLE mlops_owner;

CREATE FUNCTION mlops.cursor_moved(consumer text) RETURNS double precision
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    RAISE EXCEPTION 'cursor ''%'' was moved by another process, or its totals were re-costed',
        consumer USING ERRCODE = 'SM001';
END
$$;
REVOKE ALL ON FUNCTION mlops.cursor_moved(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mlops.cursor_moved(text) TO mlops_processor;
