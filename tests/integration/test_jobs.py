"""Supervised jobs in a real service: a job that raises or a thread that dies is logged,
counted on /metrics, shows in /readyz, and is retried or restarted with backoff."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from stream_mlops.backoff import Backoff
from stream_mlops.dev.embedded import free_port
from stream_mlops.drift.monitor import DriftMonitor
from stream_mlops.pipeline import scheduler
from stream_mlops.pipeline.scheduler import Worker
from stream_mlops.pipeline.service import Service
from stream_mlops.settings import load_settings
from tests.helpers import http_status, metric_sum, scrape, wait_for


@contextmanager
def service(url: str) -> Iterator[int]:
    port = free_port()
    s = Service(load_settings(database_url=url, metrics_port=port, poll_interval_seconds=0.2))
    t = threading.Thread(target=s.run, name="service under test")
    t.start()
    try:
        wait_for(lambda: http_status(port, "/healthz")[0] == 200, 30, "the service")
        yield port
    finally:
        s.request_stop()
        t.join(30)
        assert not t.is_alive()


def job(port: int, name: str, metric: str) -> float:
    return metric_sum(scrape(port), metric, job=name)


def test_a_failing_job_is_counted_shown_in_readyz_and_recovers(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DriftMonitor, "EVERY_SECONDS", 0.2)
    monkeypatch.setattr(scheduler, "Backoff", lambda base, cap: Backoff(0.05, 0.2))
    broken = threading.Event()
    broken.set()
    original = DriftMonitor.run

    def run(self: DriftMonitor, now: float) -> Any:
        if broken.is_set():
            raise RuntimeError("a bug in a detector")
        return original(self, now)

    monkeypatch.setattr(DriftMonitor, "run", run)
    with service(db_url) as port:
        wait_for(lambda: job(port, "drift", "mlops_job_failures_total") >= 2, 30, "failures")
        assert job(port, "drift", "mlops_job_up") == 0
        status, body = http_status(port, "/readyz")
        assert status == 503 and "job drift failing for" in body
        assert "RuntimeError: a bug in a detector" in body
        assert job(port, "rules", "mlops_job_up") == 1  # the others go on
        broken.clear()
        wait_for(lambda: http_status(port, "/readyz")[0] == 200, 30, "recovery")
        assert job(port, "drift", "mlops_job_up") == 1
        assert job(port, "drift", "mlops_job_last_success_timestamp_seconds") > 0


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_thread_that_dies_is_restarted_and_too_many_restarts_fail_readyz(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler, "Backoff", lambda base, cap: Backoff(0.05, 0.2))

    def crash(self: Worker) -> None:
        raise RuntimeError("the worker thread crashed")

    monkeypatch.setattr(Worker, "run", crash)
    with service(db_url) as port:
        wait_for(lambda: job(port, "drift", "mlops_job_restarts_total") >= 4, 30, "restarts")
        status, body = http_status(port, "/readyz")
        assert status == 503 and "drift restarted" in body and "times in 10 min" in body
        # The consumer itself goes on: rows still flow, the rules still run.
        assert job(port, "rules", "mlops_job_up") == 1
