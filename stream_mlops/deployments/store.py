"""Deployments in the database: start, read, promote, roll back, history, routing.

The Python API of the deployment lifecycle (``stream-mlops deploy`` is a thin layer over
it); the database enforces the state machine (``sql/0013_deployments.sql``), this module
turns its refusals into one-line errors::

    with connect(url, autocommit=True) as conn:
        dep = start(conn, DeploymentSpec("summarize", "v2", steps=(10, 50, 100)))
        info = latest(conn, "summarize")
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row, dict_row
from psycopg.types.json import Jsonb

from stream_mlops.db.queries import q
from stream_mlops.deployments.routing import Route
from stream_mlops.errors import MlopsError

Conn = psycopg.Connection[Any]
ACTIVE = ("pending", "shifting", "promoted")


class DeploymentError(MlopsError):
    """A deployment request the lifecycle refuses (one line, names what is wrong)."""


@dataclass(frozen=True)
class DeploymentSpec:
    """What to deploy and how to shift traffic to it."""

    function_name: str
    version: str
    tenant_id: str = "default"
    steps: tuple[float, ...] = (10.0, 25.0, 50.0, 100.0)
    min_samples: int = 200
    step_seconds: float = 300.0
    health_url: str | None = None
    notes: str | None = None
    artifact: str | None = None
    alpha: float = 0.05
    max_error_rate: float = 0.5
    reason: str | None = None

    def check(self) -> None:
        """ValueError naming the first thing wrong (the database checks the same)."""
        if not self.steps:
            raise ValueError("steps: give at least one percentage, e.g. 10,25,50,100")
        for s in self.steps:
            if not (math.isfinite(s) and 0 < s <= 100):
                raise ValueError(f"steps: {s:g} is outside (0, 100]")
        if any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError("steps: must increase, e.g. 10,25,50,100, got "
                             + ",".join(f"{s:g}" for s in self.steps))
        if not 10 <= self.min_samples <= 1_000_000_000:
            raise ValueError(f"min samples: {self.min_samples} is outside 10 to 1000000000")
        if not (math.isfinite(self.step_seconds) and 0 <= self.step_seconds <= 604800):
            raise ValueError(f"step seconds: {self.step_seconds:g} is outside 0 to 604800")
        if not 1 <= len(self.version) <= 100 or not _safe(self.version):
            raise ValueError("version: 1 to 100 characters, no control characters")
        if not 1 <= len(self.function_name) <= 200 or not _safe(self.function_name):
            raise ValueError("function: 1 to 200 characters, no control characters")


def _safe(text: str) -> bool:
    return not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c in
                   "\u2028\u2029\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e"
                   "\u2066\u2067\u2068\u2069" for c in text)


@dataclass(frozen=True)
class DeploymentInfo:
    """A deployment as stored (``deployment_latest``, ``deployment_by_id``)."""

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
    health_url: str | None
    reason: str | None
    notes: str | None
    artifact: str | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    promoted_at: datetime | None
    rolled_back_at: datetime | None
    finished_at: datetime | None
    last_gate: Any
    health: Any
    seed: str

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def as_json(self) -> dict[str, Any]:
        """What ``deploy status --json`` prints."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("seed", "last_gate")}
        out["last_gate"] = self.last_gate or None
        for k, v in out.items():
            if isinstance(v, datetime):
                out[k] = v.isoformat()
        return out


@dataclass(frozen=True)
class HistoryEntry:
    """One event of a function's deployments (``deployment_history``)."""

    deployment_id: int
    version: str
    at: datetime
    kind: str
    status: str | None
    traffic_percent: float
    detail: str | None
    actor: str


@dataclass(frozen=True)
class _Known:
    known: bool


def start(conn: Conn, spec: DeploymentSpec) -> int:
    """Insert ``spec`` as a pending deployment (the processor starts shifting it); its id."""
    try:
        spec.check()
    except ValueError as exc:
        raise DeploymentError(str(exc)) from None
    try:
        with conn.cursor(row_factory=class_row(_Known)) as cur:
            known = cur.execute(q("function_known"), {
                "tenant_id": spec.tenant_id, "function_name": spec.function_name}
                ).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        # The application's role may log requests without reading them: it cannot tell
        # a new function from a typo, and the deployment holds until traffic arrives.
        if not conn.autocommit:
            conn.rollback()
        known = _Known(True)
    if known is None or not known.known:
        raise DeploymentError(
            f"unknown function {spec.function_name!r} for tenant {spec.tenant_id!r}: no "
            "request of it was logged (check the name, or log one first)")
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(q("start_deployment"), {
                "tenant_id": spec.tenant_id, "function_name": spec.function_name,
                "version": spec.version, "notes": spec.notes, "artifact": spec.artifact,
                "steps": list(spec.steps), "min_samples": spec.min_samples,
                "step_seconds": spec.step_seconds, "health_url": spec.health_url,
                "alpha": spec.alpha, "max_error_rate": spec.max_error_rate,
                "reason": spec.reason}).fetchone()
    except psycopg.errors.UniqueViolation:
        running = latest(conn, spec.function_name, spec.tenant_id)
        raise DeploymentError(
            f"{spec.function_name} already has a deployment in progress ({running.version}, "
            f"{running.status}); promote or roll it back first") from None
    except (psycopg.errors.CheckViolation, psycopg.errors.InsufficientPrivilege) as exc:
        raise DeploymentError(_message(exc)) from None
    assert row is not None
    return int(row["id"])


def latest(conn: Conn, function_name: str, tenant_id: str = "default") -> DeploymentInfo:
    """The function's latest deployment (DeploymentError when it has none)."""
    with conn.cursor(row_factory=class_row(DeploymentInfo)) as cur:
        row = cur.execute(q("deployment_latest"), {
            "tenant_id": tenant_id, "function_name": function_name}).fetchone()
    if row is None:
        raise DeploymentError(f"no deployment of {function_name!r} for tenant {tenant_id!r}")
    return row


def by_id(conn: Conn, deployment_id: int) -> DeploymentInfo:
    with conn.cursor(row_factory=class_row(DeploymentInfo)) as cur:
        row = cur.execute(q("deployment_by_id"), {"id": deployment_id}).fetchone()
    if row is None:
        raise DeploymentError(f"no deployment {deployment_id}")
    return row


def move(conn: Conn, function_name: str, status: str, reason: str,
         tenant_id: str = "default") -> DeploymentInfo:
    """Promote or roll back the function's deployment in progress by hand."""
    d = latest(conn, function_name, tenant_id)
    word = {"promoted": "promote", "rolled_back": "roll back"}.get(status, status)
    if not d.active or (status == "promoted" and d.status == "promoted"):
        raise DeploymentError(
            f"cannot {word} {function_name}: its latest deployment ({d.version}) is "
            f"{d.status}" + ("; start a new one" if not d.active else ""))
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(q("move_deployment"), {
                "id": d.id, "status": status, "reason": reason,
                "expected": d.status}).fetchone()
    except (psycopg.errors.CheckViolation, psycopg.errors.InsufficientPrivilege) as exc:
        raise DeploymentError(_message(exc)) from None
    if row is None:  # the gate moved it in between: say what it is now
        now = by_id(conn, d.id)
        raise DeploymentError(f"cannot {word} {function_name}: the gate moved it to "
                              f"{now.status} meanwhile ({now.reason})")
    return by_id(conn, d.id)


def record_health(conn: Conn, deployment_id: int, *, ok: bool, error: str, failures: int,
                  at: float) -> None:
    conn.execute(q("record_deployment_health"), {"id": deployment_id, "health": Jsonb({
        "ok": ok, "error": error[:300], "failures": failures, "checked_at": at})})


def history(conn: Conn, function_name: str, tenant_id: str = "default",
            limit: int = 1000) -> list[HistoryEntry]:
    with conn.cursor(row_factory=class_row(HistoryEntry)) as cur:
        return cur.execute(q("deployment_history"), {
            "tenant_id": tenant_id, "function_name": function_name, "limit": limit}
            ).fetchall()


def route(conn: Conn, function_name: str, tenant_id: str | None = "default") -> Route:
    """What :class:`~stream_mlops.deployments.routing.Route` needs to route the function's
    units as ``mlops.route`` does (``tenant_id`` None: the caller's one tenant, as there)."""
    with conn.cursor(row_factory=class_row(Route)) as cur:
        row = cur.execute(q("deployment_route"), {
            "tenant_id": tenant_id, "function_name": function_name}).fetchone()
    assert row is not None  # live_deployment always answers
    return row


def _message(exc: psycopg.Error) -> str:
    text = exc.diag.message_primary or str(exc)
    if exc.diag.constraint_name:
        text = f"{text} ({exc.diag.constraint_name.replace('_', ' ')})"
    return text.splitlines()[0]


def steps_text(steps: Sequence[float]) -> str:
    return ",".join(f"{s:g}" for s in steps)
