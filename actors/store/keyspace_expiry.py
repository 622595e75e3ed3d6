"""Keyspace: tombstones, their purge, expiry, and the index of keys with a deadline.

Tombstones (deletes and expiries remembered until ``purge_at`` in a replicated cluster)
and the volatile-key index the janitor samples are one concern: what happens to a key
when it stops holding a value. Split out of :mod:`actors.store.keyspace`.

A mixin of :class:`~actors.store.keyspace.Keyspace`, its only user (why mixins: that module's docstring).
"""

from __future__ import annotations

import heapq
import random

from actors.protocol.collection import Coll, coll_kind
from actors.protocol.version import ZERO, Version
from actors.store.entries import DEADLINE, PARTITION_SLOT, TOMBSTONE_SIZE, VALUE, Entry, entry_version



class ExpiryMixin:
    """Tombstones, purges, expiry and the volatile-key index of the keyspace (see the module docstring)."""

    __slots__ = ()

    def _tombstone(self, key: str, version: Version, purge_at: float, wall: float) -> bool:
        if purge_at <= wall:
            return False
        marks = self._marks
        if marks is not None and version <= marks.get(self._partition_of(key), ZERO):
            return False  # older than its partition's flush
        old = self._tombstones.get(key)
        if old is not None:
            if version <= old[0]:
                return False
        self._changing(key)
        if old is None:
            self.used_bytes += TOMBSTONE_SIZE + len(key)
            parts = self._partitions
            if parts is not None:
                p, b = self._slot_of(key)
                parts[p][key] = b
                self.used_bytes += PARTITION_SLOT
        self._tombstones[key] = (version, purge_at)
        heapq.heappush(self._purge_heap, (purge_at, key))
        return True

    def _drop_tombstone(self, key: str) -> None:
        self._changing(key)
        del self._tombstones[key]
        self.used_bytes -= TOMBSTONE_SIZE + len(key)
        self._unpartition(key)

    def purge_tombstones(self, wall: float, limit: int = 10_000) -> int:
        """Forget up to ``limit`` tombstones whose ``purge_at`` has passed."""
        heap = self._purge_heap
        done = 0
        while heap and heap[0][0] <= wall and done < limit:
            purge_at, key = heapq.heappop(heap)
            tomb = self._tombstones.get(key)
            if tomb is not None and tomb[1] == purge_at:
                self._drop_tombstone(key)
                done += 1
            elif tomb is None:
                done += self._purge_emptied(key, wall)
        return done

    def _purge_emptied(self, key: str, wall: float) -> int:
        """Forget a hash or set whose every field was deleted, once its newest version is
        older than the tombstone time (what it remembers is then as old as what a key
        tombstone is kept for); 1 if it went."""
        entry = self._entries.get(key)
        if entry is None or type(entry[VALUE]) is not Coll or coll_kind(entry[VALUE]) is not None:
            return 0
        if entry_version(entry).wall_ms > (wall - self.tombstone_ttl) * 1000:
            return 0  # written again since (its own purge time was pushed then)
        self._remove(key, entry)
        return 1

    def sample_volatile(self, rng: random.Random, n: int) -> list[str]:
        """Up to ``n`` distinct keys that carry a deadline, chosen by ``rng``."""
        volatile = self._volatile
        count = len(volatile)
        if count <= n:
            return list(volatile)
        return [volatile[i] for i in rng.sample(range(count), n)]

    def expire_if_due(self, key: str, wall: float) -> bool:
        """Delete ``key`` if its deadline has passed (active expiry); True if it did."""
        entry = self._entries.get(key)
        if entry is None:
            return False
        deadline = entry[DEADLINE]
        if deadline is None or deadline > wall:
            return False
        self._expire(key, entry, wall)
        self.expired_active += 1
        return True

    def _expire(self, key: str, entry: Entry, wall: float) -> None:
        self._remove(key, entry)
        if self.tombstone_ttl > 0:
            self._tombstone(key, entry_version(entry), entry[DEADLINE] + self.tombstone_ttl, wall)


    # --- the volatile-key index ----------------------------------------------------

    def _index(self, key: str) -> None:
        self._volatile_pos[key] = len(self._volatile)
        self._volatile.append(key)

    def _unindex(self, key: str) -> None:
        pos = self._volatile_pos.pop(key)
        last = self._volatile.pop()
        if last != key:
            self._volatile[pos] = last
            self._volatile_pos[last] = pos
