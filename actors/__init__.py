"""The cache itself: actors, messages, codec, keyspace, versions.

Hosted unchanged on the asyncio loop (``runtime``) and on SimPy (``sim``); this package
imports neither and never reads a real clock, global randomness, threads or sockets.
"""

from actors._scheduled import ScheduledActor, ScheduledFuture
from actors._scheduler import BlockingCallInActorError, Cancellable, Scheduler
from actors.ctx import Ctx
from actors.system import NodeConfig, NodeRefs, spawn_node

__all__ = [
    "BlockingCallInActorError",
    "Cancellable",
    "Ctx",
    "NodeConfig",
    "NodeRefs",
    "ScheduledActor",
    "ScheduledFuture",
    "Scheduler",
    "spawn_node",
]
