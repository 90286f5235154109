"""LISTEN on a dedicated autocommit connection; every notification only wakes the consumer.

A lost notification costs at most one poll interval: the consumer reads from its durable
cursor either way.
"""

from __future__ import annotations

import logging
import select
import threading

import psycopg
from psycopg import pq

from stream_mlops.backoff import Backoff
from stream_mlops.db.connect import connect, first_line
from stream_mlops.errors import DatabaseUnavailable
from stream_mlops.pipeline.status import PipelineStatus

log = logging.getLogger(__name__)
CHANNEL = "mlops_events"  # fixed in sql/0002_schema.sql (mlops.notify_new_rows)


class Listener(threading.Thread):
    def __init__(
        self,
        url: str,
        wake: threading.Event,
        stop: threading.Event,
        status: PipelineStatus,
        *,
        connect_timeout: float = 5.0,
        taken: threading.Event | None = None,
    ) -> None:
        super().__init__(name="stream-mlops-listener", daemon=True)
        self.url, self.wake, self.stop, self.status = url, wake, stop, status
        self.connect_timeout = connect_timeout
        self.taken = taken
        self.backoff = Backoff()
        self.conn: psycopg.Connection[tuple[object, ...]] | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self._listen()
            except (DatabaseUnavailable, psycopg.Error, OSError) as exc:
                was_listening = self.status.listening
                self.status.listening = False
                if was_listening:
                    self.status.reconnects_total += 1
                    log.warning("listener connection lost; reconnecting",
                                extra={"error": first_line(exc)})
                self.stop.wait(self.backoff.next())
            finally:
                self.status.listening = False
                if self.conn is not None:
                    self.conn.close()
                    self.conn = None

    def _listen(self) -> None:
        self.conn = conn = connect(self.url, autocommit=True, timeout=self.connect_timeout,
                                   application_name="stream-mlops listener")
        conn.execute(f"LISTEN {CHANNEL}")
        self.status.listening = True
        self.backoff.reset()
        log.info("listening", extra={"channel": CHANNEL})
        # Rows may have arrived while we were not listening: look now.
        self.wake.set()
        pgconn = conn.pgconn
        while not self.stop.is_set():
            # libpq directly: psycopg's notifies() builds a Python object per message, and
            # busy writers send one NOTIFY per commit.
            ready, _, _ = select.select([pgconn.socket], [], [], 0.5)
            if not ready:
                continue
            pgconn.consume_input()
            if pgconn.status != pq.ConnStatus.OK:
                raise psycopg.OperationalError("LISTEN connection closed")
            woken = False
            while pgconn.notifies() is not None:
                woken = True
            if woken:
                # At once: the consumer decides whether to coalesce (service._loop); a
                # linger here would delay the first row after a quiet spell.
                if self.taken is not None:
                    self.taken.clear()
                self.wake.set()
                if self.taken is not None:
                    # Until the consumer takes this wake-up, more notifications change
                    # nothing: let them pile up in the socket and read them in one go
                    # (at 1,000 commits/s, a hundred wake-ups of this thread instead of a
                    # thousand).
                    self.taken.wait(0.5)
