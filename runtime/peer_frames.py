"""The bytes of a peer link's frames, as the connector writes them and reads the acceptor's.

One module so that every party speaking the peer protocol frames it the same way: the
runtime's links (:mod:`runtime.peers`, :mod:`runtime.peer_link`), the acceptor's
connection (:mod:`runtime.connection`) and the simulator's network when it carries bytes
(:mod:`sim.peer_wire`). A sweep then exercises the very packer, frame limit and unpacker a
real node runs, not a copy of them.

- a message is turned into a msgpack-able object by the system's ``encode`` and packed
  with ``surrogatepass`` (values a JSON client stored may hold lone surrogates); one that
  cannot be encoded, or whose frame is over the peer frame limit, is never written: the
  receiver would close the connection on it and lose what follows
  (:class:`UnencodableError`, counted ``unencodable`` by the link);
- the acceptor writes its handshake frames (a challenge, an error reply) with a plain
  packer, and the connector reads them with a small bounded unpacker: it expects one
  challenge or one refusal, never a stream.

The framework's transport knows nothing of the system it carries: this module imports
nothing of the cache.
"""

from __future__ import annotations

from typing import Any, Callable

import msgpack

__all__ = [
    "DEFAULT_PEER_FRAME_BYTES",
    "HANDSHAKE_READ_BYTES",
    "PEER_UNICODE_ERRORS",
    "UnencodableError",
    "encode_frame",
    "handshake_unpacker",
    "pack_handshake_reply",
    "peer_packer",
]

#: Largest frame a peer may send, and so the largest a receiver accepts by default. Peer
#: frames carry whole client batches (a replica request for a batch of sets, a stream of
#: records), so they may be much larger than one client request.
DEFAULT_PEER_FRAME_BYTES = 64 << 20

#: Lone surrogates are valid in strings a JSON client stored; peers carry them faithfully.
PEER_UNICODE_ERRORS = "surrogatepass"

#: What a connector buffers of the acceptor's answer (a challenge or an error reply).
HANDSHAKE_READ_BYTES = 1 << 16

#: The acceptor's handshake frames (its challenge carries bytes: msgpack bin).
pack_handshake_reply: Callable[[Any], bytes] = msgpack.Packer(use_bin_type=True).pack


class UnencodableError(Exception):
    """A message that cannot go on a peer link: its encoding failed or its frame is over
    the limit. The message says which, and names the message's type only."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def peer_packer() -> Callable[[Any], bytes]:
    """The packer a node writes its peer frames (hello, auth, messages) with."""
    return msgpack.Packer(use_bin_type=True, unicode_errors=PEER_UNICODE_ERRORS).pack


def encode_frame(pack: Callable[[Any], bytes], encode: Callable[[Any], Any], msg: Any, max_frame_bytes: int) -> bytes:
    """The frame for ``msg``; raises :class:`UnencodableError` when ``encode`` or the
    packer fails or the frame is over ``max_frame_bytes``."""
    try:
        frame = pack(encode(msg))
    except Exception as exc:  # noqa: BLE001 - whatever the system's encoder or msgpack refused
        raise UnencodableError(f"cannot encode {type(msg).__name__}: {exc}") from None
    if len(frame) > max_frame_bytes:
        raise UnencodableError(
            f"{type(msg).__name__} is {len(frame)} bytes, over the peer frame limit of {max_frame_bytes}"
        )
    return frame


def handshake_unpacker() -> msgpack.Unpacker:
    """What a connector reads the acceptor's frames with (its challenge, or a refusal)."""
    return msgpack.Unpacker(raw=False, max_buffer_size=HANDSHAKE_READ_BYTES)
