-- Feature store (issue 15): definitions, typed writes, online and point-in-time reads.
--
-- Values live in mlops.feature_store (0002), keyed (tenant, entity type, entity, feature,
-- event_time): the primary key is the index every read walks backwards from a time. Writes
-- go through mlops.put_features (validated, all or nothing, idempotent on the key); reads
-- through mlops.get_online_features and mlops.get_historical_features, which run with the
-- caller's rights so row level security decides what a role sees.
SET LOCAL ROLE mlops_owner;

------------------------------------------------------------------------------------------
-- Definitions.
------------------------------------------------------------------------------------------
CREATE TABLE mlops.feature_definitions (
    tenant_id     text NOT NULL DEFAULT 'default',
    entity_type   text NOT NULL,
    name          text NOT NULL,
    value_type    text NOT NULL
        CONSTRAINT value_type_must_be_float_int_bool_string_or_float_list
        CHECK (value_type IN ('float', 'int', 'bool', 'string', 'float_list')),
    -- float_list only: every vector has exactly this many elements (NULL: any, 1 to 4096).
    vector_length integer
        CONSTRAINT vector_length_must_be_1_to_4096_and_only_for_float_list
        CHECK (vector_length IS NULL
               OR (vector_length BETWEEN 1 AND 4096 AND value_type = 'float_list')),
    ttl           interval
        CONSTRAINT ttl_must_be_positive CHECK (ttl > interval '0'),
    description   text NOT NULL DEFAULT '',
    owner         text NOT NULL DEFAULT current_user,
    tags          jsonb NOT NULL DEFAULT '{}'::jsonb
        CONSTRAINT tags_must_be_a_json_object CHECK (jsonb_typeof(tags) = 'object'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, entity_type, name),
    CONSTRAINT entity_type_must_be_1_to_100_safe_chars CHECK (
        char_length(entity_type) BETWEEN 1 AND 100 AND mlops.is_safe_label(entity_type)),
    CONSTRAINT name_must_be_1_to_100_safe_chars CHECK (
        char_length(name) BETWEEN 1 AND 100 AND mlops.is_safe_label(name)),
    CONSTRAINT description_must_be_at_most_2000_chars CHECK (char_length(description) <= 2000)
);
CREATE TRIGGER feature_definitions_audit AFTER INSERT OR UPDATE OR DELETE
    ON mlops.feature_definitions
    FOR EACH ROW EXECUTE FUNCTION mlops.audit_change('updated_at');

------------------------------------------------------------------------------------------
-- Values: the table of 0002, with what the processor needs to read new writes once
-- (xid, id: the cursor of mlops.feature_monitor_cursor) and a wake-up like requests.
------------------------------------------------------------------------------------------
ALTER TABLE mlops.feature_store
    ADD COLUMN id  bigint GENERATED ALWAYS AS IDENTITY,
    ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    ADD CONSTRAINT value_must_be_at_most_64_kb CHECK (pg_column_size(value) <= 65536);
CREATE INDEX feature_store_cursor ON mlops.feature_store (xid, id);

CREATE TRIGGER feature_store_notify
    AFTER INSERT OR UPDATE ON mlops.feature_store
    FOR EACH STATEMENT EXECUTE FUNCTION mlops.notify_new_rows();

-- Values whose event_time is too far in the future (a clock gone wrong would shadow every
-- real value until that time comes): kept with the reason, never served.
CREATE TABLE mlops.feature_quarantine (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id      text NOT NULL,
    entity_type    text NOT NULL,
    entity_id      text NOT NULL,
    feature_name   text NOT NULL,
    value          jsonb NOT NULL,
    event_time     timestamptz NOT NULL,
    reason         text NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feature_quarantine_time ON mlops.feature_quarantine (tenant_id, quarantined_at);

-- One row per online read: which features were asked for and how many came back missing
-- (the processor turns them into mlops_feature_online_* metrics).
CREATE TABLE mlops.feature_reads (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
    tenant_id   text NOT NULL,
    entity_type text NOT NULL,
    names       text[] NOT NULL,
    entities    integer NOT NULL,
    missing     integer[] NOT NULL,
    read_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feature_reads_cursor ON mlops.feature_reads (xid, id);

------------------------------------------------------------------------------------------
-- The processor's view of the features: how far it read, and per feature what freshness
-- and staleness need after a restart. Written with the cursor in one transaction.
------------------------------------------------------------------------------------------
CREATE TABLE mlops.feature_monitor_cursor (
    consumer   text NOT NULL,
    source     text NOT NULL CHECK (source IN ('values', 'reads')),
    last_xid   xid8 NOT NULL,
    last_id    bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, source)
);

CREATE TABLE mlops.feature_stats (
    consumer        text NOT NULL,
    tenant_id       text NOT NULL,
    entity_type     text NOT NULL,
    feature_name    text NOT NULL,
    writes_total    bigint NOT NULL DEFAULT 0,
    reads_total     bigint NOT NULL DEFAULT 0,
    missing_total   bigint NOT NULL DEFAULT 0,
    last_event_time timestamptz,
    last_write_at   timestamptz,
    -- Recent gaps between writes (seconds): the feature's usual interval is their median.
    gaps            double precision[] NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, tenant_id, entity_type, feature_name)
);

------------------------------------------------------------------------------------------
-- Alerts of the feature monitor have a type of their own (the drift monitor restores
-- and resolves only alerts of type 'drift').
------------------------------------------------------------------------------------------
ALTER TABLE mlops.alerts DROP CONSTRAINT alert_type_must_be_known;
ALTER TABLE mlops.alerts ADD CONSTRAINT alert_type_must_be_known CHECK (alert_type IN (
    'performance', 'cost', 'drift', 'deployment', 'experiment', 'pipeline', 'feature'));

------------------------------------------------------------------------------------------
-- Row level security and grants. Writers and readers act through the functions below;
-- readers may also SELECT their tenants' rows.
------------------------------------------------------------------------------------------
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['feature_definitions', 'feature_quarantine', 'feature_reads',
                             'feature_stats'] LOOP
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
-- The owner's functions below write for the tenants they checked.
CREATE POLICY owner_all ON mlops.feature_definitions FOR ALL TO mlops_owner
    USING (true) WITH CHECK (true);
CREATE POLICY owner_all ON mlops.feature_store FOR ALL TO mlops_owner
    USING (true) WITH CHECK (true);
CREATE POLICY owner_all ON mlops.feature_quarantine FOR ALL TO mlops_owner
    USING (true) WITH CHECK (true);
CREATE POLICY owner_all ON mlops.feature_reads FOR ALL TO mlops_owner
    USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON mlops.feature_monitor_cursor TO mlops_processor;
-- Column statistics would let EXPLAIN confirm another tenant's entity ids (see 0010).
ALTER TABLE mlops.feature_store
    ALTER COLUMN tenant_id SET STATISTICS 0,
    ALTER COLUMN entity_id SET STATISTICS 0,
    ALTER COLUMN feature_name SET STATISTICS 0,
    ALTER COLUMN feature_group SET STATISTICS 0;

------------------------------------------------------------------------------------------
-- Functions.
------------------------------------------------------------------------------------------

-- Whether the session's login may act for a tenant: one of its tenants, or the processor
-- (superusers are members of every role).
CREATE FUNCTION mlops.feature_tenant(tenant text) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = mlops, pg_catalog
AS $$
BEGIN
    IF tenant = ANY (mlops.tenants_of(session_user))
       OR pg_has_role(session_user, 'mlops_processor', 'MEMBER') THEN
        RETURN tenant;
    END IF;
    RAISE EXCEPTION 'features: role % may not act for tenant %', session_user,
        quote_literal(tenant) USING ERRCODE = 'insufficient_privilege';
END
$$;
REVOKE ALL ON FUNCTION mlops.feature_tenant(text) FROM PUBLIC;

-- Why a JSON value is not a valid value of a feature, or NULL.
CREATE FUNCTION mlops.feature_value_problem(value_type text, vector_length integer,
                                            v jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN v IS NULL OR jsonb_typeof(v) = 'null'
            THEN 'is null (leave the feature out of the row instead)'
        WHEN value_type = 'float' AND jsonb_typeof(v) <> 'number'
            THEN 'must be a number (float), got ' || jsonb_typeof(v)
        WHEN value_type = 'int' AND (jsonb_typeof(v) <> 'number'
                                     OR v::numeric <> trunc(v::numeric))
            THEN 'must be an integer (int), got ' || left(v::text, 50)
        WHEN value_type = 'int' AND (v::numeric < -9223372036854775808
                                     OR v::numeric > 9223372036854775807)
            THEN 'is outside the 64-bit integer range'
        WHEN value_type = 'bool' AND jsonb_typeof(v) <> 'boolean'
            THEN 'must be true or false (bool), got ' || jsonb_typeof(v)
        WHEN value_type = 'string' AND jsonb_typeof(v) <> 'string'
            THEN 'must be a string, got ' || jsonb_typeof(v)
        WHEN value_type = 'string' AND char_length(v #>> '{}') > 4096
            THEN 'is a string of ' || char_length(v #>> '{}')
                 || ' characters (at most 4096)'
        WHEN value_type = 'float_list' AND jsonb_typeof(v) <> 'array'
            THEN 'must be a list of numbers (float_list), got ' || jsonb_typeof(v)
        WHEN value_type = 'float_list' AND EXISTS (
                SELECT 1 FROM jsonb_array_elements(v) e WHERE jsonb_typeof(e) <> 'number')
            THEN 'must be a list of numbers (float_list): an element is not a number'
        WHEN value_type = 'float_list' AND vector_length IS NOT NULL
             AND jsonb_array_length(v) <> vector_length
            THEN 'has ' || jsonb_array_length(v) || ' elements, the feature is defined with '
                 || vector_length
        WHEN value_type = 'float_list' AND jsonb_array_length(v) NOT BETWEEN 1 AND 4096
            THEN 'must have 1 to 4096 elements, got ' || jsonb_array_length(v)
    END
$$;

CREATE FUNCTION mlops.define_feature(
    name          text,
    entity_type   text,
    value_type    text,
    ttl           interval DEFAULT NULL,
    description   text DEFAULT '',
    vector_length integer DEFAULT NULL,
    owner         text DEFAULT NULL,
    tags          jsonb DEFAULT '{}',
    tenant_id     text DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM mlops.define_feature_as(
        coalesce(define_feature.tenant_id, mlops.default_tenant()), define_feature.name,
        define_feature.entity_type, define_feature.value_type, define_feature.ttl,
        coalesce(define_feature.description, ''), define_feature.vector_length,
        coalesce(define_feature.owner, session_user), coalesce(define_feature.tags, '{}'));
END
$$;

CREATE FUNCTION mlops.define_feature_as(
    p_tenant text, p_name text, p_entity_type text, p_value_type text, p_ttl interval,
    p_description text, p_vector_length integer, p_owner text, p_tags jsonb
) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = mlops, pg_catalog
AS $$
DECLARE
    old mlops.feature_definitions%ROWTYPE;
BEGIN
    PERFORM mlops.feature_tenant(p_tenant);
    IF p_name IS NULL OR btrim(p_name) = '' OR char_length(p_name) > 100
       OR NOT mlops.is_safe_label(p_name) THEN
        RAISE EXCEPTION 'define_feature: name must be 1 to 100 printable characters, got %',
            quote_nullable(left(p_name, 120)) USING ERRCODE = 'check_violation';
    END IF;
    IF p_entity_type IS NULL OR btrim(p_entity_type) = '' OR char_length(p_entity_type) > 100
       OR NOT mlops.is_safe_label(p_entity_type) THEN
        RAISE EXCEPTION 'define_feature %: entity_type must be 1 to 100 printable characters',
            quote_literal(p_name) USING ERRCODE = 'check_violation';
    END IF;
    IF p_value_type IS NULL OR p_value_type NOT IN ('float', 'int', 'bool', 'string',
                                                    'float_list') THEN
        RAISE EXCEPTION 'define_feature %: value_type must be one of float, int, bool, '
            'string, float_list, got %', quote_literal(p_name), quote_nullable(p_value_type)
            USING ERRCODE = 'check_violation';
    END IF;
    IF p_vector_length IS NOT NULL AND (p_value_type <> 'float_list'
                                        OR p_vector_length NOT BETWEEN 1 AND 4096) THEN
        RAISE EXCEPTION 'define_feature %: vector_length (1 to 4096) is only for float_list',
            quote_literal(p_name) USING ERRCODE = 'check_violation';
    END IF;
    IF p_ttl IS NOT NULL AND p_ttl <= interval '0' THEN
        RAISE EXCEPTION 'define_feature %: ttl must be positive (or NULL: no expiry), got %',
            quote_literal(p_name), p_ttl USING ERRCODE = 'check_violation';
    END IF;
    SELECT * INTO old FROM mlops.feature_definitions d
    WHERE d.tenant_id = p_tenant AND d.entity_type = p_entity_type AND d.name = p_name
    FOR UPDATE;
    IF FOUND AND (old.value_type <> p_value_type
                  OR old.vector_length IS DISTINCT FROM p_vector_length) THEN
        RAISE EXCEPTION 'define_feature %: already defined for % as %, which stored values '
            'follow; define a new feature instead of changing its type', quote_literal(p_name),
            quote_literal(p_entity_type),
            old.value_type || coalesce('[' || old.vector_length || ']', '')
            USING ERRCODE = 'check_violation';
    END IF;
    INSERT INTO mlops.feature_definitions AS d
        (tenant_id, entity_type, name, value_type, vector_length, ttl, description, owner,
         tags)
    VALUES (p_tenant, p_entity_type, p_name, p_value_type, p_vector_length, p_ttl,
            p_description, p_owner, p_tags)
    ON CONFLICT (tenant_id, entity_type, name) DO UPDATE
    SET ttl = EXCLUDED.ttl, description = EXCLUDED.description, owner = EXCLUDED.owner,
        tags = EXCLUDED.tags, updated_at = now()
    WHERE (d.ttl, d.description, d.owner, d.tags)
          IS DISTINCT FROM (EXCLUDED.ttl, EXCLUDED.description, EXCLUDED.owner, EXCLUDED.tags);
END
$$;
REVOKE ALL ON FUNCTION mlops.define_feature_as(text, text, text, text, interval, text,
                                               integer, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mlops.define_feature_as(text, text, text, text, interval, text,
                                                  integer, text, jsonb)
    TO mlops_writer, mlops_processor;

-- The definitions of a tenant (optionally of one entity type).
CREATE FUNCTION mlops.list_features(entity_type text DEFAULT NULL, tenant_id text DEFAULT NULL)
RETURNS SETOF mlops.feature_definitions
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = mlops, pg_catalog
AS $$
DECLARE
    -- Not mlops.default_tenant(): current_user is this function's owner here.
    t text := mlops.feature_tenant(coalesce(
        list_features.tenant_id,
        (SELECT CASE WHEN cardinality(s.t) = 1 THEN s.t[1] ELSE 'default' END
         FROM (SELECT mlops.tenants_of(session_user) AS t) s)));
BEGIN
    RETURN QUERY SELECT * FROM mlops.feature_definitions d
    WHERE d.tenant_id = t
      AND (list_features.entity_type IS NULL OR d.entity_type = list_features.entity_type)
    ORDER BY d.entity_type, d.name;
END
$$;
REVOKE ALL ON FUNCTION mlops.list_features(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mlops.list_features(text, text)
    TO mlops_writer, mlops_reader, mlops_processor;

-- The definitions of `names` for an entity type, in the order asked; errors name the
-- unknown entity type or feature.
CREATE FUNCTION mlops.feature_defs_of(p_tenant text, p_entity_type text, p_names text[])
RETURNS TABLE (ord bigint, name text, value_type text, vector_length integer, ttl interval)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = mlops, pg_catalog
AS $$
DECLARE
    unknown text;
BEGIN
    PERFORM mlops.feature_tenant(p_tenant);
    IF NOT EXISTS (SELECT 1 FROM mlops.feature_definitions d
                   WHERE d.tenant_id = p_tenant AND d.entity_type = p_entity_type) THEN
        RAISE EXCEPTION 'features: unknown entity type % (no feature is defined for it)',
            quote_nullable(p_entity_type) USING ERRCODE = 'undefined_object';
    END IF;
    SELECT n.name INTO unknown
    FROM unnest(p_names) n(name)
    WHERE NOT EXISTS (SELECT 1 FROM mlops.feature_definitions d
                      WHERE d.tenant_id = p_tenant AND d.entity_type = p_entity_type
                        AND d.name = n.name)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'features: feature % is not defined for entity type %',
            quote_nullable(unknown), quote_literal(p_entity_type)
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN QUERY
    SELECT n.ord, d.name, d.value_type, d.vector_length, d.ttl
    FROM unnest(p_names) WITH ORDINALITY n(name, ord)
    JOIN mlops.feature_definitions d
      ON d.tenant_id = p_tenant AND d.entity_type = p_entity_type AND d.name = n.name
    ORDER BY n.ord;
END
$$;
REVOKE ALL ON FUNCTION mlops.feature_defs_of(text, text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mlops.feature_defs_of(text, text, text[])
    TO mlops_writer, mlops_reader, mlops_processor;

CREATE FUNCTION mlops.timestamptz_or_null(value text) RETURNS timestamptz
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN value::timestamptz;
EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR invalid_parameter_value
    THEN RETURN NULL;
END
$$;

-- Write many values: `rows` is a JSON array of
--   {"entity_id": "u1", "event_time": "2026-01-01T00:00:00Z", "features": {"age": 31}}
-- (event_time optional: now). All or nothing; errors name the element and the feature.
-- Idempotent on (entity, feature, event_time): writing the same value again changes
-- nothing, a different value replaces it. Values more than `max_future_seconds` ahead of
-- now are quarantined with the reason. Returns (written, quarantined).
CREATE FUNCTION mlops.put_features(entity_type text, rows jsonb, tenant_id text DEFAULT NULL,
                                   max_future_seconds double precision DEFAULT 300,
                                   OUT written bigint, OUT quarantined bigint)
LANGUAGE plpgsql
AS $$
BEGIN
    SELECT * INTO written, quarantined FROM mlops.put_features_as(
        coalesce(put_features.tenant_id, mlops.default_tenant()), put_features.entity_type,
        put_features.rows, put_features.max_future_seconds);
END
$$;

CREATE FUNCTION mlops.put_features_as(p_tenant text, p_entity_type text, p_rows jsonb,
                                      p_max_future double precision,
                                      OUT written bigint, OUT quarantined bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = mlops, pg_catalog
AS $$
DECLARE
    bad record;
    horizon timestamptz := now() + make_interval(secs => p_max_future);
BEGIN
    PERFORM mlops.feature_tenant(p_tenant);
    IF jsonb_typeof(p_rows) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'put_features: rows must be a JSON array of objects'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM mlops.feature_definitions d
                   WHERE d.tenant_id = p_tenant AND d.entity_type = p_entity_type) THEN
        RAISE EXCEPTION 'put_features: unknown entity type % (no feature is defined for it)',
            quote_nullable(p_entity_type) USING ERRCODE = 'undefined_object';
    END IF;
    CREATE TEMP TABLE IF NOT EXISTS pg_temp.feature_put (
        ord bigint, entity_id text, event_time timestamptz, feature_name text, value jsonb,
        problem text) ON COMMIT DROP;
    TRUNCATE pg_temp.feature_put;
    -- Element problems first (its shape), then one problem per (element, feature).
    SELECT e.ord, CASE
        WHEN jsonb_typeof(e.v) <> 'object' THEN 'is not a JSON object'
        WHEN jsonb_typeof(e.v -> 'entity_id') IS DISTINCT FROM 'string'
             OR char_length(e.v ->> 'entity_id') NOT BETWEEN 1 AND 200
            THEN 'entity_id must be a string of 1 to 200 characters'
        WHEN jsonb_typeof(e.v -> 'features') IS DISTINCT FROM 'object'
            THEN 'features must be a JSON object of name: value'
        WHEN jsonb_typeof(e.v -> 'event_time') NOT IN ('string', 'null')
            THEN 'event_time must be an ISO 8601 timestamp string'
        WHEN (SELECT count(*) FROM jsonb_object_keys(e.v) k
              WHERE k NOT IN ('entity_id', 'event_time', 'features')) > 0
            THEN 'has keys other than entity_id, event_time and features'
        END AS problem
    INTO bad
    FROM jsonb_array_elements(p_rows) WITH ORDINALITY e(v, ord)
    WHERE jsonb_typeof(e.v) <> 'object'
       OR jsonb_typeof(e.v -> 'entity_id') IS DISTINCT FROM 'string'
       OR char_length(e.v ->> 'entity_id') NOT BETWEEN 1 AND 200
       OR jsonb_typeof(e.v -> 'features') IS DISTINCT FROM 'object'
       OR jsonb_typeof(e.v -> 'event_time') NOT IN ('string', 'null')
       OR (SELECT count(*) FROM jsonb_object_keys(e.v) k
           WHERE k NOT IN ('entity_id', 'event_time', 'features')) > 0
    ORDER BY e.ord LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'put_features: row % %; nothing was written', bad.ord - 1, bad.problem
            USING ERRCODE = 'check_violation';
    END IF;
    BEGIN
        INSERT INTO pg_temp.feature_put
        SELECT e.ord, e.v ->> 'entity_id',
               coalesce((e.v ->> 'event_time')::timestamptz, now()), f.key, f.value,
               CASE WHEN d.name IS NULL
                    THEN 'feature ' || quote_literal(f.key) || ' is not defined for entity type '
                         || quote_literal(p_entity_type)
                    ELSE (SELECT 'feature ' || quote_literal(f.key) || ' ' || p
                          FROM mlops.feature_value_problem(d.value_type, d.vector_length,
                                                           f.value) p)
               END
        FROM jsonb_array_elements(p_rows) WITH ORDINALITY e(v, ord)
        CROSS JOIN LATERAL jsonb_each(e.v -> 'features') f
        LEFT JOIN mlops.feature_definitions d
          ON d.tenant_id = p_tenant AND d.entity_type = p_entity_type AND d.name = f.key;
    EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow
                   OR invalid_parameter_value THEN
        SELECT e.ord INTO bad FROM jsonb_array_elements(p_rows) WITH ORDINALITY e(v, ord)
        WHERE e.v ->> 'event_time' IS NOT NULL
          AND mlops.timestamptz_or_null(e.v ->> 'event_time') IS NULL
        ORDER BY e.ord LIMIT 1;
        RAISE EXCEPTION 'put_features: row % event_time is not a valid timestamp; nothing '
            'was written', coalesce(bad.ord - 1, 0) USING ERRCODE = 'check_violation';
    END;
    SELECT ord, feature_name, problem INTO bad FROM pg_temp.feature_put
    WHERE problem IS NOT NULL ORDER BY ord LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'put_features: row % %; nothing was written', bad.ord - 1, bad.problem
            USING ERRCODE = 'check_violation';
    END IF;
    WITH q AS (
        INSERT INTO mlops.feature_quarantine (tenant_id, entity_type, entity_id,
                                              feature_name, value, event_time, reason)
        SELECT p_tenant, p_entity_type, p.entity_id, p.feature_name, p.value, p.event_time,
               'event_time ' || p.event_time || ' is more than ' || p_max_future
               || ' s in the future'
        FROM pg_temp.feature_put p WHERE p.event_time > horizon
        RETURNING 1)
    SELECT count(*) INTO quarantined FROM q;
    -- A batch may hold one (entity, feature, event_time) twice: the last one wins, as if
    -- they had been written one after the other.
    WITH w AS (
        INSERT INTO mlops.feature_store AS s (tenant_id, feature_group, entity_id,
                                              feature_name, value, event_time)
        SELECT DISTINCT ON (p.entity_id, p.feature_name, p.event_time)
               p_tenant, p_entity_type, p.entity_id, p.feature_name, p.value, p.event_time
        FROM pg_temp.feature_put p WHERE p.event_time <= horizon
        ORDER BY p.entity_id, p.feature_name, p.event_time, p.ord DESC
        ON CONFLICT (tenant_id, feature_group, entity_id, feature_name, event_time)
        DO UPDATE SET value = EXCLUDED.value, created_at = now(),
                      xid = pg_current_xact_id()
        WHERE s.value IS DISTINCT FROM EXCLUDED.value
        RETURNING 1)
    SELECT count(*) INTO written FROM w;
    TRUNCATE pg_temp.feature_put;
END
$$;
REVOKE ALL ON FUNCTION mlops.put_features_as(text, text, jsonb, double precision)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mlops.put_features_as(text, text, jsonb, double precision)
    TO mlops_writer, mlops_processor;

-- For each (entity_ids[i], at[i]): the latest value of every feature in `names` with
-- event_time at or before at[i] and no older than the feature's TTL, as a JSON object of
-- the features found (a missing one is absent). One backward step on the primary key per
-- (row, feature). Runs with the caller's rights: row level security applies.
CREATE FUNCTION mlops.features_at(p_tenant text, p_entity_type text, p_entity_ids text[],
                                  p_at timestamptz[], p_names text[])
RETURNS TABLE (ord bigint, entity_id text, at timestamptz, features jsonb)
LANGUAGE plpgsql STABLE
SET search_path = mlops, pg_catalog
AS $$
BEGIN
    IF cardinality(p_entity_ids) IS DISTINCT FROM cardinality(p_at) THEN
        RAISE EXCEPTION 'features: % entity ids but % timestamps',
            cardinality(p_entity_ids), cardinality(p_at) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    WITH defs AS MATERIALIZED (
        SELECT d.ord, d.name, d.ttl FROM mlops.feature_defs_of(p_tenant, p_entity_type, p_names) d)
    SELECT r.ord, r.entity_id, r.at,
           coalesce((SELECT jsonb_object_agg(defs.name, v.value)
                     FROM defs CROSS JOIN LATERAL (
                         SELECT s.value FROM mlops.feature_store s
                         WHERE s.tenant_id = p_tenant AND s.feature_group = p_entity_type
                           AND s.entity_id = r.entity_id AND s.feature_name = defs.name
                           AND s.event_time <= r.at
                           AND s.event_time >= CASE WHEN defs.ttl IS NULL THEN '-infinity'
                                                   ELSE r.at - defs.ttl END
                         ORDER BY s.event_time DESC
                         LIMIT 1) v), '{}'::jsonb)
    FROM unnest(p_entity_ids, p_at) WITH ORDINALITY r(entity_id, at, ord)
    ORDER BY r.ord;
END
$$;

-- Point-in-time correct values for training rows (entity_ids[i], timestamps[i]).
CREATE FUNCTION mlops.get_historical_features(entity_type text, entity_ids text[],
                                              timestamps timestamptz[], names text[],
                                              tenant_id text DEFAULT NULL)
RETURNS TABLE (ord bigint, entity_id text, "timestamp" timestamptz, features jsonb)
LANGUAGE sql STABLE
AS $$
    SELECT * FROM mlops.features_at(coalesce(tenant_id, mlops.default_tenant()), entity_type,
                                    entity_ids, timestamps, names)
$$;

-- The latest value within TTL of each feature for each entity, now; the read is counted
-- (features asked for, missing per feature) for the processor's online metrics.
CREATE FUNCTION mlops.get_online_features(entity_type text, entity_ids text[], names text[],
                                          tenant_id text DEFAULT NULL)
RETURNS TABLE (entity_id text, features jsonb)
LANGUAGE plpgsql
AS $$
DECLARE
    t text := coalesce(get_online_features.tenant_id, mlops.default_tenant());
    found_rows jsonb[];
    ids text[];
BEGIN
    SELECT array_agg(f.entity_id ORDER BY f.ord), array_agg(f.features ORDER BY f.ord)
    INTO ids, found_rows
    FROM mlops.features_at(t, get_online_features.entity_type, entity_ids,
                           array_fill(now(), ARRAY[cardinality(entity_ids)]), names) f;
    PERFORM mlops.record_feature_read(t, get_online_features.entity_type, names,
                                      coalesce(cardinality(ids), 0),
                                      ARRAY(SELECT count(*) FILTER (WHERE NOT x.fs ? n.name)
                                            FROM unnest(names) WITH ORDINALITY n(name, o)
                                            CROSS JOIN unnest(coalesce(found_rows, '{}')) x(fs)
                                            GROUP BY n.o ORDER BY n.o)::integer[]);
    RETURN QUERY SELECT u.e, u.f FROM unnest(ids, found_rows) u(e, f);
END
$$;

CREATE FUNCTION mlops.record_feature_read(p_tenant text, p_entity_type text, p_names text[],
                                          p_entities integer, p_missing integer[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = mlops, pg_catalog
AS $$
BEGIN
    IF p_entities > 0 THEN
        INSERT INTO mlops.feature_reads (tenant_id, entity_type, names, entities, missing)
        VALUES (mlops.feature_tenant(p_tenant), p_entity_type, p_names, p_entities,
                CASE WHEN cardinality(p_missing) = cardinality(p_names) THEN p_missing
                     ELSE array_fill(p_entities, ARRAY[cardinality(p_names)]) END);
    END IF;
END
$$;
REVOKE ALL ON FUNCTION mlops.record_feature_read(text, text, text[], integer, integer[])
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mlops.record_feature_read(text, text, text[], integer, integer[])
    TO mlops_reader, mlops_writer, mlops_processor;

GRANT EXECUTE ON FUNCTION mlops.feature_tenant(text) TO mlops_writer, mlops_reader,
    mlops_processor;
