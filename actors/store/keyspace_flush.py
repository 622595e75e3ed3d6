"""Keyspace: flush markers (FLUSHDB in a cluster) and clearing a single node.

How a keyspace holds a partition's flush marker apart from its keys, forgets what the
flush covers, answers the flush's version for keys it holds nothing newer for, and
persists the marker: the rules are in :mod:`actors.store.flush_marks`. ``clear`` (FLUSHDB
on a single node) lives here too. Split out of :mod:`actors.store.keyspace`.

A mixin of :class:`~actors.store.keyspace.Keyspace`, its only user (why mixins: that module's docstring).
"""

from __future__ import annotations

from actors.protocol.collection import Coll, merge_records
from actors.protocol.record import Record
from actors.protocol.version import ZERO, Version
from actors.store.entries import VALUE, Entry, EntryDict, entry_replicas, entry_version
from actors.store.flush_marks import MARKER_VALUE, is_marker, marker_key



class FlushMixin:
    """Flush markers and clearing of the keyspace (see the module docstring)."""

    __slots__ = ()

    def clear(self) -> int:
        """Forget every value and tombstone (FLUSHDB on a single node); how many values went.
        Counters stay; the partition index, if it existed, is rebuilt when next needed."""
        count = len(self._entries)
        tap = self.tap
        if tap is not None:  # persistence logs each key as gone (and a capture keeps its pre-image)
            for key in list(self._entries):
                tap(key)
            for key in list(self._tombstones):
                tap(key)
        if self.evictor is not None:  # it indexes the entries: tell it each one goes
            for key, entry in list(self._entries.items()):
                self._remove(key, entry)
        self._entries = EntryDict()
        self._tombstones = {}
        self._purge_heap = []
        self._volatile = []
        self._volatile_pos = {}
        self._partitions = None
        self._marks = None
        self._mark_max = ZERO
        self._digests = None
        self.used_bytes = 0
        return count

    def flush_mark(self, partition: int) -> Version | None:
        """The version of ``partition``'s last flush, or None."""
        return None if self._marks is None else self._marks.get(partition)

    def _flush_mark(self, key: str, version: Version) -> bool:
        """A partition's flush marker at ``version``: unless it holds one as new, keep it
        and forget every value and tombstone of the partition at or below it."""
        partition = self._partition_of(key)
        if key != marker_key(partition, self.partitions):
            return False  # a reserved key that is no partition's marker: nothing to store
        marks = self._marks
        if marks is None:
            marks = self._marks = {}
        old = marks.get(partition)
        if old is not None and version <= old:
            return False
        self._changing(key)  # persisted: a flush forgotten at a restart would let flushed keys back
        marks[partition] = version
        if version > self._mark_max:
            self._mark_max = version
        entries, tombs = self._entries, self._tombstones
        for k in list(self._partition_index()[partition]):
            entry = entries.get(k)
            if entry is not None:
                if entry_version(entry) <= version:
                    self._remove(k, entry)
                elif type(entry[VALUE]) is Coll:
                    self._flush_fields(k, entry, version)
            elif k in tombs and tombs[k][0] <= version:
                self._drop_tombstone(k)
        return True

    def _flush_fields(self, key: str, entry: Entry, version: Version) -> None:
        """A hash or set newer than a flush at ``version`` loses the fields the flush covers:
        the join with a delete at ``version`` (a flush deletes every key of its partition)."""
        merged = merge_records(self._raw_record(key), Record(key, None, None, version, 0.0))
        if merged is not None and merged.value == entry[VALUE]:
            return
        replicas = entry_replicas(entry)
        self._remove(key, entry)
        if merged is not None and type(merged.value) is Coll:
            self.set_all(((key, merged.value, merged.deadline),), merged.version, replicas)

    def _mark_record(self, key: str, wall: float) -> Record | None:
        """For a key with no value or tombstone here: its partition's marker if ``key`` is
        the marker's, else a tombstone at the partition's flush version (a key flushed)."""
        marks = self._marks
        assert marks is not None
        partition = self._partition_of(key)
        mark = marks.get(partition)
        if mark is None:
            return None
        if is_marker(key):
            return Record(key, MARKER_VALUE, None, mark) if key == marker_key(partition, self.partitions) else None
        return Record(key, None, None, mark, wall + max(self.tombstone_ttl, 1.0))

    def _mark_entry(self, key: str) -> Entry | None:
        """A flush marker as the entry a snapshot or the log writes (a value at the flush's
        version), so a node restarted from disk still refuses what the flush deleted."""
        assert self._marks is not None
        partition = self._partition_of(key)
        mark = self._marks.get(partition)
        if mark is None or key != marker_key(partition, self.partitions):
            return None
        return (MARKER_VALUE, mark.wall_ms, mark.logical, (mark.node_id, ()), None)
