"""Per-frame compression on a peer link: negotiated at ``hello``, bounded when inflated.

A link carries frames one way (connector -> acceptor), so the acceptor decides:

- the connector's hello offers what it can send (``"compress": ["zstd", "zlib"]``, in its
  preference order; nothing when ``--peer-compress off``);
- the acceptor answers in its challenge the first offered codec it can read
  (``"compress": "zstd"``), or nothing. An older node ignores the field it does not know
  (its hello offers nothing, its challenge chooses nothing): that link stays uncompressed;
- the connector then compresses each frame of at least the threshold
  (:data:`DEFAULT_THRESHOLD`) and sends it only when that saves bytes; a compressed frame
  is the msgpack ``bin`` of the compressed bytes of the ordinary frame (a peer message is
  never a bare ``bin``, so the two cannot be confused, and the stream needs no new framing).

The choice is not inside the handshake's proofs: a man in the middle who strips it only
turns compression off (he can already cut the link).

Reading (:func:`inflate_frame`) is hostile-input safe: a ``bin`` frame on a link that chose
nothing, a corrupt or truncated stream, trailing bytes, or a frame inflating past the peer
frame limit (a zip bomb: never more than ``limit + 1`` bytes are produced) raise
:class:`CompressionError`; the connection closes and nothing of that frame is applied.
The reader (:class:`runtime.peer_connection.PeerConnection`) also bounds what a read's
frames inflate to together, per event loop turn (``INFLATE_TURN_BYTES``): a frame of a few
KB may inflate to the limit, and a read holds a hundred of them.

Why zstd, with zlib as the pure-stdlib fallback (bench/RESULTS.md, "Peer compression"):
on msgpack record batches zstd level 1 compresses 2-6x faster than zlib level 1 and to
0.6-0.7x its size; lz4 is faster still but compresses 2x worse and earns no dependency.
A node without the ``zstandard`` package offers and reads zlib only.

Which links compress (``--peer-compress``, :data:`MODES`, :func:`compresses`): compression
trades CPU for bytes. Measured on a 2-core machine, 3 nodes on loopback (bench/RESULTS.md,
"Peer compression: wire bytes and CPU per key"): 0.20-0.31x the bytes on the wire for
1.03-1.58x the nodes' CPU per key (~10-15 us more CPU per key warmed, to save ~215
bytes); in one run warming took 2.3x longer, the nodes being CPU-bound and the link free. Saving
~215 bytes is worth ~13 us of CPU only on a link slower than ~215 B / 13 us = ~16 MB/s
(~130 Mbit/s): a WAN, a VPN, a metered link between zones; on loopback never, on a 1-10
Gbit/s LAN not when the CPUs are busy. So the default, ``auto``, offers compression on a
link unless the address it reached is a loopback one (the peer on this same host: a
test, a benchmark, several nodes on one machine), the way Cassandra's
``internode_compression: dc`` compresses only between data centres; ``on`` offers it
on every link, ``off`` on none. A node cannot tell a fast LAN from a slow WAN by the
address: on a fast LAN whose nodes are CPU-bound, ``off`` is the better setting.
"""

from __future__ import annotations

import ipaddress
import threading
import zlib
from typing import Any, Callable

import msgpack

from runtime.addresses import is_loopback

try:  # a runtime dependency, but a node without it still speaks (zlib) to every peer
    import zstandard
except ImportError:  # pragma: no cover - exercised by the fallback's own test
    zstandard = None

__all__ = [
    "CODECS",
    "COMPRESS",
    "DEFAULT_THRESHOLD",
    "Codec",
    "CompressionError",
    "DEFAULT_MODE",
    "MODES",
    "accepted_codec",
    "choose_codec",
    "compress_frame",
    "compresses",
    "inflate_frame",
    "offer",
]

#: The hello's and the challenge's field.
COMPRESS = "compress"
#: Frames shorter than this go as they are: most peer frames (gossip, replica acks, single
#: writes) are under 200 bytes and compress to little, at a cost on every turn.
DEFAULT_THRESHOLD = 1024

#: ``--peer-compress``: which links offer compression (see :func:`compresses`).
MODES = ("auto", "on", "off")
DEFAULT_MODE = "auto"


class CompressionError(Exception):
    """A compressed frame that cannot be read: not negotiated, corrupt, or too large."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Codec:
    """One compression algorithm: ``name`` on the wire, ``compress`` and bounded ``inflate``."""

    __slots__ = ("compress", "inflate", "name")

    def __init__(self, name: str, compress: Callable[[bytes], bytes], inflate: Callable[[bytes, int], bytes]) -> None:
        self.name = name
        self.compress = compress
        self.inflate = inflate


def _zlib_inflate(data: bytes, limit: int) -> bytes:
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as exc:
        raise CompressionError(f"corrupt zlib frame: {exc}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise CompressionError(f"a compressed frame inflating past {limit} bytes exceeds the limit of {limit} bytes")
    if not d.eof or d.unused_data:
        raise CompressionError("corrupt zlib frame: truncated or followed by other bytes")
    return out


def _zstd_inflate(data: bytes, limit: int) -> bytes:
    # Our frames declare their size: the one-shot decompression writes into a buffer of
    # exactly that size (never past the limit) and fails on a frame that lies about it.
    # Their checksum makes a corrupted frame an error, not other bytes.
    assert zstandard is not None
    try:
        declared = zstandard.frame_content_size(data)
        if declared < 0:
            raise CompressionError("a zstd frame must declare its size")
        if declared > limit:
            raise CompressionError(f"a compressed frame of {declared} bytes exceeds the limit of {limit} bytes")
        out = _zstd("d", zstandard.ZstdDecompressor).decompress(data, max_output_size=limit)
    except zstandard.ZstdError as exc:
        raise CompressionError(f"corrupt zstd frame: {exc}") from None
    if len(out) != declared:
        raise CompressionError("corrupt zstd frame: its size is not the one it declares")
    return out


#: zstd contexts are reused (creating one per frame cost more than compressing a small
#: frame), one per thread: they are not thread-safe, and a process may run nodes on
#: several event loops (tests do).
_local = threading.local()


def _zstd(kind: str, make: Callable[[], Any]) -> Any:
    context = getattr(_local, kind, None)
    if context is None:
        context = make()
        setattr(_local, kind, context)
    return context


def _new_compressor() -> Any:
    assert zstandard is not None
    return zstandard.ZstdCompressor(level=1, write_checksum=True, write_content_size=True)


def _zstd_compress(data: bytes) -> bytes:
    return _zstd("c", _new_compressor).compress(data)  # type: ignore[no-any-return]


def _codecs() -> dict[str, Codec]:
    codecs: dict[str, Codec] = {}
    if zstandard is not None:
        codecs["zstd"] = Codec("zstd", _zstd_compress, _zstd_inflate)
    codecs["zlib"] = Codec("zlib", lambda data: zlib.compress(data, 1), _zlib_inflate)
    return codecs


#: What this process can read and send, best first.
CODECS: dict[str, Codec] = _codecs()


def compresses(mode: str, peer_host: str) -> bool:
    """Whether a link whose connection reached ``peer_host`` (the socket's peer address)
    offers compression under ``mode`` (:data:`MODES`): ``auto`` on every link but one to a
    loopback address, where the CPU it costs buys nothing (see the module docstring)."""
    if mode == "auto":
        return not is_loopback(_unmapped(peer_host))
    if mode not in MODES:
        raise ValueError(f"peer compression must be one of {', '.join(MODES)}, not {mode!r}")
    return mode == "on"


def _unmapped(host: str) -> str:
    """``host`` with an IPv4-mapped IPv6 address (``::ffff:127.0.0.1``, a dual-stack
    socket's peer) as its IPv4 address."""
    try:
        mapped = ipaddress.ip_address(host.strip("[]")).ipv4_mapped  # type: ignore[union-attr]
    except (ValueError, AttributeError):
        return host
    return str(mapped) if mapped is not None else host


def offer(enabled: bool = True) -> dict[str, Any]:
    """The hello's fields offering compression (none when disabled)."""
    return {COMPRESS: list(CODECS)} if enabled else {}


def choose_codec(hello: Any) -> Codec | None:
    """The acceptor's choice: the best codec both read, or None (an older hello offers none)."""
    offered = hello.get(COMPRESS) if type(hello) is dict else None
    if type(offered) is not list:
        return None
    for name, codec in CODECS.items():
        if name in offered:
            return codec
    return None


def accepted_codec(challenge: Any, offered: bool) -> Codec | None:
    """The connector's codec after the challenge: the acceptor's choice, or None (an older
    acceptor chooses none). A choice it never offered is a :class:`CompressionError`."""
    chosen = challenge.get(COMPRESS) if type(challenge) is dict else None
    if chosen is None:
        return None
    codec = CODECS.get(chosen) if type(chosen) is str else None
    if codec is None or not offered:
        raise CompressionError(f"the peer chose compression {str(chosen)[:20]!r}, which we did not offer")
    return codec


_pack_bin = msgpack.Packer(use_bin_type=True).pack


def compress_frame(codec: Codec, frame: bytes, threshold: int = DEFAULT_THRESHOLD) -> bytes:
    """``frame`` as it goes on a link that chose ``codec``: compressed (a msgpack ``bin``)
    when it is at least ``threshold`` bytes and that saves bytes, else as it is."""
    if len(frame) < threshold:
        return frame
    packed = _pack_bin(codec.compress(frame))
    return packed if len(packed) < len(frame) else frame


def inflate_frame(codec: Codec | None, payload: bytes, limit: int, unicode_errors: str) -> tuple[Any, int]:
    """The peer frame a compressed ``bin`` frame holds, as the connection's decoder would
    build it (exactly one msgpack object, no extension types, string map keys), and its
    inflated size (what the reader charges to its inflation budget); raises
    :class:`CompressionError`."""
    if codec is None:
        raise CompressionError("a compressed frame on a link that negotiated no compression")
    inner = codec.inflate(payload, limit)
    try:  # (one-shot: an Unpacker per frame would allocate its read buffer each time)
        return msgpack.unpackb(
            inner, raw=False, ext_hook=_reject_ext, strict_map_key=True, unicode_errors=unicode_errors
        ), len(inner)
    except msgpack.ExtraData:
        raise CompressionError("a compressed frame holds more than one message") from None
    except Exception as exc:  # noqa: BLE001 - whatever msgpack refused in the inflated bytes
        raise CompressionError(f"a compressed frame holds malformed msgpack: {type(exc).__name__}") from None


def _reject_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not supported")
