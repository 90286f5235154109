-- Prices: cache writes, a price function shared by the insert trigger and re-costing, and
-- a state version that re-costing bumps so a running processor reloads its totals.
--
-- Token conventions: prompt_tokens count every input token, cached (cache reads) and
-- cache_write_tokens (cache creation) included, as OpenAI reports them; the Python client
-- adds Anthropic's cache reads and writes back to its input_tokens.
SET LOCAL ROLE mlops_owner;

ALTER TABLE mlops.model_performance
    ADD COLUMN cache_write_tokens integer NOT NULL DEFAULT 0,
    -- cached_tokens > prompt_tokens is left to that column's own constraint, so the
    -- error names the column that is wrong.
    ADD CONSTRAINT cache_write_tokens_must_be_within_prompt_tokens CHECK (
        cache_write_tokens >= 0 AND (cached_tokens > prompt_tokens
                                     OR cached_tokens + cache_write_tokens <= prompt_tokens));
GRANT INSERT (cache_write_tokens) ON mlops.model_performance TO mlops_writer;

ALTER TABLE mlops.consumer_checkpoints ADD COLUMN state_version bigint NOT NULL DEFAULT 0;

-- USD cost of one request at the price version in force at `at` (tenant's own price
-- first), or NULL when the model has no price. Rounded to pico-dollars like cost_usd.
CREATE FUNCTION mlops.request_cost(
    model text, tenant_id text, at timestamptz, prompt_tokens integer,
    completion_tokens integer, cached_tokens integer, cache_write_tokens integer
) RETURNS numeric
LANGUAGE sql STABLE
AS $$
    SELECT round((
          (prompt_tokens - cached_tokens - cache_write_tokens) * p.input_usd_per_mtok
        + cached_tokens * coalesce(p.cached_input_usd_per_mtok, p.input_usd_per_mtok)
        + cache_write_tokens * coalesce(p.cache_write_usd_per_mtok, p.input_usd_per_mtok)
        + completion_tokens * p.output_usd_per_mtok) / 1000000, 12)
    FROM mlops.model_prices p
    WHERE p.model = request_cost.model
      AND (p.tenant_id IS NULL OR p.tenant_id = request_cost.tenant_id)
      AND p.effective_from <= request_cost.at
    ORDER BY (p.tenant_id IS NULL), p.effective_from DESC
    LIMIT 1
$$;
GRANT EXECUTE ON FUNCTION mlops.request_cost(text, text, timestamptz, integer, integer,
    integer, integer) TO mlops_writer, mlops_reader, mlops_processor;

-- The same arithmetic as request_cost, inline: calling that function from the row trigger
-- costs a nested executor per row (about a tenth of a single-row insert).
CREATE OR REPLACE FUNCTION mlops.price_request() RETURNS trigger
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
          (NEW.prompt_tokens - NEW.cached_tokens - NEW.cache_write_tokens)
              * p.input_usd_per_mtok
        + NEW.cached_tokens * coalesce(p.cached_input_usd_per_mtok, p.input_usd_per_mtok)
        + NEW.cache_write_tokens * coalesce(p.cache_write_usd_per_mtok, p.input_usd_per_mtok)
        + NEW.completion_tokens * p.output_usd_per_mtok) / 1000000, 12);
    RETURN NEW;
END
$$;

CREATE FUNCTION mlops.cache_write_problem(
    prompt_tokens integer, cached_tokens integer, cache_write_tokens integer
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
    END
$$;

DROP FUNCTION mlops.log_request(text, text, double precision, integer, integer, integer,
    text, text, double precision, integer, numeric, text, uuid, text, text, text, text, jsonb,
    timestamptz);
DROP FUNCTION mlops.log_requests(jsonb);
DROP FUNCTION mlops.request_rows(jsonb);

CREATE FUNCTION mlops.log_request(
    function_name     text,
    model             text,
    latency_ms        double precision,
    prompt_tokens     integer DEFAULT 0,
    completion_tokens integer DEFAULT 0,
    cached_tokens     integer DEFAULT 0,
    status            text DEFAULT 'success',
    error_type        text DEFAULT NULL,
    confidence        double precision DEFAULT NULL,
    query_length      integer DEFAULT NULL,
    cost_usd          numeric DEFAULT NULL,
    variant           text DEFAULT 'control',
    experiment_id     uuid DEFAULT NULL,
    deployment_slot   text DEFAULT NULL,
    request_id        text DEFAULT NULL,
    model_version     text DEFAULT NULL,
    tenant_id         text DEFAULT NULL,
    metadata          jsonb DEFAULT '{}',
    created_at        timestamptz DEFAULT NULL,
    cache_write_tokens integer DEFAULT 0
) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    problem text := coalesce(mlops.request_problem(
        function_name, model, latency_ms, prompt_tokens, completion_tokens, cached_tokens,
        status, error_type, confidence, query_length, cost_usd, variant, tenant_id,
        coalesce(metadata, '{}')),
        mlops.cache_write_problem(prompt_tokens, cached_tokens, cache_write_tokens));
BEGIN
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'log_request: %', problem USING ERRCODE = 'check_violation';
    END IF;
    INSERT INTO mlops.model_performance AS m (
        tenant_id, function_name, model, model_version, variant, experiment_id,
        deployment_slot, request_id, created_at, latency_ms, prompt_tokens,
        completion_tokens, cached_tokens, cache_write_tokens, cost_usd, confidence,
        query_length, status, error_type, metadata)
    VALUES (
        coalesce(log_request.tenant_id, mlops.default_tenant()), log_request.function_name,
        log_request.model, log_request.model_version, log_request.variant,
        log_request.experiment_id, log_request.deployment_slot, log_request.request_id,
        coalesce(log_request.created_at, now()), log_request.latency_ms,
        coalesce(log_request.prompt_tokens, 0), coalesce(log_request.completion_tokens, 0),
        coalesce(log_request.cached_tokens, 0), coalesce(log_request.cache_write_tokens, 0),
        log_request.cost_usd, log_request.confidence,
        log_request.query_length, log_request.status, log_request.error_type,
        coalesce(log_request.metadata, '{}'));
END
$$;

-- The JSON elements of a log_requests() call as typed rows (missing fields get defaults).
CREATE FUNCTION mlops.request_rows(requests jsonb) RETURNS TABLE (
    ord bigint, function_name text, model text, latency_ms double precision,
    prompt_tokens integer, completion_tokens integer, cached_tokens integer, status text,
    error_type text, confidence double precision, query_length integer, cost_usd numeric,
    variant text, experiment_id uuid, deployment_slot text, request_id text,
    model_version text, tenant_id text, metadata jsonb, created_at timestamptz,
    cache_write_tokens integer)
LANGUAGE sql STABLE
AS $$
    SELECT e.ord, r.function_name, r.model, r.latency_ms, coalesce(r.prompt_tokens, 0),
           coalesce(r.completion_tokens, 0), coalesce(r.cached_tokens, 0),
           coalesce(r.status, 'success'), r.error_type, r.confidence, r.query_length,
           r.cost_usd, coalesce(r.variant, 'control'), r.experiment_id, r.deployment_slot,
           r.request_id, r.model_version, r.tenant_id, coalesce(r.metadata, '{}'),
           r.created_at, coalesce(r.cache_write_tokens, 0)
    FROM jsonb_array_elements(requests) WITH ORDINALITY AS e(value, ord)
    CROSS JOIN LATERAL jsonb_to_record(e.value) AS r(
        function_name text, model text, latency_ms double precision, prompt_tokens integer,
        completion_tokens integer, cached_tokens integer, status text, error_type text,
        confidence double precision, query_length integer, cost_usd numeric, variant text,
        experiment_id uuid, deployment_slot text, request_id text, model_version text,
        tenant_id text, metadata jsonb, created_at timestamptz, cache_write_tokens integer)
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
        'tenant_id', 'metadata', 'created_at', 'cache_write_tokens'];
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
        SELECT r.ord, coalesce(mlops.request_problem(
                   r.function_name, r.model, r.latency_ms, r.prompt_tokens,
                   r.completion_tokens, r.cached_tokens, r.status, r.error_type,
                   r.confidence, r.query_length, r.cost_usd, r.variant, r.tenant_id,
                   r.metadata),
                   mlops.cache_write_problem(r.prompt_tokens, r.cached_tokens,
                                             r.cache_write_tokens)) AS problem
        INTO bad
        FROM mlops.request_rows(requests) r
        WHERE coalesce(mlops.request_problem(
                  r.function_name, r.model, r.latency_ms, r.prompt_tokens,
                  r.completion_tokens, r.cached_tokens, r.status, r.error_type,
                  r.confidence, r.query_length, r.cost_usd, r.variant, r.tenant_id,
                  r.metadata),
                  mlops.cache_write_problem(r.prompt_tokens, r.cached_tokens,
                                            r.cache_write_tokens)) IS NOT NULL
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
        completion_tokens, cached_tokens, cache_write_tokens, cost_usd, confidence,
        query_length, status, error_type, metadata)
    SELECT coalesce(r.tenant_id, mlops.default_tenant()), r.function_name, r.model,
           r.model_version, r.variant, r.experiment_id, r.deployment_slot, r.request_id,
           coalesce(r.created_at, now()), r.latency_ms, r.prompt_tokens,
           r.completion_tokens, r.cached_tokens, r.cache_write_tokens, r.cost_usd,
           r.confidence, r.query_length,
           r.status, r.error_type, r.metadata
    FROM mlops.request_rows(requests) r ORDER BY r.ord;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

REVOKE ALL ON FUNCTION mlops.log_request(text, text, double precision, integer, integer,
    integer, text, text, double precision, integer, numeric, text, uuid, text, text, text,
    text, jsonb, timestamptz, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION mlops.log_requests(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mlops.log_request(text, text, double precision, integer, integer,
    integer, text, text, double precision, integer, numeric, text, uuid, text, text, text,
    text, jsonb, timestamptz, integer) TO mlops_writer, mlops_processor;
GRANT EXECUTE ON FUNCTION mlops.log_requests(jsonb) TO mlops_writer, mlops_processor;
GRANT EXECUTE ON FUNCTION mlops.request_rows(jsonb) TO mlops_writer, mlops_processor;
