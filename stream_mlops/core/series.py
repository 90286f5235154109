"""The series index: every series the processor knows and the groups monitors sum by.

A series is one ``(tenant, function, model, variant)``; monitors aggregate by function
``(tenant, function)``, by model group ``(tenant, function, model)`` or by model name.
The processor owns the index and grows it as batches bring new series, within each
tenant's budget (:class:`SeriesBudget`); monitors read it
(during a restore, before the state is taken over, they may add the groups their durable
state names). Everything is numbered in order of first appearance, so a monitor's arrays
only ever grow at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt

from stream_mlops.core.families import label_text
from stream_mlops.labels import UNSAFE

I64 = npt.NDArray[np.int64]
T = TypeVar("T")
SeriesKey = tuple[str, str, str, str]  # tenant_id, function_name, model, variant
FunctionKey = tuple[str, str]  # tenant_id, function_name
GroupKey = tuple[str, str, str]  # tenant_id, function_name, model

OTHER = "__other__"
FOLDED = (OTHER, OTHER, OTHER)  # function, model and variant of a tenant's fold series
KEY_SEPARATOR = "\x1f"  # the fetch query joins the four labels with it (pipeline.sql)
UNSAFE_LABELS = ("label values must not contain control characters (C0/C1 controls, line "
                 "separators or bidirectional controls)")


@dataclass
class SeriesBudget:
    """How many series a tenant, and all tenants together, may have.

    Past its budget a tenant's new series fold into one series of its own,
    ``(tenant, __other__, __other__, __other__)``: its totals stay exact, other tenants
    are untouched, and no client can make Prometheus (or the processor's memory) grow
    without bound. ``overrides`` are per-tenant budgets (``mlops.thresholds``,
    ``max_series``).

    Examples
    --------
    >>> b = SeriesBudget(per_tenant=2, overrides={"big": 5})
    >>> b.of("acme"), b.of("big")
    (2, 5)
    """

    per_tenant: int = 1000
    total: int = 50_000
    overrides: dict[str, int] = field(default_factory=dict)

    def of(self, tenant: str) -> int:
        return self.overrides.get(tenant, self.per_tenant)


class _Numbering:
    """Keys numbered in order of first appearance."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, ...]] = []
        self.ids: dict[tuple[str, ...], int] = {}

    def of(self, key: tuple[str, ...]) -> int:
        i = self.ids.get(key)
        if i is None:
            i = self.ids[key] = len(self.keys)
            self.keys.append(key)
        return i


class SeriesIndex:
    """Series numbers, their folding, and series -> function / model group / model name.

    Examples
    --------
    >>> ix = SeriesIndex()
    >>> ix.series_of(["t\\x1fsum\\x1fgpt-4o\\x1fcontrol", "t\\x1fsum\\x1fgpt-4o\\x1fB",
    ...               "t\\x1fask\\x1fgpt-4o\\x1fcontrol"]).tolist()
    [0, 1, 2]
    >>> ix.function.tolist(), ix.group.tolist(), ix.function_keys
    ([0, 0, 1], [0, 0, 1], [('t', 'sum'), ('t', 'ask')])
    >>> ix.group_tenant.tolist(), ix.tenant_names
    ([0, 0], ['t'])
    """

    # A cache of raw key -> series; cleared when a flood of junk keys grows it.
    RAW_CACHE_LIMIT = 100_000

    def __init__(self, budget: SeriesBudget | None = None) -> None:
        self.budget = budget or SeriesBudget()
        self.keys: list[SeriesKey] = []
        self.tenant_series: dict[str, int] = {}  # series within each tenant's budget
        self._budgeted = 0  # their sum
        self.folded: dict[str, int] = {}  # new series sent to the fold, per tenant
        self._series: dict[SeriesKey, int] = {}
        self._raw: dict[str, int] = {}
        self._functions = _Numbering()
        self._groups = _Numbering()
        self._models = _Numbering()
        self._of_series: list[tuple[int, int, int]] = []  # function, group, model
        self._group_function: list[int] = []
        self._tenants = _Numbering()
        self._group_tenant: list[int] = []
        self._arrays: tuple[int, I64, I64, I64, I64, I64] | None = None
        self._shared: dict[str, Any] = {}
        self._function_texts: list[str | None] = []  # by function number

    def __len__(self) -> int:
        return len(self.keys)

    # -- growing ----------------------------------------------------------------------
    def load(self, keys: Iterable[SeriesKey]) -> None:
        """Number ``keys`` 0..n-1 as given (persisted series: already folded)."""
        for key in keys:
            self._add(key)

    def _add(self, key: SeriesKey) -> int:
        i = self._series.get(key)
        if i is None:
            i = self._series[key] = len(self.keys)
            self.keys.append(key)
            if key[1:] != FOLDED:
                self.tenant_series[key[0]] = self.tenant_series.get(key[0], 0) + 1
                self._budgeted += 1
            self._of_series.append((self.function_id(key[0], key[1]),
                                    self.group_id(key[0], key[1], key[2]),
                                    self._models.of((key[2],))))
        return i

    def function_id(self, tenant: str, function: str) -> int:
        """The function's number (added when new)."""
        return self._functions.of((tenant, function))

    def known_function(self, tenant: str, function: str) -> int | None:
        """The function's number, None where the index has none (nothing is added)."""
        return self._functions.ids.get((tenant, function))

    def group_id(self, tenant: str, function: str, model: str) -> int:
        """The model group's number (added when new)."""
        g = self._groups.of((tenant, function, model))
        if g == len(self._group_function):
            self._group_function.append(self.function_id(tenant, function))
            self._group_tenant.append(self._tenants.of((tenant,)))
        return g

    def series(self, raw: str) -> int:
        """The (folded) series of a raw key, labels joined by :data:`KEY_SEPARATOR`;
        ValueError if it is malformed."""
        idx = self._raw.get(raw)
        if idx is None:
            parts = raw.split(KEY_SEPARATOR)
            if len(parts) != 4 or any(UNSAFE.search(p) for p in parts):
                # Behind the table's checks (rows stored before them, NOT VALID): such a
                # name would break e-mail headers, log lines and terminals downstream.
                raise ValueError(UNSAFE_LABELS)
            key = (parts[0], parts[1], parts[2], parts[3])
            idx = self._series.get(key)
            if idx is None:
                idx = self._add(key if self._fits(key[0]) else self._fold(key[0]))
            if len(self._raw) >= self.RAW_CACHE_LIMIT:
                self._raw.clear()
            self._raw[raw] = idx
        return idx

    def _fits(self, tenant: str) -> bool:
        return (self.tenant_series.get(tenant, 0) < self.budget.of(tenant)
                and self._budgeted < self.budget.total)

    def _fold(self, tenant: str) -> SeriesKey:
        self.folded[tenant] = self.folded.get(tenant, 0) + 1
        return (tenant, *FOLDED)

    def series_of(self, raw_keys: Sequence[str]) -> I64:
        """:meth:`series` of every raw key."""
        # The per-row cost to beat: one C-level dict lookup per row, Python for new keys.
        idx: list[int | None] = list(map(self._raw.get, raw_keys))
        if None in idx:
            idx = [self.series(k) if i is None else i
                   for i, k in zip(idx, raw_keys, strict=True)]
        return np.array(idx, dtype=np.int64)

    def shared(self, name: str, make: Callable[[], T]) -> T:
        """State that several monitors read, kept once per index (so once per processor):
        ``make()`` the first time ``name`` is asked for, the same object after."""
        if name not in self._shared:
            self._shared[name] = make()
        return cast(T, self._shared[name])

    def function_texts(self, keys: Sequence[FunctionKey]) -> list[str]:
        """The escaped ``tenant="…",function="…"`` label text of each function, made once
        per function and kept with the index: the drift, cost and alert families on
        /metrics all write it, and functions are never dropped, so it needs no eviction.

        Examples
        --------
        >>> ix = SeriesIndex()
        >>> ix.function_id("t", 'say "hi"')
        0
        >>> ix.function_texts([("t", 'say "hi"'), ("u", "unknown")])
        ['tenant="t",function="say \\\\"hi\\\\""', 'tenant="u",function="unknown"']
        """
        texts, ids, out = self._function_texts, self._functions.ids, []
        for key in keys:
            i = ids.get(key)
            if i is None:  # not (yet) in the index: made, not kept
                out.append(label_text((("tenant", key[0]), ("function", key[1]))))
                continue
            if i >= len(texts):
                texts.extend([None] * (i + 1 - len(texts)))
            text = texts[i]
            if text is None:
                text = texts[i] = label_text((("tenant", key[0]), ("function", key[1])))
            out.append(text)
        return out

    # -- reading ----------------------------------------------------------------------
    @property
    def function_keys(self) -> list[FunctionKey]:
        return self._functions.keys  # type: ignore[return-value]

    @property
    def group_keys(self) -> list[GroupKey]:
        return self._groups.keys  # type: ignore[return-value]

    @property
    def model_names(self) -> list[str]:
        return [k[0] for k in self._models.keys]

    @property
    def tenant_names(self) -> list[str]:
        """The tenants of the model groups, in the order of :attr:`group_tenant`."""
        return [k[0] for k in self._tenants.keys]

    def _built(self) -> tuple[int, I64, I64, I64, I64, I64]:
        """The lists as arrays, extended by the series and groups added since the last
        call: converting all of them again cost 11 ms a batch at 50,000 series when new
        series kept arriving."""
        n, n_groups = len(self._of_series), len(self._group_function)
        old = self._arrays
        if old is not None and old[0] == n and len(old[4]) == n_groups:
            return old
        done, done_groups = (old[0], len(old[4])) if old is not None else (0, 0)
        rows = np.array(self._of_series[done:], np.int64).reshape(n - done, 3)
        parts = [rows[:, 0], rows[:, 1], rows[:, 2],
                 np.array(self._group_function[done_groups:], np.int64),
                 np.array(self._group_tenant[done_groups:], np.int64)]
        if old is not None:
            parts = [np.concatenate([a, b]) for a, b in zip(old[1:], parts, strict=True)]
        else:
            parts = [p.copy() for p in parts]
        self._arrays = (n, parts[0], parts[1], parts[2], parts[3], parts[4])
        return self._arrays

    @property
    def function(self) -> I64:
        """Series -> function number."""
        return self._built()[1]

    @property
    def group(self) -> I64:
        """Series -> model group number."""
        return self._built()[2]

    @property
    def model(self) -> I64:
        """Series -> model name number (see :attr:`model_names`)."""
        return self._built()[3]

    @property
    def group_function(self) -> I64:
        """Model group -> function number."""
        return self._built()[4]

    @property
    def group_tenant(self) -> I64:
        """Model group -> tenant number (see :attr:`tenant_names`)."""
        return self._built()[5]
