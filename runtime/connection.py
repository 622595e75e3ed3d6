"""One inbound connection: a client's (requests in, replies out) or a peer's (one way).

Runs entirely on the event loop thread.

Client connections: framing in, one ``ClientBatch`` per read, replies out in order. The
node answers each batch with one ``BatchReply`` (told to this object, which acts as the
batch's ``reply_to``), so there is one ``write`` per batch. Backpressure: when the
transport's write buffer is full we stop reading, so a client that pipelines without
reading cannot grow our memory.

Peer connections: a msgpack connection whose first frame is ``hello`` belongs to another
node (see ``docs/protocol.md``, "Peer protocol"). It stops being a client connection
(the node is told ``ClientDisconnected``), its frame limit becomes the peer limit, and
every later frame is decoded by :func:`actors.peer_codec.decode_peer` and told to the
node as ``FromPeer(src, addr, msg)`` with the sender named by the hello. Nothing is ever
written back, except one error reply to a bad hello before closing. A malformed frame
after the hello is logged and closes that connection only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from actors.codec import request_or_error
from actors.errors import BadRequestError
from actors.messages import BatchReply, ClientBatch, ClientDisconnected, ErrorReply, Reply
from actors.peer_codec import HELLO, decode_hello, decode_peer
from actors.peer_messages import FromPeer
from runtime.framing import (
    Decoder,
    MsgpackDecoder,
    choose_decoder,
    encode_json_reply,
    encode_msgpack_reply,
)
from runtime.served_connection import ServedConnection

if TYPE_CHECKING:
    from pykka import ActorRef

__all__ = ["DEFAULT_PEER_FRAME_BYTES", "ClientConnection"]

logger = logging.getLogger("actorcache.connection")

_BLANK = b" \t\r\n"

#: Largest frame a peer may send. Peer frames carry whole client batches (a replica
#: request for a batch of sets, a stream of records), so they may be much larger than one
#: client request; the client limit would cut replication of large values.
DEFAULT_PEER_FRAME_BYTES = 64 << 20


class ClientConnection(ServedConnection):
    def __init__(
        self,
        conn_id: int,
        node: ActorRef[Any],
        max_request_bytes: int,
        on_closed: Callable[[ClientConnection], None],
        *,
        partitions: int | None = None,
        max_peer_frame_bytes: int = DEFAULT_PEER_FRAME_BYTES,
    ) -> None:
        super().__init__(conn_id, node, on_closed)
        self.max_request_bytes = max_request_bytes
        #: This node's partition count; a peer's hello must match it (None: any).
        self.partitions = partitions
        self.max_peer_frame_bytes = max(max_peer_frame_bytes, max_request_bytes)
        self._decoder: Decoder | None = None
        self._encode: Callable[[Reply], bytes] = encode_json_reply
        #: A msgpack connection whose first frame has not arrived yet (client or peer?).
        self._first_frame_pending = False
        #: ``(node_id, addr)`` of the peer once a valid hello arrived.
        self.peer: tuple[str, str] | None = None

    def _is_client(self) -> bool:
        return self.peer is None

    # --- asyncio.Protocol ---------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._close_when_flushed or self._draining:
            return
        if self.peer is not None:
            self._peer_data(data)
            return
        decoder = self._decoder
        if decoder is None:
            stripped = data.lstrip(_BLANK)
            if not stripped:
                return
            decoder = self._decoder = choose_decoder(stripped[0], self.max_request_bytes)
            if isinstance(decoder, MsgpackDecoder):
                self._encode = encode_msgpack_reply
                self._first_frame_pending = True
            data = stripped
        if self._first_frame_pending:
            assert isinstance(decoder, MsgpackDecoder)
            first = decoder.feed(data, raw=True, limit=1)
            if not first:
                return
            self._first_frame_pending = False
            obj = first[0]
            if type(obj) is dict and obj.get("type") == HELLO:
                self._hello(obj, decoder)
                return
            # A client: this frame is its first request (or the fatal error), then the rest.
            items = [obj if type(obj) is ErrorReply else request_or_error(obj)]
            if not decoder.fatal:
                items.extend(decoder.feed(b""))
        else:
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

    # --- peer mode ----------------------------------------------------------------

    def _hello(self, obj: dict[str, Any], decoder: MsgpackDecoder) -> None:
        """The first frame is a hello: become a peer connection, or refuse and close."""
        try:
            node_id, addr, partitions = decode_hello(obj)
            if self.partitions is not None and partitions != self.partitions:
                raise BadRequestError(
                    f"partitions {partitions} differs from this node's {self.partitions}; "
                    "every node of a cluster must use the same --partitions"
                )
        except BadRequestError as exc:
            logger.warning("refusing peer connection %s: %s", self._remote(), exc.message)
            self._refuse(ErrorReply(exc.code, exc.message))
            return
        # From here on this is not a client connection: the node stops counting it.
        self.peer = (node_id, addr)
        if self.node.is_alive():
            self.node.tell(ClientDisconnected(self.conn_id))
        logger.debug("peer %s (%s) connected from %s", node_id, addr, self._remote())
        decoder.reconfigure(self.max_peer_frame_bytes, unicode_errors="surrogatepass")
        self._peer_data(b"")

    def _peer_data(self, data: bytes) -> None:
        decoder = self._decoder
        assert isinstance(decoder, MsgpackDecoder) and self.peer is not None
        src, addr = self.peer
        node = self.node
        for obj in decoder.feed(data, raw=True):
            if type(obj) is ErrorReply:  # too large or corrupt: the stream is lost
                self._peer_failed(obj.message)
                return
            try:
                msg = decode_peer(obj)
            except BadRequestError as exc:
                self._peer_failed(exc.message)
                return
            except Exception as exc:  # noqa: BLE001 - a shape decode_peer did not foresee
                self._peer_failed(f"malformed peer message: {exc!r}")
                return
            node.tell(FromPeer(src, addr, msg))

    def _peer_failed(self, why: str) -> None:
        assert self.peer is not None
        logger.warning("closing peer connection from %s (%s): %s", self.peer[0], self.peer[1], why)
        self._close_when_flushed = True
        if self.transport is not None:
            self.transport.close()

    def _refuse(self, error: ErrorReply) -> None:
        """Answer one error and close (a bad hello): nothing else is read."""
        self._close_when_flushed = True
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.pause_reading()
            transport.write(encode_msgpack_reply(error))
            transport.close()

    def _remote(self) -> str:
        peername = self.transport.get_extra_info("peername") if self.transport is not None else None
        if isinstance(peername, tuple) and len(peername) >= 2:
            return f"{peername[0]}:{peername[1]}"
        return "?"

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
