"""The replica side: apply a coordinator's ``ReplicaRequest`` through this node's store.

A plain object the ``Node`` actor drives through :class:`~actors.cluster.node_io.NodeIO`.
A replica decides nothing for itself: the ops arrive stamped (versions, deadlines, purge
times) and go to the store unchanged, in the order they came, behind whatever this node
asked its store before. The versions they carry move this node's clock forward, so a
write it coordinates later is stamped above what it stores; an op stamped beyond the
clock bound is neither stored nor observed, and answered ``unavailable``
(:mod:`actors.cluster.clock_bound`).

The answer goes back in frames of bounded size, big ones in acknowledged parts
(:class:`~actors.cluster.replica_flow.ResponseParts`); a request marked ``reply=False``
(a read repair) gets none.
"""

from __future__ import annotations

import logging

from actors.cluster.clock_bound import RefusalLog, bound_ops, limit_ms
from actors.cluster.node_io import NodeIO
from actors.cluster.replica_flow import ResponseParts
from actors.kernel.peer import FromPeer
from actors.protocol.peer_messages import ReplicaAck, ReplicaRequest
from actors.protocol.version import HybridClock
from actors.store.ops import StoreAnswer

__all__ = ["ReplicaServer"]

logger = logging.getLogger("actorcache.node")


class ReplicaServer:
    """Serves peers' replica requests; ``timeout``: the request timeout."""

    def __init__(self, io: NodeIO, clock: HybridClock, timeout: float, max_skew_s: float = 0.5) -> None:
        self.io = io
        self.clock = clock
        self.max_skew_s = max_skew_s
        #: Versions refused for being beyond the clock bound (actors.cluster.clock_bound).
        self.refused = 0
        self.log = RefusalLog(logger, io.node_id, io.trace)
        #: This node's answers to peers' replica requests, big ones in acknowledged parts.
        self.answers = ResponseParts(io.send, timeout)

    def serve(self, env: FromPeer, msg: ReplicaRequest) -> None:
        io = self.io
        wall = io.wall()
        limit = limit_ms(wall, self.max_skew_s)
        ops, errors, (refused, furthest) = bound_ops(msg.ops, limit)
        if refused:
            self.refused += refused
            self.log.note(env.src, "replica_request", refused, furthest - limit)
        observe = self.clock.observe
        for _, op in ops:
            version = getattr(op, "version", None)
            if version is not None:
                observe(version, wall)
        if not msg.reply:  # a read repair: nobody waits for the answer, so none is sent
            if ops:
                io.ask_store(ops, None)
            return
        addr, src, req, total = env.addr, env.src, msg.req, len(msg.ops)

        def answer(message: StoreAnswer) -> None:
            if errors:  # refused ops answer in their place, among the store's answers
                results: list[object] = [None] * total
                for index, error in errors.items():
                    results[index] = error
                for index, result in message.results:
                    results[index] = result
                self.answers.answer(addr, req, tuple(results), io.now(), src)
            else:
                self.answers.answer(addr, req, tuple(result for _, result in message.results), io.now(), src)

        io.ask_store(ops, answer)  # even with every op refused: answers keep the store's order

    def on_ack(self, env: FromPeer, msg: ReplicaAck) -> None:
        """The coordinator got one part of a split answer: send the next."""
        self.answers.on_ack(env.addr, msg.req, msg.start, self.io.now(), env.src)  # by the link that asked

    def on_heartbeat(self, now: float) -> None:
        self.answers.expire(now)
