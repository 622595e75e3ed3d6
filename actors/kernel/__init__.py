"""The actor framework: actors scheduled by their host, seeing the world through ``Ctx``.

Nothing here knows the cache, the first system built on it (``examples/counter`` is a
second; ``docs/framework.md`` shows how to write one). A host (``runtime.host`` on an
asyncio loop, ``sim.host`` on SimPy) implements :class:`~actors.kernel.scheduler.Scheduler`
and builds each node's :class:`~actors.kernel.ctx.Ctx`; actors subclass
:class:`~actors.kernel.scheduled.ScheduledActor` and talk by ``tell`` only; peers' messages
arrive as :class:`~actors.kernel.peer.FromPeer`.
"""

from actors.kernel.ctx import Ctx
from actors.kernel.peer import FromPeer
from actors.kernel.scheduled import ScheduledActor, ScheduledFuture
from actors.kernel.scheduler import BlockingCallInActorError, Cancellable, Scheduler

__all__ = [
    "BlockingCallInActorError",
    "Cancellable",
    "Ctx",
    "FromPeer",
    "ScheduledActor",
    "ScheduledFuture",
    "Scheduler",
]
