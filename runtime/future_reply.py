"""A ``reply_to`` at the edge: the host waits on an asyncio future an actor completes.

The host's own asks of its node (the graceful leave's ``Leave``, ``StatsAsk`` for the
metrics port and the state log, the store's load and shutdown save) name one of these as
their ``reply_to``; the actor's ``tell`` completes the future on the loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["FutureReply"]


class FutureReply:
    """A ``reply_to`` at the edge: the actor's ``tell`` completes an asyncio future."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()

    def tell(self, message: Any) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._set, message)

    def _set(self, message: Any) -> None:
        if not self.future.done():
            self.future.set_result(message)
