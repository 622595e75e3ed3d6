"""Per-partition digests kept up to date as keys change, so an anti-entropy round costs
what changed since the last one, not every key of the partition.

A partition's digest is the XOR of ``item_hash(key, listed version)`` over its listing
(:meth:`actors.store.keyspace.Keyspace.listing`). Recomputing it per round made every
round O(keys in the partition): a 3-node cluster filled with MSET spent a third of its
CPU hashing listings at 250k keys and slowed to ~150 keys/s near 1M (session 24).

Here a partition's digest, once asked for, is held as the XOR of its *settled* keys; a
key about to change (:meth:`changing`, called where the keyspace calls its persistence
tap) has its old item XORed out and is marked unsettled; asking for the digest XORs the
unsettled keys' current items back in. Each change costs at most two hashes, each digest
the keys changed since the last one. A partition never asked for costs nothing.

Invariant: for every partition with a held digest, ``held ^ XOR(current items of its
unsettled keys) == XOR(item_hash over its listing)``.
"""

from __future__ import annotations

from typing import Callable

from actors.protocol.version import Version

__all__ = ["PartitionDigests"]


class PartitionDigests:
    """The held digests of one keyspace's partitions (sans-IO, no clock).

    ``item(key)`` is the key's listed version now (None: not listed), ``listing(p)`` the
    partition's full listing (used once per partition, and after :meth:`forget`),
    ``partition_of(key)`` its partition, ``item_hash`` the per-item hash."""

    __slots__ = ("_held", "_unsettled", "_item", "_listing", "_partition_of", "_hash", "hashed")

    def __init__(
        self,
        partitions: int,
        item: Callable[[str], Version | None],
        listing: Callable[[int], tuple[tuple[str, Version], ...]],
        partition_of: Callable[[str], int],
        item_hash: Callable[[str, Version], int],
    ) -> None:
        #: partition -> the XOR of its settled keys' items; None: not held (computed when asked).
        self._held: list[int | None] = [None] * partitions
        #: partition -> keys whose item is not in ``_held`` (dicts as ordered sets).
        self._unsettled: list[dict[str, None]] = [{} for _ in range(partitions)]
        self._item = item
        self._listing = listing
        self._partition_of = partition_of
        self._hash = item_hash
        #: Item hashes computed so far (the work done; tests count it).
        self.hashed = 0

    def changing(self, key: str) -> None:
        """``key`` is about to change (value, version, tombstone, marker, gone)."""
        p = self._partition_of(key)
        held = self._held[p]
        if held is None:
            return
        unsettled = self._unsettled[p]
        if key in unsettled:
            return  # its old item is already out
        version = self._item(key)
        if version is not None:
            self.hashed += 1
            self._held[p] = held ^ self._hash(key, version)
        unsettled[key] = None

    def digest(self, partition: int) -> int:
        """The partition's digest: held and settled, or computed from its listing once."""
        held = self._held[partition]
        unsettled = self._unsettled[partition]
        if held is None:
            held = 0
            listing = self._listing(partition)
            for key, version in listing:
                held ^= self._hash(key, version)
            self.hashed += len(listing)
        else:
            for key in unsettled:
                version = self._item(key)
                if version is not None:
                    self.hashed += 1
                    held ^= self._hash(key, version)
        unsettled.clear()
        self._held[partition] = held
        return held

    def forget(self, partition: int) -> None:
        """Drop what is held for ``partition`` (computed afresh when next asked)."""
        self._held[partition] = None
        self._unsettled[partition].clear()
