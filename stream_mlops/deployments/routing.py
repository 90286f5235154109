"""Which slot serves a unit during a deployment (pure; mirrored by ``mlops.route`` in SQL,
which gives the same answer for the same inputs).

A unit (a user or a session) is hashed with the deployment's seed to a point ``u`` in
[0, 2^64); it is served by the new version while ``u < share * 2^64``. The share only grows
while a deployment shifts, so a unit that reached the new version keeps it, and the share
of units on it is the share asked for (within sampling error).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal

SPACE = 2**64


def route_point(seed: str, unit_id: str) -> int:
    """The unit's point on [0, 2^64): the first 8 bytes of sha256("seed:unit")."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{unit_id}".encode()).digest()[:8], "big")


def on_new_version(seed: str, unit_id: str, traffic_percent: float) -> bool:
    """Whether ``unit_id`` is served by the new version at ``traffic_percent``.

    The share is compared as Postgres casts a double to numeric (15 significant digits),
    so Python and SQL agree on every unit.

    Examples
    --------
    >>> [on_new_version("seed-1", f"user-{i}", 50) for i in range(6)]
    [True, False, False, False, False, True]
    >>> all(on_new_version("seed-1", f"user-{i}", 100) for i in range(100))
    True
    """
    share = Decimal(f"{float(traffic_percent):.15g}")
    return route_point(seed, unit_id) * 100 < share * SPACE


@dataclass(frozen=True)
class Route:
    """Where a function's units go: the live slot and version, and while a deployment is
    in progress the new ones with their share (``mlops.route`` reads the same columns)."""

    live_slot: str
    live_version: str | None
    new_slot: str | None = None
    new_version: str | None = None
    seed: str = ""
    traffic_percent: float = 0.0
    promoted: bool = False

    def of(self, unit_id: str) -> tuple[str, str | None]:
        """``(slot, version)`` serving ``unit_id``."""
        if self.new_slot is not None and (
                self.promoted or on_new_version(self.seed, unit_id, self.traffic_percent)):
            return self.new_slot, self.new_version
        return self.live_slot, self.live_version
