"""What every inbound connection the node serves shares: its lifecycle around the node.

:class:`~runtime.connection.ClientConnection` (JSON lines, msgpack, peers) and
:class:`~runtime.resp_connection.RespConnection` differ in framing and in how they build
replies; they share this: the node is told ``ClientConnected`` / ``ClientDisconnected``,
batches sent to the node are counted in ``outstanding``, reading pauses while the
transport's write buffer is over its high-water mark (backpressure) or while draining,
and after EOF or a fatal error the connection closes once everything read is answered.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable

from actors.messages import ClientConnected, ClientDisconnected

if TYPE_CHECKING:
    from pykka import ActorRef

__all__ = ["ServedConnection"]


class ServedConnection(asyncio.Protocol):
    def __init__(self, conn_id: int, node: ActorRef[Any], on_closed: Callable[[Any], None]) -> None:
        self.conn_id = conn_id
        self.node = node
        self._on_closed = on_closed
        self.transport: asyncio.Transport | None = None
        #: Batches sent to the node and not answered yet.
        self.outstanding = 0
        self._close_when_flushed = False
        self._draining = False

    # --- hooks --------------------------------------------------------------------

    def _is_client(self) -> bool:
        """Whether the node counts this connection as a client's (peers are not)."""
        return True

    def _unwritten(self) -> bool:
        """Whether answered replies still wait to be written (they keep it open)."""
        return False

    # --- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.node.tell(ClientConnected(self.conn_id))

    def eof_received(self) -> bool:
        # Half-close (``nc -N``, ``shutdown(SHUT_WR)``): answer everything read, then close.
        self._close_when_flushed = True
        self._maybe_close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._is_client() and self.node.is_alive():
            self.node.tell(ClientDisconnected(self.conn_id))
        self._on_closed(self)

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self._close_when_flushed and not self._draining:
            self.transport.resume_reading()

    # --- shutdown -----------------------------------------------------------------

    def drain(self) -> None:
        """Stop reading new requests; requests already read still get their replies."""
        self._draining = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _maybe_close(self) -> None:
        if self._close_when_flushed and self.outstanding == 0 and not self._unwritten() and self.transport is not None:
            self.transport.close()
