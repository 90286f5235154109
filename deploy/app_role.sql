-- The application's login (here: the compose stack's simulator): a member of
-- mlops_writer only, writing rows of the tenants listed. Run by the compose stack's
-- `roles` service: psql -v pw=... -v tenants=default,tenant-0 -f this.
SELECT 'CREATE ROLE stream_mlops_app LOGIN IN ROLE mlops_writer'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'stream_mlops_app') \gexec
ALTER ROLE stream_mlops_app PASSWORD :'pw';
ALTER ROLE stream_mlops_app SET statement_timeout = '10s';
ALTER ROLE stream_mlops_app SET idle_in_transaction_session_timeout = '30s';
INSERT INTO mlops.tenant_roles (role_name, tenant_id)
SELECT 'stream_mlops_app', t FROM unnest(string_to_array(:'tenants', ',')) t
ON CONFLICT DO NOTHING;
