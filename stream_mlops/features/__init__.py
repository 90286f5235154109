"""A feature store on Postgres: definitions, online reads, point-in-time correct history,
freshness and drift."""
