"""One inbound connection, as a client's: JSON lines or msgpack requests in, replies out.

Runs entirely on the event loop thread.

Client connections: framing in, one ``ClientBatch`` per read (JSON lines without a password
gate: plain gets and sets as plain items, :mod:`actors.protocol.edge`), replies out in order. The
node answers each batch with one ``BatchReply`` (told to this object, which acts as the
batch's ``reply_to``), so a small batch is one ``write``. Limits, backpressure and the
output buffer limit are :class:`~runtime.served_connection.ServedConnection`'s, so a
client that pipelines without reading cannot grow our memory.

Peers share the port: a msgpack connection whose first frame is a peer ``hello`` belongs
to another node (see ``docs/protocol.md``, "Peer protocol"). A valid hello is answered
with the handshake's ``challenge`` (:mod:`actors.kernel.peer_auth`; the hello's ``to`` must
be this connection's socket name or the node's advertised address); the next frame must
be the connector's ``auth``, and only once its proof checks does the transport switch to
:class:`~runtime.peer_connection.PeerConnection` (``transport.set_protocol``, a protocol
switch as h11 calls it), which decodes what followed it; this object is then done. No
frame after the hello is decoded as a peer's before that. A bad hello or auth, a hello
from a non-loopback address on a node without a cluster secret
(:class:`~runtime.peer_trust.PeerTrust`), gets one ``unauthorized`` error (never the
secret) and the connection is closed. Until the switch the connection is a client under
the client limits: the client frame limit for the hello and auth, the client slot, the
timeouts, and the handshake must complete within
:data:`~runtime.conn_limits.PEER_HELLO_GRACE_S` of the hello. At most ``--max-clients``
peer connections are accepted.

Client authentication (``--requirepass``, ``--aclfile``): the decoded items of each read
pass the connection's :class:`~runtime.client_auth.AuthGate` before they reach the node,
which answers ``auth`` and puts ``noauth``/``noperm`` errors in place of what the user may
not send (no gate, no cost, without passwords). Protected mode: once the first frame shows
a client (JSON, or msgpack that is no ``hello``) from a non-loopback address, it gets the
one ``denied`` error and is closed; one whose first frame is not complete within
:data:`~runtime.conn_limits.PEER_HELLO_GRACE_S` too, whatever bytes of it came (it holds no
client slot for long).

Over ``--max-clients``, a connection is on probation: it may still be a peer, so for
:data:`~runtime.conn_limits.PEER_HELLO_GRACE_S` its first frame may be a peer ``hello``
(and its handshake, within the same grace, makes it a peer, which takes no client slot);
anything else, or nothing in time, gets the ``max_clients`` refusal line and is closed. At most
:data:`~runtime.conn_limits.PROBATION_SLOTS` wait at once (a new one refuses the oldest):
a stranger holding every client slot cannot cut the cluster apart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Callable

from actors.kernel.failures import brief
from actors.kernel.peer_auth import Acceptor, PeerAuthError
from actors.protocol.codec import request_or_error
from actors.protocol.errors import BadRequestError, ErrorCode
from actors.protocol.edge import BatchReply, ClientBatch
from actors.protocol.messages import ACK, ErrorReply, Reply, Values
from actors.protocol.peer_codec import HELLO, decode_hello
from runtime.conn_limits import MAX_IN_FLIGHT, PEER_HELLO_GRACE_S, PROBATION_SLOTS, ConnectionGuard
from runtime.framing import Decoder, MsgpackDecoder, choose_decoder, is_msgpack_start
from runtime.reply_encoding import (
    VALUES_PIECEWISE,
    encode_json_acks,
    encode_json_reply,
    encode_msgpack_reply,
    encode_values_reply,
)
from runtime.acl import Acl
from runtime.client_auth import DENIED_MESSAGE, AuthGate, refused_by_protected_mode
from runtime.peer_connection import PeerConnection
from runtime.peer_compress import COMPRESS, Codec, choose_codec
from runtime.peer_frames import DEFAULT_PEER_FRAME_BYTES, pack_handshake_reply
from runtime.peer_trust import PeerTrust
from runtime.served_connection import TURN_BYTES, ServedConnection

if TYPE_CHECKING:
    from pykka import ActorRef

__all__ = ["MAX_CLIENTS_MESSAGE", "ClientConnection", "auth_frame", "check_hello"]

logger = logging.getLogger("actorcache.connection")

_BLANK = b" \t\r\n"

#: The refusal a connection over ``--max-clients`` gets (Redis's words).
MAX_CLIENTS_MESSAGE = "max number of clients reached"

#: Most acks a batch's replies are written as one constant run (one turn's bytes, at most).
_MOST_ACKS = TURN_BYTES // len(encode_json_reply(ACK))

#: The handshake's own frames (a challenge carries bytes: msgpack bin).
_pack_frame = pack_handshake_reply


def check_hello(obj: Any, partitions: int | None) -> tuple[str, str, int]:
    """``(node_id, addr, partitions)`` of a peer's hello; raises BadRequestError when it
    is malformed or its partition count is not ``partitions`` (None: any). (The simulator's
    network checks its hellos with this too: :mod:`sim.peer_wire`.)"""
    node_id, addr, theirs = decode_hello(obj)
    if partitions is not None and theirs != partitions:
        raise BadRequestError(
            f"partitions {theirs} differs from this node's {partitions}; "
            "every node of a cluster must use the same --partitions"
        )
    return node_id, addr, theirs


def auth_frame(obj: Any) -> Any:
    """The frame read where ``auth`` is due, for :meth:`Acceptor.on_auth`; raises
    PeerAuthError when the stream failed there (too large or corrupt for a handshake frame)."""
    if type(obj) is ErrorReply:
        raise PeerAuthError(f"unreadable auth frame: {obj.message}")
    return obj


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
        trust: PeerTrust | None = None,
        acl: Acl | None = None,
        protected: bool = False,
    ) -> None:
        super().__init__(conn_id, node, on_closed, guard)
        #: Client authentication (runtime/acl.py); None: the node has no passwords.
        self._gate = AuthGate(acl, self.guard.counters) if acl is not None else None
        #: Protected mode: a client (not a peer) from a non-loopback address is refused.
        self.protected = protected
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
        #: Whom this node peers with (the cluster secret, the loopback rule).
        self.trust = trust if trust is not None else PeerTrust()
        #: A hello was challenged: the handshake and the hello's address, until ``auth``.
        self._handshake: tuple[Acceptor, str, Codec | None] | None = None

    def _over_max_clients(self) -> None:
        guard = self.guard
        self._probation = True
        guard.probation[self] = guard.now + PEER_HELLO_GRACE_S
        if len(guard.probation) > PROBATION_SLOTS:
            next(iter(guard.probation)).refuse_max_clients()  # the oldest waits no longer

    def _drop_input(self) -> None:
        self._decoder = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.protected and not self._close_when_flushed and refused_by_protected_mode(transport):
            # It may still be a peer, whose hello comes at once: a silent one holds no slot for long.
            asyncio.get_running_loop().call_later(PEER_HELLO_GRACE_S, self._deny_if_silent)

    def _deny_if_silent(self) -> None:
        transport = self.transport
        if transport is None or self._close_when_flushed or transport.get_protocol() is not self:
            return  # closed, or it became a peer's
        # Nothing yet, or a msgpack first frame still incomplete (one byte holds no slot
        # either: a peer's hello is one small frame). A hello that came is the handshake's.
        if self._decoder is None or self._first_frame_pending:
            self._deny_if_protected()

    def _deny_if_protected(self) -> bool:
        """Protected mode: a client from a non-loopback address gets the one ``denied``
        error and is closed (True); peers are judged by their handshake instead."""
        if not self.protected or not refused_by_protected_mode(self.transport):
            return False
        self.guard.counters["rejected_connections"] += 1
        logger.debug("refusing client %s: protected mode", self.remote())  # (counted; a flood must not flood the log)
        self._answer_and_linger(self._encode(ErrorReply(ErrorCode.DENIED, DENIED_MESSAGE)))
        return True

    # --- asyncio.Protocol ---------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._close_when_flushed or self._draining:
            return
        self.guard.counters["bytes_received"] += len(data)
        self.last_active = self.guard.now
        if self._handshake is not None:
            self._auth_frame(data)
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
            elif self._deny_if_protected():
                return
            else:  # plain gets and sets as plain items, unless the gate must see typed requests
                decoder.plain = self._gate is None
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
            if self._deny_if_protected():
                return
            # A client: this frame is its first request (or the fatal error), then the rest.
            items = [obj if type(obj) is ErrorReply else request_or_error(obj, self.max_value_depth)]
            if not decoder.fatal:
                items.extend(decoder.feed(b""))
        else:
            items = decoder.feed(data)
        if items:
            if self._gate is not None:
                items = self._gate.admit(items)
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

    # --- the switch to the peer protocol -----------------------------------------------

    def _hello(self, obj: dict[str, Any], decoder: MsgpackDecoder) -> None:
        """The first frame is a hello: answer the challenge (or refuse and close), then
        wait for the connector's ``auth`` (:meth:`_auth_frame`)."""
        try:
            node_id, addr, _partitions = check_hello(obj, self.partitions)
        except BadRequestError as exc:
            self.trust.log_refusal(  # (keyed by the host: each connection has its own port)
                logger, self._remote_host() or "?", "malformed hello",
                "refusing peer connection %s: %s", self.remote(), exc.message,
            )
            if self._probation:
                self.refuse_max_clients()
            else:
                self._refuse(ErrorReply(exc.code, exc.message))
            return
        if not self._peer_slot_free(node_id):
            return
        trust = self.trust
        why = trust.refusal(self._remote_host())
        why = why or trust.certificate_refusal(self.transport, node_id)
        try:
            if why is not None:
                raise PeerAuthError(why)
            acceptor = trust.acceptor(self.transport.get_extra_info("sockname") if self.transport is not None else None)
            challenge = acceptor.on_hello(node_id, obj)
        except PeerAuthError as exc:
            self._unauthorized(node_id, exc.message)
            return
        codec = choose_codec(obj)  # (an older hello offers none: the link stays uncompressed)
        if codec is not None:
            challenge[COMPRESS] = codec.name
        self._handshake = (acceptor, addr, codec)
        guard = self.guard
        if not self._probation:  # (on probation its grace already runs)
            guard.handshakes[self] = guard.now + PEER_HELLO_GRACE_S
        assert self.transport is not None
        self.transport.write(_pack_frame(challenge))
        self._auth_frame(b"")  # a connector may have sent auth right behind (it cannot, honestly)

    def _remote_host(self) -> str | None:
        peername = self.transport.get_extra_info("peername") if self.transport is not None else None
        return str(peername[0]) if isinstance(peername, tuple) and peername else None

    def _peer_slot_free(self, node_id: str) -> bool:
        guard = self.guard
        if guard.peers < guard.limits.max_clients:
            return True
        self.trust.log_refusal(
            logger, self._remote_host() or "?", "max peers",
            "refusing peer connection %s from %s: --max-clients peers connected", self.remote(), brief(node_id),
        )
        guard.counters["rejected_connections"] += 1
        self._refuse(ErrorReply(ErrorCode.MAX_CLIENTS, "max number of peer connections reached"))
        return False

    def _unauthorized(self, node_id: str, why: str) -> None:
        self.trust.log_refusal(
            logger, node_id, why, "refusing peer connection %s claiming to be %s: %s",
            self.remote(), brief(node_id), why,
        )
        self._refuse(ErrorReply(ErrorCode.UNAUTHORIZED, why))

    def _auth_frame(self, data: bytes) -> None:
        """Until the handshake completes, the one frame awaited is ``auth``; the frames
        pipelined behind it stay undecoded bytes until its proof checks."""
        decoder = self._decoder
        handshake = self._handshake
        assert isinstance(decoder, MsgpackDecoder) and handshake is not None
        acceptor, addr, codec = handshake
        frames = decoder.feed(data, raw=True, limit=1)
        if not frames:
            self._note_input(decoder.buffered, False)
            return
        obj = frames[0]
        claimed = acceptor.peer_id or "?"
        try:
            node_id = acceptor.on_auth(auth_frame(obj))
        except PeerAuthError as exc:
            self._unauthorized(claimed, exc.message)
            return
        self._handshake = None
        self.guard.handshakes.pop(self, None)
        if self._peer_slot_free(node_id):
            self._become_peer(node_id, addr, decoder, codec)

    def handshake_timed_out(self) -> None:
        """Called by the sweep: ``auth`` did not follow the hello within the grace."""
        claimed = (self._handshake[0].peer_id if self._handshake is not None else None) or "?"
        self._unauthorized(claimed, f"the peer handshake did not complete within {PEER_HELLO_GRACE_S:g}s")

    def _release(self) -> None:
        if self._handshake is not None:  # the connector hung up between our challenge and its auth
            claimed = self._handshake[0].peer_id or "?"
            self.trust.log_refusal(
                logger, claimed, "hung up",
                "peer connection claiming to be %s at %s closed during the handshake: a connector that "
                "finds our challenge's proof wrong (another cluster secret) hangs up there",
                brief(claimed), brief(self._handshake[1]),
            )
            self._handshake = None
        super()._release()
        self.guard.handshakes.pop(self, None)

    def _become_peer(self, node_id: str, addr: str, decoder: MsgpackDecoder, codec: Codec | None) -> None:
        """The handshake proved ``node_id``: hand the transport to a peer protocol."""
        guard = self.guard
        # From here on this is not a client connection: it gives back what it held as one.
        if self._probation:
            self._probation = False
            guard.probation.pop(self, None)
        self._stop_being_a_client()
        self._forget_input()
        self._decoder = None
        logger.debug("peer %s (%s) connected from %s", node_id, addr, self.remote())
        PeerConnection.take_over(
            self, node_id, addr, decoder, self.max_peer_frame_bytes, self.max_value_depth, codec
        )

    def _refuse(self, error: ErrorReply) -> None:
        """Answer one error and close (a bad hello): nothing else is read."""
        self._handshake = None
        self.guard.handshakes.pop(self, None)
        self._answer_and_close(encode_msgpack_reply(error))

    # --- reply target (called by the node, on the loop thread) ------------------------

    def tell(self, message: BatchReply) -> None:
        self.outstanding -= 1
        replies = message.replies
        if len(replies) == 1 and not self._out and type(replies[0]) is not Values:
            # One reply, nothing before it unwritten (a client sending one request at a time):
            # encoded and written at once, without a reply iterator and a queue.
            self._emit_one(self._encode(replies[0]))
            return
        if replies[0] is ACK and self._encode is encode_json_reply:
            acks = encode_json_acks(replies, _MOST_ACKS)  # a batch of plain sets: one constant line, repeated
            if acks is not None:
                if self._out:
                    self._emit(iter((acks,)))
                else:
                    self._emit_one(acks)
                return
        self._emit(self._encoded(replies))  # (nothing is written to a closed transport)

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
