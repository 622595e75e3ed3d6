"""Driving nodes from outside the host: what tests, ``sim.run`` and tools call.

Both hosts (``runtime.host.ThreadedLoopHost`` and ``sim.host.SimHost``) inherit these
calls, so a behaviour test written against them runs unchanged on either. Blocking
calls here are for drivers only, never for code inside an actor turn.
"""

from __future__ import annotations

import itertools
from typing import Any

from pykka import ActorRef, ActorRegistry

from actors._scheduled import ScheduledFuture
from actors._scheduler import Scheduler
from actors.messages import (
    BatchReply,
    ClientBatch,
    ClientConnected,
    ClientDisconnected,
    ErrorReply,
    Reply,
    Request,
)
from actors.system import NodeRefs

__all__ = ["FutureReplyTo", "HostDriver"]


class FutureReplyTo:
    """An edge reply target that completes a future with a batch's replies."""

    __slots__ = ("future",)

    def __init__(self, future: ScheduledFuture) -> None:
        self.future = future

    def tell(self, message: BatchReply) -> None:
        self.future.set(message.replies)


class HostDriver:
    scheduler: Scheduler
    nodes: dict[str, NodeRefs]

    def __init__(self) -> None:
        self.nodes = {}
        self._conn_ids = itertools.count(1)

    def connect(self, node_id: str = "node1") -> int:
        """Announce a new client connection to a node; returns its connection id."""
        conn = next(self._conn_ids)
        self.nodes[node_id].node.tell(ClientConnected(conn))
        return conn

    def disconnect(self, conn: int, node_id: str = "node1") -> None:
        self.nodes[node_id].node.tell(ClientDisconnected(conn))

    def submit(
        self, requests: list[Request | ErrorReply], *, node_id: str = "node1", conn: int = 0
    ) -> ScheduledFuture:
        """Send one client batch; the future completes with its tuple of replies."""
        future = ScheduledFuture(self.scheduler)
        self.nodes[node_id].node.tell(ClientBatch(conn, tuple(requests), FutureReplyTo(future)))
        return future

    def request(
        self,
        requests: list[Request | ErrorReply],
        *,
        node_id: str = "node1",
        conn: int = 0,
        timeout: float = 10.0,
    ) -> tuple[Reply, ...]:
        """Send one batch and wait for its replies (the simulator advances virtual time)."""
        return self.submit(requests, node_id=node_id, conn=conn).get(timeout=timeout)

    def ask(self, ref: ActorRef[Any], message: Any, timeout: float = 10.0) -> Any:
        return ref.ask(message, timeout=timeout)

    def _forget_nodes(self) -> None:
        """Drop stopped nodes from Pykka's process-global registry."""
        for refs in self.nodes.values():
            for ref in refs.actors():
                ActorRegistry.unregister(ref)
        self.nodes.clear()
