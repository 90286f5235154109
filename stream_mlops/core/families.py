"""Metric families with the same samples for every series, their values arrays.

A monitor with a sample per series per window (or rule, or bucket) builds one
:class:`SeriesFamily` instead of a prometheus-client family with a ``Sample`` per value:
``/metrics`` (:mod:`stream_mlops.metrics.exposition`) writes it a series at a time, with
the escaped label text of each series computed once and kept (:func:`cached_texts`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client.core import Metric
from prometheus_client.samples import Sample

Labels = tuple[tuple[str, str], ...]


def escape(value: str) -> str:
    """A label value as the exposition formats quote it."""
    if "\\" in value or "\n" in value or '"' in value:
        value = value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def label_text(labels: Labels) -> str:
    """``k1="v1",k2="v2"`` with the values escaped."""
    return ",".join(f'{k}="{escape(v)}"' for k, v in labels)


class SeriesFamily(Metric):
    """A metric family with the same samples for every series, its values one array per
    sample.

    Parameters
    ----------
    name, documentation, typ
        As for prometheus-client's families (``typ`` "counter", "gauge" or "histogram").
    label_names
        Names of the labels that identify a series.
    keys
        Label values of each series, in the order of the values.
    texts
        Escaped label text of each series (:func:`label_text`), kept by the caller across
        scrapes.
    columns
        Per sample of a series: its full name and its extra labels (``le``, ``status``).
    values
        Per column, its value for every series. Counts stay integer arrays: an integer is
        written three times faster than a float.
    nan_is_absent
        A NaN value is no sample at all (a series without that metric or test), rather
        than a sample whose value is NaN.

    ``samples`` is built on first use only, for prometheus-client's own encoders and
    filters; :meth:`lines` writes the text without it.
    """

    def __init__(self, name: str, documentation: str, typ: str, *, label_names: Sequence[str],
                 keys: Sequence[tuple[str, ...]], texts: Sequence[str],
                 columns: Sequence[tuple[str, Labels]],
                 values: Sequence[npt.NDArray[Any]], nan_is_absent: bool = False) -> None:
        self.name, self.documentation, self.type, self.unit = name, documentation, typ, ""
        self.label_names = tuple(label_names)
        self.keys, self.texts = keys, texts
        self.columns = list(columns)
        self.values = [v[:len(keys)] for v in values]
        self.nan_is_absent = nan_is_absent
        self._samples: list[Sample] | None = None

    def rows(self) -> Iterator[tuple[float, ...]]:
        """The values of each series, in the order of ``keys``."""
        return zip(*(v.tolist() for v in self.values), strict=True)

    def _present(self) -> list[int]:
        """Per series, a bit per column: set where it has a sample."""
        if not self.nan_is_absent:
            return [(1 << len(self.columns)) - 1] * len(self.keys)
        bits = np.zeros(len(self.keys), np.int64)
        for j, v in enumerate(self.values):
            if v.dtype.kind == "f":
                bits |= (~np.isnan(v)).astype(np.int64) << j
            else:
                bits |= np.int64(1 << j)
        out: list[int] = bits.tolist()
        return out

    def series_samples(self) -> Iterator[tuple[tuple[str, ...], str, Labels, float]]:
        """(series key, sample name, extra labels, value) of every sample."""
        columns = self.columns
        for key, row, bits in zip(self.keys, self.rows(), self._present(), strict=True):
            for j, ((sample, extra), v) in enumerate(zip(columns, row, strict=True)):
                if bits >> j & 1:
                    yield key, sample, extra, float(v)

    @property
    def samples(self) -> list[Sample]:
        if self._samples is None:
            names = self.label_names
            self._samples = [
                Sample(sample, {**dict(zip(names, key, strict=True)), **dict(extra)}, v)
                for key, sample, extra, v in self.series_samples()]
        return self._samples

    @samples.setter
    def samples(self, value: list[Sample]) -> None:  # Metric's attribute is writable
        self._samples = value

    def _restricted_metric(self, names: Any) -> Metric | None:
        # ``?name[]=`` asks every family of a collector; skip this one without building
        # its samples unless one of them was asked for.
        if not any(sample in names for sample, _ in self.columns):
            return None
        return super()._restricted_metric(names)  # type: ignore[no-untyped-call,no-any-return]

    def lines(self) -> Iterator[str]:
        """The sample lines, a series at a time."""
        if not self.keys:
            return
        heads = [(f"{sample}{{", ("," + label_text(extra) if extra else "") + "} ")
                 for sample, extra in self.columns]
        # One writer per set of columns present (one set unless NaN is absent); a
        # series' values are picked for it by an itemgetter, not a loop.
        templates: dict[int, tuple[Callable[..., str], Callable[[Any], Any], int]] = {}

        def template(bits: int) -> tuple[Callable[..., str], Callable[[Any], Any], int]:
            idx = [j for j in range(len(heads)) if bits >> j & 1]
            return row_writer([heads[j] for j in idx]), itemgetter(*idx), len(idx)

        finite = all(np.isfinite(v[~np.isnan(v)] if self.nan_is_absent else v).all()
                     for v in self.values if v.dtype.kind == "f")
        if not self.nan_is_absent:  # every series has every column: no picking
            fmt = template((1 << len(heads)) - 1)[0]
            for text, row in zip(self.texts, self.rows(), strict=True):
                yield fmt(text, *row) if finite else fmt(text, *map(number, row))
            return
        for text, row, bits in zip(self.texts, self.rows(), self._present(), strict=True):
            if not bits:
                continue
            t = templates.get(bits)
            if t is None:
                t = templates[bits] = template(bits)
            fmt, pick, n = t
            values = (pick(row),) if n == 1 else pick(row)
            yield fmt(text, *values) if finite else fmt(text, *map(number, values))


def row_writer(heads: Sequence[tuple[str, str]]) -> Callable[..., str]:
    """``write(text, *values)``: one series' lines, ``before + text + after + value`` per
    ``(before, after)`` of ``heads``.

    An f-string compiled once per family and set of columns: ``str.format`` parses its
    template at every call, and a scrape at 5,000 series makes 60,000 of them. The
    pieces are names in the compiled function's namespace, never spliced into its source.

    Examples
    --------
    >>> write = row_writer([("a{", "} "), ("b{", ',le="1"} ')])
    >>> print(write('f="x"', 3, 0.5), end="")
    a{f="x"} 3
    b{f="x",le="1"} 0.5
    """
    names: dict[str, Any] = {"__builtins__": {}}
    body = []
    for j, (before, after) in enumerate(heads):
        names[f"b{j}"], names[f"a{j}"] = before, after
        body.append(f"{{b{j}}}{{t}}{{a{j}}}{{v{j}}}\\n")
    args = "".join(f", v{j}" for j in range(len(heads)))
    write: Callable[..., str] = eval(f'lambda t{args}: f"{"".join(body)}"', names)  # noqa: S307
    return write


def cached_texts(cache: dict[tuple[str, ...], str], label_names: Sequence[str],
                 keys: Sequence[tuple[str, ...]]) -> list[str]:
    """Label text per series from ``cache``, adding new series to it; the cache is
    emptied when it holds many more series than are current (series folded or gone)."""
    if len(cache) > 2 * len(keys) + 1024:
        cache.clear()
    out = []
    for key in keys:
        text = cache.get(key)
        if text is None:
            text = cache[key] = label_text(tuple(zip(label_names, key, strict=True)))
        out.append(text)
    return out


def number(v: float) -> str:
    """A sample value: Go's spellings of the infinities and NaN, else Python's shortest
    round-trip form (which Prometheus parses)."""
    v = float(v)
    if math.isfinite(v):
        return repr(v)
    return "NaN" if math.isnan(v) else ("+Inf" if v > 0 else "-Inf")
