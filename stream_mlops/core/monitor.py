"""The monitor contract: what every capability of the processor implements.

A monitor (performance alerts, costs, drift, experiments, ...) is a pure state machine
over the request stream:

* :attr:`Monitor.index` is the processor's series index, set by the processor on every
  monitor it holds: read it, and grow it only in ``restore``;
* :meth:`Monitor.restore` rebuilds its state from what the database holds (its own
  tables, open alerts, rows already consumed), through a :class:`Store`;
* :meth:`Monitor.observe` takes each batch *before* it is committed and returns what must
  be written with it (:class:`Observed`: statements in the batch's transaction, and alert
  changes written after the commit);
* :meth:`Monitor.evaluate` re-reads its rules at a time (once a second: silence resolves
  alerts too);
* :meth:`Monitor.metrics` describes its Prometheus metrics at scrape time;
* optionally :meth:`Monitor.configure` re-reads configuration tables and
  :meth:`Monitor.jobs` names periodic work that needs the database (:class:`Job`), a
  thread of its own (:class:`BackgroundJob`), or both (:class:`DatabaseJob`: slow reads,
  on a thread and a connection of their own); the pipeline's scheduler runs them.

Monitors never open connections, sockets or files: everything goes through the
:class:`Store` the pipeline passes in, so they are tested with plain data.

Commit semantics: ``observe`` may change a monitor's memory before the batch commits.
When the commit fails, the pipeline discards every monitor and restores them all from
the database (see ``stream_mlops.pipeline.processor``), so no state of an uncommitted
batch survives.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, TypeVar

from prometheus_client.core import Metric

from stream_mlops.core.alerts import AlertChange
from stream_mlops.core.batch import Batch, RawBatch
from stream_mlops.core.series import SeriesIndex

if TYPE_CHECKING:  # the service's configuration; the contract itself needs none of it
    from stream_mlops.settings import Settings

R = TypeVar("R")


@dataclass(frozen=True)
class Cursor:
    """Where the consumer is (``sql/0011_snapshot_cursor.sql``): every row visible in the
    ``frontier`` snapshot is consumed, and, of the window ending at ``window_end``, the rows
    up to ``(xid, id)``. Snapshots in Postgres's text form (``xmin:xmax:xip,...``)."""

    frontier: str = "1:1:"
    window_end: str | None = None
    xid: str = "0"
    id: int = 0

    def params(self, prefix: str = "cursor") -> dict[str, Any]:
        """Query parameters ``{prefix}_frontier`` ... ``{prefix}_id`` (``mlops.is_consumed``)."""
        return {f"{prefix}_frontier": self.frontier, f"{prefix}_window_end": self.window_end,
                f"{prefix}_xid": self.xid, f"{prefix}_id": self.id}

    def to_json(self) -> list[Any]:
        return [self.frontier, self.window_end, self.xid, self.id]

    @classmethod
    def from_json(cls, value: Sequence[Any]) -> Cursor:
        """From :meth:`to_json`, or from the ``[xid, id]`` of cursors before snapshots
        ("every transaction below xid, and xid's rows up to id")."""
        if len(value) == 2:
            xid, row = int(value[0]), int(value[1])
            if xid == 0:
                return cls()
            return cls(f"{xid}:{xid}:", f"{xid + 1}:{xid + 1}:", str(xid), row)
        frontier, window_end, xid, row = value
        return cls(str(frontier), None if window_end is None else str(window_end), str(xid),
                   int(row))


class Store(Protocol):
    """The database as a monitor sees it: named queries (``-- name:`` blocks of the
    features' ``.sql`` files), rows as the dataclass asked for (columns by name). Every
    query also gets the consumer's :class:`Cursor` as ``cursor_frontier``,
    ``cursor_window_end``, ``cursor_xid`` and ``cursor_id`` (for ``mlops.is_consumed``)."""

    @property
    def cursor(self) -> Cursor:
        """Where the consumer is: every row at or before it is consumed."""
        ...

    @property
    def now(self) -> float:
        """The time (unix seconds) the state is read at."""
        ...

    def rows(self, query: str, row: type[R], /, **params: Any) -> list[R]:
        """Rows of a named query."""
        ...

    def execute(self, query: str, /, **params: Any) -> None:
        """Run a named statement (dict and list-of-dict parameters are sent as JSONB)."""
        ...

    def consumed(self, *, seconds: float | None = None, last: int | None = None) -> RawBatch:
        """Valid rows already consumed (quarantined ones left out), in cursor order:
        those created in the last ``seconds``, or the ``last`` n."""
        ...

    def report(self, problem: str) -> None:
        """A record the monitor had to leave out (a configuration it cannot follow, a
        stored state it cannot read): logged and counted, and processing goes on."""
        ...

    def isolated(self, what: str, work: Callable[[], None]) -> bool:
        """Run ``work`` on its own (a savepoint): False, and ``what`` reported with the
        reason, when it raised anything but a lost connection (which goes up)."""
        ...


@dataclass(frozen=True)
class Write:
    """A named statement written in the batch's transaction, with the cursor."""

    query: str
    params: Mapping[str, Any]


@dataclass
class Observed:
    """What one batch makes a monitor write."""

    writes: list[Write] = field(default_factory=list)
    alerts: list[AlertChange] = field(default_factory=list)


NOTHING = Observed()


@dataclass(frozen=True)
class Job:
    """Periodic work on the consumer's thread, between batches, with the database."""

    name: str
    every_seconds: float
    run: Callable[[Store], list[AlertChange]]


@dataclass(frozen=True)
class BackgroundJob:
    """Periodic work too heavy for the consumer's thread: ``compute`` runs on a thread of
    its own (pure: no store); ``apply`` takes its result on the consumer's thread."""

    name: str
    every_seconds: float
    compute: Callable[[float], Any]
    apply: Callable[[Store, Any], list[AlertChange]]


@dataclass(frozen=True)
class DatabaseJob:
    """Periodic database work too slow for the consumer's thread (a model card reads a
    function's week of rows): the service runs it on a thread of its own with a store on
    a connection of its own, only while this processor is the active one; without
    workers (tests, tools) it runs inline like a :class:`Job`."""

    name: str
    every_seconds: float
    run: Callable[[Store], list[AlertChange]]


MetricsBuilder = Callable[[], Iterable[Metric]]


class Monitor(ABC):
    """Base of every monitor (see the module docstring for the contract)."""

    name: ClassVar[str]
    index: SeriesIndex  # the processor's (see the module docstring)

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """The monitor as the service runs it (defaults where no setting applies)."""
        return cls()

    @abstractmethod
    def restore(self, store: Store) -> None:
        """Rebuild the state from the database (the index holds the persisted series;
        add the groups your state names, nothing else)."""

    @abstractmethod
    def observe(self, batch: Batch) -> Observed:
        """Take a batch of valid rows, before it is committed."""

    def evaluate(self, now: float) -> list[AlertChange]:
        """Re-read the rules at ``now`` (once a second)."""
        return []

    def configure(self, store: Store) -> None:  # noqa: B027 (optional: most have none)
        """Re-read configuration tables (at restore and every 30 s)."""

    def jobs(self) -> Sequence[Job | BackgroundJob | DatabaseJob]:
        """Named periodic work."""
        return ()

    @abstractmethod
    def metrics(self, now: float) -> MetricsBuilder:
        """Called at scrape time under the processor's lock: copy what the metrics need
        and return a function that builds them once the lock is released."""
