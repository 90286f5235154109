-- Experiments: what may be configured, the status lifecycle, and where live results go.
--   draft -> running -> stopped | concluded;  stopped -> running (resume).
-- Variants cannot change while an experiment runs: its counts, SRM check and tests assume
-- the split they were started with.
SET LOCAL ROLE mlops_owner;

ALTER TABLE mlops.experiments
    ADD COLUMN description text,
    -- Stop by itself (status 'concluded') once the primary metric reaches a decision.
    ADD COLUMN auto_stop boolean NOT NULL DEFAULT false,
    ADD COLUMN decision text NOT NULL DEFAULT 'continue',
    ADD COLUMN concluded_at timestamptz,
    ADD CONSTRAINT primary_metric_must_be_a_known_metric CHECK (primary_metric IN (
        'error_rate', 'latency', 'confidence', 'cost_per_request',
        'cost_per_successful_request')),
    ADD CONSTRAINT guardrails_must_be_known_metrics CHECK (guardrails <@ ARRAY[
        'error_rate', 'latency', 'confidence', 'cost_per_request',
        'cost_per_successful_request']::text[]),
    ADD CONSTRAINT min_samples_must_be_at_least_10 CHECK (min_samples >= 10),
    ADD CONSTRAINT min_effect_must_be_positive CHECK (min_effect IS NULL OR min_effect > 0),
    ADD CONSTRAINT variants_must_be_2_to_10_named_arms_with_weights CHECK (
        jsonb_typeof(variants) = 'array'
        AND jsonb_array_length(variants) BETWEEN 2 AND 10);

CREATE FUNCTION mlops.experiment_lifecycle() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'draft' THEN
            RAISE EXCEPTION 'experiment %: a new experiment starts as draft, not %',
                NEW.name, NEW.status USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
           (OLD.status = 'draft' AND NEW.status = 'running')
        OR (OLD.status = 'running' AND NEW.status IN ('stopped', 'concluded'))
        OR (OLD.status = 'stopped' AND NEW.status IN ('running', 'concluded'))) THEN
        RAISE EXCEPTION 'experiment %: cannot go from % to %', OLD.name, OLD.status,
            NEW.status USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.status <> 'draft' AND (NEW.variants IS DISTINCT FROM OLD.variants
            OR NEW.seed IS DISTINCT FROM OLD.seed
            OR NEW.function_name IS DISTINCT FROM OLD.function_name) THEN
        RAISE EXCEPTION 'experiment %: variants, seed and function are fixed once it has '
            'started; create a new experiment instead', OLD.name
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status = 'running' AND OLD.status = 'draft' THEN
        NEW.started_at := now();
    ELSIF NEW.status IN ('stopped', 'concluded') AND OLD.status = 'running' THEN
        NEW.stopped_at := now();
    END IF;
    IF NEW.status = 'concluded' AND OLD.status <> 'concluded' THEN
        NEW.concluded_at := now();
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER experiments_lifecycle BEFORE INSERT OR UPDATE ON mlops.experiments
    FOR EACH ROW EXECUTE FUNCTION mlops.experiment_lifecycle();

-- Readers see their tenants' experiments; the processor reads them all (RLS policies from
-- 0002) and writes results, decisions and auto-conclusions.
-- The application (writer role) manages its own tenants' experiments.
CREATE POLICY writer_own_tenant ON mlops.experiments FOR ALL TO mlops_writer
    USING (tenant_id = ANY ((SELECT mlops.tenants_of(current_user))::text[]))
    WITH CHECK (tenant_id = ANY ((SELECT mlops.tenants_of(current_user))::text[]));
GRANT SELECT, INSERT, UPDATE ON mlops.experiments TO mlops_writer;

-- An experiment's rows, for replaying them after a restart (partial: no cost for the rest).
CREATE INDEX model_performance_experiment ON mlops.model_performance (experiment_id, xid, id)
    WHERE experiment_id IS NOT NULL;
