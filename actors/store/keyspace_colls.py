"""Keyspace: merging hashes and sets (collections) field by field.

A :class:`~actors.protocol.collection.Coll` value is a state of per-field versions; writes
and repairs of one are joins (``merge_records``) rather than last-write-wins of the whole
value, and a partition's flush marker is joined in on every path so replicas agree. Split
out of :mod:`actors.store.keyspace` to keep that module to entries and plain records.

A mixin of :class:`~actors.store.keyspace.Keyspace`, its only user (why mixins: that module's docstring).
"""

from __future__ import annotations

from typing import Any

from actors.protocol.collection import Coll, merge_records, prune
from actors.protocol.record import Record
from actors.protocol.version import ZERO, Version
from actors.store.entries import DEADLINE, VALUE, entry_replicas, entry_version

#: :meth:`Keyspace._merge_delta`'s answer when the write leaves no key.
_GONE = ("gone",)
#: ... when it changes nothing, yet is no conflict (a deadline for a key that is no hash).
_UNCHANGED = ("unchanged",)


class CollectionsMixin:
    """Field-wise merges of hashes and sets into the keyspace (see the module docstring)."""

    __slots__ = ()

    def _raw_record(self, key: str) -> Record | None:
        """What the key holds, expired or not (no lazy expiry, no counters)."""
        entry = self._entries.get(key)
        if entry is not None:
            return Record(key, entry[VALUE], entry[DEADLINE], entry_version(entry))
        tomb = self._tombstones.get(key)
        return Record(key, None, None, tomb[0], tomb[1]) if tomb is not None else None

    def _merge_delta(
        self, key: str, delta: Coll, deadline: float | None, version: Version, wall: float | None
    ) -> tuple[Any, float | None] | None:
        """``(value, deadline)`` to store for a field write, or None: refused (the key holds
        this version or a newer one; the coordinator re-stamps above it). Accepted, the
        write is newer than anything the key holds, so the merged entry's version is the
        write's. An expired value is merged as the tombstone it has turned into."""
        newest = self._newest(key)
        if newest is not None and version is not ZERO and version <= newest:
            return None
        now = wall if wall is not None else version.wall_ms / 1000
        self.entry(key, now)  # expire what is due first (a tombstone at its version)
        merged = merge_records(self._raw_record(key), Record(key, delta, deadline, version))
        mark = None if self._marks is None else self._marks.get(self._partition_of(key))
        if mark is not None:  # joined with the partition's flush on every path, so replicas' states agree
            merged = merge_records(merged, Record(key, None, None, mark, 0.0))
        if merged is None or type(merged.value) is not Coll:
            return _UNCHANGED  # a delta of nothing but a deadline, to a key that is no hash or set
        # Field tombstones are kept as long as key tombstones are (none on a single copy),
        # counted from the state's own newest version, not this replica's clock: replicas
        # holding the same fields prune them alike, so their digests agree.
        ttl = self.tombstone_ttl
        kept = prune(merged.value, merged.version.wall_ms - int(ttl * 1000) if ttl > 0 else None)
        if kept is None:
            if ttl > 0:
                return merged.value, merged.deadline
            return _GONE
        return kept, merged.deadline

    def _apply_merge(self, record: Record, wall: float) -> bool:
        """:meth:`apply` where a collection is involved: the join of both states (and of
        the partition's flush, which erases what a replica that missed it still holds)."""
        key = record.key
        mark = None if self._marks is None else self._marks.get(self._partition_of(key))
        if mark is not None:
            record = merge_records(record, Record(key, None, None, mark, wall + max(self.tombstone_ttl, 1.0)))
            if record is None or (record.purge_at is not None and record.version <= mark):
                return False  # nothing newer than the flush
        self.entry(key, wall)
        current = self._raw_record(key)
        if record.purge_at is None and record.deadline is not None and record.deadline <= wall:
            # Expired on arrival: what it turned into, a tombstone at its version.
            record = Record(key, None, None, record.version, record.deadline + max(self.tombstone_ttl, 0.0))
        merged = merge_records(current, record)
        if merged is not None and type(merged.value) is Coll and not merged.value.items:
            # A floor with nothing above it (a forged state): a tombstone, purged in time.
            merged = Record(key, None, None, merged.version, wall + self.tombstone_ttl) if self.tombstone_ttl > 0 else None
        if merged is None or merged == current:
            return False
        if self.max_memory and self.used_bytes >= self.max_memory and key not in self._entries and merged.purge_at is None:
            self.repairs_skipped_full += 1  # as for plain records: a full node takes on no keys by repair
            return False
        entry = self._entries.get(key)
        self.restore(merged, entry_replicas(entry) if entry is not None else (), wall)  # the join, in its place
        return True
