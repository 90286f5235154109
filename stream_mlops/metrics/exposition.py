"""``/metrics`` text written for thousands of series: the Prometheus text format 0.0.4 and
OpenMetrics 1.0, as prometheus-client would serve them, at a fraction of its cost.

prometheus-client formats every sample on its own: it builds a ``Sample`` with a label
dict, sorts and validates each label name and escapes each value, about 5 µs a sample.
At 5,000 series (some 240,000 samples) that was 1.7 s per scrape, a third of it to build
the samples (``benchmarks/scrape.py``). Here the per-series families
(:class:`~stream_mlops.core.families.SeriesFamily`) hold their values as one array and the
escaped label text of each series, which is computed once per series and kept; a series'
lines are then one ``str.format`` call. Other families (small gauges, process metrics) are
written a sample at a time, escaped as the library does but without its validation of
names (ours are fixed in code).

What the library does beyond that — ``?name[]=`` filtering, exemplars, native histograms,
timestamps — is left to it: :func:`render` returns ``None`` and the caller falls back.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import partial

from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.samples import Sample

from stream_mlops.core.families import SeriesFamily, label_text, number

# OpenMetrics-only samples, which the text format moves to gauges of their own.
_OM_SUFFIXES = ("_created", "_gsum", "_gcount")
_TEXT_TYPES = {"info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram",
               "unknown": "untyped"}


def _sample_line(s: Sample) -> str | None:
    """One sample's line, or ``None`` where it needs what only prometheus-client writes
    (an exemplar, a timestamp, a native histogram)."""
    if s.exemplar is not None or s.timestamp is not None or s.native_histogram is not None:
        return None
    if s.labels:
        return f"{s.name}{{{label_text(tuple(s.labels.items()))}}} {number(s.value)}\n"
    return f"{s.name} {number(s.value)}\n"


def _help(doc: str, openmetrics_format: bool) -> str:
    doc = doc.replace("\\", r"\\").replace("\n", r"\n")
    return doc.replace('"', r"\"") if openmetrics_format else doc


def _family_text(metric: Metric, openmetrics_format: bool) -> list[str] | None:
    name, typ = metric.name, metric.type
    if openmetrics_format:
        out = [f"# HELP {name} {_help(metric.documentation, True)}\n", f"# TYPE {name} {typ}\n"]
        if metric.unit:
            out.append(f"# UNIT {name} {metric.unit}\n")
    else:
        # The text format names counters after their samples.
        name = name + "_total" if typ == "counter" else name + "_info" if typ == "info" else name
        out = [f"# HELP {name} {_help(metric.documentation, False)}\n",
               f"# TYPE {name} {_TEXT_TYPES.get(typ, typ)}\n"]
    if isinstance(metric, SeriesFamily):
        out.extend(metric.lines())
        return out
    # The text format has no OpenMetrics-only samples in a family: the library moves them
    # to gauges of their own after it, and so does this.
    moved: dict[str, list[str]] = {}
    special = () if openmetrics_format else tuple(metric.name + x for x in _OM_SUFFIXES)
    for s in metric.samples:
        line = _sample_line(s)
        if line is None:
            return None
        if s.name in special:
            moved.setdefault(s.name, []).append(line)
        else:
            out.append(line)
    doc = _help(metric.documentation, False)
    for head in sorted(moved):
        out += [f"# HELP {head} {doc}\n", f"# TYPE {head} gauge\n", *moved[head]]
    return out


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a scrape runs.

    A scrape at thousands of series allocates hundreds of thousands of short-lived
    containers. The collections they set off promote whatever is alive at that moment,
    and about every 20th scrape the promotions added up to a full collection, which
    traverses the whole processor state with the GIL held: every thread stopped for
    80-130 ms at 5,000 series (``benchmarks/scrape.py``). A scrape's garbage has no
    cycles, so reference counting frees it; with collection off meanwhile, nothing of it
    is promoted. Collection resumes where it was (concurrent scrapes: off until the one
    that turned it off ends).
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def readable_accept(accept: str | None) -> str:
    """``accept``, or ``""`` (the text format) where prometheus-client cannot read it: a
    malformed version (``version=abc``) raises inside the library, and an unreadable
    header is the client's mistake, not a reason to fail the scrape and log a traceback."""
    try:
        choose_encoder(accept or "")
    except (TypeError, ValueError):
        return ""
    return accept or ""


def encoder(accept: str | None) -> tuple[bool, str] | None:
    """``(openmetrics?, content type)`` that prometheus-client would answer ``accept``
    with, or ``None`` for an escaping scheme other than the two our names make equal."""
    encode, content_type = choose_encoder(accept or "")
    func = encode.func if isinstance(encode, partial) else encode
    escaping = encode.keywords.get("escaping") if isinstance(encode, partial) else None
    if escaping not in (None, openmetrics.UNDERSCORES, openmetrics.ALLOWUTF8):
        return None
    return func is openmetrics.generate_latest, content_type


CHUNK_LINES = 256


def render(families: Iterable[Metric], openmetrics_format: bool) -> list[bytes] | None:
    """The exposition of ``families`` in chunks of :data:`CHUNK_LINES` lines of a family
    (a series' lines of a :class:`SeriesFamily` being one), or ``None`` where
    prometheus-client must write it (see :func:`_sample_line`). Chunks, not one body: at
    5,000 series the text is 43 MB, and joining it whole, then encoding it, took two
    fresh buffers of that size at every scrape (190 -> 170 ms with chunks;
    ``benchmarks/scrape.py``)."""
    out: list[bytes] = []
    for metric in families:
        text = _family_text(metric, openmetrics_format)
        if text is None:
            return None
        out += ("".join(text[i:i + CHUNK_LINES]).encode()
                for i in range(0, len(text), CHUNK_LINES))
    if openmetrics_format:
        out.append(b"# EOF\n")
    return out
