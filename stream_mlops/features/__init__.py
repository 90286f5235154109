"""A feature store on Postgres: definitions, online reads, point-in-time correct history,
freshness and drift."""

from stream_mlops.features.store import FeatureDefinition, FeatureError, FeatureStore, PutResult

__all__ = ["FeatureDefinition", "FeatureError", "FeatureStore", "PutResult"]
