"""The ``Node`` actor: the front door and coordinator of client requests.

Theory of operation
-------------------
A host tells the node one :class:`ClientBatch` per socket read. The node gives every
request a slot in a :class:`PendingBatch`; what it can answer itself (ping, join, decode
errors) fills its slot at once, the rest becomes store operations sent in one
:class:`StoreBatch`. When the store's results come back, each slot gets its reply.

Replies leave strictly in request order per connection: batches wait in a per-connection
queue and a batch is sent only when it and every batch before it are complete. This is
what later lets cluster replies, which return out of order, keep pipelining honest.

The node decides everything a replica must not decide for itself: TTL deadlines
(absolute wall time, ``wall + ttl``) and versions (its hybrid logical clock).
"""

from __future__ import annotations

import collections
import itertools
import logging
from typing import Any

from pykka import ActorRef

from actors._scheduled import ScheduledActor
from actors.ctx import Ctx
from actors.errors import ErrorCode
from actors.messages import (
    Ack,
    BatchReply,
    ClientBatch,
    ClientConnected,
    ClientDisconnected,
    Delete,
    ErrorReply,
    Get,
    Join,
    MGet,
    MSet,
    Ping,
    Pong,
    Read,
    Remove,
    Reply,
    ReplyTo,
    Request,
    Set,
    Stats,
    StatsQuery,
    StatsReply,
    StoreBatch,
    StoreOp,
    StoreResults,
    Value,
    Values,
    Write,
)
from actors.version import HybridClock

__all__ = ["Node", "PendingBatch"]

logger = logging.getLogger("actorcache.node")


class PendingBatch:
    """The replies of one client batch, filled slot by slot."""

    __slots__ = ("conn", "missing", "replies", "reply_to", "requests")

    def __init__(self, conn: int, requests: tuple[Request | ErrorReply, ...], reply_to: ReplyTo) -> None:
        self.conn = conn
        self.requests = requests
        self.reply_to = reply_to
        self.replies: list[Reply | None] = [None] * len(requests)
        self.missing = len(requests)

    def fill(self, slot: int, reply: Reply) -> None:
        if self.replies[slot] is None:
            self.missing -= 1
        self.replies[slot] = reply


class Node(ScheduledActor):
    def __init__(self, ctx: Ctx, store: ActorRef[Any]) -> None:
        super().__init__(ctx)
        self.store = store
        self.clock = HybridClock(ctx.node_id)
        self.started_at = ctx.now()
        self._batch_ids = itertools.count(1)
        self._in_store: dict[int, PendingBatch] = {}
        self._queues: dict[int, collections.deque[PendingBatch]] = {}
        self.connections_total = 0
        self.requests = 0
        self.errors = 0

    def on_receive(self, message: Any) -> Any:
        t = type(message)
        if t is ClientBatch:
            self._on_client_batch(message)
        elif t is StoreResults:
            self._on_store_results(message)
        elif t is ClientConnected:
            self.connections_total += 1
            self._queues.setdefault(message.conn, collections.deque())
        elif t is ClientDisconnected:
            self._queues.pop(message.conn, None)
        else:
            return super().on_receive(message)
        return None

    # --- client batches -----------------------------------------------------------

    def _on_client_batch(self, batch: ClientBatch) -> None:
        requests = batch.requests
        pending = PendingBatch(batch.conn, requests, batch.reply_to)
        ops: list[tuple[int, StoreOp]] = []
        wall = self.ctx.wall()
        self.requests += len(requests)
        for slot, request in enumerate(requests):
            try:
                op = self._plan(request, wall)
            except Exception as exc:  # a bug must cost one reply, never the node
                logger.exception("failed to plan %r", request)
                pending.fill(slot, ErrorReply(ErrorCode.INTERNAL, f"internal error: {exc!r}", _rid(request)))
                continue
            if op is None:
                pending.fill(slot, self._immediate(request))
            else:
                ops.append((slot, op))
        queue = self._queues.get(batch.conn)
        if queue is None:
            queue = self._queues[batch.conn] = collections.deque()
        queue.append(pending)
        if ops:
            batch_id = next(self._batch_ids)
            self._in_store[batch_id] = pending
            self.store.tell(StoreBatch(batch_id, tuple(ops), self.actor_ref))
        else:
            self._flush(batch.conn)

    def _plan(self, request: Request | ErrorReply, wall: float) -> StoreOp | None:
        """The store operation a request needs, or None if the node answers it itself."""
        t = type(request)
        if t is Get:
            return Read((request.key,))
        if t is Set:
            ttl = request.ttl
            deadline = wall + ttl if ttl else None
            return Write(((request.key, request.value, deadline),), self.clock.tick(wall))
        if t is Delete:
            return Remove((request.key,), self.clock.tick(wall))
        if t is MGet:
            return Read(request.keys)
        if t is MSet:
            ttl = request.ttl
            deadline = wall + ttl if ttl else None
            items = tuple((key, value, deadline) for key, value in request.entries)
            return Write(items, self.clock.tick(wall))
        if t is Stats:
            return StatsQuery()
        return None

    def _immediate(self, request: Request | ErrorReply) -> Reply:
        t = type(request)
        if t is ErrorReply:
            self.errors += 1
            return request
        if t is Ping:
            return Pong(request.rid)
        if t is Join:
            # Membership arrives with the cluster; the seed's join is acknowledged.
            self.ctx.trace("join", peer=request.node_id)
            return Ack(request.rid)
        raise TypeError(f"no handler for {request!r}")

    # --- store results ------------------------------------------------------------

    def _on_store_results(self, message: StoreResults) -> None:
        pending = self._in_store.pop(message.batch, None)
        if pending is None:
            return
        requests = pending.requests
        for slot, result in message.results:
            request = requests[slot]
            try:
                reply = self._reply_for(request, result)
            except Exception as exc:
                logger.exception("failed to answer %r", request)
                reply = ErrorReply(ErrorCode.INTERNAL, f"internal error: {exc!r}", _rid(request))
            pending.fill(slot, reply)
        self._flush(pending.conn)

    def _reply_for(self, request: Request | ErrorReply, result: Any) -> Reply:
        t = type(request)
        if t is Get:
            value, found = result[0]
            return Value(value, found, request.rid)
        if t is Set or t is MSet:
            return Ack(request.rid)
        if t is Delete:
            return Ack(request.rid, deleted=result > 0)
        if t is MGet:
            return Values(
                tuple((key, value, found) for key, (value, found) in zip(request.keys, result)),
                request.rid,
            )
        if t is Stats:
            return StatsReply(self._node_stats(result), request.rid)
        raise TypeError(f"no reply for {request!r}")

    def _node_stats(self, store_stats: dict[str, Any]) -> dict[str, Any]:
        stats = {
            "node_id": self.ctx.node_id,
            "uptime_s": round(self.ctx.now() - self.started_at, 3),
            "connections": len(self._queues),
            "connections_total": self.connections_total,
            "requests": self.requests,
            "errors": self.errors,
        }
        stats.update(store_stats)
        return stats

    def _flush(self, conn: int) -> None:
        queue = self._queues.get(conn)
        if queue is None:
            return
        while queue and queue[0].missing == 0:
            done = queue.popleft()
            try:
                done.reply_to.tell(BatchReply(conn, tuple(done.replies)))  # type: ignore[arg-type]
            except Exception:  # a broken reply target costs its connection, never the node
                logger.exception("reply target of connection %s failed", conn)


def _rid(request: Any) -> Any:
    return getattr(request, "rid", None)
