"""The block format shared by snapshots and append-only logs (docs/persistence.md).

A file is an 8-byte magic naming its kind and format version, then blocks::

    block   := kind:u8  flags:u8  length:u32le  crc:u32le  payload[length]
    crc     := crc32 over the kind, flags and length bytes, then the payload
    flags   := bit 0: payload is zlib-compressed
    payload := msgpack: a map (HEADER, FOOTER) or an array of records (DATA)

Sans-IO: :func:`encode_block` turns a payload into bytes, :func:`read_blocks` walks bytes
and yields ``(offset, kind, payload)``; neither touches a file. A reader never trusts a
length: a block that runs past the end is :class:`Truncated`, a checksum, compression or
msgpack failure is :class:`Corrupt`, each naming the byte offset of the block.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import Any

import msgpack

__all__ = [
    "AOF_MAGIC",
    "Corrupt",
    "DATA",
    "FOOTER",
    "FileError",
    "HEADER",
    "SNAPSHOT_MAGIC",
    "Truncated",
    "encode_block",
    "pack",
    "read_blocks",
]

#: Magic of a snapshot file and of an append-only log file, format version 1.
SNAPSHOT_MAGIC = b"ACSNAP1\n"
AOF_MAGIC = b"ACAOF01\n"

HEADER, DATA, FOOTER = 1, 2, 3
_KINDS = (HEADER, DATA, FOOTER)
_COMPRESSED = 1
_HEAD = struct.Struct("<BBII")
#: Payloads shorter than this are stored as they are (compressing them costs more than it saves).
COMPRESS_ABOVE = 512
#: Largest payload, stored or decompressed: what the u32 length can say. A reader never
#: allocates for a length (the block's bytes are in hand before it is trusted), and
#: decompression stops at this, so a crafted block cannot inflate without bound. It must
#: hold the largest record a node writes (one value of --proto-max-bulk-len): a smaller
#: limit made a node write blocks it then refused to load, losing acknowledged writes.
MAX_PAYLOAD = (1 << 32) - 1
#: A snapshot's DATA block is cut once its values reach this many bytes (a block holds
#: at least one record, whatever its size).
BLOCK_BYTES = 32 << 20

#: Lone surrogates are valid in keys a JSON client stored: written back faithfully.
pack = msgpack.Packer(use_bin_type=True, unicode_errors="surrogatepass").pack


class FileError(Exception):
    """A snapshot or log that cannot be read as written: ``offset`` is where it goes wrong."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"{reason} at byte offset {offset}")
        self.offset = offset
        self.reason = reason


class Truncated(FileError):
    """The bytes end inside a block (a crash during a write, or a cut file)."""


class Corrupt(FileError):
    """A block is whole but wrong: bad checksum, kind, compression or msgpack."""


def encode_block(kind: int, obj: Any, level: int = 1) -> bytes:
    """One block holding ``obj`` (packed, compressed at zlib ``level`` when large enough)."""
    payload = pack(obj)
    flags = 0
    if len(payload) >= COMPRESS_ABOVE and level > 0:
        payload = zlib.compress(payload, level)
        flags = _COMPRESSED
    head = struct.pack("<BBI", kind, flags, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + struct.pack("<I", crc) + payload


def read_blocks(data: bytes | memoryview, magic: bytes) -> Iterator[tuple[int, int, Any]]:
    """``(offset, kind, decoded payload)`` for each block after ``magic``, in order;
    raises :class:`Truncated` or :class:`Corrupt` at the first bad one."""
    view = memoryview(data)
    if len(view) < len(magic):
        raise Truncated(0, "the file is shorter than its magic")
    if bytes(view[: len(magic)]) != magic:
        raise Corrupt(0, f"not a file of this kind (magic {bytes(view[:len(magic)])!r}, expected {magic!r})")
    offset = len(magic)
    end = len(view)
    while offset < end:
        if end - offset < _HEAD.size:
            raise Truncated(offset, "the file ends inside a block header")
        kind, flags, length, crc = _HEAD.unpack_from(view, offset)
        body = offset + _HEAD.size
        if kind not in _KINDS or flags & ~_COMPRESSED or length > MAX_PAYLOAD:
            raise Corrupt(offset, f"bad block header (kind {kind}, flags {flags}, length {length})")
        if body + length > end:
            raise Truncated(offset, f"the file ends inside a block of {length} bytes")
        payload = view[body : body + length]
        if zlib.crc32(payload, zlib.crc32(view[offset : offset + 6])) != crc:
            raise Corrupt(offset, "block checksum mismatch")
        try:
            raw = _inflate(payload) if flags & _COMPRESSED else payload
            obj = msgpack.unpackb(raw, raw=False, unicode_errors="surrogatepass", strict_map_key=False)
        except Exception as exc:  # noqa: BLE001 - zlib.error, msgpack's errors: a checksummed block that lies
            raise Corrupt(offset, f"block does not decode ({type(exc).__name__})") from None
        yield offset, kind, obj
        offset = body + length


def _inflate(payload: memoryview) -> bytes:
    """``payload`` decompressed, at most :data:`MAX_PAYLOAD` bytes of it (else ``zlib.error``)."""
    inflater = zlib.decompressobj()
    raw = inflater.decompress(payload, MAX_PAYLOAD)
    if inflater.unconsumed_tail or not inflater.eof:
        raise zlib.error(f"inflates past {MAX_PAYLOAD} bytes or ends early")
    return raw
