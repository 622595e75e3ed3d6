"""Hosting a node's actors on an asyncio event loop, with the real clocks.

:func:`real_ctx` builds the ``Ctx`` the runtime gives its actors. :class:`ThreadedLoopHost`
runs a loop in a background thread and offers the same driver calls as
:class:`sim.host.SimHost` (``start_node``, ``request``, ``run_for``, ``shutdown``), so one
behaviour test runs on both hosts, as Pykka's tests run on all of its runtimes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import threading
import time
from typing import Any

from pykka import ActorRef

from actors.kernel import Ctx

from actors.config import NodeConfig
from actors.node.system import NodeRefs, spawn_node
from actors.kernel.ctx import HostStats, SendFn, TraceSink
from actors.node.driver import NodeDriver
from runtime.loop_scheduler import LoopScheduler

__all__ = ["ThreadedLoopHost", "node_actors", "real_ctx"]


def real_ctx(
    node_id: str,
    scheduler: LoopScheduler,
    trace: TraceSink | None = None,
    send: SendFn | None = None,
    host_stats: HostStats | None = None,
) -> Ctx:
    """The production ``Ctx``: monotonic and wall clocks, an RNG seeded from the OS, and
    ``send`` as the peer transport (:meth:`runtime.peers.PeerLinks.send`; without it,
    ``ctx.send`` raises :class:`~actors.kernel.ctx.NoPeerTransportError`); ``host_stats``: the
    server's own counters, merged into the node's ``stats``."""
    return Ctx(
        node_id,
        scheduler,
        now=time.monotonic,
        wall=time.time,
        rng=random.Random(os.urandom(16)),
        send=send,
        trace=trace,
        host_stats=host_stats,
    )


def node_actors(refs: NodeRefs) -> tuple[ActorRef[Any], ...]:
    """Every actor of a node, whatever actors ``NodeRefs`` holds."""
    actors = getattr(refs, "actors", None)
    if callable(actors):
        return tuple(actors())
    return tuple(getattr(refs, f.name) for f in dataclasses.fields(refs) if isinstance(getattr(refs, f.name), ActorRef))


class ThreadedLoopHost(NodeDriver):
    """An event loop in a daemon thread hosting nodes; driven from the caller's thread."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.scheduler = LoopScheduler(self.loop)
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.scheduler.bind_thread()
            self.loop.call_soon(ready.set)
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name="actorcache-loop", daemon=True)
        self._thread.start()
        ready.wait()
        self._t0 = time.monotonic()

    def ctx(self, node_id: str) -> Ctx:
        return real_ctx(node_id, self.scheduler)

    def start_node(self, node_id: str = "node1", config: NodeConfig | None = None) -> NodeRefs:
        refs = spawn_node(self.ctx(node_id), config)
        self.nodes[node_id] = refs
        return refs

    def now(self) -> float:
        return time.monotonic() - self._t0

    def run_for(self, seconds: float) -> None:
        time.sleep(seconds)

    def shutdown(self) -> None:
        for refs in self.nodes.values():
            refs.stop()  # non-blocking, in the order NodeRefs chooses
        for refs in self.nodes.values():
            for ref in node_actors(refs):
                ref.actor_stopped.wait(timeout=5)
        self._forget_nodes()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()
