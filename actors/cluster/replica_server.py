"""The replica side: apply a coordinator's ``ReplicaRequest`` through this node's store.

A plain object the ``Node`` actor drives through :class:`~actors.cluster.node_io.NodeIO`.
A replica decides nothing for itself: the ops arrive stamped (versions, deadlines, purge
times) and go to the store unchanged, in the order they came, behind whatever this node
asked its store before. The versions they carry move this node's clock forward, so a
write it coordinates later is stamped above what it stores.

The answer goes back in frames of bounded size, big ones in acknowledged parts
(:class:`~actors.cluster.replica_flow.ResponseParts`); a request marked ``reply=False``
(a read repair) gets none.
"""

from __future__ import annotations

from actors.cluster.node_io import NodeIO
from actors.cluster.replica_flow import ResponseParts
from actors.kernel.peer import FromPeer
from actors.protocol.peer_messages import ReplicaAck, ReplicaRequest
from actors.protocol.version import HybridClock
from actors.store.ops import StoreAnswer

__all__ = ["ReplicaServer"]


class ReplicaServer:
    """Serves peers' replica requests; ``timeout``: the request timeout."""

    def __init__(self, io: NodeIO, clock: HybridClock, timeout: float) -> None:
        self.io = io
        self.clock = clock
        #: This node's answers to peers' replica requests, big ones in acknowledged parts.
        self.answers = ResponseParts(io.send, timeout)

    def serve(self, env: FromPeer, msg: ReplicaRequest) -> None:
        io = self.io
        wall = io.wall()
        for op in msg.ops:
            version = getattr(op, "version", None)
            if version is not None:
                self.clock.observe(version, wall)
        if not msg.reply:  # a read repair: nobody waits for the answer, so none is sent
            io.ask_store(tuple(enumerate(msg.ops)), None)
            return
        addr, req = env.addr, msg.req

        def answer(message: StoreAnswer) -> None:
            self.answers.answer(addr, req, tuple(result for _, result in message.results), io.now())

        io.ask_store(tuple(enumerate(msg.ops)), answer)

    def on_ack(self, env: FromPeer, msg: ReplicaAck) -> None:
        """The coordinator got one part of a split answer: send the next."""
        self.answers.on_ack(env.addr, msg.req, msg.start, self.io.now())

    def on_heartbeat(self, now: float) -> None:
        self.answers.expire(now)
