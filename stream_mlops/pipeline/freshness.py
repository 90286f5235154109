"""Scrapes that see every row committed before them.

A scrape of ``/metrics`` asks the consumer for a read that starts after the scrape arrived
and waits until the batch it reads is counted (or a second has passed), so what Prometheus
sees is never behind the database by the batching interval: that interval then only
trades the processor's CPU against how fresh the rows it writes back to Postgres are.
While the consumer catches up on a backlog, or does not consume (a standby, a lost
connection), a scrape is served at once with what is counted: ``mlops_processor_lag_seconds``
says how far behind that is.
"""

from __future__ import annotations

import threading

from stream_mlops.pipeline.status import PipelineStatus

# What a scrape waits at most: a batch and the job in progress take milliseconds, so this
# is only reached when the consumer is stuck (Prometheus's scrape timeout is 10 s).
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
        if not self.status.active:
            return False
        with self._changed:
            self._asked += 1
            ticket = self._asked
            self.hurry.set()
            self.wake.set()
            return self._changed.wait_for(lambda: self._served >= ticket, timeout)

    def ticket(self) -> int:
        """Consumer side, before a read: the scrapes that this read will cover."""
        return self._asked

    def serve(self, ticket: int) -> None:
        """Consumer side: the scrapes up to ``ticket`` may be answered."""
        with self._changed:
            self._served = max(self._served, ticket)
            if self._served >= self._asked and not self.stop.is_set():
                self.hurry.clear()
            self._changed.notify_all()

    def release(self) -> None:
        """Every scrape waiting is answered with what is counted (the consumer stops or
        lost its connection)."""
        self.serve(self._asked)
