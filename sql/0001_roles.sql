-- Cluster-wide roles. NOLOGIN group roles: grant them to real login roles.
--   mlops_owner      owns every object; subject to RLS like anybody else (FORCE ROW LEVEL SECURITY)
--   mlops_writer     may only INSERT requests (or call mlops.log_request) for its own tenants
--   mlops_reader     may only SELECT its own tenants' rows
--   mlops_processor  the stream processor: reads every tenant, writes derived rows
-- A login role's tenants come from mlops.tenant_roles (role membership), never from a
-- session setting that any client could change.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['mlops_owner', 'mlops_writer', 'mlops_reader', 'mlops_processor'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$$;

-- The migrating role must be able to SET ROLE mlops_owner for the following migrations.
DO $$
BEGIN
    IF NOT pg_has_role(current_user, 'mlops_owner', 'MEMBER') THEN
        EXECUTE format('GRANT mlops_owner TO %I', current_user);
    END IF;
END
$$;

GRANT USAGE, CREATE ON SCHEMA mlops TO mlops_owner;
GRANT USAGE ON SCHEMA mlops TO mlops_writer, mlops_reader, mlops_processor;

-- Horizon age (oldest transaction holding back the consumer) needs other sessions' xact_start.
DO $$
BEGIN
    GRANT pg_read_all_stats TO mlops_processor;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'could not grant pg_read_all_stats to mlops_processor; horizon age will only see own sessions';
END
$$;

-- Processes check that the schema is current before they start.
GRANT SELECT ON mlops.schema_migrations TO mlops_writer, mlops_reader, mlops_processor;
