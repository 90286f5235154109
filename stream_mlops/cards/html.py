"""A card as one self-contained HTML page (no network: inline CSS and SVG charts),
readable on screen and printed: latency histogram, daily cost, daily error rate with its
95 % band, drift events marked on the time charts. Pure: no I/O."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup, escape

from stream_mlops.cards.build import ci, fmt

W, H = 560, 180  # chart size (px); plot area inside the margins below
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 34


def _scale(lo: float, hi: float, a: float, b: float) -> Any:
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _axis(y_max: float, label: str, x_labels: Sequence[tuple[float, str]]) -> str:
    y = _scale(0, y_max, H - BOTTOM, TOP)
    parts = [f'<line class="axis" x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" '
             f'y2="{H - BOTTOM}"/>',
             f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}"/>']
    for frac in (0.0, 0.5, 1.0):
        v = y_max * frac
        parts.append(f'<text class="tick" x="{LEFT - 4}" y="{y(v) + 4:.1f}" '
                     f'text-anchor="end">{_short(v, label)}</text>')
    for x, text in x_labels:
        parts.append(f'<text class="tick" x="{x:.1f}" y="{H - BOTTOM + 14}" '
                     f'text-anchor="middle">{text}</text>')
    parts.append(f'<text class="label" x="{LEFT}" y="{H - 4}">{label}</text>')
    return "".join(parts)


def _short(v: float, label: str) -> str:
    if "%" in label:
        return f"{v:.1%}"
    if "$" in label:
        return f"${v:.3g}"
    return f"{v:.3g}"


def _svg(title: str, body: str, chart: str) -> Markup:
    svg = (f'<svg class="chart" data-chart="{chart}" viewBox="0 0 {W} {H}" width="{W}" '
           f'height="{H}" role="img" aria-label="{title}"><title>{title}</title>{body}</svg>')
    return Markup(svg)  # noqa: S704 (numbers, constant titles, escaped names: _drift_marks)


def _path(points: Sequence[tuple[float, float]]) -> str:
    return "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in points)


def latency_chart(histogram: Sequence[Sequence[float]]) -> str:
    """Requests per latency bin (log scale), as a step path."""
    if not histogram:
        return ""
    bins = [(max(lo, 1.0), min(hi, 1e6), n) for lo, hi, n in histogram]
    lo_x, hi_x = math.log10(bins[0][0]), math.log10(bins[-1][1])
    x = _scale(lo_x, hi_x, LEFT, W - RIGHT)
    top = max(n for _, _, n in bins) or 1
    y = _scale(0, top, H - BOTTOM, TOP)
    points = [(x(lo_x), y(0))]
    for lo, hi, n in bins:
        points += [(x(math.log10(lo)), y(n)), (x(math.log10(hi)), y(n))]
    points.append((x(hi_x), y(0)))
    ticks = [(x(d), f"{10 ** d:g} ms") for d in range(math.ceil(lo_x), math.floor(hi_x) + 1)]
    body = (f'<path class="area" d="{_path(points)} Z"/>'
            + _axis(top, "requests per latency bin", ticks))
    return _svg("Latency histogram", body, "latency")


def _day_x(days: Sequence[Mapping[str, Any]]) -> tuple[Any, list[float], float, float]:
    ts = [datetime.fromisoformat(d["day"].replace("Z", "+00:00")).timestamp() for d in days]
    lo, hi = ts[0], ts[-1] + 86400.0
    x = _scale(lo, hi, LEFT, W - RIGHT)
    return x, [t + 43200.0 for t in ts], lo, hi  # points at noon


def _drift_marks(drifts: Sequence[Mapping[str, Any]], x: Any, lo: float, hi: float) -> str:
    out = []
    for d in drifts:
        t = datetime.fromisoformat(d["at"].replace("Z", "+00:00")).timestamp()
        if lo <= t <= hi:
            out.append(f'<line class="drift" x1="{x(t):.1f}" y1="{TOP}" x2="{x(t):.1f}" '
                       f'y2="{H - BOTTOM}"><title>drift: {escape(d["metric"])} '
                       f'({escape(d["test"])}, p={fmt(d["p_value"], "p")})</title></line>')
    return "".join(out)


def _day_ticks(x: Any, centres: list[float], days: Sequence[Mapping[str, Any]]) -> list[
        tuple[float, str]]:
    step = max(1, len(days) // 7)
    return [(x(c), d["day"][5:10]) for c, d in list(zip(centres, days, strict=True))[::step]]


def cost_chart(days: Sequence[Mapping[str, Any]], drifts: Sequence[Mapping[str, Any]]) -> str:
    """Cost per day (USD), a line with a point a day; drift events marked."""
    if not days:
        return ""
    x, centres, lo, hi = _day_x(days)
    top = max(d["cost_usd"] for d in days) or 1e-9
    y = _scale(0, top * 1.1, H - BOTTOM, TOP)
    pts = [(x(c), y(d["cost_usd"])) for c, d in zip(centres, days, strict=True)]
    dots = "".join(f'<circle class="dot" cx="{px:.1f}" cy="{py:.1f}" r="2.5"/>'
                   for px, py in pts)
    body = (f'<path class="line" d="{_path(pts)}"/>{dots}' + _drift_marks(drifts, x, lo, hi)
            + _axis(top * 1.1, "cost per day ($)", _day_ticks(x, centres, days)))
    return _svg("Daily cost", body, "cost")


def error_chart(days: Sequence[Mapping[str, Any]], drifts: Sequence[Mapping[str, Any]]) -> str:
    """Error rate per day with its 95 % Wilson band; drift events marked."""
    days = [d for d in days if d["requests"]]
    if not days:
        return ""
    x, centres, lo, hi = _day_x(days)
    top = max(d["error_rate_ci95"][1] for d in days) or 0.01
    y = _scale(0, top * 1.05, H - BOTTOM, TOP)
    upper = [(x(c), y(d["error_rate_ci95"][1])) for c, d in zip(centres, days, strict=True)]
    lower = [(x(c), y(d["error_rate_ci95"][0])) for c, d in zip(centres, days, strict=True)]
    line = [(x(c), y(d["error_rate"])) for c, d in zip(centres, days, strict=True)]
    dots = "".join(f'<circle class="dot" cx="{px:.1f}" cy="{py:.1f}" r="2.5"/>'
                   for px, py in line)
    body = (f'<path class="band" d="{_path(upper + lower[::-1])} Z"/>'
            f'<path class="line" d="{_path(line)}"/>{dots}' + _drift_marks(drifts, x, lo, hi)
            + _axis(top * 1.05, "error rate per day (%), 95 % band",
                    _day_ticks(x, centres, days)))
    return _svg("Error rate per day", body, "errors")


_ENV = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True,
                   lstrip_blocks=True)
_ENV.filters["fmt"] = fmt
_ENV.filters["ci"] = ci
PAGE = _ENV.from_string((Path(__file__).parent / "card.html.j2").read_text())


def render_html(card: Mapping[str, Any]) -> str:
    """The card as a self-contained page."""
    m = card["measured"]
    confirmed = card["drift"]["confirmed"]
    charts = {"latency": latency_chart(m["latency_histogram_ms"]),
              "cost": cost_chart(m["daily"], confirmed),
              "errors": error_chart(m["daily"], confirmed)}
    return PAGE.render(c=card, m=m, charts=charts, version=card.get("version"),
                       trigger=card.get("trigger"))
