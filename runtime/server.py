"""The asyncio TCP server in front of one node's actors."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Any

from pykka import ActorRef

from runtime.connection import ClientConnection

__all__ = ["CacheServer"]

logger = logging.getLogger("actorcache.server")


class CacheServer:
    """Accepts client connections for ``node`` and shuts down gracefully."""

    def __init__(self, node: ActorRef[Any], *, max_request_bytes: int = 1 << 20) -> None:
        self.node = node
        self.max_request_bytes = max_request_bytes
        self.connections: set[ClientConnection] = set()
        self._conn_ids = itertools.count(1)
        self._server: asyncio.base_events.Server | None = None

    def _new_connection(self) -> ClientConnection:
        conn = ClientConnection(next(self._conn_ids), self.node, self.max_request_bytes, self.connections.discard)
        self.connections.add(conn)
        return conn

    async def start(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._new_connection, host, port, backlog=1024, reuse_address=True)
        sockname = self._server.sockets[0].getsockname()
        return sockname[0], sockname[1]

    async def shutdown(self, grace_s: float = 1.5) -> None:
        """Stop accepting, answer every request already read, then close connections."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.drain()
        deadline = time.monotonic() + grace_s
        while any(c.outstanding for c in self.connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        unanswered = sum(c.outstanding for c in self.connections)
        if unanswered:
            logger.warning("closing with %d batches unanswered after %.1fs", unanswered, grace_s)
        for conn in list(self.connections):
            conn.close()
        # Let transports flush and report connection_lost before the loop goes away.
        for _ in range(100):
            if not self.connections:
                break
            await asyncio.sleep(0.005)
        if self._server is not None:
            await self._server.wait_closed()
