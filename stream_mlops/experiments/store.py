"""Experiments in the database: create, start, stop, read; and the processor's replay.

The Python API of the experiment lifecycle (the CLI's ``stream-mlops experiment`` is a thin
layer over it)::

    exps = Experiments(os.environ["DATABASE_URL"])
    exps.create(ExperimentSpec("short-prompt", "summarize", primary_metric="latency",
                               guardrails=("error_rate",)))
    exps.start("short-prompt")
    experiment_id, variant = exps.assign("short-prompt", user_id)  # log both with the request
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import class_row, dict_row
from psycopg.types.json import Jsonb

from stream_mlops.db.connect import connect
from stream_mlops.db.queries import q
from stream_mlops.experiments.assignment import assign
from stream_mlops.experiments.config import (
    ExperimentError,
    ExperimentSpec,
    Variant,
    variants_from_row,
)

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class ExperimentRow:
    """An experiment as stored (``get_experiment``, ``list_experiments``)."""

    id: UUID
    tenant_id: str
    name: str
    function_name: str
    status: str
    variants: Any  # JSON as stored: validated by variants_from_row
    primary_metric: str
    guardrails: list[str] | None
    alpha: float
    min_effect: float | None
    min_samples: int
    seed: str
    auto_stop: bool
    decision: str
    results: Any  # JSON as stored
    description: str | None
    covariate: str | None
    created_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None
    concluded_at: datetime | None


@dataclass(frozen=True)
class Experiment:
    id: str
    tenant_id: str
    name: str
    function_name: str
    status: str
    variants: tuple[Variant, ...]
    primary_metric: str
    guardrails: tuple[str, ...]
    alpha: float
    min_effect: float | None
    min_samples: int
    seed: str
    auto_stop: bool
    decision: str
    results: dict[str, Any]
    description: str | None
    covariate: str | None
    created_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None
    concluded_at: datetime | None

    @classmethod
    def from_row(cls, r: ExperimentRow) -> Experiment:
        return cls(
            id=str(r.id), tenant_id=r.tenant_id, name=r.name, function_name=r.function_name,
            status=r.status, variants=variants_from_row(r.variants),
            primary_metric=r.primary_metric, guardrails=tuple(r.guardrails or ()),
            alpha=float(r.alpha), min_effect=r.min_effect, min_samples=int(r.min_samples),
            seed=r.seed, auto_stop=bool(r.auto_stop), decision=r.decision,
            results=r.results or {}, description=r.description, covariate=r.covariate,
            created_at=r.created_at,
            started_at=r.started_at, stopped_at=r.stopped_at, concluded_at=r.concluded_at)


def create(conn: Conn, spec: ExperimentSpec) -> str:
    """Insert ``spec`` as a draft; returns its id."""
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(q("create_experiment"), {
                "tenant_id": spec.tenant_id, "name": spec.name,
                "function_name": spec.function_name, "variants": spec.variants_json(),
                "primary_metric": spec.primary_metric, "guardrails": list(spec.guardrails),
                "alpha": spec.alpha, "min_effect": spec.min_effect,
                "min_samples": spec.min_samples, "auto_stop": spec.auto_stop,
                "description": spec.description, "covariate": spec.covariate}).fetchone()
    except psycopg.errors.UniqueViolation:
        raise ExperimentError(f"an experiment named {spec.name!r} already exists for tenant "
                              f"{spec.tenant_id!r}") from None
    assert row is not None
    return str(row["id"])


def get(conn: Conn, name: str, tenant_id: str = "default") -> Experiment:
    with conn.cursor(row_factory=class_row(ExperimentRow)) as cur:
        row = cur.execute(q("get_experiment"), {"name": name, "tenant_id": tenant_id}
                          ).fetchone()
    if row is None:
        raise ExperimentError(f"no experiment named {name!r} for tenant {tenant_id!r}")
    return Experiment.from_row(row)


def list_all(conn: Conn) -> list[Experiment]:
    with conn.cursor(row_factory=class_row(ExperimentRow)) as cur:
        return [Experiment.from_row(r) for r in cur.execute(q("list_experiments")).fetchall()]


def set_status(conn: Conn, name: str, status: str, tenant_id: str = "default") -> str:
    """Move an experiment along its lifecycle (the database refuses invalid moves)."""
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(q("set_experiment_status"),
                              {"name": name, "status": status, "tenant_id": tenant_id}
                              ).fetchone()
    except psycopg.errors.CheckViolation as exc:
        raise ExperimentError(str(exc.diag.message_primary or exc)) from None
    if row is None:
        raise ExperimentError(f"no experiment named {name!r} for tenant {tenant_id!r}")
    return str(row["status"])


class Experiments:
    """The experiment lifecycle over a connection URL, and cached assignment."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._arms: dict[tuple[str, str], tuple[str, str, list[tuple[str, float]]]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def _conn(self) -> Iterator[Conn]:
        with connect(self.database_url, autocommit=True) as conn:
            yield conn

    def create(self, spec: ExperimentSpec) -> str:
        with self._conn() as conn:
            return create(conn, spec)

    def start(self, name: str, tenant_id: str = "default") -> str:
        with self._conn() as conn:
            return set_status(conn, name, "running", tenant_id)

    def stop(self, name: str, tenant_id: str = "default", *, conclude: bool = False) -> str:
        with self._conn() as conn:
            return set_status(conn, name, "concluded" if conclude else "stopped", tenant_id)

    def status(self, name: str, tenant_id: str = "default") -> Experiment:
        with self._conn() as conn:
            return get(conn, name, tenant_id)

    def list(self) -> list[Experiment]:
        with self._conn() as conn:
            return list_all(conn)

    def assign(self, name: str, unit_id: str, tenant_id: str = "default") -> tuple[str, str]:
        """``(experiment_id, variant)`` for ``unit_id`` (a user or request id): the same unit
        always gets the same variant. The experiment's seed and weights are read once."""
        key = (tenant_id, name)
        with self._lock:
            cached = self._arms.get(key)
        if cached is None:
            e = self.status(name, tenant_id)
            cached = (e.id, e.seed, [(v.name, v.weight) for v in e.variants])
            with self._lock:
                self._arms[key] = cached
        eid, seed, arms = cached
        return eid, assign(seed, unit_id, arms)


def write_results(conn: Conn, experiment_id: str, results: dict[str, Any], decision: str,
                  conclude: bool) -> None:
    conn.execute(q("write_experiment_results"), {
        "id": experiment_id, "results": Jsonb(results), "decision": decision,
        "conclude": conclude})
