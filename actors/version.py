"""Versions of entries: hybrid logical clock timestamps plus the writer's node id.

An HLC (Kulkarni et al., 2014) stays close to wall time yet never goes backwards and
orders causally related events, so last-write-wins picks the causally later write even
when node clocks disagree by a little. Versions compare as tuples:
``(wall_ms, logical, node_id)``; the node id breaks ties deterministically.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["HybridClock", "Version", "ZERO"]


class Version(NamedTuple):
    wall_ms: int
    logical: int
    node_id: str


ZERO = Version(0, 0, "")


class HybridClock:
    """One node's HLC. Fed wall time by its caller; never reads a clock itself."""

    __slots__ = ("_last", "node_id")

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._last = ZERO

    def tick(self, wall_s: float) -> Version:
        """A new version for a local event at wall time ``wall_s``."""
        wall_ms = int(wall_s * 1000)
        last = self._last
        if wall_ms > last.wall_ms:
            version = Version(wall_ms, 0, self.node_id)
        else:
            version = Version(last.wall_ms, last.logical + 1, self.node_id)
        self._last = version
        return version

    def observe(self, remote: Version, wall_s: float) -> Version:
        """Merge a version received from a peer; returns the new local version."""
        wall_ms = int(wall_s * 1000)
        last = self._last
        top = max(wall_ms, last.wall_ms, remote.wall_ms)
        if top == last.wall_ms == remote.wall_ms:
            logical = max(last.logical, remote.logical) + 1
        elif top == last.wall_ms:
            logical = last.logical + 1
        elif top == remote.wall_ms:
            logical = remote.logical + 1
        else:
            logical = 0
        self._last = Version(top, logical, self.node_id)
        return self._last
