"""Hinted handoff: the writes an owner missed, kept here until it can take them.

A coordinator whose write did not reach an owner (it was down, or had not acked when the
request timed out) hands the record here (``HintRecords``). Hints wait per target and are
pushed once the target is alive again, in pushes of about
:data:`~actors.cluster.peer_budget.PUSH_BUDGET` bytes, each acknowledged before the next
goes to that target. Sans-IO: fed hints, acks, views and the time; acts through a
:class:`~actors.cluster.replicator_io.ReplicatorIo`.

Invariants:

- a queue is ordered by the hints' versions (``wall_ms``; after the hints of a push in
  flight, which stay at its front), so the stale hints of a queue are at its front;
- at most ``hint_limit`` hints are kept in all: past it the stale hints (below) of every
  queue are dropped first, then the oldest hint not in flight of the longest queue (that
  owner needs anti-entropy anyway), all counted (``hints_dropped``). So the limit counts
  hints that can still be delivered: a stale hint never takes the place of a fresh one,
  whether it waits for a target that is down or deep in a queue;
- at most one push is unanswered per target; an acknowledgement removes exactly the
  hints that push carried (the oldest of the queue: nothing is added in front), and only
  if it comes from that target (else it is ignored and counted as from a wrong peer);
- a push unanswered for ``stale_s`` is forgotten and its hints go again on a later tick;
- hints for a member that left are dropped: it will never take them;
- a hint whose version is older than the tombstone lifetime (``--tombstone-ttl``) is
  never delivered but dropped (counted in ``hints_dropped``, traced as ``hints-expired``):
  a delete of that key acknowledged after the write may already have had its tombstone
  purged everywhere, and the target, holding nothing for the key, would take the old
  value and read repair would spread it back (Cassandra's max hint window, bounded by
  gc_grace). Anti-entropy still converges the copies the other owners hold.
"""

from __future__ import annotations

import bisect
import collections
import itertools

from actors.cluster.membership import ClusterView, State
from actors.cluster.replicator_io import ReplicatorIo, fill
from actors.protocol.peer_messages import MemberStatus, Push, PushAck
from actors.protocol.record import Record

__all__ = ["Hints"]


class Hints:
    """Hint queues per target and the pushes delivering them."""

    def __init__(
        self, me: str, limit: int, stream_batch: int, io: ReplicatorIo, counters: collections.Counter[str]
    ) -> None:
        self.me = me
        self.limit = limit
        self.stream_batch = stream_batch
        self.io = io
        self.counters = counters
        self.queues: dict[str, collections.deque[Record]] = {}
        #: Hints held in all queues (the ``hints_pending`` gauge).
        self.count = 0
        self.pushes: dict[int, tuple[str, int, float]] = {}  # sid -> (target, n, started)

    def add(self, items: tuple[tuple[str, Record], ...], oldest_ms: int = 0) -> None:
        """Keep ``(target, record)`` hints (none for this node itself); past the limit drop
        the stale ones (versions below ``oldest_ms``; 0: none is), then the oldest ones."""
        limit = self.limit
        for target, record in items:
            if target == self.me:
                continue
            queue = self.queues.get(target)
            if queue is None:
                queue = self.queues[target] = collections.deque()
            wall = record.version.wall_ms
            if not queue or queue[-1].version.wall_ms <= wall:
                queue.append(record)  # (the usual case: versions come in order)
            else:  # a late one (a write that timed out): in version order, after what is in flight
                lo = self._in_flight(target)
                queue.insert(bisect.bisect_right(queue, wall, lo=lo, key=_wall_ms), record)
            self.count += 1
            if self.count > limit:
                if oldest_ms:
                    self._drop_stale(oldest_ms)
                if self.count > limit:
                    self._drop_oldest()

    def _in_flight(self, target: str) -> int:
        """Hints at the front of ``target``'s queue that a push in flight carries."""
        for pushed, n, _ in self.pushes.values():
            if pushed == target:
                return n
        return 0

    def _drop_stale(self, oldest_ms: int) -> None:
        """Drop every hint below ``oldest_ms`` not in flight (the front of each queue:
        the cost is the hints dropped), from every queue whatever its target's state."""
        for target, queue in list(self.queues.items()):
            lo = self._in_flight(target)
            dropped = 0
            while len(queue) > lo and queue[lo].version.wall_ms < oldest_ms:
                del queue[lo]
                dropped += 1
            if dropped:
                self.count -= dropped
                self.counters["hints_dropped"] += dropped
                if not queue:
                    del self.queues[target]

    def _drop_oldest(self) -> None:
        """Drop the oldest hint not in flight of the longest queue (the first longest, in
        queue order: deterministic)."""
        best: tuple[int, str] | None = None
        for target, queue in self.queues.items():
            lo = self._in_flight(target)
            if len(queue) > lo and (best is None or len(queue) > len(self.queues[best[1]])):
                best = (lo, target)
        if best is None:
            return  # (every hint is in flight: their acks bring the count down)
        lo, target = best
        del self.queues[target][lo]
        self.count -= 1
        self.counters["hints_dropped"] += 1

    def drop_left(self, view: ClusterView) -> None:
        """Hints for members that left can never be delivered; anti-entropy covers their keys."""
        for target in [t for t in self.queues if view.status(t) == MemberStatus.LEFT]:
            dropped = len(self.queues.pop(target))
            self.count -= dropped
            self.counters["hints_dropped"] += dropped

    def deliver(self, view: ClusterView, now: float, oldest_ms: int = 0) -> list[tuple[str, int]]:
        """Push the oldest hints to every alive target with none in flight.

        Hints at a version whose ``wall_ms`` is below ``oldest_ms`` (wall time minus the
        tombstone lifetime; 0: no limit) are dropped rather than sent; returns
        ``(target, dropped)`` for each target that lost some (in queue order, so traces
        stay deterministic)."""
        busy = {target for target, _, _ in self.pushes.values()}
        expired: list[tuple[str, int]] = []
        for target, queue in list(self.queues.items()):
            if target in busy or not queue or view.states.get(target) != State.ALIVE:
                continue
            if oldest_ms:
                dropped = self._drop_old(queue, oldest_ms)
                if dropped:
                    expired.append((target, dropped))
                if not queue:
                    del self.queues[target]
                    continue
            records, _ = fill(tuple(itertools.islice(queue, self.stream_batch)))
            sid = self.io.next_id()
            self.pushes[sid] = (target, len(records), now)
            self.io.send(target, Push(sid, records, ack=True))
        return expired

    def _drop_old(self, queue: collections.deque[Record], oldest_ms: int) -> int:
        """Drop the hints older than ``oldest_ms`` from the front ``stream_batch`` fresh
        ones of ``queue`` (those the next push takes: an ack removes the queue's front, so
        nothing stale may sit among them); later ones are looked at when their turn comes."""
        fresh: list[Record] = []
        dropped = 0
        while queue and len(fresh) < self.stream_batch:
            record = queue.popleft()
            if record.version.wall_ms < oldest_ms:
                dropped += 1
            else:
                fresh.append(record)
        queue.extendleft(reversed(fresh))
        self.count -= dropped
        self.counters["hints_dropped"] += dropped
        return dropped

    def on_ack(self, src: str, msg: PushAck) -> bool:
        """Whether ``msg`` answers a hint push (then it is handled here)."""
        push = self.pushes.get(msg.sid)
        if push is None:
            return False
        target, n, _ = push
        if src != target:
            self.io.wrong_peer("PushAck", src, target)
            return True
        del self.pushes[msg.sid]
        queue = self.queues.get(target)
        if queue is not None:
            for _ in range(min(n, len(queue))):
                queue.popleft()
            self.count -= min(n, self.count)
            self.counters["hints_delivered"] += n
            if not queue:
                del self.queues[target]
        return True

    def expire(self, now: float, stale_s: float) -> None:
        """Forget pushes unanswered for ``stale_s``: their hints go again."""
        for sid in [sid for sid, (_, _, t0) in self.pushes.items() if now - t0 > stale_s]:
            del self.pushes[sid]


def _wall_ms(record: Record) -> int:
    return record.version.wall_ms
