"""The outbound edge: Prometheus exposition over HTTP (and, later, e-mail)."""
