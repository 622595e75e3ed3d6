"""Driving nodes from outside the host: the calls tests, ``sim.run`` and tools make.

One environment, two implementations (as SimPy's ``Environment`` and ``RealtimeEnvironment``):
``runtime.host.ThreadedLoopHost`` runs nodes on an asyncio loop in real time and
``sim.host.SimHost`` runs them on SimPy in virtual time. Both implement the abstract calls
below, so a behaviour test written against a driver runs unchanged on either. Blocking calls
here are for drivers only, never for code inside an actor turn (the hosts refuse that).
"""

from __future__ import annotations

from typing import Any, Protocol

from pykka import ActorRef, ActorRegistry

from actors.kernel.scheduler import Scheduler

__all__ = ["HostDriver", "SpawnedNode"]


class SpawnedNode(Protocol):
    """What starting a node returns: its actors, and a way to stop them all."""

    def actors(self) -> tuple[ActorRef[Any], ...]: ...

    def stop(self) -> None: ...


class HostDriver:
    """The driver interface both hosts implement."""

    scheduler: Scheduler
    nodes: dict[str, Any]

    def __init__(self) -> None:
        self.nodes = {}

    def start_node(self, node_id: str, config: Any = None) -> Any:
        """Spawn one node's actors on this host; returns what the system's spawn returns."""
        raise NotImplementedError

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
        return ref.ask(message, timeout=timeout)

    def _forget_nodes(self) -> None:
        """Drop stopped nodes from Pykka's process-global registry."""
        for refs in self.nodes.values():
            for ref in refs.actors():
                ActorRegistry.unregister(ref)
        self.nodes.clear()
