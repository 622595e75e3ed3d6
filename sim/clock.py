"""Per-node virtual clocks: the simulation's time, seen through each node's skew."""

from __future__ import annotations

import simpy

__all__ = ["EPOCH_BASE", "SkewedClock"]

#: Wall time (epoch seconds) at virtual time 0: a fixed date, so traces never depend on
#: when a simulation ran. 2026-01-01T00:00:00Z.
EPOCH_BASE = 1_767_225_600.0


class SkewedClock:
    """``now = t * (1 + drift) + offset`` for virtual time ``t``; wall adds the epoch base."""

    __slots__ = ("drift", "env", "offset")

    def __init__(self, env: simpy.Environment, offset: float = 0.0, drift: float = 0.0) -> None:
        self.env = env
        self.offset = offset
        self.drift = drift

    def now(self) -> float:
        return self.env.now * (1.0 + self.drift) + self.offset

    def wall(self) -> float:
        return EPOCH_BASE + self.now()
