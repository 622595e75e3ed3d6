"""Reply ordering per client connection.

A host tells the node one ``ClientBatch`` per socket read; the node gives every request
a slot in a :class:`PendingBatch`, filled as answers arrive, in any order (the store,
replicas and key coordinators answer when they answer).

Invariants: replies leave strictly in request order per connection: a connection's
batches wait in its queue, and a batch is sent (one ``BatchReply``) only when it and
every batch before it are complete; each batch is sent exactly once. Only connections a
host announced (``ClientConnected``) and has not closed are counted as connections.
"""

from __future__ import annotations

import collections
import logging

from actors.kernel.failures import log_failure
from actors.protocol.messages import BatchReply, ErrorReply, Reply, ReplyTo, Request

__all__ = ["PendingBatch", "ReplyOrder"]

logger = logging.getLogger("actorcache.node")


class PendingBatch:
    """The replies of one client batch, filled slot by slot."""

    __slots__ = ("conn", "groups", "missing", "queued", "replies", "reply_to", "requests")

    def __init__(self, conn: int, requests: tuple[Request | ErrorReply, ...], reply_to: ReplyTo) -> None:
        self.conn = conn
        self.requests = requests
        self.reply_to = reply_to
        self.replies: list[Reply | None] = [None] * len(requests)
        self.missing = len(requests)
        #: Whether the batch is in its connection's reply queue (or has left it, answered).
        self.queued = False
        #: First slot of a grouped write -> every slot the write stands for (see
        #: ``actors.node.local_plan``); None when the batch has no group.
        self.groups: dict[int, list[int]] | None = None

    def fill(self, slot: int, reply: Reply) -> None:
        if self.replies[slot] is None:
            self.missing -= 1
        self.replies[slot] = reply


class ReplyOrder:
    """Every open connection's queue of batches, oldest first. ``owner`` names the node
    in failure logs."""

    __slots__ = ("_queues", "owner", "total")

    def __init__(self, owner: object) -> None:
        self.owner = owner
        self._queues: dict[int, collections.deque[PendingBatch]] = {}
        #: Connections ever announced (``connections_total`` in stats).
        self.total = 0

    def connected(self, conn: int) -> None:
        self.total += 1
        self._queues.setdefault(conn, collections.deque())

    def disconnected(self, conn: int) -> None:
        self._queues.pop(conn, None)

    def __len__(self) -> int:
        """Open client connections."""
        return len(self._queues)

    def enqueue(self, pending: PendingBatch) -> None:
        queue = self._queues.get(pending.conn)
        if queue is None:
            queue = self._queues[pending.conn] = collections.deque()
        queue.append(pending)
        pending.queued = True

    def flush(self, conn: int) -> None:
        """Send the complete batches at the head of ``conn``'s queue."""
        queue = self._queues.get(conn)
        if queue is None:
            return
        while queue and queue[0].missing == 0:
            done = queue.popleft()
            try:
                done.reply_to.tell(BatchReply(conn, tuple(done.replies)))  # type: ignore[arg-type]
            except Exception as exc:  # a broken reply target costs its connection, never the node
                log_failure(logger, f"{self.owner} replying to connection {conn}", exc)
