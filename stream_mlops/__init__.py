"""stream_mlops: live, statistically honest monitoring of AI/LLM-backed functions on Postgres."""

__version__ = "0.1.0"
