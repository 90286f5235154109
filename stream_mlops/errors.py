"""The project's own error classes: each carries a one-line message fit for a user."""


class MlopsError(Exception):
    """Base class; ``str(err)`` is a complete, one-line explanation."""


class ConfigError(MlopsError):
    """A setting is missing or malformed."""


class DatabaseUnavailable(MlopsError):
    """Postgres cannot be reached (yet); callers retry with backoff."""


class SchemaError(MlopsError):
    """The database schema is missing or older than this code expects."""


class CursorConflict(MlopsError):
    """The durable cursor moved under us (another processor, or a restored database)."""
