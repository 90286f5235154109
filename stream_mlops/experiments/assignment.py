"""Deterministic traffic splitting for experiments (pure; mirrored by
``mlops.assign_variant`` in SQL, which gives the same answer for the same inputs).

A unit (a user or a request id) is hashed with the experiment's seed to a point ``u`` in
[0, 2^64); the variants own consecutive slices of that line in proportion to their
weights. The same unit always gets the same variant, and changing the weights only moves
the units whose point changes slice: going from 50/50 to 60/40 moves 10 % of the units,
the least any split can move.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction

SPACE = 2**64


def unit_point(seed: str, unit_id: str) -> int:
    """The unit's point on [0, 2^64): the first 8 bytes of sha256("seed:unit")."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{unit_id}".encode()).digest()[:8], "big")


def boundaries(weights: Sequence[float | Decimal | str]) -> list[int]:
    """Exclusive upper bounds of each variant's slice (exact rational arithmetic)."""
    ws = [Fraction(str(w)) for w in weights]
    if not ws or any(w < 0 for w in ws) or sum(ws) <= 0:
        raise ValueError("weights must be >= 0 and not all 0")
    total, acc, out = sum(ws), Fraction(0), []
    for w in ws:
        acc += w
        out.append(int(acc / total * SPACE))
    return out


@functools.lru_cache(maxsize=256)
def _bounds(weights: tuple[str, ...]) -> list[int]:
    return boundaries(weights)


def assign(seed: str, unit_id: str, variants: Sequence[tuple[str, float | Decimal | str]]) -> str:
    """The variant of ``unit_id``; ``variants`` are (name, weight) pairs in order.

    Examples
    --------
    >>> arms = [("control", 0.5), ("treatment", 0.5)]
    >>> [assign("exp-1", f"user-{i}", arms) for i in range(5)]
    ['control', 'treatment', 'treatment', 'treatment', 'control']
    """
    point = unit_point(seed, unit_id)
    for (name, _), bound in zip(variants, _bounds(tuple(str(w) for _, w in variants)),
                                strict=True):
        if point < bound:
            return name
    return variants[-1][0]
