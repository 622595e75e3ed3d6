"""Keyspace: what persistence reads and loads (snapshots and the append-only log).

Persistence (:mod:`actors.persist`) needs the keyspace as stored, without lazy expiry or
counters (``peek``, ``all_keys``), and needs to load a record as an overwrite in file
order rather than a merge (``restore``, also how a collection's join is put in place).
Split out of :mod:`actors.store.keyspace`.

A mixin of :class:`~actors.store.keyspace.Keyspace`, its only user (why mixins: that module's docstring).
"""

from __future__ import annotations

from actors.protocol.record import Record
from actors.protocol.version import Version
from actors.store.entries import Entry
from actors.store.flush_marks import is_marker, marker_key


class PersistMixin:
    """Snapshot and log access to the keyspace (see the module docstring)."""

    __slots__ = ()

    def peek(self, key: str) -> tuple[Entry | None, tuple[Version, float] | None]:
        """``(entry, tombstone)`` as stored, expired or not, changing nothing (no lazy
        expiry, no counters): what a snapshot or the log writes."""
        entry = self._entries.get(key)
        if entry is None and self._marks is not None and key[:1] == "\x00" and is_marker(key):
            return self._mark_entry(key), None
        return entry, self._tombstones.get(key)

    def all_keys(self) -> tuple[list[str], list[str]]:
        """Every key holding a value (flush markers included), and every key holding a
        tombstone (a snapshot's list)."""
        values = list(self._entries)
        if self._marks:
            values.extend(marker_key(p, self.partitions) for p in self._marks)
        return values, list(self._tombstones)

    def restore(self, record: Record, replicas: tuple[str, ...], wall: float) -> None:
        """Make ``record.key`` hold exactly what a snapshot or log record says (loading:
        an overwrite in file order, not a merge). An expired value is dropped; a tombstone
        is kept until its purge time; a record with neither is a key that was removed."""
        key = record.key
        entry = self._entries.get(key)
        if entry is not None:
            self._remove(key, entry)
        if key in self._tombstones:
            self._drop_tombstone(key)
        if record.purge_at is not None:
            self._tombstone(key, record.version, record.purge_at, wall)
        elif record.deadline is None or record.deadline > wall:
            self.set(key, record.value, record.deadline, record.version, replicas)
