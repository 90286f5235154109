"""Deployments in the processor: the gate of every deployment in progress, its moves, its
alerts and metrics.

A monitor (see :mod:`stream_mlops.core.monitor`) whose work is one job, ``deployments``,
run every second on the consumer's thread between batches. For each active deployment it
reads the function's requests consumed since the gate's stored cursor (``deployment_rows``),
feeds them to the :class:`~stream_mlops.deployments.gate.Gate`, decides, and writes the
gate's state with the consumer's cursor, the move and its gate result in one statement.
A restart (even ``kill -9`` mid-step) resumes from that state and counts every consumed
request once; the write only applies from the status and step it was decided in, so a
rollback happens once, and a move by hand in between wins.

Alerts (type ``deployment``, through the alert lifecycle): a rolled-back or failed
deployment (the latest of its function, for a day or until the next deployment), and
failing health checks while a deployment is active.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from stream_mlops.core.alerts import AlertChange, AlertKey, Episodes, alert_change
from stream_mlops.core.batch import Batch
from stream_mlops.core.monitor import NOTHING, Cursor, Job, MetricsBuilder, Monitor, Observed, Store
from stream_mlops.core.rows import OpenAlertRow
from stream_mlops.deployments.gate import HEALTH_FAILURES, METRICS, Decision, Gate, Plan

STATUSES = ("pending", "shifting", "promoted", "retired", "rolled_back", "failed")


@dataclass(frozen=True)
class DeploymentRow:
    """An active deployment (``active_deployments``); times in unix seconds."""

    id: int
    tenant_id: str
    function_name: str
    version: str
    slot: str
    previous_slot: str | None
    previous_version: str | None
    status: str
    traffic_percent: float
    steps: list[float]
    step_index: int
    min_samples: int
    step_seconds: float
    alpha: float
    max_error_rate: float
    health: Any  # JSON as stored
    gate: Any  # JSON as stored
    started_at: float | None
    step_started_at: float | None
    promoted_at: float | None

    @property
    def plan(self) -> Plan:
        return Plan(tuple(float(s) for s in self.steps), int(self.min_samples),
                    float(self.step_seconds), float(self.alpha), float(self.max_error_rate))


@dataclass(frozen=True)
class OutcomeRow:
    """The latest deployment of a function (``deployment_outcomes``)."""

    id: int
    tenant_id: str
    function_name: str
    version: str
    slot: str
    previous_slot: str | None
    previous_version: str | None
    status: str
    reason: str
    recent: bool
    rollbacks: int


@dataclass(frozen=True)
class DeploymentColumns:
    """A deployment's requests, column-wise (``deployment_rows``)."""

    is_new: list[bool]
    latency_ms: list[float]
    is_error: list[bool]
    confidence: list[float]


@dataclass(frozen=True)
class Applied:
    applied: int


@dataclass
class Followed:
    """A deployment the gate follows, with the cursor its state counts up to."""

    gate: Gate
    cursor: Cursor = field(default_factory=Cursor)
    recorded: str = ""  # the kind of the last gate result recorded (to skip repeats)


class DeploymentGates(Monitor):
    """Every deployment in progress, gated on the request stream."""

    name = "deployments"
    EVERY_SECONDS = 1.0

    def __init__(self) -> None:
        self.followed: dict[int, Followed] = {}
        self.episodes = Episodes()
        self.view: dict[tuple[str, str], dict[str, Any]] = {}  # what /metrics shows

    # -- the monitor contract ---------------------------------------------------------
    def restore(self, store: Store) -> None:
        self.episodes.open = {AlertKey(r.tenant_id, r.fingerprint) for r in store.rows(
            "open_alerts", OpenAlertRow, type="deployment")}
        self.followed = {}

    def observe(self, batch: Batch) -> Observed:
        """Nothing per batch: the job reads each deployment's rows with its own cursor
        (the batch does not carry the slot), right after the batches that consumed them."""
        return NOTHING

    def jobs(self) -> Sequence[Job]:
        return (Job("deployments", self.EVERY_SECONDS, self.run),)

    def metrics(self, now: float) -> MetricsBuilder:
        view = [dict(v) for v in self.view.values()]
        firing = [_alert_labels(k) for k in sorted(self.episodes.open)]
        return lambda: _families(view, firing)

    # -- the job --------------------------------------------------------------------------
    def run(self, store: Store) -> list[AlertChange]:
        """Look at every active deployment, then settle the deployment alerts."""
        active = store.rows("active_deployments", DeploymentRow)
        for gone in set(self.followed) - {r.id for r in active}:
            del self.followed[gone]
        moved = False
        for row in active:
            # One deployment the gate cannot handle (a row written around the checks) is
            # reported and skipped; the others go on.
            looked: list[Decision] = []

            def work(row: DeploymentRow = row, looked: list[Decision] = looked) -> None:
                looked.append(self.look(store, row))

            if store.isolated(f"deployment {row.id} of {row.function_name}", work):
                moved |= looked[0].transition
            else:
                self.followed.pop(row.id, None)
        if moved:  # what the metrics and alerts show is what was just written
            active = store.rows("active_deployments", DeploymentRow)
        outcomes = store.rows("deployment_outcomes", OutcomeRow)
        self._refresh_view(active, outcomes)
        return self._alerts(active, outcomes)

    def look(self, store: Store, row: DeploymentRow) -> Decision:
        """Feed, decide and write one deployment (see the module docstring)."""
        f = self.followed.get(row.id) or self._follow(store, row)
        f.gate.enter(f"{row.status}:{row.step_index}")  # rows since the move count in it
        # Promoted by hand straight from pending: its period starts at the promotion.
        began = row.started_at if row.started_at is not None else row.promoted_at
        if row.status != "pending" and began is not None:
            cols, = store.rows("deployment_rows", DeploymentColumns, tenant_id=row.tenant_id,
                               function_name=row.function_name, slot=row.slot,
                               since=began, **f.cursor.params("from"))
            if cols.is_new:
                f.gate.observe(np.array(cols.is_new, np.bool_),
                               np.array(cols.latency_ms, np.float64),
                               np.array(cols.is_error, np.bool_),
                               np.array(cols.confidence, np.float64))
        f.cursor = store.cursor
        since = row.promoted_at if row.status == "promoted" else row.step_started_at
        failures, error = _health(row.health)
        d = f.gate.decide(row.status, row.step_index, since, store.now,
                         health_failures=failures, health_error=error)
        kind = d.outcome + ":" + d.message.split(":", 1)[0] + f":{d.step_index}"
        record = d.transition or kind != f.recorded
        numbers = f.gate.numbers()
        last = {"outcome": d.outcome, "message": d.message, "checked_at": store.now,
                "traffic_percent": d.traffic_percent, "metrics": numbers,
                "samples": {"live": f.gate.n[0], "new": f.gate.n[1],
                            "step_new": f.gate.step_n[1]}}
        gate = {"state": {**f.gate.state(), "cursor": f.cursor.to_json()}, "last": last}
        applied, = store.rows(
            "write_deployment_gate", Applied, id=row.id, gate=json.dumps(_jsonable(gate)),
            status=d.status, traffic_percent=d.traffic_percent, step_index=d.step_index,
            transition=d.transition, message=d.message, expected_status=row.status,
            expected_step=row.step_index, record=record, outcome=d.outcome,
            samples_live=f.gate.n[0], samples_new=f.gate.n[1],
            metrics=json.dumps(_jsonable(numbers)))
        if not applied.applied or d.transition:
            # Moved by hand in between (its state was not written: rebuilt from the
            # stored one), or moved now (the next look reads the new row).
            self.followed.pop(row.id, None)
            if applied.applied:
                self._follow_state(row, f, d)
        else:
            f.recorded = kind if record else f.recorded
        return d

    def _follow(self, store: Store, row: DeploymentRow) -> Followed:
        stored = row.gate.get("state") if isinstance(row.gate, Mapping) else None
        if stored:
            try:
                f = Followed(Gate.from_state(row.plan, stored), Cursor.from_json(
                    stored["cursor"]))
            except (ValueError, TypeError, KeyError) as exc:
                store.report(f"deployment {row.id} of {row.function_name}: its stored gate "
                             f"cannot be used ({exc}); rebuilding it from its requests")
                f = Followed(Gate(row.plan))
        else:
            f = Followed(Gate(row.plan))
        self.followed[row.id] = f
        return f

    def _follow_state(self, row: DeploymentRow, f: Followed, d: Decision) -> None:
        if d.status in ("pending", "shifting", "promoted"):
            f.recorded = ""
            self.followed[row.id] = f

    # -- alerts and metrics ---------------------------------------------------------------
    def _alerts(self, active: Sequence[DeploymentRow], outcomes: Sequence[OutcomeRow]
                ) -> list[AlertChange]:
        fired, wanted = [], set()
        for o in outcomes:
            if o.status not in ("rolled_back", "failed") or not o.recent:
                continue
            key = AlertKey(o.tenant_id, f"deployment:{o.function_name}:{o.id}:{o.status}")
            wanted.add(key)
            if key not in self.episodes.open:
                word = "rolled back" if o.status == "rolled_back" else "failed"
                fired.append(alert_change(
                    "fire", key, "deployment", rule=f"deployment_{o.status}",
                    severity="critical", function=o.function_name,
                    title=f"Deployment of {o.function_name} {o.version} {word}",
                    message=f"{o.function_name} {o.version} ({o.slot}) {word}: {o.reason}. "
                    f"Traffic is back on {o.previous_slot} "
                    f"{o.previous_version or '(the version before)'}.",
                    value=1.0, threshold=0.0, details={"deployment_id": o.id}))
        for r in active:
            failures, error = _health(r.health)
            if failures == 0:
                continue
            key = AlertKey(r.tenant_id, f"deployment:{r.function_name}:{r.id}:health")
            wanted.add(key)
            if key not in self.episodes.open:
                fired.append(alert_change(
                    "fire", key, "deployment", rule="deployment_health", severity="warning",
                    function=r.function_name,
                    title=f"Health check failing for {r.function_name} {r.version}",
                    message=f"{failures} failed health check(s) in a row: {error}. The "
                    f"deployment fails at {HEALTH_FAILURES}.",
                    value=float(failures), threshold=float(HEALTH_FAILURES),
                    details={"deployment_id": r.id}))
        return self.episodes.settle(wanted, fired, lambda key: alert_change(
            "resolve", key, "deployment", rule="deployment",
            message="A newer deployment started, or the checks pass again."))

    def _refresh_view(self, active: Sequence[DeploymentRow],
                      outcomes: Sequence[OutcomeRow]) -> None:
        view: dict[tuple[str, str], dict[str, Any]] = {}
        for o in outcomes:
            live = o.slot if o.status in ("promoted", "retired") else o.previous_slot
            version = o.version if o.status in ("promoted", "retired") else o.previous_version
            view[(o.tenant_id, o.function_name)] = {
                "tenant": o.tenant_id, "function": o.function_name, "status": o.status,
                "rollbacks": o.rollbacks,
                "traffic": [(live or "blue", version or "", 1.0)], "p": {}, "thresholds": None,
                "samples": {}}
        for r in active:
            v = view.setdefault((r.tenant_id, r.function_name), {
                "tenant": r.tenant_id, "function": r.function_name, "rollbacks": 0})
            share = r.traffic_percent / 100
            f = self.followed.get(r.id)
            p = r.plan
            v |= {"status": r.status,
                  "traffic": [(r.slot, r.version, share),
                              (r.previous_slot or "blue", r.previous_version or "", 1 - share)],
                  "p": f.gate.p_values() if f else {},
                  "thresholds": (p.metric_alpha, p.max_error_rate, p.min_samples),
                  "samples": {r.slot: f.gate.n[1], r.previous_slot or "blue": f.gate.n[0]}
                  if f else {}}
        self.view = view


def _alert_labels(key: AlertKey) -> tuple[str, str, str, str]:
    """``(tenant, function, rule, severity)`` of an open deployment alert, from its
    fingerprint ``deployment:FUNCTION:ID:KIND`` (function names may hold colons)."""
    function, _, kind = key.fingerprint.removeprefix("deployment:").rsplit(":", 2)
    return (key.tenant_id, function, f"deployment_{kind}",
            "warning" if kind == "health" else "critical")


def _health(health: Any) -> tuple[int, str]:
    """Consecutive failed health checks and the last error (``health`` as recorded)."""
    if not isinstance(health, Mapping):
        return 0, ""
    try:
        return max(0, int(health.get("failures", 0))), str(health.get("error", ""))[:300]
    except (TypeError, ValueError):
        return 0, ""


def _jsonable(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


def _families(view: Sequence[dict[str, Any]],
              firing: Sequence[tuple[str, str, str, str]]) -> Iterator[Metric]:
    tf = ["tenant", "function"]
    active = GaugeMetricFamily(
        "mlops_deployment_alert_active",
        "1 for every open deployment alert (rolled back, failed, health checks failing).",
        labels=[*tf, "rule", "severity"])
    for labels in firing:
        active.add_metric(list(labels), 1.0)
    traffic = GaugeMetricFamily(
        "mlops_deployment_traffic_ratio",
        "Share of units served by each slot and version of a function (0-1).",
        labels=[*tf, "slot", "version"])
    status = GaugeMetricFamily(
        "mlops_deployment_status",
        "1 for the status the function's latest deployment is in, 0 for the others.",
        labels=[*tf, "status"])
    p_value = GaugeMetricFamily(
        "mlops_deployment_gate_p_value",
        "Always-valid p-value of the new version vs the live one (valid whenever read); "
        "harm at or below mlops_deployment_gate_alpha rolls back.",
        labels=[*tf, "metric"])
    alpha = GaugeMetricFamily("mlops_deployment_gate_alpha",
                              "The gate's threshold on each metric's p-value.",
                              labels=[*tf, "metric"])
    ceiling = GaugeMetricFamily("mlops_deployment_max_error_rate",
                                "The new version's error-rate ceiling (a hard guard).",
                                labels=tf)
    min_samples = GaugeMetricFamily(
        "mlops_deployment_min_samples",
        "Requests of the new version each step needs before the next.", labels=tf)
    samples = GaugeMetricFamily(
        "mlops_deployment_samples",
        "Requests counted by the gate of the deployment in progress, per slot.",
        labels=[*tf, "slot"])
    rollbacks = CounterMetricFamily("mlops_deployment_rollbacks",
                                    "Deployments rolled back, per function.", labels=tf)
    for v in view:
        t, fn = v["tenant"], v["function"]
        for slot, version, share in v["traffic"]:
            traffic.add_metric([t, fn, slot, version], share)
        for s in STATUSES:
            status.add_metric([t, fn, s], float(v["status"] == s))
        for m, p in v["p"].items():
            p_value.add_metric([t, fn, m], p)
        if v["thresholds"] is not None:
            a, c, n = v["thresholds"]
            for m in METRICS:
                alpha.add_metric([t, fn, m], a)
            ceiling.add_metric([t, fn], c)
            min_samples.add_metric([t, fn], n)
        for slot, n in v["samples"].items():
            samples.add_metric([t, fn, slot], n)
        rollbacks.add_metric([t, fn], v["rollbacks"])
    yield from (traffic, status, p_value, alpha, ceiling, min_samples, samples, rollbacks,
                active)
