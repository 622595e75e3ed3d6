"""Hinted handoff: the writes an owner missed, kept here until it can take them.

A coordinator whose write did not reach an owner (it was down, or had not acked when the
request timed out) hands the record here (``HintRecords``). Hints wait per target and are
pushed once the target is alive again, in pushes of about
:data:`~actors.cluster.peer_budget.PUSH_BUDGET` bytes, each acknowledged before the next
goes to that target. Sans-IO: fed hints, acks, views and the time; acts through a
:class:`~actors.cluster.replicator_io.ReplicatorIo`.

Invariants:

- at most ``hint_limit`` hints are kept in all: past it the oldest hint of the longest
  queue is dropped (that owner needs anti-entropy anyway) and counted (``hints_dropped``);
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

    def add(self, items: tuple[tuple[str, Record], ...]) -> None:
        """Keep ``(target, record)`` hints (none for this node itself)."""
        limit = self.limit
        for target, record in items:
            if target == self.me:
                continue
            queue = self.queues.get(target)
            if queue is None:
                queue = self.queues[target] = collections.deque()
            queue.append(record)
            self.count += 1
            if self.count > limit:
                # Drop the oldest hint of the longest queue: that owner needs anti-entropy anyway.
                longest = max(self.queues.values(), key=len)
                longest.popleft()
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
