"""Liveness and readiness verdicts from the pipeline status (pure: no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

from stream_mlops.pipeline.status import PipelineStatus


@dataclass(frozen=True)
class Thresholds:
    lag_seconds: float = 60.0
    db_silence_seconds: float = 30.0
    heartbeat_seconds: float = 30.0


def liveness(status: PipelineStatus, now: float, t: Thresholds) -> list[str]:
    """Reasons the main loop looks dead (empty: alive). Never touches the database."""
    silent = now - status.heartbeat_at
    if silent > t.heartbeat_seconds:
        return [f"processing loop silent for {silent:.0f} s"]
    return []


def readiness(status: PipelineStatus, now: float, t: Thresholds) -> list[str]:
    """Reasons the processor is not ready (empty: ready)."""
    reasons = liveness(status, now, t)
    # Reasons name states, never the database's address or the driver's words (which can
    # carry the connection string): those are in the processor's log.
    if status.db_down_since is not None:
        reasons.append(f"database unreachable for {now - status.db_down_since:.0f} s "
                       "(the processor's log says why)")
    elif now - status.db_ok_at > t.db_silence_seconds:
        reasons.append(f"database silent for {now - status.db_ok_at:.0f} s")
    elif not status.active:
        reasons.append("standby: another processor holds the consumer lock")
    if not status.listening:
        reasons.append("LISTEN connection is down (polling only)")
    if status.lag_seconds > t.lag_seconds:
        reasons.append(f"lag {status.lag_seconds:.1f} s exceeds {t.lag_seconds:g} s")
    return reasons
