"""Metric families with the same samples for every series, their values arrays.

A monitor with a sample per series per window (or rule, or bucket) builds one
:class:`SeriesFamily` instead of a prometheus-client family with a ``Sample`` per value:
``/metrics`` (:mod:`stream_mlops.metrics.exposition`) writes it a series at a time, with
the escaped label text of each series computed once and kept (:func:`cached_texts`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
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

    ``samples`` is built on first use only, for prometheus-client's own encoders and
    filters; :meth:`lines` writes the text without it.
    """

    def __init__(self, name: str, documentation: str, typ: str, *, label_names: Sequence[str],
                 keys: Sequence[tuple[str, ...]], texts: Sequence[str],
                 columns: Sequence[tuple[str, Labels]],
                 values: Sequence[npt.NDArray[Any]]) -> None:
        self.name, self.documentation, self.type, self.unit = name, documentation, typ, ""
        self.label_names = tuple(label_names)
        self.keys, self.texts = keys, texts
        self.columns = list(columns)
        self.values = [v[:len(keys)] for v in values]
        self._samples: list[Sample] | None = None

    def rows(self) -> Iterator[tuple[float, ...]]:
        """The values of each series, in the order of ``keys``."""
        return zip(*(v.tolist() for v in self.values), strict=True)

    @property
    def samples(self) -> list[Sample]:
        if self._samples is None:
            self._samples = [
                Sample(sample, {**dict(zip(self.label_names, key, strict=True)), **dict(extra)},
                       float(v))
                for key, row in zip(self.keys, self.rows(), strict=True)
                for (sample, extra), v in zip(self.columns, row, strict=True)]
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
        parts = []
        for j, (sample, extra) in enumerate(self.columns):
            more = ("," + label_text(extra)).replace("{", "{{").replace("}", "}}") if extra else ""
            parts.append(f"{sample}{{{{{{0}}{more}}}}} {{{j + 1}}}\n")
        template = "".join(parts).format
        finite = all(np.isfinite(v).all() for v in self.values if v.dtype.kind == "f")
        for text, row in zip(self.texts, self.rows(), strict=True):
            yield template(text, *row) if finite else template(text, *map(number, row))


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
