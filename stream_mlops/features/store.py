"""The feature store's Python interface (notebooks, scripts, services)::

    from stream_mlops.features import FeatureStore

    fs = FeatureStore(os.environ["DATABASE_URL"])
    fs.define("orders_7d", "user", "int", ttl=timedelta(days=2))
    fs.put("user", "u1", {"orders_7d": 3}, event_time=datetime(2026, 1, 1, tzinfo=UTC))
    fs.get_online("user", ["u1", "u2"], ["orders_7d"])
    # {'u1': {'orders_7d': 3}, 'u2': {'orders_7d': None}}
    fs.get_historical("user", [("u1", datetime(2026, 1, 2, tzinfo=UTC))], ["orders_7d"])
    # [{'entity_id': 'u1', 'timestamp': datetime(...), 'orders_7d': 3}]

Every call is one of the SQL functions of ``sql/0012_features.sql`` (``mlops.put_features``,
``mlops.get_online_features``, ``mlops.get_historical_features``, ...), so a caller without
Python gets the same answers, the same checks and the same errors. Nothing here reads the
feature table into Python: the point-in-time join runs in Postgres on its primary key.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from stream_mlops.db.connect import connect, first_line
from stream_mlops.db.queries import q
from stream_mlops.errors import MlopsError

Conn = psycopg.Connection[Any]

VALUE_TYPES = ("float", "int", "bool", "string", "float_list")
# Values per statement of a batch write (the batch is still one transaction).
CHUNK = 20_000
MAX_FUTURE_SECONDS = 300.0  # as requests (Settings.max_future_skew_seconds)


class FeatureError(MlopsError, ValueError):
    """A definition, a write or a read the store refuses; the message names what is wrong
    (the feature, the row of a batch)."""


@dataclass(frozen=True)
class FeatureDefinition:
    """A row of mlops.feature_definitions (``list_features``)."""

    tenant_id: str
    entity_type: str
    name: str
    value_type: str
    vector_length: int | None
    ttl_seconds: float | None
    description: str
    owner: str
    tags: Any
    created_at: datetime
    updated_at: datetime

    @property
    def ttl(self) -> timedelta | None:
        return None if self.ttl_seconds is None else timedelta(seconds=self.ttl_seconds)


@dataclass(frozen=True)
class PutResult:
    """What a write did: values written (a rewrite of the same value is not counted) and
    values quarantined for an event time too far in the future."""

    written: int
    quarantined: int


def _json_value(value: Any, where: str) -> Any:
    """A value as JSON can carry it, or a :class:`FeatureError` naming ``where``."""
    if hasattr(value, "item") and not isinstance(value, (list, tuple, str)):
        value = value.item() if getattr(value, "ndim", 0) == 0 else value.tolist()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise FeatureError(f"{where} is {value!r}: values must be finite numbers")
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise FeatureError(f"{where} has type {type(value).__name__}: a value is a number, a "
                       "bool, a string or a list of numbers")


def _timestamp(value: Any, where: str) -> datetime:
    if hasattr(value, "to_pydatetime"):  # pandas.Timestamp
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        raise FeatureError(f"{where} must be a datetime, got {type(value).__name__}")
    # Naive times are UTC, as in Feast: a server's local zone must not move them.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _error(exc: psycopg.Error) -> FeatureError:
    diag = getattr(exc, "diag", None)
    return FeatureError((diag.message_primary if diag is not None else None)
                        or first_line(exc))


class FeatureStore:
    """Features of one tenant in the Postgres at ``database_url``.

    ``tenant_id`` None: the connecting role's only tenant, else ``'default'``. One
    connection is kept open (reads are a round trip each); the object is thread-safe and
    can be used as a context manager to close it.
    """

    def __init__(self, database_url: str, tenant_id: str | None = None) -> None:
        self.database_url = database_url
        self.tenant_id = tenant_id
        self._conn: Conn | None = None
        self._lock = threading.Lock()
        self._types: dict[tuple[str, str], str] = {}

    # -- connection -------------------------------------------------------------------
    @contextmanager
    def _session(self) -> Iterator[Conn]:
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = connect(self.database_url, application_name="stream-mlops features")
            conn = self._conn
            try:
                yield conn
            except psycopg.OperationalError:
                conn.close()  # broken: the next call reconnects
                raise
            except psycopg.Error as exc:
                if not conn.closed:
                    conn.rollback()
                if isinstance(exc, (psycopg.errors.RaiseException, psycopg.errors.CheckViolation,
                                    psycopg.errors.UndefinedObject,
                                    psycopg.errors.InsufficientPrivilege,
                                    psycopg.errors.InvalidParameterValue,
                                    psycopg.errors.DataException)):
                    raise _error(exc) from None
                raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- definitions ------------------------------------------------------------------
    def define(self, name: str, entity_type: str, value_type: str,
               ttl: timedelta | None = None, description: str = "", *,
               vector_length: int | None = None, owner: str | None = None,
               tags: Mapping[str, str] | None = None) -> None:
        """Define (or re-describe) a feature. Its type cannot change once defined; ``ttl``
        None: values never expire."""
        if value_type not in VALUE_TYPES:
            raise FeatureError(f"feature {name!r}: value_type must be one of "
                               f"{', '.join(VALUE_TYPES)}, got {value_type!r}")
        if ttl is not None and not isinstance(ttl, timedelta):
            raise FeatureError(f"feature {name!r}: ttl must be a timedelta or None")
        with self._session() as conn, conn.transaction():
            conn.execute(q("define_feature"), {
                "name": name, "entity_type": entity_type, "value_type": value_type,
                "ttl": ttl, "description": description, "vector_length": vector_length,
                "owner": owner, "tags": Jsonb(dict(tags or {})), "tenant_id": self.tenant_id})
        self._types[(entity_type, name)] = value_type

    def definitions(self, entity_type: str | None = None) -> list[FeatureDefinition]:
        """The tenant's definitions (of one entity type)."""
        with self._session() as conn, conn.transaction(), \
                conn.cursor(row_factory=class_row(FeatureDefinition)) as cur:
            return cur.execute(q("list_features"), {"entity_type": entity_type,
                                                    "tenant_id": self.tenant_id}).fetchall()

    # -- writes -----------------------------------------------------------------------
    def put(self, entity_type: str, entity_id: str, values: Mapping[str, Any],
            event_time: datetime | None = None) -> PutResult:
        """Write one entity's values at ``event_time`` (None: now)."""
        return self.put_many(entity_type, [(entity_id, values, event_time)])

    def put_many(self, entity_type: str,
                 rows: Iterable[tuple[str, Mapping[str, Any], datetime | None]
                                | Mapping[str, Any]]) -> PutResult:
        """Write a batch, all or nothing: ``rows`` are ``(entity_id, {name: value},
        event_time)`` tuples or ``{"entity_id", "features", "event_time"}`` dicts. Errors
        name the row (0-based) and the feature."""
        docs = [self._row(i, r) for i, r in enumerate(rows)]
        written = quarantined = 0
        with self._session() as conn, conn.transaction():
            for start in range(0, len(docs), CHUNK):
                part = docs[start:start + CHUNK]
                try:
                    row = conn.execute(q("put_features"), {
                        "entity_type": entity_type, "tenant_id": self.tenant_id,
                        "rows": Jsonb(part), "max_future_seconds": MAX_FUTURE_SECONDS,
                    }).fetchone()
                except psycopg.errors.CheckViolation as exc:
                    raise _renumbered(exc, start) from None
                assert row is not None
                written += row[0]
                quarantined += row[1]
        return PutResult(written, quarantined)

    @staticmethod
    def _row(i: int, r: Any) -> dict[str, Any]:
        if isinstance(r, Mapping):
            entity_id, values, event_time = r.get("entity_id"), r.get("features"), \
                r.get("event_time")
        else:
            try:
                entity_id, values, event_time = r
            except (TypeError, ValueError):
                raise FeatureError(f"row {i} must be (entity_id, {{name: value}}, event_time)"
                                   ) from None
        if not isinstance(entity_id, str):
            raise FeatureError(f"row {i}: entity_id must be a string, got "
                               f"{type(entity_id).__name__}")
        if not isinstance(values, Mapping):
            raise FeatureError(f"row {i}: values must be a mapping of feature name to value")
        doc: dict[str, Any] = {"entity_id": entity_id, "features": {
            str(k): _json_value(v, f"row {i} feature {k!r}") for k, v in values.items()}}
        if event_time is not None:
            doc["event_time"] = _timestamp(event_time, f"row {i} event_time").isoformat()
        return doc

    # -- reads ------------------------------------------------------------------------
    def get_online(self, entity_type: str, entity_ids: Sequence[str],
                   names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Per entity, the latest value of each feature within its TTL, now; expired or
        absent values are None."""
        ids, names = list(entity_ids), list(names)
        with self._session() as conn, conn.transaction():
            # The read is counted for the processor (mlops.feature_reads): that bookkeeping
            # need not wait for a WAL flush (losing the last counts in a crash is fine).
            conn.execute(q("feature_read_async_commit"))
            types = self._value_types(conn, entity_type, names)
            rows = conn.execute(q("get_online_features"), {
                "entity_type": entity_type, "entity_ids": ids, "names": names,
                "tenant_id": self.tenant_id}).fetchall()
        return {e: {n: _typed(found.get(n), types[n]) for n in names} for e, found in rows}

    def get_historical(self, entity_type: str, rows: Any,
                       names: Sequence[str]) -> list[dict[str, Any]]:
        """Point-in-time correct values: for each ``(entity_id, timestamp)`` of ``rows`` (or
        a DataFrame with ``entity_id`` and ``timestamp`` columns), the latest value of each
        feature with event_time at or before the timestamp and within its TTL. One dict per
        row, in order: ``{"entity_id", "timestamp", name: value or None, ...}``."""
        pairs = _pairs(rows)
        ids = [e for e, _ in pairs]
        stamps = [_timestamp(t, f"row {i} timestamp") for i, (_, t) in enumerate(pairs)]
        names = list(names)
        with self._session() as conn, conn.transaction():
            types = self._value_types(conn, entity_type, names)
            found = conn.execute(q("get_historical_features"), {
                "entity_type": entity_type, "entity_ids": ids, "timestamps": stamps,
                "names": names, "tenant_id": self.tenant_id}).fetchall()
        out = []
        for (entity_id, ts), (features,) in zip(pairs, found, strict=True):
            d: dict[str, Any] = {"entity_id": entity_id, "timestamp": ts}
            for n in names:
                d[n] = _typed(features.get(n), types[n])
            out.append(d)
        return out

    def _value_types(self, conn: Conn, entity_type: str, names: list[str]) -> dict[str, str]:
        # Types never change once defined, so what was read once stays true.
        if any((entity_type, n) not in self._types for n in names):
            for d in conn.execute(q("list_features"), {"entity_type": entity_type,
                                                       "tenant_id": self.tenant_id}):
                self._types[(entity_type, d[2])] = d[3]
        # An unknown one is left to the SQL function, which names it.
        return {n: self._types.get((entity_type, n), "") for n in names}


def _typed(value: Any, value_type: str) -> Any:
    if value is None:
        return None
    if value_type == "float":
        return float(value)
    if value_type == "float_list":
        return [float(v) for v in value]
    return value


def _pairs(rows: Any) -> list[tuple[str, Any]]:
    columns = getattr(rows, "columns", None)
    if columns is not None:  # a DataFrame
        for need in ("entity_id", "timestamp"):
            if need not in columns:
                raise FeatureError(f"the DataFrame of rows needs a {need!r} column")
        return list(zip(rows["entity_id"].astype(str).tolist(),
                        rows["timestamp"].tolist(), strict=True))
    out = []
    for i, r in enumerate(rows):
        try:
            entity_id, ts = r
        except (TypeError, ValueError):
            raise FeatureError(f"row {i} must be an (entity_id, timestamp) pair") from None
        if not isinstance(entity_id, str):
            raise FeatureError(f"row {i}: entity_id must be a string")
        out.append((entity_id, ts))
    return out


def _renumbered(exc: psycopg.Error, start: int) -> FeatureError:
    """The SQL function numbers the rows of its chunk: say which row of the whole batch."""
    message = _error(exc).args[0]
    prefix = "put_features: row "
    if start and message.startswith(prefix):
        number, _, rest = message[len(prefix):].partition(" ")
        if number.isdigit():
            message = f"{prefix}{int(number) + start} {rest}"
    return FeatureError(message)


def dumps(value: Any) -> str:
    """JSON for the CLI's output (datetimes as ISO 8601)."""
    return json.dumps(value, default=lambda o: o.isoformat() if isinstance(o, datetime)
                      else str(o))
