"""One inbound connection: a client's (requests in, replies out) or a peer's (one way).

Runs entirely on the event loop thread.

Client connections: framing in, one ``ClientBatch`` per read, replies out in order. The
node answers each batch with one ``BatchReply`` (told to this object, which acts as the
batch's ``reply_to``), so a small batch is one ``write``. Limits, backpressure and the
output buffer limit are :class:`~runtime.served_connection.ServedConnection`'s, so a
client that pipelines without reading cannot grow our memory.

Over ``--max-clients``, a connection is on probation: it may still be a peer, so for
:data:`~runtime.conn_limits.PEER_HELLO_GRACE_S` its first frame may be a peer ``hello``
(accepted: it becomes a peer, which takes no client slot); anything else, or nothing in
time, gets the ``max_clients`` refusal line and is closed. At most
:data:`~runtime.conn_limits.PROBATION_SLOTS` wait at once (a new one refuses the oldest):
a stranger holding every client slot cannot cut the cluster apart.

Peer connections: a msgpack connection whose first frame is ``hello`` belongs to another
node (see ``docs/protocol.md``, "Peer protocol"). It stops being a client connection
(the node is told ``ClientDisconnected``), its frame limit becomes the peer limit, and
every later frame is decoded by :func:`actors.protocol.peer_codec.decode_peer` and told to the
node as ``FromPeer(src, addr, msg)`` with the sender named by the hello. Until then the
connection is a client under the client limits: the client frame limit for the hello
itself, the client slot, the timeouts. A peer's partial frames still count in the input
budget and the request read timeout; at most ``--max-clients`` peer connections are
accepted. Nothing is ever written back, except one error reply to a bad hello before
closing. A malformed frame after the hello is logged and closes that connection only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Callable

from actors.protocol.codec import request_or_error
from actors.protocol.errors import BadRequestError, ErrorCode
from actors.protocol.messages import BatchReply, ClientBatch, ErrorReply, Reply, Values
from actors.protocol.peer_codec import HELLO, decode_hello, decode_peer
from actors.kernel.peer import FromPeer
from runtime.conn_limits import MAX_IN_FLIGHT, PEER_HELLO_GRACE_S, PROBATION_SLOTS, ConnectionGuard
from runtime.framing import (
    VALUES_PIECEWISE,
    Decoder,
    MsgpackDecoder,
    choose_decoder,
    encode_json_reply,
    encode_msgpack_reply,
    encode_values_reply,
    is_msgpack_start,
)
from runtime.served_connection import ServedConnection

if TYPE_CHECKING:
    from pykka import ActorRef

__all__ = ["DEFAULT_PEER_FRAME_BYTES", "MAX_CLIENTS_MESSAGE", "ClientConnection"]

logger = logging.getLogger("actorcache.connection")

_BLANK = b" \t\r\n"

#: Largest frame a peer may send. Peer frames carry whole client batches (a replica
#: request for a batch of sets, a stream of records), so they may be much larger than one
#: client request; the client limit would cut replication of large values.
DEFAULT_PEER_FRAME_BYTES = 64 << 20

#: The refusal a connection over ``--max-clients`` gets (Redis's words).
MAX_CLIENTS_MESSAGE = "max number of clients reached"


class ClientConnection(ServedConnection):
    #: A JSON line whatever the framing: the connection has not said which it speaks.
    MAX_CLIENTS_REPLY = encode_json_reply(ErrorReply(ErrorCode.MAX_CLIENTS, MAX_CLIENTS_MESSAGE))

    def __init__(
        self,
        conn_id: int,
        node: ActorRef[Any],
        max_request_bytes: int,
        on_closed: Callable[[ClientConnection], None],
        *,
        partitions: int | None = None,
        max_peer_frame_bytes: int = DEFAULT_PEER_FRAME_BYTES,
        guard: ConnectionGuard | None = None,
    ) -> None:
        super().__init__(conn_id, node, on_closed, guard)
        self.max_request_bytes = max_request_bytes
        self.max_value_depth = self.guard.limits.max_value_depth
        #: This node's partition count; a peer's hello must match it (None: any).
        self.partitions = partitions
        self.max_peer_frame_bytes = max(max_peer_frame_bytes, max_request_bytes)
        self._decoder: Decoder | None = None
        self._encode: Callable[[Reply], bytes] = encode_json_reply
        #: A msgpack connection whose first frame has not arrived yet (client or peer?).
        self._first_frame_pending = False
        #: Over --max-clients: only a peer hello may follow (see the module docstring).
        self._probation = False
        self._peer_slot = False
        #: ``(node_id, addr)`` of the peer once a valid hello arrived.
        self.peer: tuple[str, str] | None = None

    def _over_max_clients(self) -> None:
        guard = self.guard
        self._probation = True
        guard.probation[self] = guard.now + PEER_HELLO_GRACE_S
        if len(guard.probation) > PROBATION_SLOTS:
            next(iter(guard.probation)).refuse_max_clients()  # the oldest waits no longer

    def _drop_input(self) -> None:
        self._decoder = None

    def _release(self) -> None:
        super()._release()
        if self._peer_slot:
            self._peer_slot = False
            self.guard.peers -= 1

    # --- asyncio.Protocol ---------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._close_when_flushed or self._draining:
            return
        self.last_active = self.guard.now
        if self.peer is not None:
            self._peer_data(data)
            return
        decoder = self._decoder
        if decoder is None:
            stripped = data.lstrip(_BLANK)
            if not stripped:
                return
            if self._probation and not is_msgpack_start(stripped[0]):
                self.refuse_max_clients()  # not a peer: it could only be a client
                return
            decoder = self._decoder = choose_decoder(stripped[0], self.max_request_bytes, self.max_value_depth)
            if isinstance(decoder, MsgpackDecoder):
                self._encode = encode_msgpack_reply
                self._first_frame_pending = True
            data = stripped
        if self._first_frame_pending:
            assert isinstance(decoder, MsgpackDecoder)
            first = decoder.feed(data, raw=True, limit=1)
            if not first:  # (a fatal stream always returns its error)
                self._note_input(decoder.buffered, False)
                return
            self._first_frame_pending = False
            obj = first[0]
            if type(obj) is dict and obj.get("type") == HELLO:
                self._hello(obj, decoder)
                return
            if self._probation:
                self.refuse_max_clients()
                return
            # A client: this frame is its first request (or the fatal error), then the rest.
            items = [obj if type(obj) is ErrorReply else request_or_error(obj, self.max_value_depth)]
            if not decoder.fatal:
                items.extend(decoder.feed(b""))
        else:
            items = decoder.feed(data)
        if items:
            self.outstanding += 1
            self.node.tell(ClientBatch(self.conn_id, tuple(items), self))
            if self.outstanding >= MAX_IN_FLIGHT or self._out:  # (the exact test is in there)
                self._update_reading()
        if decoder.fatal:
            # The stream cannot be resynchronised: answer what we have, then close.
            self._close_when_flushed = True
            if self.transport is not None:
                self.transport.pause_reading()
            self._maybe_close()
        buffered = decoder.buffered
        if buffered or self.held_input:
            self._note_input(buffered, bool(items))

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
            logger.warning("refusing peer connection %s: %s", self.remote(), exc.message)
            if self._probation:
                self.refuse_max_clients()
            else:
                self._refuse(ErrorReply(exc.code, exc.message))
            return
        guard = self.guard
        if guard.peers >= guard.limits.max_clients:
            logger.warning("refusing peer connection %s from %s: --max-clients peers connected", self.remote(), node_id)
            guard.counters["rejected_connections"] += 1
            self._refuse(ErrorReply(ErrorCode.MAX_CLIENTS, "max number of peer connections reached"))
            return
        # From here on this is not a client connection: it gives back its client slot.
        self.peer = (node_id, addr)
        self._peer_slot = True
        guard.peers += 1
        if self._probation:
            self._probation = False
            guard.probation.pop(self, None)
        self._stop_being_a_client()
        logger.debug("peer %s (%s) connected from %s", node_id, addr, self.remote())
        decoder.reconfigure(self.max_peer_frame_bytes, unicode_errors="surrogatepass")
        self._peer_data(b"")

    def _peer_data(self, data: bytes) -> None:
        decoder = self._decoder
        assert isinstance(decoder, MsgpackDecoder) and self.peer is not None
        src, addr = self.peer
        node = self.node
        depth = self.max_value_depth
        completed = False
        for obj in decoder.feed(data, raw=True):
            if type(obj) is ErrorReply:  # too large or corrupt: the stream is lost
                self._peer_failed(obj.message)
                return
            try:
                msg = decode_peer(obj, depth)
            except BadRequestError as exc:
                self._peer_failed(exc.message)
                return
            except Exception as exc:  # noqa: BLE001 - a shape decode_peer did not foresee
                self._peer_failed(f"malformed peer message: {exc!r}")
                return
            node.tell(FromPeer(src, addr, msg))
            completed = True
        buffered = decoder.buffered
        if buffered or self.held_input:
            self._note_input(buffered, completed)

    def _peer_failed(self, why: str) -> None:
        assert self.peer is not None
        logger.warning("closing peer connection from %s (%s): %s", self.peer[0], self.peer[1], why)
        self._close_when_flushed = True
        self._drop_input()
        self._forget_input()
        if self.transport is not None:
            self.transport.close()

    def _refuse(self, error: ErrorReply) -> None:
        """Answer one error and close (a bad hello): nothing else is read."""
        self._answer_and_close(encode_msgpack_reply(error))

    # --- reply target (called by the node, on the loop thread) ------------------------

    def tell(self, message: BatchReply) -> None:
        self.outstanding -= 1
        self._emit(self._encoded(message.replies))  # (nothing is written to a closed transport)

    def _encoded(self, replies: Iterable[Reply]) -> Iterator[bytes]:
        """Each reply's bytes, encoded when the writer asks for them. A multi-value reply
        (``mget``) of many items is encoded item by item and given up as soon as it alone
        passes the hard limit: a placeholder claiming that size makes the writer cut the
        client off, and the rest of the reply is never built."""
        encode = self._encode
        for reply in replies:
            if type(reply) is Values and len(reply.items) > VALUES_PIECEWISE:
                out = encode_values_reply(reply, encode is encode_msgpack_reply, self._hard)
                if type(out) is int:
                    yield _Oversize(out)  # type: ignore[misc]
                    return
                yield out  # type: ignore[misc]
                continue
            yield encode(reply)


class _Oversize:
    """Stands in the reply stream for a reply too large to encode; only its size exists."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size
