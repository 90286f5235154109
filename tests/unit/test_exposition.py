"""/metrics written by stream_mlops.metrics.exposition says what prometheus-client says."""

from __future__ import annotations

import gc
import gzip
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import generate_latest, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.openmetrics.exposition import generate_latest as om_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector, CollectorRegistry

from stream_mlops.core.batch import RawBatch
from stream_mlops.core.monitor import BackgroundJob
from stream_mlops.drift.monitor import DriftMonitor
from stream_mlops.metrics.exposition import encoder, render
from stream_mlops.metrics.live import Sampler
from stream_mlops.metrics.server import app
from stream_mlops.pipeline.metrics import build_registry
from stream_mlops.pipeline.processor import Processor
from stream_mlops.pipeline.scheduler import Scheduler
from stream_mlops.pipeline.status import PipelineStatus

NOW = 1_800_000_000.0
# Label values that need escaping, and ones that look like the text format's syntax.
NAMES = ["plain", 'quo"te', "back\\slash", "brace{x}", "a,b=c", "naïve ✓"]


def registry() -> CollectorRegistry:
    p = Processor(clock=lambda: NOW)
    rows = []
    for i in range(60):
        rows.append((100 + i, i, NAMES[i % 3], NAMES[i % len(NAMES)], "m-1", "control",
                     NOW - 1, 10.0 * (i + 1), 10 + i, 5, 0, 1000 * i if i % 7 else -1,
                     (i % 10) / 10, i % 4 == 0))
    p.commit(p.prepare(RawBatch.from_rows(rows)))
    for job in p.jobs():  # the drift gauges: a family whose series lack some samples
        if isinstance(job, BackgroundJob):
            job.compute(NOW)
    drift = p.monitor(DriftMonitor)
    first, *_ = drift.series.values()
    first.p_values.update({("latency", "ks"): 0.25, ("model", "chi_square"): 1e-9,
                           ("latency", "anderson_darling"): float("nan")})
    drift.snapshot = drift.gauges()
    reg = build_registry(p, PipelineStatus(), Scheduler())

    class Extra(Collector):  # what the library's families carry that ours do not
        def collect(self) -> Any:
            c = CounterMetricFamily("odd", 'help with "quotes"\nand a \\', labels=["k"],
                                    created=123.0)
            c.add_metric(["x\ny"], 2.5e20, created=5.0)
            yield c
            g = GaugeMetricFamily("weird_values", "inf and nan", labels=["v"])
            for v in (float("inf"), float("-inf"), float("nan"), 1e-9, 1234567.0):
                g.add_metric([repr(v)], v)
            yield g

    reg.register(Extra())
    return reg


def samples(families: Any) -> dict[tuple[str, str, tuple[tuple[str, str], ...]], str]:
    out = {}
    for f in families:
        for s in f.samples:
            # This process's own CPU time moves between two scrapes.
            value = "" if f.name.startswith("process_") else repr(float(s.value))
            out[(f.name, s.name, tuple(sorted(s.labels.items())))] = value
    return out


def docs(families: Any) -> dict[str, tuple[str, str]]:
    return {f.name: (f.type, f.documentation) for f in families}


@pytest.mark.parametrize(("openmetrics", "library", "parse"), [
    (False, generate_latest, text_string_to_metric_families),
    (True, om_latest, om_parse),
])
def test_the_text_parses_to_exactly_the_librarys_families_and_samples(
        openmetrics: bool, library: Callable[[Any], bytes], parse: Callable[[str], Any]) -> None:
    reg = registry()
    ours = render(reg.collect(), openmetrics)
    assert ours is not None
    theirs = library(reg).decode()
    mine = list(parse(b"".join(ours).decode()))
    expected = list(parse(theirs))
    assert samples(mine) == samples(expected)
    assert docs(mine) == docs(expected)
    assert [f.name for f in mine] == [f.name for f in expected]
    names = {f.name for f in mine}
    assert {"mlops_requests", "mlops_request_duration_seconds", "mlops_cost_window_usd",
            "mlops_alert_threshold", "odd"} <= names
    assert len(samples(mine)) > 300
    functions = {dict(labels).get("function") for _, _, labels in samples(mine)}
    assert set(NAMES) <= functions  # escaped and read back


def test_samples_only_the_library_can_write_are_left_to_it() -> None:
    class Stamped(Collector):
        def collect(self) -> Any:
            g = GaugeMetricFamily("stamped", "with a timestamp")
            g.add_metric([], 1.0, timestamp=NOW)
            yield g

    reg = CollectorRegistry()
    reg.register(Stamped())
    assert render(reg.collect(), False) is None
    wsgi = app(reg, live=lambda _: [], ready=lambda _: [])
    body = b"".join(wsgi({"PATH_INFO": "/metrics", "REQUEST_METHOD": "GET",
                          "QUERY_STRING": ""}, lambda *a: None))
    assert body == generate_latest(reg)  # the library's own output, timestamp and all


def test_the_endpoint_negotiates_format_and_compression_as_the_library_does() -> None:
    reg = registry()
    wsgi = app(reg, live=lambda _: [], ready=lambda _: [])
    seen: dict[str, Any] = {}

    def get(**headers: str) -> bytes:
        environ = {"PATH_INFO": "/metrics", "REQUEST_METHOD": "GET", "QUERY_STRING": "",
                   **headers}
        body = b"".join(wsgi(environ, lambda status, h: seen.update(status=status,
                                                                    headers=dict(h))))
        return body

    prom = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
            "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
    zipped = get(HTTP_ACCEPT=prom, HTTP_ACCEPT_ENCODING="gzip, deflate")
    body = gzip.decompress(zipped)
    assert seen["headers"]["Content-Encoding"] == "gzip"
    assert seen["headers"]["Content-Length"] == str(len(zipped))
    assert seen["headers"]["Content-Type"] == encoder(prom)[1]  # type: ignore[index]
    assert seen["headers"]["Content-Type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    plain = get()
    assert seen["headers"]["Content-Type"].startswith("text/plain; version=0.0.4")
    assert seen["headers"]["Content-Length"] == str(len(plain))
    assert "Content-Encoding" not in seen["headers"]
    # Compressed a chunk at a time, the whole body (values may move between scrapes).
    unzipped = gzip.decompress(get(HTTP_ACCEPT_ENCODING="gzip")).decode().splitlines()
    assert [line.rpartition(" ")[0] for line in unzipped] == [
        line.rpartition(" ")[0] for line in plain.decode().splitlines()]
    assert samples(text_string_to_metric_families(plain.decode())) == samples(
        text_string_to_metric_families(generate_latest(reg).decode()))


def test_a_few_families_by_name_come_back_alone() -> None:
    reg = registry()
    wsgi = app(reg, live=lambda _: [], ready=lambda _: [])

    def get(query: str) -> dict[str, set[str]]:
        body = b"".join(wsgi({"PATH_INFO": "/metrics", "REQUEST_METHOD": "GET",
                              "QUERY_STRING": query}, lambda *a: None))
        return {f.name: {s.name for s in f.samples}
                for f in text_string_to_metric_families(body.decode())}

    assert get("name[]=mlops_processor_events_total") == {
        "mlops_processor_events": {"mlops_processor_events_total"}}
    assert get("name[]=mlops_requests_total&name[]=mlops_confidence_sum") == {
        "mlops_requests": {"mlops_requests_total"}, "mlops_confidence": {"mlops_confidence_sum"}}


@pytest.mark.parametrize("accept", [
    "text/plain;version=1.0.0;escaping=allow-utf-8",  # Prometheus 3
    "text/plain;version=1.0.0;escaping=underscores",
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
    "text/plain;version=1.0.0;escaping=dots",  # left to the library
    "*/*",
])
def test_every_accept_header_gets_the_librarys_content_type_and_samples(accept: str) -> None:
    reg = registry()
    environ = {"PATH_INFO": "/metrics", "REQUEST_METHOD": "GET", "QUERY_STRING": "",
               "HTTP_ACCEPT": accept}
    ours: dict[str, Any] = {}
    theirs: dict[str, Any] = {}
    for wsgi, seen in ((app(reg, live=lambda _: [], ready=lambda _: []), ours),
                       (make_wsgi_app(reg), theirs)):
        seen["body"] = b"".join(wsgi(dict(environ), lambda status, h, s=seen: s.update(
            headers=dict(h)))).decode()
    assert ours["headers"]["Content-Type"] == theirs["headers"]["Content-Type"]
    parse = om_parse if "openmetrics" in accept else text_string_to_metric_families
    assert samples(parse(ours["body"])) == samples(parse(theirs["body"]))


@pytest.mark.parametrize("accept", [
    "application/openmetrics-text; version=abc", "text/plain;version=x.y",
    "\x00\xff;;;,,", "application/openmetrics-text;version=1.0.0;escaping=bogus", "a" * 10_000])
@pytest.mark.parametrize("query", ["", "name[]=mlops_requests_total"])
def test_a_malformed_accept_header_gets_the_text_format_not_an_error(
        accept: str, query: str, caplog: pytest.LogCaptureFixture) -> None:
    # Anyone who can reach the port can send these: the scrape must not fail, and the log
    # must not fill with tracebacks.
    reg = registry()
    wsgi = app(reg, live=lambda _: [], ready=lambda _: [])
    seen: dict[str, Any] = {}
    body = b"".join(wsgi({"PATH_INFO": "/metrics", "REQUEST_METHOD": "GET",
                          "QUERY_STRING": query, "HTTP_ACCEPT": accept},
                         lambda status, h: seen.update(status=status, headers=dict(h))))
    assert seen["status"] == "200 OK"
    families = {f.name for f in text_string_to_metric_families(body.decode())}
    assert "mlops_requests" in families
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def test_the_garbage_collector_is_off_during_a_scrape_and_back_as_it_was_after() -> None:
    seen: list[bool] = []

    class Probe(Collector):
        def describe(self) -> Any:
            yield GaugeMetricFamily("probe", "gc state")

        def collect(self) -> Any:
            seen.append(gc.isenabled())
            yield GaugeMetricFamily("probe", "gc state", value=1.0)

    reg = CollectorRegistry()
    reg.register(Probe())
    wsgi = app(reg, live=lambda _: [], ready=lambda _: [])
    environ = {"PATH_INFO": "/metrics", "REQUEST_METHOD": "GET", "QUERY_STRING": ""}
    assert gc.isenabled()
    b"".join(wsgi(environ, lambda *a: None))
    b"".join(wsgi({**environ, "QUERY_STRING": "name[]=probe"}, lambda *a: None))  # library
    Sampler(reg).sample()
    assert seen == [False, False, False] and gc.isenabled()
    gc.disable()
    try:
        b"".join(wsgi(environ, lambda *a: None))
        assert not gc.isenabled()  # left off by whoever turned it off
    finally:
        gc.enable()
