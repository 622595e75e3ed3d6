"""``Ctx``: an actor's only window on time, timers, randomness, peers, the disk and tracing.

Hosts build one ``Ctx`` per node. The runtime passes the asyncio scheduler, the
monotonic and wall clocks and an RNG seeded from the operating system; the simulator passes the
SimPy scheduler, the node's skewed virtual clock and ``Random(f"{seed}/{node_id}")``.
Actors never learn which.
"""

from __future__ import annotations

import itertools
import random
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from actors.kernel.disk import Disk
from actors.kernel.scheduler import Cancellable, Scheduler

if TYPE_CHECKING:
    from pykka import ActorRef

__all__ = ["Ctx", "NoPeerTransportError"]

A = TypeVar("A")

TraceSink = Callable[[float, str, str, dict[str, Any]], None]
SendFn = Callable[[str, Any], None]
HostStats = Callable[[], dict[str, Any]]


class NoPeerTransportError(RuntimeError):
    """``ctx.send`` was called on a host that has no peer transport."""


class Ctx:
    """Per-node services handed to every actor of that node.

    Every method runs on the host's thread (inside a turn) unless said otherwise.
    """

    __slots__ = ("_counters", "_host_stats", "disk", "_now", "_send", "_trace", "_wall", "node_id", "rng", "scheduler", "tracing")

    def __init__(
        self,
        node_id: str,
        scheduler: Scheduler,
        *,
        now: Callable[[], float],
        wall: Callable[[], float],
        rng: random.Random,
        send: SendFn | None = None,
        trace: TraceSink | None = None,
        host_stats: HostStats | None = None,
        disk: Disk | None = None,
        tracing: bool | None = None,
    ) -> None:
        self.node_id = node_id
        self.scheduler = scheduler
        self.rng = rng
        self._now = now
        self._wall = wall
        self._send = send
        self._trace = trace
        self._host_stats = host_stats
        #: The node's durable storage (``--dir``), or None: a memory-only node.
        self.disk = disk
        #: Whether every trace event is wanted: check it before building costly fields
        #: (per-write events). A plain attribute, not a property: hot paths read it once per
        #: write. ``tracing=False`` with a ``trace`` sink: the host wants only the events
        #: nobody gates on it (membership, join, leave, warming: a node's log of its state
        #: changes, runtime/state_log.py), not one per write.
        self.tracing = trace is not None if tracing is None else tracing
        self._counters: dict[str, itertools.count[int]] = {}

    def now(self) -> float:
        """Monotonic seconds (in the simulator: virtual time plus this node's skew)."""
        return self._now()

    def wall(self) -> float:
        """Epoch seconds: for TTL deadlines and versions shipped to peers."""
        return self._wall()

    def call_later(self, delay: float, ref: ActorRef[Any], msg: object) -> Cancellable:
        """Deliver ``msg`` into ``ref``'s mailbox after ``delay`` seconds (dropped if dead)."""

        def deliver() -> None:
            if ref.is_alive():
                ref.tell(msg)

        return self.scheduler.call_later(max(0.0, delay), deliver)

    def send(self, peer: str, msg: object) -> None:
        """Send to a peer node: asynchronous, FIFO per peer, may be lost."""
        if self._send is None:
            raise NoPeerTransportError(f"node {self.node_id} has no peer transport")
        self._send(peer, msg)

    def spawn(self, cls: type[A], *args: Any) -> ActorRef[Any]:
        """Start an actor of ``cls`` on this node; its first constructor argument is this ctx."""
        return cls.start(self, *args)  # type: ignore[attr-defined]

    def trace(self, event: str, **fields: Any) -> None:
        if self._trace is not None:
            self._trace(self.now(), self.node_id, event, fields)

    def host_stats(self) -> dict[str, Any]:
        """Counters the host keeps about itself (connections refused or cut by limits, ...),
        for ``stats``: the runtime's server knows them, an actor cannot. Empty in the sim."""
        return self._host_stats() if self._host_stats is not None else {}

    def actor_id(self, name: str) -> str:
        """A deterministic actor id: ``node_id/Name/counter``."""
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = itertools.count()
        return f"{self.node_id}/{name}/{next(counter)}"
