"""How far this node's clock is off its peers', from the wall clocks their heartbeats carry.

Every gossip (heartbeat) carries its sender's wall clock (``Gossip.wall_ms``). The receiver
records ``their stamp - my wall`` per peer: the offset of the peer's clock from its own,
plus the one-way delay (small next to any bound worth setting). Two uses:

- a heartbeat stamped further ahead than the max clock skew is *refused* (its table is not
  merged, it does not count as a heartbeat: the sender is a fault or a forgery);
- a node whose clock is off a strict *majority* of the peers it hears by more than the
  bound is the odd one out (CockroachDB's rule: a node that finds its offset from a
  majority beyond max-offset stops serving). It then refuses to coordinate reads and
  writes (``unavailable``, nothing stored): its versions would be refused by every replica
  or, behind, lose to older writes. One skewed peer (or a rogue's stamps) is one voice and
  cannot fence the others; with one peer, both sides fence (neither can tell who is right).
  Every peer heard counts, member or not: a node behind the others refuses their
  heartbeats (stamped "in the future"), so it never admits them, yet must fence itself.

A delay (the network's, or this node stalled with heartbeats queued for it) can only make
a peer's stamp look *older*, never newer: so a peer's offset is the *largest* of its
samples of the last :data:`OFFSET_TTL_S` seconds (local monotonic time), and a stall
shorter than that cannot fence a node. The price: a clock that jumps forward is fenced
only once its last good samples are that old (meanwhile replicas refuse its versions, so
its writes fail; its own share of each may stay in its store). Samples older than that no
longer count, so a fixed clock serves again within that time. Sans-IO: fed stamps and
times, answers numbers.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

__all__ = ["OFFSET_TTL_S", "SAMPLES", "ClockOffsets"]

#: A sample heard longer ago than this (local monotonic seconds) no longer counts.
OFFSET_TTL_S = 10.0
#: Samples kept per peer (a heartbeat each, so about the last OFFSET_TTL_S at 0.2 s).
SAMPLES = 64


class ClockOffsets:
    """Per-peer clock offsets (ms) and the verdict on this node's own clock."""

    def __init__(self, max_skew_s: float) -> None:
        self.max_skew_ms = int(max_skew_s * 1000)
        #: peer -> its recent samples (their stamp - my wall in ms, when heard: monotonic s)
        self._offsets: dict[str, collections.deque[tuple[int, float]]] = {}

    def heard(self, src: str, their_wall_ms: int, my_wall_ms: int, now: float) -> bool:
        """Record ``src``'s stamp; True if it is within the bound (else refuse the heartbeat).
        An unstamped heartbeat (0) is neither recorded nor refused."""
        if not their_wall_ms:
            return True
        offset = their_wall_ms - my_wall_ms
        samples = self._offsets.get(src)
        if samples is None:
            samples = self._offsets[src] = collections.deque(maxlen=SAMPLES)
        samples.append((offset, now))
        return offset <= self.max_skew_ms

    def offset_ms(self, now: float, exclude: Iterable[str] = ()) -> int | None:
        """The median offset of the peers' clocks from this node's (positive: theirs are
        ahead), over peers heard within :data:`OFFSET_TTL_S` (but ``exclude``); None if none was."""
        fresh = self._fresh(now, exclude)
        if not fresh:
            return None
        return fresh[len(fresh) // 2] if len(fresh) % 2 else (fresh[len(fresh) // 2 - 1] + fresh[len(fresh) // 2]) // 2

    def off_by(self, now: float, exclude: Iterable[str] = ()) -> int | None:
        """How far this node's clock is off its peers' (the median of those off by more than
        the bound, from this node's side), if a strict majority of the peers heard within
        :data:`OFFSET_TTL_S` is off by more than the bound; else None. A peer whose own
        clock is off (or a rogue's stamps) is one voice: it cannot fence the others."""
        fresh = self._fresh(now, exclude)
        beyond = [offset for offset in fresh if abs(offset) > self.max_skew_ms]
        if not fresh or 2 * len(beyond) <= len(fresh):
            return None
        return -beyond[len(beyond) // 2]

    def _fresh(self, now: float, exclude: Iterable[str]) -> list[int]:
        skip = set(exclude)
        out = []
        for peer, samples in self._offsets.items():
            if peer in skip:
                continue
            recent = [offset for offset, heard in samples if now - heard <= OFFSET_TTL_S]
            if recent:
                out.append(max(recent))  # the least delayed sample
        return sorted(out)

    def forget(self, src: str) -> None:
        self._offsets.pop(src, None)
