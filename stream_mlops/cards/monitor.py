"""Model cards kept true by the processor: a new version on schedule (weekly by default),
on a confirmed drift (a drift alert), and on a promoted or rolled-back deployment.

What is due comes from the database (``card_due``): triggers already handled are recorded
in ``mlops.model_card_triggers`` with the card they made, in one transaction, so a restart
neither misses nor repeats one, and a second processor taking over carries on. A trigger
whose card says nothing new adds no version (the content hash) but is handled all the same.

The job is a :class:`~stream_mlops.core.monitor.DatabaseJob`: the service runs it on a
worker thread with a connection of its own, because a card reads the function's window
(``benchmarks/cards.py``: 0.15 s at 10,000 rows a week, tens of seconds at a million) and
the consumer must not wait for that. Each run handles triggers until ``budget_seconds``
is spent and leaves the rest for its next run.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, ClassVar, Self

from prometheus_client.core import CounterMetricFamily

from stream_mlops.cards.generate import WINDOW_DAYS, Trigger, generate
from stream_mlops.core.alerts import AlertChange
from stream_mlops.core.batch import Batch
from stream_mlops.core.monitor import (
    NOTHING,
    DatabaseJob,
    MetricsBuilder,
    Monitor,
    Observed,
    Store,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from stream_mlops.settings import Settings

WEEK = 7 * 86400.0


@dataclass(frozen=True)
class DueRow:
    """A trigger not handled yet (``card_due``)."""

    tenant_id: str
    function_name: str
    trigger: Trigger
    ref: str


class CardMonitor(Monitor):
    """Regenerates model cards from the evidence the other monitors stored."""

    name: ClassVar[str] = "cards"
    EVERY_SECONDS = 10.0

    def __init__(self, *, every_seconds: float = WEEK, window_days: float = WINDOW_DAYS,
                 budget_seconds: float = 0.5, max_per_run: int = 20,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every_seconds = every_seconds
        self.window_days = window_days
        self.budget_seconds = budget_seconds
        self.max_per_run = max_per_run
        self.clock = clock
        self.versions: Counter[str] = Counter()  # trigger -> versions made
        self.unchanged: Counter[str] = Counter()  # trigger -> cards found unchanged

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(every_seconds=settings.card_regenerate_days * 86400.0,
                   window_days=settings.card_window_days)

    def restore(self, store: Store) -> None:
        """Nothing to rebuild: what is due is read from the database on every run."""

    def observe(self, batch: Batch) -> Observed:
        return NOTHING

    def jobs(self) -> Sequence[DatabaseJob]:
        return (DatabaseJob("cards", self.EVERY_SECONDS, self.run),)

    def run(self, store: Store) -> list[AlertChange]:
        """Handle due triggers, oldest first, until the time budget is spent."""
        started = self.clock()
        versions: Counter[str] = Counter()
        unchanged: Counter[str] = Counter()
        for due in store.rows("card_due", DueRow, every=self.every_seconds,
                              limit=self.max_per_run):
            store.isolated(f"model card of {due.tenant_id}/{due.function_name} "
                           f"({due.trigger} {due.ref})",
                           partial(self._handle, store, due, versions, unchanged))
            if self.clock() - started >= self.budget_seconds:
                break
        # New objects, not updates in place: /metrics reads them from another thread.
        self.versions = self.versions + versions
        self.unchanged = self.unchanged + unchanged
        return []

    def _handle(self, store: Store, due: DueRow, versions: Counter[str],
                unchanged: Counter[str]) -> None:
        made = generate(store, due.tenant_id, due.function_name, now=store.now,
                        trigger=due.trigger, trigger_ref=due.ref, window_days=self.window_days)
        for g in made:
            (unchanged if g.version is None else versions)[due.trigger] += 1
        store.execute("card_trigger_handled", tenant=due.tenant_id,
                      function=due.function_name, ref=due.ref)

    def metrics(self, now: float) -> MetricsBuilder:
        versions, unchanged = dict(self.versions), dict(self.unchanged)

        def build() -> list[CounterMetricFamily]:
            made = CounterMetricFamily(
                "mlops_model_card_versions", "Model card versions made, by trigger",
                labels=["trigger"])
            same = CounterMetricFamily(
                "mlops_model_card_unchanged",
                "Regenerations that found the card unchanged (no version), by trigger",
                labels=["trigger"])
            for t, n in sorted(versions.items()):
                made.add_metric([t], n)
            for t, n in sorted(unchanged.items()):
                same.add_metric([t], n)
            return [made, same]

        return build
