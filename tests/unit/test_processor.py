"""The processor's validation, cardinality folding and poison-row isolation (no I/O)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stream_mlops.core.batch import RawBatch
from stream_mlops.core.series import OTHER, UNSAFE_LABELS, SeriesBudget
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
    return Processor(series_budget=SeriesBudget(per_tenant=3), max_future_skew_seconds=60,
                     clock=lambda: NOW)


def test_valid_batch_is_aggregated_and_committed_only_on_commit() -> None:
    p = proc()
    e = p.prepare(batch(row(1), row(2, error=True), row(3, cost=-1)))
    assert e.events == 3
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
    ({"created": 0.0}, "before 2000-01-01"),  # an unset timestamp
    ({"created": -1e10}, "before 2000-01-01"),  # 1653: beyond the roll-up's hour key
    ({"created": -2e11}, "before 2000-01-01"),  # 4368 BC: beyond Python's dates
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
    assert e.quarantine[0][1] == "unprocessable row: " + UNSAFE_LABELS
    p.commit(e)
    assert p.totals.success.sum() == 2


def test_a_tenant_over_its_budget_folds_into_its_own_series_only() -> None:
    """Tenant t sends a new function per request: past its 3 series they share t's
    __other__ series (totals exact); tenant u, arriving after, is not affected."""
    p = proc()
    p.commit(p.prepare(batch(*(row(i, function=f"fn{i}") for i in range(10)))))
    p.commit(p.prepare(batch(*(row(i, tenant="u", function=f"g{i}") for i in range(10, 13)))))
    assert p.index.keys == [("t", "fn0", "m", "control"), ("t", "fn1", "m", "control"),
                            ("t", "fn2", "m", "control"), ("t", OTHER, OTHER, OTHER),
                            ("u", "g10", "m", "control"), ("u", "g11", "m", "control"),
                            ("u", "g12", "m", "control")]
    assert p.totals.success.tolist() == [1, 1, 1, 7, 1, 1, 1]
    assert p.index.folded == {"t": 7} and p.index.tenant_series == {"t": 3, "u": 3}
    p.commit(p.prepare(batch(row(20, function="fn1"))))  # known series stay themselves
    assert p.totals.success.tolist()[1] == 2


def test_a_global_budget_bounds_all_tenants_together() -> None:
    p = Processor(series_budget=SeriesBudget(per_tenant=10, total=4), clock=lambda: NOW)
    p.commit(p.prepare(batch(*(row(i, tenant=f"t{i % 3}", function=f"f{i}")
                               for i in range(9)))))
    assert sum(p.index.tenant_series.values()) == 4
    assert {k for k in p.index.keys if k[1] == OTHER} == {
        ("t1", OTHER, OTHER, OTHER), ("t2", OTHER, OTHER, OTHER),
        ("t0", OTHER, OTHER, OTHER)}
    assert int(p.totals.success.sum()) == 9


def test_a_tenant_budget_override_applies_to_that_tenant() -> None:
    p = proc()
    p.index.budget.overrides = {"big": 5}
    p.commit(p.prepare(batch(*(row(i, tenant=tenant, function=f"f{i}")
                               for tenant in ("big", "t") for i in range(6)))))
    assert p.index.tenant_series == {"big": 5, "t": 3}
    assert p.index.folded == {"big": 1, "t": 3}


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
    assert q.totals.success.tolist() == [1, 2, 1, 1]  # the budget counts loaded series
    assert q.index.keys[-1] == ("t", OTHER, OTHER, OTHER)


@pytest.mark.parametrize("name", ["sum\u2028marize", "sum\u2029", "x\u202egnp.exe", "a\x85b",
                                  "rtl\u2066", "m\u200f"])
def test_names_that_would_break_headers_or_read_as_others_are_quarantined(name: str) -> None:
    """Rows stored before the table's checks (or around them) still never reach a label,
    an e-mail header or a terminal."""
    p = proc()
    e = p.prepare(batch(row(1), row(2, function=name), row(3, model=name)))
    assert [(i, why) for i, why in e.quarantine] == [
        (2, "unprocessable row: " + UNSAFE_LABELS), (3, "unprocessable row: " + UNSAFE_LABELS)]
    p.commit(e)
    assert p.totals.success.sum() == 1 and p.index.keys == [("t", "f", "m", "control")]
