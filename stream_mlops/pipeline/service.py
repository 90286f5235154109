"""``stream-mlops run``: wires consumer, listener and metrics server, and keeps them going
through lost connections and Postgres restarts."""

from __future__ import annotations

import gc
import logging
import math
import signal
import sys
import threading
import time
from types import FrameType

import psycopg

from stream_mlops.alerts.outbox import Notifier
from stream_mlops.backoff import Backoff
from stream_mlops.core.series import SeriesBudget
from stream_mlops.db.connect import first_line
from stream_mlops.errors import CursorConflict, DatabaseUnavailable
from stream_mlops.metrics.server import MetricsServer
from stream_mlops.pipeline.consumer import Consumer
from stream_mlops.pipeline.freshness import FreshReads
from stream_mlops.pipeline.health import Thresholds, liveness, readiness
from stream_mlops.pipeline.listener import Listener
from stream_mlops.pipeline.metrics import build_registry
from stream_mlops.pipeline.monitors import build_monitors
from stream_mlops.pipeline.processor import Processor
from stream_mlops.pipeline.scheduler import Scheduler
from stream_mlops.pipeline.status import PipelineStatus
from stream_mlops.settings import Settings, email_enabled

log = logging.getLogger(__name__)
# How often the loop looks for due jobs and the workers' results: not after every batch.
JOBS_TICK_SECONDS = 0.05
# Net allocations of tracked objects between young collections (Python's default: 700).
GC_YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Keep the cyclic garbage collector's full collections rare and short.

    A full collection walks every tracked object with every thread stopped, the consumer
    too: ~45 ms for what the imports alone leave (numpy, scipy, psycopg: 100,000
    objects), ~100 ms with 5,000 series of state. At Python's young threshold (700) each
    young collection promotes what a batch in flight holds, and the promotions set off a
    full collection every few hundred batches (``benchmarks/gc_pauses.py``). So: what
    exists at start (modules, classes, settings; never garbage) is frozen out of every
    collection, and young collections wait for 10,000 net allocations, which keeps
    young garbage with cycles to a few MB. The state the processor loads later is not
    frozen: a reload's old state is collected as usual.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.status = PipelineStatus(consumer=settings.consumer_name)
        self.processor = Processor(
            monitors=lambda: build_monitors(settings),
            series_budget=SeriesBudget(settings.max_series_per_tenant, settings.max_series),
            max_future_skew_seconds=settings.max_future_skew_seconds,
        )
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.taken = threading.Event()  # the consumer has seen the last wake-up
        self.scheduler = Scheduler(self.stop)
        self.fresh = FreshReads(self.wake, self.stop, self.status)
        self.consumer = Consumer(
            settings.database_url, self.processor, self.status,
            consumer=settings.consumer_name, batch_size=settings.batch_size,
            connect_timeout=settings.connect_timeout_seconds,
            notify=email_enabled(settings), scheduler=self.scheduler,
        )
        self.thresholds = Thresholds(
            lag_seconds=settings.lag_threshold_seconds,
            db_silence_seconds=max(30.0, 3 * settings.poll_interval_seconds),
            heartbeat_seconds=max(30.0, 3 * settings.poll_interval_seconds),
        )
        self.server = MetricsServer(
            build_registry(self.processor, self.status, self.scheduler),
            settings.metrics_host, settings.metrics_port,
            live=lambda now: liveness(self.status, now, self.thresholds),
            ready=lambda now: readiness(self.status, now, self.thresholds)
            + self.scheduler.problems(now),
            live_sample_seconds=settings.live_sample_seconds,
            before_scrape=self.fresh.wait,
        )

    def request_stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        self.stop.set()
        self.wake.set()
        self.fresh.hurry.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def run(self) -> None:
        """Process until :meth:`request_stop`; a batch in flight always finishes first."""
        self.server.start()
        s = self.settings
        self.scheduler.watch("listener", lambda: Listener(
            s.database_url, self.wake, self.stop, self.status,
            connect_timeout=s.connect_timeout_seconds, taken=self.taken))
        if email_enabled(s):
            self.scheduler.watch("notifier", lambda: Notifier(s, self.stop, self.status))
        # While a worker computes, the consumer waits for the GIL up to the switch
        # interval each time it needs it (5 ms by default): 1 ms keeps the COMMIT ->
        # /metrics latency of the consumer close to what it is without workers.
        sys.setswitchinterval(0.001)
        tune_gc()
        self.consumer.start_workers()
        try:
            self._loop()
        finally:
            self.stop.set()
            self.consumer.close()
            self.fresh.release()
            self.scheduler.join(timeout=15)
            self.server.stop()
            log.info("stopped", extra={"events_total": self.status.events_total})

    def _open(self, backoff: Backoff, standby_logged: bool) -> bool | None:
        """Connect and take the lock: True if consuming, False as a standby (logged
        once: ``standby_logged``), None when already open."""
        if self.consumer.conn is not None and not self.consumer.conn.closed:
            return None
        st = self.status
        active = self.consumer.open()
        st.db_down_since = None  # reached it, whether we hold the lock or not
        if not active:
            if not standby_logged:
                log.info("standby: another processor holds the consumer lock")
            self.consumer.close()
            return False
        backoff.reset()
        st.last_error = ""
        log.info("consuming", extra={"consumer": st.consumer,
                                     "cursor": self.consumer.cursor.to_json()})
        return True

    def _step(self) -> int:
        """One batch, then the scrapes it answers (:mod:`~stream_mlops.pipeline.freshness`)."""
        ticket = self.fresh.ticket()
        new_window = self.consumer.cursor.window_end is None
        consumed = self.consumer.step()
        self.fresh.after_read(ticket, new_window=new_window,
                              backlog=consumed >= self.settings.batch_size)
        return consumed

    def _loop(self) -> None:
        backoff = Backoff()
        standby_logged = False
        st, batch = self.status, self.settings.batch_size
        # When the last batch that found rows started, and whether rows were committed
        # while it ran.
        busy_start, busy = -math.inf, False
        jobs_at = 0.0
        while not self.stop.is_set():
            st.heartbeat_at = time.time()
            self.scheduler.supervise()
            try:
                opened = self._open(backoff, standby_logged)
                if opened is not None:
                    standby_logged = not opened
                    if not opened:
                        self.stop.wait(self.settings.poll_interval_seconds)
                        continue
                self.wake.clear()
                self.taken.set()
                started = time.monotonic()
                consumed = self._step()
                if consumed >= batch:
                    continue
                # Busy writers: the batch found more than one row (they commit faster than
                # a batch a row) and more came while it ran. One row per batch is a quiet
                # stream, whose next commit must not wait: at 100 commits/s a commit lands
                # inside a ~3 ms batch often enough that "came while it ran" alone held a
                # tenth of them for the interval.
                busy = consumed > 1 and self.wake.is_set()
                if consumed:
                    busy_start = started
                if started >= jobs_at:  # the jobs are due every second or more
                    # A commit that arrives meanwhile waits for one job, not for all the
                    # jobs due in this tick (together ~6 ms once a second: the p99 at
                    # 100 commits/s).
                    self.consumer.run_jobs(yield_to=self.wake.is_set)
                    jobs_at = time.monotonic() + JOBS_TICK_SECONDS
                if not self.fresh.hurry.is_set():
                    self.wake.wait(self.settings.poll_interval_seconds)
                # Adaptive batching: a wake-up that finds the consumer idle is served at
                # once (no linger at low rates). Busy writers wait until the interval
                # since the last batch's start is over, so their commits coalesce into
                # growing batches instead of costing a transaction each.
                # A scrape waiting does not: it wants the rows committed before it, now.
                if busy:
                    self.fresh.hurry.wait(busy_start + self.settings.min_batch_interval_seconds
                                          - time.monotonic())
            except CursorConflict as exc:
                log.warning(str(exc))
                self.consumer.close()
                self.fresh.release()
            except (DatabaseUnavailable, psycopg.Error) as exc:
                st.last_error = first_line(exc) if isinstance(exc, psycopg.Error) else str(exc)
                if st.db_down_since is None:
                    st.db_down_since = time.time()
                if self.consumer.conn is not None:
                    st.reconnects_total += 1
                log.warning("database error; retrying", extra={"error": st.last_error})
                self.consumer.close()
                self.fresh.release()
                self.stop.wait(backoff.next())
