"""``stream-mlops deploy`` as pipelines call it: ids, JSON, exit codes, one-line errors
that leave nothing half-written."""

from __future__ import annotations

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import psycopg
import pytest

from stream_mlops.dev.embedded import free_port
from tests.integration.test_cli import assert_one_line_error, cli
from tests.integration.test_deployments import send


def deploy(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return cli("deploy", *args, env={"DATABASE_URL": url})


def count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM mlops.deployments").fetchone()
    assert row is not None
    return int(row[0])


def test_start_status_promote_history_and_wait(db_url: str) -> None:
    send(db_url, 20, seed=0)
    out = deploy(db_url, "start", "summarize", "--version", "v2", "--steps", "10,50,100",
                 "--min-samples", "300", "--step-seconds", "60", "--alpha", "0.01",
                 "--reason", "new prompt")
    assert out.returncode == 0, out.stderr
    dep = int(out.stdout.strip())
    status = json.loads(deploy(db_url, "status", "summarize", "--json").stdout)
    assert {k: status[k] for k in ("id", "status", "version", "traffic_percent", "slot")} == {
        "id": dep, "status": "pending", "version": "v2", "traffic_percent": 0,
        "slot": "green"}
    assert status["reason"].endswith(": new prompt") and "gate" in status
    assert deploy(db_url, "wait", "summarize", "--timeout", "0.3",
                  "--interval", "0.1").returncode == 4
    out = deploy(db_url, "promote", "summarize", "--reason", "looks fine")
    assert out.returncode == 0, out.stderr
    assert "promoted (100 % of units)" in out.stdout
    assert deploy(db_url, "wait", "summarize", "--timeout", "5").returncode == 0
    history = json.loads(deploy(db_url, "history", "summarize", "--json").stdout)
    moves = [(h["kind"], h["status"]) for h in history if h["kind"] == "transition"]
    assert moves == [("transition", "pending"), ("transition", "promoted")]
    text = deploy(db_url, "history", "summarize").stdout
    assert "looks fine" in text


def test_a_rollback_by_hand_makes_wait_exit_3(db_url: str) -> None:
    send(db_url, 20, seed=0)
    assert deploy(db_url, "start", "summarize", "--version", "v2").returncode == 0
    done: list[int] = []
    waiter = threading.Thread(target=lambda: done.append(deploy(
        db_url, "wait", "summarize", "--timeout", "30", "--interval", "0.1").returncode))
    waiter.start()
    assert deploy(db_url, "rollback", "summarize", "--reason", "pager").returncode == 0
    waiter.join(40)
    assert done == [3]
    # promote of a rolled-back deployment: refused, nothing changes
    assert_one_line_error(deploy(db_url, "promote", "summarize"), "cannot promote",
                          "rolled_back")


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_health_url_must_answer_and_wait_records_the_checks(db_url: str) -> None:
    send(db_url, 20, seed=0)
    server = HTTPServer(("127.0.0.1", free_port()), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert_one_line_error(deploy(db_url, "start", "summarize", "--version", "v2",
                                     "--health-url", f"{base}/down"), "HTTP 503")
        assert count(db_url) == 0
        assert deploy(db_url, "start", "summarize", "--version", "v2", "--health-url",
                      f"{base}/ok").returncode == 0
        assert deploy(db_url, "wait", "summarize", "--timeout", "0.5",
                      "--interval", "0.1").returncode == 4
        with psycopg.connect(db_url) as conn:
            health = conn.execute("SELECT health FROM mlops.deployments").fetchone()
        assert health is not None and health[0]["ok"] is True
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("args", "needles"), [
    (["start", "no-such-fn", "--version", "v2"], ["unknown function 'no-such-fn'"]),
    (["start", "summarize"], ["needs --version"]),
    (["start", "summarize", "--version", "v2", "--steps", "50,25"], ["must increase"]),
    (["start", "summarize", "--version", "v2", "--steps", "10,150"], ["outside (0, 100]"]),
    (["start", "summarize", "--version", "v2", "--steps", "0,50"], ["outside (0, 100]"]),
    (["start", "summarize", "--version", "v2", "--steps", "ten"], ["not a number"]),
    (["start", "summarize", "--version", "v2", "--min-samples", "-5"], ["--min-samples"]),
    (["start", "summarize", "--version", "v2", "--step-seconds", "nan"], ["--step-seconds"]),
    (["start", "summarize", "--version", "v2\x1b[31m"], ["control characters"]),
    (["start", "summarize", "--version", "v2", "--alpha", "2"], ["--alpha"]),
    (["start", "summarize", "--version", "v2", "--health-url", "http://127.0.0.1:1/h"],
     ["unreachable"]),
    (["promote", "summarize"], ["no deployment of 'summarize'"]),
    (["status", "summarize"], ["no deployment of 'summarize'"]),
    (["history", "summarize"], ["no deployment of 'summarize'"]),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(db_url: str, args: list[str],
                                                          needles: list[str]) -> None:
    send(db_url, 20, seed=0)
    assert_one_line_error(deploy(db_url, *args), *needles)
    assert count(db_url) == 0


def test_a_second_deployment_while_one_runs_is_refused(db_url: str) -> None:
    send(db_url, 20, seed=0)
    assert deploy(db_url, "start", "summarize", "--version", "v2").returncode == 0
    assert_one_line_error(deploy(db_url, "start", "summarize", "--version", "v3"),
                          "already has a deployment in progress (v2, pending)")
    assert count(db_url) == 1
