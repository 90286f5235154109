"""The pipeline's SQL: the checkpoint, batches, their persistence, and the monitors' store.

Everything the consumer and the monitors read comes back as dataclasses (columns by name,
``pipeline.sql`` and the features' ``.sql`` files); nothing outside this module indexes
a row by position.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import psycopg
from psycopg import pq
from psycopg.rows import class_row, dict_row, kwargs_row
from psycopg.types.json import Jsonb

from stream_mlops.core.batch import RawBatch
from stream_mlops.core.monitor import Cursor
from stream_mlops.core.series import SeriesKey
from stream_mlops.db.arrays import register_numpy_arrays
from stream_mlops.db.connect import first_line
from stream_mlops.db.queries import q
from stream_mlops.errors import CursorConflict, DatabaseUnavailable, MlopsError, SchemaError
from stream_mlops.pipeline.processor import Effects
from stream_mlops.pipeline.totals import CONFIDENCE_BOUNDS, LATENCY_BOUNDS, TOKEN_BOUNDS, Delta

log = logging.getLogger(__name__)
R = TypeVar("R")
Conn = psycopg.Connection[tuple[Any, ...]]

# Not the data's fault: the caller reconnects (or reloads) and tries again.
CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, DatabaseUnavailable,
                     CursorConflict)
# SQLSTATE of mlops.cursor_moved (sql/0018_cursor_moved.sql): persist's compare-and-set.
CURSOR_MOVED = "SM001"
KEY_COLUMNS = ("tenant_id", "function_name", "model", "variant")
# series_totals column -> Delta attribute (cost and last_event_at need care of their own);
# the parameters of persist_batch are named like the columns.
SERIES_COLUMNS = {
    "success_count": "success", "error_count": "error",
    "latency_sum_seconds": "latency_sum_seconds", "latency_buckets": "latency_buckets",
    "prompt_tokens": "prompt_tokens", "completion_tokens": "completion_tokens",
    "cached_tokens": "cached_tokens", "input_token_buckets": "input_token_buckets",
    "output_token_buckets": "output_token_buckets", "unpriced_count": "unpriced",
    "confidence_count": "confidence_count", "confidence_sum": "confidence_sum",
    "confidence_buckets": "confidence_buckets",
}


@dataclass(frozen=True)
class Checkpoint:
    """The durable cursor of one consumer (``get_checkpoint``)."""

    system_identifier: str
    frontier: str
    window_end: str | None
    last_xid: str
    last_id: int
    events_total: int
    quarantined_total: int
    updated_at: float
    id_horizon: int
    state_version: int

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.frontier, self.window_end, self.last_xid, self.last_id)


@dataclass(frozen=True)
class SeriesRow:
    """One series' persisted totals (``load_series``)."""

    tenant_id: str
    function_name: str
    model: str
    variant: str
    success_count: int
    error_count: int
    latency_sum_seconds: float
    latency_buckets: list[int]
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    input_token_buckets: list[int]
    output_token_buckets: list[int]
    cost_pico: str  # numeric(38, 0) as text: exact beyond 64 bits
    unpriced_count: int
    confidence_count: int
    confidence_sum: float
    confidence_buckets: list[int]
    last_event_at: float

    @property
    def key(self) -> SeriesKey:
        return (self.tenant_id, self.function_name, self.model, self.variant)


@dataclass(frozen=True)
class Fetched:
    """One ``fetch_batch``: its rows, and the end of the window they were read in."""

    rows: RawBatch | None
    window_end: str


def _fetched(rows: int, window_end: str, **columns: Any) -> Fetched:
    """``fetch_batch``'s one row of arrays (no batch when nothing is new)."""
    return Fetched(_raw_batch(columns) if rows else None, window_end)


def _raw_batch(c: dict[str, Any]) -> RawBatch:
    return RawBatch(
        xid=np.asarray(c["xid"], np.int64), id=np.asarray(c["id"], np.int64), key=list(c["key"]),
        created_at=np.asarray(c["created_at"], np.float64),
        latency_ms=np.asarray(c["latency_ms"], np.float64),
        prompt_tokens=np.asarray(c["prompt_tokens"], np.int64),
        completion_tokens=np.asarray(c["completion_tokens"], np.int64),
        cached_tokens=np.asarray(c["cached_tokens"], np.int64),
        cost_pico=np.asarray(c["cost_pico"], np.int64),
        confidence=np.asarray(c["confidence"], np.float64),
        is_error=np.asarray(c["is_error"], np.bool_),
        cache_write_tokens=np.asarray(c["cache_write_tokens"], np.int64),
        caller_cost=np.asarray(c["caller_cost"], np.bool_),
        experiment_id=list(c["experiment_id"]),
        query_length=np.asarray(c["query_length"], np.float64),
        error_type=list(c["error_type"]),
        cache_write_1h_tokens=np.asarray(c["cache_write_1h_tokens"], np.int64),
        gen_ai=list(c["gen_ai"]))


class Repository:
    """The consumer's connection, spoken to by name; also the monitors' :class:`Store`.

    ``valid`` keeps the rows a replay may use (the processor's validation), so monitors
    never re-learn from rows the batch path quarantined.
    """

    def __init__(self, conn: Conn, consumer: str, *,
                 valid: Callable[[RawBatch], RawBatch] = lambda rows: rows) -> None:
        self.conn = conn
        self.consumer = consumer
        self.valid = valid
        self._cursor = Cursor()
        self.problems: list[str] = []
        register_numpy_arrays(conn.adapters)  # the batches' columns: see fetch()

    # -- the Store protocol -----------------------------------------------------------
    @property
    def cursor(self) -> Cursor:
        return self._cursor

    @cursor.setter
    def cursor(self, value: Cursor) -> None:
        self._cursor = value

    @property
    def now(self) -> float:
        return time.time()

    def rows(self, query: str, row: type[R], /, **params: Any) -> list[R]:
        with self.conn.cursor(row_factory=class_row(row)) as cur:
            return cur.execute(q(query), self._params(params)).fetchall()

    def execute(self, query: str, /, **params: Any) -> None:
        self.conn.execute(q(query), self._params(params))

    def consumed(self, *, seconds: float | None = None, last: int | None = None) -> RawBatch:
        since = -math.inf if seconds is None else time.time() - seconds
        with self.conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(q("consumed_rows"), self._params(
                {"since": since, "limit": last})).fetchall()
        rows.reverse()  # newest first -> cursor order
        columns = {k: [r[k] for r in rows] for k in (rows[0] if rows else _EMPTY)}
        return self.valid(_raw_batch(columns or {k: [] for k in _EMPTY}))

    def report(self, problem: str) -> None:
        self.problems.append(problem)

    def isolated(self, what: str, work: Callable[[], None]) -> bool:
        try:
            with self.conn.transaction():  # a savepoint inside the restore's transaction
                work()
        except CONNECTION_ERRORS:
            raise
        except Exception as exc:  # the data's fault or a bug: reported, the rest goes on
            log.exception(what)
            self.report(f"{what}: {type(exc).__name__}: {first_line(exc)}"[:500])
            return False
        return True

    def _params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**self._cursor.params(), "consumer": self.consumer,
                **{k: _json(v) for k, v in params.items()}}

    # -- the cursor -------------------------------------------------------------------
    def try_lock(self) -> bool:
        row = self.conn.execute(q("try_lock"), {"consumer": self.consumer}).fetchone()
        return bool(row and row[0])

    def checkpoint(self) -> Checkpoint:
        """This consumer's checkpoint (created at the start), on this very cluster."""
        sysid = self._scalar("system_identifier")
        self.conn.execute(q("create_checkpoint"),
                          {"consumer": self.consumer, "system_identifier": sysid})
        cp, = self.rows("get_checkpoint", Checkpoint, consumer=self.consumer)
        if cp.system_identifier != sysid:
            raise SchemaError(
                f"cursor '{self.consumer}' was recorded on Postgres cluster "
                f"{cp.system_identifier} but this is cluster {sysid} (restored from a "
                "dump?): transaction ids are not comparable across clusters; run "
                "`stream-mlops reset-cursor --after-restore`")
        return cp

    def series(self) -> list[SeriesRow]:
        return self.rows("load_series", SeriesRow)

    def fetch(self, limit: int) -> Fetched:
        """The next committed rows after the cursor (in the open window, or in a new one
        that ends now), each column one binary array: the numeric ones arrive as numpy
        arrays (``stream_mlops.db.arrays``)."""
        c = self._cursor
        with self.conn.cursor(row_factory=kwargs_row(_fetched), binary=True) as cur:
            row = cur.execute(q("fetch_batch"), {
                "frontier": c.frontier, "window_end": c.window_end, "xid": c.xid, "id": c.id,
                "limit": limit}).fetchone()
        assert row is not None  # an aggregate: always one row
        return row

    def persist(self, e: Effects, keys: Sequence[SeriesKey], version: int,
                cursor: Cursor) -> float:
        """Cursor (compare-and-set, from :attr:`cursor` to ``cursor``), series totals,
        quarantine and the monitors' writes in one transaction and one round trip;
        returns the checkpoint's time.

        The statements are pipelined up to a single Sync, which makes them one implicit
        transaction (no BEGIN or COMMIT to send): a failing statement, the compare-and-set
        included (``mlops.cursor_moved``), rolls back all of them."""
        old = self._cursor
        assert self.conn.info.transaction_status == pq.TransactionStatus.IDLE, \
            "persist() inside a transaction: the batch would not be atomic on its own"
        try:
            with self.conn.pipeline():
                cur = self.conn.execute(q("persist_batch"), {
                    "consumer": self.consumer, "old_frontier": old.frontier,
                    "old_window_end": old.window_end, "old_xid": old.xid, "old_id": old.id,
                    "version": version, "new_frontier": cursor.frontier,
                    "new_window_end": cursor.window_end, "new_xid": cursor.xid,
                    "new_id": cursor.id, "events": e.events, "quarantined": len(e.quarantine),
                    **_series_params(e.persisted, keys),
                    "quarantine_ids": [i for i, _ in e.quarantine],
                    "quarantine_reasons": [r for _, r in e.quarantine],
                })
                for w in e.writes:
                    self.execute(w.query, **w.params)
            row = cur.fetchone()
        except psycopg.Error as exc:
            if exc.sqlstate == CURSOR_MOVED:
                raise CursorConflict(
                    f"cursor '{self.consumer}' was moved by another process, or its totals "
                    "were re-costed (`stream-mlops prices recompute`); reloading state"
                ) from None
            raise
        assert row is not None
        return float(row[0])

    def lag(self) -> tuple[float, float]:
        """(age of the oldest row not consumed yet, age of the oldest open writing
        transaction), in seconds."""
        with self.conn.transaction():
            pending = self.conn.execute(q("oldest_pending"), self._cursor.params()).fetchone()
            horizon = self._scalar("horizon_age")
            now = self._scalar("database_now")
        at = None if pending is None else pending[0]
        return (max(0.0, now - float(at)) if at is not None else 0.0), float(horizon)

    def _scalar(self, query: str) -> Any:
        row = self.conn.execute(q(query)).fetchone()
        assert row is not None
        return row[0]


def _json(value: Any) -> Any:
    """Dicts and lists of dicts go as JSONB (the Store contract); the rest as they are."""
    if isinstance(value, dict) or (isinstance(value, list) and value
                                   and all(isinstance(v, dict) for v in value)):
        return Jsonb(value)
    return value


_EMPTY = ("xid", "id", "key", "created_at", "latency_ms", "prompt_tokens", "completion_tokens",
          "cached_tokens", "cost_pico", "confidence", "is_error", "cache_write_tokens",
          "caller_cost", "experiment_id", "query_length", "error_type", "cache_write_1h_tokens",
          "gen_ai")


def delta_from_rows(rows: list[SeriesRow]) -> Delta:
    """Persisted series rows -> absolute totals, series numbered 0..n-1 in row order."""
    n = len(rows)

    def ints(name: str) -> np.ndarray[Any, np.dtype[np.int64]]:
        return np.array([getattr(r, name) for r in rows], dtype=np.int64).reshape(n)

    def floats(name: str) -> np.ndarray[Any, np.dtype[np.float64]]:
        return np.array([getattr(r, name) for r in rows], dtype=np.float64).reshape(n)

    def matrix(name: str, width: int) -> np.ndarray[Any, np.dtype[np.int64]]:
        return np.array([getattr(r, name) for r in rows], dtype=np.int64).reshape(n, width)

    nl, nt, nc = len(LATENCY_BOUNDS) + 1, len(TOKEN_BOUNDS) + 1, len(CONFIDENCE_BOUNDS) + 1
    return Delta(
        series=np.arange(n, dtype=np.int64),
        success=ints("success_count"), error=ints("error_count"),
        latency_sum_seconds=floats("latency_sum_seconds"),
        latency_buckets=matrix("latency_buckets", nl), prompt_tokens=ints("prompt_tokens"),
        completion_tokens=ints("completion_tokens"), cached_tokens=ints("cached_tokens"),
        input_token_buckets=matrix("input_token_buckets", nt),
        output_token_buckets=matrix("output_token_buckets", nt),
        cost_pico=[int(r.cost_pico) for r in rows], unpriced=ints("unpriced_count"),
        confidence_count=ints("confidence_count"), confidence_sum=floats("confidence_sum"),
        confidence_buckets=matrix("confidence_buckets", nc),
        last_event_at=floats("last_event_at"))


def _series_params(p: Delta | None, keys: Sequence[SeriesKey]) -> dict[str, Any]:
    """Absolute totals of the touched series, one array literal per column."""
    if p is None:
        return {name: "{}" for name in (*KEY_COLUMNS, *SERIES_COLUMNS,
                                        "cost_pico_usd", "last_event_at")} | \
            {"nl": 1, "nt": 1, "nc": 1}
    touched = [keys[i] for i in p.series.tolist()]
    params: dict[str, Any] = dict(zip(KEY_COLUMNS, (_text_array(c) for c in zip(
        *touched, strict=True)), strict=True))
    params |= {name: _array(getattr(p, attr)) for name, attr in SERIES_COLUMNS.items()}
    params["cost_pico_usd"] = _array(p.cost_pico)
    params["last_event_at"] = _array(np.where(np.isfinite(p.last_event_at),
                                              p.last_event_at, 0.0))
    params |= {"nl": p.latency_buckets.shape[1], "nt": p.input_token_buckets.shape[1],
               "nc": p.confidence_buckets.shape[1]}
    return params


def _array(values: np.ndarray[Any, Any] | list[int]) -> str:
    """A flat Postgres array literal: much cheaper than adapting long lists element by
    element, and exact (Python's repr of a float round-trips)."""
    flat = values.ravel().tolist() if isinstance(values, np.ndarray) else values
    return "{" + ",".join(map(str, flat)) + "}"


def _text_array(values: Sequence[str]) -> str:
    """A Postgres text[] literal (every element quoted): adapting a list costs a Python
    call per element."""
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for v in values) + "}"


def reset_after_restore(conn: Conn, consumer: str) -> tuple[str, str] | None:
    """Make a cursor recorded on another cluster valid here (see rewrite_restored_xids).

    Returns (old, new) system identifiers, or None when the cursor already matches;
    MlopsError when there is no such cursor. Other consumers' cursors on the same table
    are not rewritten: reset them the same way.
    """
    repo = Repository(conn, consumer)
    with conn.transaction():
        conn.execute("LOCK TABLE mlops.model_performance IN SHARE ROW EXCLUSIVE MODE")
        sysid = repo._scalar("system_identifier")
        found = repo.rows("get_checkpoint", Checkpoint, consumer=consumer)
        if not found:
            raise MlopsError(f"there is no cursor named {consumer!r} (the processor has "
                             "never run with CONSUMER_NAME set to it): nothing to reset")
        if found[0].system_identifier == sysid:
            return None
        cp = found[0]
        conn.execute(q("rewrite_restored_xids"),
                     {**cp.cursor.params(), "id_horizon": cp.id_horizon})
        conn.execute(q("reset_checkpoint_after_restore"),
                     {"consumer": consumer, "system_identifier": sysid})
        return cp.system_identifier, str(sysid)
