"""Versions of entries: hybrid logical clock timestamps plus the writer's node id.

An HLC (Kulkarni et al., 2014) stays close to wall time yet never goes backwards and
orders causally related events, so last-write-wins picks the causally later write even
when node clocks disagree by a little. Versions compare as tuples:
``(wall_ms, logical, node_id)``; the node id breaks ties deterministically.

Every stored entry keeps its version's ints, so versions share int objects where they
can: a clock's versions of one millisecond share its ``wall_ms`` object, and logical
counters come from one table of shared ints (:func:`shared_logical`). A pipelined burst
of writes gets one ``wall_ms`` and logical counters 0, 1, 2, ...: without sharing, every
counter above 256 (CPython's small-int cache) would be an int object of its own per key.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["MAX_LOGICAL", "MAX_WALL_MS", "HybridClock", "Version", "ZERO", "shared_logical"]


class Version(NamedTuple):
    wall_ms: int
    logical: int
    node_id: str


ZERO = Version(0, 0, "")

#: The largest ``wall_ms`` a version may carry (int64: every codec encodes it) and the
#: largest logical counter (no node hands out 2**32 versions within one millisecond).
#: Decoders refuse versions outside them (:mod:`actors.protocol.replica_wire`), so a clock
#: that observes only decoded versions stays encodable: its wall stays within int64 (it
#: also refuses anything beyond its skew bound) and its counter within 2**32 + its own ticks.
MAX_WALL_MS = (1 << 63) - 1
MAX_LOGICAL = (1 << 32) - 1

#: Logical counters below this are handed out as shared int objects (at most about 40 B
#: each, and only up to the highest counter seen).
SHARED_LOGICAL_LIMIT = 1 << 14

_logicals: list[int] = list(range(257))  # CPython's cached small ints to start with


def shared_logical(n: int) -> int:
    """``n``, as the one shared int object for that value if it is a logical counter below
    :data:`SHARED_LOGICAL_LIMIT` (equal to ``n`` in every case, so harmless for any int)."""
    table = _logicals
    if 0 <= n < len(table):
        return table[n]
    if 0 <= n < SHARED_LOGICAL_LIMIT:
        table.extend(range(len(table), n + 1))
        return table[n]
    return n


class HybridClock:
    """One node's HLC. Fed wall time by its caller; never reads a clock itself.

    ``max_skew_s``: :meth:`observe` refuses (never merges) a version stamped further
    ahead of the wall time than this (``--max-clock-skew``), so no peer can move this
    clock into the future; ``refused`` counts those."""

    __slots__ = ("_last", "max_skew_ms", "node_id", "refused")

    def __init__(self, node_id: str, max_skew_s: float = 0.5) -> None:
        self.node_id = node_id
        self._last = ZERO
        self.max_skew_ms = int(max_skew_s * 1000)
        self.refused = 0

    def tick(self, wall_s: float) -> Version:
        """A new version for a local event at wall time ``wall_s``.

        Versions of the same millisecond share the last one's ``wall_ms`` object.
        """
        wall_ms = int(wall_s * 1000)
        last = self._last
        if wall_ms > last.wall_ms:
            version = Version(wall_ms, 0, self.node_id)
        else:
            version = Version(last.wall_ms, shared_logical(last.logical + 1), self.node_id)
        self._last = version
        return version

    def observe(self, remote: Version, wall_s: float) -> Version | None:
        """Merge a version received from a peer; returns the new local version, or None
        (and the clock is unchanged) if ``remote`` is beyond the skew bound or outside
        the encodable range."""
        wall_ms = int(wall_s * 1000)
        if remote.wall_ms > wall_ms + self.max_skew_ms or not 0 <= remote.logical <= MAX_LOGICAL:
            self.refused += 1
            return None
        last = self._last
        # The same values as max() would pick, but the last version's object when it is
        # among the highest (then the remote's), so one millisecond keeps one int object.
        top = last.wall_ms
        if remote.wall_ms > top:
            top = remote.wall_ms
        if wall_ms > top:
            top = wall_ms
        if top == last.wall_ms == remote.wall_ms:
            logical = max(last.logical, remote.logical) + 1
        elif top == last.wall_ms:
            logical = last.logical + 1
        elif top == remote.wall_ms:
            logical = remote.logical + 1
        else:
            logical = 0
        self._last = Version(top, shared_logical(logical), self.node_id)
        return self._last
