-- Blue-green deployments of a function: the lifecycle, enforced here, and routing.
--
--   pending -> shifting -> promoted -> retired        (the old slot retired: done)
--   pending | shifting | promoted -> rolled_back      (by the gate or by hand)
--   pending | shifting | promoted -> failed           (health checks, a hard guard)
--   pending | shifting -> promoted                     (by hand, or the gate after its last step)
--
-- One active (pending, shifting or promoted) deployment per (tenant, function). Every change
-- of status writes a transition with its reason, every change of the share a row of the
-- traffic history (triggers, so no writer can skip them); the processor writes a gate result
-- at each decision. The share of the new version only grows while it shifts, so a unit
-- routed to it stays there (mlops.route).
SET LOCAL ROLE mlops_owner;

-- A deployment's steps: percentages strictly increasing in (0, 100].
CREATE FUNCTION mlops.steps_are_valid(steps double precision[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT cardinality(steps) BETWEEN 1 AND 20
       AND array_position(steps, NULL) IS NULL
       AND steps[1] > 0 AND steps[cardinality(steps)] <= 100
       AND NOT EXISTS (SELECT FROM generate_subscripts(steps, 1) i
                       WHERE i > 1 AND steps[i] <= steps[i - 1])
$$;
ALTER TABLE mlops.deployments
    DROP CONSTRAINT status_must_be_a_deployment_state,
    ADD CONSTRAINT status_must_be_a_deployment_state CHECK (
        status IN ('pending', 'shifting', 'promoted', 'retired', 'rolled_back', 'failed')),
    -- What was live when the deployment started: where rolled-back traffic goes.
    ADD COLUMN previous_slot    text,
    ADD COLUMN previous_version text,
    ADD COLUMN notes            text,
    ADD COLUMN artifact         text,
    -- Percent of units on the new version at each step, strictly increasing in (0, 100].
    ADD COLUMN steps            double precision[] NOT NULL DEFAULT '{10,25,50,100}',
    ADD COLUMN step_index       integer NOT NULL DEFAULT -1,
    ADD COLUMN min_samples      integer NOT NULL DEFAULT 200,
    ADD COLUMN step_seconds     double precision NOT NULL DEFAULT 300,
    ADD COLUMN health_url       text,
    ADD COLUMN alpha            double precision NOT NULL DEFAULT 0.05,
    -- Hard guard: the new version's error rate above this (over at least min_samples of
    -- its requests) fails the deployment whatever the live version does.
    ADD COLUMN max_error_rate   double precision NOT NULL DEFAULT 0.5,
    -- Routing hash seed (mlops.route, stream_mlops.deployments.routing).
    ADD COLUMN seed             text NOT NULL DEFAULT gen_random_uuid()::text,
    ADD COLUMN started_at       timestamptz,
    ADD COLUMN step_started_at  timestamptz,
    ADD COLUMN finished_at      timestamptz,
    ADD COLUMN retired_at       timestamptz,
    ADD COLUMN updated_at       timestamptz NOT NULL DEFAULT now(),
    -- The gate's last result and its resumable state (tests + cursor): the processor's.
    ADD COLUMN gate             jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD CONSTRAINT version_must_be_1_to_100_safe_chars CHECK (
        char_length(version) BETWEEN 1 AND 100 AND mlops.is_safe_label(version)),
    ADD CONSTRAINT function_name_must_be_1_to_200_safe_chars CHECK (
        char_length(function_name) BETWEEN 1 AND 200 AND mlops.is_safe_label(function_name)),
    ADD CONSTRAINT tenant_id_must_be_1_to_100_safe_chars CHECK (
        char_length(tenant_id) BETWEEN 1 AND 100 AND mlops.is_safe_label(tenant_id)),
    ADD CONSTRAINT steps_must_increase_within_0_and_100 CHECK (
        mlops.steps_are_valid(steps)),
    ADD CONSTRAINT min_samples_must_be_10_to_1000000000 CHECK (
        min_samples BETWEEN 10 AND 1000000000),
    ADD CONSTRAINT step_seconds_must_be_0_to_604800 CHECK (
        step_seconds >= 0 AND step_seconds <= 604800),
    ADD CONSTRAINT alpha_must_be_between_0_and_0_5 CHECK (alpha > 0 AND alpha <= 0.5),
    ADD CONSTRAINT max_error_rate_must_be_between_0_and_1 CHECK (
        max_error_rate > 0 AND max_error_rate <= 1),
    ADD CONSTRAINT health_url_must_be_http CHECK (
        health_url IS NULL OR (health_url ~ '^https?://[^[:space:][:cntrl:]]+$'
                               AND char_length(health_url) <= 2000)),
    ADD CONSTRAINT notes_must_be_safe CHECK (
        (notes IS NULL OR char_length(notes) <= 4000)
        AND (artifact IS NULL OR (char_length(artifact) <= 2000
                                  AND mlops.is_safe_label(artifact)))),
    ADD CONSTRAINT reason_must_be_at_most_2000_chars CHECK (char_length(reason) <= 2000);

CREATE UNIQUE INDEX deployments_one_active ON mlops.deployments (tenant_id, function_name)
    WHERE status IN ('pending', 'shifting', 'promoted');

------------------------------------------------------------------------------------------
-- History: transitions with their reason, the traffic share over time, gate results.
------------------------------------------------------------------------------------------
CREATE TABLE mlops.deployment_transitions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       text NOT NULL,
    deployment_id   bigint NOT NULL REFERENCES mlops.deployments (id) ON DELETE CASCADE,
    from_status     text,
    to_status       text NOT NULL,
    traffic_percent double precision NOT NULL,
    reason          text,
    actor           text NOT NULL DEFAULT session_user,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deployment_transitions_deployment
    ON mlops.deployment_transitions (deployment_id, id);

CREATE TABLE mlops.deployment_traffic (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       text NOT NULL,
    deployment_id   bigint NOT NULL REFERENCES mlops.deployments (id) ON DELETE CASCADE,
    traffic_percent double precision NOT NULL,
    step_index      integer NOT NULL,
    actor           text NOT NULL DEFAULT session_user,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deployment_traffic_deployment ON mlops.deployment_traffic (deployment_id, id);

-- outcome: hold (too little evidence yet, or time), step (next share), promote, rollback
-- (harm established), fail (a hard guard), retire (validated after promotion).
CREATE TABLE mlops.deployment_gate_results (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       text NOT NULL,
    deployment_id   bigint NOT NULL REFERENCES mlops.deployments (id) ON DELETE CASCADE,
    step_index      integer NOT NULL,
    traffic_percent double precision NOT NULL,
    outcome         text NOT NULL
        CONSTRAINT outcome_must_be_a_gate_outcome CHECK (
            outcome IN ('hold', 'step', 'promote', 'rollback', 'fail', 'retire')),
    samples_live    bigint NOT NULL DEFAULT 0,
    samples_new     bigint NOT NULL DEFAULT 0,
    -- {metric: {live, new, p_value, decision, n_live, n_new}}
    metrics         jsonb NOT NULL DEFAULT '{}'::jsonb,
    message         text NOT NULL,
    checked_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deployment_gate_results_deployment
    ON mlops.deployment_gate_results (deployment_id, id);

------------------------------------------------------------------------------------------
-- What is live for a function when no deployment is in progress: the last finished
-- deployment's new slot if it was promoted, else the slot it started from; blue when the
-- function was never deployed.
------------------------------------------------------------------------------------------
CREATE FUNCTION mlops.live_deployment(p_tenant text, p_function text,
                                      OUT slot text, OUT version text)
LANGUAGE sql STABLE
AS $$
    SELECT coalesce(
               (SELECT CASE WHEN d.status IN ('promoted', 'retired') THEN d.slot
                            ELSE d.previous_slot END
                FROM mlops.deployments d
                WHERE d.tenant_id = p_tenant AND d.function_name = p_function
                  AND d.status NOT IN ('pending', 'shifting')
                ORDER BY d.id DESC LIMIT 1), 'blue'),
           (SELECT CASE WHEN d.status IN ('promoted', 'retired') THEN d.version
                        ELSE d.previous_version END
            FROM mlops.deployments d
            WHERE d.tenant_id = p_tenant AND d.function_name = p_function
              AND d.status NOT IN ('pending', 'shifting')
            ORDER BY d.id DESC LIMIT 1)
$$;

CREATE FUNCTION mlops.deployment_lifecycle() RETURNS trigger
LANGUAGE plpgsql
SET search_path = mlops, pg_catalog
AS $$
DECLARE
    live record;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'pending' OR NEW.traffic_percent <> 0 THEN
            RAISE EXCEPTION 'deployment of %: a new deployment starts as pending with no '
                'traffic', NEW.function_name USING ERRCODE = 'check_violation';
        END IF;
        SELECT * INTO live FROM mlops.live_deployment(NEW.tenant_id, NEW.function_name);
        NEW.previous_slot := live.slot;
        NEW.previous_version := live.version;
        NEW.slot := CASE WHEN live.slot = 'blue' THEN 'green' ELSE 'blue' END;
        NEW.step_index := -1;
        NEW.gate := '{}'::jsonb;
        NEW.created_by := session_user;
        NEW.created_at := now();
        NEW.updated_at := now();
        NEW.reason := coalesce(NEW.reason, 'started');
        RETURN NEW;
    END IF;
    IF (NEW.id, NEW.tenant_id, NEW.function_name, NEW.version, NEW.slot, NEW.previous_slot,
        NEW.previous_version, NEW.steps, NEW.min_samples, NEW.step_seconds, NEW.seed,
        NEW.alpha, NEW.max_error_rate, NEW.created_by, NEW.created_at)
       IS DISTINCT FROM
       (OLD.id, OLD.tenant_id, OLD.function_name, OLD.version, OLD.slot, OLD.previous_slot,
        OLD.previous_version, OLD.steps, OLD.min_samples, OLD.step_seconds, OLD.seed,
        OLD.alpha, OLD.max_error_rate, OLD.created_by, OLD.created_at) THEN
        RAISE EXCEPTION 'deployment %: what is deployed and how are fixed once it is '
            'created; roll it back and start a new one', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.status IN ('retired', 'rolled_back', 'failed') THEN
        IF NEW.status IS DISTINCT FROM OLD.status
           OR NEW.traffic_percent IS DISTINCT FROM OLD.traffic_percent THEN
            RAISE EXCEPTION 'deployment % of % is %: it cannot become % any more', OLD.id,
                OLD.function_name, OLD.status, NEW.status USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        IF NOT ((OLD.status = 'pending' AND NEW.status IN ('shifting', 'promoted',
                                                           'rolled_back', 'failed'))
             OR (OLD.status = 'shifting' AND NEW.status IN ('promoted', 'rolled_back',
                                                            'failed'))
             OR (OLD.status = 'promoted' AND NEW.status IN ('retired', 'rolled_back',
                                                            'failed'))) THEN
            RAISE EXCEPTION 'deployment % of %: cannot go from % to %', OLD.id,
                OLD.function_name, OLD.status, NEW.status USING ERRCODE = 'check_violation';
        END IF;
        IF NEW.reason IS NULL OR btrim(NEW.reason) = ''
           OR NEW.reason IS NOT DISTINCT FROM OLD.reason THEN
            RAISE EXCEPTION 'deployment % of %: going from % to % needs its reason', OLD.id,
                OLD.function_name, OLD.status, NEW.status USING ERRCODE = 'check_violation';
        END IF;
        IF NEW.status = 'shifting' THEN
            NEW.started_at := now();
        ELSIF NEW.status = 'promoted' THEN
            NEW.promoted_at := now();
        ELSIF NEW.status = 'retired' THEN
            NEW.retired_at := now();
            NEW.finished_at := now();
        ELSE
            NEW.rolled_back_at := CASE WHEN NEW.status = 'rolled_back' THEN now() END;
            NEW.finished_at := now();
        END IF;
    END IF;
    -- The share follows the status; while shifting it only grows (units keep their slot).
    IF NEW.status IN ('rolled_back', 'failed') THEN
        NEW.traffic_percent := 0;
    ELSIF NEW.status IN ('promoted', 'retired') THEN
        NEW.traffic_percent := 100;
    ELSIF NEW.status = 'pending' AND NEW.traffic_percent <> 0 THEN
        RAISE EXCEPTION 'deployment % of %: a pending deployment has no traffic', OLD.id,
            OLD.function_name USING ERRCODE = 'check_violation';
    ELSIF NEW.traffic_percent < OLD.traffic_percent THEN
        RAISE EXCEPTION 'deployment % of %: the share only grows while shifting (% -> %); '
            'roll back instead', OLD.id, OLD.function_name, OLD.traffic_percent,
            NEW.traffic_percent USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.traffic_percent IS DISTINCT FROM OLD.traffic_percent
       OR NEW.step_index IS DISTINCT FROM OLD.step_index THEN
        NEW.step_started_at := now();
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER deployments_lifecycle BEFORE INSERT OR UPDATE ON mlops.deployments
    FOR EACH ROW EXECUTE FUNCTION mlops.deployment_lifecycle();

-- History rows are written with the owner's rights, so the roles that move a deployment
-- cannot write (or skip) its history themselves.
CREATE FUNCTION mlops.deployment_history() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = mlops, pg_catalog
AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO mlops.deployment_transitions (tenant_id, deployment_id, from_status,
                                                  to_status, traffic_percent, reason)
        VALUES (NEW.tenant_id, NEW.id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END,
                NEW.status, NEW.traffic_percent, NEW.reason);
    END IF;
    IF TG_OP = 'INSERT' OR NEW.traffic_percent IS DISTINCT FROM OLD.traffic_percent THEN
        INSERT INTO mlops.deployment_traffic (tenant_id, deployment_id, traffic_percent,
                                              step_index)
        VALUES (NEW.tenant_id, NEW.id, NEW.traffic_percent, NEW.step_index);
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION mlops.deployment_history() FROM PUBLIC;

CREATE TRIGGER deployments_history AFTER INSERT OR UPDATE ON mlops.deployments
    FOR EACH ROW EXECUTE FUNCTION mlops.deployment_history();

-- The gate's state and health results are bookkeeping, written every few seconds.
DROP TRIGGER deployments_audit ON mlops.deployments;
CREATE TRIGGER deployments_audit AFTER INSERT OR UPDATE OR DELETE ON mlops.deployments
    FOR EACH ROW EXECUTE FUNCTION mlops.audit_change('health', 'gate', 'updated_at',
                                                     'step_started_at');

------------------------------------------------------------------------------------------
-- Routing: deterministic per unit, following the share.
--   SELECT * FROM mlops.route('summarize', 'user-42');   -> (slot, version)
-- A unit's point on [0, 2^64) is the first 8 bytes of sha256('seed:unit') (as in
-- mlops.assign_variant_with); it goes to the new version while point < share * 2^64, so
-- as the share grows the units already there stay.
------------------------------------------------------------------------------------------
CREATE FUNCTION mlops.route_point(seed text, unit_id text) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN s < 0 THEN s + 18446744073709551616 ELSE s END
    FROM (SELECT ('x' || encode(substr(sha256(convert_to(seed || ':' || unit_id, 'UTF8')),
                                       1, 8), 'hex'))::bit(64)::bigint::numeric AS s) p
$$;

-- The caller's tenant when it has exactly one, else 'default'.
CREATE FUNCTION mlops.caller_tenant() RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT CASE WHEN cardinality(t) = 1 THEN t[1] ELSE 'default' END
    FROM (SELECT mlops.tenants_of(current_user) AS t) x
$$;

CREATE FUNCTION mlops.route(function_name text, unit_id text, tenant_id text DEFAULT NULL)
RETURNS TABLE (slot text, version text)
LANGUAGE sql STABLE
AS $$
    WITH t AS (SELECT coalesce(route.tenant_id, mlops.caller_tenant()) AS tenant),
    active AS (
        SELECT CASE
                   WHEN d.status = 'promoted'
                        OR mlops.route_point(d.seed, route.unit_id) * 100
                           < d.traffic_percent::numeric * 18446744073709551616
                   THEN d.slot ELSE d.previous_slot END AS slot,
               CASE
                   WHEN d.status = 'promoted'
                        OR mlops.route_point(d.seed, route.unit_id) * 100
                           < d.traffic_percent::numeric * 18446744073709551616
                   THEN d.version ELSE d.previous_version END AS version
        FROM mlops.deployments d, t
        WHERE d.tenant_id = t.tenant AND d.function_name = route.function_name
          AND d.status IN ('pending', 'shifting', 'promoted')
    )
    SELECT a.slot, a.version FROM active a
    UNION ALL
    SELECT l.slot, l.version FROM t, mlops.live_deployment(t.tenant, route.function_name) l
    WHERE NOT EXISTS (SELECT FROM active)
$$;

GRANT EXECUTE ON FUNCTION mlops.steps_are_valid(double precision[]),
    mlops.live_deployment(text, text), mlops.route_point(text, text),
    mlops.caller_tenant(), mlops.route(text, text, text)
    TO mlops_writer, mlops_reader, mlops_processor;

------------------------------------------------------------------------------------------
-- Row-level security: readers see their tenants' history; the processor everything; the
-- application (writer) starts, promotes and rolls back its own tenants' deployments and
-- records health checks, and reads them to route. The gate's numbers are the processor's.
------------------------------------------------------------------------------------------
CREATE POLICY writer_own_tenant ON mlops.deployments FOR ALL TO mlops_writer
    USING (tenant_id = ANY ((SELECT mlops.tenants_of(current_user))::text[]))
    WITH CHECK (tenant_id = ANY ((SELECT mlops.tenants_of(current_user))::text[]));
GRANT SELECT ON mlops.deployments TO mlops_writer;
GRANT INSERT (tenant_id, function_name, version, notes, artifact, steps, min_samples,
              step_seconds, health_url, alpha, max_error_rate, reason)
    ON mlops.deployments TO mlops_writer;
GRANT UPDATE (status, reason, health) ON mlops.deployments TO mlops_writer;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['deployment_transitions', 'deployment_traffic',
                             'deployment_gate_results'] LOOP
        EXECUTE format('ALTER TABLE mlops.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE mlops.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY reader_own_tenant ON mlops.%I FOR SELECT TO mlops_reader, '
            'mlops_writer USING (tenant_id = ANY ((SELECT mlops.tenants_of(current_user))'
            '::text[]))', t);
        EXECUTE format(
            'CREATE POLICY processor_all ON mlops.%I FOR ALL TO mlops_processor '
            'USING (true) WITH CHECK (true)', t);
        EXECUTE format('GRANT SELECT ON mlops.%I TO mlops_reader, mlops_writer', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON mlops.%I TO mlops_processor',
                       t);
    END LOOP;
END
$$;
-- The history trigger runs as the owner, which is subject to RLS like everybody else.
CREATE POLICY history_trigger ON mlops.deployment_transitions FOR INSERT TO mlops_owner
    WITH CHECK (true);
CREATE POLICY history_trigger ON mlops.deployment_traffic FOR INSERT TO mlops_owner
    WITH CHECK (true);
