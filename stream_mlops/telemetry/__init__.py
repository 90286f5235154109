"""OpenTelemetry GenAI client metrics, with the attributes the semantic conventions require."""
