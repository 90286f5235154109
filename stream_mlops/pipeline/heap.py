"""Handing memory the processor has freed back to the operating system.

glibc keeps freed heap pages for reuse: rings and buffers that grow are copied and the
old ones freed, batches come and go, and the resident size stays at its high-water mark
(measured: 7 kB per series at 5,000 series, a fifth of it; ``benchmarks/memory.py``).
``malloc_trim`` returns those pages; it takes well under a millisecond at that size. Where
the C library has no ``malloc_trim`` (musl, macOS) nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache

RELEASE_EVERY_SECONDS = 60.0


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    return trim


def release_free_memory() -> bool:
    """Return the heap's free pages to the operating system; False where the C library
    cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
