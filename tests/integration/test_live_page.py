"""The built-in live page in headless Chromium, served by a real processor that the
simulator feeds: the demo's functions with live numbers and non-empty charts, the
running experiment with its decision, the drill-down and the CSV link."""

from __future__ import annotations

import csv
import html
import io
import re
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from stream_mlops.dev import simulator as simulate
from stream_mlops.experiments import store as experiments
from stream_mlops.experiments.config import ExperimentSpec
from tests.helpers import ProcessorProcess, wait_for
from tests.integration.test_prometheus import tool

FUNCTIONS = {f for f, *_ in simulate.FUNCTIONS}


def chromium(tmp: Path, *args: str) -> str:
    """Headless Chromium's output (the DOM after rendering, with --dump-dom)."""
    out = subprocess.run(
        [tool("chromium"), "--headless=new", "--no-sandbox", "--disable-gpu",
         "--no-first-run", f"--user-data-dir={tmp / 'chromium-profile'}", *args],
        capture_output=True, text=True, timeout=90, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def fetch(url: str) -> tuple[dict[str, str], str]:
    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 (loopback http)
        return dict(r.headers), r.read().decode()


@pytest.fixture
def live(db_url: str, tmp_path: Path) -> Iterator[str]:
    """A processor sampling for its page every 0.5 s, fed 150 requests/s by the
    simulator with an A/B test on `summarize`; yields the page's base URL."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        experiments.create(conn, ExperimentSpec("live-exp", "summarize"))
        experiments.set_status(conn, "live-exp", "running")
        e = experiments.get(conn, "live-exp")
    arms = simulate.ExperimentArms(e.id, e.tenant_id, e.function_name, e.seed,
                                   tuple((v.name, v.weight) for v in e.variants))
    p = ProcessorProcess(db_url, env={"LIVE_SAMPLE_SECONDS": "0.5"},
                         log_path=tmp_path / "processor.log").start()
    stop = threading.Event()
    feeder = threading.Thread(target=simulate.run, args=(db_url, 150.0, stop), kwargs={
        "experiment": arms, "scenario": simulate.Scenario("treatment_better", 0.0)})
    try:
        p.wait_ready()
        feeder.start()
        base = f"http://127.0.0.1:{p.port}"

        # A row per tenant and function: the experiment's function is all the experiment's
        # tenant's, every other one is spread over the simulator's tenants.
        expected_rows = 1 + (len(FUNCTIONS) - 1) * simulate.Traffic().tenants

        def every_row_has_a_rate_and_a_p95() -> bool:
            # Per row, not per function: a tenant's series first sampled less than a second
            # ago, or with no request since, has neither yet (a CI run caught one).
            rows = list(csv.DictReader(io.StringIO(fetch(base + "/live.csv")[1])))
            return len(rows) == expected_rows and all(
                r["requests_per_second"] and float(r["requests_per_second"]) > 0
                and r["p95_latency_seconds"] for r in rows)

        def every_rate_chart_has_two_points() -> bool:
            page = fetch(base + "/")[1]
            charts = re.findall(r'requests/s: [^<]*</title><polyline points="([^"]*)"', page)
            return (len(charts) == expected_rows
                    and all(len(c.split()) >= 2 for c in charts))

        wait_for(every_row_has_a_rate_and_a_p95, 60, "live rates and p95 of every series")
        wait_for(every_rate_chart_has_two_points, 30, "two samples of every function's rate")
        wait_for(lambda: "live-exp" in fetch(base + "/")[1], 30, "the experiment's metrics")
        yield base
    finally:
        stop.set()
        if feeder.is_alive():
            feeder.join(30)
        p.stop()


def test_the_page_renders_live_numbers_charts_drill_down_and_csv(
        live: str, tmp_path: Path) -> None:
    dom = chromium(tmp_path, "--dump-dom", live + "/?refresh=5")
    assert "<title>stream-mlops live</title>" in dom
    assert 'http-equiv="refresh" content="5"' in dom
    table = dom[dom.index('<table id="functions">'):]
    table = table[:table.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]  # the first is the header
    names = {html.unescape(n) for n in re.findall(r'class="drill"[^>]*>([^<]+)</a>', table)}
    assert names == FUNCTIONS
    assert len(rows) >= len(FUNCTIONS)
    for row in rows:
        # Three charts per row, the request rate's drawn with at least two points.
        assert row.count("<svg") == 3, row
        first = re.search(r'<polyline points="([^"]+)"', row)
        assert first is not None and len(first.group(1).split()) >= 2, row
        cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
        assert any(c.endswith(" ms") or c.endswith(" s") for c in cells), cells  # p95
    experiments_table = dom[dom.index('id="experiments"'):]
    assert "live-exp" in experiments_table[:experiments_table.index("</table>")]
    assert re.search(r"<td class=\"l\">(better|worse|undecided)</td>", experiments_table)

    # The drill-down: by model and variant, in Chromium too.
    href = html.unescape(re.findall(r'class="drill" href="([^"]+)"', table)[0])
    drill = chromium(tmp_path, "--dump-dom", live + href)
    function = re.search(r"name=([^&]+)", href)
    assert function is not None
    name = urllib.parse.unquote_plus(function.group(1))
    model = next(m for f, m, *_ in simulate.FUNCTIONS if f == name)
    assert f"<h1>{html.escape(name)} " in drill
    assert f'<td class="l">{model}</td>' in drill
    assert '<td class="l">control</td>' in drill and '<td class="l">treatment</td>' in drill

    # The CSV link exports the rows shown.
    csv_href = html.unescape(re.search(r'id="csv" href="([^"]+)"', dom).group(1))  # type: ignore[union-attr]
    headers, text = fetch(live + csv_href)
    assert headers["Content-Type"].startswith("text/csv")
    exported = list(csv.DictReader(io.StringIO(text)))
    assert {r["function"] for r in exported} == FUNCTIONS
    assert len(exported) == len(rows)
    assert all(float(r["requests_per_second"]) > 0 for r in exported)

    # And it paints: a screenshot of the page (the docs' picture is made the same way).
    shot = tmp_path / "live.png"
    chromium(tmp_path, "--hide-scrollbars", "--window-size=1400,1000",
             f"--screenshot={shot}", live + "/")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
