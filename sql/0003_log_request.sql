-- SQL API for callers in any language (also over PostgREST/Supabase RPC):
--   SELECT mlops.log_request(function_name => 'summarize', model => 'gpt-4o-mini',
--                            latency_ms => 812, prompt_tokens => 1200, completion_tokens => 80);
--   SELECT mlops.log_requests('[{"function_name": "summarize", ...}, ...]'::jsonb);
-- Both run with the caller's rights, so RLS decides which tenants it may write. Errors say
-- which field is wrong and why, before the table's constraints would.
SET LOCAL ROLE mlops_owner;

-- The caller's tenant when it did not name one: its only tenant, else 'default'.
CREATE FUNCTION mlops.default_tenant() RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT CASE WHEN cardinality(t) = 1 THEN t[1] ELSE 'default' END
    FROM (SELECT mlops.tenants_of(current_user) AS t) s
$$;

-- One problem with a request, or NULL. Shared by both functions so they say the same thing.
CREATE FUNCTION mlops.request_problem(
    function_name text, model text, latency_ms double precision, prompt_tokens integer,
    completion_tokens integer, cached_tokens integer, status text, error_type text,
    confidence double precision, query_length integer, cost_usd numeric, variant text,
    tenant_id text, metadata jsonb
) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE
        WHEN function_name IS NULL OR btrim(function_name) = ''
            THEN 'function_name is required'
        WHEN char_length(function_name) > 200
            THEN 'function_name is longer than 200 characters'
        WHEN model IS NULL OR btrim(model) = '' THEN 'model is required'
        WHEN char_length(model) > 200 THEN 'model is longer than 200 characters'
        WHEN latency_ms IS NULL THEN 'latency_ms is required'
        WHEN latency_ms = 'NaN' OR latency_ms IN ('Infinity', '-Infinity')
            THEN 'latency_ms must be a finite number, got ' || latency_ms
        WHEN latency_ms < 0 THEN 'latency_ms must be >= 0, got ' || latency_ms
        WHEN latency_ms > 86400000 THEN 'latency_ms must be at most 86400000 (one day), got '
            || latency_ms
        WHEN prompt_tokens < 0 THEN 'prompt_tokens must be >= 0, got ' || prompt_tokens
        WHEN completion_tokens < 0
            THEN 'completion_tokens must be >= 0, got ' || completion_tokens
        WHEN cached_tokens < 0 THEN 'cached_tokens must be >= 0, got ' || cached_tokens
        WHEN cached_tokens > prompt_tokens
            THEN 'cached_tokens (' || cached_tokens || ') cannot exceed prompt_tokens ('
                 || prompt_tokens || '): prompt_tokens include the cached ones'
        WHEN status NOT IN ('success', 'error')
            THEN 'status must be ''success'' or ''error'', got ''' || status || ''''
        WHEN error_type IS NOT NULL AND status <> 'error'
            THEN 'error_type is only allowed with status ''error'''
        WHEN confidence = 'NaN' OR confidence < 0 OR confidence > 1
            THEN 'confidence must be between 0 and 1, got ' || confidence
        WHEN query_length < 0 THEN 'query_length must be >= 0, got ' || query_length
        WHEN cost_usd = 'NaN' OR cost_usd < 0 OR cost_usd >= 1000000
            THEN 'cost_usd must be between 0 and 1000000, got ' || cost_usd
        WHEN variant IS NULL OR variant = '' OR char_length(variant) > 100
            THEN 'variant must be 1 to 100 characters'
        WHEN char_length(tenant_id) > 100 OR tenant_id = ''
            THEN 'tenant_id must be 1 to 100 characters'
        WHEN jsonb_typeof(metadata) <> 'object' THEN 'metadata must be a JSON object'
        WHEN pg_column_size(metadata) > 8192 THEN 'metadata is larger than 8 kB'
    END
$$;

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
    created_at        timestamptz DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    problem text := mlops.request_problem(
        function_name, model, latency_ms, prompt_tokens, completion_tokens, cached_tokens,
        status, error_type, confidence, query_length, cost_usd, variant, tenant_id,
        coalesce(metadata, '{}'));
BEGIN
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'log_request: %', problem USING ERRCODE = 'check_violation';
    END IF;
    INSERT INTO mlops.model_performance AS m (
        tenant_id, function_name, model, model_version, variant, experiment_id,
        deployment_slot, request_id, created_at, latency_ms, prompt_tokens,
        completion_tokens, cached_tokens, cost_usd, confidence, query_length, status,
        error_type, metadata)
    VALUES (
        coalesce(log_request.tenant_id, mlops.default_tenant()), log_request.function_name,
        log_request.model, log_request.model_version, log_request.variant,
        log_request.experiment_id, log_request.deployment_slot, log_request.request_id,
        coalesce(log_request.created_at, now()), log_request.latency_ms,
        coalesce(log_request.prompt_tokens, 0), coalesce(log_request.completion_tokens, 0),
        coalesce(log_request.cached_tokens, 0), log_request.cost_usd, log_request.confidence,
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
    model_version text, tenant_id text, metadata jsonb, created_at timestamptz)
LANGUAGE sql STABLE
AS $$
    SELECT e.ord, r.function_name, r.model, r.latency_ms, coalesce(r.prompt_tokens, 0),
           coalesce(r.completion_tokens, 0), coalesce(r.cached_tokens, 0),
           coalesce(r.status, 'success'), r.error_type, r.confidence, r.query_length,
           r.cost_usd, coalesce(r.variant, 'control'), r.experiment_id, r.deployment_slot,
           r.request_id, r.model_version, r.tenant_id, coalesce(r.metadata, '{}'),
           r.created_at
    FROM jsonb_array_elements(requests) WITH ORDINALITY AS e(value, ord)
    CROSS JOIN LATERAL jsonb_to_record(e.value) AS r(
        function_name text, model text, latency_ms double precision, prompt_tokens integer,
        completion_tokens integer, cached_tokens integer, status text, error_type text,
        confidence double precision, query_length integer, cost_usd numeric, variant text,
        experiment_id uuid, deployment_slot text, request_id text, model_version text,
        tenant_id text, metadata jsonb, created_at timestamptz)
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
        'tenant_id', 'metadata', 'created_at'];
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
        SELECT r.ord, mlops.request_problem(
                   r.function_name, r.model, r.latency_ms, r.prompt_tokens,
                   r.completion_tokens, r.cached_tokens, r.status, r.error_type,
                   r.confidence, r.query_length, r.cost_usd, r.variant, r.tenant_id,
                   r.metadata) AS problem
        INTO bad
        FROM mlops.request_rows(requests) r
        WHERE mlops.request_problem(
                  r.function_name, r.model, r.latency_ms, r.prompt_tokens,
                  r.completion_tokens, r.cached_tokens, r.status, r.error_type,
                  r.confidence, r.query_length, r.cost_usd, r.variant, r.tenant_id,
                  r.metadata) IS NOT NULL
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
        completion_tokens, cached_tokens, cost_usd, confidence, query_length, status,
        error_type, metadata)
    SELECT coalesce(r.tenant_id, mlops.default_tenant()), r.function_name, r.model,
           r.model_version, r.variant, r.experiment_id, r.deployment_slot, r.request_id,
           coalesce(r.created_at, now()), r.latency_ms, r.prompt_tokens,
           r.completion_tokens, r.cached_tokens, r.cost_usd, r.confidence, r.query_length,
           r.status, r.error_type, r.metadata
    FROM mlops.request_rows(requests) r ORDER BY r.ord;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

REVOKE ALL ON FUNCTION mlops.log_request(text, text, double precision, integer, integer,
    integer, text, text, double precision, integer, numeric, text, uuid, text, text, text,
    text, jsonb, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION mlops.log_requests(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mlops.log_request(text, text, double precision, integer, integer,
    integer, text, text, double precision, integer, numeric, text, uuid, text, text, text,
    text, jsonb, timestamptz) TO mlops_writer, mlops_processor;
GRANT EXECUTE ON FUNCTION mlops.log_requests(jsonb) TO mlops_writer, mlops_processor;
GRANT EXECUTE ON FUNCTION mlops.default_tenant() TO mlops_writer, mlops_processor;
GRANT EXECUTE ON FUNCTION mlops.request_rows(jsonb) TO mlops_writer, mlops_processor;
