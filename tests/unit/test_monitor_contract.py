"""The monitor contract with a monitor written for this test: a capability is a class on
the contract and one entry in the processor's list; it needs no change anywhere else."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pytest
from prometheus_client.core import GaugeMetricFamily, Metric

from stream_mlops.core.alerts import AlertChange, AlertKey, Episodes, alert_change
from stream_mlops.core.batch import Batch, RawBatch
from stream_mlops.core.monitor import Cursor, MetricsBuilder, Monitor, Observed, Store, Write
from stream_mlops.costs.monitor import CostTracker, HourlyCostRow, MinuteCostRow
from stream_mlops.drift.monitor import DriftMonitor, HourRow
from stream_mlops.pipeline.processor import Processor
from stream_mlops.pipeline.repository import delta_from_rows

R = TypeVar("R")
NOW = 1_800_000_000.0


@dataclass(frozen=True)
class CountRow:
    tenant_id: str
    function_name: str
    requests: int


class RequestCounter(Monitor):
    """Counts requests per function, persists the counts with each batch, and alerts
    while a function has more than ``limit`` requests."""

    name = "request_counter"

    def __init__(self, limit: int = 5) -> None:
        self.limit = limit
        self.counts: dict[int, int] = {}
        self.episodes = Episodes()

    def restore(self, store: Store) -> None:
        for r in store.rows("request_counts", CountRow):
            self.counts[self.index.function_id(r.tenant_id, r.function_name)] = r.requests

    def observe(self, batch: Batch) -> Observed:
        for f, n in zip(*np.unique(batch.function, return_counts=True), strict=True):
            self.counts[int(f)] = self.counts.get(int(f), 0) + int(n)
        return Observed(writes=[Write("add_request_counts", {"counts": dict(self.counts)})])

    def evaluate(self, now: float) -> list[AlertChange]:
        keys = self.index.function_keys
        wanted = {AlertKey(keys[f][0], f"count:{keys[f][1]}")
                  for f, n in self.counts.items() if n > self.limit}
        fired = [alert_change("fire", k, "performance", rule="count", severity="warning")
                 for k in sorted(wanted - self.episodes.open)]
        return self.episodes.settle(wanted, fired, lambda k: alert_change(
            "resolve", k, "performance", rule="count"))

    def metrics(self, now: float) -> MetricsBuilder:
        counts = [(self.index.function_keys[f], n) for f, n in self.counts.items()]
        return lambda: self._families(counts)

    @staticmethod
    def _families(counts: Iterable[tuple[tuple[str, str], int]]) -> Iterator[Metric]:
        g = GaugeMetricFamily("test_requests", "Requests counted.", labels=["function"])
        for (_, function), n in counts:
            g.add_metric([function], n)
        yield g


class MemoryStore:
    """A :class:`Store` over plain data, for a monitor's restore."""

    def __init__(self, tables: dict[str, list[Any]]) -> None:
        self.tables = tables
        self.cursor = Cursor()
        self.now = NOW
        self.problems: list[str] = []

    def rows(self, query: str, row: type[R], /, **params: Any) -> list[R]:
        return list(self.tables.get(query, []))

    def execute(self, query: str, /, **params: Any) -> None:
        self.tables.setdefault(query, []).append(params)

    def consumed(self, *, seconds: float | None = None, last: int | None = None) -> RawBatch:
        return RawBatch.from_rows([])

    def report(self, problem: str) -> None:
        self.problems.append(problem)

    def isolated(self, what: str, work: Callable[[], None]) -> bool:
        try:
            work()
        except ValueError as exc:
            self.report(f"{what}: {exc}")
            return False
        return True


def rows(*functions: str) -> RawBatch:
    return RawBatch.from_rows([(100 + i, i, "t", f, "m", "control", NOW - 1, 100.0, 1, 1, 0,
                                1000, -1.0, False) for i, f in enumerate(functions)])


def test_a_monitor_registered_in_the_list_observes_writes_alerts_and_exports() -> None:
    p = Processor(monitors=lambda: [RequestCounter(limit=2)], clock=lambda: NOW)
    e = p.prepare(rows("a", "a", "b"))
    assert e.writes == [Write("add_request_counts", {"counts": {0: 2, 1: 1}})]
    p.commit(e)
    assert p.tick() == []
    p.commit(p.prepare(rows("a")))
    (fired,) = p.tick()
    assert (fired.action, fired.key) == ("fire", AlertKey("t", "count:a"))
    assert p.tick() == []  # one episode
    families = [m for build in p.metrics(NOW) for m in build()]
    assert {s.labels["function"]: s.value for s in families[0].samples} == {"a": 3, "b": 1}


def test_restore_reads_through_the_store_into_the_shared_index() -> None:
    p = Processor(monitors=lambda: [RequestCounter()], clock=lambda: NOW)
    store = MemoryStore({"request_counts": [CountRow("t", "a", 7)]})
    loaded = p.loaded([], delta_from_rows([]), store)
    counter = loaded.monitor(RequestCounter)
    assert counter.index is loaded.index  # the processor's own, shared
    assert loaded.index.function_keys == [("t", "a")] and counter.counts == {0: 7}
    p.adopt(loaded)
    (fired,) = p.tick()
    assert fired.key == AlertKey("t", "count:a")


def test_a_monitor_whose_state_cannot_be_restored_starts_empty_and_the_others_run() -> None:
    class Broken(RequestCounter):
        name = "broken"

        def restore(self, store: Store) -> None:
            raise ValueError("a row no version of this code wrote")

    p = Processor(monitors=lambda: [Broken(), RequestCounter()], clock=lambda: NOW)
    store = MemoryStore({"request_counts": [CountRow("t", "a", 7)]})
    loaded = p.loaded([], delta_from_rows([]), store)
    broken, counter = loaded.monitors
    assert isinstance(broken, Broken) and broken.counts == {} and broken.index is loaded.index
    assert isinstance(counter, RequestCounter)
    assert counter.counts == {0: 7}  # restored as if nothing had happened
    assert store.problems == ["broken: its stored state cannot be restored; it starts empty: "
                              "a row no version of this code wrote"]


@pytest.mark.parametrize("drift_first", [False, True])
def test_requests_per_function_are_one_copy_counted_and_restored_once(
        drift_first: bool) -> None:
    # Costs (cost per request) and drift (volume, latency profiles) read the same counts:
    # one ring on the index, added once per batch and restored once, whichever monitor
    # comes first.
    order = [CostTracker, DriftMonitor][::-1 if drift_first else 1]
    p = Processor(monitors=lambda: [cls() for cls in order], clock=lambda: NOW)
    costs, drift = p.monitor(CostTracker), p.monitor(DriftMonitor)
    assert costs.fn_requests is drift.requests
    p.commit(p.prepare(rows("a", "a", "b")))
    hour, minute = math.floor((NOW - 1) / 3600), math.floor((NOW - 1) / 60)
    assert costs.fn_requests.hours(hour, hour).tolist() == [2, 1]
    assert costs.fn_requests.minutes(minute, minute).tolist() == [2, 1]

    key = "\x1f".join(("t", "a", "m", "control"))
    store = MemoryStore({
        "recent_hourly_costs": [HourlyCostRow("t", "a", "m", hour - 1, 10**9, 5)],
        "recent_hourly_latency": [HourRow("t", "a", hour - 1, 5, 500.0)],
        "recent_minute_costs": [MinuteCostRow(key, minute - 1, 10**8, 3)]})
    loaded = p.loaded([], delta_from_rows([]), store)
    ring = loaded.monitor(CostTracker).fn_requests
    assert ring is loaded.monitor(DriftMonitor).requests and ring is not costs.fn_requests
    assert ring.hours(hour - 1, hour - 1).tolist() == [5]
    assert ring.minutes(minute - 1, minute - 1).tolist() == [3]
    assert store.problems == []
