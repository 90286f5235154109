-- What the user decides about a drift detector's reference, per function and metric
-- ('*': every metric of the function):
--   pinned        keep the reference after a confirmed drift (the alert stays open while
--                 the data stay away from it) instead of learning the new normal;
--   relearn_from  learn a new reference from the rows after this time (after an intended
--                 change such as a new prompt), also across restarts.
CREATE TABLE mlops.drift_references (
    tenant_id     text NOT NULL DEFAULT 'default',
    function_name text NOT NULL,
    metric        text NOT NULL
        CONSTRAINT drift_metric_must_be_known CHECK (metric IN (
            '*', 'latency', 'query_length', 'confidence', 'cost_per_request', 'error_rate',
            'error_type', 'model', 'volume')),
    pinned        boolean NOT NULL DEFAULT false,
    relearn_from  timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, function_name, metric)
);

CREATE TRIGGER drift_references_audit AFTER INSERT OR UPDATE OR DELETE ON mlops.drift_references
    FOR EACH ROW EXECUTE FUNCTION mlops.audit_change('updated_at');

ALTER TABLE mlops.drift_references ENABLE ROW LEVEL SECURITY;
ALTER TABLE mlops.drift_references FORCE ROW LEVEL SECURITY;
CREATE POLICY reader_own_tenant ON mlops.drift_references FOR SELECT TO mlops_reader
    USING (tenant_id = ANY ((SELECT mlops.tenants_of(current_user))::text[]));
CREATE POLICY processor_all ON mlops.drift_references FOR ALL TO mlops_processor
    USING (true) WITH CHECK (true);
GRANT SELECT ON mlops.drift_references TO mlops_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON mlops.drift_references TO mlops_processor;
