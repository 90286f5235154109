"""Scrapes that see every row committed before them.

A scrape of ``/metrics`` asks the consumer for a read that starts after the scrape arrived
and waits until the batch it reads is counted, so what Prometheus sees is not behind the
database by the batching interval: that interval then only trades the processor's CPU
against how fresh the rows it writes back to Postgres are. Exceptions, answered with what
is counted: while the consumer catches up on a backlog (after the batch in progress:
``mlops_processor_lag_seconds`` says how far behind it is), when it does not consume (a
standby, a lost connection, a state being reloaded), and after :data:`WAIT_SECONDS`.
"""

from __future__ import annotations

import threading

from stream_mlops.pipeline.status import PipelineStatus

# What a scrape waits at most: once caught up, a batch and the job in progress take
# milliseconds, so this is reached only when the consumer is stuck (Prometheus's scrape
# timeout is 10 s).
WAIT_SECONDS = 1.0


class FreshReads:
    """Scrapes wait on tickets; the consumer serves the tickets a read covers.

    ``hurry`` is set while a ticket is unserved (or the service stops): the consumer must
    not linger between batches then.
    """

    def __init__(self, wake: threading.Event, stop: threading.Event,
                 status: PipelineStatus) -> None:
        self.wake, self.stop, self.status = wake, stop, status
        self.hurry = threading.Event()
        self._changed = threading.Condition()
        self._asked = 0
        self._served = 0

    def wait(self, timeout: float = WAIT_SECONDS) -> bool:
        """Scrape side: returns when the rows committed before this call are counted, or
        the consumer says not to wait for them; False when not consuming or on the
        timeout."""
        with self._changed:
            # Under the lock: release() after the consumer stopped consuming cannot
            # miss this scrape.
            if not self.status.active:
                return False
            self._asked += 1
            ticket = self._asked
            self.hurry.set()
            self.wake.set()
            return self._changed.wait_for(lambda: self._served >= ticket, timeout)

    def ticket(self) -> int:
        """Consumer side, before a read: the scrapes that this read will cover."""
        return self._asked

    def after_read(self, ticket: int, *, new_window: bool, backlog: bool) -> None:
        """Consumer side, after a batch read with :meth:`ticket` ``ticket``: a read in a
        window of its own covers the scrapes that had arrived when it started (a read
        that continues an open window sees only that window's rows: they wait for the
        next one); behind a backlog, every scrape waiting is answered now."""
        if backlog:
            self.release()
        elif new_window:
            self._serve(ticket)

    def release(self) -> None:
        """Every scrape waiting is answered with what is counted (a backlog, or the
        consumer stops, lost its connection or reloads its state)."""
        self._serve(None)

    def _serve(self, ticket: int | None) -> None:
        with self._changed:
            self._served = max(self._served, self._asked if ticket is None else ticket)
            if self._served >= self._asked and not self.stop.is_set():
                self.hurry.clear()
            self._changed.notify_all()
