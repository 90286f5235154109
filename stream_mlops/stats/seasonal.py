"""Hour-of-day profiles of a positive metric from its hourly sums (pure: no I/O).

A daily cycle much longer than a drift detector's reference looks like drift: a reference
learnt at night does not know the morning. The detector is fed ``value / exp(offset)``
instead, where the offset of the hour being fed is how far the same hour of the previous
days sat from their whole day, on a log scale. A whole day spans the cycle, so the level
cancels out and only the shape remains: a drift (a level change) still shows.

Three choices keep the profile from adding errors of its own, which the detectors would
read as small level changes from hour to hour: each hour is pooled with its two
neighbours, then sharpened back by twicing (a daily sine keeps 99.95 % of its amplitude,
and an hour's noise variance falls to 53 %); the profile is shrunk towards flat by the
share of its spread that sampling noise explains (James-Stein: a flat stream gets a flat
profile); and a day that straddles a real step, which would carry the step into the
shape, is outvoted: from three days of history on, the profile is the median of the
days' own.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

DAYS = 7  # previous days pooled into a profile
# Values in an hour and its neighbours, over the days, before its offset is trusted: with a
# coefficient of variation of 0.5 the offset's standard error is then 0.05 on a log scale.
MIN_HOUR_COUNT = 100
# Share of the days' values that must fall in trusted hours for a profile (quiet hours,
# such as a night without traffic, are left flat).
MIN_COVERED = 0.9


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


def day_profile(counts: I64, sums: F64 | I64, usable: Bools,
                min_count: int = MIN_HOUR_COUNT) -> F64 | None:
    """The log of each hour's mean over its whole day's mean, laid out as the columns of
    :func:`day_windows` (column 0: the hour the windows were made for).

    Parameters
    ----------
    counts, sums : arrays of shape (days, 24)
        Values and their sum per hour, laid out as :func:`day_windows`.
    usable : boolean array of shape (days,)
        The days to use (whole days: after the series' first hour with values).
    min_count : int
        Fewest values in an hour and its two neighbours, over the days, for an offset.

    Returns
    -------
    array of 24 floats or None
        The offsets, shrunk towards 0 by the share of their spread that sampling noise
        explains; 0 in hours with too few values. None when the trusted hours hold less
        than 90 % of the values.

    Examples
    --------
    A day whose latency follows ``exp(0.3 sin(2 pi h / 24))`` (seeded lognormal values,
    400 an hour), seen from hour 6, where the cycle peaks:

    >>> rng = np.random.default_rng(0)
    >>> hod = (6 + np.arange(24)) % 24  # hour of day of each column
    >>> x = [np.exp(0.3 * np.sin(2 * np.pi * h / 24)) * rng.lognormal(0, 0.5, 400)
    ...      for h in hod]
    >>> n, s = np.full((1, 24), 400), np.array([[v.sum() for v in x]])
    >>> p = day_profile(n, s, np.array([True]))
    >>> np.round(np.exp(p[[0, 6, 12, 18]]), 2).tolist()  # 6 am, noon, 6 pm, midnight
    [1.32, 0.97, 0.72, 1.01]

    The same values without the cycle: the profile is flat, not the noise of 24 means.

    >>> flat = np.array([[v.sum() / np.exp(0.3 * np.sin(2 * np.pi * h / 24))
    ...                   for v, h in zip(x, hod)]])
    >>> float(np.abs(day_profile(n, flat, np.array([True]))).max())
    0.0

    Three such days, the third straddling a step to twice the latency: the median of the
    days' profiles does not follow it (a median is noisier than a mean: shrunk a little
    more).

    >>> n3, s3 = np.repeat(n, 3, axis=0), np.repeat(s, 3, axis=0)
    >>> s3[2, 12:] *= 2
    >>> np.round(np.exp(day_profile(n3, s3, np.ones(3, bool))[[0, 6, 12, 18]]), 2).tolist()
    [1.3, 0.97, 0.74, 1.01]
    """
    c = counts[usable].astype(np.float64)
    s = np.asarray(sums, np.float64)[usable]
    keep = c.sum(axis=1) > 0
    c, s = c[keep], s[keep]
    if not len(c):
        return None
    c3 = c + np.roll(c, 1, axis=1) + np.roll(c, -1, axis=1)
    s3 = s + np.roll(s, 1, axis=1) + np.roll(s, -1, axis=1)
    hourly = c.sum(axis=0)
    trusted = c3.sum(axis=0) >= min_count
    if hourly[trusted].sum() < MIN_COVERED * hourly.sum():
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        if len(c) < 3:
            raw = np.log(s3.sum(axis=0) / c3.sum(axis=0)) - math.log(s.sum() / c.sum())
            spread = 1.0
        else:  # a median's variance is about pi / 2 times a mean's
            days = np.log(s3 / c3) - np.log(s.sum(axis=1) / c.sum(axis=1))[:, None]
            raw = np.nanmedian(np.where(c3 > 0, days, np.nan), axis=0)
            spread = math.pi / 2
        own = np.log(s.sum(axis=0) / hourly)
    raw = np.where(trusted & np.isfinite(raw), raw, 0.0)
    # Three hours pooled keep 97.7 % of a daily sine; one more pass of the same smoothing
    # over the difference ("twicing") brings it to 99.95 % for 1.6x the noise variance.
    raw = np.where(trusted, 2 * raw - (raw + np.roll(raw, 1) + np.roll(raw, -1)) / 3, 0.0)
    # Sampling noise of an hour's own mean, from second differences of neighbouring hours
    # (which a daily cycle barely moves: 3 % of its amplitude), then through the filter.
    triples = (hourly > 0) & (np.roll(hourly, 1) > 0) & (np.roll(hourly, -1) > 0)
    if not triples.any():
        return None
    second = (np.roll(own, 1) - 2 * own + np.roll(own, -1))[triples]
    noise = float(np.mean(second ** 2)) / 6 * (43 / 81) * spread
    size = float(np.mean(raw[trusted] ** 2))
    shrink = max(0.0, 1.0 - noise / size) if size > 0 else 0.0
    out: F64 = shrink * raw
    return out
