"""Snapshots: a point-in-time image of the keyspace, written in budgeted slices.

Theory of operation. A snapshot is captured by the store actor itself, a slice per turn
(:meth:`SnapshotCapture.slice`, each bounded by a time budget like the janitor's expiry
cycles), so the store keeps serving between slices. It is consistent because capture
starts by listing every key (one pass, ~10 ms at 1M keys) and arming the
:class:`~actors.persist.tap.Tap`'s copy-on-write: a key changed after that has its old
entry kept, and the capture writes that. Keys created after the start are not listed, so
not written: the file holds the keyspace exactly as it was when the capture began (the
log generation started at the same instant holds everything after).

Why not fork(2) as Redis does: with reference counting, the child's reads dirty every
page it touches, so its memory cost is the whole heap anyway; the simulator cannot fork;
and a fork from a process with an event loop and threads is fragile. The slices cost the
store a bounded share of its time (``slice budget / (budget + pause)``) and a pre-image
per key written meanwhile.

File layout (docs/persistence.md): magic, a HEADER block, DATA blocks of up to
:data:`RECORDS_PER_BLOCK` records and about :data:`~actors.persist.blocks.BLOCK_BYTES` of values, a FOOTER block with the record and block counts.
Loading refuses a file that is truncated, corrupt, or whose footer disagrees.
"""

from __future__ import annotations

from typing import Any, Callable

from actors.persist.blocks import (
    BLOCK_BYTES, DATA, FOOTER, HEADER, SNAPSHOT_MAGIC, Corrupt, Truncated, encode_block, read_blocks,
)
from actors.persist.records import decode_stored, stored_record
from actors.persist.tap import Tap
from actors.protocol.record import Record
from actors.store.keyspace import Keyspace
from actors.store.sizing import estimate_size

__all__ = ["BLOCKS_PER_SLICE", "FORMAT", "RECORDS_PER_BLOCK", "SnapshotCapture", "read_snapshot"]

FORMAT = 1
#: Records per DATA block. A block is the smallest unit of a slice's work (its records
#: are read, packed and compressed between two looks at the clock): 256 take ~0.3-0.7 ms
#: on a loaded 2-core machine, where 1024 took 2.3-6.5 ms and every slice overran its
#: budget (bench/RESULTS.md, "BGSAVE stalls"). Smaller blocks compress a little worse.
RECORDS_PER_BLOCK = 256
#: At most this many blocks per slice, whatever the clock says.
BLOCKS_PER_SLICE = 16


class SnapshotCapture:
    """One snapshot being captured from ``keyspace``; hands out the file's bytes."""

    def __init__(self, keyspace: Keyspace, tap: Tap, header: dict[str, Any]) -> None:
        values, tombs = keyspace.all_keys()
        self._keys = values + tombs
        self._pos = 0
        self._keyspace = keyspace
        self._tap = tap
        tap.preimages = {}
        self.records = 0
        self.blocks = 0
        self.header = {"format": FORMAT, **header}

    @property
    def done(self) -> bool:
        return self._pos >= len(self._keys)

    def start(self) -> bytes:
        """The magic and the header block."""
        return SNAPSHOT_MAGIC + encode_block(HEADER, self.header)

    def slice(self, now: Callable[[], float], budget_s: float) -> bytes:
        """DATA blocks for the next keys: at least one, and more until ``budget_s`` of ``now``
        passed or :data:`BLOCKS_PER_SLICE` were made (the bound on work: a block is the
        unit between two looks at the clock, and a clock that does not move within a turn,
        as the simulator's, still gets slices)."""
        out: list[bytes] = []
        deadline = now() + budget_s
        keys = self._keys
        peek = self._keyspace.peek
        pre = self._tap.preimages
        assert pre is not None, "slice() after finish()"
        for _ in range(BLOCKS_PER_SLICE):
            if self._pos >= len(keys):
                break
            chunk = keys[self._pos : self._pos + RECORDS_PER_BLOCK]
            self._pos += len(chunk)
            records: list[Any] = []
            held = 0
            for key in chunk:
                state = pre.get(key)
                entry, tomb = peek(key) if state is None else state
                if entry is not None or tomb is not None:
                    record = stored_record(key, entry, tomb)
                    records.append(record)
                    held += estimate_size(record[1])
                    if held >= BLOCK_BYTES:  # big values: a block stays far below MAX_PAYLOAD
                        self._block(out, records)
                        records, held = [], 0
            if records:
                self._block(out, records)
            if now() >= deadline:
                break
        return b"".join(out)

    def _block(self, out: list[bytes], records: list[Any]) -> None:
        out.append(encode_block(DATA, records))
        self.records += len(records)
        self.blocks += 1

    def finish(self) -> bytes:
        """The footer; the tap stops keeping pre-images."""
        self.abort()
        return encode_block(FOOTER, {"records": self.records, "blocks": self.blocks})

    def abort(self) -> None:
        self._tap.preimages = None
        self._keys = []


def read_snapshot(data: bytes) -> tuple[dict[str, Any], list[tuple[Record, tuple[str, ...]]]]:
    """``(header, records)`` of a whole snapshot; raises :class:`~actors.persist.blocks.Truncated`
    or :class:`~actors.persist.blocks.Corrupt` (naming the offset) for anything else."""
    header: dict[str, Any] | None = None
    records: list[tuple[Record, tuple[str, ...]]] = []
    blocks = 0
    footer_at = -1
    for offset, kind, obj in read_blocks(data, SNAPSHOT_MAGIC):
        if footer_at >= 0:
            raise Corrupt(offset, "data after the footer")
        if header is None:
            if kind != HEADER or type(obj) is not dict or obj.get("format") != FORMAT:
                raise Corrupt(offset, f"the first block is not a format-{FORMAT} header")
            header = obj
        elif kind == DATA:
            if type(obj) is not list:
                raise Corrupt(offset, "a data block is not an array of records")
            try:
                records.extend(decode_stored(r) for r in obj)
            except Exception as exc:  # noqa: BLE001 - BadRequestError, unpacking errors: a bad record
                raise Corrupt(offset, f"a record does not decode ({exc})") from None
            blocks += 1
        elif kind == FOOTER:
            if type(obj) is not dict or obj.get("records") != len(records) or obj.get("blocks") != blocks:
                raise Corrupt(offset, "the footer's counts disagree with the blocks")
            footer_at = offset
        else:
            raise Corrupt(offset, "a second header")
    if header is None or footer_at < 0:
        raise Truncated(len(data), "the snapshot has no footer")
    return header, records
