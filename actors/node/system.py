"""Assembling one node's actors, the same way on every host."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pykka import ActorRef

from actors.cluster.replicator import Replicator
from actors.config import NodeConfig
from actors.kernel.ctx import Ctx
from actors.node.actor import Node
from actors.protocol.internal import AttachReplicator
from actors.kernel.failures import ReportFailuresTo
from actors.persist.manager import PersistConfig
from actors.store.actor import Store
from actors.store.janitor import Janitor

__all__ = ["NodeRefs", "spawn_node"]


@dataclass(frozen=True, slots=True)
class NodeRefs:
    node: ActorRef[Any]
    store: ActorRef[Any]
    janitor: ActorRef[Any]
    replicator: ActorRef[Any]

    def actors(self) -> tuple[ActorRef[Any], ...]:
        """Every actor of the node, in the order they should stop."""
        return (self.janitor, self.replicator, self.node, self.store)

    def stop(self) -> None:
        """Ask every actor of the node to stop (non-blocking: stops follow queued work)."""
        for ref in self.actors():
            if ref.is_alive():
                ref.stop(block=False)


def spawn_node(ctx: Ctx, config: NodeConfig | None = None) -> NodeRefs:
    """Start the store, janitor and node actors of one node on ``ctx``'s host."""
    config = config or NodeConfig()
    persist = PersistConfig(
        save=config.save,
        appendonly=config.appendonly,
        appendfsync=config.appendfsync,
        rewrite_percentage=config.auto_aof_rewrite_percentage,
        rewrite_min_size=config.auto_aof_rewrite_min_size,
    )
    # The store loads the data directory (ctx.disk) in its first turn, before any message.
    store = ctx.spawn(Store, config.partitions, config.max_memory, config.eviction_policy, persist)
    janitor = ctx.spawn(
        Janitor,
        store,
        config.cleanup_interval_s,
        config.cleanup_budget_s,
        config.cleanup_sample_size,
    )
    node = ctx.spawn(Node, store, config)
    replicator = ctx.spawn(Replicator, store, node, config)
    node.tell(AttachReplicator(replicator))
    for ref in (store, janitor, replicator):  # failures they live through count in the node's stats
        ref.tell(ReportFailuresTo(node))
    return NodeRefs(node=node, store=store, janitor=janitor, replicator=replicator)
