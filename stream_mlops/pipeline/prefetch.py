"""Reading the next batch while the current one is processed, when catching up.

Catching up, a batch spends about half its time waiting for Postgres (the read and the
persist run in a server process) and half in Python. With two connections the read of
batch k+1 runs in the server while batch k is aggregated and persisted: the two halves
overlap on a machine with more than one core.

Only a full batch starts a read ahead: its cursor ends inside a window whose snapshot is
fixed, so the next batch is the same rows whenever it is read. A read ahead is used only
for the exact cursor it was started from; anything else (a reload, a persist that failed
and moved the cursor back, a connection that broke) drops it and the consumer reads as
usual. It is never more than a read: the cursor still moves only with the persist's
compare-and-set.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import psycopg

from stream_mlops.core.monitor import Cursor
from stream_mlops.db.connect import close_quietly, first_line
from stream_mlops.pipeline.repository import Fetched, Repository

log = logging.getLogger(__name__)
Conn = psycopg.Connection[tuple[Any, ...]]


class Prefetcher:
    """One read ahead at a time, on a connection and a thread of its own."""

    def __init__(self, connect: Callable[[], Conn], consumer: str) -> None:
        self._connect = connect
        self._consumer = consumer
        self._repo: Repository | None = None  # touched on the worker thread only
        self._pool: ThreadPoolExecutor | None = None
        self._pending: tuple[Cursor, int, Future[Fetched]] | None = None

    def start(self, cursor: Cursor, limit: int) -> None:
        """Read the batch after ``cursor`` in the background (replacing any read ahead)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="stream-mlops-prefetch")
        self._pending = (cursor, limit, self._pool.submit(self._fetch, cursor, limit))

    def take(self, cursor: Cursor, limit: int) -> Fetched | None:
        """The batch read ahead from exactly ``cursor`` (waiting for it), else None."""
        pending, self._pending = self._pending, None
        if pending is None or pending[:2] != (cursor, limit):
            return None
        try:
            return pending[2].result()
        except Exception as exc:  # the consumer's own read will say what is wrong
            log.info("read ahead failed, reading the batch directly: %s", first_line(exc))
            return None

    def close(self) -> None:
        """Drop any read ahead and the connection (waits for a read in flight)."""
        self._pending = None
        if self._pool is not None:
            # RuntimeError: the interpreter is exiting, and the connection goes with it.
            with contextlib.suppress(RuntimeError):
                self._pool.submit(self._disconnect)
            self._pool.shutdown(wait=True)
            self._pool = None

    def _fetch(self, cursor: Cursor, limit: int) -> Fetched:
        try:
            if self._repo is None or self._repo.conn.closed:
                self._repo = Repository(self._connect(), self._consumer)
            self._repo.cursor = cursor
            return self._repo.fetch(limit)
        except BaseException:
            self._disconnect()
            raise

    def _disconnect(self) -> None:
        if self._repo is not None:
            close_quietly(self._repo.conn)
            self._repo = None
