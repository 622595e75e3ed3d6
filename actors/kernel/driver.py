"""Driving an actor system from outside its host: the calls tests, ``sim.run`` and tools make.

A *system* is a spawn function ``spawn(ctx, config) -> handle`` that starts one node's
actors on ``ctx``'s host and returns a :class:`SpawnedNode` handle (the cache's is
``actors.node.system.spawn_node``; ``examples/counter`` is a second one). A *host* runs
such nodes: one environment, two implementations (as SimPy's ``Environment`` and
``RealtimeEnvironment``): ``runtime.host.ThreadedLoopHost`` on an asyncio loop in real
time, ``sim.host.SimHost`` on SimPy in virtual time. Both implement the abstract calls of
:class:`HostDriver`, so a behaviour test written against a driver runs unchanged on either.

Blocking calls here are for drivers only, never for code inside an actor turn (the hosts
refuse that with :class:`~actors.kernel.scheduler.BlockingCallInActorError`).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from pykka import ActorRef, ActorRegistry

from actors.kernel.ctx import Ctx
from actors.kernel.scheduler import Scheduler

__all__ = ["HostDriver", "Spawn", "SpawnedNode"]


class SpawnedNode(Protocol):
    """What a system's spawn function returns for one node."""

    @property
    def inbox(self) -> ActorRef[Any]:
        """The actor the host tells each :class:`~actors.kernel.peer.FromPeer` addressed to this node."""
        ...

    def actors(self) -> tuple[ActorRef[Any], ...]:
        """Every actor of the node, in the order they should stop."""
        ...

    def stop(self) -> None:
        """Ask every actor of the node to stop, without blocking (stops follow queued work)."""
        ...


#: ``spawn(ctx, config)``: start one node's actors on ``ctx`` and return their handle. ``config``
#: is whatever the system takes (``None`` when the caller gave none).
Spawn = Callable[[Ctx, Any], Any]


class HostDriver:
    """The driver interface both hosts implement, for any system.

    ``nodes`` maps each running node's id to the handle its spawn returned.
    """

    scheduler: Scheduler
    nodes: dict[str, Any]

    def __init__(self, spawn: Spawn) -> None:
        self.spawn = spawn
        self.nodes = {}

    def ctx(self, node_id: str) -> Ctx:
        """A fresh ``Ctx`` for node ``node_id`` on this host (``start_node`` spawns on one)."""
        raise NotImplementedError

    def start_node(self, node_id: str, config: Any = None) -> Any:
        """Spawn one node's actors on this host; returns the handle the system's spawn returns."""
        raise NotImplementedError

    def peer_inbox(self, handle: Any) -> ActorRef[Any]:
        """The actor of a node that peer messages are told to: the handle's ``inbox``. A
        system whose handle names it otherwise overrides this in its host binding."""
        return handle.inbox

    def now(self) -> float:
        """Seconds since the host started (virtual in the simulator)."""
        raise NotImplementedError

    def run_for(self, seconds: float) -> None:
        """Let ``seconds`` pass (virtual time advances; real time sleeps)."""
        raise NotImplementedError

    def shutdown(self) -> None:
        """Stop every node and release the host."""
        raise NotImplementedError

    def ask(self, ref: ActorRef[Any], message: Any, timeout: float = 10.0) -> Any:
        """Tell ``message`` to ``ref`` and wait for its reply (the simulator advances virtual time)."""
        return ref.ask(message, timeout=timeout)

    def _forget_nodes(self) -> None:
        """Drop stopped nodes from Pykka's process-global registry."""
        for handle in self.nodes.values():
            for ref in handle.actors():
                ActorRegistry.unregister(ref)
        self.nodes.clear()
