"""A model card from a spec and live evidence: the card as data (JSON), its Hugging Face
Markdown (YAML front matter with ``model-index``, then the sections), its content hash
and the differences between two versions. Pure: no I/O.

Every measured number names its window; rates carry a 95 % Wilson interval, experiment
differences their always-valid interval as the experiments monitor stored it. A spec
section that is missing reads "not provided".
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from jinja2 import Environment, StrictUndefined

from stream_mlops.alerts.rules import wilson_bounds
from stream_mlops.cards.evidence import Evidence, Totals
from stream_mlops.cards.spec import SECTIONS, Spec

SCHEMA = "stream-mlops/model-card/1"
NOT_PROVIDED = "not provided"
Z95 = 1.959963984540054
DAYS_PER_MONTH = 30.4375  # 365.25 / 12
# Fields that say when and why a version was made, not what it says.
VOLATILE = ("generated_at", "trigger", "trigger_ref", "version", "window")


def iso(t: float | None) -> str | None:
    """Unix seconds as ISO 8601 UTC (seconds).

    >>> iso(0.0)
    '1970-01-01T00:00:00Z'
    """
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def wilson95(k: int, n: int) -> list[float] | None:
    """95 % Wilson interval of ``k / n`` (None when n = 0).

    >>> [round(x, 4) for x in wilson95(5, 100)]
    [0.0215, 0.1118]
    """
    if n <= 0:
        return None
    lo, hi = wilson_bounds(np.array([k]), np.array([n]), Z95)
    return [float(lo[0]), float(hi[0])]


def _div(a: float, b: float) -> float | None:
    return a / b if b else None


def _slice(t: Totals) -> dict[str, Any]:
    success = t.requests - t.errors
    return {
        "name": t.slice_name, "requests": t.requests, "errors": t.errors,
        "error_rate": _div(t.errors, t.requests), "error_rate_ci95": wilson95(t.errors, t.requests),
        "latency_p50_ms": t.latency_p50_ms, "latency_p95_ms": t.latency_p95_ms,
        "latency_p99_ms": t.latency_p99_ms,
        "cost_per_request_usd": _div(t.cost_usd, t.priced),
        "cost_per_successful_request_usd": _div(t.cost_usd, success) if t.priced else None,
        "confidence_mean": t.confidence_mean,
    }


def _measured(ev: Evidence) -> dict[str, Any]:
    t = ev.totals
    days = max((ev.window_end - ev.window_start) / 86400.0, 1e-9)
    success = t.requests - t.errors
    unpriced = t.requests - t.priced
    return {
        "requests": t.requests,
        "requests_per_day": t.requests / days,
        "first_request_at": iso(t.first_at), "last_request_at": iso(t.last_at),
        "latency_ms": {"p50": t.latency_p50_ms, "p95": t.latency_p95_ms,
                       "p99": t.latency_p99_ms, "mean": t.latency_mean_ms},
        "errors": {
            "count": t.errors, "rate": _div(t.errors, t.requests),
            "rate_ci95": wilson95(t.errors, t.requests),
            "types": [{"type": e.error_type, "count": e.count,
                       "share": _div(e.count, t.errors)} for e in ev.error_types],
        },
        "confidence": None if not t.confidence_n else {
            "n": t.confidence_n, "mean": t.confidence_mean, "p10": t.confidence_p10,
            "p50": t.confidence_p50, "p90": t.confidence_p90,
            "histogram": [[b.lo, b.hi, b.count] for b in ev.confidence_histogram]},
        "cost": {
            "total_usd": t.cost_usd if t.priced else None,
            "per_request_usd": _div(t.cost_usd, t.priced),
            # Unpriced requests are left out of the cost but not of the successes: the
            # figure is only given when every request has a known cost.
            "per_successful_request_usd": _div(t.cost_usd, success) if unpriced == 0 else None,
            "per_month_usd": t.cost_usd / days * DAYS_PER_MONTH if t.priced else None,
            "priced_requests": t.priced, "unpriced_requests": unpriced},
        "tokens": {"prompt": t.prompt_tokens, "completion": t.completion_tokens},
        "latency_histogram_ms": [[b.lo, b.hi, b.count] for b in ev.latency_histogram],
        "daily": [{"day": iso(d.day), "requests": d.requests, "errors": d.errors,
                   "error_rate": _div(d.errors, d.requests),
                   "error_rate_ci95": wilson95(d.errors, d.requests), "cost_usd": d.cost_usd}
                  for d in ev.days],
    }


def _experiments(ev: Evidence) -> list[dict[str, Any]]:
    out = []
    for e in ev.experiments:
        results = e.results if isinstance(e.results, Mapping) else {}
        tests = []
        for metric, by_arm in (results.get("metrics") or {}).items():
            for arm, s in by_arm.items():
                tests.append({
                    "metric": metric, "arm": arm, "primary": metric == e.primary_metric,
                    "control_mean": s["control"]["mean"], "control_n": s["control"]["n"],
                    "treatment_mean": s["treatment"]["mean"], "treatment_n": s["treatment"]["n"],
                    "difference": s.get("difference"),
                    "difference_ci": s.get("difference_ci"), "lift": s.get("lift"),
                    "p_value": s.get("p_value"), "decision": s.get("decision")})
        srm = results.get("srm")
        out.append({"name": e.name, "status": e.status, "decision": e.decision,
                    "primary_metric": e.primary_metric, "alpha": e.alpha,
                    "started_at": iso(e.started_at), "stopped_at": iso(e.stopped_at),
                    "sample_ratio_mismatch": None if not srm else bool(srm.get("mismatch")),
                    "tests": tests})
    return out


def build_card(spec: Spec | None, ev: Evidence) -> dict[str, Any]:
    """The card as data: spec sections verbatim, measured numbers with their window.

    Examples
    --------
    >>> from stream_mlops.cards.evidence import Totals
    >>> t = Totals(1000, 20, 120.0, 480.0, 900.0, 150.0, 2.5, 1000, 0, None, None, None,
    ...            None, 0, 0, 0.0, 86400.0)
    >>> card = build_card(None, Evidence("default", "f", "m", 0.0, 7 * 86400.0, t))
    >>> card["spec"]["intended_use"], card["measured"]["errors"]["rate"]
    ('not provided', 0.02)
    >>> [round(x, 4) for x in card["measured"]["errors"]["rate_ci95"]]
    [0.013, 0.0307]
    """
    s = spec or Spec()
    spec_part: dict[str, Any] = {k: getattr(s, k) or NOT_PROVIDED for k in SECTIONS}
    spec_part.update(title=s.title, description=s.description or NOT_PROVIDED, task=s.task,
                     license=s.license, owners=list(s.owners), tags=list(s.tags),
                     provided=spec is not None)
    slices: dict[str, list[dict[str, Any]]] = {}
    for t in ev.slices:
        slices.setdefault(t.slice_kind, []).append(_slice(t))
    return {
        "schema": SCHEMA,
        "tenant": ev.tenant_id, "function": ev.function_name, "model": ev.model,
        "window": {"start": iso(ev.window_start), "end": iso(ev.window_end),
                   "days": round((ev.window_end - ev.window_start) / 86400.0, 4)},
        "spec": spec_part,
        "traffic": ev.totals.requests > 0,
        "measured": _measured(ev),
        "slices": slices,
        "drift": {
            "tests": len(ev.drift) if ev.drift_tests is None else ev.drift_tests,
            "confirmed": [_drift(d) for d in ev.drift if d.drift_detected],
            "latest": [_drift(d) for d in _latest_per_metric(ev)]},
        "experiments": _experiments(ev),
        "deployments": [{
            "id": d.id, "version": d.version, "previous_version": d.previous_version,
            "slot": d.slot, "status": d.status,
            "traffic_percent": d.traffic_percent, "reason": d.reason, "by": d.created_by,
            "created_at": iso(d.created_at), "promoted_at": iso(d.promoted_at),
            "rolled_back_at": iso(d.rolled_back_at)} for d in ev.deployments],
        "deployment_history": [{
            "deployment": t.deployment_id, "version": t.version, "from": t.from_status,
            "to": t.to_status, "traffic_percent": t.traffic_percent, "reason": t.reason,
            "by": t.actor, "at": iso(t.at)} for t in ev.transitions],
        "deployment_gates": [{
            "deployment": g.deployment_id, "version": g.version, "outcome": g.outcome,
            "traffic_percent": g.traffic_percent, "samples_live": g.samples_live,
            "samples_new": g.samples_new, "metrics": g.metrics, "message": g.message,
            "at": iso(g.checked_at)} for g in ev.gates],
        "open_alerts": [{"type": a.alert_type, "severity": a.severity, "title": a.title,
                         "state": a.state, "since": iso(a.first_seen),
                         "last_seen": iso(a.last_seen)} for a in ev.alerts],
    }


def _drift(d: Any) -> dict[str, Any]:
    return {"metric": d.metric_name, "test": d.test_name, "statistic": d.statistic,
            "p_value": d.p_value, "threshold": d.threshold, "effect_size": d.effect_size,
            "drift": d.drift_detected, "at": iso(d.detected_at)}


def _latest_per_metric(ev: Evidence) -> list[Any]:
    latest: dict[str, Any] = {}
    for d in sorted(ev.drift, key=lambda d: d.detected_at):
        latest[d.metric_name] = d
    return [latest[m] for m in sorted(latest)]


def content_hash(card: Mapping[str, Any]) -> str:
    """SHA-256 of what the card says (not when or why it was made).

    >>> a = {"measured": {"requests": 3}, "generated_at": "x", "trigger": "manual"}
    >>> content_hash(a) == content_hash({**a, "generated_at": "y"})
    True
    """
    body = {k: v for k, v in card.items() if k not in VOLATILE}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# -- Hugging Face layout ---------------------------------------------------------------------


def _metric(kind: str, value: float | None, name: str) -> dict[str, Any] | None:
    if value is None or not math.isfinite(value):
        return None
    return {"type": kind, "value": round(float(value), 6), "name": name}


def model_index(card: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The card's ``model-index`` (Hugging Face's evaluation results): the measured
    production numbers, with the window as the dataset."""
    m = card["measured"]
    metrics = [x for x in (
        _metric("error_rate", m["errors"]["rate"], "Error rate"),
        _metric("latency_p50_ms", m["latency_ms"]["p50"], "Latency p50 (ms)"),
        _metric("latency_p95_ms", m["latency_ms"]["p95"], "Latency p95 (ms)"),
        _metric("latency_p99_ms", m["latency_ms"]["p99"], "Latency p99 (ms)"),
        _metric("mean_confidence", (m["confidence"] or {}).get("mean"), "Mean confidence"),
        _metric("cost_per_request_usd", m["cost"]["per_request_usd"], "Cost per request (USD)"),
    ) if x is not None]
    if not metrics:
        return []
    w = card["window"]
    return [{"name": f"{card['function']} ({card['model']})", "results": [{
        "task": {"type": card["spec"]["task"], "name": card["spec"]["task"]},
        "dataset": {"type": "production-traffic",
                    "name": f"{card['tenant']}/{card['function']} requests "
                            f"{w['start']} to {w['end']}",
                    "split": "live"},
        "metrics": metrics}]}]


def front_matter(card: Mapping[str, Any]) -> dict[str, Any]:
    s = card["spec"]
    meta: dict[str, Any] = {}
    if s["license"]:
        meta["license"] = s["license"]
    meta["tags"] = ["stream-mlops", "model-card-from-live-evidence", *s["tags"]]
    meta["base_model"] = card["model"]
    meta["pipeline_tag"] = s["task"]
    index = model_index(card)
    if index:
        meta["model-index"] = index
    return meta


def fmt(v: Any, kind: str = "") -> str:
    """A number as a card shows it ("n/a" when it cannot be measured).

    >>> fmt(0.01234, "pct"), fmt(0.000123, "usd"), fmt(1234.5, "ms"), fmt(None)
    ('1.23%', '$0.000123', '1,234.5 ms', 'n/a')
    """
    if v is None:
        return "n/a"
    if kind == "pct":
        return f"{v:.2%}"
    if kind == "usd":
        return f"${v:,.2f}" if abs(v) >= 1 else f"${v:.3g}"
    if kind == "ms":
        return f"{v:,.1f} ms"
    if kind == "p":
        return f"{v:.3g}"
    if isinstance(v, float):
        return f"{v:,.4g}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def ci(v: list[float] | None, kind: str = "pct") -> str:
    return "" if not v else f" [{fmt(v[0], kind)}, {fmt(v[1], kind)}]"


_ENV = Environment(autoescape=False, undefined=StrictUndefined, trim_blocks=True,  # noqa: S701 (Markdown, not HTML)
                   lstrip_blocks=True, keep_trailing_newline=True)
_ENV.filters["fmt"] = fmt
_ENV.filters["ci"] = ci

# The layout of https://huggingface.co/docs/hub/model-cards, Operations added.
MARKDOWN = _ENV.from_string((Path(__file__).parent / "card.md.j2").read_text())


def render_markdown(card: Mapping[str, Any]) -> str:
    """The card in the Hugging Face layout (``huggingface_hub.ModelCard`` reads it)."""
    meta = yaml.safe_dump(front_matter(card), sort_keys=False, allow_unicode=True)
    return MARKDOWN.render(c=card, m=card["measured"], meta=meta,
                           version=card.get("version"), trigger=card.get("trigger"))


# -- differences ------------------------------------------------------------------------------


def _flatten(v: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(v, Mapping):
        for k in v:
            yield from _flatten(v[k], f"{path}.{k}" if path else str(k))
    elif isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v):
        for i, x in enumerate(v):
            key = x.get("name") or x.get("type") or x.get("day") or x.get("id") or i
            yield from _flatten(x, f"{path}[{key}]")
    else:
        yield path, v


def diff_cards(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """What changed between two versions, numbers first, then the rest (text, lists).

    >>> diff_cards({"a": 1, "s": "x", "w": {}}, {"a": 2, "s": "y", "w": {}})
    [('a', 1, 2), ('s', 'x', 'y')]
    """
    a = {k: v for k, v in _flatten({k: old[k] for k in old if k not in VOLATILE})}
    b = {k: v for k, v in _flatten({k: new[k] for k in new if k not in VOLATILE})}
    changed = [(k, a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys())
               if a.get(k) != b.get(k)]

    def numeric(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool)

    return sorted(changed, key=lambda c: (not (numeric(c[1]) or numeric(c[2])),
                                          not c[0].startswith("measured"), c[0]))
