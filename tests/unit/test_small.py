"""Settings, health verdicts, backoff, named SQL, log redaction."""

from __future__ import annotations

import json
import logging
import random

import pytest

from stream_mlops import logs
from stream_mlops.backoff import Backoff
from stream_mlops.db.queries import q
from stream_mlops.errors import ConfigError
from stream_mlops.pipeline.health import Thresholds, liveness, readiness
from stream_mlops.pipeline.status import PipelineStatus
from stream_mlops.settings import load_settings


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("METRICS_PORT", "9999")
    s = load_settings(batch_size=10)
    assert (s.metrics_port, s.batch_size, s.metrics_host) == (9999, 10, "127.0.0.1")


URL = "postgresql://u@h/db"


@pytest.mark.parametrize(("env", "message"), [
    ({}, "DATABASE_URL is not set"),
    ({"DATABASE_URL": URL, "METRICS_PORT": "70000"}, "METRICS_PORT='70000' is invalid"),
    ({"DATABASE_URL": URL, "LOG_LEVEL": "loud"}, "LOG_LEVEL='loud' is invalid"),
    ({"DATABASE_URL": URL, "POLL_INTERVAL_SECONDS": "-1"}, "POLL_INTERVAL_SECONDS"),
    ({"DATABASE_URL": "postgresql://u:p%zz@h/db"},
     "DATABASE_URL=<hidden> is invalid: cannot be parsed as a PostgreSQL URL"),
])
def test_bad_settings_give_one_line(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                    message: str) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_database_url_value_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", " ")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "<hidden>" in str(err.value)


def test_readiness_reasons() -> None:
    t = Thresholds(lag_seconds=10, db_silence_seconds=30,
                   heartbeat_seconds=30)
    ok = PipelineStatus(db_ok_at=100, heartbeat_at=100, listening=True, active=True)
    assert readiness(ok, 101, t) == []
    bad = PipelineStatus(db_ok_at=0, heartbeat_at=100, listening=False, active=False,
                         lag_seconds=11, horizon_age_seconds=61, db_down_since=50,
                         last_error="connection to server at 10.0.0.7, port 5432 failed")
    reasons = readiness(bad, 101, t)
    assert any(r.startswith("database unreachable for 51 s") for r in reasons)
    assert not any("10.0.0.7" in r or "standby" in r for r in reasons)  # states, no address
    assert any("LISTEN" in r for r in reasons)
    assert any("lag 11.0 s" in r for r in reasons)
    assert not any("61" in r for r in reasons)  # an open transaction holds back only itself
    assert liveness(bad, 101, t) == []
    assert liveness(bad, 200, t) == ["processing loop silent for 100 s"]


def test_backoff_grows_to_cap_with_jitter() -> None:
    b = Backoff(base=0.1, cap=2.0, rng=random.Random(1))
    delays = [b.next() for _ in range(12)]
    assert all(0 <= d <= 2.0 for d in delays)
    assert max(delays[:2]) <= 0.2
    assert max(delays[6:]) > 0.5
    b.reset()
    assert b.next() <= 0.1


def test_every_named_query_exists() -> None:
    for name in ("fetch_batch", "persist_batch", "rewrite_restored_xids",
                 "oldest_pending", "horizon_age", "load_series", "try_lock"):
        assert q(name).strip()
    assert "-- name" not in q("fetch_batch")


def test_redact_url_drops_password() -> None:
    assert logs.redact_url("postgresql://me:pw@db.local:6543/app") == \
        "user=me host=db.local port=6543 dbname=app"


def test_json_log_line_carries_fields(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("INFO", "json")
    logging.getLogger("stream_mlops.test").info("hello", extra={"n": 3})
    line = capsys.readouterr().err.strip().splitlines()[-1]
    doc = json.loads(line)
    assert doc["msg"] == "hello" and doc["n"] == 3 and doc["level"] == "info"
