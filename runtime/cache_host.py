"""The cache on a real event loop: :class:`runtime.host.ThreadedLoopHost` bound to ``spawn_node``.

Behaviour tests drive cache nodes through this in real time with the same calls as
:class:`sim.cache_host.CacheSimHost` (``start_node``, ``request``, ``submit``, ``ask``,
``run_for``); a real node process (:mod:`runtime.node`) builds its own ``Ctx`` with
TCP peer links instead.
"""

from __future__ import annotations

from actors.node.driver import NodeDriver
from actors.node.system import spawn_node
from runtime.host import ThreadedLoopHost

__all__ = ["CacheLoopHost"]


class CacheLoopHost(NodeDriver, ThreadedLoopHost):
    """Cache nodes on an asyncio loop in a daemon thread, driven from the caller's thread."""

    def __init__(self) -> None:
        super().__init__(spawn_node)
