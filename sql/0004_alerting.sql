-- Alert lifecycle details and the e-mail outbox.
SET LOCAL ROLE mlops_owner;

ALTER TABLE mlops.alerts
    ADD COLUMN rule      text,
    ADD COLUMN value     double precision,
    ADD COLUMN threshold double precision;

-- A message is queued in the same transaction as the alert change it reports, and sent
-- after that commits; failed sends are retried with backoff.
CREATE TABLE mlops.alert_outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id        bigint NOT NULL REFERENCES mlops.alerts (id) ON DELETE CASCADE,
    tenant_id       text NOT NULL,
    kind            text NOT NULL
        CONSTRAINT kind_must_be_a_notification
        CHECK (kind IN ('firing', 'escalated', 'still firing', 'resolved')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    last_error      text
);
CREATE INDEX alert_outbox_due ON mlops.alert_outbox (next_attempt_at) WHERE sent_at IS NULL;

ALTER TABLE mlops.alert_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE mlops.alert_outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY processor_all ON mlops.alert_outbox FOR ALL TO mlops_processor
    USING (true) WITH CHECK (true);
CREATE POLICY reader_own_tenant ON mlops.alert_outbox FOR SELECT TO mlops_reader
    USING (tenant_id = ANY ((SELECT mlops.tenants_of(current_user))::text[]));
GRANT SELECT ON mlops.alert_outbox TO mlops_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON mlops.alert_outbox TO mlops_processor;
