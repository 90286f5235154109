"""The processor's validation, cardinality folding and poison-row isolation (no I/O)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stream_mlops.core.batch import RawBatch
from stream_mlops.core.series import OTHER, LabelFolder
from stream_mlops.pipeline.processor import Processor

NOW = 1_800_000_000.0


def row(i: int, **kw: Any) -> tuple[Any, ...]:
    r: dict[str, Any] = {
        "xid": 100 + i, "id": i, "tenant": "t", "function": "f", "model": "m",
        "variant": "control", "created": NOW - 1, "latency": 120.0, "prompt": 10,
        "completion": 5, "cached": 0, "cost": 1000, "confidence": 0.8, "error": False}
    r.update(kw)
    return tuple(r.values())


def batch(*rows: tuple[Any, ...]) -> RawBatch:
    return RawBatch.from_rows(rows)


def proc() -> Processor:
    return Processor(max_label_values=3, max_future_skew_seconds=60, clock=lambda: NOW)


def test_valid_batch_is_aggregated_and_committed_only_on_commit() -> None:
    p = proc()
    e = p.prepare(batch(row(1), row(2, error=True), row(3, cost=-1)))
    assert (e.last_xid, e.last_id, e.events) == (103, 3, 3)
    assert e.quarantine == []
    assert e.delta is not None and e.persisted is not None
    assert p.totals.success.sum() == 0  # not committed yet
    p.commit(e)
    assert (p.totals.success.sum(), p.totals.error.sum(), p.totals.unpriced.sum()) == (2, 1, 1)
    assert p.totals.cost_pico == [2000]


@pytest.mark.parametrize(("bad", "reason"), [
    ({"latency": float("nan")}, "latency_ms"),
    ({"latency": -1.0}, "latency_ms"),
    ({"prompt": -1}, "token counts"),
    ({"cached": 50}, "cached_tokens"),
    ({"confidence": 1.5}, "confidence"),
    ({"confidence": float("nan")}, "confidence"),
    ({"cost": -5}, "cost_usd"),
    ({"created": NOW + 3600}, "in the future"),
])
def test_invalid_rows_are_quarantined_with_reason(bad: dict[str, Any], reason: str) -> None:
    p = proc()
    e = p.prepare(batch(row(1), row(2, **bad), row(3)))
    assert len(e.quarantine) == 1
    assert e.quarantine[0][0] == 2 and reason in e.quarantine[0][1]
    p.commit(e)
    assert p.totals.success.sum() == 2
    assert e.events == 3  # the cursor still moves past the bad row


def test_poison_row_is_isolated_when_batch_aggregation_fails() -> None:
    p = proc()
    e = p.prepare(batch(row(1), row(2, function="bad\x1fname"), row(3)))
    assert [i for i, _ in e.quarantine] == [2]
    assert e.quarantine[0][1] == ("unprocessable row: label values must not contain "
                                  "control characters")
    p.commit(e)
    assert p.totals.success.sum() == 2


def test_label_folder_bounds_each_label() -> None:
    f = LabelFolder(limit=2)
    keys = [f.fold(("t", f"fn{i}", "m", "v")) for i in range(5)]
    assert [k[1] for k in keys] == ["fn0", "fn1", OTHER, OTHER, OTHER]
    assert f.folded_values == [0, 3, 0, 0]
    assert f.fold(("t", "fn1", "m", "v")) == ("t", "fn1", "m", "v")  # known values stay


def test_folded_series_share_one_index() -> None:
    p = proc()
    p.commit(p.prepare(batch(*(row(i, function=f"fn{i}") for i in range(10)))))
    assert [k[1] for k in p.index.keys] == ["fn0", "fn1", "fn2", OTHER]
    assert p.totals.success.tolist() == [1, 1, 1, 7]


def test_load_restores_known_labels() -> None:
    p = proc()
    p.commit(p.prepare(batch(*(row(i, function=f"fn{i}") for i in range(3)))))
    q = proc()
    keys = list(p.index.keys)
    from stream_mlops.pipeline.totals import Delta
    snap = Delta(series=np.arange(len(keys)), cost_pico=list(p.totals.cost_pico),
                 **{n: getattr(p.totals, n) for n in p.totals._ARRAYS})
    q.load(keys, snap)
    q.commit(q.prepare(batch(row(9, function="fn1"), row(10, function="new"))))
    assert q.totals.success.tolist() == [1, 2, 1, 1]
    assert q.index.keys[-1][1] == OTHER
