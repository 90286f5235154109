"""The monitors the processor runs: adding a capability is a package and one line here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stream_mlops.alerts.cardinality import SeriesBudgetAlerts
from stream_mlops.alerts.performance import PerformanceAlerts
from stream_mlops.cards.monitor import CardMonitor
from stream_mlops.core.monitor import Monitor
from stream_mlops.costs.monitor import CostTracker
from stream_mlops.deployments.monitor import DeploymentGates
from stream_mlops.drift.monitor import DriftMonitor
from stream_mlops.experiments.monitor import ExperimentTracker
from stream_mlops.features.monitor import FeatureMonitor
from stream_mlops.telemetry.genai import GenAiMetrics

if TYPE_CHECKING:
    from stream_mlops.settings import Settings

MONITORS: tuple[type[Monitor], ...] = (
    SeriesBudgetAlerts,
    PerformanceAlerts,
    CostTracker,
    DriftMonitor,
    ExperimentTracker,
    GenAiMetrics,
    DeploymentGates,
    CardMonitor,
    FeatureMonitor,
)


def build_monitors(settings: Settings | None) -> list[Monitor]:
    """One of each monitor, configured from ``settings`` (None: their defaults)."""
    return [m() if settings is None else m.from_settings(settings) for m in MONITORS]
