"""How far this node's clock is off its peers', from the wall clocks their heartbeats carry.

Every gossip (heartbeat) carries its sender's wall clock (``Gossip.wall_ms``) and echoes
the last stamp it heard from the receiver with how long it held it (``echo_ms``,
``held_ms``). From one gossip the receiver gets a *sample* of the sender's clock offset
(positive: the peer's clock is ahead of this node's):

- one-way, ``their stamp - my wall``: the offset minus the delay (the network's, or this
  node stalled with heartbeats queued for it), so a delay makes a peer look *behind*;
- round trip (NTP's rule, when the gossip echoes one of our stamps ``t1``, sent back at
  their ``t3`` after holding it ``held``, received at our ``t4``):
  ``offset = ((t3 - held - t1) + (t3 - t4)) / 2``, with a known ``delay = (t4 - t1) -
  held``; wrong by at most half the delay.

Two uses:

- a heartbeat stamped further ahead than the max clock skew is *refused* (its table is not
  merged, it does not count as a heartbeat): a delay cannot make a stamp look newer, so
  one-way is enough to refuse;
- a node whose clock is off a strict *majority* of the peers it hears by more than the
  bound is the odd one out (CockroachDB's rule: a node that finds its offset from a
  majority beyond max-offset stops serving). It then refuses to coordinate reads and
  writes (``unavailable``, nothing stored): its versions would be refused by every replica
  or, behind, lose to older writes. One skewed peer (or a rogue's stamps) is one voice and
  cannot fence the others; with one peer, both sides fence (neither can tell who is right).
  Only the caller's *voters* count (the node's members and configured contacts,
  :meth:`~actors.cluster.lifecycle.Lifecycle.clock_voters`): a link naming a made-up node
  id is no voice, so one holder of the cluster secret opening links as ``ghost0``,
  ``ghost1``... cannot outvote the members. A member or contact counts whether or not its
  heartbeats are admitted: a node behind the others refuses their heartbeats (stamped "in
  the future"), so it never merges their rows, yet must fence itself.

A peer's offset is its latest round-trip sample of the last :data:`OFFSET_TTL_S` seconds
(local monotonic time) whose delay is within half the bound (so it is right within a
quarter of the bound); with round trips but none that fast the peer gives no verdict (a
stall, heartbeats queued while this node was paused, cannot fence it); a peer that never
echoed gives the largest of its one-way samples (the least delayed). A clock that jumps is
judged within a round trip or two. Older samples no longer count, and a node that hears no
peer keeps its verdict. Sans-IO: fed stamps and times, answers numbers.
"""

from __future__ import annotations

import collections
from collections.abc import Container, Iterable

__all__ = ["OFFSET_TTL_S", "SAMPLES", "ClockOffsets"]

#: A sample heard longer ago than this (local monotonic seconds) no longer counts.
OFFSET_TTL_S = 5.0
#: Samples kept per peer (one per heartbeat: about the last OFFSET_TTL_S at 0.1-0.2 s).
SAMPLES = 64


class ClockOffsets:
    """Per-peer clock offsets (ms) and the verdict on this node's own clock."""

    def __init__(self, max_skew_s: float) -> None:
        self.max_skew_ms = int(max_skew_s * 1000)
        #: peer -> its recent samples: (offset ms, round-trip delay ms or None, heard at)
        self._samples: dict[str, collections.deque[tuple[int, int | None, float]]] = {}

    def heard(self, src: str, their_wall_ms: int, my_wall_ms: int, now: float, echo_ms: int = 0, held_ms: int = 0) -> bool:
        """Record ``src``'s stamp (and the round trip, if it echoed one of ours); True if
        the stamp is within the bound (else refuse the heartbeat). An unstamped heartbeat
        (0) is neither recorded nor refused."""
        if not their_wall_ms:
            return True
        one_way = their_wall_ms - my_wall_ms
        samples = self._samples.get(src)
        if samples is None:
            samples = self._samples[src] = collections.deque(maxlen=SAMPLES)
        if echo_ms and 0 <= held_ms and echo_ms <= my_wall_ms:
            delay = (my_wall_ms - echo_ms) - held_ms
            if delay >= 0:
                samples.append((((their_wall_ms - held_ms - echo_ms) + one_way) // 2, delay, now))
            else:  # impossible for honest clocks: a forged echo or held; the one-way view only
                samples.append((one_way, None, now))
        else:
            samples.append((one_way, None, now))
        return one_way <= self.max_skew_ms

    def peer_offset(self, peer: str, now: float) -> int | None:
        """``peer``'s clock offset from this node's by its latest usable sample (None: none)."""
        samples = self._samples.get(peer)
        if not samples:
            return None
        usable = self.max_skew_ms // 2  # a round trip this fast is right within a quarter of the bound
        one_way: int | None = None
        timed = False
        for offset, delay, heard in reversed(samples):
            if now - heard > OFFSET_TTL_S:
                break
            if delay is None:
                one_way = offset if one_way is None else max(one_way, offset)
            elif delay <= usable:
                return offset
            else:
                timed = True
        return None if timed else one_way

    def offset_ms(
        self, now: float, exclude: Iterable[str] = (), voters: Container[str] | None = None
    ) -> int | None:
        """The median offset of the peers' clocks from this node's (positive: theirs are
        ahead), over peers with a usable recent sample (only ``voters``, if given, but
        ``exclude``); None if none has."""
        fresh = self._fresh(now, exclude, voters)
        if not fresh:
            return None
        return fresh[len(fresh) // 2] if len(fresh) % 2 else (fresh[len(fresh) // 2 - 1] + fresh[len(fresh) // 2]) // 2

    def off_by(self, now: float, exclude: Iterable[str] = (), voters: Container[str] | None = None) -> int | None:
        """How far this node's clock is off its peers' (the median of those off by more than
        the bound, from this node's side), if a strict majority of the peers with a usable
        recent sample (only ``voters``, if given, but ``exclude``) is off by more than the
        bound; else None."""
        fresh = self._fresh(now, exclude, voters)
        beyond = [offset for offset in fresh if abs(offset) > self.max_skew_ms]
        if not fresh or 2 * len(beyond) <= len(fresh):
            return None
        return -beyond[len(beyond) // 2]

    def _fresh(self, now: float, exclude: Iterable[str], voters: Container[str] | None) -> list[int]:
        skip = set(exclude)
        out = []
        for peer in self._samples:
            if peer not in skip and (voters is None or peer in voters):
                offset = self.peer_offset(peer, now)
                if offset is not None:
                    out.append(offset)
        return sorted(out)

    def forget(self, src: str) -> None:
        self._samples.pop(src, None)
