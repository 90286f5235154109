"""Data shared between the pipeline's parts (no behaviour, no I/O)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class PipelineStatus:
    """Health of the pipeline, written by the consumer and listener, read at scrape time.

    Plain attribute writes are atomic in CPython; readers tolerate a value that is one
    batch old.
    """

    consumer: str = "default"
    events_total: int = 0
    quarantined_total: int = 0
    batches_total: int = 0
    reconnects_total: int = 0
    monitor_errors_total: int = 0  # drift / experiment evaluations that failed (logged)
    last_checkpoint_at: float = 0.0
    lag_seconds: float = 0.0
    horizon_age_seconds: float = 0.0
    db_ok_at: float = 0.0
    db_down_since: float | None = None  # the first failure of the current outage
    heartbeat_at: float = field(default_factory=time.time)
    listening: bool = False
    active: bool = False  # holds the consumer lock (False: standby)
    last_error: str = ""
    last_batch_seconds: float = 0.0
    alert_messages_queued: int = 0
    emails_sent_total: int = 0
    emails_failed_total: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
