"""One inbound connection from another node, after its handshake: frames in, nothing out.

Runs entirely on the event loop thread.

Every connection starts as a client's (:class:`runtime.connection.ClientConnection`).
When a msgpack connection's first frame is a valid peer ``hello`` and the handshake that
follows proved the connector holds the cluster secret (``auth``), the client protocol
hands the transport over to a :class:`PeerConnection` (``transport.set_protocol``: what
h11 calls a protocol switch) and is done; see :meth:`PeerConnection.take_over`. From
then on this object is the transport's protocol and the server's connection: the client
side never sees another byte, and nothing here branches on "am I a peer yet".

What the switch carries over, and why:

- the decoder, with whatever followed ``auth`` in the same read (buffered, not decoded
  before the proof checked): its frame limit becomes the peer limit (peer frames carry
  whole batches) and strings
  are decoded with ``surrogatepass`` (values clients stored over JSON may hold lone
  surrogates);
- the limits: a peer takes no ``--max-clients`` slot (the client gives its slot back and
  the node is told ``ClientDisconnected``) but one of the ``--max-clients`` peer slots
  (``guard.peers``); its partial frames still count in the input budget and the request
  read timeout, and the idle timeout never closes it.

Every frame is decoded by :func:`actors.protocol.peer_codec.decode_peer` and told to the
node as ``FromPeer(src, addr, msg)``, ``src`` being the node the handshake authenticated
(never a name a frame gives). Nothing is ever written back. A malformed or oversized frame is logged and closes
this connection only.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import TYPE_CHECKING, Any, Callable

from actors.kernel.peer import FromPeer
from actors.protocol.errors import BadRequestError
from actors.protocol.messages import ErrorReply
from actors.protocol.peer_codec import decode_peer
from actors.protocol.peer_messages import PeerMessage
from runtime.conn_limits import MAX_IN_FLIGHT, ConnectionGuard
from runtime.framing import MsgpackDecoder
from runtime.peer_compress import Codec, CompressionError, inflate_frame
from runtime.peer_frames import PEER_UNICODE_ERRORS
from runtime.served_connection import ServedConnection

if TYPE_CHECKING:
    from pykka import ActorRef

__all__ = ["PeerConnection", "peer_frame", "read_peer_frames", "switch_to_peer_frames"]

logger = logging.getLogger("actorcache.connection")


def switch_to_peer_frames(decoder: MsgpackDecoder, max_frame_bytes: int) -> None:
    """From the frame after ``auth`` on, ``decoder`` reads a peer's frames: the peer frame
    limit, strings with ``surrogatepass``."""
    decoder.reconfigure(max_frame_bytes, unicode_errors=PEER_UNICODE_ERRORS)


def read_peer_frames(
    decoder: MsgpackDecoder, data: bytes, max_depth: int, codec: Codec | None = None
) -> tuple[list[PeerMessage], str | None]:
    """The peer messages of every complete frame ``data`` completes, in order, and why the
    stream is lost (None: it is not): a frame too large or corrupt, one
    :func:`decode_peer` refuses, or a compressed frame (a msgpack ``bin``) that is not
    the ``codec`` the handshake chose or does not inflate within the frame limit
    (:func:`runtime.peer_compress.inflate_frame`). Nothing after a bad frame is read; the caller closes the
    connection (the simulator's network does the same with its frames, :mod:`sim.peer_wire`)."""
    msgs: list[PeerMessage] = []
    for obj in decoder.feed(data, raw=True):
        msg, _, why = peer_frame(decoder, obj, max_depth, codec)
        if why is not None:
            return msgs, why
        msgs.append(msg)  # type: ignore[arg-type]
    return msgs, None


def peer_frame(
    decoder: MsgpackDecoder, obj: Any, max_depth: int, codec: Codec | None
) -> tuple[PeerMessage | None, int, str | None]:
    """One frame ``decoder`` handed out, decoded: ``(message, inflated bytes, None)``, or
    ``(None, inflated, why)`` when the stream is lost (see :func:`read_peer_frames`)."""
    if type(obj) is ErrorReply:  # too large or corrupt: the stream is lost
        return None, 0, obj.message
    inflated = 0
    try:
        if type(obj) is bytes:  # a compressed frame
            obj, inflated = inflate_frame(codec, obj, decoder.max_bytes, decoder.unicode_errors)
        return decode_peer(obj, max_depth), inflated, None
    except (BadRequestError, CompressionError) as exc:
        return None, inflated, exc.message
    except Exception as exc:  # noqa: BLE001 - a shape decode_peer did not foresee
        return None, inflated, f"malformed peer message: {exc!r}"


class PeerConnection(ServedConnection):
    """The protocol of a connection whose handshake authenticated node ``src`` (at ``addr``,
    the address its hello advertised)."""

    is_peer = True

    def __init__(
        self,
        conn_id: int,
        node: ActorRef[Any],
        on_closed: Callable[[Any], None],
        guard: ConnectionGuard,
        src: str,
        addr: str,
        decoder: MsgpackDecoder,
        max_value_depth: int,
        codec: Codec | None = None,
    ) -> None:
        super().__init__(conn_id, node, on_closed, guard)
        self.peer = (src, addr)
        #: The compression the handshake chose for this connection's frames (None: none).
        self.codec = codec
        self._decoder: MsgpackDecoder | None = decoder
        #: Frames handed out by the decoder and not decoded yet: a read's compressed frames
        #: past the loop turn's inflation budget (ConnectionGuard.inflate_room) wait here,
        #: small as they came, with reading paused, for the next turn.
        self._waiting: collections.deque[Any] = collections.deque()
        self._resume_armed = False
        self.max_value_depth = max_value_depth
        guard.peers += 1
        self._peer_slot = True

    @classmethod
    def take_over(
        cls,
        client: ServedConnection,
        src: str,
        addr: str,
        decoder: MsgpackDecoder,
        max_frame_bytes: int,
        max_value_depth: int,
        codec: Codec | None = None,
    ) -> PeerConnection:
        """Switch ``client``'s transport to a new peer protocol, which then decodes what
        ``decoder`` holds after ``auth``. ``client`` must already have given back what
        it held as a client (its slot, probation, partial input)."""
        transport = client.transport
        assert transport is not None
        peer = cls(
            client.conn_id, client.node, client._on_closed, client.guard, src, addr, decoder, max_value_depth, codec
        )
        connections = client.guard.connections
        if client in connections:
            connections.discard(client)
            connections.add(peer)
        client.transport = None  # the client side is done: nothing of it may touch the transport
        switch_to_peer_frames(decoder, max_frame_bytes)
        transport.set_protocol(peer)
        peer.transport = transport
        peer.last_active = client.last_active
        peer._frames(b"")
        return peer

    def _drop_input(self) -> None:
        self._decoder = None
        self._waiting.clear()

    def _release(self) -> None:
        super()._release()
        if self._peer_slot:
            self._peer_slot = False
            self.guard.peers -= 1

    def data_received(self, data: bytes) -> None:
        if self._close_when_flushed or self._draining:
            return
        self.last_active = self.guard.now
        self._frames(data)

    def _frames(self, data: bytes) -> None:
        """Decode ``data`` (and what is buffered) and tell the node every frame. (Right
        after the switch this holds no partial input: a partial frame left began after
        ``auth``, and its read timeout starts now.)"""
        decoder = self._decoder
        if decoder is None:
            return
        waiting = self._waiting
        before = len(waiting)
        waiting.extend(decoder.feed(data, raw=True))
        completed = len(waiting) > before
        if not self._tell_waiting():
            return
        buffered = decoder.buffered
        if buffered or self.held_input:
            self._note_input(buffered, completed)

    def _tell_waiting(self) -> bool:
        """Decode the waiting frames and tell the node each, while the loop turn's
        inflation budget lasts (a compressed frame of a few KB may inflate to the frame
        limit, 64 MiB: a read of them would otherwise build GBs of messages at once);
        what is left waits for the next turn, reading paused. False: the stream is lost."""
        decoder = self._decoder
        waiting = self._waiting
        guard = self.guard
        src, addr = self.peer
        node = self.node
        while waiting and decoder is not None:
            if type(waiting[0]) is bytes and guard.inflate_room() <= 0:
                self._wait_for_next_turn()
                return True
            msg, inflated, why = peer_frame(decoder, waiting.popleft(), self.max_value_depth, self.codec)
            if inflated:
                guard.inflated(inflated)
            if why is not None:
                self._failed(why)
                return False
            node.tell(FromPeer(src, addr, msg))
        return True

    def _wait_for_next_turn(self) -> None:
        self._held = True
        if self.transport is not None:
            self.transport.pause_reading()
            self._stop_partial_clock()
        if not self._resume_armed:
            self._resume_armed = True
            asyncio.get_running_loop().call_soon(self._resume_waiting)

    def _resume_waiting(self) -> None:
        self._resume_armed = False
        if self._decoder is None or self.transport is None:
            self._waiting.clear()
            return
        if self._tell_waiting() and not self._waiting:
            self._update_reading()

    def _in_flight(self) -> int:
        return (MAX_IN_FLIGHT if self._waiting else 0) + super()._in_flight()  # (frames waiting hold reading)

    def _failed(self, why: str) -> None:
        logger.warning("closing peer connection from %s (%s): %s", self.peer[0], self.peer[1], why)
        self._close_when_flushed = True
        self._drop_input()
        self._forget_input()
        if self.transport is not None:
            self.transport.close()
