"""The cache on the simulator: :class:`sim.host.SimHost` bound to ``spawn_node``.

Tests, :mod:`sim.runner` and notebooks drive cache nodes through this: the framework's
host calls (``start_node``, ``run_for``, ``pause``, ``crash``, ``network``...) plus the
cache's client calls (``connect``, ``submit``, ``request``) of
:class:`~actors.node.driver.NodeDriver`.

Peers talk in bytes by default: the network carries the cache's peer protocol through
the runtime's own codec (:class:`sim.peer_wire.PeerWire`), so every run exercises the
wire format; ``wire=False`` hands message objects over as they are (quicker, for runs
that do not need it).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from actors.config import NodeConfig
from actors.kernel import ScheduledFuture
from actors.node.driver import FutureReplyTo, NodeDriver
from actors.protocol.edge import ClientBatch
from actors.node.system import NodeRefs, spawn_node
from sim.host import SimHost
from sim.peer_wire import PeerWire

__all__ = ["CacheSimHost"]


class CacheSimHost(NodeDriver, SimHost):
    """Cache nodes on virtual time; ``seed`` drives every random choice."""

    def __init__(self, seed: int | str = 0, secret: bytes | None = None, *, wire: bool = True) -> None:
        """``secret``: the cluster secret every node holds (default: drawn from the seed);
        ``wire``: peers talk in bytes (the runtime's codec), else in objects."""
        super().__init__(spawn_node, seed, secret)
        self.peer_wire: PeerWire | None = PeerWire() if wire else None
        if self.peer_wire is not None:
            self.network.wire = self.peer_wire

    def start_node(self, node_id: str = "node1", config: NodeConfig | None = None, **host_options: Any) -> NodeRefs:
        """As :meth:`SimHost.start_node`; a config without an address advertises the node's
        id, which is what the simulated network routes by."""
        if config is not None and not config.address:
            config = dataclasses.replace(config, address=node_id)
        if self.peer_wire is not None:
            self.peer_wire.configure(node_id, config if config is not None else NodeConfig())
        return super().start_node(node_id, config, **host_options)

    def submit(self, requests: list[Any], *, node_id: str = "node1", conn: int = 0) -> ScheduledFuture:
        """As :meth:`NodeDriver.submit`; with a service model (:mod:`sim.service`) the batch
        is a job of its node's server: it costs the sum of its requests' costs and waits
        for the jobs before it."""
        if self.service is None:
            return super().submit(requests, node_id=node_id, conn=conn)
        future = ScheduledFuture(self.scheduler)
        ref = self.nodes[node_id].node
        batch = ClientBatch(conn, tuple(requests), FutureReplyTo(future))
        cost = self.service.batch_cost(requests, self.service_rngs[node_id])
        self.schedulers[node_id].admit(cost, lambda: ref.tell(batch))
        return future
