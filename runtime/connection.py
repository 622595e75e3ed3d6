"""One client connection: framing in, one ``ClientBatch`` per read, replies out in order.

Runs entirely on the event loop thread. The node answers each batch with one
``BatchReply`` (told to this object, which acts as the batch's ``reply_to``), so there is
one ``write`` per batch. Backpressure: when the transport's write buffer is full we stop
reading, so a client that pipelines without reading cannot grow our memory.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Callable

from actors.messages import BatchReply, ClientBatch, ClientConnected, ClientDisconnected, Reply
from runtime.framing import (
    Decoder,
    MsgpackDecoder,
    choose_decoder,
    encode_json_reply,
    encode_msgpack_reply,
)

if TYPE_CHECKING:
    from pykka import ActorRef

__all__ = ["ClientConnection"]

logger = logging.getLogger("actorcache.connection")

_BLANK = b" \t\r\n"


class ClientConnection(asyncio.Protocol):
    def __init__(
        self,
        conn_id: int,
        node: ActorRef[Any],
        max_request_bytes: int,
        on_closed: Callable[[ClientConnection], None],
    ) -> None:
        self.conn_id = conn_id
        self.node = node
        self.max_request_bytes = max_request_bytes
        self._on_closed = on_closed
        self.transport: asyncio.Transport | None = None
        self._decoder: Decoder | None = None
        self._encode: Callable[[Reply], bytes] = encode_json_reply
        self.outstanding = 0
        self._close_when_flushed = False
        self._draining = False
        self._paused_for_write = False

    # --- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.node.tell(ClientConnected(self.conn_id))

    def data_received(self, data: bytes) -> None:
        if self._close_when_flushed or self._draining:
            return
        decoder = self._decoder
        if decoder is None:
            stripped = data.lstrip(_BLANK)
            if not stripped:
                return
            decoder = self._decoder = choose_decoder(stripped[0], self.max_request_bytes)
            if isinstance(decoder, MsgpackDecoder):
                self._encode = encode_msgpack_reply
            data = stripped
        items = decoder.feed(data)
        if items:
            self.outstanding += 1
            self.node.tell(ClientBatch(self.conn_id, tuple(items), self))
        if decoder.fatal:
            # The stream cannot be resynchronised: answer what we have, then close.
            self._close_when_flushed = True
            if self.transport is not None:
                self.transport.pause_reading()
            self._maybe_close()

    def eof_received(self) -> bool:
        # Half-close (``nc -N``, ``shutdown(SHUT_WR)``): answer everything, then close.
        self._close_when_flushed = True
        self._maybe_close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.node.is_alive():
            self.node.tell(ClientDisconnected(self.conn_id))
        self._on_closed(self)

    def pause_writing(self) -> None:
        self._paused_for_write = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused_for_write = False
        if self.transport is not None and not self._close_when_flushed and not self._draining:
            self.transport.resume_reading()

    # --- reply target (called by the node, on the loop thread) ------------------------

    def tell(self, message: BatchReply) -> None:
        self.outstanding -= 1
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        encode = self._encode
        try:
            payload = b"".join([encode(reply) for reply in message.replies])
        except Exception:  # encoders never raise by contract; if one does, drop this client only
            logger.exception("cannot encode replies for connection %s; closing it", self.conn_id)
            transport.abort()
            return
        transport.write(payload)
        self._maybe_close()

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
        if self._close_when_flushed and self.outstanding == 0 and self.transport is not None:
            self.transport.close()
