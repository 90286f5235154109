"""The feature monitor in the real pipeline against a real PostgreSQL: staleness and drift
alerts fire and resolve through the alert lifecycle (type 'feature', which the drift monitor
leaves alone), the cursor and statistics survive a restart, and a running processor exports
the mlops_feature_* metrics."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg

from stream_mlops.features import FeatureStore
from stream_mlops.features.monitor import FeatureMonitor
from stream_mlops.pipeline.consumer import Consumer
from tests.helpers import ProcessorProcess, metric_sum, scrape, wait_for
from tests.integration.test_consumer import make_consumer


def alerts(url: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(url) as conn:
        return [(f, t, s) for f, t, s in conn.execute(
            "SELECT fingerprint, alert_type, state FROM mlops.alerts ORDER BY id")]


def features_of(c: Consumer) -> FeatureMonitor:
    return c.processor.monitor(FeatureMonitor)


def test_staleness_fires_and_resolves_through_the_alert_lifecycle(db_url: str) -> None:
    fs = FeatureStore(db_url)
    fs.define("spend", "user", "float")
    c = make_consumer(db_url)
    m = features_of(c)
    m.min_stale_seconds, m.stale_factor = 0.6, 2.0
    for i in range(5):
        fs.put("user", f"u{i}", {"spend": 1.0})
        c.run_jobs("features")
        time.sleep(0.1)
    assert m.stats[("default", "user", "spend")].writes_total == 5
    c.run_jobs("rules")
    assert alerts(db_url) == []
    time.sleep(0.8)
    c.run_jobs("rules")
    assert alerts(db_url) == [("feature:stale:user:spend", "feature", "firing")]
    fs.put("user", "u9", {"spend": 2.0})
    c.run_jobs("features")
    c.run_jobs("rules")
    assert alerts(db_url) == [("feature:stale:user:spend", "feature", "resolved")]
    c.close()
    fs.close()


def test_drift_fires_once_restarts_cleanly_and_resolves(db_url: str) -> None:
    rng = np.random.default_rng(15)
    fs = FeatureStore(db_url)
    fs.define("spend", "user", "float")
    t0 = datetime.now(UTC) - timedelta(hours=1)

    def put(mean: float, n: int, start: int) -> None:
        fs.put_many("user", [(f"u{start + i}", {"spend": float(v)}, t0)
                             for i, v in enumerate(rng.normal(mean, 1.0, n))])

    c = make_consumer(db_url)
    put(10, 2_500, 0)
    c.run_jobs("features")
    put(13, 1_000, 10_000)
    c.run_jobs("features")
    assert alerts(db_url) == [("feature:drift:user:spend", "feature", "firing")]
    assert features_of(c).stats[("default", "user", "spend")].writes_total == 3_500

    c.close()
    # A new processor: the cursor and counts come back, the open alert is the feature
    # monitor's (the drift monitor, which restores type 'drift', reports nothing).
    c2 = make_consumer(db_url)
    m2 = features_of(c2)
    assert c2.status.monitor_errors_total == 0
    assert m2.stats[("default", "user", "spend")].writes_total == 3_500
    c2.run_jobs("features")
    assert m2.stats[("default", "user", "spend")].writes_total == 3_500  # not re-read
    m2.quiet_seconds = 0.2
    time.sleep(0.3)
    c2.run_jobs("rules")
    assert alerts(db_url) == [("feature:drift:user:spend", "feature", "resolved")]
    c2.close()
    fs.close()


def test_a_running_processor_is_woken_by_writes_and_exports_feature_metrics(
        db_url: str) -> None:
    fs = FeatureStore(db_url)
    fs.define("spend", "user", "float", ttl=timedelta(minutes=5))
    proc = ProcessorProcess(db_url).start()
    try:
        proc.wait_ready()
        now = datetime.now(UTC)
        fs.put_many("user", [("u1", {"spend": 1.0}, now - timedelta(seconds=30)),
                             ("u2", {"spend": 2.0}, now - timedelta(seconds=20))])
        fs.get_online("user", ["u1", "u3"], ["spend"])
        wait_for(lambda: metric_sum(scrape(proc.port), "mlops_feature_writes_total",
                                    feature="spend") == 2, what="feature writes exported")
        wait_for(lambda: metric_sum(scrape(proc.port), "mlops_feature_online_missing_total",
                                    feature="spend") == 1, what="online misses exported")
        samples = scrape(proc.port)
        assert metric_sum(samples, "mlops_feature_online_lookups_total", feature="spend") == 2
        fresh = metric_sum(samples, "mlops_feature_freshness_seconds", feature="spend")
        assert 20 <= fresh < 60
    finally:
        proc.stop()
        fs.close()
