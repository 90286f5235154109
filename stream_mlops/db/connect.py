"""Opening connections, and turning driver errors into the project's own."""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from stream_mlops.errors import ConfigError, DatabaseUnavailable
from stream_mlops.logs import redact_url

log = logging.getLogger(__name__)

MALFORMED_URL = ("DATABASE_URL cannot be parsed as a PostgreSQL URL or conninfo (in a URL, "
                 "percent-encode special characters of the password: a space is %20, % is "
                 "%25, @ is %40)")

# Dead peers (a cut network, a killed server) are noticed within ~25 s even while idle.
KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def connect(
    url: str,
    *,
    autocommit: bool = False,
    timeout: float = 5.0,
    application_name: str = "stream-mlops",
    options: str | None = None,
) -> psycopg.Connection[tuple[Any, ...]]:
    """Connect with keepalives and a connect timeout; raise :class:`DatabaseUnavailable`."""
    params: dict[str, Any] = {
        "connect_timeout": max(1, round(timeout)),
        "application_name": application_name,
        **KEEPALIVES,
    }
    if options:
        params["options"] = options
    try:
        return psycopg.connect(url, autocommit=autocommit, **params)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot connect to Postgres ({redact_url(url)}): {first_line(exc)}"
        ) from exc
    except psycopg.ProgrammingError:  # malformed conninfo: retrying cannot help
        # libpq's own message quotes the part it could not parse, which can be the
        # password: it is not shown.
        raise ConfigError(MALFORMED_URL) from None


def close_quietly(conn: psycopg.Connection[Any]) -> None:
    """Close a connection that may already be broken (then there is nothing to release)."""
    try:
        conn.close()
    except Exception:
        log.debug("close failed", exc_info=True)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
