"""The keyspace: entries with deadlines, lazy expiry, and an index of volatile keys.

A plain object (no actor, no clock): the :class:`~actors.store.Store` actor owns one and
feeds it the current wall time. Invariants:

- an entry whose ``deadline <= wall`` is a miss the moment it is read, whatever the
  janitor has done (lazy expiry), and it is deleted then;
- every key with a deadline is in ``_volatile`` exactly once (its position in
  ``_volatile_pos``), so the janitor samples volatile keys in O(1) each;
- ``used_bytes`` is the sum of ``entry.size`` over all entries.

Iteration order of the volatile list depends only on the order of operations, never on
string hashing, so a seeded RNG samples the same keys in every run.
"""

from __future__ import annotations

import random
from typing import Any

from actors.sizing import ENTRY_OVERHEAD, estimate_size
from actors.version import ZERO, Version

__all__ = ["Entry", "Keyspace"]


class Entry:
    """One stored value. ``replicas`` lists the node ids holding a copy (the seed's ReplicaIDs)."""

    __slots__ = ("deadline", "replicas", "size", "value", "version")

    def __init__(
        self,
        value: Any,
        deadline: float | None,
        version: Version,
        size: int,
        replicas: tuple[str, ...] = (),
    ) -> None:
        self.value = value
        self.deadline = deadline
        self.version = version
        self.size = size
        self.replicas = replicas


class Keyspace:
    __slots__ = (
        "_entries",
        "_volatile",
        "_volatile_pos",
        "deletes",
        "expired_active",
        "expired_lazy",
        "hits",
        "misses",
        "sets",
        "used_bytes",
    )

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._volatile: list[str] = []
        self._volatile_pos: dict[str, int] = {}
        self.used_bytes = 0
        self.hits = 0
        self.misses = 0
        self.sets = 0
        self.deletes = 0
        self.expired_lazy = 0
        self.expired_active = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def volatile_count(self) -> int:
        return len(self._volatile)

    def entry(self, key: str, wall: float) -> Entry | None:
        """The live entry for ``key`` (expiring it lazily), without touching hit counters."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        deadline = entry.deadline
        if deadline is not None and deadline <= wall:
            self._remove(key, entry)
            self.expired_lazy += 1
            return None
        return entry

    def get(self, key: str, wall: float) -> tuple[Any, bool]:
        entry = self.entry(key, wall)
        if entry is None:
            self.misses += 1
            return None, False
        self.hits += 1
        return entry.value, True

    def set(
        self,
        key: str,
        value: Any,
        deadline: float | None,
        version: Version = ZERO,
        replicas: tuple[str, ...] = (),
    ) -> None:
        size = ENTRY_OVERHEAD + len(key) + estimate_size(value)
        old = self._entries.get(key)
        if old is not None:
            self.used_bytes -= old.size
            if old.deadline is not None and deadline is None:
                self._unindex(key)
            elif old.deadline is None and deadline is not None:
                self._index(key)
        elif deadline is not None:
            self._index(key)
        self._entries[key] = Entry(value, deadline, version, size, replicas)
        self.used_bytes += size
        self.sets += 1

    def delete(self, key: str, wall: float) -> bool:
        """Remove ``key``; True if a live entry was there (an expired one does not count)."""
        entry = self.entry(key, wall)
        if entry is None:
            return False
        self._remove(key, entry)
        self.deletes += 1
        return True

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
        if entry is None or entry.deadline is None or entry.deadline > wall:
            return False
        self._remove(key, entry)
        self.expired_active += 1
        return True

    def _remove(self, key: str, entry: Entry) -> None:
        del self._entries[key]
        self.used_bytes -= entry.size
        if entry.deadline is not None:
            self._unindex(key)

    def _index(self, key: str) -> None:
        self._volatile_pos[key] = len(self._volatile)
        self._volatile.append(key)

    def _unindex(self, key: str) -> None:
        pos = self._volatile_pos.pop(key)
        last = self._volatile.pop()
        if last != key:
            self._volatile[pos] = last
            self._volatile_pos[last] = pos
