"""The exactly-once consumer: reads committed rows after a durable cursor, hands them to
the processor, and writes derived state, quarantine and cursor in one statement."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import numpy as np
import psycopg

from stream_mlops.alerts.performance import AlertChange
from stream_mlops.alerts.store import write_changes
from stream_mlops.costs.price_store import price_book
from stream_mlops.db.connect import connect
from stream_mlops.db.migrations import ensure_current
from stream_mlops.db.queries import q
from stream_mlops.drift.monitor import Evidence
from stream_mlops.drift.store import write_evidence
from stream_mlops.errors import CursorConflict, SchemaError
from stream_mlops.experiments.monitor import ArmRows
from stream_mlops.experiments.store import write_results
from stream_mlops.pipeline.processor import (
    CONFIDENCE_BOUNDS,
    LATENCY_BOUNDS,
    TOKEN_BOUNDS,
    Effects,
    Processor,
    RawBatch,
)
from stream_mlops.pipeline.status import PipelineStatus
from stream_mlops.pipeline.totals import Delta

log = logging.getLogger(__name__)

KEY_COLUMNS = ("tenant_id", "function_name", "model", "variant")
NO_COSTS: dict[str, list[Any]] = {k: [] for k in (
    "c_tenant", "c_function", "c_model", "c_hour", "c_requests", "c_prompt", "c_completion",
    "c_cached", "c_cost")}
# series_totals column -> Delta attribute (cost and last_event_at need care of their own);
# the parameters of persist_batch are named like the columns.
SERIES_COLUMNS = {
    "success_count": "success", "error_count": "error",
    "latency_sum_seconds": "latency_sum_seconds", "latency_buckets": "latency_buckets",
    "prompt_tokens": "prompt_tokens", "completion_tokens": "completion_tokens",
    "cached_tokens": "cached_tokens", "input_token_buckets": "input_token_buckets",
    "output_token_buckets": "output_token_buckets", "unpriced_count": "unpriced",
    "confidence_count": "confidence_count", "confidence_sum": "confidence_sum",
    "confidence_buckets": "confidence_buckets",
}

# Right after a bulk load the statistics are stale and the planner may pick a bitmap scan
# plus a sort of every pending row for a LIMITed cursor read: read the (xid, id) index in
# order instead, so a batch costs the same however far behind the consumer is.
CURSOR_SCAN_ONLY = "-c enable_bitmapscan=off -c enable_seqscan=off"
Conn = psycopg.Connection[tuple[Any, ...]]


class Consumer:
    def __init__(
        self,
        url: str,
        processor: Processor,
        status: PipelineStatus,
        *,
        consumer: str = "default",
        batch_size: int = 20000,
        connect_timeout: float = 5.0,
        notify: bool = False,
    ) -> None:
        self.url = url
        self.processor = processor
        self.status = status
        self.consumer = consumer
        self.batch_size = batch_size
        self.connect_timeout = connect_timeout
        self.conn: Conn | None = None
        self.cursor: tuple[str, int] = ("0", 0)
        self.state_version = 0  # bumped by re-costing: our totals are then stale
        self.notify = notify  # queue e-mails for alert changes
        self._thresholds_loaded_at = 0.0
        self._experiments_synced_at = 0.0
        # Drift detection runs on a worker thread in the service (run_drift), off the
        # path from COMMIT to /metrics; its results come back here to be written. Without
        # the worker (tests, tools) measure() runs it inline.
        self.background_drift = False
        self.drift_lock = threading.Lock()
        self.drift_results: queue.SimpleQueue[tuple[list[Evidence], list[AlertChange]]] = (
            queue.SimpleQueue())

    # -- lifecycle --------------------------------------------------------------------
    def open(self) -> bool:
        """Connect, check the schema, take the consumer lock and load the durable state.

        Returns False while another processor holds the lock (this one is a standby).
        """
        self.close()
        conn = connect(self.url, timeout=self.connect_timeout,
                       application_name=f"stream-mlops consumer {self.consumer}",
                       options=CURSOR_SCAN_ONLY)
        self.conn = conn
        conn.autocommit = True
        ensure_current(conn)
        row = conn.execute(q("try_lock"), {"consumer": self.consumer}).fetchone()
        if not row or not row[0]:
            self.status.active = False
            return False
        self._load(conn)
        self.status.active = True
        self.status.db_ok_at = time.time()
        return True

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # already broken: nothing to release
                log.debug("close failed", exc_info=True)
            self.conn = None
        self.status.active = False

    def _load(self, conn: Conn) -> None:
        with conn.transaction():
            sysid = _one(conn, q("system_identifier"))
            conn.execute(q("create_checkpoint"),
                         {"consumer": self.consumer, "system_identifier": sysid})
            cp = conn.execute(q("get_checkpoint"), {"consumer": self.consumer}).fetchone()
            assert cp is not None
            if cp[0] != sysid:
                raise SchemaError(
                    f"cursor '{self.consumer}' was recorded on Postgres cluster {cp[0]} but this "
                    f"is cluster {sysid} (restored from a dump?): transaction ids are not "
                    "comparable across clusters; run `stream-mlops reset-cursor --after-restore`"
                )
            self.cursor = (cp[1], int(cp[2]))
            version = int(cp[7])
            rows = conn.execute(q("load_series"), {"consumer": self.consumer}).fetchall()
        keys = [(r[0], r[1], r[2], r[3]) for r in rows]
        # Built off to the side and swapped in whole: a connection cut half-way through
        # leaves /metrics and the drift worker on the previous state, not half of this one.
        staged = self.processor.loaded(keys, _delta_from_rows(rows))
        self._load_monitors(conn, staged)
        with self.status.lock, self.drift_lock:
            self.processor.adopt(staged)
            # Results the worker computed from the previous state: a drift alert fired
            # there is unknown to the loaded state, which could then never resolve it.
            while not self.drift_results.empty():
                self.drift_results.get()
            self.state_version = version
            self.status.events_total = int(cp[3])
            self.status.quarantined_total = int(cp[4])
            self.status.last_checkpoint_at = float(cp[5])
        log.info("state loaded", extra={"consumer": self.consumer, "series": len(keys),
                                        "events_total": self.status.events_total})

    def _load_monitors(self, conn: Conn, p: Processor) -> None:
        """Alert windows from the rows consumed within the window, open episodes and
        thresholds from their tables: a restart neither forgets nor re-pages."""
        alerts = p.alerts
        xid, last_id = self.cursor
        row = conn.execute(q("recent_consumed"), {"seconds": alerts.window_seconds,
                                                 "xid": xid, "id": last_id}).fetchone()
        thresholds = conn.execute(q("alert_thresholds")).fetchall()
        alerts.set_overrides(thresholds)
        p.costs.set_overrides(thresholds)
        self._thresholds_loaded_at = time.time()
        self._load_costs(conn, p)
        self.load_prices(conn, p)
        p.drift.restore_open(
            [f"{r[0]}\x1f{r[1]}"
             for r in conn.execute(q("open_alerts"), {"type": "drift"}).fetchall()],
            time.time())
        p.drift.set_controls(conn.execute(q("drift_references")).fetchall())
        self._warm_drift(conn, p)
        p.experiments.restore_open(
            f"{r[0]}\x1f{r[1]}"
            for r in conn.execute(q("open_alerts"), {"type": "experiment"}).fetchall())
        self.sync_experiments(conn, p)
        if row is not None and row[0]:
            keys, created, latency, err, conf = row
            n = len(keys)
            p.replay(RawBatch(
                xid=np.zeros(n, np.int64), id=np.zeros(n, np.int64), key=keys,
                created_at=np.array(created, np.float64),
                latency_ms=np.array(latency, np.float64),
                prompt_tokens=np.zeros(n, np.int64), completion_tokens=np.zeros(n, np.int64),
                cached_tokens=np.zeros(n, np.int64), cost_pico=np.zeros(n, np.int64),
                confidence=np.array(conf, np.float64), is_error=np.array(err, np.bool_)))
        alerts.load_open(conn.execute(q("open_alerts"), {"type": "performance"}).fetchall())
        p.costs.restore_open(
            (f"{r[0]}\x1f{r[1]}"
             for r in conn.execute(q("open_alerts"), {"type": "cost"}).fetchall()),
            time.time())

    def _load_costs(self, conn: Conn, p: Processor) -> None:
        """Cost windows from the hourly roll-ups and the last hour's rows."""
        costs = p.costs
        # Hourly roll-ups are written with the cursor, so they are exactly what was consumed.
        hours = conn.execute(q("recent_hourly_costs")).fetchall()
        if hours:
            costs.load(np.array([costs.group_of(r[0], r[1], r[2]) for r in hours]),
                       np.array([r[3] for r in hours], np.int64),
                       np.array([int(r[4]) for r in hours], np.int64),
                       np.array([r[5] for r in hours], np.int64), minutes=False)
        xid, last_id = self.cursor
        minutes = conn.execute(q("recent_minute_costs"), {"xid": xid, "id": last_id}).fetchall()
        if minutes:
            series = np.array([p.series_index(r[0]) for r in minutes], np.int64)
            costs.observe_keys(p.totals.keys)
            costs.load(costs.series_group(series),
                       np.array([r[1] for r in minutes], np.int64),
                       np.array([int(r[2]) for r in minutes], np.int64),
                       np.array([r[3] for r in minutes], np.int64), minutes=True)

    DRIFT_WARM_ROWS = 20_000

    def _warm_drift(self, conn: Conn, p: Processor) -> None:
        """The drift detectors learn their references from the last consumed rows, so a
        restart does not leave them blind until a thousand new requests per function."""
        xid, last_id = self.cursor
        start = conn.execute(q("recent_consumed_start"), {
            "xid": xid, "id": last_id, "limit": self.DRIFT_WARM_ROWS}).fetchone()
        if start is None or start[2] == 0:
            return
        row = conn.execute(q("fetch_batch"), {"xid": start[0], "id": start[1],
                                              "limit": start[2]}, binary=True).fetchone()
        if row is None or row[0] == 0:
            return
        p.replay_drift(_raw_batch(row))

    EXPERIMENTS_EVERY_SECONDS = 5.0  # result writes and new experiments

    def sync_experiments(self, conn: Conn, p: Processor) -> None:
        """Follow the running experiments; a newly followed one resumes from its stored
        state and replays its rows consumed since (exactly once, see experiment_tracking)."""
        tracker = p.experiments
        new = tracker.sync(conn.execute(q("live_experiments")).fetchall())
        for why in tracker.refused:
            self.status.monitor_errors_total += 1
            log.error(why)
        xid, last_id = self.cursor
        for e in new:
            if (int(e.cursor[0]), e.cursor[1]) > (int(xid), last_id):
                e.reset()  # a state from a later cursor (a restored database): rebuild
            start = e.cursor
            rows = conn.execute(q("experiment_rows"), {
                "id": e.id, "from_xid": start[0], "from_id": start[1], "xid": xid,
                "last_id": last_id}).fetchall()
            if rows:
                variant, latency, err, conf, cost = zip(*rows, strict=True)
                e.observe(list(variant), ArmRows(
                    np.array(latency, np.float64), np.array(err, np.bool_),
                    np.array(conf, np.float64), np.array(cost, np.int64)))
            log.info("experiment followed", extra={"experiment": e.name, "replayed": len(rows)})
        self._experiments_synced_at = time.time()

    def run_drift(self) -> tuple[list[Evidence], list[AlertChange]]:
        """Feed the buffered rows to the drift detectors and test their candidates."""
        with self.drift_lock:
            return self.processor.drift_tick()

    def write_experiments(self, conn: Conn) -> None:
        writes, changes = self.processor.experiments.evaluate(self.cursor)
        for w in writes:
            write_results(conn, w.id, w.results, w.decision, w.conclude)
        self.write_alerts(changes)

    def load_prices(self, conn: Conn, p: Processor) -> None:
        """The price table, for checking the costs callers send."""
        p.costs.prices = price_book(conn)

    def write_alerts(self, changes: list[AlertChange]) -> None:
        if changes and self.conn is not None:
            queued = write_changes(self.conn, changes, notify=self.notify)
            for c in changes:
                log.info("alert %s", c.action, extra={
                    "tenant": c.tenant_id, "function": c.function_name, "rule": c.rule,
                    "severity": c.severity, "value": round(c.value, 4), "notify": c.notify})
            self.status.alert_messages_queued += queued

    # -- work -------------------------------------------------------------------------
    def step(self) -> int:
        """Process one batch; returns the number of rows consumed (0: caught up)."""
        conn = self.conn
        assert conn is not None, "open() first"
        t0 = time.perf_counter()
        xid, last_id = self.cursor
        # Autocommit: the read is one statement, and so is everything the batch writes.
        row = conn.execute(
            q("fetch_batch"), {"xid": xid, "id": last_id, "limit": self.batch_size},
            binary=True,
        ).fetchone()
        if row is None or row[0] == 0:
            self.status.db_ok_at = time.time()
            return 0
        batch = _raw_batch(row)
        # Alert windows and cost rings change in prepare(); /metrics reads them too.
        with self.status.lock:
            effects = self.processor.prepare(batch)
        checkpoint_at = self._persist(conn, effects)
        # Committed: only now does the in-memory state (and /metrics) move.
        with self.status.lock:
            self.processor.commit(effects)
        self.cursor = (str(effects.last_xid), effects.last_id)
        st = self.status
        st.events_total += effects.events
        st.quarantined_total += len(effects.quarantine)
        st.batches_total += 1
        st.last_checkpoint_at = checkpoint_at
        st.db_ok_at = time.time()
        st.last_batch_seconds = time.perf_counter() - t0
        if effects.quarantine:
            log.warning("rows quarantined", extra={
                "count": len(effects.quarantine),
                "first_id": effects.quarantine[0][0], "reason": effects.quarantine[0][1]})
        if len(batch) == self.batch_size and effects.max_created_at:
            # Catching up: the newest row of a full batch tells how far behind we are.
            st.lag_seconds = max(0.0, time.time() - effects.max_created_at)
        # After the batch: alert writes are idempotent, and a crash before them is
        # repaired at start-up (windows are replayed from the consumed rows).
        self.write_alerts(effects.alerts)
        return len(batch)

    def _persist(self, conn: Conn, e: Effects) -> float:
        xid, last_id = self.cursor
        row = conn.execute(q("persist_batch"), {
            "consumer": self.consumer, "old_xid": xid, "old_id": last_id,
            "version": self.state_version,
            "new_xid": str(e.last_xid), "new_id": e.last_id,
            "events": e.events, "quarantined": len(e.quarantine),
            **self._series_params(e.persisted),
            "quarantine_ids": [i for i, _ in e.quarantine],
            "quarantine_reasons": [r for _, r in e.quarantine],
            **(e.hourly_costs or NO_COSTS),
        }).fetchone()
        if row is None:
            raise CursorConflict(
                f"cursor '{self.consumer}' was moved by another process, or its totals were "
                "re-costed (`stream-mlops prices recompute`); reloading state")
        return float(row[0])

    def _series_params(self, p: Delta | None) -> dict[str, Any]:
        """Absolute totals of the touched series, one array literal per column."""
        if p is None:
            return {name: "{}" for name in (*KEY_COLUMNS, *SERIES_COLUMNS,
                                            "cost_pico_usd", "last_event_at")} | \
                {"nl": 1, "nt": 1, "nc": 1}
        keys = [self.processor.totals.keys[i] for i in p.series.tolist()]
        params: dict[str, Any] = dict(zip(KEY_COLUMNS, (list(c) for c in zip(*keys, strict=True)),
                                          strict=True))
        params |= {name: _array(getattr(p, attr)) for name, attr in SERIES_COLUMNS.items()}
        params["cost_pico_usd"] = _array(p.cost_pico)
        params["last_event_at"] = _array(np.where(np.isfinite(p.last_event_at),
                                                  p.last_event_at, 0.0))
        params |= {"nl": p.latency_buckets.shape[1], "nt": p.input_token_buckets.shape[1],
                   "nc": p.confidence_buckets.shape[1]}
        return params

    def measure(self) -> None:
        """Refresh lag and horizon age (cheap index probes; run when caught up)."""
        conn = self.conn
        assert conn is not None
        with conn.transaction():
            xid, last_id = self.cursor
            pending = conn.execute(q("oldest_pending"), {"xid": xid, "id": last_id}).fetchone()
            horizon = _one(conn, q("horizon_age"))
            now = _one(conn, "SELECT date_part('epoch', now())")
        self.status.lag_seconds = max(0.0, float(now) - float(pending[0])) if pending else 0.0
        self.status.horizon_age_seconds = float(horizon)
        self.status.db_ok_at = time.time()
        if time.time() - self._thresholds_loaded_at > 30:
            thresholds = conn.execute(q("alert_thresholds")).fetchall()
            self.processor.alerts.set_overrides(thresholds)
            self.processor.costs.set_overrides(thresholds)
            self.processor.drift.set_controls(conn.execute(q("drift_references")).fetchall())
            self.load_prices(conn, self.processor)
            self._thresholds_loaded_at = time.time()
        try:
            with self.status.lock:
                changes = self.processor.tick()
        except Exception:  # a bug in a rule must not stop consuming (nor crash-loop)
            changes = []
            self.status.monitor_errors_total += 1
            log.exception("alert evaluation failed; consuming goes on")
        self.write_alerts(changes)
        # Drift and experiments are monitors on top of the pipeline: a bug in one of them
        # is logged (and counted) but must never stop requests from being consumed.
        results = []
        if self.background_drift:
            while not self.drift_results.empty():
                results.append(self.drift_results.get())
        else:
            try:
                results.append(self.run_drift())
            except Exception:
                self.status.monitor_errors_total += 1
                log.exception("drift evaluation failed; consuming goes on")
        for evidence, drift_changes in results:
            if evidence:
                write_evidence(conn, evidence)
            self.write_alerts(drift_changes)
        if time.time() - self._experiments_synced_at >= self.EXPERIMENTS_EVERY_SECONDS:
            try:
                with self.status.lock:
                    self.sync_experiments(conn, self.processor)
                self.write_experiments(conn)
            except psycopg.Error:
                raise
            except Exception:
                self._experiments_synced_at = time.time()
                self.status.monitor_errors_total += 1
                log.exception("experiment evaluation failed; consuming goes on")


def reset_after_restore(conn: Conn, consumer: str) -> tuple[str, str] | None:
    """Make a cursor recorded on another cluster valid here (see rewrite_restored_xids).

    Returns (old, new) system identifiers, or None when the cursor already matches.
    Other consumers' cursors on the same table are not rewritten: reset them the same way.
    """
    with conn.transaction():
        conn.execute("LOCK TABLE mlops.model_performance IN SHARE ROW EXCLUSIVE MODE")
        sysid = _one(conn, q("system_identifier"))
        cp = conn.execute(q("get_checkpoint"), {"consumer": consumer}).fetchone()
        if cp is None or cp[0] == sysid:
            return None
        conn.execute(q("rewrite_restored_xids"),
                     {"xid": cp[1], "id": cp[2], "id_horizon": cp[6]})
        conn.execute(q("reset_checkpoint_after_restore"),
                     {"consumer": consumer, "system_identifier": sysid})
        return str(cp[0]), str(sysid)


def _raw_batch(row: tuple[Any, ...]) -> RawBatch:
    (_, xid, ids, key, created, latency, prompt, completion, cached, cost, conf, err,
     written, caller, experiment, query_length, error_type) = row
    return RawBatch(
        xid=np.array(xid, np.int64), id=np.array(ids, np.int64), key=key,
        created_at=np.array(created, np.float64), latency_ms=np.array(latency, np.float64),
        prompt_tokens=np.array(prompt, np.int64), completion_tokens=np.array(completion, np.int64),
        cached_tokens=np.array(cached, np.int64), cost_pico=np.array(cost, np.int64),
        confidence=np.array(conf, np.float64), is_error=np.array(err, np.bool_),
        cache_write_tokens=np.array(written, np.int64), caller_cost=np.array(caller, np.bool_),
        experiment_id=list(experiment), query_length=np.array(query_length, np.float64),
        error_type=list(error_type))


def _array(values: np.ndarray[Any, Any] | list[int]) -> str:
    """A flat Postgres array literal: much cheaper than adapting long lists element by
    element, and exact (Python's repr of a float round-trips)."""
    flat = values.ravel().tolist() if isinstance(values, np.ndarray) else values
    return "{" + ",".join(map(str, flat)) + "}"


def _one(conn: Conn, sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


def _delta_from_rows(rows: list[tuple[Any, ...]]) -> Delta:
    """Persisted series rows -> absolute totals, series numbered 0..n-1 in row order."""
    n = len(rows)

    def ints(i: int) -> np.ndarray[Any, np.dtype[np.int64]]:
        return np.array([r[i] for r in rows], dtype=np.int64).reshape(n)

    def floats(i: int) -> np.ndarray[Any, np.dtype[np.float64]]:
        return np.array([r[i] for r in rows], dtype=np.float64).reshape(n)

    def matrix(i: int, width: int) -> np.ndarray[Any, np.dtype[np.int64]]:
        return np.array([r[i] for r in rows], dtype=np.int64).reshape(n, width)

    nl, nt, nc = len(LATENCY_BOUNDS) + 1, len(TOKEN_BOUNDS) + 1, len(CONFIDENCE_BOUNDS) + 1
    return Delta(
        series=np.arange(n, dtype=np.int64),
        success=ints(4), error=ints(5), latency_sum_seconds=floats(6),
        latency_buckets=matrix(7, nl), prompt_tokens=ints(8), completion_tokens=ints(9),
        cached_tokens=ints(10), input_token_buckets=matrix(11, nt),
        output_token_buckets=matrix(12, nt), cost_pico=[int(r[13]) for r in rows],
        unpriced=ints(14), confidence_count=ints(15), confidence_sum=floats(16),
        confidence_buckets=matrix(17, nc), last_event_at=floats(18),
    )
