-- The processor's login: a member of mlops_processor only (a superuser would bypass row
-- level security). Run by the compose stack's `roles` service: psql -v pw=... -f this.
SELECT 'CREATE ROLE stream_mlops_processor LOGIN IN ROLE mlops_processor'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'stream_mlops_processor') \gexec
ALTER ROLE stream_mlops_processor PASSWORD :'pw';
