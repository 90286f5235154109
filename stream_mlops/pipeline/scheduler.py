"""Named periodic jobs and supervised threads.

Jobs on the consumer's thread (lag probe, configuration reload, alert rules, experiment
sync) run between batches when they are due. A job that raises is logged with its
traceback, counted, and retried with backoff while the rest goes on; a lost database
connection is not its failure and goes up to the loop, which reconnects.

Background jobs (drift) compute on a worker thread of their own, which owns its lock and
its result queue; the consumer applies the results on its thread. Threads (the workers,
the listener, the e-mail notifier) are watched: one that dies is logged, counted and
started again with backoff.

Every job's health is exported (``mlops_job_*``) and ``/readyz`` fails while a job is
failing, a thread is down, or one restarted too often lately.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from stream_mlops.backoff import Backoff
from stream_mlops.core.alerts import AlertChange
from stream_mlops.core.monitor import BackgroundJob, Job, Store
from stream_mlops.pipeline.repository import CONNECTION_ERRORS

log = logging.getLogger(__name__)
RESTART_WINDOW_SECONDS = 600.0
MAX_RESTARTS_IN_WINDOW = 3


@dataclass
class JobHealth:
    """How one job or thread has been doing (read by /metrics and /readyz)."""

    name: str
    runs_total: int = 0
    failures_total: int = 0
    restarts_total: int = 0
    failing_since: float | None = None  # unix time of the first failure in a row
    down: bool = False  # a thread that died and is not running yet
    last_error: str = ""
    last_success_at: float = 0.0
    recent_restarts: deque[float] = field(default_factory=lambda: deque(maxlen=16))

    def succeeded(self, now: float) -> None:
        self.runs_total += 1
        self.failing_since = None
        self.last_error = ""
        self.last_success_at = now

    def failed(self, now: float, error: BaseException) -> None:
        self.runs_total += 1
        self.failures_total += 1
        if self.failing_since is None:
            self.failing_since = now
        self.last_error = f"{type(error).__name__}: {error}"[:300]

    def problems(self, now: float) -> list[str]:
        """Why this job makes the processor not ready (empty: it does not)."""
        out = []
        if self.down:
            out.append(f"{self.name} is down ({self.last_error or 'thread ended'}); "
                       "restarting")
        elif self.failing_since is not None:
            out.append(f"job {self.name} failing for {now - self.failing_since:.0f} s: "
                       f"{self.last_error}")
        recent = [t for t in self.recent_restarts if now - t < RESTART_WINDOW_SECONDS]
        if len(recent) > MAX_RESTARTS_IN_WINDOW:
            out.append(f"{self.name} restarted {len(recent)} times in "
                       f"{RESTART_WINDOW_SECONDS / 60:.0f} min")
        return out


class Worker(threading.Thread):
    """Runs one background job every ``every_seconds`` on its own thread.

    ``current()`` gives the job of the processor's current state and its generation; a
    result carries the generation it was computed in, so the consumer drops results of a
    state it has since replaced. The consumer takes :attr:`lock` to replace the state.
    """

    def __init__(self, name: str, every_seconds: float,
                 current: Callable[[], tuple[int, BackgroundJob | None]],
                 stop: threading.Event, health: JobHealth) -> None:
        super().__init__(name=f"stream-mlops-{name}", daemon=True)
        self.job_name, self.every_seconds = name, every_seconds
        self.current, self.stop, self.health = current, stop, health
        self.lock = threading.Lock()
        self.results: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()

    def run(self) -> None:
        backoff = Backoff(base=1.0, cap=300.0)
        wait = self.every_seconds
        while not self.stop.wait(wait):
            wait = self.every_seconds
            with self.lock:
                generation, job = self.current()
                if job is None:
                    continue
                try:
                    result = job.compute(time.time())
                except Exception as exc:  # logged, counted and retried: never fatal
                    self.health.failed(time.time(), exc)
                    log.exception("job failed; retrying", extra={"job": self.job_name})
                    wait = max(wait, backoff.next())
                    continue
            backoff.reset()
            self.health.succeeded(time.time())
            self.results.put((generation, result))


class Scheduler:
    """Runs due jobs and watches threads (call :meth:`supervise` from the main loop)."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()
        self.health: dict[str, JobHealth] = {}
        self._next_at: dict[str, float] = {}
        self._backoff: dict[str, Backoff] = {}
        self._threads: dict[str, tuple[Callable[[], threading.Thread], threading.Thread]] = {}
        self._restart_at: dict[str, float] = {}
        self.workers: dict[str, Worker] = {}

    def _health(self, name: str) -> JobHealth:
        h = self.health.get(name)
        if h is None:
            h = self.health[name] = JobHealth(name)
        return h

    # -- jobs on the consumer's thread ------------------------------------------------
    def run_due(self, jobs: Sequence[Job], store: Store,
                apply: Callable[[list[AlertChange]], None], *, force: bool = False,
                yield_to: Callable[[], bool] | None = None) -> None:
        """Run every job that is due (``force``: every job now). With ``yield_to``, stop
        after any job once it says rows are waiting: the rest stay due for the next call,
        which starts with them (every call runs at least one)."""
        now = time.monotonic()
        ran = False
        for job in sorted(jobs, key=lambda j: self._next_at.get(j.name, 0.0)):
            if not force and now < self._next_at.get(job.name, 0.0):
                continue
            if ran and yield_to is not None and yield_to():
                return
            ran = True
            health = self._health(job.name)
            backoff = self._backoff.setdefault(job.name, Backoff(base=1.0, cap=300.0))
            try:
                changes = job.run(store)
            except CONNECTION_ERRORS:
                raise
            except Exception as exc:  # a bug in one job must not stop consuming
                health.failed(time.time(), exc)
                log.exception("job failed; retrying", extra={"job": job.name})
                self._next_at[job.name] = now + max(job.every_seconds, backoff.next())
                continue
            backoff.reset()
            health.succeeded(time.time())
            self._next_at[job.name] = now + job.every_seconds
            apply(changes)

    # -- background jobs --------------------------------------------------------------
    def start_worker(self, name: str, every_seconds: float,
                     current: Callable[[], tuple[int, BackgroundJob | None]]) -> Worker:
        def make() -> threading.Thread:
            w = Worker(name, every_seconds, current, self.stop, self._health(name))
            self.workers[name] = w
            return w

        self.watch(name, make)
        return self.workers[name]

    # -- threads ----------------------------------------------------------------------
    def watch(self, name: str, make: Callable[[], threading.Thread]) -> None:
        """Start a thread now, and again (with backoff) whenever it dies."""
        thread = make()
        self._threads[name] = (make, thread)
        health = self._health(name)
        health.down, health.failing_since = False, None
        thread.start()

    def supervise(self) -> None:
        """Restart watched threads that died (call it often; it costs a few checks)."""
        if self.stop.is_set():
            return
        now = time.monotonic()
        for name, (make, thread) in list(self._threads.items()):
            if thread.is_alive():
                continue
            health = self._health(name)
            if not health.down:
                health.down = True
                health.failed(time.time(), RuntimeError("thread ended"))
                log.error("thread died; restarting", extra={"job": name})
                backoff = self._backoff.setdefault(f"thread:{name}",
                                                   Backoff(base=1.0, cap=60.0))
                self._restart_at[name] = now + backoff.next()
            if now >= self._restart_at.get(name, 0.0):
                health.restarts_total += 1
                health.recent_restarts.append(time.time())
                self.watch(name, make)
                log.warning("thread restarted", extra={"job": name,
                                                        "restarts": health.restarts_total})

    def join(self, timeout: float) -> None:
        for _, thread in self._threads.values():
            thread.join(timeout=timeout)

    def problems(self, now: float) -> list[str]:
        return [p for h in self.health.values() for p in h.problems(now)]
