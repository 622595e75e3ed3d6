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

Each partition's digest is also held per sub-bucket (:data:`~actors.store.partitions.SUB_BUCKETS`
of them, a key's from :func:`~actors.store.partitions.slot_of`): while writes are in flight
nearly every partition's digest differs between two replicas at every anti-entropy round,
and listing whole partitions then made each round O(keys / partitions) on both sides (a
fill fell under 1k keys/s by 350k keys, session 24). Comparing sub-bucket digests first
lists only the sub-buckets that differ (Cassandra's and Dynamo's Merkle trees, one level).

Invariant: for every partition with a held digest, and each of its sub-buckets b,
``held[b] ^ XOR(current items of its unsettled keys in b) == XOR(item_hash over its
listing's items in b)``, and the partition's digest is the XOR over its sub-buckets.
"""

from __future__ import annotations

import struct
from array import array
from typing import Callable

from actors.protocol.version import Version
from actors.store.partitions import SUB_BUCKETS

__all__ = ["PartitionDigests", "differing_buckets", "pack_digests"]


class PartitionDigests:
    """The held digests of one keyspace's partitions and their sub-buckets (sans-IO, no clock).

    ``item(key)`` is the key's listed version now (None: not listed), ``listing(p)`` the
    partition's full listing with each item's sub-bucket (used once per partition, and
    after :meth:`forget`), ``slot_of(key)`` its ``(partition, sub-bucket)``, ``item_hash``
    the per-item hash."""

    __slots__ = ("_held", "_whole", "_unsettled", "_item", "_listing", "_slot_of", "_hash", "hashed")

    def __init__(
        self,
        partitions: int,
        item: Callable[[str], Version | None],
        listing: Callable[[int], list[tuple[str, Version, int]]],
        slot_of: Callable[[str], tuple[int, int]],
        item_hash: Callable[[str, Version], int],
    ) -> None:
        #: partition -> the XOR of its settled keys' items per sub-bucket; None: not held
        #: (computed when asked).
        self._held: list[array[int] | None] = [None] * partitions
        #: partition -> the XOR of its held sub-bucket digests (its digest when settled).
        self._whole: list[int] = [0] * partitions
        #: partition -> keys whose item is not in ``_held``, each with its sub-bucket
        #: (dicts as ordered sets).
        self._unsettled: list[dict[str, int]] = [{} for _ in range(partitions)]
        self._item = item
        self._listing = listing
        self._slot_of = slot_of
        self._hash = item_hash
        #: Item hashes computed so far (the work done; tests count it).
        self.hashed = 0

    def changing(self, key: str) -> None:
        """``key`` is about to change (value, version, tombstone, marker, gone)."""
        p, b = self._slot_of(key)
        held = self._held[p]
        if held is None:
            return
        unsettled = self._unsettled[p]
        if key in unsettled:
            return  # its old item is already out
        version = self._item(key)
        if version is not None:
            self.hashed += 1
            h = self._hash(key, version)
            held[b] ^= h
            self._whole[p] ^= h
        unsettled[key] = b

    def _settled(self, partition: int) -> array[int]:
        """The partition's sub-bucket digests, settled now (computed from its listing once)."""
        held = self._held[partition]
        unsettled = self._unsettled[partition]
        whole = self._whole[partition]
        if held is None:
            held = array("Q", bytes(8 * SUB_BUCKETS))
            whole = 0
            listing = self._listing(partition)
            for key, version, b in listing:
                h = self._hash(key, version)
                held[b] ^= h
                whole ^= h
            self.hashed += len(listing)
            self._held[partition] = held
        else:
            for key, b in unsettled.items():
                version = self._item(key)
                if version is not None:
                    self.hashed += 1
                    h = self._hash(key, version)
                    held[b] ^= h
                    whole ^= h
        self._whole[partition] = whole
        unsettled.clear()
        return held

    def digest(self, partition: int) -> int:
        """The partition's digest: the XOR of its sub-buckets' (:meth:`buckets`)."""
        self._settled(partition)
        return self._whole[partition]

    def buckets(self, partition: int) -> tuple[int, ...]:
        """The digest of each of the partition's sub-buckets."""
        return tuple(self._settled(partition))

    def forget(self, partition: int) -> None:
        """Drop what is held for ``partition`` (computed afresh when next asked)."""
        self._held[partition] = None
        self._whole[partition] = 0
        self._unsettled[partition].clear()


def pack_digests(digests: tuple[int, ...]) -> bytes:
    """Sub-bucket digests as they travel: 8 bytes each, big-endian, in sub-bucket order."""
    return struct.pack(f">{len(digests)}Q", *digests)


def differing_buckets(mine: bytes, theirs: bytes) -> tuple[int, ...]:
    """The sub-buckets whose packed digests (:func:`pack_digests`) differ, in order."""
    return tuple(i for i in range(len(mine) // 8) if mine[8 * i : 8 * i + 8] != theirs[8 * i : 8 * i + 8])
