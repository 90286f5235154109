"""Exponential backoff with full jitter, so restarted processors do not reconnect in step."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, base: float = 0.1, cap: float = 10.0, rng: random.Random | None = None):
        self.base, self.cap = base, cap
        self.attempt = 0
        self.rng = rng or random.Random()

    def reset(self) -> None:
        self.attempt = 0

    def next(self) -> float:
        """Delay before the next attempt: uniform in [0, min(cap, base * 2**attempt)]."""
        ceiling = min(self.cap, self.base * 2 ** min(self.attempt, 30))
        self.attempt += 1
        return self.rng.uniform(0, ceiling)
