"""Freed memory goes back to the operating system (glibc's malloc_trim)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from stream_mlops.pipeline.heap import release_free_memory


def rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_freed_arrays_leave_the_resident_set() -> None:
    # Freeing a large (mmapped) array raises glibc's mmap threshold, so the arrays after
    # it come from the heap; one kept after them pins the heap's top, so freeing them
    # leaves their pages resident until trimmed, as grown rings and batches do.
    big = np.ones(16 * 2**20 // 8)  # under the 32 MiB cap of that threshold
    del big
    arrays = [np.ones(256 * 1024 // 8) for _ in range(400)]  # 100 MiB
    pin = np.ones(256 * 1024 // 8)
    del arrays
    before = rss()
    assert release_free_memory()
    after = rss()
    assert before - after > 60 * 2**20, (before, after)
    assert pin.sum() == len(pin)


def test_tune_gc_freezes_what_exists_at_start_and_still_collects_what_comes_after() -> None:
    # In a process of its own: freezing is for the whole process.
    code = """
import gc, weakref
from stream_mlops.pipeline.service import GC_YOUNG_THRESHOLD, tune_gc

class Node:
    pass

def cycle():
    a, b = Node(), Node()
    a.b, b.a = b, a
    return weakref.ref(a)

before = cycle()
tune_gc()
assert before() is None  # collected before the freeze, not frozen with the rest
assert gc.get_freeze_count() > 10_000, gc.get_freeze_count()  # the imports' objects
assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
after = cycle()
gc.collect()
assert after() is None  # garbage made after the start is still collected
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False)
    assert out.stdout.strip() == "ok", out.stderr
