"""``stream-mlops run``: wires consumer, listener and metrics server, and keeps them going
through lost connections and Postgres restarts."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from types import FrameType

import psycopg

from stream_mlops.alerts.outbox import Notifier
from stream_mlops.alerts.rules import AlertThresholds
from stream_mlops.backoff import Backoff
from stream_mlops.costs.windows import SpikeRule
from stream_mlops.db.connect import first_line
from stream_mlops.errors import CursorConflict, DatabaseUnavailable
from stream_mlops.metrics.collectors import build_registry
from stream_mlops.metrics.server import MetricsServer
from stream_mlops.pipeline.consumer import Consumer
from stream_mlops.pipeline.health import Thresholds, liveness, readiness
from stream_mlops.pipeline.listener import Listener
from stream_mlops.pipeline.processor import Processor
from stream_mlops.pipeline.status import PipelineStatus
from stream_mlops.settings import Settings, email_enabled

log = logging.getLogger(__name__)

# Lag and horizon probes cost a round trip; once a second is plenty for alerting.
MEASURE_EVERY_SECONDS = 1.0


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.status = PipelineStatus(consumer=settings.consumer_name)
        self.processor = Processor(
            max_label_values=settings.max_label_values,
            max_future_skew_seconds=settings.max_future_skew_seconds,
            alert_thresholds=AlertThresholds(
                error_rate=settings.alert_error_rate,
                latency_p95_seconds=settings.alert_latency_p95_seconds,
                confidence_mean=settings.alert_confidence,
                min_requests=settings.alert_min_requests),
            alert_window_seconds=settings.alert_window_seconds,
            alert_cooldown_seconds=settings.alert_cooldown_seconds,
            cost_budgets={"day": settings.daily_cost_threshold,
                          "week": settings.weekly_cost_threshold,
                          "month": settings.monthly_cost_threshold},
            cost_timezone=settings.cost_timezone,
            cost_spike=SpikeRule(factor=settings.cost_spike_factor,
                                 min_usd_per_hour=settings.cost_spike_min_usd_per_hour,
                                 cpr_factor=settings.cost_per_request_factor),
            cost_mismatch_tolerance=settings.cost_mismatch_tolerance,
        )
        self.consumer = Consumer(
            settings.database_url, self.processor, self.status,
            consumer=settings.consumer_name, batch_size=settings.batch_size,
            connect_timeout=settings.connect_timeout_seconds,
            notify=email_enabled(settings),
        )
        self.consumer.background_drift = True
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.drift_worker = threading.Thread(target=self._drift_loop, name="drift",
                                             daemon=True)
        self.notifier = (Notifier(settings, self.stop, self.status)
                         if email_enabled(settings) else None)
        self.listener = Listener(settings.database_url, self.wake, self.stop, self.status,
                                 connect_timeout=settings.connect_timeout_seconds,
                                 linger_seconds=settings.min_batch_interval_seconds)
        self.thresholds = Thresholds(
            lag_seconds=settings.lag_threshold_seconds,
            horizon_age_seconds=settings.horizon_age_threshold_seconds,
            db_silence_seconds=max(30.0, 3 * settings.poll_interval_seconds),
            heartbeat_seconds=max(30.0, 3 * settings.poll_interval_seconds),
        )
        self.server = MetricsServer(
            build_registry(self.processor, self.status),
            settings.metrics_host, settings.metrics_port,
            live=lambda now: liveness(self.status, now, self.thresholds),
            ready=lambda now: readiness(self.status, now, self.thresholds),
        )

    def request_stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        self.stop.set()
        self.wake.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def run(self) -> None:
        """Process until :meth:`request_stop`; a batch in flight always finishes first."""
        self.server.start()
        self.listener.start()
        self.drift_worker.start()
        if self.notifier is not None:
            self.notifier.start()
        try:
            self._loop()
        finally:
            self.stop.set()
            self.consumer.close()
            self.listener.join(timeout=5)
            self.drift_worker.join(timeout=5)
            if self.notifier is not None:
                self.notifier.join(timeout=15)
            self.server.stop()
            log.info("stopped", extra={"events_total": self.status.events_total})

    # Detectors cost little per value but a fixed amount per call: feeding them every 10 s
    # instead of every second cuts the worker's CPU (and its GIL contention with the
    # consumer) several-fold, for at most 10 s more delay on drifts that take minutes.
    DRIFT_EVERY_SECONDS = 10.0

    def _drift_loop(self) -> None:
        """Drift detection off the consumer's path (see Consumer.run_drift)."""
        # While this thread computes, the consumer waits for the GIL up to the switch
        # interval each time it needs it (5 ms by default): 1 ms keeps the COMMIT ->
        # /metrics latency of the consumer close to what it is without the worker.
        sys.setswitchinterval(0.001)
        while not self.stop.wait(self.DRIFT_EVERY_SECONDS):
            if not self.status.active:
                continue
            try:
                self.consumer.drift_results.put(self.consumer.run_drift())
            except Exception:
                self.status.monitor_errors_total += 1
                log.exception("drift evaluation failed; consuming goes on")

    def _loop(self) -> None:
        backoff = Backoff()
        last_measure = 0.0
        standby_logged = False
        st, batch = self.status, self.settings.batch_size
        while not self.stop.is_set():
            st.heartbeat_at = time.time()
            try:
                if self.consumer.conn is None or self.consumer.conn.closed:
                    if not self.consumer.open():
                        if not standby_logged:
                            log.info("standby: another processor holds the consumer lock")
                            standby_logged = True
                        self.consumer.close()
                        self.stop.wait(self.settings.poll_interval_seconds)
                        continue
                    standby_logged = False
                    backoff.reset()
                    st.last_error = ""
                    log.info("consuming", extra={"consumer": st.consumer,
                                                 "cursor": list(self.consumer.cursor)})
                self.wake.clear()
                stepped = time.monotonic()
                if self.consumer.step() >= batch:
                    continue
                if time.time() - last_measure >= MEASURE_EVERY_SECONDS:
                    self.consumer.measure()
                    last_measure = time.time()
                self.wake.wait(self.settings.poll_interval_seconds)
                # Coalesce wake-ups: one transaction per commit of every writer would cost
                # most of a core at 1,000 commits/s; a short linger batches them.
                self.stop.wait(stepped + self.settings.min_batch_interval_seconds
                               - time.monotonic())
            except CursorConflict as exc:
                log.warning(str(exc))
                self.consumer.close()
            except (DatabaseUnavailable, psycopg.Error) as exc:
                st.last_error = first_line(exc) if isinstance(exc, psycopg.Error) else str(exc)
                if self.consumer.conn is not None:
                    st.reconnects_total += 1
                log.warning("database error; retrying", extra={"error": st.last_error})
                self.consumer.close()
                self.stop.wait(backoff.next())
