"""The asyncio TCP server in front of one node's actors.

One port serves clients and peers alike (a connection says which it is with its first
frame, see :mod:`runtime.connection`, and a peer's switches to :mod:`runtime.peer_connection`); with :meth:`CacheServer.start_resp` a second port
speaks the Redis protocol (:mod:`runtime.resp_connection`) to the same node. The server
can be bound before the node's actors exist: a node must know its advertised address
(and so its bound port) before it starts, so :func:`runtime.node.serve` binds with
``start_serving=False``, spawns the actors, hands the node ref over with
:meth:`CacheServer.attach`, then calls :meth:`CacheServer.start_serving`.

Connection limits (``--max-clients``, output buffer, timeouts, input budget) are shared by
both ports through one :class:`~runtime.conn_limits.ConnectionGuard`, whose sweep runs
while the server is bound; its counters reach the node's ``stats`` via :meth:`CacheServer.stats`.

With a TLS context (``tls=``) a port speaks TLS only: a :class:`~runtime.tls.TlsAcceptor`
runs each handshake before the connection's protocol exists (bounded in time and number,
failures closed and counted in ``tls_handshake_failures``); peers still share the port.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
import time
from typing import Any, Callable

from pykka import ActorRef

from runtime.acl import Acl
from runtime.conn_limits import ClientLimits, ConnectionGuard
from runtime.connection import ClientConnection
from runtime.peer_connection import PeerConnection
from runtime.peer_trust import PeerTrust
from runtime.peers import DEFAULT_PEER_FRAME_BYTES
from runtime.resp_session import RespServerInfo
from runtime.resp_connection import RespConnection
from runtime.tls import TlsAcceptor

__all__ = ["CacheServer"]

logger = logging.getLogger("actorcache.server")


class CacheServer:
    """Accepts client and peer connections for ``node`` and shuts down gracefully."""

    def __init__(
        self,
        node: ActorRef[Any] | None = None,
        *,
        max_request_bytes: int = 1 << 20,
        partitions: int | None = None,
        max_peer_frame_bytes: int = DEFAULT_PEER_FRAME_BYTES,
        limits: ClientLimits | None = None,
        trust: PeerTrust | None = None,
        acl: Acl | None = None,
        protected: bool = False,
    ) -> None:
        self.node = node
        #: Client authentication on both ports (None: no passwords) and protected mode.
        self.acl = acl
        self.protected = protected
        #: Whom this node peers with: its id and cluster secret for the peer handshake.
        self.trust = trust if trust is not None else PeerTrust()
        self.max_request_bytes = max_request_bytes
        #: A peer's hello must name this partition count (None: accept any).
        self.partitions = partitions
        self.max_peer_frame_bytes = max_peer_frame_bytes
        #: Live connections; a client's becomes a PeerConnection on a valid hello.
        self.connections: set[ClientConnection | PeerConnection | RespConnection] = set()
        self.limits = limits if limits is not None else ClientLimits()
        self.guard = ConnectionGuard(self.limits, self.connections)
        self._conn_ids = itertools.count(1)  # shared by both ports: the node keys queues by it
        self._server: asyncio.base_events.Server | None = None
        self._resp_server: asyncio.base_events.Server | None = None
        self.resp_info: RespServerInfo | None = None
        #: One per TLS listener: runs handshakes before a connection exists (runtime/tls.py).
        self._tls_acceptors: list[TlsAcceptor] = []
        #: The node's effective settings as text, secrets masked (runtime/config_file.py):
        #: ``stats`` shows them under ``config``, ``CONFIG GET`` answers from them.
        self.options: dict[str, str] = {}

    def stats(self) -> dict[str, Any]:
        """The server's counters (``rejected_connections``, ``client_output_buffer_kills``,
        ``idle_timeouts``, ``request_read_timeouts``, ``input_buffer_kills``) and the node's
        effective settings (``config``): the node's ``host_stats``, merged into its ``stats``."""
        stats: dict[str, Any] = self.guard.stats()
        if self._tls_acceptors:
            stats["tls_handshake_failures"] = sum(acceptor.failures for acceptor in self._tls_acceptors)
        if self.options:
            stats["config"] = self.options
        return stats

    def attach(self, node: ActorRef[Any]) -> None:
        """Give the server its node (before :meth:`start_serving`)."""
        self.node = node

    def _new_connection(self) -> ClientConnection:
        assert self.node is not None, "CacheServer is serving without a node"
        conn = ClientConnection(
            next(self._conn_ids),
            self.node,
            self.max_request_bytes,
            self.connections.discard,
            partitions=self.partitions,
            max_peer_frame_bytes=self.max_peer_frame_bytes,
            guard=self.guard,
            trust=self.trust,
            acl=self.acl,
            protected=self.protected,
        )
        self.connections.add(conn)
        return conn

    def _new_resp_connection(self) -> RespConnection:
        assert self.node is not None and self.resp_info is not None, "CacheServer is serving without a node"
        conn = RespConnection(
            next(self._conn_ids),
            self.node,
            self.max_request_bytes,
            self.connections.discard,
            self.resp_info,
            guard=self.guard,
        )
        self.connections.add(conn)
        return conn

    async def start_resp(
        self,
        host: str,
        port: int,
        *,
        node_id: str = "",
        start_serving: bool = True,
        max_memory: int = 0,
        eviction_policy: str = "noeviction",
        tls: ssl.SSLContext | None = None,
        proto_max_bulk_len: int = 512 << 20,
    ) -> tuple[str, int]:
        """Bind the Redis-protocol port (0: any free port), as :meth:`start` does."""
        if start_serving and self.node is None:
            raise RuntimeError("attach a node before serving")
        loop = asyncio.get_running_loop()
        self.resp_info = RespServerInfo(
            node_id=node_id,
            host=host,
            max_request_bytes=self.max_request_bytes,
            proto_max_bulk_len=proto_max_bulk_len,
            max_memory=max_memory,
            eviction_policy=eviction_policy,
            max_clients=self.limits.max_clients,
            timeout=self.limits.idle_timeout_s,
            acl=self.acl,
            protected=self.protected,
            options=self.options,
        )
        self._resp_server = await loop.create_server(
            self._factory(self._new_resp_connection, tls, "RESP"),
            host, port, backlog=1024, reuse_address=True, start_serving=start_serving,
        )
        sockname = self._resp_server.sockets[0].getsockname()
        self.resp_info.port = sockname[1]
        self.guard.start(loop)
        return sockname[0], sockname[1]

    def _factory(self, factory: Callable[[], Any], tls: ssl.SSLContext | None, port_name: str) -> Callable[[], Any]:
        """A listener's protocol factory: ``factory`` itself, or with ``tls`` a
        :class:`~runtime.tls.TlsAcceptor` that runs the handshake first (TLS only)."""
        if tls is None:
            return factory
        acceptor = TlsAcceptor(factory, tls, max_pending=self.limits.max_clients, port_name=port_name)
        self._tls_acceptors.append(acceptor)
        return acceptor

    async def start(
        self, host: str, port: int, *, start_serving: bool = True, tls: ssl.SSLContext | None = None
    ) -> tuple[str, int]:
        """Bind ``host:port`` (port 0: any free port); returns the bound address.

        With ``start_serving=False`` the port is bound and listening (the kernel queues
        connections) but nothing is accepted until :meth:`start_serving`. With ``tls`` the
        port speaks TLS only (runtime/tls.py).
        """
        if start_serving and self.node is None:
            raise RuntimeError("attach a node before serving")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._factory(self._new_connection, tls, "client"),
            host, port, backlog=1024, reuse_address=True, start_serving=start_serving,
        )
        sockname = self._server.sockets[0].getsockname()
        self.guard.start(loop)
        return sockname[0], sockname[1]

    async def start_serving(self) -> None:
        if self.node is None:
            raise RuntimeError("attach a node before serving")
        assert self._server is not None, "start() first"
        await self._server.start_serving()
        if self._resp_server is not None:
            await self._resp_server.start_serving()

    def close_listener(self) -> None:
        """Stop accepting new connections (idempotent); existing ones carry on."""
        if self._server is not None:
            self._server.close()
        if self._resp_server is not None:
            self._resp_server.close()

    async def shutdown(self, grace_s: float = 1.5) -> None:
        """Stop accepting, answer every request already read, then close connections."""
        self.close_listener()
        for acceptor in self._tls_acceptors:
            acceptor.close()
        for conn in list(self.connections):
            conn.drain()
        deadline = time.monotonic() + grace_s
        while any(c.busy for c in self.connections) and time.monotonic() < deadline:
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
        if self._resp_server is not None:
            await self._resp_server.wait_closed()
        self.guard.stop()
