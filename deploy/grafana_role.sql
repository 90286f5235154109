-- Grafana's login: a member of mlops_reader only, so its Postgres panels see rows through
-- row level security, of the tenants listed here and no others. Run by the compose
-- stack's `roles` service: psql -v pw=... -v tenants=default,tenant-0 -f this.
SELECT 'CREATE ROLE stream_mlops_grafana LOGIN IN ROLE mlops_reader'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'stream_mlops_grafana') \gexec
ALTER ROLE stream_mlops_grafana PASSWORD :'pw';
-- A dashboard query must not hold the database: the same limits as the application's login.
ALTER ROLE stream_mlops_grafana SET statement_timeout = '10s';
ALTER ROLE stream_mlops_grafana SET default_transaction_read_only = on;
INSERT INTO mlops.tenant_roles (role_name, tenant_id)
SELECT 'stream_mlops_grafana', t FROM unnest(string_to_array(:'tenants', ',')) t
ON CONFLICT DO NOTHING;
