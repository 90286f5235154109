"""Exact per-group sums by minute and by hour in fixed rings (pure: no I/O).

Each group keeps one ring of minute sums for the last hour and one of hour sums for the
last 35 days (or as many as asked); the rings share their clock (which minute or hour each
column holds), so memory is ``groups x (61 + 24 x days)`` integers and an add costs the
same however old the group. Costs use it for pico-dollars, drift for request counts and
latencies.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def exact_grouped_sum(slot: I64, values: I64, n: int) -> list[int]:
    """Integer sums of ``values`` per ``slot`` (0..n-1), exact however large.

    Examples
    --------
    >>> exact_grouped_sum(np.array([0, 1, 0]), np.array([2**62, 5, 2**62]), 2)
    [9223372036854775808, 5]
    """
    # int64 is exact while the batch total cannot overflow; beyond that use Python ints.
    if len(values) == 0 or int(values.max()) < (2**63 - 1) // max(len(values), 1):
        out = np.zeros(n, dtype=np.int64)
        np.add.at(out, slot, values)
        return [int(v) for v in out]
    sums = [0] * n
    for s, v in zip(slot.tolist(), values.tolist(), strict=True):
        sums[s] += v
    return sums


def live_sum(ids: I64, sums: I64, first: int, last: int) -> I64:
    """Per row of ``sums``, the total of the ring columns holding units first..last."""
    live = (ids >= first) & (ids <= last)
    out: I64 = sums[:, live].sum(axis=1).astype(np.int64)
    return out


class RingSums:
    """Integer sums per group and minute (last hour) and per group and hour (35 days).

    Examples
    --------
    >>> r = RingSums()
    >>> r.add(np.array([0, 0, 1]), np.array([3600.0 * 100, 3600.0 * 100 + 61, 3600.0 * 90]),
    ...       np.array([5, 7, 11]))
    >>> r.minutes(6000, 6001).tolist(), r.hours(90, 100).tolist()
    ([12, 0], [12, 11])
    """

    MINUTES = 61
    HOURS = 35 * 24

    def __init__(self, days: int = 35, dtype: npt.DTypeLike = np.int64) -> None:
        """``dtype`` np.int32 halves the memory where no minute or hour can sum past
        2**31 - 1 (request counts); sums are read as int64 either way."""
        self.HOURS = days * 24
        self.dtype = np.dtype(dtype)
        self.groups = 0
        self._cap = 0
        self.minute_sums = np.zeros((0, self.MINUTES), self.dtype)
        self.hour_sums = np.zeros((0, self.HOURS), self.dtype)
        # Which minute / hour each column holds now (shared by all groups).
        self.minute_id = np.full(self.MINUTES, -1, np.int64)
        self.hour_id = np.full(self.HOURS, -1, np.int64)

    def grow(self, groups: int) -> None:
        """Room for ``groups`` groups (a group without sums reads as zeros)."""
        if groups > self._cap:
            # A quarter more, not double: a ring is 7 kB per group, and doubling left up to
            # half of it unused (measured: 43 kB of costs rings per series at 1,000).
            cap = max(groups, self._cap + self._cap // 4, 16)
            for name, width in (("minute_sums", self.MINUTES), ("hour_sums", self.HOURS)):
                old = getattr(self, name)
                new = np.zeros((cap, width), self.dtype)
                new[: old.shape[0]] = old
                setattr(self, name, new)
            self._cap = cap
        self.groups = max(self.groups, groups)

    @staticmethod
    def _advance(ids: I64, sums: I64, unit: I64) -> npt.NDArray[np.bool_]:
        """Claim columns for newer units (zeroing them); True where a row's unit fits."""
        col = unit % len(ids)
        newest = np.full(len(ids), -1, np.int64)
        np.maximum.at(newest, col, unit)
        fresh = newest > ids
        if fresh.any():
            sums[:, fresh] = 0
            ids[fresh] = newest[fresh]
        fits: npt.NDArray[np.bool_] = ids[col] == unit
        return fits

    def add(self, group: I64, t: F64, values: I64) -> None:
        """Add ``values`` of ``group`` at event times ``t`` (unix seconds)."""
        if not len(group):
            return
        if len(group) == 1:  # a single-row batch, the common case at low rates: no ufuncs
            self._add_one(int(group[0]), float(t[0]), int(values[0]))
            return
        self.grow(int(group.max()) + 1)
        for ids, sums, unit in ((self.minute_id, self.minute_sums, (t // 60).astype(np.int64)),
                                (self.hour_id, self.hour_sums, (t // 3600).astype(np.int64))):
            ok = self._advance(ids, sums, unit)
            np.add.at(sums, (group[ok], unit[ok] % len(ids)), values[ok])

    def _add_one(self, group: int, t: float, value: int) -> None:
        """:meth:`add` of one value (the same column claims, without numpy's set-up)."""
        self.grow(group + 1)
        for ids, sums, unit in ((self.minute_id, self.minute_sums, int(t // 60)),
                                (self.hour_id, self.hour_sums, int(t // 3600))):
            col = unit % len(ids)
            held = int(ids[col])
            if unit > held:
                sums[:, col] = 0
                ids[col] = held = unit
            if unit == held:
                sums[group, col] += value

    def load(self, group: I64, unit: I64, values: I64, *, minutes: bool) -> None:
        """Restore sums (of one minute or one hour each) after a restart."""
        if not len(group):
            return
        self.grow(int(group.max()) + 1)
        ids, sums = ((self.minute_id, self.minute_sums) if minutes
                     else (self.hour_id, self.hour_sums))
        ok = self._advance(ids, sums, unit)
        np.add.at(sums, (group[ok], unit[ok] % len(ids)), values[ok])

    def minutes(self, first: int, last: int) -> I64:
        """Per group, the sum over the minutes ``first..last`` (unix minutes) in the ring."""
        return live_sum(self.minute_id, self.minute_sums[: self.groups], first, last)

    def at(self, group: int, hours: I64) -> I64:
        """The group's sum in each unix hour of ``hours`` (0 where the ring holds none)."""
        col = hours % self.HOURS
        held = self.hour_id[col] == hours
        out: I64 = np.where(held, self.hour_sums[group, col], 0).astype(np.int64) \
            if group < self.groups else np.zeros(hours.shape, np.int64)
        return out

    def hours(self, first: int, last: int) -> I64:
        """Per group, the sum over the hours ``first..last`` (unix hours) in the ring."""
        return live_sum(self.hour_id, self.hour_sums[: self.groups], first, last)
