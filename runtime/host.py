"""Hosting any actor system's nodes on an asyncio event loop, with the real clocks.

:func:`real_ctx` builds the ``Ctx`` the runtime gives its actors (a real node passes its
TCP peer links as ``send``). :class:`ThreadedLoopHost` runs a loop in a background thread
and hosts the nodes of the system whose spawn function it is given (see
:mod:`actors.kernel.driver`), with the driver calls :class:`sim.host.SimHost` offers
(``start_node``, ``ask``, ``run_for``, ``shutdown``), so one behaviour test runs on both
hosts, as Pykka's tests run on all of its runtimes.

The nodes of one loop host reach each other through :class:`LoopLinks`: ``ctx.send`` on
the loop thread puts ``FromPeer`` straight into the destination's inbox. Real time, the
real event loop and the real actor turns, but no sockets and no faults: a message to a
node the host does not run is dropped and counted, like one on a dead link.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import threading
import time
from typing import Any, Callable

from pykka import ActorRef

from actors.kernel import Ctx, FromPeer
from actors.kernel.ctx import HostStats, SendFn, TraceSink
from actors.kernel.disk import Disk
from actors.kernel.driver import HostDriver, Spawn
from runtime.loop_scheduler import LoopScheduler

__all__ = ["LoopLinks", "ThreadedLoopHost", "real_ctx"]


def real_ctx(
    node_id: str,
    scheduler: LoopScheduler,
    trace: TraceSink | None = None,
    send: SendFn | None = None,
    host_stats: HostStats | None = None,
    disk: Disk | None = None,
    tracing: bool | None = None,
) -> Ctx:
    """The production ``Ctx``: monotonic and wall clocks, an RNG seeded from the OS, and
    ``send`` as the peer transport (:meth:`runtime.peers.PeerLinks.send`; without it,
    ``ctx.send`` raises :class:`~actors.kernel.ctx.NoPeerTransportError`); ``host_stats``: the
    server's own counters, merged into the node's ``stats``; ``disk``: the data directory
    (``--dir``: :class:`runtime.file_disk.FileDisk`), or None; ``tracing``: see
    :attr:`~actors.kernel.ctx.Ctx.tracing` (default: whether there is a ``trace`` sink)."""
    return Ctx(
        node_id,
        scheduler,
        now=time.monotonic,
        wall=time.time,
        rng=random.Random(os.urandom(16)),
        send=send,
        trace=trace,
        host_stats=host_stats,
        disk=disk,
        tracing=tracing,
    )


class LoopLinks:
    """Peer links between the nodes of one loop host, addressed by node id.

    ``send`` runs inside a turn on the loop thread; the envelope enters the destination's
    mailbox at once (FIFO per link, as the loop runs turns in order) and is handled in a
    later turn of that actor.
    """

    def __init__(self) -> None:
        #: Node id -> the actor its peer messages go to (absent: not running here).
        self.inboxes: dict[str, ActorRef[Any]] = {}
        self.sent = 0
        self.dropped = 0

    def sender(self, node_id: str) -> Callable[[str, Any], None]:
        """The ``send`` a node's ``Ctx`` gets: ``send(dest_id, msg)``."""
        return functools.partial(self.send, node_id)

    def send(self, src: str, dst: str, msg: Any) -> None:
        self.sent += 1
        inbox = self.inboxes.get(dst)
        if inbox is None or not inbox.is_alive():
            self.dropped += 1
            return
        inbox.tell(FromPeer(src, src, msg))


class ThreadedLoopHost(HostDriver):
    """An event loop in a daemon thread hosting the nodes ``spawn`` starts; driven from the
    caller's thread."""

    def __init__(self, spawn: Spawn) -> None:
        super().__init__(spawn)
        self.links = LoopLinks()
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
        return real_ctx(node_id, self.scheduler, send=self.links.sender(node_id))

    def start_node(self, node_id: str, config: Any = None) -> Any:
        handle = self.spawn(self.ctx(node_id), config)
        self.nodes[node_id] = handle
        self.links.inboxes[node_id] = self.peer_inbox(handle)
        return handle

    def now(self) -> float:
        return time.monotonic() - self._t0

    def run_for(self, seconds: float) -> None:
        time.sleep(seconds)

    def shutdown(self) -> None:
        for handle in self.nodes.values():
            handle.stop()  # non-blocking, in the order the handle chooses
        for handle in self.nodes.values():
            for ref in handle.actors():
                ref.actor_stopped.wait(timeout=5)
        self.links.inboxes.clear()
        self._forget_nodes()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()
