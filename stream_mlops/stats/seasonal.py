"""Hour-of-day profiles of a positive metric from its hourly sums (pure: no I/O).

A daily cycle much longer than a drift detector's reference looks like drift: a reference
learnt at night does not know the morning. The detector is fed ``value / exp(offset)``
instead, where the offset of the hour being fed is how far the same hour of the previous
days sat from their whole day, on a log scale. A whole day spans the cycle, so the level
cancels out and only the shape remains: a drift (a level change) still shows. A day that
straddles a step would carry the step into the shape, so from three days of history on
the offset is the median of the days' own offsets, which one such day cannot move.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

DAYS = 7  # previous days pooled into a profile
# Values in the same hour of the pooled days before an hour's offset is trusted: with a
# coefficient of variation of 0.5 the offset's standard error is then 0.05 on a log scale.
MIN_HOUR_COUNT = 100


def day_windows(hour: int, days: int = DAYS) -> I64:
    """Unix hours of the whole days that start at ``hour`` on each of the previous days.

    Row ``d - 1`` holds the 24 hours ``hour - 24 d .. hour - 24 d + 23``: its first column
    is the same hour ``d`` days before, and the row spans a whole daily cycle (the first
    row ends with the hour before ``hour``, so a profile needs one day of history).

    Examples
    --------
    >>> day_windows(100, days=2)[:, [0, -1]].tolist()
    [[76, 99], [52, 75]]
    """
    starts = hour - 24 * np.arange(1, days + 1, dtype=np.int64)
    out: I64 = starts[:, None] + np.arange(24, dtype=np.int64)[None, :]
    return out


def hour_offset(counts: I64, sums: F64 | I64, usable: Bools,
                min_count: int = MIN_HOUR_COUNT) -> float:
    """Log of the hour's mean over its whole day's mean, pooled over the usable days.

    Parameters
    ----------
    counts, sums : arrays of shape (days, 24)
        Values and their sum per hour, laid out as :func:`day_windows`.
    usable : boolean array of shape (days,)
        The days to use (whole days: after the series' first hour with values).
    min_count : int
        Fewest values in the hour, over the days, for an offset.

    Returns
    -------
    float
        The offset, NaN when the hour has fewer than ``min_count`` values: pooled over
        one or two days, the median of the days' offsets over three or more.

    Examples
    --------
    A day whose hour 7 runs at twice the day's mean latency (seeded lognormal values):

    >>> rng = np.random.default_rng(0)
    >>> level = np.ones(24); level[7] = 2.0
    >>> n = np.full((1, 24), 400)
    >>> x = [level[h] * rng.lognormal(0.0, 0.5, 400) for h in range(24)]
    >>> s = np.array([[v.sum() for v in x]])
    >>> at = lambda h: [*range(h, 24), *range(h)]  # day_windows order: h first
    >>> round(math.exp(hour_offset(n[:, at(7)], s[:, at(7)], np.array([True]))), 2)
    1.92
    >>> round(math.exp(hour_offset(n[:, at(6)], s[:, at(6)], np.array([True]))), 2)
    0.92

    Three such days, the third straddling a step to twice the latency at hour 12: its
    own offset for hour 7 is far off, the median is not.

    >>> n3, s3 = np.repeat(n, 3, axis=0), np.repeat(s, 3, axis=0)
    >>> s3[2, 12:] *= 2
    >>> round(math.exp(hour_offset(n3[:, at(7)], s3[:, at(7)], np.ones(3, bool))), 2)
    1.92
    """
    c, s = counts[usable], np.asarray(sums, np.float64)[usable]
    seen = (c[:, 0] > 0) & (s[:, 0] > 0)
    c, s = c[seen], s[seen]
    n_hour = int(c[:, 0].sum())
    if n_hour < min_count:
        return math.nan
    if len(c) < 3:
        return math.log(s[:, 0].sum() / n_hour) - math.log(s.sum() / c.sum())
    days = np.log(s[:, 0] / c[:, 0]) - np.log(s.sum(axis=1) / c.sum(axis=1))
    return float(np.median(days))
