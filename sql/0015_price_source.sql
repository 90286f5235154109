-- Prices as the providers bill them (issue 17): the models of a maintained price database
-- (genai-prices) under the names callers send, long-context tiers and 1-hour cache writes.
--
-- * A caller logs what the API answered (`gpt-4o-2024-08-06`, `openai/gpt-4o`,
--   `claude-sonnet-4-5-20250929`); the stored row keeps that name and is priced through
--   mlops.priced_model: the exact name, else its normalised key (mlops.model_key) in
--   mlops.model_aliases, else the key without its release date.
-- * A tier is a whole price row that applies when the request's input tokens (cache reads
--   and writes included) exceed above_input_tokens: crossing it re-prices every token of
--   the request, as the providers bill long prompts.
-- * cache_write_1h_tokens are the part of cache_write_tokens written with a one-hour TTL.

-- The snapshot this project bundled before (and the seed of 0002) is replaced by the
-- synchronised source, which `migrate` loads next; callers' own imports stay. (Before
-- taking the owner's role: row level security is forced on the table, for its owner too.)
DELETE FROM mlops.model_prices
WHERE tenant_id IS NULL
  AND (source LIKE 'Providers'' published list prices%' OR source LIKE '%/pricing, 2025');

SET LOCAL ROLE mlops_owner;

------------------------------------------------------------------------------------------
-- Price rows: tiers and 1-hour cache writes.
------------------------------------------------------------------------------------------

ALTER TABLE mlops.model_prices
    ADD COLUMN above_input_tokens integer NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_1h_usd_per_mtok numeric(14, 6),
    -- A fee per request on top of the tokens (Perplexity's), USD per thousand requests.
    ADD COLUMN usd_per_krequests numeric(14, 6),
    -- Written by `prices sync`: the source's. Prices people imported win where both are
    -- in force (and a sync never replaces them).
    ADD COLUMN synced boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT above_input_tokens_must_be_non_negative CHECK (above_input_tokens >= 0),
    ADD CONSTRAINT cache_write_1h_price_must_be_between_0_and_1000000 CHECK (
        cache_write_1h_usd_per_mtok IS NULL
        OR (cache_write_1h_usd_per_mtok >= 0 AND cache_write_1h_usd_per_mtok < 1000000)),
    ADD CONSTRAINT usd_per_krequests_must_be_between_0_and_1000000 CHECK (
        usd_per_krequests IS NULL OR (usd_per_krequests >= 0 AND usd_per_krequests < 1000000)),
    ADD CONSTRAINT model_must_not_contain_control_or_bidi_characters CHECK (
        mlops.is_safe_label(model) AND mlops.is_safe_label(provider));
DROP INDEX mlops.model_prices_version;
CREATE UNIQUE INDEX model_prices_version
    ON mlops.model_prices (model, coalesce(tenant_id, ''), effective_from, above_input_tokens);

------------------------------------------------------------------------------------------
-- Names callers send -> the priced model.
------------------------------------------------------------------------------------------
-- Lower case, without a gateway's or SDK's prefix (`openai/`, `openrouter/anthropic/`,
-- `models/`). Python twin: stream_mlops.costs.pricing.model_key (tested equal).
CREATE FUNCTION mlops.model_key(name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$ SELECT lower(regexp_replace(name, '^.*/', '')) $$;

-- The key without a release date or revision at its end (`-2024-08-06`, `-20250929`,
-- `@20250929`, `-002`): the model a dated name is a snapshot of.
CREATE FUNCTION mlops.undated_model_key(name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
    SELECT regexp_replace(mlops.model_key(name),
                          '([-@](\d{4}-\d{2}-\d{2}|\d{8})|-\d{3})$', '')
$$;

CREATE TABLE mlops.model_aliases (
    alias      text NOT NULL,
    model      text NOT NULL,
    tenant_id  text,
    source     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT alias_must_be_a_model_key CHECK (
        char_length(alias) BETWEEN 1 AND 200 AND alias = mlops.model_key(alias)),
    CONSTRAINT model_must_be_1_to_200_safe_chars CHECK (
        char_length(model) BETWEEN 1 AND 200 AND mlops.is_safe_label(model))
);
CREATE UNIQUE INDEX model_aliases_alias ON mlops.model_aliases (alias, coalesce(tenant_id, ''));
CREATE TRIGGER model_aliases_audit AFTER INSERT OR UPDATE OR DELETE ON mlops.model_aliases
    FOR EACH ROW EXECUTE FUNCTION mlops.audit_change();
ALTER TABLE mlops.model_aliases ENABLE ROW LEVEL SECURITY;
ALTER TABLE mlops.model_aliases FORCE ROW LEVEL SECURITY;
CREATE POLICY aliases_visible ON mlops.model_aliases FOR SELECT
    USING (tenant_id IS NULL OR tenant_id = ANY ((SELECT mlops.tenants_of(current_user))::text[]));
CREATE POLICY processor_all ON mlops.model_aliases FOR ALL TO mlops_processor
    USING (true) WITH CHECK (true);
GRANT SELECT ON mlops.model_aliases TO mlops_writer, mlops_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON mlops.model_aliases TO mlops_processor;

-- The model_prices.model a request's model is priced as, or NULL (unpriced): the name
-- itself when priced, else its key, else its undated key (the tenant's alias first).
CREATE FUNCTION mlops.priced_model(model text, tenant_id text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT coalesce(
        (SELECT p.model FROM mlops.model_prices p
         WHERE p.model = priced_model.model
           AND (p.tenant_id IS NULL OR p.tenant_id = priced_model.tenant_id)
         LIMIT 1),
        (SELECT a.model FROM mlops.model_aliases a
         WHERE a.alias IN (mlops.model_key(priced_model.model),
                           mlops.undated_model_key(priced_model.model))
           AND (a.tenant_id IS NULL OR a.tenant_id = priced_model.tenant_id)
         ORDER BY a.alias = mlops.model_key(priced_model.model) DESC, a.tenant_id IS NULL
         LIMIT 1))
$$;
GRANT EXECUTE ON FUNCTION mlops.priced_model(text, text) TO mlops_writer, mlops_reader,
    mlops_processor;

------------------------------------------------------------------------------------------
-- Requests: 1-hour cache writes, the GenAI operation and provider (OpenTelemetry
-- gen_ai.operation.name, gen_ai.provider.name; NULL provider: the price table's).
------------------------------------------------------------------------------------------
ALTER TABLE mlops.model_performance
    ADD COLUMN cache_write_1h_tokens integer NOT NULL DEFAULT 0,
    ADD COLUMN operation text NOT NULL DEFAULT 'chat',
    ADD COLUMN provider text,
    ADD CONSTRAINT provider_must_be_1_to_50_safe_chars CHECK (
        char_length(provider) BETWEEN 1 AND 50 AND mlops.is_safe_label(provider)),
    ADD CONSTRAINT cache_write_1h_tokens_must_be_within_cache_write_tokens CHECK (
        cache_write_1h_tokens >= 0 AND cache_write_1h_tokens <= cache_write_tokens),
    ADD CONSTRAINT operation_must_be_1_to_50_safe_chars CHECK (
        char_length(operation) BETWEEN 1 AND 50 AND mlops.is_safe_label(operation));
GRANT INSERT (cache_write_1h_tokens, operation, provider) ON mlops.model_performance TO mlops_writer;

-- The price row in force for a request: its priced model's version at `at` (the tenant's
-- own first, then prices people imported, then the source's), at the highest tier its
-- input tokens cross.
CREATE FUNCTION mlops.request_price(
    model text, tenant_id text, at timestamptz, prompt_tokens integer
) RETURNS mlops.model_prices
LANGUAGE sql STABLE
AS $$
    SELECT p.* FROM mlops.model_prices p
    WHERE p.model = mlops.priced_model(request_price.model, request_price.tenant_id)
      AND (p.tenant_id IS NULL OR p.tenant_id = request_price.tenant_id)
      AND p.effective_from <= request_price.at
      AND (p.above_input_tokens = 0 OR request_price.prompt_tokens > p.above_input_tokens)
    ORDER BY (p.tenant_id IS NULL), p.synced, p.effective_from DESC, p.above_input_tokens DESC
    LIMIT 1
$$;

-- USD of a request at a price row, rounded to pico-dollars like cost_usd (NULL: no row).
-- A single expression, so the planner inlines it into its callers.
-- Python twin: stream_mlops.costs.pricing.PriceBook.cost_pico.
CREATE FUNCTION mlops.price_cost(
    p mlops.model_prices, prompt_tokens integer, completion_tokens integer,
    cached_tokens integer, cache_write_tokens integer, cache_write_1h_tokens integer
) RETURNS numeric
LANGUAGE sql IMMUTABLE
AS $$
    SELECT round((
          (prompt_tokens - cached_tokens - cache_write_tokens) * p.input_usd_per_mtok
        + cached_tokens * coalesce(p.cached_input_usd_per_mtok, p.input_usd_per_mtok)
        + (cache_write_tokens - cache_write_1h_tokens)
              * coalesce(p.cache_write_usd_per_mtok, p.input_usd_per_mtok)
        + cache_write_1h_tokens * coalesce(p.cache_write_1h_usd_per_mtok,
                                           p.cache_write_usd_per_mtok, p.input_usd_per_mtok)
        + completion_tokens * p.output_usd_per_mtok) / 1000000
        + coalesce(p.usd_per_krequests, 0) / 1000, 12)
$$;

DROP FUNCTION mlops.request_cost(text, text, timestamptz, integer, integer, integer, integer);
CREATE FUNCTION mlops.request_cost(
    model text, tenant_id text, at timestamptz, prompt_tokens integer,
    completion_tokens integer, cached_tokens integer, cache_write_tokens integer,
    cache_write_1h_tokens integer DEFAULT 0
) RETURNS numeric
LANGUAGE sql STABLE
AS $$
    SELECT mlops.price_cost(mlops.request_price(model, tenant_id, at, prompt_tokens),
                            prompt_tokens, completion_tokens, cached_tokens,
                            cache_write_tokens, cache_write_1h_tokens)
$$;
GRANT EXECUTE ON FUNCTION mlops.request_cost(text, text, timestamptz, integer, integer,
    integer, integer, integer) TO mlops_writer, mlops_reader, mlops_processor;

-- The same lookups as request_price, written out: a nested SQL function per row would
-- cost several times the insert itself. Exact names (the usual case) take one query.
CREATE OR REPLACE FUNCTION mlops.price_request() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    p mlops.model_prices%ROWTYPE;
    priced text := NEW.model;
BEGIN
    -- A caller that could not read the response's usage says so: its tokens are unknown.
    IF NEW.metadata ? 'usage_error' THEN
        NEW.cost_source := 'unpriced';
        RETURN NEW;
    END IF;
    LOOP
        SELECT * INTO p FROM mlops.model_prices mp
        WHERE mp.model = priced
          AND (mp.tenant_id IS NULL OR mp.tenant_id = NEW.tenant_id)
          AND mp.effective_from <= NEW.created_at
          AND (mp.above_input_tokens = 0 OR NEW.prompt_tokens > mp.above_input_tokens)
        ORDER BY (mp.tenant_id IS NULL), mp.synced, mp.effective_from DESC,
                 mp.above_input_tokens DESC
        LIMIT 1;
        EXIT WHEN FOUND OR priced IS DISTINCT FROM NEW.model;
        -- Not priced under its own name: its alias (priced_model's second half).
        SELECT a.model INTO priced FROM mlops.model_aliases a
        WHERE a.alias IN (mlops.model_key(NEW.model), mlops.undated_model_key(NEW.model))
          AND (a.tenant_id IS NULL OR a.tenant_id = NEW.tenant_id)
        ORDER BY a.alias = mlops.model_key(NEW.model) DESC, a.tenant_id IS NULL
        LIMIT 1;
        EXIT WHEN NOT FOUND OR priced = NEW.model;
    END LOOP;
    IF p.model IS NULL THEN
        NEW.cost_source := 'unpriced';
        RETURN NEW;
    END IF;
    NEW.cost_source := 'price_table';
    NEW.cost_usd := mlops.price_cost(p, NEW.prompt_tokens, NEW.completion_tokens,
                                     NEW.cached_tokens, NEW.cache_write_tokens,
                                     NEW.cache_write_1h_tokens);
    RETURN NEW;
END
$$;

------------------------------------------------------------------------------------------
-- The SQL API takes the two new fields.
------------------------------------------------------------------------------------------
DROP FUNCTION mlops.cache_write_problem(integer, integer, integer);
CREATE FUNCTION mlops.usage_problem(
    prompt_tokens integer, cached_tokens integer, cache_write_tokens integer,
    cache_write_1h_tokens integer, operation text, provider text
) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE
        WHEN cache_write_tokens < 0
            THEN 'cache_write_tokens must be >= 0, got ' || cache_write_tokens
        WHEN coalesce(cached_tokens, 0) + cache_write_tokens > prompt_tokens
            THEN 'cached_tokens + cache_write_tokens (' || (cached_tokens + cache_write_tokens)
                 || ') cannot exceed prompt_tokens (' || prompt_tokens
                 || '): prompt_tokens include cache reads and writes'
        WHEN cache_write_1h_tokens < 0
            THEN 'cache_write_1h_tokens must be >= 0, got ' || cache_write_1h_tokens
        WHEN cache_write_1h_tokens > cache_write_tokens
            THEN 'cache_write_1h_tokens (' || cache_write_1h_tokens
                 || ') cannot exceed cache_write_tokens (' || cache_write_tokens
                 || '): they are the part written for one hour'
        WHEN operation IS NULL OR char_length(operation) NOT BETWEEN 1 AND 50
             OR NOT mlops.is_safe_label(operation)
            THEN 'operation must be 1 to 50 printable characters (e.g. chat, embeddings)'
        WHEN char_length(provider) NOT BETWEEN 1 AND 50 OR NOT mlops.is_safe_label(provider)
            THEN 'provider must be 1 to 50 printable characters (e.g. openai, anthropic)'
    END
$$;

DROP FUNCTION mlops.log_request(text, text, double precision, integer, integer, integer,
    text, text, double precision, integer, numeric, text, uuid, text, text, text, text, jsonb,
    timestamptz, integer);
DROP FUNCTION mlops.log_requests(jsonb);
DROP FUNCTION mlops.request_rows(jsonb);

-- The JSON elements of a log_requests() call as typed rows (missing fields get defaults).
CREATE FUNCTION mlops.request_rows(requests jsonb) RETURNS TABLE (
    ord bigint, function_name text, model text, latency_ms double precision,
    prompt_tokens integer, completion_tokens integer, cached_tokens integer, status text,
    error_type text, confidence double precision, query_length integer, cost_usd numeric,
    variant text, experiment_id uuid, deployment_slot text, request_id text,
    model_version text, tenant_id text, metadata jsonb, created_at timestamptz,
    cache_write_tokens integer, cache_write_1h_tokens integer, operation text,
    provider text)
LANGUAGE sql STABLE
AS $$
    SELECT e.ord, r.function_name, r.model, r.latency_ms, coalesce(r.prompt_tokens, 0),
           coalesce(r.completion_tokens, 0), coalesce(r.cached_tokens, 0),
           coalesce(r.status, 'success'), r.error_type, r.confidence, r.query_length,
           r.cost_usd, coalesce(r.variant, 'control'), r.experiment_id, r.deployment_slot,
           r.request_id, r.model_version, r.tenant_id, coalesce(r.metadata, '{}'),
           r.created_at, coalesce(r.cache_write_tokens, 0),
           coalesce(r.cache_write_1h_tokens, 0), coalesce(r.operation, 'chat'), r.provider
    FROM jsonb_array_elements(requests) WITH ORDINALITY AS e(value, ord)
    CROSS JOIN LATERAL jsonb_to_record(e.value) AS r(
        function_name text, model text, latency_ms double precision, prompt_tokens integer,
        completion_tokens integer, cached_tokens integer, status text, error_type text,
        confidence double precision, query_length integer, cost_usd numeric, variant text,
        experiment_id uuid, deployment_slot text, request_id text, model_version text,
        tenant_id text, metadata jsonb, created_at timestamptz, cache_write_tokens integer,
        cache_write_1h_tokens integer, operation text, provider text)
$$;

-- Many requests in one statement: a JSON array of objects with log_request's argument
-- names. Nothing is written unless every element is valid; errors name the element.
CREATE FUNCTION mlops.log_requests(requests jsonb) RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    allowed constant text[] := ARRAY[
        'function_name', 'model', 'latency_ms', 'prompt_tokens', 'completion_tokens',
        'cached_tokens', 'status', 'error_type', 'confidence', 'query_length', 'cost_usd',
        'variant', 'experiment_id', 'deployment_slot', 'request_id', 'model_version',
        'tenant_id', 'metadata', 'created_at', 'cache_write_tokens', 'cache_write_1h_tokens',
        'operation', 'provider'];
    bad record;
    elem record;
    n integer;
BEGIN
    IF jsonb_typeof(requests) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'log_requests: expected a JSON array of request objects'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT e.ord, jsonb_typeof(e.value) AS kind INTO bad
    FROM jsonb_array_elements(requests) WITH ORDINALITY AS e(value, ord)
    WHERE jsonb_typeof(e.value) <> 'object' ORDER BY e.ord LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'log_requests: element %: expected an object, got %', bad.ord, bad.kind
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT e.ord, k.key INTO bad
    FROM jsonb_array_elements(requests) WITH ORDINALITY AS e(value, ord)
    CROSS JOIN LATERAL jsonb_object_keys(e.value) AS k(key)
    WHERE k.key <> ALL (allowed)
    ORDER BY e.ord LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'log_requests: element %: unknown field "%"', bad.ord, bad.key
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    BEGIN
        SELECT r.ord, p.problem INTO bad
        FROM mlops.request_rows(requests) r
        CROSS JOIN LATERAL (SELECT coalesce(mlops.request_problem(
                   r.function_name, r.model, r.latency_ms, r.prompt_tokens,
                   r.completion_tokens, r.cached_tokens, r.status, r.error_type,
                   r.confidence, r.query_length, r.cost_usd, r.variant, r.tenant_id,
                   r.metadata),
                   mlops.usage_problem(r.prompt_tokens, r.cached_tokens, r.cache_write_tokens,
                                       r.cache_write_1h_tokens, r.operation,
                                       r.provider)) AS problem) p
        WHERE p.problem IS NOT NULL
        ORDER BY r.ord LIMIT 1;
    EXCEPTION WHEN data_exception THEN
        -- A value of the wrong type: find which element, to say so.
        FOR elem IN SELECT e.ord, e.value
                    FROM jsonb_array_elements(requests) WITH ORDINALITY AS e(value, ord) LOOP
            BEGIN
                PERFORM * FROM mlops.request_rows(jsonb_build_array(elem.value));
            EXCEPTION WHEN data_exception THEN
                RAISE EXCEPTION 'log_requests: element %: %', elem.ord, SQLERRM
                    USING ERRCODE = 'invalid_parameter_value';
            END;
        END LOOP;
        RAISE;
    END;
    IF bad.problem IS NOT NULL THEN
        RAISE EXCEPTION 'log_requests: element %: %', bad.ord, bad.problem
            USING ERRCODE = 'check_violation';
    END IF;
    INSERT INTO mlops.model_performance (
        tenant_id, function_name, model, model_version, variant, experiment_id,
        deployment_slot, request_id, created_at, latency_ms, prompt_tokens,
        completion_tokens, cached_tokens, cache_write_tokens, cache_write_1h_tokens,
        operation, provider, cost_usd, confidence, query_length, status, error_type,
        metadata)
    SELECT coalesce(r.tenant_id, mlops.default_tenant()), r.function_name, r.model,
           r.model_version, r.variant, r.experiment_id, r.deployment_slot, r.request_id,
           coalesce(r.created_at, now()), r.latency_ms, r.prompt_tokens,
           r.completion_tokens, r.cached_tokens, r.cache_write_tokens,
           r.cache_write_1h_tokens, r.operation, r.provider, r.cost_usd, r.confidence,
           r.query_length, r.status, r.error_type, r.metadata
    FROM mlops.request_rows(requests) r ORDER BY r.ord;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- One request, by named arguments: the same checks as log_requests, with errors that
-- name the field (and no element number).
CREATE FUNCTION mlops.log_request(
    function_name      text,
    model              text,
    latency_ms         double precision,
    prompt_tokens      integer DEFAULT 0,
    completion_tokens  integer DEFAULT 0,
    cached_tokens      integer DEFAULT 0,
    status             text DEFAULT 'success',
    error_type         text DEFAULT NULL,
    confidence         double precision DEFAULT NULL,
    query_length       integer DEFAULT NULL,
    cost_usd           numeric DEFAULT NULL,
    variant            text DEFAULT 'control',
    experiment_id      uuid DEFAULT NULL,
    deployment_slot    text DEFAULT NULL,
    request_id         text DEFAULT NULL,
    model_version      text DEFAULT NULL,
    tenant_id          text DEFAULT NULL,
    metadata           jsonb DEFAULT '{}',
    created_at         timestamptz DEFAULT NULL,
    cache_write_tokens integer DEFAULT 0,
    cache_write_1h_tokens integer DEFAULT 0,
    operation          text DEFAULT 'chat',
    provider           text DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    problem text := coalesce(mlops.request_problem(
        function_name, model, latency_ms, prompt_tokens, completion_tokens, cached_tokens,
        status, error_type, confidence, query_length, cost_usd, variant, tenant_id,
        coalesce(metadata, '{}')),
        mlops.usage_problem(prompt_tokens, cached_tokens, cache_write_tokens,
                            cache_write_1h_tokens, operation, provider));
BEGIN
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'log_request: %', problem USING ERRCODE = 'check_violation';
    END IF;
    PERFORM mlops.log_requests(jsonb_build_array(jsonb_build_object(
        'function_name', function_name, 'model', model, 'latency_ms', latency_ms,
        'prompt_tokens', prompt_tokens, 'completion_tokens', completion_tokens,
        'cached_tokens', cached_tokens, 'status', status, 'error_type', error_type,
        'confidence', confidence, 'query_length', query_length, 'cost_usd', cost_usd,
        'variant', variant, 'experiment_id', experiment_id,
        'deployment_slot', deployment_slot, 'request_id', request_id,
        'model_version', model_version, 'tenant_id', tenant_id, 'metadata', metadata,
        'created_at', created_at, 'cache_write_tokens', cache_write_tokens,
        'cache_write_1h_tokens', cache_write_1h_tokens, 'operation', operation,
        'provider', provider)));
END
$$;

REVOKE ALL ON FUNCTION mlops.log_request(text, text, double precision, integer, integer,
    integer, text, text, double precision, integer, numeric, text, uuid, text, text, text,
    text, jsonb, timestamptz, integer, integer, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION mlops.log_requests(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mlops.log_request(text, text, double precision, integer, integer,
    integer, text, text, double precision, integer, numeric, text, uuid, text, text, text,
    text, jsonb, timestamptz, integer, integer, text, text) TO mlops_writer, mlops_processor;
GRANT EXECUTE ON FUNCTION mlops.log_requests(jsonb) TO mlops_writer, mlops_processor;
GRANT EXECUTE ON FUNCTION mlops.request_rows(jsonb) TO mlops_writer, mlops_processor;

------------------------------------------------------------------------------------------
-- Budgets before the call: where each budget stands, as the processor last computed it
-- (its defaults and mlops.thresholds' overrides), for callers to ask "may I spend?".
------------------------------------------------------------------------------------------
CREATE TABLE mlops.budget_status (
    tenant_id     text NOT NULL,
    function_name text NOT NULL DEFAULT '',  -- '': the tenant's budget
    period        text NOT NULL,
    period_start  timestamptz NOT NULL,
    period_end    timestamptz NOT NULL,
    budget_usd    double precision NOT NULL,
    spent_usd     double precision NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, function_name, period),
    CONSTRAINT period_must_be_day_week_or_month CHECK (period IN ('day', 'week', 'month'))
);
ALTER TABLE mlops.budget_status ENABLE ROW LEVEL SECURITY;
ALTER TABLE mlops.budget_status FORCE ROW LEVEL SECURITY;
CREATE POLICY own_tenant ON mlops.budget_status FOR SELECT TO mlops_reader, mlops_writer
    USING (tenant_id = ANY ((SELECT mlops.tenants_of(current_user))::text[]));
CREATE POLICY processor_all ON mlops.budget_status FOR ALL TO mlops_processor
    USING (true) WITH CHECK (true);
GRANT SELECT ON mlops.budget_status TO mlops_reader, mlops_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON mlops.budget_status TO mlops_processor;

-- What is left of each budget that applies to a call of `function_name` (the tenant's,
-- and the function's own), tightest first. Spend is the processor's: it lags the request
-- log by the processor's lag plus at most its refresh interval (a few seconds).
CREATE FUNCTION mlops.budget_remaining(tenant_id text, function_name text DEFAULT NULL)
RETURNS TABLE (scope text, period text, budget_usd double precision,
               spent_usd double precision, remaining_usd double precision,
               period_end timestamptz, updated_at timestamptz)
LANGUAGE sql STABLE
AS $$
    SELECT CASE WHEN b.function_name = '' THEN 'tenant' ELSE 'function' END, b.period,
           b.budget_usd, b.spent_usd, greatest(b.budget_usd - b.spent_usd, 0),
           b.period_end, b.updated_at
    FROM mlops.budget_status b
    WHERE b.tenant_id = budget_remaining.tenant_id
      AND b.function_name IN ('', coalesce(budget_remaining.function_name, ''))
      AND b.period_end > now()
    ORDER BY b.budget_usd - b.spent_usd, b.function_name, b.period
$$;
GRANT EXECUTE ON FUNCTION mlops.budget_remaining(text, text) TO mlops_reader, mlops_writer,
    mlops_processor;

------------------------------------------------------------------------------------------
-- OpenTelemetry GenAI client metrics by their required attributes (operation, provider,
-- requested model, error type), kept by the processor like the series totals.
------------------------------------------------------------------------------------------
CREATE TABLE mlops.genai_totals (
    consumer         text NOT NULL,
    model            text NOT NULL,
    operation        text NOT NULL,
    provider         text NOT NULL,
    error_type       text NOT NULL,  -- '': succeeded
    duration_count   bigint NOT NULL,
    duration_sum     double precision NOT NULL,
    duration_buckets bigint[] NOT NULL,
    input_sum        bigint NOT NULL,
    input_buckets    bigint[] NOT NULL,
    output_sum       bigint NOT NULL,
    output_buckets   bigint[] NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, model, operation, provider, error_type)
);
-- Across tenants, like the metrics it feeds: the operator's, not a tenant's.
GRANT SELECT, INSERT, UPDATE, DELETE ON mlops.genai_totals TO mlops_processor;
