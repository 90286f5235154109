-- A tenant's roles cannot hurt the processor or another tenant (threat model: docs/security.md).
SET LOCAL ROLE mlops_owner;

------------------------------------------------------------------------------------------
-- Processor-owned data stays processor-owned. The writer creates, starts, stops and
-- describes its tenants' experiments; it never writes what the processor derives from the
-- stream (results, decision, the lifecycle times), so no row it writes can feed the
-- processor a state of its making.
------------------------------------------------------------------------------------------
REVOKE INSERT, UPDATE ON mlops.experiments FROM mlops_writer;
GRANT INSERT (tenant_id, name, function_name, variants, primary_metric, guardrails, alpha,
              min_effect, min_samples, auto_stop, description)
    ON mlops.experiments TO mlops_writer;
GRANT UPDATE (status, description) ON mlops.experiments TO mlops_writer;

-- The audit row is written by the trigger with its owner's rights, so any role whose
-- change is audited can make it (the writer could not create an experiment before) and
-- no role can write audit rows itself. The actor is the login that made the change.
CREATE OR REPLACE FUNCTION mlops.audit_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = mlops, pg_catalog
AS $$
DECLARE
    before_row jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
    after_row  jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
BEGIN
    IF TG_OP = 'UPDATE' AND (before_row - TG_ARGV) = (after_row - TG_ARGV) THEN
        RETURN NULL;
    END IF;
    INSERT INTO mlops.audit_log (table_name, operation, row_before, row_after, actor,
                                 session_role)
    VALUES (TG_TABLE_NAME, TG_OP, before_row, after_row, session_user, session_user);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION mlops.audit_change() FROM PUBLIC;
REVOKE INSERT ON mlops.audit_log FROM mlops_processor;

-- Derived columns of experiments are bookkeeping for the audit too: the processor writes
-- them every few seconds.
DROP TRIGGER experiments_audit ON mlops.experiments;
CREATE TRIGGER experiments_audit AFTER INSERT OR UPDATE OR DELETE ON mlops.experiments
    FOR EACH ROW EXECUTE FUNCTION mlops.audit_change('results', 'decision', 'updated_at');

------------------------------------------------------------------------------------------
-- Names are safe everywhere they go (terminal, e-mail headers, Prometheus labels, CSV):
-- no C0/C1 control characters, no line or paragraph separators, no bidirectional
-- controls. NOT VALID: rows stored before this migration are not re-checked here (the
-- processor quarantines them), every new row is.
------------------------------------------------------------------------------------------
CREATE FUNCTION mlops.is_safe_label(value text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT value !~ '[\x01-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]'
$$;
GRANT EXECUTE ON FUNCTION mlops.is_safe_label(text) TO mlops_writer, mlops_reader,
    mlops_processor;

ALTER TABLE mlops.model_performance
    ADD CONSTRAINT tenant_id_must_not_contain_control_or_bidi_characters
        CHECK (mlops.is_safe_label(tenant_id)) NOT VALID,
    ADD CONSTRAINT function_name_must_not_contain_control_or_bidi_characters
        CHECK (mlops.is_safe_label(function_name)) NOT VALID,
    ADD CONSTRAINT model_must_not_contain_control_or_bidi_characters
        CHECK (mlops.is_safe_label(model)) NOT VALID,
    ADD CONSTRAINT model_version_must_not_contain_control_or_bidi_characters
        CHECK (mlops.is_safe_label(model_version)) NOT VALID,
    ADD CONSTRAINT variant_must_not_contain_control_or_bidi_characters
        CHECK (mlops.is_safe_label(variant)) NOT VALID,
    ADD CONSTRAINT deployment_slot_must_not_contain_control_or_bidi_characters
        CHECK (mlops.is_safe_label(deployment_slot)) NOT VALID,
    ADD CONSTRAINT request_id_must_not_contain_control_or_bidi_characters
        CHECK (mlops.is_safe_label(request_id)) NOT VALID;

ALTER TABLE mlops.experiments
    ADD CONSTRAINT function_name_must_not_contain_control_or_bidi_characters
        CHECK (mlops.is_safe_label(function_name)) NOT VALID,
    ADD CONSTRAINT tenant_id_must_not_contain_control_or_bidi_characters
        CHECK (mlops.is_safe_label(tenant_id)) NOT VALID;

ALTER TABLE mlops.thresholds
    ADD CONSTRAINT function_name_must_not_contain_control_or_bidi_characters
        CHECK (mlops.is_safe_label(function_name)) NOT VALID;

------------------------------------------------------------------------------------------
-- An alert e-mail says what was true when its notification was queued: a message that
-- waits for a relay must not read "Resolved" under a FIRING subject.
------------------------------------------------------------------------------------------
ALTER TABLE mlops.alert_outbox
    ADD COLUMN severity      text,
    ADD COLUMN function_name text,
    ADD COLUMN title         text,
    ADD COLUMN message       text,
    ADD COLUMN first_seen    timestamptz;

------------------------------------------------------------------------------------------
-- Readers see no other tenant's volume or names: the checkpoint is global (its event
-- count is every tenant's traffic), and column statistics would let EXPLAIN confirm
-- another tenant's function names (row estimates differ for common values).
------------------------------------------------------------------------------------------
REVOKE SELECT ON mlops.consumer_checkpoints FROM mlops_reader;
ALTER TABLE mlops.model_performance
    ALTER COLUMN tenant_id SET STATISTICS 0,
    ALTER COLUMN function_name SET STATISTICS 0,
    ALTER COLUMN model SET STATISTICS 0,
    ALTER COLUMN variant SET STATISTICS 0,
    ALTER COLUMN error_type SET STATISTICS 0;

RESET ROLE;
-- Every object owned by mlops_owner (0009 created drift_references as the migrating role,
-- and the migration table is created before the roles exist).
ALTER TABLE mlops.drift_references OWNER TO mlops_owner;
ALTER TABLE mlops.schema_migrations OWNER TO mlops_owner;
