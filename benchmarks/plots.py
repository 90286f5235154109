"""The issue-18 plots for docs/benchmarks.md, from the results the benchmarks wrote.

    .venv/bin/pip install -e '.[bench]'   # matplotlib
    .venv/bin/python benchmarks/plots.py

* ``docs/img/latency-vs-rate.png``: COMMIT -> visible on ``/metrics``, p50 and p99, at the
  three rates of ``benchmarks/pipeline.py --only latency`` (``results/pipeline_latency.json``),
  this tree next to the baseline of the same run and the floor (NOTIFY + one read).
* ``docs/img/memory-rss.png``: resident memory of the processor against the number of
  (tenant, function) series, 100 to 50,000 (``results/memory.json``, ``rss``), and of
  older code when ``results/memory_baseline.json`` holds its run (``code``: which).
* ``docs/img/batch-interval.png``: at 1,000 commits/s, latency (nothing scraping) and CPU
  against ``MIN_BATCH_INTERVAL_SECONDS`` (``results/batch_interval.json``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import RESULTS

IMG = Path(__file__).resolve().parent.parent / "docs" / "img"


def latency(data: dict[str, Any], out: Path) -> None:
    cells = [data[k] for k in ("latency_100", "latency_1k", "latency_10k") if k in data]
    rates = [c["rate_rows_per_s"] for c in cells]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for name, key, colour in (("this tree", "this_tree", "tab:blue"),
                              ("baseline", "baseline", "tab:grey")):
        ax.plot(rates, [c[key]["p99_ms_median"] for c in cells], "o-", color=colour,
                label=f"{name}, p99")
        ax.plot(rates, [c[key]["p50_ms_median"] for c in cells], "o--", color=colour,
                label=f"{name}, p50")
    ax.plot(rates, [c["this_tree"]["floor_p99_ms_median"] for c in cells], "s:",
            color="tab:green", label="floor (NOTIFY + read), p99")
    targets = {100: 5.0, 1000: 10.0, 10000: 50.0}
    ax.plot(rates, [targets.get(r, float("nan")) for r in rates], "x", color="tab:red",
            markersize=9, label="target, p99")
    ax.set_xscale("log")
    ax.set_xlabel("rows committed per second (1-row commits; 100-row commits at 10,000)")
    ax.set_ylabel("COMMIT -> visible on /metrics (ms)")
    ax.set_title(f"Latency vs rate ({data.get('started', '')})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)


def memory(data: dict[str, Any], out: Path, baseline: dict[str, Any] | None) -> None:
    runs = data["rss"]
    series = [r["series"] for r in runs]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    ax.plot(series, [r["rss_mb"] for r in runs], "o-", label="processor RSS, all monitors")
    if baseline:
        before = baseline["rss"]
        ax.plot([r["series"] for r in before], [r["rss_mb"] for r in before], "^-",
                color="tab:orange", alpha=0.7,
                label=f"the same, code before ({baseline.get('code', 'baseline')})")
    ax.plot(series, [r["rss_mb_empty"] for r in runs], "s:", color="tab:grey",
            label="the same process before any row")
    ax.plot(series, [runs[0]["rss_mb_empty"] + s * 20_000 / 2**20 for s in series], "--",
            color="tab:red", label="target: 20 kB per series")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"(tenant, function) series, {runs[0]['rows_per_series']} rows each")
    ax.set_ylabel("resident memory (MB)")
    ax.set_title(f"Memory vs series ({data.get('started', '')})", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)


def batch_interval(data: dict[str, Any], out: Path) -> None:
    cells = data["cells"]
    ms = [c["interval_s"] * 1000 for c in cells]
    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=120)
    # Nothing scrapes the processor here: a scrape does not wait for the interval
    # (pipeline/freshness.py), the tables written back do.
    for q, style in (("p99", "o-"), ("p50", "o:")):
        ax.plot(ms, [c["commit_to_counted_ms"][q] for c in cells], style, color="tab:blue",
                label=f"commit -> counted, unscraped, {q} (ms)")
    cpu = ax.twinx()
    cpu.plot(ms, [c["cpu_percent_of_one_core"] for c in cells], "s-", color="tab:red",
             label="processor CPU (% of a core)")
    cpu.axhline(5, color="tab:red", ls="--", alpha=0.5, label="CPU target: 5 %")
    ax.set_xscale("log")
    ax.set_xticks(ms, [f"{m:g}" for m in ms])
    ax.minorticks_off()
    ax.set_xlabel("MIN_BATCH_INTERVAL_SECONDS (ms)")
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms)")
    cpu.set_ylabel("CPU (% of one core)")
    cpu.set_ylim(bottom=0)
    ax.set_title(f"1,000 single-row commits/s: latency vs CPU ({data.get('started', '')})",
                 fontsize=10)
    ax.grid(alpha=0.3, which="both")
    lines = ax.get_legend_handles_labels()
    more = cpu.get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    fig.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="lower center",
               ncol=2)
    fig.savefig(out)


def main() -> int:
    IMG.mkdir(exist_ok=True)
    latency(json.loads((RESULTS / "pipeline_latency.json").read_text()),
            IMG / "latency-vs-rate.png")
    base = RESULTS / "memory_baseline.json"
    memory(json.loads((RESULTS / "memory.json").read_text()), IMG / "memory-rss.png",
           json.loads(base.read_text()) if base.exists() else None)
    batch_interval(json.loads((RESULTS / "batch_interval.json").read_text()),
                   IMG / "batch-interval.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
