"""Reply ordering per client connection.

A host tells the node one ``ClientBatch`` per socket read; the node gives every request
a slot in a :class:`ReplySlots`, filled as answers arrive, in any order (the store,
replicas and key coordinators answer when they answer).

Invariants: replies leave strictly in request order per connection: a connection's
batches wait in its queue, and a batch is sent (one ``BatchReply``) only when it and
every batch before it are complete; each batch is sent exactly once. Only connections a
host announced (``ClientConnected``) and has not closed are counted as connections.

A reply also reflects every request before it on its connection. Most requests get
that from the order their operations reach the store and the replicas; a cluster
read-modify-write does not (it reads, then writes, at its key's coordinator), so while
one is in flight its key is *held* for its connection, and the connection's next
request touching that key (other than another read-modify-write, which queues behind
it at the coordinator) waits, with everything after it on the connection, until the
key is released: planning resumes where it stopped, in order. The other way round, a
cluster read-modify-write waits while a write of its keys sent before it on its
connection is unanswered (:meth:`ReplyOrder.writes_before`): its coordinator's quorum
read could overtake that write's replica messages (``SET k 5`` then ``INCR k`` in one
pipeline must answer 6). When a batch settles, :attr:`ReplyOrder.on_unblock` lets the
node resume the connection's waiting requests.
"""

from __future__ import annotations

import collections
import logging
from typing import Any, Callable

from actors.kernel.failures import log_failure
from actors.protocol.edge import BatchReply
from actors.protocol.kinds import KINDS, Route, route_of
from actors.protocol.messages import ErrorReply, Reply, ReplyTo, Request
from actors.node.request_metrics import RequestMetrics

__all__ = ["ReplySlots", "ReplyOrder", "keys_of"]

logger = logging.getLogger("actorcache.node")


class ReplySlots:
    """The replies of one client batch, filled slot by slot."""

    __slots__ = ("conn", "missing", "order", "replies", "reply_to", "requests", "started", "write_slots")

    def __init__(
        self, conn: int, requests: tuple[Request | ErrorReply, ...], reply_to: ReplyTo, started: float = 0.0
    ) -> None:
        self.conn = conn
        #: When the node accepted the batch (its ctx.now()): request latency starts here.
        self.started = started
        self.requests = requests
        self.reply_to = reply_to
        self.replies: list[Reply | None] = [None] * len(requests)
        self.missing = len(requests)
        #: The reply queues the batch is in (or has left, answered); None until enqueued.
        self.order: ReplyOrder | None = None
        #: Key -> the slots of plain writes of it, in order; built on first need
        #: (:meth:`ReplyOrder.writes_before`), so a pipeline of n updates costs O(n), not O(n^2).
        self.write_slots: dict[str, list[int]] | None = None

    def fill(self, slot: int, reply: Reply) -> None:
        if self.replies[slot] is None:
            self.missing -= 1
        self.replies[slot] = reply

    def settle(self) -> None:
        """Slots were filled: send this connection's batches that are complete."""
        if self.order is not None:
            self.order.flush(self.conn)


class ReplyOrder:
    """Every open connection's queue of batches, oldest first. ``owner`` names the node
    in failure logs; ``metrics`` (with ``now``, the node's clock) counts each batch's
    requests as its replies leave."""

    __slots__ = ("_connected", "_deferred", "_held", "_queues", "metrics", "now", "on_unblock", "owner", "total")

    def __init__(
        self, owner: object, metrics: RequestMetrics | None = None, now: Callable[[], float] | None = None
    ) -> None:
        self.owner = owner
        self.metrics = metrics
        self.now = now
        self._queues: dict[int, collections.deque[ReplySlots]] = {}
        #: Connections a host announced and has not closed (a batch may come without one).
        self._connected: set[int] = set()
        #: Per connection, keys of its read-modify-writes in flight (key -> how many).
        self._held: dict[int, dict[str, int]] = {}
        #: Per connection, where planning stopped (batch, first slot not planned), in order.
        self._deferred: dict[int, collections.deque[tuple[ReplySlots, int]]] = {}
        #: Connections ever announced (``connections_total`` in stats).
        self.total = 0
        #: Called with a connection whose planning waits when one of its batches settled
        #: (a write it waited for may have been answered); the node's resume.
        self.on_unblock: Callable[[int], None] | None = None

    def connected(self, conn: int) -> None:
        self.total += 1
        self._connected.add(conn)
        self._queues.setdefault(conn, collections.deque())

    def disconnected(self, conn: int) -> None:
        self._connected.discard(conn)
        self._queues.pop(conn, None)
        self._held.pop(conn, None)
        self._deferred.pop(conn, None)

    def __len__(self) -> int:
        """Open client connections."""
        return len(self._connected)

    def enqueue(self, pending: ReplySlots) -> None:
        queue = self._queues.get(pending.conn)
        if queue is None:
            queue = self._queues[pending.conn] = collections.deque()
        queue.append(pending)
        pending.order = self

    def flush(self, conn: int) -> None:
        """Send the complete batches at the head of ``conn``'s queue."""
        queue = self._queues.get(conn)
        if queue is None:
            return
        metrics = self.metrics
        while queue and queue[0].missing == 0:
            done = queue.popleft()
            if metrics is not None:
                metrics.record(done.requests, done.replies, self.now() - done.started)  # type: ignore[misc]
            try:
                done.reply_to.tell(BatchReply(conn, tuple(done.replies)))  # type: ignore[arg-type]
            except Exception as exc:  # a broken reply target costs its connection, never the node
                log_failure(logger, f"{self.owner} replying to connection {conn}", exc)
        if conn in self._deferred and self.on_unblock is not None:
            self.on_unblock(conn)

    # --- requests waiting for a read-modify-write before them -------------------------

    def hold(self, conn: int, key: str) -> None:
        held = self._held.setdefault(conn, {})
        held[key] = held.get(key, 0) + 1

    def release(self, conn: int, key: str) -> None:
        held = self._held.get(conn)
        if held is None or key not in held:
            return
        if held[key] > 1:
            held[key] -= 1
        else:
            del held[key]
            if not held:
                del self._held[conn]

    def blocks(self, conn: int, request: Any, update: bool, pending: ReplySlots | None = None, slot: int = 0) -> bool:
        """Whether ``request`` must wait: for a read-modify-write before it on ``conn``, or,
        being one (``update``, at ``slot`` of ``pending``), for a write before it."""
        if update:
            return pending is not None and self.writes_before(pending, slot, keys_of(request))
        held = self._held.get(conn)
        if held is None:
            return False
        return any(key in held for key in keys_of(request))

    def writes_before(self, pending: ReplySlots, slot: int, keys: tuple[str, ...]) -> bool:
        """Whether a write of one of ``keys`` sent before ``slot`` of ``pending`` on its
        connection is still unanswered. Looks at the connection's unsent batches only
        (at most ``MAX_IN_FLIGHT`` socket reads), and only for a cluster read-modify-write."""
        for batch in self._queues.get(pending.conn, ()):
            write_slots = batch.write_slots
            if write_slots is None:
                write_slots = batch.write_slots = {}
                for s, request in enumerate(batch.requests):
                    if type(request) is tuple:  # a plain set (actors.protocol.edge), planned alone
                        write_slots.setdefault(request[0], []).append(s)
                    elif route_of(request) is Route.WRITE:
                        for key in keys_of(request):
                            write_slots.setdefault(key, []).append(s)
            replies = batch.replies
            end = slot if batch is pending else len(replies)
            for key in keys:
                for s in write_slots.get(key, ()):
                    if s >= end:
                        break
                    if replies[s] is None:
                        return True
            if batch is pending:
                return False
        return False

    def free(self, conn: int) -> bool:
        """Whether nothing on ``conn`` waits for a read-modify-write: no planning stopped
        (:meth:`waiting`) and no read-modify-write of it in flight (:meth:`hold`)."""
        return conn not in self._deferred and conn not in self._held

    def waiting(self, conn: int) -> bool:
        """Whether planning on ``conn`` stopped and waits (later batches wait behind)."""
        return conn in self._deferred

    def defer(self, pending: ReplySlots, slot: int, first: bool = False) -> None:
        """Plan ``pending`` from ``slot`` on later: behind what waits already, or (``first``:
        it was waiting and still is) ahead of it."""
        deferred = self._deferred.setdefault(pending.conn, collections.deque())
        if first:
            deferred.appendleft((pending, slot))
        else:
            deferred.append((pending, slot))

    def next_deferred(self, conn: int) -> tuple[ReplySlots, int] | None:
        deferred = self._deferred.get(conn)
        if deferred is None:
            return None
        entry = deferred.popleft()
        if not deferred:
            del self._deferred[conn]
        return entry


def keys_of(request: Any) -> tuple[str, ...]:
    """The keys a request reads or writes (none for ping, stats, a decode error, ...)."""
    kind = KINDS.get(type(request))
    return () if kind is None else kind.keys(request)
