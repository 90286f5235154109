"""Logging AI requests from Python: :class:`RequestLogger` and the usage readers."""

from stream_mlops.client.logger import (
    COLUMNS,
    Call,
    LoggerStats,
    RequestLogger,
    request_row,
)
from stream_mlops.client.routing import Router
from stream_mlops.client.usage import Usage, usage_from

__all__ = ["COLUMNS", "Call", "LoggerStats", "RequestLogger", "Router", "Usage",
           "request_row", "usage_from"]
