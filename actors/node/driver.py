"""The cache's driver calls: connect a client, submit a batch, wait for its replies.

Mixed into both hosts' drivers (:class:`actors.kernel.driver.HostDriver`) by the cache's
host bindings, so a behaviour test of the cache runs unchanged in real time and in the
simulator.
"""

from __future__ import annotations

import itertools
from typing import Any

from pykka import ActorRef

from actors.config import NodeConfig
from actors.kernel.driver import HostDriver
from actors.kernel.scheduled import ScheduledFuture
from actors.protocol.edge import BatchReply, ClientBatch, ClientConnected, ClientDisconnected
from actors.protocol.messages import ErrorReply, Reply, Request
from actors.node.system import NodeRefs

__all__ = ["FutureReplyTo", "NodeDriver"]


class FutureReplyTo:
    """An edge reply target that completes a future with a batch's replies."""

    __slots__ = ("future",)

    def __init__(self, future: ScheduledFuture) -> None:
        self.future = future

    def tell(self, message: BatchReply) -> None:
        self.future.set(message.replies)


class NodeDriver(HostDriver):
    """Client calls into cache nodes hosted by this driver.

    A mixin: the cache's host bindings (``sim.cache_host.CacheSimHost``,
    ``runtime.cache_host.CacheLoopHost``) put it before a host class, which gets the
    constructor arguments passed through.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._conn_ids = itertools.count(1)

    def start_node(self, node_id: str = "node1", config: NodeConfig | None = None, **host_options: Any) -> NodeRefs:
        """Spawn a cache node (``spawn_node``); ``host_options`` go to the host (the
        simulator's ``offset`` and ``drift``)."""
        return super().start_node(node_id, config, **host_options)

    def peer_inbox(self, handle: NodeRefs) -> ActorRef[Any]:
        """Peers talk to a node's ``Node`` actor; it hands the replicator its share."""
        return handle.node

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
