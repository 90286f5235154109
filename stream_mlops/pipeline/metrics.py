"""Prometheus metrics computed at scrape time from the processor's committed state.

No per-event work happens in prometheus-client: the processor keeps column-wise totals
and this collector turns them into metric families when Prometheus asks. Each monitor
describes its own metrics (:meth:`~stream_mlops.core.monitor.Monitor.metrics`); this
collector adds the series totals and the pipeline's health, and registers the process and
platform collectors of prometheus-client.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from prometheus_client import PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from stream_mlops.core.families import Labels, SeriesFamily, cached_texts
from stream_mlops.pipeline.processor import Processor
from stream_mlops.pipeline.scheduler import JobHealth, Scheduler
from stream_mlops.pipeline.status import PipelineStatus
from stream_mlops.pipeline.totals import CONFIDENCE_BOUNDS, LATENCY_BOUNDS

SERIES_LABELS = ["tenant", "function", "model", "variant"]


def _le(bounds: np.ndarray[Any, Any]) -> list[str]:
    return [format(float(b), "g") for b in bounds] + ["+Inf"]


class ProcessorCollector(Collector):
    def __init__(self, processor: Processor, status: PipelineStatus,
                 scheduler: Scheduler | None = None) -> None:
        self.processor = processor
        self.status = status
        self.scheduler = scheduler
        self._le_latency = _le(LATENCY_BOUNDS)
        self._le_conf = _le(CONFIDENCE_BOUNDS)
        self._texts: dict[tuple[str, ...], str] = {}  # series -> its escaped label text

    def collect(self) -> Iterator[Metric]:
        with self.status.lock:
            p = self.processor
            t = p.totals
            keys = list(p.index.keys)
            snap = {name: np.array(getattr(t, name), copy=True) for name in t._ARRAYS}
            cost = list(t.cost_pico)
            builders = list(p.metrics(time.time()))
        yield from self._series_metrics(keys, snap, cost)
        for build in builders:
            yield from build()
        yield from self._pipeline_metrics(len(keys))
        if self.scheduler is not None:
            yield from _job_metrics(list(self.scheduler.health.values()))

    def _series_metrics(
        self, keys: Sequence[tuple[str, ...]], s: dict[str, Any], cost: list[int]
    ) -> Iterator[Metric]:
        texts = cached_texts(self._texts, SERIES_LABELS, keys)

        def family(name: str, doc: str, typ: str, columns: list[tuple[str, Labels]],
                   *values: Any) -> SeriesFamily:
            return SeriesFamily(name, doc, typ, label_names=SERIES_LABELS, keys=keys,
                                texts=texts, columns=columns,
                                values=[np.asarray(v) for v in values])

        def histogram(name: str, doc: str, le: list[str], counts: Any, total: Any
                      ) -> SeriesFamily:
            cum = np.cumsum(counts, axis=1)
            columns = [(f"{name}_bucket", (("le", b),)) for b in le]
            return family(name, doc, "histogram",
                          [*columns, (f"{name}_count", ()), (f"{name}_sum", ())],
                          *cum.T, cum[:, -1], total)

        yield family("mlops_requests", "AI requests processed, by outcome.", "counter",
                     [("mlops_requests_total", (("status", "success"),)),
                      ("mlops_requests_total", (("status", "error"),))],
                     s["success"], s["error"])
        yield histogram("mlops_request_duration_seconds", "Latency of AI requests.",
                        self._le_latency, s["latency_buckets"], s["latency_sum_seconds"])
        yield family("mlops_tokens", "Tokens used; prompt includes cached (cache-read) tokens.",
                     "counter", [("mlops_tokens_total", (("type", t),))
                                 for t in ("prompt", "completion", "cached")],
                     s["prompt_tokens"], s["completion_tokens"], s["cached_tokens"])
        yield family("mlops_cost_usd", "Cost of AI requests in US dollars (priced rows only).",
                     "counter", [("mlops_cost_usd_total", ())],
                     np.array([c / 1e12 for c in cost[:len(keys)]]))
        yield family("mlops_unpriced_requests",
                     "Requests whose model has no price: cost unknown.", "counter",
                     [("mlops_unpriced_requests_total", ())], s["unpriced"])
        yield histogram("mlops_confidence", "Model confidence scores (0..1) reported by callers.",
                        self._le_conf, s["confidence_buckets"], s["confidence_sum"])

    def _pipeline_metrics(self, n_series: int) -> Iterator[Metric]:
        st = self.status
        c = [st.consumer]

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            m = CounterMetricFamily(name, doc, labels=["consumer"])
            m.add_metric(c, value)
            return m

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            m = GaugeMetricFamily(name, doc, labels=["consumer"])
            m.add_metric(c, value)
            return m

        yield counter("mlops_processor_events", "Rows consumed (persisted total).",
                      st.events_total)
        yield counter("mlops_processor_quarantined", "Rows set aside as unprocessable.",
                      st.quarantined_total)
        yield counter("mlops_processor_batches", "Batches committed by this process.",
                      st.batches_total)
        yield counter("mlops_processor_reconnects", "Database reconnections by this process.",
                      st.reconnects_total)
        yield counter("mlops_processor_monitor_errors",
                      "Drift or experiment evaluations that failed (see the log); consuming "
                      "goes on.", st.monitor_errors_total)
        yield gauge("mlops_processor_lag_seconds",
                    "Age of the oldest committed row not yet processed.", st.lag_seconds)
        yield gauge("mlops_processor_horizon_age_seconds",
                    "Age of the oldest open writing transaction, which holds the consumer back.",
                    st.horizon_age_seconds)
        yield gauge("mlops_processor_last_checkpoint_timestamp_seconds",
                    "Unix time of the last committed checkpoint.", st.last_checkpoint_at)
        yield gauge("mlops_processor_listening", "1 while the LISTEN connection is up.",
                    float(st.listening))
        yield gauge("mlops_processor_active",
                    "1 while this process holds the consumer lock (0: standby).",
                    float(st.active))
        yield gauge("mlops_processor_last_batch_seconds", "Duration of the last batch.",
                    st.last_batch_seconds)
        yield gauge("mlops_series", "Distinct series (tenant, function, model, variant).",
                    float(n_series))
        yield counter("mlops_alert_notifications_queued",
                      "Alert notifications queued for e-mail by this process.",
                      st.alert_messages_queued)
        yield counter("mlops_alert_emails_sent", "Alert e-mails accepted by the SMTP server.",
                      st.emails_sent_total)
        yield counter("mlops_alert_emails_failed",
                      "Alert e-mail attempts that failed (retried with backoff).",
                      st.emails_failed_total)


def _job_metrics(jobs: Sequence[JobHealth]) -> Iterator[Metric]:
    labels = ["job"]
    runs = CounterMetricFamily("mlops_job_runs", "Runs of a periodic job.", labels=labels)
    failures = CounterMetricFamily(
        "mlops_job_failures", "Runs of a job that raised (logged with the traceback; "
        "retried with backoff).", labels=labels)
    restarts = CounterMetricFamily(
        "mlops_job_restarts", "Threads started again after they died.", labels=labels)
    up = GaugeMetricFamily("mlops_job_up", "0 while a job is failing or its thread is down.",
                           labels=labels)
    last = GaugeMetricFamily("mlops_job_last_success_timestamp_seconds",
                             "Unix time of the job's last successful run (0: none yet).",
                             labels=labels)
    for h in jobs:
        runs.add_metric([h.name], h.runs_total)
        failures.add_metric([h.name], h.failures_total)
        restarts.add_metric([h.name], h.restarts_total)
        up.add_metric([h.name], float(not h.down and h.failing_since is None))
        last.add_metric([h.name], h.last_success_at)
    yield from (runs, failures, restarts, up, last)


def build_registry(processor: Processor, status: PipelineStatus,
                   scheduler: Scheduler | None = None) -> CollectorRegistry:
    # auto_describe: the registry learns our families' names, which `?name[]=` filters on.
    registry = CollectorRegistry(auto_describe=True)
    registry.register(ProcessorCollector(processor, status, scheduler))
    # Memory, CPU and file descriptors of a stateful process belong on its /metrics.
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry
