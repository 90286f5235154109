"""The built-in live page: ``GET /`` on the metrics port, for those without Grafana.

Per function: requests/s, error ratio and p95 latency over the last 5 minutes, cost
today against the tenant's daily budget, firing alerts, and small charts of the last
hour; below, the firing alerts, running experiments with their decisions, recent drifts
and deployments. ``/function?tenant=T&name=F`` drills down by model and variant;
``/live.csv`` and ``/function.csv`` export what the page shows.

The numbers come from the same registry Prometheus scrapes: a :class:`Sampler` collects it
every ``interval`` seconds and keeps an hour of counters (history for the charts), so the
page needs no database connection and agrees with Grafana. Server-rendered HTML and
inline SVG: no script, no CDN, nothing to build. Every label is escaped; with many
functions the page is searchable (``?q=``) and paginated (``?page=``).
"""

from __future__ import annotations

import contextlib
import csv
import html
import io
import math
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from prometheus_client.registry import CollectorRegistry

from stream_mlops.core.families import SeriesFamily
from stream_mlops.metrics.exposition import collector_paused

Key = tuple[str, str, str, str]  # tenant, function, model, variant
Group = tuple[str, ...]
StartResponse = Callable[..., Any]
HTML = "text/html; charset=utf-8"
CSV = "text/csv; charset=utf-8"
WINDOW_SECONDS = 300.0  # "now" means the last 5 minutes, as in the dashboards
HISTORY_SECONDS = 3600.0
PAGE_SIZE = 50
NONE = "-"  # no data (yet)
# Columns of a snapshot row before the latency buckets.
REQUESTS, ERRORS, COST = 0, 1, 2
FIXED = 3


def quantile(q: float, bounds: Sequence[float], counts: Sequence[float]) -> float:
    """The ``q`` quantile of a histogram, interpolated within its bucket as PromQL's
    ``histogram_quantile`` does; ``counts`` are per bucket (not cumulative), the last one
    being +Inf, whose quantile reports the last finite bound. NaN without observations.

    >>> quantile(0.5, [0.1, 0.5, 1.0], [10, 10, 0, 0])
    0.1
    >>> round(quantile(0.95, [0.1, 0.5, 1.0], [10, 10, 0, 0]), 3)
    0.46
    >>> quantile(0.99, [0.1, 0.5], [0, 0, 5])
    0.5
    """
    total = float(sum(counts))
    if total <= 0:
        return math.nan
    rank, below = q * total, 0.0
    for i, c in enumerate(counts):
        if below + c >= rank and c > 0:
            if i >= len(bounds):
                return float(bounds[-1])
            lower = float(bounds[i - 1]) if i > 0 else 0.0
            return lower + (float(bounds[i]) - lower) * (rank - below) / float(c)
        below += c
    return float(bounds[-1])


@dataclass
class Snapshot:
    """Counters of every series at one time: rows follow the sampler's series index."""

    t: float  # time.monotonic(): a step of the wall clock must not empty the windows
    values: np.ndarray[Any, Any]  # series x (requests, errors, cost, latency buckets...)
    gauges: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)


# Families kept whole from the latest sample (small: per function or per experiment).
GAUGES = (
    "mlops_alert_active", "mlops_budget_usd", "mlops_budget_utilization_ratio",
    "mlops_cost_window_usd", "mlops_experiment_decision", "mlops_experiment_p_value",
    "mlops_experiment_lift", "mlops_experiment_samples", "mlops_experiment_srm",
    "mlops_drift_detected", "mlops_drift_events_total", "mlops_alert_threshold",
    "mlops_deployment_traffic_ratio", "mlops_deployment_status",
    "mlops_deployment_rollbacks_total", "mlops_processor_lag_seconds",
    "mlops_processor_events_total",
)


class Sampler:
    """Collects ``registry`` every ``interval`` seconds in a daemon thread and keeps the
    last hour; :meth:`sample` also takes one on demand (a page always shows "now")."""

    def __init__(self, registry: CollectorRegistry, interval: float = 10.0,
                 history: float = HISTORY_SECONDS) -> None:
        self.registry = registry
        self.interval = interval
        self.index: dict[Key, int] = {}
        self.bounds: list[float] = []
        self.snapshots: deque[Snapshot] = deque(maxlen=max(2, int(history / interval) + 2))
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream-mlops-live",
                                        daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            # A failed sample leaves the page one point short; /metrics logs the cause.
            with contextlib.suppress(Exception):
                self.sample()
            self._stop.wait(self.interval)

    def sample(self, now: float | None = None, *, keep: bool = True) -> Snapshot:
        """Collect the registry now; ``keep=False`` (a page view) adds the snapshot to the
        history only when the last one is older than the interval, so many viewers cannot
        shorten the hour the charts show."""
        now = time.monotonic() if now is None else now
        with collector_paused():  # as a scrape (it is one)
            rows, buckets, gauges = _read(self.registry)
        with self.lock:
            if not self.bounds and buckets:
                les = next(iter(buckets.values()))
                self.bounds = sorted(le for le in les if math.isfinite(le))
            for key in rows:
                self.index.setdefault(key, len(self.index))
            width = FIXED + len(self.bounds) + 1
            values = np.full((len(self.index), width), np.nan)
            order = [*self.bounds, math.inf]
            for key, row in rows.items():
                i = self.index[key]
                values[i, :FIXED] = row
                cum = buckets.get(key, {})
                cumulative = np.array([cum.get(le, 0.0) for le in order])
                values[i, FIXED:] = np.diff(cumulative, prepend=0.0)
            snap = Snapshot(now, values, gauges)
            if not rows:  # nothing processed yet: no point to draw
                return snap
            last = self.snapshots[-1].t if self.snapshots else -math.inf
            # A read that took longer than a concurrent one is older than the history's
            # end: appended, it would put the history out of order.
            if now > last and (keep or now - last >= self.interval):
                self.snapshots.append(snap)
        return snap

    def window_delta(self, now: Snapshot, seconds: float
                     ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Per series: the increase of its counters since the oldest snapshot within
        ``seconds`` before ``now`` that has it, and the seconds since then (NaN: no
        history yet). A series that appeared later is measured from its first snapshot."""
        with self.lock:
            snaps = [s for s in self.snapshots if now.t - seconds <= s.t < now.t - 1.0]
        n, w = now.values.shape
        before, since = np.full((n, w), np.nan), np.full(n, np.nan)
        for s in snaps:  # oldest first
            if s.values.shape[1] != w:  # before the buckets were known
                continue
            rows = min(n, s.values.shape[0])
            fill = np.isnan(before[:rows, REQUESTS]) & np.isfinite(s.values[:rows, REQUESTS])
            before[:rows][fill] = s.values[:rows][fill]
            since[:rows][fill] = s.t
        d: np.ndarray[Any, Any] = now.values - before
        d[~np.isfinite(d) | (d < 0)] = np.nan
        return d, now.t - since


Gauges = dict[str, list[tuple[dict[str, str], float]]]


def _read(registry: CollectorRegistry
          ) -> tuple[dict[Key, list[float]], dict[Key, dict[float, float]], Gauges]:
    """Per series: (requests, errors, cost) and cumulative buckets by bound; and the
    samples of :data:`GAUGES`."""
    rows: dict[Key, list[float]] = {}
    gauges: Gauges = {}
    buckets: dict[Key, dict[float, float]] = {}
    for family in registry.collect():
        if isinstance(family, SeriesFamily):  # read from its array: no Sample objects
            _read_series(family, rows, buckets)
            if any(sample in GAUGES for sample, _ in family.columns):
                names = family.label_names
                for key, sample, extra, v in family.series_samples():
                    gauges.setdefault(sample, []).append(
                        ({**dict(zip(names, key, strict=True)), **dict(extra)}, v))
            continue
        for s in family.samples:
            name, labels = s.name, s.labels
            if name in GAUGES:
                gauges.setdefault(name, []).append((dict(labels), float(s.value)))
                continue
            if name not in ("mlops_requests_total", "mlops_cost_usd_total",
                            "mlops_request_duration_seconds_bucket"):
                continue
            key = (labels.get("tenant", ""), labels.get("function", ""),
                   labels.get("model", ""), labels.get("variant", ""))
            row = rows.setdefault(key, [0.0, 0.0, 0.0])
            if name == "mlops_requests_total":
                row[REQUESTS] += s.value
                if labels.get("status") == "error":
                    row[ERRORS] += s.value
            elif name == "mlops_cost_usd_total":
                row[COST] += s.value
            else:
                buckets.setdefault(key, {})[float(labels["le"])] = float(s.value)
    return rows, buckets, gauges


def _read_series(family: SeriesFamily, rows: dict[Key, list[float]],
                 buckets: dict[Key, dict[float, float]]) -> None:
    """:func:`_read` for a :class:`~stream_mlops.core.families.SeriesFamily`."""
    if family.name not in ("mlops_requests", "mlops_cost_usd",
                           "mlops_request_duration_seconds") or not family.keys:
        return
    keys = [cast(Key, tuple(k)) for k in family.keys]  # tenant, function, model, variant
    for key in keys:
        rows.setdefault(key, [0.0, 0.0, 0.0])
    for (name, extra), values in zip(family.columns, family.values, strict=True):
        labels, column = dict(extra), values.tolist()
        if name == "mlops_requests_total":
            cols = [REQUESTS, ERRORS] if labels.get("status") == "error" else [REQUESTS]
            for key, v in zip(keys, column, strict=True):
                row = rows[key]
                for c in cols:
                    row[c] += v
        elif name == "mlops_cost_usd_total":
            for key, v in zip(keys, column, strict=True):
                rows[key][COST] += v
        elif name == "mlops_request_duration_seconds_bucket":
            le = float(labels["le"])
            for key, v in zip(keys, column, strict=True):
                buckets.setdefault(key, {})[le] = v


# --- numbers per group ---------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """One line of the page: a function (or a model/variant of it)."""

    tenant: str
    function: str
    model: str
    variant: str
    rps: float
    error_ratio: float
    p95: float
    cost_today: float
    alerts: int
    charts: dict[str, list[float]]
    # The function's alert thresholds as exported (mlops_alert_threshold); NaN: none.
    error_threshold: float = math.nan
    latency_threshold: float = math.nan


class Numbers:
    """What the page shows, computed from the sampler's history, grouped by ``by``
    (indices into the key: 0 tenant, 1 function, 2 model, 3 variant)."""

    def __init__(self, sampler: Sampler, by: tuple[int, ...],
                 now: Snapshot | None = None) -> None:
        self.sampler = sampler
        now = sampler.sample(keep=False) if now is None else now
        with sampler.lock:
            keys = list(sampler.index)
            history = list(sampler.snapshots)
            bounds = list(sampler.bounds)
        self.now, self.bounds, self.keys = now, bounds, keys
        self.groups: dict[Group, list[int]] = {}
        for i, key in enumerate(keys):
            self.groups.setdefault(tuple(key[j] for j in by), []).append(i)
        self.history = history
        self.by = by
        self._shown: list[int] = []
        self._stack: tuple[dict[int, int], np.ndarray[Any, Any],
                           np.ndarray[Any, Any]] | None = None

    def _sum(self, values: np.ndarray[Any, Any], rows: list[int]) -> np.ndarray[Any, Any]:
        """Column sums over ``rows`` that exist in ``values`` (a series newer than the
        snapshot is not in it)."""
        part = values[[i for i in rows if i < values.shape[0]]]
        known = np.isfinite(part).any(axis=1)
        if not known.any():
            return np.full(part.shape[1], np.nan)
        out: np.ndarray[Any, Any] = np.nansum(part[known], axis=0)
        return out

    def _stats(self, d: np.ndarray[Any, Any], seconds: float) -> tuple[float, float, float]:
        requests = d[REQUESTS]
        if not np.isfinite(requests) or seconds <= 0:
            return math.nan, math.nan, math.nan
        rps = requests / seconds
        ratio = d[ERRORS] / requests if requests > 0 else math.nan
        p95 = quantile(0.95, self.bounds, list(d[FIXED:])) if requests > 0 else math.nan
        return float(rps), float(ratio), p95

    def rows(self, groups: Iterable[Group], *, charts: bool = True) -> list[Row]:
        groups = list(groups)
        self._shown = [i for g in groups for i in self.groups[g]]
        self._stack = None
        delta, seconds = self.sampler.window_delta(self.now, WINDOW_SECONDS)
        per_second = delta[:, REQUESTS] / seconds
        cost_today = self._cost_today()
        alerts = self._alerts()
        limits = {(lb.get("tenant", ""), lb.get("function", ""), lb.get("rule", "")): v
                  for lb, v in self.gauge("mlops_alert_threshold")}
        out = []
        for g in groups:
            idx = self.groups[g]
            _, ratio, p95 = self._stats(self._sum(delta, idx), 1.0)
            rates = per_second[[i for i in idx if i < len(per_second)]]
            rps = float(np.nansum(rates)) if np.isfinite(rates).any() else math.nan
            key = dict(zip(("tenant", "function", "model", "variant"),
                           [*(g[self.by.index(j)] if j in self.by else "" for j in range(4))],
                           strict=True))
            out.append(Row(key["tenant"], key["function"], key["model"], key["variant"],
                           rps, ratio, p95,
                           sum(v for k, v in cost_today.items() if _matches(k, key)),
                           sum(v for k, v in alerts.items() if _matches(k, key)),
                           self._charts(idx) if charts else {},
                           limits.get((key["tenant"], key["function"], "error_rate"), math.nan),
                           limits.get((key["tenant"], key["function"], "latency_p95"),
                                      math.nan)))
        return out

    def _charts(self, idx: list[int]) -> dict[str, list[float]]:
        """Per interval of the last hour: requests/s, error ratio, p95 latency."""
        if self._stack is None:
            self._stack = self._history_of(self._shown)
        sel, deltas, seconds = self._stack
        cols = [sel[i] for i in idx if i in sel]
        part = deltas[:, cols, :]  # intervals x series x columns
        known = np.isfinite(part[:, :, REQUESTS]).any(axis=1)
        sums = np.nansum(part, axis=1)
        requests, errors = sums[:, REQUESTS], sums[:, ERRORS]
        with np.errstate(invalid="ignore", divide="ignore"):
            rps = np.where(known, requests / seconds, np.nan)
            ratio = np.where(known & (requests > 0), errors / requests, np.nan)
        p95 = [quantile(0.95, self.bounds, list(row[FIXED:])) if ok and row[REQUESTS] > 0
               else math.nan for ok, row in zip(known, sums, strict=True)]
        return {"requests/s": rps.tolist(), "error ratio": ratio.tolist(),
                "p95 latency (s)": p95}

    def _history_of(self, idx: list[int]
                    ) -> tuple[dict[int, int], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Counter increases of the series ``idx`` between consecutive snapshots of the
        hour, stacked (only the series shown: an hour of everything would be large)."""
        sel = {i: k for k, i in enumerate(sorted(set(idx)))}
        rows = list(sel)
        width = self.now.values.shape[1]
        stack = np.full((len(self.history), len(rows), width), np.nan)
        for k, snap in enumerate(self.history):
            if snap.values.shape[1] != width:
                continue
            have = [i for i in rows if i < snap.values.shape[0]]
            stack[k, [sel[i] for i in have]] = snap.values[have]
        deltas = np.diff(stack, axis=0)
        deltas[~np.isfinite(deltas) | (deltas < 0)] = np.nan
        seconds = np.diff([s.t for s in self.history]) if len(self.history) > 1 \
            else np.zeros(0)
        return sel, deltas, np.asarray(seconds, dtype=float)

    def _cost_today(self) -> dict[tuple[str, str, str], float]:
        out: dict[tuple[str, str, str], float] = {}
        for labels, v in self.now.gauges.get("mlops_cost_window_usd", []):
            if labels.get("window") == "day":
                k = (labels.get("tenant", ""), labels.get("function", ""),
                     labels.get("model", ""))
                out[k] = out.get(k, 0.0) + v
        return out

    def _alerts(self) -> dict[tuple[str, str, str], int]:
        out: dict[tuple[str, str, str], int] = {}
        for labels, v in self.now.gauges.get("mlops_alert_active", []):
            k = (labels.get("tenant", ""), labels.get("function", ""), "")
            out[k] = out.get(k, 0) + int(v)
        return out

    def budgets(self) -> list[tuple[str, float, float]]:
        """(tenant, spent today, daily budget) of tenants with a daily budget."""
        spent: dict[str, float] = {}
        for (tenant, _f, _m), v in self._cost_today().items():
            spent[tenant] = spent.get(tenant, 0.0) + v
        return sorted((labels.get("tenant", ""), spent.get(labels.get("tenant", ""), 0.0), v)
                      for labels, v in self.now.gauges.get("mlops_budget_usd", [])
                      if labels.get("period") == "day" and not labels.get("function"))

    def gauge(self, name: str) -> list[tuple[dict[str, str], float]]:
        return self.now.gauges.get(name, [])

    def recent_drifts(self) -> list[dict[str, str]]:
        """Confirmed drifts of the last hour and drifts whose alert is open."""
        first = self.history[0].gauges if self.history else {}
        before = {_label_key(lb): v for lb, v in first.get("mlops_drift_events_total", [])}
        open_ = {_label_key(lb) for lb, v in self.gauge("mlops_drift_detected") if v == 1}
        out = []
        for labels, v in self.gauge("mlops_drift_events_total"):
            k = _label_key(labels)
            new = v - before.get(k, 0.0)
            if k in open_ or new > 0:
                out.append({**labels, "confirmed": f"{new:g} in the last hour",
                            "alert": "open" if k in open_ else "closed"})
        return out


def _label_key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def _matches(k: tuple[str, str, str], key: dict[str, str]) -> bool:
    return (k[0] == key["tenant"] and k[1] == key["function"]
            and (not key["model"] or not k[2] or k[2] == key["model"]))


# --- HTML ----------------------------------------------------------------------------
def esc(v: object) -> str:
    return html.escape(str(v), quote=True)


def fmt(v: float, kind: str) -> str:
    if not math.isfinite(v):
        return NONE
    if kind == "ratio":
        return f"{v:.1%}"
    if kind == "seconds":
        return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"
    if kind == "usd":
        return f"${v:,.4f}" if v < 1 else f"${v:,.2f}"
    return f"{v:.1f}"


def sparkline(values: Sequence[float], label: str, w: int = 140, h: int = 30) -> str:
    """An inline SVG line of ``values`` (NaN: a gap), scaled to its own range."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return f'<svg class="spark empty" width="{w}" height="{h}" role="img"><title>' \
               f'{esc(label)}: no data yet</title></svg>'
    lo, hi = min(0.0, *finite), max(finite)  # from zero: noise stays small
    span = (hi - lo) or 1.0
    n = max(len(values) - 1, 1)
    pts = " ".join(f"{i * w / n:.1f},{h - 2 - (v - lo) / span * (h - 4):.1f}"
                   for i, v in enumerate(values) if math.isfinite(v))
    return (f'<svg class="spark" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">'
            f"<title>{esc(label)}: last {esc(fmt(finite[-1], 'num'))}, max "
            f"{esc(fmt(hi, 'num'))}</title><polyline points=\"{pts}\"/></svg>")


STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;background:#fff}td,th{padding:.3em .6em;border-bottom:1px solid
#ddd;text-align:right;vertical-align:middle}td.l,th.l{text-align:left}.bad{color:#c00;
font-weight:600}.ok{color:#070}.muted{color:#777}svg.spark polyline{fill:none;stroke:#1f60c4;
stroke-width:1.5}nav a,form{margin-right:1em}form{display:inline}
"""


def page(title: str, body: str, refresh: int) -> bytes:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="refresh" content="{refresh}">'
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>{body}"
            f"</body></html>").encode()


def _qs(**params: object) -> str:
    return urllib.parse.urlencode({k: v for k, v in params.items() if v not in (None, "")})


def _rows_table(rows: list[Row], drill: bool, refresh: int) -> str:
    head = ("<tr><th class=l>tenant</th><th class=l>function</th>"
            + ("<th class=l>model</th><th class=l>variant</th>"
                                       if drill else "")
            + "<th>requests/s</th><th>errors</th><th>p95 latency</th><th>cost today</th>"
              "<th>alerts</th><th>requests/s, 1 h</th><th>errors, 1 h</th>"
              "<th>p95, 1 h</th></tr>")
    lines = []
    for r in rows:
        name = esc(r.function)
        if not drill:
            name = (f'<a class="drill" href="/function?'
                    f'{esc(_qs(tenant=r.tenant, name=r.function, refresh=refresh))}">'
                    f"{name}</a>")
        charts = "".join(f"<td>{sparkline(v, f'{r.function} {k}')}</td>"
                         for k, v in r.charts.items())
        lines.append(
            f"<tr><td class=l>{esc(r.tenant)}</td><td class=l>{name}</td>"
            + (f"<td class=l>{esc(r.model)}</td><td class=l>{esc(r.variant)}</td>"
               if drill else "")
            + f"<td>{fmt(r.rps, 'num')}</td>"
              f"<td class=\"{'bad' if r.error_ratio > r.error_threshold else ''}\">"
              f"{fmt(r.error_ratio, 'ratio')}</td>"
              f"<td class=\"{'bad' if r.p95 > r.latency_threshold else ''}\">"
              f"{fmt(r.p95, 'seconds')}</td>"
              f"<td>{fmt(r.cost_today, 'usd')}</td>"
              f"<td class=\"{'bad' if r.alerts else 'ok'}\">{r.alerts}</td>{charts}</tr>")
    return f"<table id=functions>{head}{''.join(lines)}</table>"


def _list_table(table_id: str, rows: list[dict[str, str]], columns: Sequence[str],
                empty: str) -> str:
    if not rows:
        return f'<p id="{table_id}" class="muted">{esc(empty)}</p>'
    head = "".join(f"<th class=l>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td class=l>{esc(r.get(c, ''))}</td>" for c in columns)
                   + "</tr>" for r in rows)
    return f'<table id="{table_id}"><tr>{head}</tr>{body}</table>'


DECISIONS = {1.0: "better", -1.0: "worse", 0.0: "undecided"}


def _sections(n: Numbers, tenant: str | None = None, function: str | None = None) -> str:
    def keep(labels: dict[str, str]) -> bool:
        return ((tenant is None or labels.get("tenant") == tenant)
                and (function is None or labels.get("function") == function))

    alerts = [{**lb} for lb, v in n.gauge("mlops_alert_active") if v == 1 and keep(lb)]
    experiments: dict[tuple[str, ...], dict[str, str]] = {}
    for name in ("mlops_experiment_decision", "mlops_experiment_p_value",
                 "mlops_experiment_lift"):
        for lb, v in n.gauge(name):
            if tenant is not None and lb.get("tenant") != tenant:
                continue
            k = (lb.get("tenant", ""), lb.get("experiment", ""), lb.get("metric", ""),
                 lb.get("variant", ""))
            row = experiments.setdefault(k, dict(zip(
                ("tenant", "experiment", "metric", "variant"), k, strict=True)))
            if name.endswith("decision"):
                row["decision"] = DECISIONS.get(v, f"{v:g}")
            elif name.endswith("p_value"):
                row["always-valid p"] = f"{v:.4f}"
            else:
                row["lift"] = f"{v:+.1%}" if math.isfinite(v) else NONE
    status = {(lb.get("tenant"), lb.get("function")): lb.get("status", "")
              for lb, v in n.gauge("mlops_deployment_status") if v == 1}
    deployments = [{**lb, "traffic": f"{v:.0%}",
                    "status": status.get((lb.get("tenant"), lb.get("function")), "")}
                   for lb, v in n.gauge("mlops_deployment_traffic_ratio") if keep(lb)]
    drifts = [d for d in n.recent_drifts() if keep(d)]
    return (
        "<h2>Firing alerts</h2>"
        + _list_table("alerts", alerts, ("tenant", "function", "rule", "severity"),
                      "No alert is firing.")
        + "<h2>Running experiments</h2>"
        + _list_table("experiments", list(experiments.values()),
                      ("tenant", "experiment", "metric", "variant", "lift",
                       "always-valid p", "decision"), "No experiment is running.")
        + "<h2>Recent drifts</h2>"
        + _list_table("drifts", drifts, ("tenant", "function", "metric", "confirmed",
                                         "alert"), "No drift in the last hour.")
        + "<h2>Deployments</h2>"
        + _list_table("deployments", deployments,
                      ("tenant", "function", "slot", "version", "traffic", "status"),
                      "No deployment in progress."))


def _header(n: Numbers, tenant: str | None = None) -> str:
    lag = [v for _, v in n.gauge("mlops_processor_lag_seconds")]
    budgets = " · ".join(
        f'<span class="{"bad" if budget and spent >= budget else ""}">{esc(t)}: '
        f"{fmt(spent, 'usd')} of {fmt(budget, 'usd')} today</span>"
        for t, spent, budget in n.budgets() if tenant is None or t == tenant)
    return (f'<p class="muted">updated {time.strftime("%H:%M:%S")}'
            f" · processor lag {fmt(max(lag), 'seconds') if lag else NONE}"
            f" · <a href=\"/metrics\">/metrics</a></p>"
            + (f"<p>Cost today vs daily budget: {budgets}</p>" if budgets else ""))


def _search(groups: list[Group], q: str) -> list[Group]:
    q = q.casefold()
    return [g for g in groups if q in " ".join(g).casefold()] if q else groups


@dataclass(frozen=True)
class Request:
    path: str
    params: dict[str, str]

    def get(self, name: str, default: str = "") -> str:
        return self.params.get(name, default)

    def number(self, name: str, default: int, lo: int, hi: int) -> int:
        try:
            return min(hi, max(lo, int(self.params[name])))
        except (KeyError, ValueError):
            return default


class LivePage:
    """The routes ``/``, ``/function``, ``/live.csv`` and ``/function.csv``."""

    ROUTES = ("/", "/function", "/live.csv", "/function.csv")

    def __init__(self, sampler: Sampler, refresh: int = 30) -> None:
        self.sampler = sampler
        self.refresh = refresh

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        params = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
        req = Request(environ.get("PATH_INFO", "/"), params)
        refresh = req.number("refresh", self.refresh, 2, 3600)
        if req.path in ("/", "/live.csv"):
            n = Numbers(self.sampler, (0, 1))
            q = req.get("q")
            groups = _search(sorted(n.groups), q)
            pages = max(1, math.ceil(len(groups) / PAGE_SIZE))
            number = req.number("page", 1, 1, pages)
            shown = groups[(number - 1) * PAGE_SIZE:number * PAGE_SIZE]
            rows = n.rows(shown, charts=not req.path.endswith(".csv"))
            if req.path.endswith(".csv"):
                return _send(start_response, CSV, _csv(rows), "stream-mlops-live.csv")
            nav = (f'<nav><form method="get" action="/"><input name="q" value="{esc(q)}" '
                   f'placeholder="search functions" aria-label="search"><input type="hidden" '
                   f'name="refresh" value="{refresh}"> <button>search</button></form>'
                   f'<a id="csv" href="/live.csv?{esc(_qs(q=q, page=number))}">CSV</a>'
                   + "".join(f'<a href="/?{esc(_qs(q=q, page=p, refresh=refresh))}">'
                             f"{'<b>' if p == number else ''}page {p}"
                             f"{'</b>' if p == number else ''}</a>"
                             for p in range(1, pages + 1) if pages > 1)
                   + f' <span class="muted">{len(groups)} function(s)</span></nav>')
            body = ("<h1>stream-mlops live</h1>" + _header(n) + nav
                    + _rows_table(rows, False, refresh) + _sections(n))
            return _send(start_response, HTML, page("stream-mlops live", body, refresh))
        tenant, name = req.get("tenant"), req.get("name")
        n = Numbers(self.sampler, (0, 1, 2, 3))
        groups = [g for g in sorted(n.groups) if g[0] == tenant and g[1] == name]
        rows = n.rows(groups, charts=not req.path.endswith(".csv"))
        if req.path.endswith(".csv"):
            return _send(start_response, CSV, _csv(rows), "stream-mlops-function.csv")
        if not groups:
            body = (f"<h1>{esc(name)}</h1><p>No function {esc(name)!s} of tenant "
                    f"{esc(tenant)} has been seen. <a href=\"/\">All functions</a></p>")
            return _send(start_response, HTML, page(name, body, refresh), status="404 Not Found")
        body = (f'<h1>{esc(name)} <span class="muted">({esc(tenant)})</span></h1>'
                + _header(n, tenant)
                + f'<nav><a href="/?{esc(_qs(refresh=refresh))}">all functions</a>'
                  f'<a id="csv" href="/function.csv?{esc(_qs(tenant=tenant, name=name))}">'
                  "CSV</a></nav>"
                + _rows_table(rows, True, refresh) + _sections(n, tenant, name))
        return _send(start_response, HTML, page(f"{name} · stream-mlops", body, refresh))


def _csv(rows: list[Row]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["tenant", "function", "model", "variant", "requests_per_second",
                "error_ratio", "p95_latency_seconds", "cost_today_usd", "firing_alerts"])
    for r in rows:
        w.writerow([_cell(r.tenant), _cell(r.function), _cell(r.model), _cell(r.variant),
                    *("" if not math.isfinite(v) else repr(round(v, 6))
                      for v in (r.rps, r.error_ratio, r.p95, r.cost_today)), r.alerts])
    return buf.getvalue().encode()


def _cell(text: str) -> str:
    """A label as a spreadsheet cell: never a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _send(start_response: StartResponse, content_type: str, body: bytes,
          filename: str | None = None, status: str = "200 OK") -> list[bytes]:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))),
               ("Cache-Control", "no-store"),
               ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; "
                                           "img-src 'self'; form-action 'self'")]
    if filename:
        headers.append(("Content-Disposition", f'attachment; filename="{filename}"'))
    start_response(status, headers)
    return [body]
