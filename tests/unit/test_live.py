"""The live page's numbers, escaping, search, pagination and CSV, from a real
prometheus-client registry holding families shaped like the processor's."""

from __future__ import annotations

import csv
import io
import math
import re
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from benchmarks.memory import rows_for
from stream_mlops.core.monitor import BackgroundJob
from stream_mlops.metrics.live import (
    PAGE_SIZE,
    LivePage,
    Numbers,
    Sampler,
    _rows_table,
    sparkline,
)
from stream_mlops.pipeline.metrics import build_registry
from stream_mlops.pipeline.processor import Processor
from stream_mlops.pipeline.scheduler import Scheduler
from stream_mlops.pipeline.status import PipelineStatus

BOUNDS = [0.1, 0.5, 1.0, 5.0]
LABELS = ["tenant", "function", "model", "variant"]


class Traffic(Collector):
    """Counters per series that the test moves forward, as the processor's would."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.alerts: list[tuple[str, str, str]] = []

    def add(self, key: tuple[str, str, str, str], ok: int, errors: int,
            buckets: list[int], cost: float) -> None:
        s = self.series.setdefault(key, {"ok": 0, "err": 0, "b": [0] * 5, "cost": 0.0})
        s["ok"] += ok
        s["err"] += errors
        s["b"] = [a + b for a, b in zip(s["b"], buckets, strict=True)]
        s["cost"] += cost

    def collect(self) -> Iterator[Any]:
        req = CounterMetricFamily("mlops_requests", "", labels=[*LABELS, "status"])
        dur = HistogramMetricFamily("mlops_request_duration_seconds", "", labels=LABELS)
        cost = CounterMetricFamily("mlops_cost_usd", "", labels=LABELS)
        window = GaugeMetricFamily("mlops_cost_window_usd", "",
                                   labels=["tenant", "function", "model", "window"])
        for key, s in self.series.items():
            req.add_metric([*key, "success"], s["ok"])
            req.add_metric([*key, "error"], s["err"])
            cum, total = [], 0
            for le, n in zip([*map(str, BOUNDS), "+Inf"], s["b"], strict=True):
                total += n
                cum.append((le, float(total)))
            dur.add_metric(list(key), cum, 0.0)
            cost.add_metric(list(key), s["cost"])
            window.add_metric([*key[:3], "day"], s["cost"])
        active = GaugeMetricFamily("mlops_alert_active", "",
                                   labels=["tenant", "function", "rule", "severity"])
        for tenant, function, rule in self.alerts:
            active.add_metric([tenant, function, rule, "warning"], 1.0)
        yield from (req, dur, cost, window, active)


@pytest.fixture
def traffic() -> Traffic:
    return Traffic()


def page_for(traffic: Traffic) -> tuple[LivePage, Sampler]:
    registry = CollectorRegistry()
    registry.register(traffic)
    sampler = Sampler(registry, interval=10.0)
    return LivePage(sampler), sampler


def get(app: LivePage, path: str, query: str = "") -> tuple[str, dict[str, str], str]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app({"PATH_INFO": path, "QUERY_STRING": query}, start_response))
    return seen["status"], seen["headers"], body.decode()


def test_numbers_of_a_window_are_exact(traffic: Traffic) -> None:
    _, sampler = page_for(traffic)
    key = ("t", "fn", "gpt", "control")
    traffic.add(key, 10, 0, [10, 0, 0, 0, 0], 0.5)
    sampler.sample(now=1000.0)
    traffic.add(key, 190, 10, [100, 100, 0, 0, 0], 1.5)
    sampler.sample(now=1100.0)
    n = Numbers(sampler, (0, 1), now=sampler.snapshots[-1])  # at the second sample
    (row,) = n.rows(sorted(n.groups))
    assert row.rps == pytest.approx(2.0)  # 200 requests in 100 s
    assert row.error_ratio == pytest.approx(0.05)
    assert row.p95 == pytest.approx(0.46)
    assert row.cost_today == pytest.approx(2.0)
    assert row.charts["requests/s"] == [pytest.approx(2.0)]


def test_a_step_of_the_wall_clock_does_not_empty_the_window(
        traffic: Traffic, monkeypatch: pytest.MonkeyPatch) -> None:
    # The windows are measured on the monotonic clock: a step of the wall clock back by
    # an hour would put every snapshot "in the future", and the page would show no
    # requests/s at all (the likely cause of one CI failure of the Chromium test).
    _, sampler = page_for(traffic)
    key = ("t", "fn", "gpt", "control")
    clock = {"mono": 500.0, "wall": 1.8e9}
    monkeypatch.setattr(time, "monotonic", lambda: clock["mono"])
    monkeypatch.setattr(time, "time", lambda: clock["wall"])
    traffic.add(key, 10, 0, [10, 0, 0, 0, 0], 0.0)
    sampler.sample()
    clock["mono"] += 20.0
    clock["wall"] -= 3600.0
    traffic.add(key, 40, 0, [40, 0, 0, 0, 0], 0.0)
    n = Numbers(sampler, (0, 1))
    (row,) = n.rows(sorted(n.groups))
    assert row.rps == pytest.approx(2.0)  # 40 requests in 20 s


def test_a_slow_read_is_not_appended_after_a_newer_one(traffic: Traffic) -> None:
    # The sampler's thread and a page view sample concurrently; the one that started
    # first but finished last must not end the history, or its deltas go negative.
    _, sampler = page_for(traffic)
    traffic.add(("t", "fn", "gpt", "control"), 10, 0, [10, 0, 0, 0, 0], 0.0)
    sampler.sample(now=20.0)
    sampler.sample(now=15.0)
    assert [s.t for s in sampler.snapshots] == [20.0]


def test_labels_are_escaped_everywhere(traffic: Traffic) -> None:
    app, sampler = page_for(traffic)
    evil = ('<script>alert("x")</script>', "o'brien \"quoted\" & co", "функция-数据-🚀")
    for i, name in enumerate(evil):
        traffic.add(("tenant<b>", name, "m<i>", "v"), 5 + i, 1, [3, 3, 0, 0, 0], 0.1)
    traffic.alerts.append(("tenant<b>", evil[0], "error_rate"))
    sampler.sample(now=1.0)
    status, headers, html = get(app, "/")
    assert status == "200 OK" and headers["Content-Type"].startswith("text/html")
    assert "<script" not in html and "<b>" not in html.replace("<b>page", "")
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "o&#x27;brien &quot;quoted&quot; &amp; co" in html
    assert "функция-数据-🚀" in html
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    # The drill-down link carries the name URL-encoded and finds the function again.
    href = re.search(r'class="drill" href="([^"]+)"', html)
    assert href is not None
    path, query = href.group(1).replace("&amp;", "&").split("?", 1)
    status, _, drill = get(app, path, query)
    assert status == "200 OK"
    assert "m&lt;i&gt;" in drill and "<i>" not in drill


def test_a_thousand_functions_are_searchable_and_paginated(traffic: Traffic) -> None:
    app, sampler = page_for(traffic)
    for i in range(1000):
        traffic.add(("t", f"fn-{i:04d}", "m", "v"), 1, 0, [1, 0, 0, 0, 0], 0.0)
    sampler.sample(now=1.0)
    _, _, first = get(app, "/")
    assert first.count('class="drill"') == PAGE_SIZE
    assert "1000 function(s)" in first and "page 20" in first
    _, _, last = get(app, "/", "page=20")
    assert "fn-0999" in last and "fn-0000" not in last
    _, _, found = get(app, "/", "q=fn-042")
    assert found.count('class="drill"') == 10  # fn-0420 .. fn-0429
    _, headers, exported = get(app, "/live.csv", "q=fn-042")
    assert headers["Content-Disposition"].endswith('"stream-mlops-live.csv"')
    assert [r["function"] for r in csv.DictReader(io.StringIO(exported))] == [
        f"fn-042{i}" for i in range(10)]
    _, _, beyond = get(app, "/", "page=999")  # clamped to the last page, not an error
    assert "fn-0999" in beyond


def test_csv_cells_are_never_formulas(traffic: Traffic) -> None:
    app, sampler = page_for(traffic)
    traffic.add(("t", "=HYPERLINK(1)", "m", "v"), 1, 0, [1, 0, 0, 0, 0], 0.0)
    sampler.sample(now=1.0)
    (row,) = list(csv.DictReader(io.StringIO(get(app, "/live.csv")[2])))
    assert row["function"] == "'=HYPERLINK(1)"


def test_an_unknown_function_and_an_empty_registry_are_pages_not_errors(
        traffic: Traffic) -> None:
    app, _ = page_for(traffic)
    status, _, html = get(app, "/")
    assert status == "200 OK" and "0 function(s)" in html
    status, _, html = get(app, "/function", "tenant=t&name=%3Cnope%3E")
    assert status == "404 Not Found" and "No function &lt;nope&gt;" in html


def test_sparkline_draws_finite_points_and_says_when_empty() -> None:
    svg = sparkline([1.0, math.nan, 3.0, 2.0], "x")
    points = re.search(r'points="([^"]+)"', svg)
    assert points is not None and len(points.group(1).split()) == 3
    assert "no data yet" in sparkline([math.nan], "x")


def test_red_where_the_exported_threshold_is_crossed_and_nowhere_without_one(
        traffic: Traffic) -> None:
    class Thresholds(Collector):
        def collect(self) -> Iterator[Any]:
            g = GaugeMetricFamily("mlops_alert_threshold", "",
                                  labels=["tenant", "function", "rule"])
            g.add_metric(["t", "strict", "error_rate"], 0.01)
            g.add_metric(["t", "strict", "latency_p95"], 0.2)
            yield g

    _, sampler = page_for(traffic)
    sampler.registry.register(Thresholds())
    for name in ("strict", "loose"):  # 2 % errors, p95 0.46 s on both
        traffic.add(("t", name, "m", "v"), 10, 0, [10, 0, 0, 0, 0], 0.0)
    sampler.sample(now=1000.0)
    for name in ("strict", "loose"):
        traffic.add(("t", name, "m", "v"), 196, 4, [100, 100, 0, 0, 0], 0.0)
    sampler.sample(now=1100.0)
    n = Numbers(sampler, (0, 1), now=sampler.snapshots[-1])
    rows = {r.function: r for r in n.rows(sorted(n.groups))}
    assert rows["strict"].error_threshold == 0.01 and math.isnan(rows["loose"].error_threshold)
    html = _rows_table([rows["strict"], rows["loose"]], drill=False, refresh=30)
    strict, loose = html.split("<tr>")[2:4]
    assert strict.count('class="bad"') == 2  # errors and p95 over their thresholds
    assert 'class="bad"' not in loose


def test_the_processors_own_families_reach_the_page() -> None:
    # The processor exports cost windows, thresholds and drift gauges as array-backed
    # families, not as prometheus-client samples; the page must read them all the same
    # (it showed no cost today and no thresholds when it did not).
    p = Processor()
    rows = rows_for(3, 40)
    p.commit(p.prepare(rows))
    for job in p.jobs():
        if isinstance(job, BackgroundJob):
            job.compute(time.time())
    sampler = Sampler(build_registry(p, PipelineStatus(), Scheduler()), interval=10.0)
    sampler.sample()
    n = Numbers(sampler, (0, 1), now=sampler.snapshots[-1])
    got = {r.function: r for r in n.rows(sorted(n.groups))}
    assert sorted(got) == ["fn-0", "fn-1", "fn-2"]
    midnight = time.time() // 86400 * 86400  # the page's "today" is the UTC day
    for fn, row in got.items():
        mine = [i for i, key in enumerate(rows.key)
                if key.split("\x1f")[1] == fn and rows.created_at[i] >= midnight]
        assert row.cost_today == pytest.approx(float(np.sum(rows.cost_pico[mine])) / 1e12)
        assert row.error_threshold == pytest.approx(0.05)  # the processor's default
    drift = sampler.snapshots[-1].gauges["mlops_drift_events_total"]
    assert {(lb["function"], lb["metric"]) for lb, _ in drift} >= {
        (fn, m) for fn in got for m in ("latency", "confidence", "model")}
