"""Keyspace: the partition index (partition -> its keys), listings and digests.

What a cluster's replicator asks of a keyspace a partition at a time: the keys, a
``(key, version)`` listing, an order-independent digest to compare with a peer's, and
dropping a partition handed off elsewhere. The index is built lazily (see the invariants
in :mod:`actors.store.keyspace`). Split out of that module.

A mixin of :class:`~actors.store.keyspace.Keyspace`, its only user (why mixins: that module's docstring).
"""

from __future__ import annotations

import hashlib

from actors.protocol.collection import Coll, content_digest
from actors.protocol.version import Version
from actors.store.entries import PARTITION_SLOT, VALUE, entry_version
from actors.store.flush_marks import is_marker, marker_key
from actors.store.partition_digests import PartitionDigests

__all__ = ["PartitionsMixin", "item_hash", "listed_version"]



class PartitionsMixin:
    """The keyspace's partition index and what is read through it (see the module docstring)."""

    __slots__ = ()

    @property
    def partition_indexed(self) -> bool:
        """Whether the partition index exists (something asked for a partition)."""
        return self._partitions is not None

    def _partition_index(self) -> list[dict[str, None]]:
        """The partition index, built now (one pass over every key) if it does not exist yet.

        Built values first, then tombstones, each in its own dict's order: deterministic, and
        the same as incremental maintenance would have given whenever there is no tombstone.
        """
        parts = self._partitions
        if parts is None:
            parts = [{} for _ in range(self.partitions)]
            slot_of = self._slot_of
            for key in self._entries:
                p, b = slot_of(key)
                parts[p][key] = b
            for key in self._tombstones:
                p, b = slot_of(key)
                parts[p][key] = b
            self._partitions = parts
            self.used_bytes += PARTITION_SLOT * (len(self._entries) + len(self._tombstones))
        return parts

    def _unpartition(self, key: str) -> None:
        parts = self._partitions
        if parts is not None and parts[self._partition_of(key)].pop(key, None) is not None:  # was there
            self.used_bytes -= PARTITION_SLOT

    def partition_keys(self, partition: int) -> list[str]:
        return list(self._partition_index()[partition])

    def partition_sizes(self) -> list[int]:
        return [len(keys) for keys in self._partition_index()]

    def listing(self, partition: int, buckets: frozenset[int] | None = None) -> tuple[tuple[str, Version], ...]:
        """``(key, version)`` of every value and tombstone in ``partition`` (only those in
        ``buckets``, its sub-buckets, when given: :func:`actors.store.partitions.slot_of`).

        An expired value lists with its own version, exactly as the tombstone it turns
        into would, so replicas that expired it at different moments still agree.
        """
        return tuple((key, version) for key, version, _ in self._slotted_listing(partition, buckets))

    def _slotted_listing(self, partition: int, buckets: frozenset[int] | None = None) -> list[tuple[str, Version, int]]:
        """:meth:`listing` with each item's sub-bucket (the index holds it: no hashing)."""
        entries = self._entries
        tombs = self._tombstones
        out = []
        for key, b in self._partition_index()[partition].items():
            if buckets is not None and b not in buckets:
                continue
            entry = entries.get(key)
            if entry is None:
                out.append((key, tombs[key][0], b))
            elif type(entry[VALUE]) is Coll:
                out.append((key, listed_version(entry_version(entry), entry[VALUE]), b))
            else:
                out.append((key, entry_version(entry), b))
        mark = None if self._marks is None else self._marks.get(partition)
        if mark is not None:
            key = marker_key(partition, self.partitions)
            b = self._slot_of(key)[1]
            if buckets is None or b in buckets:
                out.append((key, mark, b))
        return out

    def _held_digests(self) -> PartitionDigests:
        digests = self._digests
        if digests is None:
            digests = self._digests = PartitionDigests(
                self.partitions, self._listed_version, self._slotted_listing, self._slot_of, item_hash
            )
        return digests

    def digest(self, partition: int) -> int:
        """An order-independent 64-bit digest of :meth:`listing` (XOR of item hashes),
        held and kept up to date once asked for: a round costs the keys changed since."""
        return self._held_digests().digest(partition)

    def bucket_digests(self, partition: int) -> tuple[int, ...]:
        """The digest of each sub-bucket of ``partition`` (:meth:`listing` with ``buckets``),
        held as :meth:`digest` is; they XOR to :meth:`digest`."""
        return self._held_digests().buckets(partition)

    def partition_size(self, partition: int) -> int:
        return len(self._partition_index()[partition])

    def _listed_version(self, key: str) -> Version | None:
        """``key``'s version in its partition's :meth:`listing` now; None: not listed."""
        entry = self._entries.get(key)
        if entry is not None:
            version = entry_version(entry)
            return listed_version(version, entry[VALUE]) if type(entry[VALUE]) is Coll else version
        tomb = self._tombstones.get(key)
        if tomb is not None:
            return tomb[0]
        if self._marks is not None and key[:1] == "\x00" and is_marker(key):
            partition = self._partition_of(key)
            if key == marker_key(partition, self.partitions):
                return self._marks.get(partition)
        return None

    def _changing(self, key: str) -> None:
        """``key`` is about to change (value, version, tombstone, marker; set, delete,
        expiry, eviction, purge, drop): the held digests and the persistence tap hear it."""
        if self._digests is not None:
            self._digests.changing(key)
        if self.tap is not None:
            self.tap(key)

    def drop_partition(self, partition: int) -> int:
        """Forget every value and tombstone of ``partition`` (handed off elsewhere)."""
        if self._marks is not None:
            self._marks.pop(partition, None)
        keys = list(self._partition_index()[partition])
        for key in keys:
            entry = self._entries.get(key)
            if entry is not None:
                self._remove(key, entry)
            elif key in self._tombstones:
                self._drop_tombstone(key)
        if self._digests is not None:  # its marker went without a change call
            self._digests.forget(partition)
        return len(keys)


def listed_version(version: Version, coll: Coll) -> Version:
    """A collection's version in a listing: its newest version, the node id followed by
    ``\\x00`` (no node id has it: ids are printable) and a digest of the whole state, so
    replicas with the same newest version but different fields differ (anti-entropy
    exchanges both ways then: ``actors.cluster.sync_rounds.diff_listings``)."""
    return Version(version.wall_ms, version.logical, f"{version.node_id}\x00{content_digest(coll)}")


def item_hash(key: str, version: Version) -> int:
    text = f"{key}\x00{version.wall_ms}.{version.logical}.{version.node_id}"
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")
