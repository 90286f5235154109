"""Exact per-group sums by minute, hour and day in fixed rings (pure: no I/O).

Each group keeps one ring of minute sums for the last hour, one of hour sums for the last
``hours`` hours and, when asked, one of day sums for the last ``days`` days; the rings
share their clock (which minute, hour or day each column holds), so memory is
``groups x (61 + hours + days)`` integers and an add costs the same however old the group.
Days are calendar days in a time zone, so that sums over calendar periods (a month's
budget) need a day ring, not 24 columns per day. Costs use it for pico-dollars, drift
for request counts and latencies.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
_EPOCH_DAY = datetime(1970, 1, 1).toordinal()
UTC = ZoneInfo("UTC")


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
    """Per row of ``sums``, the total of the ring columns holding units first..last.

    Examples
    --------
    >>> live_sum(np.array([7, 5, 6]), np.array([[1, 2, 4], [8, 16, 32]]), 6, 7).tolist()
    [5, 40]
    """
    live = (ids >= first) & (ids <= last)
    if sums.dtype.kind in "iu":  # exact in any order: summed in place, not copied out
        out: I64 = sums.sum(axis=1, where=live[None, :], dtype=np.int64)
        return out
    out = sums[:, live].sum(axis=1).astype(np.int64)
    return out


@lru_cache(maxsize=8192)
def day_of_hour(hour: int, tz: ZoneInfo) -> int:
    """The local day (days since 1970-01-01 in ``tz``) that unix hour ``hour`` ends in.

    A calendar period starts at local midnight; the hour that contains it ends in the
    period's first day, the hour before it does not. So the hours of a period are exactly
    those whose day is in the period, in any zone (:func:`period_bounds` starts a period
    at the UTC hour containing local midnight).

    Examples
    --------
    >>> day_of_hour(23, ZoneInfo("UTC")), day_of_hour(24, ZoneInfo("UTC"))
    (0, 1)
    >>> day_of_hour(22, ZoneInfo("Asia/Kolkata"))  # 22:00-23:00 UTC ends at 04:30 local
    1
    """
    return datetime.fromtimestamp(hour * 3600 + 3599, tz).toordinal() - _EPOCH_DAY


def _claim(ids: I64, sums: I64, unit: int) -> int:
    """The column of ``unit`` (zeroed first if it held an older one), or -1 if it is
    older than the one its column holds."""
    col = unit % len(ids)
    held = int(ids[col])
    if unit > held:
        sums[:, col] = 0
        ids[col] = held = unit
    return col if unit == held else -1


def float32_digits(x: F64) -> F64:
    """``x`` rounded to seven significant digits, as many as a float32 holds: what a sum
    read from a float32 hour ring means (1e12 is stored as 999,999,995,904).

    Examples
    --------
    >>> float32_digits(np.float32([1e12, 0.0, 123456789.0]).astype(np.float64)).tolist()
    [1000000000000.0, 0.0, 123456800.0]
    """
    x = np.asarray(x, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = 6 - np.floor(np.log10(np.abs(x)))
        # Powers of ten are exact as divisors of large values, not as factors below one.
        up, down = 10.0 ** np.maximum(k, 0), 10.0 ** np.maximum(-k, 0)
        out: F64 = np.where(np.isfinite(k), np.round(x * up / down) * down / up, x)
    return out


class RingSums:
    """Integer sums per group and minute (last hour), hour and, optionally, local day.

    Examples
    --------
    >>> r = RingSums(days=2)
    >>> r.add(np.array([0, 0, 1]), np.array([3600.0 * 100, 3600.0 * 100 + 61, 3600.0 * 90]),
    ...       np.array([5, 7, 11]))
    >>> r.minutes(6000, 6001).tolist(), r.hours(90, 100).tolist(), r.days(3, 4).tolist()
    ([12, 0], [12, 11], [12, 11])
    """

    MINUTES = 61
    OPEN_HOURS = 2  # the hours still summed exactly when hour sums are floats

    def __init__(self, hours: int = 35 * 24, days: int = 0, *,
                 tz: ZoneInfo = UTC, dtype: npt.DTypeLike = np.int64,
                 hour_dtype: npt.DTypeLike | None = None, by_minute: bool = True) -> None:
        """``days`` > 0 keeps day sums in ``tz``'s calendar days; ``by_minute`` False
        keeps no minute sums (for hourly readers only); ``dtype`` np.int32
        halves the memory where no unit can sum past 2**31 - 1 (request counts); sums are
        read as int64 either way.

        ``hour_dtype`` np.float32 keeps each hour's sum as the float32 nearest its exact
        sum (seven significant digits, half the bytes of a long history): the
        ``OPEN_HOURS`` newest hours are summed exactly as ``dtype`` and copied over at
        each add, so rounding never accumulates; a row older than them (late) adds to
        the float directly."""
        self.HOURS, self.DAYS, self.tz = hours, days, tz
        self.dtype = np.dtype(dtype)
        self.hour_dtype = np.dtype(hour_dtype or dtype)
        self._exact_hours = self.hour_dtype == self.dtype
        self.groups = 0
        self._cap = 0
        self.by_minute = by_minute
        self.minute_sums = np.zeros((0, self.MINUTES if by_minute else 0), self.dtype)
        self.hour_sums = np.zeros((0, hours), self.hour_dtype)
        self.day_sums = np.zeros((0, days), self.dtype)
        self.open_sums = np.zeros((0, 0 if self._exact_hours else self.OPEN_HOURS),
                                  self.dtype)
        # Which minute / hour / day each column holds now (shared by all groups).
        self.minute_id = np.full(self.minute_sums.shape[1], -1, np.int64)
        self.hour_id = np.full(hours, -1, np.int64)
        self.day_id = np.full(days, -1, np.int64)
        self.open_id = np.full(self.open_sums.shape[1], -1, np.int64)

    def grow(self, groups: int) -> None:
        """Room for ``groups`` groups (a group without sums reads as zeros)."""
        if groups > self._cap:
            # A quarter more, not double: doubling left up to half of the rings unused
            # (measured: 43 kB of costs rings per series at 1,000).
            cap = max(groups, self._cap + self._cap // 4, 16)
            for name in ("minute_sums", "hour_sums", "day_sums", "open_sums"):
                old = getattr(self, name)
                new = np.zeros((cap, old.shape[1]), old.dtype)
                new[: old.shape[0]] = old
                setattr(self, name, new)
            self._cap = cap
        self.groups = max(self.groups, groups)

    def day_of(self, hours: I64) -> I64:
        """The local day of each unix hour in ``hours`` (see :func:`day_of_hour`)."""
        if not len(hours):
            return hours
        # One lookup per distinct hour, not per row: a batch spans few hours, but one old
        # row must not make it look up every hour since.
        lo, hi = int(hours.min()), int(hours.max())
        if hi - lo < len(hours):
            table = np.array([day_of_hour(h, self.tz) for h in range(lo, hi + 1)], np.int64)
            out: I64 = table[hours - lo]
            return out
        distinct, at = np.unique(hours, return_inverse=True)
        days = np.array([day_of_hour(h, self.tz) for h in distinct.tolist()], np.int64)
        out = days[at.reshape(-1)]
        return out

    def _minute_ring(self, minute: Any) -> list[tuple[I64, I64, Any]]:
        return [(self.minute_id, self.minute_sums, minute)] if self.by_minute else []

    def _rings(self, hour: I64) -> list[tuple[I64, I64, I64]]:
        """The exact rings an hour's rows add to: hours (unless floats) and days."""
        rings = [(self.hour_id, self.hour_sums, hour)] if self._exact_hours else []
        if self.DAYS:
            rings.append((self.day_id, self.day_sums, self.day_of(hour)))
        return rings

    def _add_units(self, rings: list[tuple[I64, I64, I64]], group: I64, values: I64) -> None:
        for ids, sums, unit in rings:
            ok = self._advance(ids, sums, unit)
            np.add.at(sums, (group[ok], unit[ok] % len(ids)), values[ok])

    def _float_hours(self, group: I64, hour: I64, values: I64) -> None:
        """Float hour sums: an open hour's exact total (its sum before the batch, plus
        the batch's) rounded once; an older hour's float plus the batch's exact sum."""
        if self._exact_hours or not len(group):
            return
        newest = int(hour.max())
        if int(hour.min()) > newest - self.OPEN_HOURS and newest >= int(self.open_id.max()):
            # The common batch: rows of the newest hours, which stay open (each in a
            # column of its own): summed there exactly and copied, without the cells.
            self._add_units([(self.open_id, self.open_sums, hour)], group, values)
            self._advance(self.hour_id, self.hour_sums, hour)
            self.hour_sums[group, hour % self.HOURS] = \
                self.open_sums[group, hour % self.OPEN_HOURS]
            return
        ok = self._advance(self.hour_id, self.hour_sums, hour)
        group, hour, values = group[ok], hour[ok], values[ok]
        if not len(group):
            return
        # The batch's exact sum per (group, hour): one rounding per hour and batch.
        lo = int(hour.min())
        span = int(hour.max()) - lo + 1
        cells, at = np.unique(group * span + (hour - lo), return_inverse=True)
        batch = np.zeros(len(cells), self.dtype)
        np.add.at(batch, at.reshape(-1), values)
        g, h = cells // span, cells % span + lo
        open_col, col = h % self.OPEN_HOURS, h % self.HOURS
        known = self.open_id[open_col] == h
        total = np.where(known, self.open_sums[g, open_col] + batch, batch)
        self.hour_sums[g, col] = np.where(known, total, self.hour_sums[g, col] + batch)
        # The open hours are the newest: an hour that a newer one pushed out (in this
        # batch, too) was written above from its exact total, and stays as it is.
        fits = self._advance(self.open_id, self.open_sums, h)
        self.open_sums[g[fits], open_col[fits]] = total[fits]

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
        hour = (t // 3600).astype(np.int64)
        self._add_units([*self._minute_ring((t // 60).astype(np.int64)), *self._rings(hour)],
                        group, values)
        self._float_hours(group, hour, values)

    def _add_one(self, group: int, t: float, value: int) -> None:
        """:meth:`add` of one value (the same column claims, without numpy's set-up)."""
        self.grow(group + 1)
        hour = int(t // 3600)
        rings = [*self._minute_ring(int(t // 60)),
                 (self.hour_id, self.hour_sums, hour) if self._exact_hours
                 else (self.open_id, self.open_sums, hour)]
        if self.DAYS:
            rings.append((self.day_id, self.day_sums, day_of_hour(hour, self.tz)))
        for ids, sums, unit in rings:
            col = _claim(ids, sums, unit)
            if col >= 0:
                sums[group, col] += value
        if not self._exact_hours:  # as _float_hours, for one row
            col = _claim(self.hour_id, self.hour_sums, hour)
            open_col = hour % self.OPEN_HOURS
            if col >= 0 and self.open_id[open_col] == hour:
                self.hour_sums[group, col] = self.open_sums[group, open_col]
            elif col >= 0:
                self.hour_sums[group, col] += value

    def load(self, group: I64, unit: I64, values: I64, *, minutes: bool) -> None:
        """Restore sums (of one minute or one hour each) after a restart."""
        if not len(group):
            return
        self.grow(int(group.max()) + 1)
        if minutes:
            self._add_units(self._minute_ring(unit), group, values)
        else:
            self._add_units(self._rings(unit), group, values)
            self._float_hours(group, unit, values)

    def minutes(self, first: int, last: int) -> I64:
        """Per group, the sum over the minutes ``first..last`` (unix minutes) in the ring."""
        return live_sum(self.minute_id, self.minute_sums[: self.groups], first, last)

    def at(self, group: int, hours: I64) -> I64:
        """The group's sum in each unix hour of ``hours`` (0 where the ring holds none)."""
        if group >= self.groups:
            return np.zeros(hours.shape, np.int64)
        col = hours % self.HOURS
        sums = np.where(self.hour_id[col] == hours, self.hour_sums[group, col], 0)
        # Integer sums as they are (exact past 2**53); float ones to the nearest integer.
        out: I64 = (sums if self._exact_hours else np.rint(sums)).astype(np.int64)
        return out

    def hours(self, first: int, last: int) -> I64:
        """Per group, the sum over the hours ``first..last`` (unix hours) in the ring."""
        return live_sum(self.hour_id, self.hour_sums[: self.groups], first, last)

    def days(self, first: int, last: int) -> I64:
        """Per group, the sum over the local days ``first..last`` in the ring."""
        return live_sum(self.day_id, self.day_sums[: self.groups], first, last)


# The name under which the requests per function are shared on a series index.
REQUESTS_PER_FUNCTION = "requests per function"


class RequestCounts(RingSums):
    """Requests per group (a function) by minute over the last hour and by hour over
    ``hours``, added once per batch however many readers are handed the batch: one copy
    for every monitor that reads a function's volume, not one each (issue 18).

    Examples
    --------
    >>> r = RequestCounts()
    >>> for _ in range(2):  # two readers of batch 7
    ...     r.count_once(7, np.array([0, 1, 0]), np.array([3600.0, 3601.0, 3602.0]))
    >>> r.hours(1, 1).tolist()
    [2, 1]
    >>> for _ in range(2):  # two readers restoring the same roll-ups
    ...     r.restore(np.array([1]), np.array([0]), np.array([5]), minutes=False)
    >>> r.hours(0, 1).tolist()
    [2, 6]
    """

    def __init__(self, hours: int = 8 * 24) -> None:
        super().__init__(hours=hours, dtype=np.int32)
        self.counted = -1  # the serial of the last batch added
        self._restored = {False: False, True: False}  # hours, minutes

    def count_once(self, serial: int, group: I64, t: F64) -> None:
        """Add batch ``serial``'s rows (one request each) unless it was added already."""
        if serial != self.counted:
            self.counted = serial
            self.add(group, t, np.ones(len(group), np.int64))

    def restore(self, group: I64, unit: I64, values: I64, *, minutes: bool) -> None:
        """:meth:`load` after a restart, unless another reader restored the same kind
        (its readers restore from the same roll-ups: once is exact, twice doubles)."""
        if not self._restored[minutes]:
            self._restored[minutes] = True
            self.load(group, unit, values, minutes=minutes)
