"""What a card is built from: rows the evidence queries return (``cards.sql``), as
dataclasses whose fields are the queries' column names. Times are unix seconds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Totals:
    """One slice's numbers over the window (``card_totals``, ``card_slices``)."""

    requests: int
    errors: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    latency_mean_ms: float | None
    cost_usd: float
    priced: int  # requests with a known cost
    confidence_n: int
    confidence_mean: float | None
    confidence_p10: float | None
    confidence_p50: float | None
    confidence_p90: float | None
    prompt_tokens: int
    completion_tokens: int
    first_at: float | None
    last_at: float | None
    slice_kind: str = "all"  # all | variant | version
    slice_name: str = ""


@dataclass(frozen=True)
class ErrorType:
    error_type: str
    count: int


@dataclass(frozen=True)
class Bucket:
    """A histogram bin [lo, hi) and its count (latency in ms, confidence in [0, 1])."""

    lo: float
    hi: float
    count: int


@dataclass(frozen=True)
class Day:
    day: float  # midnight UTC
    requests: int
    errors: int
    cost_usd: float


@dataclass(frozen=True)
class DriftEvent:
    """A stored drift test (``drift_detected``: the test confirmed a drift)."""

    metric_name: str
    test_name: str
    statistic: float | None
    p_value: float | None
    threshold: float | None
    effect_size: float | None
    drift_detected: bool
    detected_at: float


@dataclass(frozen=True)
class ExperimentRow:
    name: str
    status: str
    decision: str
    primary_metric: str
    alpha: float
    started_at: float | None
    stopped_at: float | None
    results: Any  # JSON as the experiments monitor writes it


@dataclass(frozen=True)
class DeploymentRow:
    id: int
    version: str
    previous_version: str | None
    slot: str
    status: str
    traffic_percent: float
    reason: str | None
    created_by: str
    created_at: float
    promoted_at: float | None
    rolled_back_at: float | None


@dataclass(frozen=True)
class TransitionRow:
    """A change of a deployment's status, with its reason (mlops.deployment_transitions)."""

    deployment_id: int
    version: str
    from_status: str | None
    to_status: str
    traffic_percent: float
    reason: str | None
    actor: str
    at: float


@dataclass(frozen=True)
class GateRow:
    """A deployment gate's latest result (mlops.deployment_gate_results)."""

    deployment_id: int
    version: str
    outcome: str
    traffic_percent: float
    samples_live: int
    samples_new: int
    metrics: Any  # {metric: {live, new, p_value, decision, n_live, n_new}}
    message: str
    checked_at: float


@dataclass(frozen=True)
class AlertRow:
    alert_type: str
    severity: str
    title: str
    state: str
    first_seen: float
    last_seen: float


@dataclass(frozen=True)
class Evidence:
    """Everything measured about one (tenant, function, model) over a window."""

    tenant_id: str
    function_name: str
    model: str
    window_start: float
    window_end: float
    totals: Totals
    slices: list[Totals] = field(default_factory=list)
    error_types: list[ErrorType] = field(default_factory=list)
    latency_histogram: list[Bucket] = field(default_factory=list)
    confidence_histogram: list[Bucket] = field(default_factory=list)
    days: list[Day] = field(default_factory=list)
    drift: list[DriftEvent] = field(default_factory=list)
    drift_tests: int | None = None  # tests in the window (None: len(drift))
    experiments: list[ExperimentRow] = field(default_factory=list)
    deployments: list[DeploymentRow] = field(default_factory=list)
    transitions: list[TransitionRow] = field(default_factory=list)
    gates: list[GateRow] = field(default_factory=list)
    alerts: list[AlertRow] = field(default_factory=list)
