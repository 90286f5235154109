"""Log AI requests from Python without slowing the caller down.

>>> logger = RequestLogger(os.environ["DATABASE_URL"], tenant_id="acme")  # doctest: +SKIP
>>> with logger.track("summarize", model="gpt-4o-mini") as call:          # doctest: +SKIP
...     call.response = client.chat.completions.create(...)               # usage read from it

Calls only validate and append to a bounded in-memory buffer; a background thread writes
the buffer in batches (one INSERT of column arrays) through a connection pool. While
Postgres is unreachable rows wait in the buffer and are written when it is back; when the
buffer is full the oldest rows are dropped, counted in :attr:`RequestLogger.stats` and logged (never
silently). Rows the database refuses are isolated, counted as rejected and logged.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

import psycopg
from psycopg.rows import class_row
from psycopg_pool import ConnectionPool, PoolTimeout

from stream_mlops.backoff import Backoff
from stream_mlops.client.usage import UsageError, response_info, usage_from
from stream_mlops.db.connect import KEEPALIVES, first_line
from stream_mlops.labels import label_text

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

COLUMNS = ("tenant_id", "function_name", "model", "model_version", "variant", "experiment_id",
           "deployment_slot", "request_id", "created_at", "latency_ms", "prompt_tokens",
           "completion_tokens", "cached_tokens", "cost_usd", "confidence", "query_length",
           "status", "error_type", "metadata", "cache_write_tokens", "cache_write_1h_tokens",
           "operation", "provider")
# One INSERT per batch, its rows sent as one JSON array of arrays: json.dumps and the
# server's JSON parser are C, where adapting column lists costs ~14 us of Python per row
# (on the caller's GIL). COPY FROM would be faster still, but row level security refuses
# it to every role but the superuser, and this must work for the writer role.
_CASTS = ("", "", "", "", "", "::uuid", "", "", "", "::float8", "::int4", "::int4", "::int4",
          "::numeric", "::float8", "::int4", "", "", "", "::int4", "::int4", "", "")
_INSERT = (
    f"INSERT INTO mlops.model_performance ({', '.join(COLUMNS)}) SELECT "
    + ", ".join(
        "to_timestamp((r->>8)::float8)" if col == "created_at"
        else "coalesce(r->>21, 'chat')" if col == "operation"
        else "coalesce(nullif(r->18, 'null'), '{}')" if col == "metadata"
        else f"(r->>{i}){_CASTS[i]}"
        for i, col in enumerate(COLUMNS))
    + " FROM jsonb_array_elements(%s::jsonb) AS r"
)
def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _number(name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"{name} must be a number, got {value!r}")
    f = float(value)
    if not math.isfinite(f):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if not lo <= f <= hi:
        raise ValueError(f"{name} must be between {lo:.15g} and {hi:.15g}, got {value}")
    return f


def request_row(
    *,
    function_name: str,
    model: str,
    latency_ms: float,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    cached_tokens: int = 0,
    status: str = "success",
    error_type: str | None = None,
    confidence: float | None = None,
    query_length: int | None = None,
    cost_usd: float | Decimal | None = None,
    variant: str = "control",
    experiment_id: str | None = None,
    deployment_slot: str | None = None,
    request_id: str | None = None,
    model_version: str | None = None,
    tenant_id: str = "default",
    metadata: dict[str, Any] | None = None,
    created_at: datetime | None = None,
    cache_write_tokens: int = 0,
    cache_write_1h_tokens: int = 0,
    operation: str = "chat",
    provider: str | None = None,
) -> tuple[Any, ...]:
    """Validate one request and return it in :data:`COLUMNS` order, JSON-ready
    (``created_at`` as unix seconds, ``cost_usd`` as a decimal string).

    Raises ValueError naming the field, with the same rules as the table and
    ``mlops.log_request``. ``prompt_tokens`` include ``cached_tokens`` (cache reads) and
    ``cache_write_tokens`` (cache creation, of which ``cache_write_1h_tokens`` for an
    hour), as OpenAI counts them. ``operation`` and ``provider`` are OpenTelemetry's
    ``gen_ai.operation.name`` and ``gen_ai.provider.name`` (None: the price table's).
    """
    prompt = _count("prompt_tokens", prompt_tokens)
    cached = _count("cached_tokens", cached_tokens)
    written = _count("cache_write_tokens", cache_write_tokens)
    if cached > prompt:
        raise ValueError(f"cached_tokens ({cached}) cannot exceed prompt_tokens ({prompt}): "
                         "prompt_tokens include the cached ones")
    if cached + written > prompt:
        raise ValueError(f"cached_tokens + cache_write_tokens ({cached + written}) cannot "
                         f"exceed prompt_tokens ({prompt}): prompt_tokens include both")
    hour = _count("cache_write_1h_tokens", cache_write_1h_tokens)
    if hour > written:
        raise ValueError(f"cache_write_1h_tokens ({hour}) cannot exceed cache_write_tokens "
                         f"({written}): they are the part written for one hour")
    if status not in ("success", "error"):
        raise ValueError(f"status must be 'success' or 'error', got {status!r}")
    if error_type is not None and status != "error":
        raise ValueError("error_type is only allowed with status 'error'")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise ValueError("metadata must be a dict (a JSON object)")
        try:
            size = len(json.dumps(metadata))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metadata is not JSON-serialisable: {exc}") from None
        if size > 8000:
            raise ValueError("metadata is larger than 8 kB")
    if created_at is not None and (not isinstance(created_at, datetime)
                                   or created_at.tzinfo is None):
        raise ValueError("created_at must be a timezone-aware datetime")
    return (
        label_text("tenant_id", tenant_id, required=True),
        label_text("function_name", function_name, required=True),
        label_text("model", model, required=True),
        label_text("model_version", model_version),
        label_text("variant", variant, required=True),
        None if experiment_id is None else str(experiment_id),
        label_text("deployment_slot", deployment_slot),
        label_text("request_id", request_id),
        time.time() if created_at is None else created_at.timestamp(),
        _number("latency_ms", latency_ms, 0, 86_400_000),
        prompt,
        _count("completion_tokens", completion_tokens),
        cached,
        None if cost_usd is None else str(Decimal(str(_number("cost_usd", cost_usd, 0, 999_999)))),
        None if confidence is None else _number("confidence", confidence, 0, 1),
        None if query_length is None else _count("query_length", query_length),
        status,
        label_text("error_type", error_type),
        metadata,
        written,
        hour,
        label_text("operation", operation, required=True),
        label_text("provider", provider),
    )


@dataclass
class Call:
    """What a :meth:`RequestLogger.track` block can tell about its request."""

    fields: dict[str, Any]
    response: Any = None

    def set(self, **fields: Any) -> None:
        """Add or override fields (``confidence=0.9``, ``query_length=...``, tokens …)."""
        self.fields.update(fields)


@dataclass(frozen=True)
class BudgetLeft:
    """What is left of one budget that applies to a call (``mlops.budget_remaining``)."""

    scope: str  # "tenant" or "function"
    period: str  # "day", "week" or "month"
    budget_usd: float
    spent_usd: float
    remaining_usd: float
    period_end: datetime
    updated_at: datetime


_BUDGET = "SELECT * FROM mlops.budget_remaining(%s, %s)"


@dataclass
class LoggerStats:
    logged: int = 0  # accepted into the buffer
    written: int = 0  # committed to Postgres
    dropped: int = 0  # pushed out of a full buffer (Postgres away too long)
    rejected: int = 0  # invalid, or refused by the database
    usage_errors: int = 0  # logged, but the response's usage could not be read
    budget_unknown: int = 0  # allow() answers given without reaching the database
    failed_flushes: int = 0
    last_error: str = ""
    pending: int = field(default=0)


class RequestLogger:
    """Buffered, thread-safe logger of AI requests (see the module docstring)."""

    def __init__(
        self,
        database_url: str,
        *,
        tenant_id: str = "default",
        max_buffer: int = 100_000,
        batch_size: int = 1000,
        flush_interval: float = 0.5,
        connect_timeout: float = 5.0,
        budget_cache_seconds: float = 5.0,
    ) -> None:
        if max_buffer < 1 or batch_size < 1 or flush_interval <= 0:
            raise ValueError("max_buffer and batch_size must be >= 1, flush_interval > 0")
        self.tenant_id = tenant_id
        self.max_buffer, self.batch_size = max_buffer, batch_size
        self.flush_interval = flush_interval
        self.stats = LoggerStats()
        self._buffer: deque[tuple[Any, ...]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._closed = False
        self._warned_at = -math.inf
        self.budget_cache_seconds = budget_cache_seconds
        self._budgets: dict[tuple[str, str | None], tuple[float, list[BudgetLeft]]] = {}
        # Two connections: a budget check never waits behind the writer's flush.
        self._pool = ConnectionPool(
            database_url, min_size=1, max_size=2, open=False, timeout=connect_timeout,
            kwargs={"connect_timeout": max(1, round(connect_timeout)),
                    "application_name": "stream-mlops client", **KEEPALIVES},
            name="stream-mlops-client")
        self._pool.open(wait=False)
        self._thread = threading.Thread(target=self._run, name="stream-mlops-client",
                                        daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # -- the caller's path ------------------------------------------------------------
    def log(self, **fields: Any) -> None:
        """Record one request (see :func:`request_row` for the fields).

        Raises ValueError naming a wrong field; never waits for the database.
        """
        fields.setdefault("tenant_id", self.tenant_id)
        self._append(request_row(**fields))

    def _append(self, row: tuple[Any, ...]) -> None:
        with self._lock:
            if len(self._buffer) >= self.max_buffer:
                self._buffer.popleft()
                self.stats.dropped += 1
                now = time.monotonic()
                if now - self._warned_at > 10:  # say it, but not once per call
                    self._warned_at = now
                    log.warning("request buffer full: dropping the oldest rows",
                                extra={"dropped_total": self.stats.dropped,
                                       "max_buffer": self.max_buffer})
            self._buffer.append(row)
            self.stats.logged += 1
            full = len(self._buffer) >= self.batch_size
        if full:
            self._wake.set()

    def _log_quietly(self, fields: dict[str, Any]) -> None:
        """For instrumentation: a bad value must not break the instrumented call."""
        try:
            self.log(**fields)
        except (ValueError, TypeError) as exc:
            self.stats.rejected += 1
            log.warning("request not logged: %s", exc, extra={
                "function_name": fields.get("function_name")})

    def _finish(self, call: Call, started: float, error: BaseException | None) -> None:
        fields = dict(call.fields)
        fields["latency_ms"] = (time.perf_counter() - started) * 1000
        info = response_info(call.response)
        for name in ("model", "provider", "operation"):
            if fields.get(name) is None and getattr(info, name) is not None:
                fields[name] = getattr(info, name)
        try:
            usage = usage_from(call.response)
        except UsageError as exc:
            # Logged without tokens and flagged: the database counts it as unpriced
            # rather than pricing zero tokens at $0.
            usage = None
            fields["metadata"] = {**(fields.get("metadata") or {}), "usage_error": str(exc)}
            self.stats.usage_errors += 1
            log.warning("usage not read: %s", exc,
                        extra={"function_name": fields.get("function_name")})
        if usage is not None:
            for name in ("prompt_tokens", "completion_tokens", "cached_tokens",
                         "cache_write_tokens", "cache_write_1h_tokens"):
                fields.setdefault(name, getattr(usage, name))
            if usage.service_tier is not None:
                fields["metadata"] = {"service_tier": usage.service_tier,
                                      **(fields.get("metadata") or {})}
        if error is not None:
            fields["status"] = "error"
            fields.setdefault("error_type", type(error).__name__)
        self._log_quietly(fields)

    @contextmanager
    def track(self, function_name: str, model: str | None = None,
              **fields: Any) -> Iterator[Call]:
        """Time the block, record success or the exception's type (re-raised), and take
        token usage, and the model, provider and operation the caller did not pass, from
        ``call.response`` when the block sets it."""
        call = Call({"function_name": function_name, "model": model, **fields})
        started = time.perf_counter()
        try:
            yield call
        except BaseException as exc:
            self._finish(call, started, exc)
            raise
        self._finish(call, started, None)

    @asynccontextmanager
    async def atrack(self, function_name: str, model: str | None = None,
                     **fields: Any) -> AsyncIterator[Call]:
        """:meth:`track` for ``async with``."""
        with self.track(function_name, model, **fields) as call:
            yield call

    def traced(self, function_name: str, model: str | None = None,
               **fields: Any) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorator for sync or async functions; the return value is read for usage."""
        def wrap(fn: Callable[P, R]) -> Callable[P, R]:
            if asyncio.iscoroutinefunction(fn):
                afn: Callable[P, Awaitable[Any]] = fn

                @functools.wraps(fn)
                async def arun(*args: P.args, **kwargs: P.kwargs) -> Any:
                    async with self.atrack(function_name, model, **fields) as call:
                        call.response = await afn(*args, **kwargs)
                    return call.response

                return arun  # type: ignore[return-value]

            @functools.wraps(fn)
            def run(*args: P.args, **kwargs: P.kwargs) -> R:
                with self.track(function_name, model, **fields) as call:
                    call.response = fn(*args, **kwargs)
                return call.response  # type: ignore[no-any-return]

            return run
        return wrap

    # -- budgets before the call ------------------------------------------------------
    def budget_left(self, function_name: str | None = None, *,
                    tenant_id: str | None = None) -> list[BudgetLeft]:
        """What is left of each budget a call of ``function_name`` counts against (the
        tenant's and the function's own), tightest first; cached for
        ``budget_cache_seconds``. Spend is the processor's, a few seconds behind.
        Raises psycopg.OperationalError or PoolTimeout when the database is away."""
        key = (tenant_id or self.tenant_id, function_name)
        now = time.monotonic()
        cached = self._budgets.get(key)
        if cached is not None and now - cached[0] < self.budget_cache_seconds:
            return cached[1]
        with self._pool.connection(timeout=1.0) as conn, \
                conn.cursor(row_factory=class_row(BudgetLeft)) as cur:
            rows = cur.execute(_BUDGET, key).fetchall()
        self._budgets[key] = (now, rows)
        return rows

    def allow(self, estimated_cost_usd: float, function_name: str | None = None, *,
              tenant_id: str | None = None) -> bool:
        """Whether a call estimated to cost ``estimated_cost_usd`` fits every budget it
        counts against. When the database cannot be reached the call is allowed (a
        monitor must not take production down), counted in ``stats.budget_unknown`` and
        logged; use :meth:`budget_left` to decide otherwise."""
        cost = _number("estimated_cost_usd", estimated_cost_usd, 0, 999_999)
        try:
            left = self.budget_left(function_name, tenant_id=tenant_id)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            self.stats.budget_unknown += 1
            log.warning("budget unknown (database unreachable): call allowed",
                        extra={"function_name": function_name, "error": first_line(exc)})
            return True
        return all(b.remaining_usd >= cost for b in left)

    # -- the background writer --------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the buffer is written (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._buffer and self._idle.is_set():
                    return True
            self._idle.clear()
            self._wake.set()
            self._idle.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        with self._lock:
            return not self._buffer

    def close(self, timeout: float = 5.0) -> None:
        """Flush what can be flushed within ``timeout``, then stop; counts what is left."""
        if self._closed:
            return
        flushed = self.flush(timeout)
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=2)
        self._pool.close(timeout=1)
        if not flushed:
            with self._lock:
                lost = len(self._buffer)
                self._buffer.clear()
            self.stats.dropped += lost
            log.error("closing with unwritten requests: dropped",
                      extra={"dropped": lost, "error": self.stats.last_error})

    def _take(self) -> list[tuple[Any, ...]]:
        with self._lock:
            n = min(self.batch_size, len(self._buffer))
            batch = [self._buffer.popleft() for _ in range(n)]
            self.stats.pending = len(self._buffer)
        return batch

    def _put_back(self, batch: list[tuple[Any, ...]]) -> None:
        with self._lock:
            room = self.max_buffer - len(self._buffer)
            keep = batch[-room:] if room > 0 else []
            self._buffer.extendleft(reversed(keep))
            self.stats.dropped += len(batch) - len(keep)

    def _run(self) -> None:
        backoff = Backoff(base=0.2, cap=10.0)
        while not self._closed:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            while batch := self._take():
                try:
                    self._write(batch)
                    backoff.reset()
                except (psycopg.OperationalError, PoolTimeout) as exc:
                    self._put_back(batch)
                    self.stats.failed_flushes += 1
                    self.stats.last_error = first_line(exc)
                    if self.stats.failed_flushes in (1, 10) or \
                            self.stats.failed_flushes % 100 == 0:
                        log.warning("Postgres unreachable; requests kept in the buffer",
                                    extra={"pending": len(self._buffer),
                                           "error": self.stats.last_error})
                    time.sleep(backoff.next())
                    break
            self._idle.set()

    def _write(self, batch: list[tuple[Any, ...]]) -> None:
        with self._pool.connection() as conn:
            try:
                self._insert(conn, batch)
                self.stats.written += len(batch)
            except psycopg.OperationalError:
                raise
            except psycopg.Error:
                conn.rollback()
                self._write_one_by_one(conn, batch)

    def _write_one_by_one(self, conn: psycopg.Connection[Any],
                          batch: list[tuple[Any, ...]]) -> None:
        # A row the database refuses (e.g. a tenant this role may not write) must not take
        # its batch down with it.
        for row in batch:
            try:
                self._insert(conn, [row])
                self.stats.written += 1
            except psycopg.OperationalError:
                raise
            except psycopg.Error as exc:
                conn.rollback()
                self.stats.rejected += 1
                self.stats.last_error = first_line(exc)
                log.error("request refused by the database",
                          extra={"function_name": row[1], "error": self.stats.last_error})

    @staticmethod
    def _insert(conn: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> None:
        with conn.transaction():
            conn.execute(_INSERT, (json.dumps(rows),))
