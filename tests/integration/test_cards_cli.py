"""``stream-mlops cards`` as a user runs it, and the HTML card in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import time
import zlib
from pathlib import Path

import psycopg
import pytest
from huggingface_hub import ModelCard

from stream_mlops.cards.generate import generate
from stream_mlops.cards.html import render_html
from stream_mlops.cards.store import ConnectionRows
from tests.integration.test_cards import simulate
from tests.integration.test_cli import assert_one_line_error, cli

SPEC = "intended_use: Summaries for agents.\nlicense: mit\nowners: [ml@example.com]\n"


def env(url: str) -> dict[str, str]:
    return {"DATABASE_URL": url}


def test_show_export_regenerate_and_diff(db_url: str, tmp_path: Path) -> None:
    simulate(db_url, 400)
    spec = tmp_path / "summarize.yaml"
    spec.write_text(SPEC)
    out = cli("cards", "spec", "summarize", str(spec), "--tenant", "acme", env=env(db_url))
    assert out.returncode == 0, out.stderr
    shown = cli("cards", "summarize", "--tenant", "acme", env=env(db_url))
    assert shown.returncode == 0, shown.stderr
    assert "Summaries for agents." in shown.stdout and "version 1 (manual)" in shown.stdout
    again = cli("cards", "summarize", "--tenant", "acme", "--regenerate", env=env(db_url))
    assert "unchanged, no new version" in again.stderr  # nothing changed since version 1

    simulate(db_url, 100, seed=11)
    out = cli("cards", "summarize", "--tenant", "acme", "--regenerate", "--format", "json",
              env=env(db_url))
    card = json.loads(out.stdout)
    assert (card["version"], card["measured"]["requests"]) == (2, 500)

    diff = cli("cards", "diff", "summarize", "--tenant", "acme", env=env(db_url))
    lines = diff.stdout.splitlines()
    assert lines[0].startswith("summarize (gpt-4o-mini): version 1 (manual, ")
    assert "  measured.requests: 400 -> 500" in lines
    first_text = next(i for i, line in enumerate(lines[1:]) if not re.search(
        r": (-?[\d.e+-]+|null) -> (-?[\d.e+-]+|null)$", line))
    assert all(re.search(r"-?[\d.]+", line) for line in lines[1:first_text + 1])
    same = cli("cards", "diff", "summarize", "1", "1", "--tenant", "acme", env=env(db_url))
    assert same.stdout.splitlines()[1:] == ["  no change"]

    listing = cli("cards", env=env(db_url))
    assert re.search(r"acme/summarize\s+gpt-4o-mini\s+2\s+manual", listing.stdout)

    for fmt in ("md", "json", "html"):
        out = cli("cards", "summarize", "--tenant", "acme", "--format", fmt, "--out",
                  str(tmp_path), env=env(db_url))
        assert out.stdout.strip() == str(tmp_path / f"summarize--gpt-4o-mini.{fmt}")
    loaded = ModelCard.load(tmp_path / "summarize--gpt-4o-mini.md")
    assert {r.metric_type for r in loaded.data.eval_results} >= {"error_rate", "latency_p95_ms"}
    assert json.loads((tmp_path / "summarize--gpt-4o-mini.json").read_text())["version"] == 2


@pytest.mark.parametrize(("args", "needles"), [
    (("cards", "nosuch"), ("unknown function 'nosuch' for tenant 'default'",)),
    (("cards", "diff", "nosuch"), ("no card of 'nosuch'",)),
    (("cards", "diff", "f", "x", "y"), ("versions are whole numbers",)),
    (("cards", "a", "b"), ("expected at most one FUNCTION",)),
])
def test_bad_requests_are_one_line_errors(db_url: str, args: tuple[str, ...],
                                          needles: tuple[str, ...]) -> None:
    assert_one_line_error(cli(*args, env=env(db_url)), *needles)


def test_a_malformed_spec_is_refused_with_file_line_and_field(db_url: str,
                                                              tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("intended_use: ok\nowners:\n  - a\n  - {name: b}\n")
    assert_one_line_error(cli("cards", "spec", "f", str(bad), env=env(db_url)),
                          f"{bad}, line 4: owners.1: Input should be a valid string")
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM mlops.model_card_specs").fetchone() == (0,)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_out_dir_is_one_line_and_nothing_half_written(db_url: str,
                                                                   tmp_path: Path) -> None:
    simulate(db_url, 20, tenant="default")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    assert_one_line_error(cli("cards", "summarize", "--out", str(locked), env=env(db_url)),
                          "not writable")
    assert list(locked.iterdir()) == []


def test_a_directory_nobody_may_write_is_one_line(db_url: str) -> None:
    simulate(db_url, 20, tenant="default")
    # /proc/self refuses new files to every user, root included.
    assert_one_line_error(cli("cards", "summarize", "--out", "/proc/self", env=env(db_url)),
                          "--out /proc/self: not writable")


def test_an_out_dir_that_does_not_exist_is_one_line(db_url: str, tmp_path: Path) -> None:
    simulate(db_url, 20, tenant="default")
    assert_one_line_error(cli("cards", "summarize", "--out", str(tmp_path / "nope"),
                              env=env(db_url)), "not a directory")


# -- the HTML page in headless Chromium -------------------------------------------------------


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Rows of RGB(A) bytes of an 8-bit PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 4
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows = zlib.decompress(idat), width * channels, []
    prev = bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, channels, rows


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed")
def test_the_html_card_renders_in_chromium_with_its_charts(db_url: str, tmp_path: Path) -> None:
    # Six days of rows up to the latest noon (UTC): seven calendar days that each hold
    # rows, at whatever time of day this runs (just after midnight, the six days up to
    # "now" left today a few minutes and often no row: six points, not seven).
    noon = time.time() - (time.time() - 43_200) % 86_400
    simulate(db_url, 2000, now=noon)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO mlops.drift_detection (tenant_id, function_name, metric_name,"
                     " test_name, p_value, effect_size, drift_detected, detected_at) VALUES"
                     " ('acme', 'summarize', 'latency', 'ks', 1e-8, 0.4, true,"
                     " now() - interval '2 days')")
        (g,) = generate(ConnectionRows(conn), "acme", "summarize", now=noon,
                        trigger="manual")
    page = tmp_path / "card.html"
    page.write_text(render_html(g.card))
    assert "http://" not in page.read_text() and "https://" not in page.read_text()
    browser = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,2600"]
    dom = subprocess.run([*browser, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    charts = re.findall(r'<svg class="chart" data-chart="(\w+)".*?</svg>', dom, re.S)
    assert charts == ["latency", "errors", "cost"]
    for chart in ("latency", "errors", "cost"):
        svg = re.search(rf'data-chart="{chart}".*?</svg>', dom, re.S)
        assert svg is not None
        points = [len(re.findall(r"[ML]", d)) for d in re.findall(r' d="([^"]+)"', svg[0])]
        assert points and max(points) >= 7, (chart, points)  # a point a day, or every bin
    assert len(re.findall(r'<line class="drift"', dom)) == 2  # on both time charts
    shot = tmp_path / "card.png"
    subprocess.run([*browser, f"--screenshot={shot}", page.as_uri()], capture_output=True,
                   timeout=120, check=True)
    width, channels, rows = _png_pixels(shot.read_bytes())
    # The charts' blue (#2f5f9a lines, #4f81bd fills) is on the page: painted, not blank.
    blue = sum(1 for row in rows for i in range(0, width * channels, channels)
               if row[i + 2] > row[i] + 40 and row[i + 2] > 120)
    # Red as blended with the white page: the 1.5 px dashed marks fall between pixels at
    # positions that depend on the time of day, so a pure-red test would be flaky.
    red = sum(1 for row in rows for i in range(0, width * channels, channels)
              if row[i] > 150 and row[i] - row[i + 1] > 70 and row[i] - row[i + 2] > 70)
    assert blue > 5000, blue
    assert red > 50, red  # the drift marks
