"""Gathering a card's evidence with the named queries of ``cards.sql``, and storing a new
version when the content changed. Written against the two methods of the monitors'
:class:`~stream_mlops.core.monitor.Store` it needs, so the processor (its repository) and
the command line (a connection, :mod:`stream_mlops.cards.store`) run the same code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from stream_mlops.cards.build import build_card, content_hash, iso, render_markdown
from stream_mlops.cards.evidence import (
    AlertRow,
    Bucket,
    Day,
    DeploymentRow,
    DriftEvent,
    ErrorType,
    Evidence,
    ExperimentRow,
    GateRow,
    Totals,
    TransitionRow,
)
from stream_mlops.cards.spec import Spec, SpecError

R = TypeVar("R")
DAY = 86400.0
WINDOW_DAYS = 7.0
LATENCY_BINS_PER_DECADE = 4
Trigger = Literal["scheduled", "drift", "promoted", "rolled_back", "manual"]


class Rows(Protocol):
    def rows(self, query: str, row: type[R], /, **params: Any) -> list[R]: ...

    def execute(self, query: str, /, **params: Any) -> None: ...


@dataclass(frozen=True)
class _Dist:
    kind: str
    key: str
    requests: int
    errors: int
    cost_usd: float


@dataclass(frozen=True)
class _Count:
    n: int


@dataclass(frozen=True)
class _Model:
    model: str


@dataclass(frozen=True)
class _Known:
    known: bool


@dataclass(frozen=True)
class _SpecRow:
    spec: Any
    source: str | None


@dataclass(frozen=True)
class _Version:
    version: int


@dataclass(frozen=True)
class CardVersion:
    """A stored version (``card_versions``; ``card_list``: card NULL)."""

    tenant_id: str
    function_name: str
    model: str
    version: int
    trigger: str
    trigger_ref: str | None
    content_hash: str | None
    generated_at: float
    card: Any


@dataclass(frozen=True)
class Generated:
    """One card made: its content, and the version stored (None: unchanged)."""

    card: dict[str, Any]
    markdown: str
    version: int | None


def latency_bin(b: int) -> tuple[float, float]:
    """Bounds (ms) of ``card_distributions``' latency bin ``b`` (1: below 1.78 ms).

    >>> latency_bin(9), latency_bin(21)
    ((100.0, 177.82794100389228), (100000.0, 86400000.0))
    """
    lo = 0.0 if b <= 1 else 10 ** ((b - 1) / LATENCY_BINS_PER_DECADE)
    hi = 86_400_000.0 if b >= 21 else 10 ** (b / LATENCY_BINS_PER_DECADE)
    return lo, hi


def gather(db: Rows, tenant: str, function: str, model: str, *, start: float,
           end: float) -> Evidence:
    """Everything measured about one (tenant, function, model) in [start, end)."""
    p = {"tenant": tenant, "function": function, "model": model, "start": start, "end": end}
    (totals,) = db.rows("card_totals", Totals, **p)
    slices = db.rows("card_slices", Totals, **p) if totals.requests else []
    # A slice kind with one value says nothing the whole window does not.
    kinds = [t.slice_kind for t in slices]
    slices = [t for t in slices if kinds.count(t.slice_kind) > 1]
    dists = db.rows("card_distributions", _Dist, **p)
    errors = [ErrorType(d.key, d.errors) for d in dists if d.kind == "error_type"]
    (count,) = db.rows("card_drift_count", _Count, **p)
    return Evidence(
        tenant_id=tenant, function_name=function, model=model, window_start=start,
        window_end=end, totals=totals, slices=slices,
        error_types=sorted(errors, key=lambda e: (-e.count, e.error_type)),
        latency_histogram=[Bucket(*latency_bin(int(d.key)), d.requests)
                           for d in sorted((d for d in dists if d.kind == "latency"),
                                           key=lambda d: int(d.key))],
        confidence_histogram=[Bucket((int(d.key) - 1) / 10, int(d.key) / 10, d.requests)
                              for d in sorted((d for d in dists if d.kind == "confidence"),
                                              key=lambda d: int(d.key))],
        days=[Day(float(d.key), d.requests, d.errors, d.cost_usd)
              for d in sorted((d for d in dists if d.kind == "day"),
                              key=lambda d: float(d.key))],
        drift=db.rows("card_drift", DriftEvent, **p), drift_tests=count.n,
        experiments=db.rows("card_experiments", ExperimentRow, **p),
        deployments=db.rows("card_deployments", DeploymentRow, **p),
        transitions=db.rows("card_deployment_transitions", TransitionRow, **p),
        gates=db.rows("card_deployment_gates", GateRow, **p),
        alerts=db.rows("card_alerts", AlertRow, **p))


def function_known(db: Rows, tenant: str, function: str) -> bool:
    return bool(db.rows("card_function_known", _Known, tenant=tenant, function=function)[0]
                .known)


def stored_spec(db: Rows, tenant: str, function: str) -> Spec | None:
    """The function's stored spec (validated when it was stored; checked again here)."""
    found = db.rows("card_spec", _SpecRow, tenant=tenant, function=function)
    if not found:
        return None
    try:
        return Spec.model_validate(found[0].spec)
    except ValueError as exc:
        raise SpecError(f"stored spec of {function} ({found[0].source}) is no longer valid: "
                        f"{str(exc).splitlines()[0]}") from None


def models(db: Rows, tenant: str, function: str, start: float, end: float) -> list[str]:
    return [m.model for m in db.rows("card_models", _Model, tenant=tenant, function=function,
                                     start=start, end=end)]


def generate(db: Rows, tenant: str, function: str, *, now: float, trigger: Trigger,
             trigger_ref: str | None = None, window_days: float = WINDOW_DAYS,
             spec: Spec | None = None, store: bool = True) -> list[Generated]:
    """A card for each model of ``function`` over the ``window_days`` before ``now``,
    stored as a new version when its content changed (``store``). A function that has
    served no request yet gets one card (model "none") that says so."""
    start, end = now - window_days * DAY, now
    spec = spec if spec is not None else stored_spec(db, tenant, function)
    out = []
    for model in models(db, tenant, function, start, end) or ["none"]:
        card = build_card(spec, gather(db, tenant, function, model, start=start, end=end))
        version = None
        if store:
            made = db.rows("insert_card", _Version, tenant=tenant, function=function,
                           model=model, card=card, trigger=trigger, trigger_ref=trigger_ref,
                           hash=content_hash(card), start=start, end=end)
            version = made[0].version if made else None
        if version is not None:
            card = {**card, "version": version, "trigger": trigger, "generated_at": iso(now)}
        out.append(Generated(card, render_markdown(card), version))
    return out


def versions(db: Rows, tenant: str, function: str, *, model: str | None = None,
             version: int | None = None, limit: int = 1000) -> list[CardVersion]:
    return db.rows("card_versions", CardVersion, tenant=tenant, function=function,
                   model=model, version=version, limit=limit)


def with_version(v: CardVersion) -> dict[str, Any]:
    """A stored card with when and why it was made."""
    return {**v.card, "version": v.version, "trigger": v.trigger,
            "trigger_ref": v.trigger_ref, "generated_at": iso(v.generated_at)}
