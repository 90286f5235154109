"""The exactly-once cursor loop: reads committed rows after a durable cursor, hands them to
the processor, persists what they change with the cursor, and runs the periodic jobs.

The SQL lives in :mod:`stream_mlops.pipeline.repository`; the state machines in
:mod:`stream_mlops.pipeline.processor` and the monitors.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from stream_mlops.alerts.store import write_changes
from stream_mlops.core.alerts import AlertChange
from stream_mlops.core.batch import RawBatch
from stream_mlops.core.monitor import BackgroundJob, Cursor, DatabaseJob, Job, Store
from stream_mlops.db.connect import close_quietly, connect
from stream_mlops.db.migrations import ensure_current
from stream_mlops.pipeline.heap import RELEASE_EVERY_SECONDS, release_free_memory
from stream_mlops.pipeline.prefetch import Prefetcher
from stream_mlops.pipeline.processor import Effects, Processor
from stream_mlops.pipeline.repository import Repository, delta_from_rows
from stream_mlops.pipeline.scheduler import Scheduler
from stream_mlops.pipeline.status import PipelineStatus
from stream_mlops.settings import BATCH_SIZE

log = logging.getLogger(__name__)

# Right after a bulk load the statistics are stale and the planner may pick a bitmap scan
# plus a sort of every pending row for a LIMITed cursor read: read the (xid, id) index in
# order instead, so a batch costs the same however far behind the consumer is.
CURSOR_SCAN_ONLY = "-c enable_bitmapscan=off -c enable_seqscan=off"
# A restore reads by time (the alert window): let the planner use the BRIN index there.
RESTORE_SCANS = ("SET LOCAL enable_bitmapscan = on", "SET LOCAL enable_seqscan = on")
Conn = psycopg.Connection[tuple[Any, ...]]

LAG_EVERY_SECONDS = 1.0  # lag and horizon probes: cheap index probes
CONFIG_EVERY_SECONDS = 30.0  # thresholds, prices, reference decisions
RULES_EVERY_SECONDS = 1.0  # silence resolves alerts too


class Consumer:
    def __init__(
        self,
        url: str,
        processor: Processor,
        status: PipelineStatus,
        *,
        consumer: str = "default",
        batch_size: int = BATCH_SIZE,
        connect_timeout: float = 5.0,
        notify: bool = False,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.url = url
        self.processor = processor
        self.status = status
        self.consumer = consumer
        self.batch_size = batch_size
        self.connect_timeout = connect_timeout
        self.notify = notify  # queue e-mails for alert changes
        self.conn: Conn | None = None
        self.repo: Repository | None = None
        self.state_version = 0  # bumped by re-costing: our totals are then stale
        self.scheduler = scheduler or Scheduler()
        self.prefetch = Prefetcher(functools.partial(
            connect, url, autocommit=True, timeout=connect_timeout, options=CURSOR_SCAN_ONLY,
            application_name=f"stream-mlops reader {consumer}"), consumer)
        # Background jobs run on worker threads when the service starts them
        # (start_workers); without workers (tests, tools) run_jobs() computes them inline.
        self.background = False

    @property
    def cursor(self) -> Cursor:
        return self.repo.cursor if self.repo is not None else Cursor()

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
        self.repo = Repository(conn, self.consumer, valid=self._valid)
        if not self.repo.try_lock():
            self.status.active = False
            return False
        self._load(self.repo)
        self.status.active = True
        self.status.db_ok_at = time.time()
        return True

    def close(self) -> None:
        self.prefetch.close()
        if self.conn is not None:
            close_quietly(self.conn)
            self.conn = None
            self.repo = None
        self.status.active = False

    def _valid(self, rows: RawBatch) -> RawBatch:
        good, _ = self.processor.validate(rows)
        return rows if good.all() else rows.take(good)

    def _load(self, repo: Repository) -> None:
        """The durable state, read in one snapshot, built off to the side and swapped in
        whole: a connection cut half-way leaves /metrics and the background jobs on the
        previous state, never on half of this one."""
        with repo.conn.transaction():
            for setting in RESTORE_SCANS:
                repo.conn.execute(setting)
            cp = repo.checkpoint()
            repo.cursor = cp.cursor
            rows = repo.series()
            staged = self.processor.loaded([r.key for r in rows], delta_from_rows(rows), repo)
        self._report(repo)
        workers = [w.lock for w in self.scheduler.workers.values()]
        with self.status.lock:
            for lock in workers:
                lock.acquire()
            try:
                self.processor.adopt(staged)
            finally:
                for lock in workers:
                    lock.release()
            self.state_version = cp.state_version
            self.status.events_total = cp.events_total
            self.status.quarantined_total = cp.quarantined_total
            self.status.last_checkpoint_at = cp.updated_at
        log.info("state loaded", extra={"consumer": self.consumer, "series": len(rows),
                                        "events_total": self.status.events_total})

    # -- work -------------------------------------------------------------------------
    def step(self) -> int:
        """Process one batch; returns the number of rows consumed (0: caught up)."""
        repo = self.repo
        assert repo is not None, "open() first"
        t0 = time.perf_counter()
        fetched = (self.prefetch.take(repo.cursor, self.batch_size)
                   or repo.fetch(self.batch_size))
        batch = fetched.rows
        if batch is None:
            self.status.db_ok_at = time.time()
            if repo.cursor.window_end is not None:  # an open window with nothing left
                self._close_window(repo)
            return 0
        # A batch shorter than asked for ends its window: the next one opens a new one.
        if len(batch) < self.batch_size:
            cursor = Cursor(fetched.window_end)
        else:
            cursor = Cursor(repo.cursor.frontier, fetched.window_end, str(int(batch.xid[-1])),
                            int(batch.id[-1]))
            # Catching up: the next batch is read while this one is processed.
            self.prefetch.start(cursor, self.batch_size)
        # Monitors' state moves in prepare(); /metrics reads it too.
        with self.status.lock:
            effects = self.processor.prepare(batch)
        checkpoint_at = repo.persist(effects, self.processor.index.keys, self.state_version,
                                     cursor)
        # Committed: only now do the totals (and /metrics) move.
        with self.status.lock:
            self.processor.commit(effects)
        repo.cursor = cursor
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

    def _close_window(self, repo: Repository) -> None:
        """The open window had nothing more: it becomes the frontier (no rows, no events)."""
        assert repo.cursor.window_end is not None
        cursor = Cursor(repo.cursor.window_end)
        empty = Effects(events=0, delta=None, persisted=None)
        self.status.last_checkpoint_at = repo.persist(empty, [], self.state_version, cursor)
        repo.cursor = cursor

    def write_alerts(self, changes: Sequence[AlertChange]) -> None:
        if changes and self.conn is not None:
            queued = write_changes(self.conn, changes, notify=self.notify)
            for c in changes:
                log.info("alert %s", c.action, extra={
                    "tenant": c.tenant_id, "function": c.function_name, "rule": c.rule,
                    "severity": c.severity, "value": round(c.value, 4), "notify": c.notify})
            self.status.alert_messages_queued += queued

    # -- periodic jobs ----------------------------------------------------------------
    def jobs(self) -> list[Job]:
        """The pipeline's own jobs, then the monitors' (background ones excluded; database
        jobs too while workers run them)."""
        monitors = self.processor.jobs()
        return [Job("lag", LAG_EVERY_SECONDS, self._probe_lag),
                Job("config", CONFIG_EVERY_SECONDS, self._configure),
                Job("rules", RULES_EVERY_SECONDS, lambda _: self._rules()),
                Job("heap", RELEASE_EVERY_SECONDS, _release_heap),
                *(j for j in monitors if isinstance(j, Job)),
                *(Job(j.name, j.every_seconds, j.run) for j in monitors
                  if isinstance(j, DatabaseJob) and not self.background)]

    def run_jobs(self, *only: str, force: bool = False,
                 yield_to: Callable[[], bool] | None = None) -> None:
        """Run the jobs that are due (``force``: all of them now; ``only``: these now),
        background ones inline when no worker runs them, then apply what the workers
        computed. ``yield_to``: see :meth:`Scheduler.run_due`."""
        repo = self.repo
        assert repo is not None, "open() first"
        jobs = [j for j in self.jobs() if not only or j.name in only]
        self.scheduler.run_due(jobs, repo, self._apply, force=force or bool(only),
                               yield_to=yield_to)
        self._report(repo)
        if not self.background:
            for job in self._background_jobs():
                if not only or job.name in only:
                    self._apply(job.apply(repo, job.compute(time.time())))
            return
        for name, worker in self.scheduler.workers.items():
            _, current = self._current(name)
            while not worker.results.empty():
                generation, result = worker.results.get()
                # Computed on a state replaced since (a reload): its alerts are unknown to
                # the state now in place, which could then never resolve them.
                if current is not None and generation == self.processor.generation:
                    self._apply(current.apply(repo, result))

    def start_workers(self) -> None:
        """Background jobs on threads of their own (the service)."""
        self.background = True
        for job in self._background_jobs():
            self.scheduler.start_worker(job.name, job.every_seconds,
                                        functools.partial(self._current, job.name, True))

    def _current(self, name: str, active_only: bool = False
                 ) -> tuple[int, BackgroundJob | None]:
        """The background job ``name`` of the state in place, and its generation."""
        if active_only and not self.status.active:
            return self.processor.generation, None
        job = next((j for j in self._background_jobs() if j.name == name), None)
        return self.processor.generation, job

    def _background_jobs(self) -> list[BackgroundJob]:
        jobs = self.processor.jobs()
        return [j for j in jobs if isinstance(j, BackgroundJob)] + [
            BackgroundJob(j.name, j.every_seconds, functools.partial(self._on_own_connection,
                                                                     j.run), _own_result)
            for j in jobs if isinstance(j, DatabaseJob) and self.background]

    def _on_own_connection(self, run: Callable[[Store], list[AlertChange]], now: float
                           ) -> tuple[list[AlertChange], list[str]]:
        """A database job on a connection of its own (each piece of work it isolates is
        a transaction there); its alert changes and problems go to the consumer."""
        with connect(self.url, autocommit=True, timeout=self.connect_timeout,
                     application_name=f"stream-mlops jobs {self.consumer}") as conn:
            repo = Repository(conn, self.consumer, valid=self._valid)
            return run(repo), repo.problems

    def _apply(self, changes: list[AlertChange]) -> None:
        self.write_alerts(changes)

    def _report(self, repo: Repository) -> None:
        """Problems the monitors reported (records they left out): logged and counted."""
        for problem in repo.problems:
            self.status.monitor_errors_total += 1
            log.error(problem)
        repo.problems.clear()

    def _probe_lag(self, store: Store) -> list[AlertChange]:
        assert self.repo is not None
        self.status.lag_seconds, self.status.horizon_age_seconds = self.repo.lag()
        self.status.db_ok_at = time.time()
        return []

    def _configure(self, store: Store) -> list[AlertChange]:
        with self.status.lock:
            self.processor.configure(store)
        return []

    def _rules(self) -> list[AlertChange]:
        with self.status.lock:
            return self.processor.tick()


def _own_result(store: Store, result: tuple[list[AlertChange], list[str]]
                ) -> list[AlertChange]:
    changes, problems = result
    for problem in problems:
        store.report(problem)
    return changes


def _release_heap(_: Store) -> list[AlertChange]:
    release_free_memory()
    return []
