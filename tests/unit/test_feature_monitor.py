"""The feature monitor as a pure state machine: statistics, staleness, drift, restore and
metrics, over a store of plain lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pytest

from stream_mlops.core.alerts import AlertKey
from stream_mlops.core.batch import RawBatch
from stream_mlops.core.monitor import Cursor
from stream_mlops.core.rows import OpenAlertRow
from stream_mlops.features.monitor import (
    CursorRow,
    FeatureDefRow,
    FeatureMonitor,
    FeatureStats,
    ReadRow,
    StatsRow,
    ValueRow,
)

R = TypeVar("R")
NOW = 1_800_000_000.0
DEFS = [FeatureDefRow("t", "user", "spend", "float", None),
        FeatureDefRow("t", "user", "country", "string", None),
        FeatureDefRow("t", "user", "embedding", "float_list", None)]


class Store:
    """Rows by query name; the feature queries read what ``values``/``reads`` hold past
    the cursor they are given."""

    def __init__(self, **tables: list[Any]) -> None:
        self.tables: dict[str, list[Any]] = {"feature_definitions_all": DEFS,
                                             "feature_cursor_start": [CursorRow("0", 0)],
                                             **tables}
        self.values: list[ValueRow] = []
        self.reads: list[ReadRow] = []
        self.saved: list[dict[str, Any]] = []
        self.cursor = Cursor()
        self.now = NOW
        self.problems: list[str] = []
        self.fail_save = False

    def rows(self, query: str, row: type[R], /, **params: Any) -> list[Any]:
        if query in ("feature_values_since", "feature_reads_since"):
            src = self.values if query == "feature_values_since" else self.reads
            after = (int(params["last_xid"]), params["last_id"])
            return [r for r in src if (int(r.xid), r.id) > after][:params["limit"]]
        return list(self.tables.get(query, []))

    def execute(self, query: str, /, **params: Any) -> None:
        if self.fail_save:
            raise RuntimeError("connection lost")
        self.saved.append(params)

    def consumed(self, *, seconds: float | None = None, last: int | None = None) -> RawBatch:
        return RawBatch.from_rows([])

    def report(self, problem: str) -> None:
        self.problems.append(problem)

    def isolated(self, what: str, work: Callable[[], None]) -> bool:
        work()
        return True


def write(store: Store, name: str, values: list[Any], at: float) -> None:
    start = len(store.values)
    store.values += [ValueRow(str(10 + start + i), 1, "t", "user", name, v, at - 5, at)
                     for i, v in enumerate(values)]


def monitor(store: Store, **kw: Any) -> FeatureMonitor:
    m = FeatureMonitor(min_stale_seconds=10.0, reference_size=100, **kw)
    m.restore(store)
    return m


def test_gaps_count_one_per_transaction_and_the_usual_interval_is_their_median() -> None:
    s = FeatureStats().written([1.0, 2.0, 3.0], [100.0, 100.0, 100.0])
    assert (s.writes_total, s.last_event_time, s.last_write_at, s.gaps) == (3, 3.0, 100.0, ())
    s = s.written([4.0], [110.0]).written([0.5], [112.0]).written([5.0], [130.0])
    assert s.gaps == (10.0, 2.0, 18.0) and s.usual_interval == 10.0
    assert s.last_event_time == 5.0  # a late value (0.5) does not make it older


def test_the_job_saves_cursor_and_stats_before_its_memory_moves() -> None:
    store = Store()
    m = monitor(store)
    write(store, "spend", [1.0, 2.0], NOW)
    store.reads.append(ReadRow("11", 1, "t", "user", ["spend", "country"], 4, [1, 4], NOW))
    store.fail_save = True
    with pytest.raises(RuntimeError):
        m.run(store)
    assert m.stats == {} and m.cursors["values"].last_xid == "0"  # nothing moved
    store.fail_save = False
    assert m.run(store) == []
    (saved,) = store.saved
    assert (saved["values_xid"], saved["reads_xid"]) == ("11", "11")
    assert {(s["feature_name"], s["writes_total"], s["reads_total"], s["missing_total"])
            for s in saved["stats"]} == {("spend", 2, 4, 1), ("country", 0, 4, 4)}
    assert m.run(store) == [] and len(store.saved) == 1  # nothing new: nothing saved


def test_a_feature_that_stops_being_written_goes_stale_and_a_write_resolves_it() -> None:
    store = Store()
    m = monitor(store)
    for i in range(5):  # every 4 s
        write(store, "spend", [1.0], NOW + 4 * i)
        m.run(store)
    last = NOW + 16
    assert m.stale_limit(m.stats[("t", "user", "spend")]) == 20.0  # 5 x 4 s
    assert m.evaluate(last + 20) == []
    (fired,) = m.evaluate(last + 20.5)
    assert (fired.action, fired.alert_type, fired.key) == (
        "fire", "feature", AlertKey("t", "feature:stale:user:spend"))
    assert "usually written every 4 s" in fired.message
    assert m.evaluate(last + 30) == []  # one episode
    write(store, "spend", [1.0], last + 31)
    m.run(store)
    (resolved,) = m.evaluate(last + 31)
    assert resolved.action == "resolve" and resolved.key == fired.key


def test_min_stale_seconds_bounds_fast_features() -> None:
    store = Store()
    m = monitor(store)
    for i in range(5):
        write(store, "spend", [1.0], NOW + 0.1 * i)
        m.run(store)
    assert m.stale_limit(m.stats[("t", "user", "spend")]) == 10.0


def test_a_shift_in_numeric_values_fires_drift_once_and_it_resolves_after_quiet() -> None:
    rng = np.random.default_rng(15)
    store = Store()
    m = monitor(store, quiet_seconds=100.0)
    write(store, "spend", rng.normal(10, 1, 600).tolist(), NOW)
    assert m.run(store) == []
    write(store, "spend", rng.normal(14, 1, 600).tolist(), NOW + 1)
    changes = m.run(store)
    assert [(c.action, c.key.fingerprint, c.alert_type) for c in changes] == [
        ("fire", "feature:drift:user:spend", "feature")]
    assert m.evaluate(NOW + 50) == []  # still open while the drift is recent
    write(store, "spend", rng.normal(14, 1, 600).tolist(), NOW + 2)
    assert m.run(store) == []  # the detector learned the new level
    (resolved,) = m.evaluate(NOW + 102)
    assert resolved.action == "resolve" and resolved.key == changes[0].key


def test_categorical_values_drift_and_vectors_are_not_watched() -> None:
    store = Store()
    m = monitor(store)
    write(store, "country", ["fr", "de"] * 300, NOW)
    write(store, "embedding", [[1.0, 2.0]] * 600, NOW)
    assert m.run(store) == []
    write(store, "country", ["us"] * 600, NOW + 1)
    (fired,) = m.run(store)
    assert fired.key.fingerprint == "feature:drift:user:country"
    assert ("t", "user", "embedding") not in m.drift


def test_restore_reads_stats_cursor_and_open_alerts_and_reports_foreign_ones() -> None:
    store = Store(
        feature_cursors=[CursorRow("40", 7, "values"), CursorRow("41", 2, "reads")],
        feature_stats_rows=[StatsRow("t", "user", "spend", 9, 3, 1, NOW - 50, NOW - 40,
                                     [4.0, 4.0, 4.0])],
        open_alerts=[OpenAlertRow("t", "feature:stale:user:spend", "warning", "firing", NOW,
                                  NOW),
                     OpenAlertRow("t", "feature:drift:user:spend", "warning", "firing", NOW,
                                  NOW),
                     OpenAlertRow("t", "something:else", "warning", "firing", NOW, NOW)])
    m = FeatureMonitor(quiet_seconds=100.0, min_stale_seconds=10.0)
    m.restore(store)
    assert m.cursors["values"] == CursorRow("40", 7, "values")
    assert m.stats[("t", "user", "spend")].writes_total == 9
    assert store.problems == ["open alert t/'something:else' is not one the feature monitor "
                              "raises; left as it is"]
    # Stale for 40 s > 5 x 4 s: stays open; the drift resolves a quiet period after restore.
    assert m.evaluate(NOW) == []
    (resolved,) = m.evaluate(NOW + 101)
    assert resolved.key.fingerprint == "feature:drift:user:spend"


def test_metrics_name_every_feature_family() -> None:
    store = Store()
    m = monitor(store)
    write(store, "spend", [1.0], NOW)
    store.reads.append(ReadRow("11", 1, "t", "user", ["spend"], 2, [1], NOW))
    m.run(store)
    families = {f.name: f for f in m.metrics(NOW + 30)()}
    assert set(families) == {
        "mlops_feature_freshness_seconds", "mlops_feature_last_write_age_seconds",
        "mlops_feature_writes", "mlops_feature_write_interval_seconds", "mlops_feature_stale",
        "mlops_feature_online_lookups", "mlops_feature_online_missing", "mlops_feature_drift",
        "mlops_feature_drifts"}
    fresh = families["mlops_feature_freshness_seconds"].samples[0]
    assert fresh.labels == {"tenant": "t", "entity_type": "user", "feature": "spend"}
    assert fresh.value == 35.0
    assert families["mlops_feature_online_missing"].samples[0].value == 1
