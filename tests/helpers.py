"""Test helpers: inserting requests, running the processor as a real process, scraping."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from prometheus_client.parser import text_string_to_metric_families

from stream_mlops.dev.embedded import free_port

INSERT = (
    "INSERT INTO mlops.model_performance (tenant_id, function_name, model, variant, latency_ms,"
    " prompt_tokens, completion_tokens, cached_tokens, confidence, status, error_type)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-haiku", "no-such-model")


def request_row(i: int) -> tuple[Any, ...]:
    """A deterministic, varied request (every 17th is an error, some unpriced)."""
    error = i % 17 == 0
    return (
        f"tenant-{i % 3}", f"fn-{i % 4}", MODELS[i % len(MODELS)], ("control", "treatment")[i % 2],
        float(5 + (i * 37) % 4000), 100 + i % 900, 10 + i % 300, (i % 7) * 10,
        None if i % 5 == 0 else (i % 100) / 100, "error" if error else "success",
        "Timeout" if error else None,
    )


def insert_requests(url: str, start: int, count: int, per_tx: int = 1) -> None:
    with psycopg.connect(url) as conn:
        for lo in range(start, start + count, per_tx):
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(INSERT, [request_row(i)
                                         for i in range(lo, min(lo + per_tx, start + count))])


def db_totals(url: str) -> tuple[int, Decimal]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), coalesce(sum(cost_usd), 0) FROM mlops.model_performance").fetchone()
    assert row is not None
    return int(row[0]), Decimal(row[1])


def persisted_totals(url: str, consumer: str = "default") -> tuple[int, Decimal, int]:
    """What the processor committed: requests, exact cost, and its cursor's event count."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(success_count + error_count), 0),"
            " coalesce(sum(cost_pico_usd), 0) / 1e12 FROM mlops.series_totals"
            " WHERE consumer = %s", (consumer,)).fetchone()
        cp = conn.execute("SELECT events_total FROM mlops.consumer_checkpoints"
                          " WHERE consumer = %s", (consumer,)).fetchone()
    assert row is not None
    return int(row[0]), Decimal(row[1]), int(cp[0]) if cp else 0


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples of /metrics by sample name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def metric_sum(samples: dict[str, list[tuple[dict[str, str], float]]], name: str,
               **match: str) -> float:
    return sum(v for labels, v in samples.get(name, [])
               if all(labels.get(k) == want for k, want in match.items()))


def http_status(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def wait_for(cond: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except Exception:  # noqa: S110 (not ready yet: retry until the deadline)
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class ProcessorProcess:
    """``python -m stream_mlops run`` as a real child process."""

    def __init__(self, url: str, *, port: int | None = None, env: dict[str, str] | None = None,
                 args: Sequence[str] = (), log_path: Path | None = None) -> None:
        self.url, self.port = url, port or free_port()
        self.env = {**os.environ, "DATABASE_URL": url, "METRICS_PORT": str(self.port),
                    "POLL_INTERVAL_SECONDS": "0.2", "LOG_FORMAT": "json", **(env or {})}
        self.args = list(args)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ProcessorProcess:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "stream_mlops", "run", *self.args],
                                     env=self.env, stdout=out, stderr=out)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        wait_for(lambda: http_status(self.port, "/readyz")[0] == 200, timeout, "processor ready")

    def events(self) -> float:
        return metric_sum(scrape(self.port), "mlops_processor_events_total")

    def wait_consumed(self, events: int, timeout: float = 30.0) -> None:
        """Wait until the processor has consumed ``events`` rows in all and its alert rules
        have run once more after that: only then does "nothing happened" mean something."""
        wait_for(lambda: self.events() >= events, timeout, f"{events} rows consumed")
        runs = metric_sum(scrape(self.port), "mlops_job_runs_total", job="rules")
        wait_for(lambda: metric_sum(scrape(self.port), "mlops_job_runs_total",
                                    job="rules") > runs, timeout, "a run of the alert rules")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise
        return int(self.proc.returncode)
