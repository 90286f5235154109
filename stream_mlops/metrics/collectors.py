"""Prometheus metrics computed at scrape time from the processor's committed state.

No per-event work happens in prometheus-client: the processor keeps column-wise totals
and this collector turns them into metric families when Prometheus asks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from stream_mlops.costs.windows import BudgetReading
from stream_mlops.pipeline.processor import (
    CONFIDENCE_BOUNDS,
    LABELS,
    LATENCY_BOUNDS,
    TOKEN_BOUNDS,
    Processor,
)
from stream_mlops.pipeline.status import PipelineStatus

SERIES_LABELS = ["tenant", "function", "model", "variant"]


def _le(bounds: np.ndarray[Any, Any]) -> list[str]:
    return [format(float(b), "g") for b in bounds] + ["+Inf"]


def _buckets(le: list[str], counts: np.ndarray[Any, Any]) -> list[tuple[str, float]]:
    return list(zip(le, np.cumsum(counts).astype(float).tolist(), strict=True))


class ProcessorCollector(Collector):
    def __init__(self, processor: Processor, status: PipelineStatus) -> None:
        self.processor = processor
        self.status = status
        self._le_latency = _le(LATENCY_BOUNDS)
        self._le_tokens = _le(TOKEN_BOUNDS)
        self._le_conf = _le(CONFIDENCE_BOUNDS)

    def collect(self) -> Iterator[Metric]:
        with self.status.lock:
            t = self.processor.totals
            keys = list(t.keys)
            snap = {name: np.array(getattr(t, name), copy=True) for name in t._ARRAYS}
            cost = list(t.cost_pico)
            folded = list(self.processor.folder.folded_values)
            firing = self.processor.alerts.firing()
            now = time.time()
            cost_keys, windows = self.processor.costs.window_usd(now)
            budgets = self.processor.costs.readings(now)
            spend = self.processor.costs.spend_gauges()
            mismatch = [(k, v[0], v[1]) for k, v in self.processor.costs.mismatch.items()]
            experiments = self.processor.experiments.gauges()
            drift = self.processor.drift.snapshot
        yield from self._series_metrics(keys, snap, cost)
        yield from self._cost_metrics(cost_keys, windows, budgets)
        yield from self._spend_metrics(spend, mismatch)
        yield from self._experiment_metrics(experiments)
        yield from self._drift_metrics(drift)
        yield from self._pipeline_metrics(folded, len(keys))
        yield self._alert_metric(firing)

    @staticmethod
    def _cost_metrics(keys: Sequence[tuple[str, str, str]], windows: dict[str, Any],
                      budgets: Sequence[tuple[str, str | None, BudgetReading]],
                      ) -> Iterator[Metric]:
        win = GaugeMetricFamily(
            "mlops_cost_window_usd", "Cost in US dollars over rolling (1h, 24h, 7d) and "
            "calendar (day, week, month; COST_TIMEZONE) windows.",
            labels=["tenant", "function", "model", "window"])
        for w, values in windows.items():
            for (tenant, function, model), v in zip(keys, values.tolist(), strict=True):
                win.add_metric([tenant, function, model, w], v)
        labels = ["tenant", "function", "period"]
        budget = GaugeMetricFamily("mlops_budget_usd", "Budget of the period.", labels=labels)
        used = GaugeMetricFamily("mlops_budget_utilization_ratio",
                                 "Share of the period's budget spent.", labels=labels)
        forecast = GaugeMetricFamily("mlops_cost_forecast_usd",
                                     "End-of-period spend at the current burn rate.",
                                     labels=labels)
        for who, scope_fn, r in budgets:
            lv = [who, scope_fn or "", r.period]
            budget.add_metric(lv, r.budget_usd)
            used.add_metric(lv, r.utilization)
            forecast.add_metric(lv, r.forecast_usd)
        yield from (win, budget, used, forecast)

    @staticmethod
    def _spend_metrics(spend: Sequence[tuple[str, str, float, float, float, float]],
                       mismatch: Sequence[tuple[tuple[str, str], float, float]],
                       ) -> Iterator[Metric]:
        labels = ["tenant", "function"]
        rate = GaugeMetricFamily("mlops_cost_rate_usd_per_hour",
                                 "Spend rate over the last 15 minutes.", labels=labels)
        base = GaugeMetricFamily("mlops_cost_baseline_usd_per_hour",
                                 "Seasonal baseline of the spike rule (absent without history).",
                                 labels=labels)
        cpr = GaugeMetricFamily("mlops_cost_per_request_usd",
                                "Recent cost per request (absent with too few requests).",
                                labels=labels)
        cpr_base = GaugeMetricFamily("mlops_cost_per_request_baseline_usd",
                                     "7-day median of the hourly cost per request.",
                                     labels=labels)
        for tenant, function, r, b, c, cb in spend:
            rate.add_metric([tenant, function], r)
            for family, v in ((base, b), (cpr, c), (cpr_base, cb)):
                if math.isfinite(v):
                    family.add_metric([tenant, function], v)
        off = CounterMetricFamily(
            "mlops_cost_mismatch_requests",
            "Caller-sent costs further than COST_MISMATCH_TOLERANCE from the price table.",
            labels=["tenant", "model"])
        checked = CounterMetricFamily(
            "mlops_cost_checked_requests",
            "Caller-sent costs checked against the price table.", labels=["tenant", "model"])
        for (tenant, model), n_off, n in mismatch:
            off.add_metric([tenant, model], n_off)
            checked.add_metric([tenant, model], n)
        yield from (rate, base, cpr, cpr_base, off, checked)

    @staticmethod
    def _drift_metrics(drift: Sequence[tuple[str, str, str, bool, float, int, dict[str, float]]]
                       ) -> Iterator[Metric]:
        labels = ["tenant", "function", "metric"]
        detected = GaugeMetricFamily("mlops_drift_detected",
                                     "1 while a confirmed drift's alert is open.", labels=labels)
        statistic = GaugeMetricFamily(
            "mlops_drift_statistic", "Highest CUSUM level of the metric's detector relative "
            "to its alarm threshold (1 = alarm).", labels=labels)
        p_value = GaugeMetricFamily("mlops_drift_p_value",
                                    "Latest two-sample test of recent values vs the reference.",
                                    labels=[*labels, "test"])
        events = CounterMetricFamily("mlops_drift_events",
                                     "Drifts confirmed by the detector and the tests.",
                                     labels=labels)
        for tenant, function, metric, is_open, level, drifts, p in drift:
            lv = [tenant, function, metric]
            detected.add_metric(lv, float(is_open))
            statistic.add_metric(lv, level)
            events.add_metric(lv, drifts)
            for test, v in p.items():
                if math.isfinite(v):
                    p_value.add_metric([*lv, test], v)
        yield from (detected, statistic, p_value, events)

    @staticmethod
    def _experiment_metrics(experiments: Sequence[dict[str, Any]]) -> Iterator[Metric]:
        samples = GaugeMetricFamily("mlops_experiment_samples",
                                    "Requests counted per arm of a running experiment.",
                                    labels=["tenant", "experiment", "variant"])
        labels = ["tenant", "experiment", "metric", "variant"]
        p_value = GaugeMetricFamily(
            "mlops_experiment_p_value", "Always-valid p-value of variant vs control "
            "(valid whenever read).", labels=labels)
        lift = GaugeMetricFamily("mlops_experiment_lift",
                                 "Relative difference variant / control - 1.", labels=labels)
        decision = GaugeMetricFamily(
            "mlops_experiment_decision",
            "1 variant better, -1 worse, 0 undecided (direction-aware per metric).",
            labels=labels)
        srm = GaugeMetricFamily("mlops_experiment_srm",
                                "1 once the traffic split is shown not to match the weights.",
                                labels=["tenant", "experiment"])
        srm_p = GaugeMetricFamily("mlops_experiment_srm_p_value",
                                  "Always-valid p-value of the sample-ratio check.",
                                  labels=["tenant", "experiment"])
        for e in experiments:
            t, name = e["tenant"], e["experiment"]
            for arm, n in e["samples"].items():
                samples.add_metric([t, name, arm], n)
            for metric, arm, p, d, lf in e["tests"]:
                p_value.add_metric([t, name, metric, arm], p)
                decision.add_metric([t, name, metric, arm], d)
                if math.isfinite(lf):
                    lift.add_metric([t, name, metric, arm], lf)
            if e["srm"] is not None:
                srm.add_metric([t, name], float(e["srm"][0]))
                srm_p.add_metric([t, name], e["srm"][1])
        yield from (samples, p_value, lift, decision, srm, srm_p)

    @staticmethod
    def _alert_metric(firing: list[tuple[str, str]]) -> GaugeMetricFamily:
        active = GaugeMetricFamily(
            "mlops_alert_active",
            "1 for every open performance alert episode of the processor's own rules.",
            labels=["tenant", "function", "rule", "severity"])
        for key, severity in firing:
            tenant, fingerprint = key.split("\x1f", 1)
            _, rule, function = fingerprint.split(":", 2)
            active.add_metric([tenant, function, rule, severity], 1.0)
        return active

    def _series_metrics(
        self, keys: Sequence[tuple[str, ...]], s: dict[str, Any], cost: list[int]
    ) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "mlops_requests", "AI requests processed, by outcome.",
            labels=[*SERIES_LABELS, "status"])
        duration = HistogramMetricFamily(
            "mlops_request_duration_seconds", "Latency of AI requests.", labels=SERIES_LABELS)
        tokens = CounterMetricFamily(
            "mlops_tokens", "Tokens used; prompt includes cached (cache-read) tokens.",
            labels=[*SERIES_LABELS, "type"])
        cost_total = CounterMetricFamily(
            "mlops_cost_usd", "Cost of AI requests in US dollars (priced rows only).",
            labels=SERIES_LABELS)
        unpriced = CounterMetricFamily(
            "mlops_unpriced_requests", "Requests whose model has no price: cost unknown.",
            labels=SERIES_LABELS)
        confidence = HistogramMetricFamily(
            "mlops_confidence", "Model confidence scores (0..1) reported by callers.",
            labels=SERIES_LABELS)
        for i, key in enumerate(keys):
            labels = list(key)
            requests.add_metric([*labels, "success"], float(s["success"][i]))
            requests.add_metric([*labels, "error"], float(s["error"][i]))
            duration.add_metric(labels, _buckets(self._le_latency, s["latency_buckets"][i]),
                                float(s["latency_sum_seconds"][i]))
            tokens.add_metric([*labels, "prompt"], float(s["prompt_tokens"][i]))
            tokens.add_metric([*labels, "completion"], float(s["completion_tokens"][i]))
            tokens.add_metric([*labels, "cached"], float(s["cached_tokens"][i]))
            cost_total.add_metric(labels, cost[i] / 1e12)
            unpriced.add_metric(labels, float(s["unpriced"][i]))
            confidence.add_metric(labels, _buckets(self._le_conf, s["confidence_buckets"][i]),
                                  float(s["confidence_sum"][i]))
        yield from (requests, duration, tokens, cost_total, unpriced, confidence)
        yield from self._gen_ai_metrics(keys, s)

    def _gen_ai_metrics(
        self, keys: Sequence[tuple[str, ...]], s: dict[str, Any]
    ) -> Iterator[Metric]:
        """The OpenTelemetry GenAI client metrics, aggregated per requested model."""
        models = sorted({k[2] for k in keys})
        model_col = np.array([k[2] for k in keys], dtype=object)
        op = HistogramMetricFamily(
            "gen_ai_client_operation_duration_seconds", "GenAI operation duration.",
            labels=["gen_ai_request_model"])
        usage = HistogramMetricFamily(
            "gen_ai_client_token_usage", "Number of input and output tokens used.",
            labels=["gen_ai_request_model", "gen_ai_token_type"])
        for m in models:
            rows = model_col == m
            op.add_metric([m], _buckets(self._le_latency, s["latency_buckets"][rows].sum(0)),
                          float(s["latency_sum_seconds"][rows].sum()))
            usage.add_metric([m, "input"],
                             _buckets(self._le_tokens, s["input_token_buckets"][rows].sum(0)),
                             float(s["prompt_tokens"][rows].sum()))
            usage.add_metric([m, "output"],
                             _buckets(self._le_tokens, s["output_token_buckets"][rows].sum(0)),
                             float(s["completion_tokens"][rows].sum()))
        yield op
        yield usage

    def _pipeline_metrics(self, folded: list[int], n_series: int) -> Iterator[Metric]:
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
        folds = CounterMetricFamily(
            "mlops_label_values_folded",
            "Distinct label values folded into __other__ by the cardinality limit.",
            labels=["label"])
        for name, n in zip(LABELS, folded, strict=True):
            folds.add_metric([name], float(n))
        yield folds


def build_registry(processor: Processor, status: PipelineStatus) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProcessorCollector(processor, status))
    return registry
