-- Model cards from live evidence (issue 14): versions with what triggered them and a
-- content hash (an unchanged regeneration adds no version), the human-written spec of each
-- function, and the triggers already handled (so a restart neither misses nor repeats one).
SET LOCAL ROLE mlops_owner;

ALTER TABLE mlops.model_cards
    ADD COLUMN content_hash  text,
    -- What the trigger was about: the drift alert, the deployment, the schedule's period.
    ADD COLUMN trigger_ref   text,
    ADD COLUMN window_start  timestamptz,
    ADD COLUMN window_end    timestamptz,
    ADD CONSTRAINT trigger_must_be_a_card_trigger CHECK (
        trigger IN ('scheduled', 'drift', 'promoted', 'rolled_back', 'manual')),
    ADD CONSTRAINT version_must_be_positive CHECK (version >= 1);
CREATE INDEX model_cards_latest
    ON mlops.model_cards (tenant_id, function_name, model, version DESC);

-- One spec per (tenant, function), as validated by `stream-mlops cards spec FILE`.
CREATE TABLE mlops.model_card_specs (
    tenant_id     text NOT NULL DEFAULT 'default',
    function_name text NOT NULL,
    spec          jsonb NOT NULL,
    source        text,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, function_name),
    CONSTRAINT spec_must_be_a_json_object CHECK (jsonb_typeof(spec) = 'object')
);

-- Drift alerts and deployment events already turned into a card (or found unchanged).
CREATE TABLE mlops.model_card_triggers (
    tenant_id     text NOT NULL,
    function_name text NOT NULL,
    ref           text NOT NULL,
    handled_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, function_name, ref)
);

CREATE TRIGGER model_card_specs_audit AFTER INSERT OR UPDATE OR DELETE
    ON mlops.model_card_specs
    FOR EACH ROW EXECUTE FUNCTION mlops.audit_change('updated_at');

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['model_card_specs', 'model_card_triggers'] LOOP
        EXECUTE format('ALTER TABLE mlops.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE mlops.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY reader_own_tenant ON mlops.%I FOR SELECT TO mlops_reader '
            'USING (tenant_id = ANY ((SELECT mlops.tenants_of(current_user))::text[]))', t);
        EXECUTE format(
            'CREATE POLICY processor_all ON mlops.%I FOR ALL TO mlops_processor '
            'USING (true) WITH CHECK (true)', t);
        EXECUTE format('GRANT SELECT ON mlops.%I TO mlops_reader', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON mlops.%I TO mlops_processor', t);
    END LOOP;
END
$$;

-- The application describes its own functions.
CREATE POLICY writer_own_tenant ON mlops.model_card_specs FOR ALL TO mlops_writer
    USING (tenant_id = ANY ((SELECT mlops.tenants_of(current_user))::text[]))
    WITH CHECK (tenant_id = ANY ((SELECT mlops.tenants_of(current_user))::text[]));
GRANT SELECT, INSERT, UPDATE ON mlops.model_card_specs TO mlops_writer;
