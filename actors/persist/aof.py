"""The append-only log: one block per store turn, replayed after the snapshot on start.

A log file ``appendonly.<gen>.aof`` is the magic, a HEADER block (``{"format", "gen",
"node_id"}``), then DATA blocks ``[wall, [record, ...], tombstone_ttl]``: the state, at the end of one
store turn, of every key that turn changed (see :mod:`actors.persist.tap`), stamped with
the wall time and the tombstone lifetime then in force. Replaying a log overwrites keys in file order, so it ends where the node
was when it last wrote.

Generations: every snapshot capture starts a new log generation at the same instant,
and the snapshot's header names it (``aof_gen``); once the snapshot is installed the
older generations are deleted. Loading reads the snapshot, then every log of its
generation or later, in order; a crash between the two steps leaves both the old
snapshot and every log it needs. That rotation is the log rewrite: rewriting the log is
taking a snapshot (``--auto-aof-rewrite-percentage``/``--auto-aof-rewrite-min-size``).

Damage (Redis's ``aof-load-truncated yes``): a last block that is cut short, or whose
checksum fails and which ends exactly at the end of the file (a torn write), or zeros to
the end of the file (allocated, never written), is dropped
and the file truncated to the blocks before it; anything wrong before the last block is
:class:`LogCorrupt`, and the load stops there, naming the file and offset.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from actors.persist.blocks import AOF_MAGIC, DATA, HEADER, Corrupt, FileError, Truncated, encode_block, read_blocks
from actors.persist.records import decode_stored
from actors.protocol.record import Record

__all__ = ["LogCorrupt", "LogRead", "log_block", "log_gen", "log_name", "log_start", "read_log"]

_PREFIX, _SUFFIX = "appendonly.", ".aof"


def log_name(gen: int) -> str:
    return f"{_PREFIX}{gen}{_SUFFIX}"


def log_gen(name: str) -> int | None:
    """The generation a log file's name carries, or None for any other file."""
    if name.startswith(_PREFIX) and name.endswith(_SUFFIX):
        middle = name[len(_PREFIX) : -len(_SUFFIX)]
        if middle.isdigit():
            return int(middle)
    return None


def log_start(gen: int, node_id: str) -> bytes:
    return AOF_MAGIC + encode_block(HEADER, {"format": 1, "gen": gen, "node_id": node_id})


def log_block(wall: float, records: list[Any], tombstone_ttl: float = 0.0) -> bytes:
    return encode_block(DATA, [wall, records, tombstone_ttl])


class LogCorrupt(Exception):
    """A log is damaged before its last block: loading stops (the node does not start)."""

    def __init__(self, name: str, error: FileError) -> None:
        super().__init__(
            f"append-only log {name} is corrupt: {error}; the load stops here. Move the file aside to start "
            f"without it (what it holds after the snapshot is then lost), or cut it at offset {error.offset}"
        )
        self.name = name
        self.offset = error.offset


@dataclass
class LogRead:
    records: list[tuple[Record, tuple[str, ...]]] = field(default_factory=list)
    #: The wall time and tombstone lifetime of the last whole block (0 when none).
    last_wall: float = 0.0
    tombstone_ttl: float = 0.0
    #: Bytes of whole blocks (where a torn tail is cut), and what was torn (None: nothing).
    good_bytes: int = 0
    torn: FileError | None = None


def read_log(data: bytes, name: str) -> LogRead:
    out = LogRead()
    try:
        for offset, kind, obj in read_blocks(data, AOF_MAGIC):
            if out.good_bytes == 0:
                if kind != HEADER or type(obj) is not dict:
                    raise Corrupt(offset, "the first block is not a log header")
            elif kind != DATA or type(obj) is not list or len(obj) != 3 or type(obj[1]) is not list:
                raise Corrupt(offset, "not a log data block")
            else:
                wall, _, ttl = obj
                if type(wall) not in (float, int) or type(ttl) not in (float, int):
                    raise Corrupt(offset, "a log block's wall time or tombstone lifetime is not a number")
                out.tombstone_ttl = float(ttl)
                try:
                    out.records.extend(decode_stored(r) for r in obj[1])
                except Exception as exc:  # noqa: BLE001 - a record that does not decode
                    raise Corrupt(offset, f"a record does not decode ({exc})") from None
                out.last_wall = float(wall)
            out.good_bytes = _block_end(data, offset)
    except Truncated as exc:
        out.torn = exc
    except Corrupt as exc:
        if exc.offset >= len(AOF_MAGIC) and _block_end(data, exc.offset) == len(data) and "checksum" in exc.reason:
            out.torn = exc  # the last block, whole in length but not in content: a torn write
        elif exc.offset >= len(AOF_MAGIC) and not any(data[exc.offset :]):
            out.torn = exc  # zeros to the end: space the file system allocated, never written
        else:
            raise LogCorrupt(name, exc) from None
    return out


def _block_end(data: bytes, offset: int) -> int:
    if offset < len(AOF_MAGIC):
        return len(AOF_MAGIC)
    if offset + 10 > len(data):
        return -1
    return offset + 10 + struct.unpack_from("<I", data, offset + 2)[0]
