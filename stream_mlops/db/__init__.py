"""The Postgres edge: connections, migrations, named SQL, the consumer and the listener."""
