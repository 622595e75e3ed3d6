"""Keeping a node under ``--max-memory``: Redis's eviction policies, approximated by
sampling as Redis does.

- ``noeviction``: nothing is evicted; writes that need memory are refused
  (``out_of_memory``) once the node is at its bound. Deletes always work.
- ``allkeys-random``: evict uniformly random keys.
- ``allkeys-lru``: sample ``samples`` (5) random keys, evict the least recently used.
  Recency is a per-second clock (Redis uses the same resolution by default).
- ``allkeys-lfu``: sample 5 keys, evict the least frequently used by Redis's
  logarithmic counter (8 bits, ``lfu-log-factor`` 10, starting at 5, decaying by one per
  minute of idleness, ``lfu-decay-time`` 1).
- ``volatile-ttl``: sample 5 keys that have a TTL, evict the one closest to expiring;
  with no such key it behaves as ``noeviction``.

LRU and LFU keep Redis's eviction pool: the 16 best candidates of recent samples survive
from one eviction to the next, so each eviction picks the worst of many more than 5
keys (Redis 3.0's improvement over plain sampling). volatile-ttl and random sample afresh.

Evictions are a node's own decision: they leave no tombstone and are not replicated (a
cache node dropping a copy must not delete the key cluster-wide). So that anti-entropy
does not refill what was just evicted, a node at its bound skips repairs of keys it does
not hold (counted as ``repairs_skipped_full``).

Random sampling needs O(1) access to a random key, so the ``allkeys-*`` policies keep
every key in a list, its position in the entry, with its access clock and frequency: a
``TrackedEntry`` object rather than a plain entry's tuple, paid only when such a policy is
on (also in garbage collection: unlike plain entries' tuples, these objects stay tracked
by CPython's cyclic GC, so a full collection scans every one of them).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from actors.store.keyspace import DEADLINE

if TYPE_CHECKING:
    from actors.store.keyspace import Entry, Keyspace, TrackedEntry

__all__ = ["EVICTION_POLICIES", "Evictor", "make_evictor"]

EVICTION_POLICIES = ("noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-ttl")

LFU_INIT_VAL = 5
LFU_LOG_FACTOR = 10
LFU_DECAY_MINUTES = 1


class Evictor:
    """Chooses victims for one keyspace. Subclasses keep what their policy needs."""

    #: The ``--eviction-policy`` name this class implements.
    policy = ""
    #: Whether entries carry the sampling position, access clock and frequency.
    tracks_keys = False
    samples = 5

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.keys: list[str] = []
        self.clock = 0  # seconds; one shared int object per second for every entry touched

    def tick(self, wall: float) -> None:
        now = int(wall)
        if now != self.clock:
            self.clock = now

    def inserted(self, key: str, entry: Entry, old: Entry | None) -> None:
        """``entry`` now holds ``key`` (replacing ``old``); both are TrackedEntry objects
        when the policy :attr:`tracks_keys`."""
        if not self.tracks_keys:
            return
        if old is None:
            entry.pos = len(self.keys)  # type: ignore[union-attr]
            self.keys.append(key)
            entry.freq = LFU_INIT_VAL  # type: ignore[union-attr]
        else:
            entry.pos = old.pos  # type: ignore[union-attr]
            entry.freq = old.freq  # type: ignore[union-attr]
        entry.access = self.clock  # type: ignore[union-attr]

    def removed(self, key: str, entry: Entry, entries: dict[str, Entry]) -> None:
        if not self.tracks_keys:
            return
        keys = self.keys
        pos = entry.pos  # type: ignore[union-attr]
        last = keys.pop()
        if last != key:
            keys[pos] = last
            entries[last].pos = pos  # type: ignore[union-attr]

    def touched(self, entry: Entry) -> None:
        """A read hit ``entry``."""

    def victim(self, keyspace: Keyspace) -> str | None:
        return None

    def _sample(self) -> list[str]:
        keys = self.keys
        n = len(keys)
        if n <= self.samples:
            return list(keys)
        rand = self.rng.randrange
        return [keys[rand(n)] for _ in range(self.samples)]


class NoEviction(Evictor):
    policy = "noeviction"


class RandomEviction(Evictor):
    policy = "allkeys-random"
    tracks_keys = True

    def victim(self, keyspace: Keyspace) -> str | None:
        keys = self.keys
        return keys[self.rng.randrange(len(keys))] if keys else None


class PooledEviction(Evictor):
    """Redis's eviction pool: the best ``POOL_SIZE`` candidates seen by recent samples
    are kept across evictions, so a sample of 5 competes with the worst of many."""

    tracks_keys = True
    POOL_SIZE = 16

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.pool: list[tuple[float, str]] = []  # (badness, key), best victim last

    def badness(self, entry: TrackedEntry) -> float:
        raise NotImplementedError

    def victim(self, keyspace: Keyspace) -> str | None:
        entries = keyspace._entries
        pool = self.pool
        in_pool = {key for _, key in pool}
        for key in self._sample():
            if key not in in_pool:
                pool.append((self.badness(entries[key]), key))
        pool.sort()
        del pool[: max(0, len(pool) - self.POOL_SIZE)]
        while pool:
            _, key = pool.pop()
            if key in entries:
                return key
        return None


class LruEviction(PooledEviction):
    policy = "allkeys-lru"

    def touched(self, entry: TrackedEntry) -> None:  # type: ignore[override]
        entry.access = self.clock

    def badness(self, entry: TrackedEntry) -> float:
        return self.clock - entry.access  # type: ignore[no-any-return]


class LfuEviction(PooledEviction):
    policy = "allkeys-lfu"

    def badness(self, entry: TrackedEntry) -> float:
        return 255 - self._decayed(entry)

    def _decayed(self, entry: TrackedEntry) -> int:
        idle_minutes = (self.clock - entry.access) // 60
        return max(0, entry.freq - idle_minutes // LFU_DECAY_MINUTES)  # type: ignore[no-any-return]

    def touched(self, entry: TrackedEntry) -> None:  # type: ignore[override]
        counter = self._decayed(entry)
        if counter < 255:
            base = max(0, counter - LFU_INIT_VAL)
            if self.rng.random() < 1.0 / (base * LFU_LOG_FACTOR + 1):
                counter += 1
        entry.freq = counter
        entry.access = self.clock



class VolatileTtlEviction(Evictor):
    policy = "volatile-ttl"

    def victim(self, keyspace: Keyspace) -> str | None:
        entries = keyspace._entries
        sample = keyspace.sample_volatile(self.rng, self.samples)
        return min(sample, key=lambda k: entries[k][DEADLINE]) if sample else None


_POLICIES: dict[str, type[Evictor]] = {
    cls.policy: cls for cls in (NoEviction, RandomEviction, LruEviction, LfuEviction, VolatileTtlEviction)
}


def make_evictor(policy: str, rng: random.Random) -> Evictor:
    cls = _POLICIES.get(policy)
    if cls is None:
        raise ValueError(f"eviction policy must be one of {', '.join(EVICTION_POLICIES)}, not {policy!r}")
    return cls(rng)
