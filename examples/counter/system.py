"""Assembling one counter node on any host: its config, its handle, its spawn function.

``spawn_counter`` is what a host is given (``SimHost(spawn_counter, seed)``,
``ThreadedLoopHost(spawn_counter)``); the :class:`CounterNode` it returns is the handle
the framework asks of every system (:class:`actors.kernel.driver.SpawnedNode`): the
node's actors in stop order, a non-blocking stop, and the inbox peer messages go to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pykka import ActorRef

from actors.kernel import Ctx
from examples.counter.replica import Replica

__all__ = ["CounterConfig", "CounterNode", "spawn_counter"]


@dataclass(frozen=True, slots=True)
class CounterConfig:
    """``peers``: the node ids to gossip with (this node's own id is ignored there)."""

    peers: tuple[str, ...] = ()
    gossip_interval_s: float = 0.05


@dataclass(frozen=True, slots=True)
class CounterNode:
    replica: ActorRef[Any]

    @property
    def inbox(self) -> ActorRef[Any]:
        return self.replica

    def actors(self) -> tuple[ActorRef[Any], ...]:
        return (self.replica,)

    def stop(self) -> None:
        if self.replica.is_alive():
            self.replica.stop(block=False)


def spawn_counter(ctx: Ctx, config: CounterConfig | None = None) -> CounterNode:
    """Start one counter node's actors on ``ctx``'s host."""
    config = config or CounterConfig()
    return CounterNode(ctx.spawn(Replica, config.peers, config.gossip_interval_s))
