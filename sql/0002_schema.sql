-- Core schema. Every object is owned by mlops_owner, which has no RLS policy of its own:
-- owning a table does not let anybody read other tenants' rows (FORCE ROW LEVEL SECURITY).
SET LOCAL ROLE mlops_owner;
SET LOCAL search_path = mlops, pg_catalog;

------------------------------------------------------------------------------------------
-- Tenancy: which (login or group) role acts for which tenant.
------------------------------------------------------------------------------------------
CREATE TABLE mlops.tenant_roles (
    role_name  text NOT NULL,
    tenant_id  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role_name, tenant_id),
    CONSTRAINT tenant_id_length CHECK (char_length(tenant_id) BETWEEN 1 AND 100)
);

-- Tenants of a role the caller really holds. SECURITY DEFINER so callers need no grant on
-- tenant_roles; the session_user check stops one role from asking about another's tenants.
CREATE FUNCTION mlops.tenants_of(p_role name) RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = mlops, pg_catalog
AS $$
    SELECT coalesce(array_agg(DISTINCT t.tenant_id), '{}'::text[])
    FROM mlops.tenant_roles t
    JOIN pg_catalog.pg_roles r ON r.rolname = t.role_name
    WHERE pg_catalog.pg_has_role(session_user, p_role, 'MEMBER')
      AND pg_catalog.pg_has_role(p_role, t.role_name, 'MEMBER')
$$;
REVOKE ALL ON FUNCTION mlops.tenants_of(name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mlops.tenants_of(name) TO mlops_writer, mlops_reader, mlops_processor;

------------------------------------------------------------------------------------------
-- Audit log of configuration changes (who, when, what).
------------------------------------------------------------------------------------------
CREATE TABLE mlops.audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name   text NOT NULL,
    operation    text NOT NULL,
    row_before   jsonb,
    row_after    jsonb,
    actor        text NOT NULL DEFAULT current_user,
    session_role text NOT NULL DEFAULT session_user,
    txid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
    changed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_table_time ON mlops.audit_log (table_name, changed_at DESC);

-- Columns named in TG_ARGV are bookkeeping (e.g. live results): an UPDATE that only touches
-- them is not a configuration change and is not logged.
CREATE FUNCTION mlops.audit_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = mlops, pg_catalog
AS $$
DECLARE
    before_row jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
    after_row  jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
BEGIN
    IF TG_OP = 'UPDATE' AND (before_row - TG_ARGV) = (after_row - TG_ARGV) THEN
        RETURN NULL;
    END IF;
    INSERT INTO mlops.audit_log (table_name, operation, row_before, row_after)
    VALUES (TG_TABLE_NAME, TG_OP, before_row, after_row);
    RETURN NULL;
END
$$;

------------------------------------------------------------------------------------------
-- Prices (USD per million tokens), versioned by effective_from; tenant rows override.
------------------------------------------------------------------------------------------
CREATE TABLE mlops.model_prices (
    id                        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model                     text NOT NULL,
    provider                  text NOT NULL,
    tenant_id                 text,
    input_usd_per_mtok        numeric(14, 6) NOT NULL,
    output_usd_per_mtok       numeric(14, 6) NOT NULL,
    cached_input_usd_per_mtok numeric(14, 6),
    cache_write_usd_per_mtok  numeric(14, 6),
    effective_from            timestamptz NOT NULL DEFAULT '2000-01-01T00:00:00Z',
    source                    text,
    created_at                timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT model_prices_prices_non_negative CHECK (
        input_usd_per_mtok >= 0 AND input_usd_per_mtok < 1000000
        AND output_usd_per_mtok >= 0 AND output_usd_per_mtok < 1000000
        AND (cached_input_usd_per_mtok IS NULL
             OR (cached_input_usd_per_mtok >= 0 AND cached_input_usd_per_mtok < 1000000))
        AND (cache_write_usd_per_mtok IS NULL
             OR (cache_write_usd_per_mtok >= 0 AND cache_write_usd_per_mtok < 1000000))),
    CONSTRAINT model_prices_model_length CHECK (char_length(model) BETWEEN 1 AND 200)
);
CREATE UNIQUE INDEX model_prices_version
    ON mlops.model_prices (model, coalesce(tenant_id, ''), effective_from);

------------------------------------------------------------------------------------------
-- One row per AI request: the log the processor consumes.
------------------------------------------------------------------------------------------
CREATE TABLE mlops.model_performance (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Writing transaction's id: the consumer reads only below the snapshot xmin, so a row
    -- that commits late can never be skipped (ids do not commit in order).
    xid               xid8 NOT NULL DEFAULT pg_current_xact_id(),
    tenant_id         text NOT NULL DEFAULT 'default',
    function_name     text NOT NULL,
    model             text NOT NULL,
    model_version     text,
    variant           text NOT NULL DEFAULT 'control',
    experiment_id     uuid,
    deployment_slot   text,
    request_id        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    latency_ms        double precision NOT NULL,
    prompt_tokens     integer NOT NULL DEFAULT 0,
    completion_tokens integer NOT NULL DEFAULT 0,
    cached_tokens     integer NOT NULL DEFAULT 0,
    cost_usd          numeric(18, 12),
    -- 'caller' (sent by the client), 'price_table' (priced by the trigger) or 'unpriced'
    -- (model not in the price table: cost unknown, never silently $0).
    cost_source       text NOT NULL DEFAULT 'caller',
    confidence        double precision,
    query_length      integer,
    status            text NOT NULL DEFAULT 'success',
    error_type        text,
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Constraint names say which column is wrong: they appear in the error message.
    CONSTRAINT tenant_id_must_be_1_to_100_chars CHECK (
        char_length(tenant_id) BETWEEN 1 AND 100 AND tenant_id !~ '[[:cntrl:]]'),
    CONSTRAINT function_name_must_be_1_to_200_chars CHECK (
        char_length(function_name) BETWEEN 1 AND 200 AND function_name !~ '[[:cntrl:]]'),
    CONSTRAINT model_must_be_1_to_200_chars CHECK (
        char_length(model) BETWEEN 1 AND 200 AND model !~ '[[:cntrl:]]'),
    CONSTRAINT model_version_must_be_at_most_100_chars CHECK (char_length(model_version) <= 100),
    CONSTRAINT variant_must_be_1_to_100_chars CHECK (
        char_length(variant) BETWEEN 1 AND 100 AND variant !~ '[[:cntrl:]]'),
    CONSTRAINT deployment_slot_must_be_1_to_50_chars CHECK (
        char_length(deployment_slot) BETWEEN 1 AND 50),
    CONSTRAINT request_id_must_be_at_most_200_chars CHECK (char_length(request_id) <= 200),
    CONSTRAINT latency_ms_must_be_finite_between_0_and_86400000 CHECK (
        latency_ms >= 0 AND latency_ms <= 86400000),
    CONSTRAINT prompt_tokens_must_be_non_negative CHECK (prompt_tokens >= 0),
    CONSTRAINT completion_tokens_must_be_non_negative CHECK (completion_tokens >= 0),
    CONSTRAINT cached_tokens_must_be_between_0_and_prompt_tokens CHECK (
        cached_tokens >= 0 AND cached_tokens <= prompt_tokens),
    CONSTRAINT cost_usd_must_be_finite_between_0_and_1000000 CHECK (
        cost_usd >= 0 AND cost_usd < 1000000),
    CONSTRAINT cost_source_must_be_caller_price_table_or_unpriced CHECK (
        cost_source IN ('caller', 'price_table', 'unpriced')),
    CONSTRAINT confidence_must_be_between_0_and_1 CHECK (confidence >= 0 AND confidence <= 1),
    CONSTRAINT query_length_must_be_non_negative CHECK (query_length >= 0),
    CONSTRAINT status_must_be_success_or_error CHECK (status IN ('success', 'error')),
    CONSTRAINT error_type_only_with_status_error_max_200_chars CHECK (
        error_type IS NULL OR (status = 'error' AND char_length(error_type) <= 200)),
    CONSTRAINT metadata_must_be_a_json_object_under_8kb CHECK (
        jsonb_typeof(metadata) = 'object' AND pg_column_size(metadata) <= 8192)
);
CREATE INDEX model_performance_cursor ON mlops.model_performance (xid, id);
CREATE INDEX model_performance_function_time
    ON mlops.model_performance (tenant_id, function_name, created_at DESC);
CREATE INDEX model_performance_created_brin ON mlops.model_performance USING brin (created_at);

-- Price a request from the price version in force at its created_at, tenant override first.
-- prompt_tokens include cached_tokens (OpenAI convention); the client converts others.
-- No SET search_path (every name is qualified): that clause alone costs ~5 % of a bulk
-- insert, and the trigger only runs for rows without a caller-sent cost (WHEN below).
CREATE FUNCTION mlops.price_request() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    p mlops.model_prices%ROWTYPE;
BEGIN
    SELECT * INTO p FROM mlops.model_prices mp
    WHERE mp.model = NEW.model
      AND (mp.tenant_id IS NULL OR mp.tenant_id = NEW.tenant_id)
      AND mp.effective_from <= NEW.created_at
    ORDER BY (mp.tenant_id IS NULL), mp.effective_from DESC
    LIMIT 1;
    IF NOT FOUND THEN
        NEW.cost_source := 'unpriced';
        RETURN NEW;
    END IF;
    NEW.cost_source := 'price_table';
    NEW.cost_usd := round((
          (NEW.prompt_tokens - NEW.cached_tokens) * p.input_usd_per_mtok
        + NEW.cached_tokens * coalesce(p.cached_input_usd_per_mtok, p.input_usd_per_mtok)
        + NEW.completion_tokens * p.output_usd_per_mtok) / 1000000, 12);
    RETURN NEW;
END
$$;

CREATE TRIGGER model_performance_price
    BEFORE INSERT ON mlops.model_performance
    FOR EACH ROW WHEN (NEW.cost_usd IS NULL) EXECUTE FUNCTION mlops.price_request();

-- A wake-up, never the data: any role may LISTEN on any channel.
CREATE FUNCTION mlops.notify_new_rows() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('mlops_events', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER model_performance_notify
    AFTER INSERT ON mlops.model_performance
    FOR EACH STATEMENT EXECUTE FUNCTION mlops.notify_new_rows();

-- Poll-only mode: NOTIFY serialises committing transactions on a global lock, which costs
-- throughput with many concurrent single-row writers. Without it the processor polls.
CREATE FUNCTION mlops.set_notify(enabled boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = mlops, pg_catalog
AS $$
BEGIN
    IF enabled THEN
        ALTER TABLE mlops.model_performance ENABLE TRIGGER model_performance_notify;
    ELSE
        ALTER TABLE mlops.model_performance DISABLE TRIGGER model_performance_notify;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION mlops.set_notify(boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mlops.set_notify(boolean) TO mlops_processor;

------------------------------------------------------------------------------------------
-- Tables of the original guide.
------------------------------------------------------------------------------------------
CREATE TABLE mlops.experiments (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      text NOT NULL DEFAULT 'default',
    name           text NOT NULL,
    function_name  text NOT NULL,
    status         text NOT NULL DEFAULT 'draft'
        CONSTRAINT status_must_be_draft_running_stopped_or_concluded
        CHECK (status IN ('draft', 'running', 'stopped', 'concluded')),
    variants       jsonb NOT NULL DEFAULT
        '[{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}]'::jsonb,
    primary_metric text NOT NULL DEFAULT 'error_rate',
    guardrails     text[] NOT NULL DEFAULT '{}',
    alpha          double precision NOT NULL DEFAULT 0.05
        CONSTRAINT alpha_must_be_between_0_and_0_5 CHECK (alpha > 0 AND alpha <= 0.5),
    min_effect     double precision,
    min_samples    integer NOT NULL DEFAULT 100,
    seed           text NOT NULL DEFAULT gen_random_uuid()::text,
    results        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_by     text NOT NULL DEFAULT current_user,
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    stopped_at     timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE mlops.feature_store (
    tenant_id     text NOT NULL DEFAULT 'default',
    feature_group text NOT NULL,
    entity_id     text NOT NULL,
    feature_name  text NOT NULL,
    value         jsonb NOT NULL,
    version       integer NOT NULL DEFAULT 1,
    event_time    timestamptz NOT NULL DEFAULT now(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, feature_group, entity_id, feature_name, event_time)
);

CREATE TABLE mlops.drift_detection (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       text NOT NULL DEFAULT 'default',
    function_name   text NOT NULL,
    model           text,
    metric_name     text NOT NULL,
    test_name       text NOT NULL,
    statistic       double precision,
    p_value         double precision,
    threshold       double precision,
    effect_size     double precision,
    drift_detected  boolean NOT NULL,
    reference_window jsonb,
    current_window  jsonb,
    detected_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX drift_detection_function_time
    ON mlops.drift_detection (tenant_id, function_name, detected_at DESC);

CREATE TABLE mlops.cost_tracking (
    tenant_id         text NOT NULL DEFAULT 'default',
    function_name     text NOT NULL,
    model             text NOT NULL,
    period            text NOT NULL DEFAULT 'hour',
    period_start      timestamptz NOT NULL,
    request_count     bigint NOT NULL DEFAULT 0,
    prompt_tokens     bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cached_tokens     bigint NOT NULL DEFAULT 0,
    cost_usd          numeric(24, 12) NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, function_name, model, period, period_start)
);

CREATE TABLE mlops.alerts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       text NOT NULL DEFAULT 'default',
    alert_type      text NOT NULL
        CONSTRAINT alert_type_must_be_known
        CHECK (alert_type IN ('performance', 'cost', 'drift', 'deployment', 'experiment', 'pipeline')),
    severity        text NOT NULL DEFAULT 'warning'
        CONSTRAINT severity_must_be_info_warning_or_critical
        CHECK (severity IN ('info', 'warning', 'critical')),
    function_name   text,
    model           text,
    fingerprint     text NOT NULL,
    title           text NOT NULL,
    message         text NOT NULL,
    details         jsonb NOT NULL DEFAULT '{}'::jsonb,
    state           text NOT NULL DEFAULT 'firing'
        CONSTRAINT state_must_be_firing_acknowledged_or_resolved
        CHECK (state IN ('firing', 'acknowledged', 'resolved')),
    first_seen      timestamptz NOT NULL DEFAULT now(),
    last_seen       timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    notified_at     timestamptz,
    acknowledged_by text,
    acknowledged_at timestamptz
);
-- One open episode per fingerprint.
CREATE UNIQUE INDEX alerts_open_episode
    ON mlops.alerts (tenant_id, fingerprint) WHERE state <> 'resolved';
CREATE INDEX alerts_state_time ON mlops.alerts (state, last_seen DESC);

CREATE TABLE mlops.model_cards (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     text NOT NULL DEFAULT 'default',
    function_name text NOT NULL,
    model         text NOT NULL,
    version       integer NOT NULL DEFAULT 1,
    card          jsonb NOT NULL,
    trigger       text NOT NULL DEFAULT 'scheduled',
    generated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, function_name, model, version)
);

CREATE TABLE mlops.deployments (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       text NOT NULL DEFAULT 'default',
    function_name   text NOT NULL,
    version         text NOT NULL,
    slot            text NOT NULL
        CONSTRAINT slot_must_be_blue_or_green CHECK (slot IN ('blue', 'green')),
    status          text NOT NULL DEFAULT 'pending'
        CONSTRAINT status_must_be_a_deployment_state
        CHECK (status IN ('pending', 'testing', 'live', 'promoted', 'rolled_back', 'failed', 'retired')),
    traffic_percent double precision NOT NULL DEFAULT 0
        CONSTRAINT traffic_percent_must_be_between_0_and_100
        CHECK (traffic_percent >= 0 AND traffic_percent <= 100),
    health          jsonb NOT NULL DEFAULT '{}'::jsonb,
    reason          text,
    created_by      text NOT NULL DEFAULT current_user,
    created_at      timestamptz NOT NULL DEFAULT now(),
    promoted_at     timestamptz,
    rolled_back_at  timestamptz
);
CREATE INDEX deployments_function_time ON mlops.deployments (tenant_id, function_name, created_at DESC);

-- Alert thresholds; function_name NULL is the tenant-wide default.
CREATE TABLE mlops.thresholds (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     text NOT NULL DEFAULT 'default',
    function_name text,
    metric        text NOT NULL,
    value         double precision NOT NULL
        CONSTRAINT value_must_be_finite CHECK (value > '-Infinity' AND value < 'Infinity'),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX thresholds_scope ON mlops.thresholds (tenant_id, coalesce(function_name, ''), metric);

------------------------------------------------------------------------------------------
-- Pipeline bookkeeping.
------------------------------------------------------------------------------------------
-- The durable cursor. system_identifier: xids are only comparable within one cluster.
CREATE TABLE mlops.consumer_checkpoints (
    consumer          text PRIMARY KEY,
    system_identifier text NOT NULL,
    last_xid          xid8 NOT NULL DEFAULT '0'::xid8,
    last_id           bigint NOT NULL DEFAULT 0,
    -- The id sequence's value when the cursor last moved: every consumed row has an id at
    -- or below it, so after a restore rows above it are known to be unconsumed.
    id_horizon        bigint NOT NULL DEFAULT 0,
    events_total      bigint NOT NULL DEFAULT 0,
    quarantined_total bigint NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Per-series performance totals: the processor's state snapshot, committed with the cursor.
CREATE TABLE mlops.series_totals (
    consumer             text NOT NULL,
    tenant_id            text NOT NULL,
    function_name        text NOT NULL,
    model                text NOT NULL,
    variant              text NOT NULL,
    success_count        bigint NOT NULL DEFAULT 0,
    error_count          bigint NOT NULL DEFAULT 0,
    latency_sum_seconds  double precision NOT NULL DEFAULT 0,
    latency_buckets      bigint[] NOT NULL,
    prompt_tokens        bigint NOT NULL DEFAULT 0,
    completion_tokens    bigint NOT NULL DEFAULT 0,
    cached_tokens        bigint NOT NULL DEFAULT 0,
    input_token_buckets  bigint[] NOT NULL,
    output_token_buckets bigint[] NOT NULL,
    cost_pico_usd        numeric(38, 0) NOT NULL DEFAULT 0,
    unpriced_count       bigint NOT NULL DEFAULT 0,
    confidence_count     bigint NOT NULL DEFAULT 0,
    confidence_sum       double precision NOT NULL DEFAULT 0,
    confidence_buckets   bigint[] NOT NULL,
    last_event_at        timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, tenant_id, function_name, model, variant)
);

-- Rows the processor could not use, with the reason; processing goes on without them.
CREATE TABLE mlops.quarantine (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer       text NOT NULL,
    tenant_id      text,
    source_table   text NOT NULL DEFAULT 'model_performance',
    source_id      bigint NOT NULL,
    reason         text NOT NULL,
    row_data       jsonb NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (consumer, source_table, source_id)
);

------------------------------------------------------------------------------------------
-- Audit triggers on configuration tables.
------------------------------------------------------------------------------------------
CREATE TRIGGER experiments_audit AFTER INSERT OR UPDATE OR DELETE ON mlops.experiments
    FOR EACH ROW EXECUTE FUNCTION mlops.audit_change('results', 'updated_at');
CREATE TRIGGER deployments_audit AFTER INSERT OR UPDATE OR DELETE ON mlops.deployments
    FOR EACH ROW EXECUTE FUNCTION mlops.audit_change('health');
CREATE TRIGGER model_prices_audit AFTER INSERT OR UPDATE OR DELETE ON mlops.model_prices
    FOR EACH ROW EXECUTE FUNCTION mlops.audit_change();
CREATE TRIGGER thresholds_audit AFTER INSERT OR UPDATE OR DELETE ON mlops.thresholds
    FOR EACH ROW EXECUTE FUNCTION mlops.audit_change('updated_at');
CREATE TRIGGER tenant_roles_audit AFTER INSERT OR UPDATE OR DELETE ON mlops.tenant_roles
    FOR EACH ROW EXECUTE FUNCTION mlops.audit_change();

------------------------------------------------------------------------------------------
-- Row Level Security: every tenant-owned table, forced so the owner is no exception.
------------------------------------------------------------------------------------------
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['model_performance', 'experiments', 'feature_store',
                             'drift_detection', 'cost_tracking', 'alerts', 'model_cards',
                             'deployments', 'thresholds', 'series_totals', 'quarantine'] LOOP
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

CREATE POLICY writer_insert_own_tenant ON mlops.model_performance FOR INSERT TO mlops_writer
    WITH CHECK (tenant_id = ANY ((SELECT mlops.tenants_of(current_user))::text[]));
GRANT INSERT (tenant_id, function_name, model, model_version, variant, experiment_id,
              deployment_slot, request_id, created_at, latency_ms, prompt_tokens,
              completion_tokens, cached_tokens, cost_usd, confidence, query_length, status,
              error_type, metadata)
    ON mlops.model_performance TO mlops_writer;

------------------------------------------------------------------------------------------
-- Seed prices (USD per 1M tokens) from the providers' public price pages, 2025.
-- `stream-mlops prices import` refreshes them.
------------------------------------------------------------------------------------------
INSERT INTO mlops.model_prices
    (model, provider, input_usd_per_mtok, output_usd_per_mtok, cached_input_usd_per_mtok, source)
VALUES
    ('gpt-4o-mini',       'openai',    0.15,  0.60, 0.075, 'openai.com/api/pricing, 2025'),
    ('gpt-4o',            'openai',    2.50, 10.00, 1.25,  'openai.com/api/pricing, 2025'),
    ('gpt-4.1-mini',      'openai',    0.40,  1.60, 0.10,  'openai.com/api/pricing, 2025'),
    ('claude-3-5-haiku',  'anthropic', 0.80,  4.00, 0.08,  'anthropic.com/pricing, 2025'),
    ('claude-sonnet-4',   'anthropic', 3.00, 15.00, 0.30,  'anthropic.com/pricing, 2025'),
    ('gemini-2.0-flash',  'google',    0.10,  0.40, 0.025, 'ai.google.dev/pricing, 2025');

-- Global prices are public facts; tenant overrides are visible to their tenant only.
ALTER TABLE mlops.model_prices ENABLE ROW LEVEL SECURITY;
ALTER TABLE mlops.model_prices FORCE ROW LEVEL SECURITY;
CREATE POLICY prices_visible ON mlops.model_prices FOR SELECT
    USING (tenant_id IS NULL OR tenant_id = ANY ((SELECT mlops.tenants_of(current_user))::text[]));
CREATE POLICY processor_all ON mlops.model_prices FOR ALL TO mlops_processor
    USING (true) WITH CHECK (true);
GRANT SELECT ON mlops.model_prices TO mlops_writer, mlops_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON mlops.model_prices TO mlops_processor;

GRANT SELECT ON mlops.consumer_checkpoints TO mlops_reader;
GRANT SELECT ON SEQUENCE mlops.model_performance_id_seq TO mlops_processor;
GRANT SELECT, INSERT, UPDATE ON mlops.consumer_checkpoints TO mlops_processor;
GRANT INSERT ON mlops.audit_log TO mlops_processor;

-- Views run with the caller's rights, so they cannot be used to step around RLS.
CREATE VIEW mlops.performance_summary WITH (security_invoker = true) AS
SELECT tenant_id, function_name, model, variant,
       success_count + error_count AS requests,
       error_count,
       CASE WHEN success_count + error_count > 0
            THEN error_count::double precision / (success_count + error_count) END AS error_rate,
       CASE WHEN success_count + error_count > 0
            THEN 1000 * latency_sum_seconds / (success_count + error_count) END AS mean_latency_ms,
       prompt_tokens, completion_tokens, cached_tokens,
       cost_pico_usd / 1e12 AS cost_usd,
       unpriced_count,
       CASE WHEN confidence_count > 0 THEN confidence_sum / confidence_count END AS mean_confidence,
       last_event_at
FROM mlops.series_totals;
GRANT SELECT ON mlops.performance_summary TO mlops_reader, mlops_processor;

