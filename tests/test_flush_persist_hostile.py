"""Red-team regression (session 24): a cluster's flush markers (actors.store.flush_marks)
were not persisted, so a flush was forgotten by a node restarted from its data directory,
and a replica that missed the flush brought every flushed key back.

Seen on real processes: 3 nodes with --dir and --appendonly yes (fsync always), 100 keys,
node3 killed, FLUSHDB through node1 (+OK, DBSIZE 0), node1 and node2 killed, all three
restarted from disk: DBSIZE 100 on every node, for good. Here in process, through the log
and through a snapshot: after a restart from disk, a record older than the flush is refused.
"""

from __future__ import annotations

from actors.protocol.record import Record
from actors.store.flush_marks import MARKER_VALUE, marker_key
from actors.store.keyspace import Keyspace
from actors.store.partitions import partition_of
from tests.test_persist import WALL, MemoryDisk, clock, persistence, v


def test_a_flush_survives_a_restart_from_disk() -> None:
    ks = Keyspace()
    disk = MemoryDisk()
    p = persistence(disk, ks, appendonly=True)
    p.load(ks, WALL)
    ks.set("k", "old", None, v(1))
    p.end_turn(ks, WALL, 0.0)
    partition = partition_of("k", ks.partitions)
    ks.set_all(((marker_key(partition, ks.partitions), MARKER_VALUE, None),), v(5))  # the flush's write
    p.end_turn(ks, WALL, 0.0)
    assert ks.flush_mark(partition) == v(5) and ks.peek("k") == (None, None)

    restarted = Keyspace()
    persistence(disk, restarted, appendonly=True).load(restarted, WALL + 1)
    stale = Record("k", "old", None, v(1))  # what a replica that missed the flush still holds
    assert not restarted.apply(stale, WALL + 1), "a flushed key came back after a restart"


def test_a_flush_survives_a_snapshot_and_a_restart() -> None:
    ks = Keyspace()
    disk = MemoryDisk()
    p = persistence(disk, ks)
    ks.set("k", "old", None, v(1))
    partition = partition_of("k", ks.partitions)
    ks.set_all(((marker_key(partition, ks.partitions), MARKER_VALUE, None),), v(5))
    p.start_save(ks, WALL, 0.0)
    while not p.save_slice(clock, 1.0, WALL):
        pass
    restarted = Keyspace()
    persistence(disk, restarted).load(restarted, WALL + 1)
    assert restarted.flush_mark(partition) == v(5)
    assert not restarted.apply(Record("k", "old", None, v(1)), WALL + 1)
    assert restarted.apply(Record("k", "new", None, v(6)), WALL + 1)  # newer than the flush: kept
    assert len(restarted) == 1  # the marker is no key (DBSIZE, KEYS)
