"""Alerting benchmarks (issue: performance alerting). Prints one JSON document.

    .venv/bin/python benchmarks/alerting.py [--runs 3] [--days 1]

1. Time from the start of an error burst (2 % -> 20 %) at 50 requests/s to the alert row
   and to the e-mail, through the real processor, Postgres and an SMTP server.
2. False pages per simulated day of steady traffic at a true 4 % error rate with the 5 %
   threshold, for the processor's rule and, in the same run, for a naive rule that pages
   whenever the windowed point estimate exceeds 5 % (same window, same minimum traffic).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import report, start_server
from benchmarks.pipeline import new_db
from stream_mlops.alerts.rules import AlertThresholds, Lifecycle, Windows, evaluate
from stream_mlops.client import RequestLogger
from stream_mlops.core.alerts import AlertKey
from stream_mlops.dev.embedded import EmbeddedPostgres, free_port
from tests.helpers import ProcessorProcess


class Inbox:
    def __init__(self) -> None:
        self.times: list[float] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.times.append(time.time())
        return "250 OK"


def burst_run(pg: EmbeddedPostgres, seed: int, tmp: Path, warmup: float = 70.0) -> dict[str, float]:
    url = new_db(pg, f"burst_{seed}")
    inbox = Inbox()
    smtp_port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    p = ProcessorProcess(url, log_path=tmp / f"burst_{seed}.log", env={
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port),
        "ALERT_EMAIL": "oncall@example.com"}).start()
    rng = np.random.default_rng(seed)
    logger = RequestLogger(url, flush_interval=0.05, batch_size=10)
    try:
        p.wait_ready()
        start = time.time()
        burst_at = start + warmup  # a full 60 s window of calm traffic first
        sent, first_row = 0, None
        while time.time() < burst_at + 120 and first_row is None:
            due = int((time.time() - start) * 50)
            for _ in range(due - sent):
                rate = 0.20 if time.time() >= burst_at else 0.02
                err = bool(rng.random() < rate)
                logger.log(function_name="summarize", model="gpt-4o-mini",
                           latency_ms=float(rng.lognormal(6.5, 0.4)),
                           status="error" if err else "success",
                           error_type="Timeout" if err else None)
                sent += 1
            with psycopg.connect(url) as conn:
                row = conn.execute("SELECT date_part('epoch', first_seen) FROM mlops.alerts"
                                   " ORDER BY id LIMIT 1").fetchone()
            first_row = float(row[0]) if row else None
            time.sleep(0.05)
        deadline = time.time() + 30
        while not inbox.times and time.time() < deadline:
            time.sleep(0.05)
        if first_row is None or not inbox.times:
            raise RuntimeError("no alert within two minutes of the burst")
        return {"to_alert_row_s": round(first_row - burst_at, 2),
                "to_email_s": round(inbox.times[0] - burst_at, 2)}
    finally:
        logger.close()
        p.stop()
        smtp.stop()


def false_pages(days: float, seed: int, rate_per_s: int = 50,
                true_error_rate: float = 0.04) -> dict[str, Any]:
    """Steady traffic, evaluated every simulated second like the processor does."""
    rng = np.random.default_rng(seed)
    seconds = int(days * 86400)
    th = [AlertThresholds()]
    windows = Windows(60, 5)
    ours, naive = Lifecycle(), 0
    FP = AlertKey("t", "performance:error_rate:f")
    naive_open = False
    fired = 0
    errors = rng.binomial(rate_per_s, true_error_rate, size=seconds)
    group = np.zeros(rate_per_s, np.int64)
    slow = np.zeros(rate_per_s, np.int64)
    conf = np.full(rate_per_s, -1.0)
    for s in range(seconds):
        e = np.zeros(rate_per_s, np.int64)
        e[: errors[s]] = 1
        t = np.full(rate_per_s, float(s))
        windows.add(group, t, errors=e, slow=slow, confidence=conf)
        tot = windows.totals(float(s))
        v = next(x for x in evaluate(tot, [0], th) if x.rule == "error_rate")
        tr = ours.step(FP, v, float(s))
        fired += tr is not None and tr.action == "fire"
        point_breach = tot["n"][0] >= th[0].min_requests and \
            tot["errors"][0] / tot["n"][0] > th[0].error_rate
        if point_breach and not naive_open:
            naive += 1
        naive_open = bool(point_breach)
    return {"simulated_days": days, "requests_per_s": rate_per_s,
            "true_error_rate": true_error_rate, "threshold": 0.05,
            "false_pages_per_day": fired / days, "naive_point_estimate_pages_per_day":
            naive / days}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--days", type=float, default=1.0)
    args = ap.parse_args()
    result: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    t0 = time.time()
    result["false_pages"] = false_pages(args.days, seed=4)
    result["false_pages"]["compute_s"] = round(time.time() - t0, 1)
    pg = start_server()
    tmp = Path(pg.datadir.parent) / "logs"
    tmp.mkdir()
    try:
        runs = [burst_run(pg, seed, tmp) for seed in range(args.runs)]
    finally:
        pg.stop("immediate")
        shutil.rmtree(pg.datadir.parent, ignore_errors=True)
    result["burst_2_to_20_percent_at_50_rps"] = {
        "runs": runs,
        "median_to_alert_row_s": statistics.median(r["to_alert_row_s"] for r in runs),
        "median_to_email_s": statistics.median(r["to_email_s"] for r in runs),
    }
    report("alerting", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
