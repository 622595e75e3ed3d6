"""Red-team regressions for snapshots and the append-only log (session 24).

Found: a block longer than the reader's limit (256 MiB) was written but refused on load,
so acknowledged big values were lost: a snapshot block held 1,024 records whatever their
size (three SETs of 100 MB random bytes, SAVE, restart: all three gone, the snapshot
moved aside as damaged), a log block one turn (one 300 MB SET with --appendfsync always,
kill -9, restart: gone once a rewrite had put it in a snapshot). And a compressed block
inflated without bound. Now the limit is the u32 length's range, snapshot blocks are cut
by the bytes of their values too, and decompression stops at the limit.
"""

from __future__ import annotations

import zlib

import pytest

from actors.persist import blocks
from actors.persist.blocks import BLOCK_BYTES, DATA, SNAPSHOT_MAGIC, Corrupt, read_blocks
from actors.persist.manager import SNAPSHOT
from actors.persist.snapshot import read_snapshot
from actors.store.keyspace import Keyspace
from tests.test_persist import WALL, MemoryDisk, clock, persistence, state, v


def test_a_block_past_the_old_limit_is_read() -> None:
    """Random values do not compress: a block is as long as its values (here stored
    uncompressed, which costs the test no compression time)."""
    block = blocks.encode_block(DATA, [b"\x00" * (257 << 20)], level=0)
    assert len(block) > 257 << 20
    [(_, kind, obj)] = list(read_blocks(memoryview(SNAPSHOT_MAGIC + block), SNAPSHOT_MAGIC))
    assert kind == DATA and len(obj[0]) == 257 << 20


def test_big_values_come_back_from_a_snapshot_cut_by_bytes_and_from_one_log_turn() -> None:
    ks = Keyspace()
    disk = MemoryDisk()
    p = persistence(disk, ks, appendonly=True)
    p.load(ks, WALL)
    for i in range(3):
        ks.set(f"big{i}", bytes([i]) * (BLOCK_BYTES + 1), None, v(i))
    ks.set("small", "1", None, v(9))
    p.end_turn(ks, WALL, 0.0)  # one turn, one log block
    logged = Keyspace()
    persistence(disk, logged, appendonly=True).load(logged, WALL + 1)
    assert state(logged) == state(ks)

    p.start_save(ks, WALL, 0.0)
    while not p.save_slice(clock, 1.0, WALL):
        pass
    assert p.last_status == "ok"
    data_blocks = [b for b in read_blocks(disk.files[SNAPSHOT], SNAPSHOT_MAGIC) if b[1] == DATA]
    assert len(data_blocks) >= 3  # cut by bytes: each big value reaches BLOCK_BYTES
    _, records = read_snapshot(bytes(disk.files[SNAPSHOT]))
    assert sorted(r.key for r, _ in records) == ["big0", "big1", "big2", "small"]


def test_a_block_that_inflates_past_the_limit_is_corrupt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocks, "MAX_PAYLOAD", 1 << 20)
    fits = blocks.encode_block(DATA, [b"\x00" * (1 << 19)])
    bomb = blocks.encode_block(DATA, [b"\x00" * (4 << 20)])  # ~4 KiB on disk
    assert len(bomb) < 64 << 10
    assert [kind for _, kind, _ in read_blocks(SNAPSHOT_MAGIC + fits, SNAPSHOT_MAGIC)] == [DATA]
    with pytest.raises(Corrupt, match="does not decode"):
        list(read_blocks(SNAPSHOT_MAGIC + bomb, SNAPSHOT_MAGIC))


def test_a_block_ending_early_in_its_compressed_stream_is_corrupt() -> None:
    whole = zlib.compress(blocks.pack([b"x" * 4096]))
    cut = whole[:-8]
    head = bytes([DATA, 1]) + len(cut).to_bytes(4, "little")
    block = head + zlib.crc32(cut, zlib.crc32(head)).to_bytes(4, "little") + cut
    with pytest.raises(Corrupt):
        list(read_blocks(SNAPSHOT_MAGIC + block, SNAPSHOT_MAGIC))
    assert BLOCK_BYTES < blocks.MAX_PAYLOAD
