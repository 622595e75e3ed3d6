"""The cache's peer protocol on the simulated network, in bytes: the runtime's own functions.

:class:`PeerWire` is the :class:`sim.wire.Wire` the cache's simulated nodes talk over
(:class:`sim.cache_host.CacheSimHost`, unless a quick run asks for objects). Each piece is
the one a real node runs, called the way it calls it, so every sweep exercises the wire
format, its limits and its decode errors:

- sending (:mod:`runtime.peers`): ``encode_peer`` then the peer packer, refused over the
  peer frame limit (:func:`runtime.peer_frames.encode_frame`): the message is dropped and
  the network counts it ``unsendable`` (a real link's ``unencodable``);
- the handshake: the hello is the node's ``encode_hello`` plus the connector's fields,
  packed as the link packs it; the acceptor reads it as a client connection reads a first
  frame (a msgpack decoder at the client frame limit) and checks it as the node does
  (:func:`runtime.connection.check_hello`: shape, protocol version, node id, address,
  partition count); the challenge is packed with the acceptor's packer and read with the
  connector's bounded unpacker; ``auth`` is read from the same decoder
  (:func:`runtime.connection.auth_frame`), which then switches to the peer frame limit
  (:func:`runtime.peer_connection.switch_to_peer_frames`);
- compression (:mod:`runtime.peer_compress`): every node offers it in its hello, the
  acceptor's stream chooses as a real acceptor does, and frames of at least the threshold
  go compressed (all simulated nodes share one wire, so every link chooses alike; the
  challenge does not carry the choice here); the network counts their bytes per link;
- receiving (:mod:`runtime.peer_connection`): every frame goes through the connection's
  decoder and ``decode_peer`` (:func:`runtime.peer_connection.read_peer_frames`); a frame it
  refuses is a :class:`sim.wire.BadFrame`, on which the network closes the connection as a
  real node does.

A simulated node has no port: its hello advertises ``<node id>:<DEFAULT_PORT>`` (the
network routes by node id, and replies go to the id, as they always did here).
"""

from __future__ import annotations

from typing import Any

from actors.config import NodeConfig
from actors.kernel.peer_auth import CHALLENGE, PeerAuthError
from actors.protocol.errors import BadRequestError
from actors.protocol.peer_codec import HELLO, encode_hello, encode_peer
from runtime.addresses import DEFAULT_PORT
from runtime.connection import auth_frame, check_hello
from runtime.framing import MsgpackDecoder, choose_decoder
from runtime.peer_compress import CODECS, DEFAULT_THRESHOLD, Codec, choose_codec, compress_frame, offer
from runtime.peer_connection import read_peer_frames, switch_to_peer_frames
from runtime.peer_frames import (
    DEFAULT_PEER_FRAME_BYTES,
    UnencodableError,
    encode_frame,
    handshake_unpacker,
    pack_handshake_reply,
    peer_packer,
)
from sim.wire import BadFrame, Stream, Unsendable

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "PeerWire"]

#: The client frame limit a node reads a connection's first frames (hello, auth) under:
#: ``python -m runtime.node``'s ``--max-request-bytes`` default.
DEFAULT_MAX_REQUEST_BYTES = 1 << 20


class _PeerStream:
    """One connection at the acceptor: a client connection's decoder until ``auth``, a
    peer connection's after (the same decoder, switched, as the runtime hands it over)."""

    __slots__ = ("codec", "config", "decoder", "node", "wire")

    def __init__(self, wire: PeerWire, node: str, config: NodeConfig) -> None:
        self.wire = wire
        self.node = node
        self.config = config
        self.decoder: MsgpackDecoder | None = None
        self.codec: Codec | None = None

    def hello(self, payload: Any) -> tuple[str, dict[str, Any]]:
        wire = self.wire
        decoder = choose_decoder(payload[0], wire.max_request_bytes, self.config.max_value_depth)
        if not isinstance(decoder, MsgpackDecoder):
            raise BadFrame("a peer connection must start with hello")  # a JSON client's line
        first = decoder.feed(payload, raw=True, limit=1)
        obj = first[0] if first else None
        if type(obj) is not dict or obj.get("type") != HELLO:
            raise BadFrame("a peer connection must start with hello")  # a client's request
        try:
            node_id, _addr, _partitions = check_hello(obj, self.config.partitions)
        except BadRequestError as exc:
            raise BadFrame(exc.message) from None
        self.decoder = decoder
        self.codec = choose_codec(obj)  # (as the runtime's acceptor chooses it)
        return node_id, obj

    def auth(self, payload: Any) -> Any:
        decoder = self.decoder
        assert decoder is not None
        frames = decoder.feed(payload, raw=True, limit=1)
        if not frames:
            raise BadFrame("incomplete auth frame")
        try:
            obj = auth_frame(frames[0])
        except PeerAuthError as exc:
            raise BadFrame(exc.message) from None
        wire = self.wire
        # (the runtime's connection: max(--max-peer-frame-bytes, --max-request-bytes))
        limit = wire.frame_limits.get(self.node, DEFAULT_PEER_FRAME_BYTES)
        switch_to_peer_frames(decoder, max(limit, wire.max_request_bytes))
        return obj

    def frame(self, payload: Any) -> Any:
        decoder = self.decoder
        assert decoder is not None
        msgs, why = read_peer_frames(decoder, payload, self.config.max_value_depth, self.codec)
        if why is not None:
            raise BadFrame(why)
        if len(msgs) != 1:  # each payload is one whole frame
            raise BadFrame(f"{len(msgs)} messages in one frame")
        return msgs[0]


class PeerWire:
    """The cache's peer protocol as bytes between simulated nodes.

    ``configure(node, config)`` (the host calls it as it starts a node) gives a node's
    hello its partition count and its receiving end its value depth limit; a node never
    configured (a ``stranger``) gets the defaults. ``max_frame_bytes`` is the sending
    limit of every node (``runtime.peers.PeerLinks``' default); ``frame_limits`` may lower a
    node's receiving limit (``CacheServer(max_peer_frame_bytes=...)``), for tests.
    """

    def __init__(
        self,
        max_frame_bytes: int = DEFAULT_PEER_FRAME_BYTES,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        compress: bool = True,
        compress_threshold: int = DEFAULT_THRESHOLD,
    ) -> None:
        self.max_frame_bytes = max_frame_bytes
        #: Every simulated node offers compression when on (the acceptors choose the best
        #: codec, as a real node's); frames of at least the threshold go compressed.
        self.codec = CODECS[next(iter(CODECS))] if compress else None
        self.compress_threshold = compress_threshold
        #: Bytes compression saved, over every link.
        self.compression_saved = 0
        self.max_request_bytes = max_request_bytes
        self.frame_limits: dict[str, int] = {}
        self.configs: dict[str, NodeConfig] = {}
        self._default = NodeConfig()
        self._pack = peer_packer()

    def configure(self, node: str, config: NodeConfig) -> None:
        self.configs[node] = config

    # --- sim.wire.Wire --------------------------------------------------------------

    def hello(self, node: str) -> dict[str, Any]:
        hello = encode_hello(node, f"{node}:{DEFAULT_PORT}", self.configs.get(node, self._default).partitions)
        return {**hello, **offer(self.codec is not None)}

    def encode(self, src: str, msg: Any) -> bytes:
        try:
            frame = encode_frame(self._pack, encode_peer, msg, self.max_frame_bytes)
        except UnencodableError as exc:
            raise Unsendable(exc.message) from None
        codec = self.codec
        if codec is None or len(frame) < self.compress_threshold:
            return frame
        packed = compress_frame(codec, frame, self.compress_threshold)
        self.compression_saved += len(frame) - len(packed)
        return packed

    def compressed(self, payload: Any) -> bool:
        return type(payload) is bytes and payload[:1] in (b"\xc4", b"\xc5", b"\xc6")  # a msgpack bin

    def handshake(self, src: str, frame: dict[str, Any]) -> bytes:
        return self._pack(frame)

    def challenge(self, frame: dict[str, Any]) -> bytes:
        return pack_handshake_reply(frame)

    def read_challenge(self, payload: Any) -> Any:
        unpacker = handshake_unpacker()
        try:
            unpacker.feed(payload)
            obj = next(unpacker, None)
        except Exception as exc:  # noqa: BLE001 - as runtime.peer_link: unreadable, not listening
            raise BadFrame(f"unreadable bytes from the acceptor: {type(exc).__name__}") from None
        if type(obj) is not dict or obj.get("type") != CHALLENGE:
            raise BadFrame("refused our connection")  # (runtime.peer_link.Link._on_frame)
        return obj

    def accept(self, dst: str) -> Stream:
        return _PeerStream(self, dst, self.configs.get(dst, self._default))
