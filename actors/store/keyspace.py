"""The keyspace: entries with deadlines and versions, tombstones, lazy expiry, and the
indexes the janitor and the replicator need.

A plain object (no actor, no clock): the :class:`~actors.store.actor.Store` actor owns one and
feeds it the current wall time. Invariants:

- an entry whose ``deadline <= wall`` is a miss the moment it is read, whatever the
  janitor has done (lazy expiry), and it is deleted then;
- writes are last-write-wins on :class:`~actors.protocol.version.Version`: a write or delete
  older than (or equal to) what the key holds, live or tombstone, changes nothing, so
  replicas converge whatever order writes reach them in;
- when ``tombstone_ttl > 0`` (a replicated cluster), deletes and expiries leave a
  tombstone carrying the version until ``purge_at``, so a stale replica cannot bring the
  key back; a single-copy node keeps none;
- every key with a deadline is in ``_volatile`` exactly once (its position in
  ``_volatile_pos``), so the janitor samples volatile keys in O(1) each;
- the partition index (partition -> its keys) exists only once something asked for it
  (a digest, listing, drop or size of a partition: a cluster's replicator), built in one
  pass over the keys then; from then on every key, live or tombstone, is in exactly one
  partition of it, so a partition's digest or listing costs O(keys in the partition). A
  node that never talks to a replica never pays for it (Redis keeps its slot -> keys
  index only in cluster mode for the same reason);
- ``used_bytes`` is the sum of the sizes of all entries and tombstones, plus
  :data:`PARTITION_SLOT` per key while the partition index exists.

Iteration orders depend only on the order of operations, never on string hashing, so a
seeded RNG samples the same keys in every run. A partition lists its keys in the order
they last became present (value or tombstone) since the index was built; the build itself
lists a partition's values, then its tombstones, each in their own dict's order.

Layout: this module holds the class, its reads and its plain-record writes; the rest of
:class:`Keyspace` is in mixins of one concern each (this class is their only user):
:mod:`~actors.store.keyspace_colls` (hash and set merges),
:mod:`~actors.store.keyspace_expiry` (tombstones, expiry, the volatile index),
:mod:`~actors.store.keyspace_partitions` (the partition index, listings, digests),
:mod:`~actors.store.keyspace_persist` (what snapshots and the log read and load) and
:mod:`~actors.store.keyspace_flush` (flush markers, clear). The entry layout and its
sizes are :mod:`actors.store.entries`, re-exported here. Mixins rather than functions taking
the keyspace's dicts: their methods read and write half a dozen of its slots
(``_entries``, ``_tombstones``, ``_partitions``, ``used_bytes``, the counters, ``tap``) and
call each other; the mixins add no ``__slots__`` and no state of their own.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable

from actors.protocol.collection import Coll, coll_kind
from actors.protocol.record import Record
from actors.protocol.version import ZERO, Version, shared_logical
from actors.store.entries import (
    DEADLINE,
    META,
    PARTITION_SLOT,
    TOMBSTONE_SIZE,
    VALUE,
    VLOGICAL,
    VWALL,
    Entry,
    EntryDict,
    TrackedEntry,
    entry_replicas,
    entry_size,
    entry_version,
)
from actors.store.flush_marks import is_marker
from actors.store.keyspace_colls import _GONE, _UNCHANGED, CollectionsMixin
from actors.store.keyspace_expiry import ExpiryMixin
from actors.store.keyspace_flush import FlushMixin
from actors.store.keyspace_partitions import PartitionsMixin, item_hash, listed_version
from actors.store.keyspace_persist import PersistMixin
from actors.store.partition_digests import PartitionDigests
from actors.store.partitions import DEFAULT_PARTITIONS, slot_lookup
from actors.store.sizing import BYTES_HEADER as _BYTES, ENTRY_OVERHEAD, VOLATILE_OVERHEAD, estimate_size

if TYPE_CHECKING:
    from actors.store.eviction import Evictor

__all__ = [
    "DEADLINE",
    "Entry",
    "ENTRY_OVERHEAD",
    "EntryDict",
    "Keyspace",
    "META",
    "PARTITION_SLOT",
    "TOMBSTONE_SIZE",
    "TrackedEntry",
    "VALUE",
    "VLOGICAL",
    "VOLATILE_OVERHEAD",
    "VWALL",
    "entry_replicas",
    "entry_size",
    "entry_version",
    "item_hash",
    "listed_version",
]


class Keyspace(CollectionsMixin, ExpiryMixin, PartitionsMixin, FlushMixin, PersistMixin):
    __slots__ = (
        "_digests",
        "_entries",
        "_last_wall",
        "_mark_max",
        "_marks",
        "_metas",
        "_partition_of",
        "_partitions",
        "_purge_heap",
        "_slot_of",
        "_tombstones",
        "_tracked",
        "_volatile",
        "_volatile_pos",
        "deletes",
        "evicted",
        "evictor",
        "expired_active",
        "expired_lazy",
        "hits",
        "max_memory",
        "misses",
        "partitions",
        "repairs_skipped_full",
        "sets",
        "tap",
        "tombstone_ttl",
        "used_bytes",
    )

    def __init__(
        self,
        partitions: int = DEFAULT_PARTITIONS,
        tombstone_ttl: float = 0.0,
        max_memory: int = 0,
        evictor: Evictor | None = None,
    ) -> None:
        self._entries: dict[str, Entry] = EntryDict()
        #: The ``wall_ms`` object of the last version stored: entries of one millisecond
        #: share it, whatever made their versions (our clock, or a peer's message decoded).
        self._last_wall = 0
        #: Bytes (our estimate, ``used_bytes``) above which writes evict or are refused; 0: none.
        self.max_memory = max_memory
        self.evictor = evictor if max_memory else None
        #: Whether entries are :class:`TrackedEntry` objects (else exact tuples).
        self._tracked = self.evictor is not None and self.evictor.tracks_keys
        #: One shared ``(node_id, replicas)`` tuple per writer and owner set (the entries' meta).
        self._metas: dict[tuple[str, tuple[str, ...]], tuple[str, tuple[str, ...]]] = {}
        self._tombstones: dict[str, tuple[Version, float]] = {}
        #: Flush markers (actors.store.flush_marks): partition -> flush version; None: none yet.
        self._marks: dict[int, Version] | None = None
        self._mark_max = ZERO
        self._purge_heap: list[tuple[float, str]] = []
        self._volatile: list[str] = []
        self._volatile_pos: dict[str, int] = {}
        self.partitions = partitions
        #: partition -> its keys, each with its sub-bucket (actors.store.partitions.slot_of);
        #: None until first needed.
        self._partitions: list[dict[str, int]] | None = None
        slot = slot_lookup(partitions)
        self._partition_of: Callable[[str], int] = lambda key: slot(key)[0]
        self._slot_of: Callable[[str], tuple[int, int]] = slot
        self.tombstone_ttl = tombstone_ttl
        self.used_bytes = 0
        self.hits = 0
        self.misses = 0
        self.sets = 0
        self.deletes = 0
        self.expired_lazy = 0
        self.expired_active = 0
        self.evicted = 0
        self.repairs_skipped_full = 0
        #: Called with a key just before anything about it changes (value, deadline,
        #: tombstone; set, delete, expiry, eviction, purge, drop), while persistence is on:
        #: :class:`actors.persist.tap.Tap` logs it and keeps snapshots point-in-time.
        self.tap: Callable[[str], None] | None = None
        #: Held per-partition digests (:mod:`actors.store.partition_digests`); None until
        #: something asks for a digest (a node alone never does).
        self._digests: PartitionDigests | None = None

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def volatile_count(self) -> int:
        return len(self._volatile)

    @property
    def tombstone_count(self) -> int:
        return len(self._tombstones)

    # --- reads --------------------------------------------------------------------

    def entry(self, key: str, wall: float) -> Entry | None:
        """The live entry for ``key`` (expiring it lazily), without touching hit counters."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        deadline = entry[DEADLINE]
        if deadline is not None and deadline <= wall:
            self._expire(key, entry, wall)
            self.expired_lazy += 1
            return None
        return entry

    def get(self, key: str, wall: float) -> tuple[Any, bool]:
        return self.get_all((key,), wall)[0]

    def get_all(self, keys: Iterable[str], wall: float) -> tuple[tuple[Any, bool], ...]:
        """Per key, in order (what a ``Read`` answers): ``(value, True)`` for a live entry,
        else ``(None, False)``, counted as hits and misses. :meth:`entry` inlined: a run
        of gets costs one call, not two a key."""
        entries = self._entries
        evictor = self.evictor
        out: list[tuple[Any, bool]] = []
        hits = misses = 0
        try:
            for key in keys:
                entry = entries.get(key)
                if entry is None:
                    misses += 1
                    out.append(_MISS)
                    continue
                deadline = entry[DEADLINE]
                if deadline is not None and deadline <= wall:
                    self._expire(key, entry, wall)
                    self.expired_lazy += 1
                    misses += 1
                    out.append(_MISS)
                    continue
                hits += 1
                if evictor is not None:
                    evictor.touched(entry)
                out.append((entry[VALUE], True))
        finally:
            self.hits += hits
            self.misses += misses
        return tuple(out)

    def record(self, key: str, wall: float) -> Record | None:
        """Everything a replica knows about ``key``: a live value, a tombstone, or None."""
        entry = self.entry(key, wall)
        if entry is not None:
            return Record(key, entry[VALUE], entry[DEADLINE], entry_version(entry))
        tomb = self._tombstones.get(key)
        if tomb is not None:
            return Record(key, None, None, tomb[0], tomb[1])
        if self._marks is not None:
            return self._mark_record(key, wall)
        return None

    # --- writes -------------------------------------------------------------------

    def newest_version(self, key: str) -> Version | None:
        """The version ``key`` holds, value or tombstone (expired values included)."""
        return self._newest(key)

    def _newest(self, key: str) -> Version | None:
        entry = self._entries.get(key)
        if entry is not None:
            return entry_version(entry)
        tomb = self._tombstones.get(key)
        if tomb is not None:
            return tomb[0]
        marks = self._marks
        return None if marks is None else marks.get(self._partition_of(key))

    def set(
        self,
        key: str,
        value: Any,
        deadline: float | None,
        version: Version = ZERO,
        replicas: tuple[str, ...] = (),
        wall: float | None = None,
    ) -> bool:
        """Store a value unless the key already holds this version or a newer one."""
        return self.set_all(((key, value, deadline),), version, replicas, wall)[0]

    def set_all(
        self,
        items: Iterable[tuple[str, Any, float | None]],
        version: Version = ZERO,
        replicas: tuple[str, ...] = (),
        wall: float | None = None,
    ) -> list[bool]:
        """:meth:`set` for each ``(key, value, deadline)`` of one write (one version, one
        replica set): per item, whether it was stored. What depends only on the version
        and the replicas (the shared ``wall_ms`` and logical ints, the interned meta) is
        worked out once for the whole write.

        A :class:`~actors.protocol.collection.Coll` value is a field write (a delta): it
        is refused as any write is when the key holds this version or a newer one, else
        merged field by field into what the key holds (:meth:`_merge_delta`); ``wall``
        (default: the write's version's time) decides whether what it holds has expired."""
        wall_ms, logical, node_id = version
        if wall_ms == self._last_wall:
            wall_ms = self._last_wall
        else:
            self._last_wall = wall_ms
        logical = shared_logical(logical)
        meta = (node_id, replicas)
        meta = self._metas.setdefault(meta, meta)
        zero = version is ZERO
        entries = self._entries
        tombstones = self._tombstones
        parts = self._partitions
        tracked = self._tracked
        evictor = self.evictor
        tap = self.tap if self._digests is None else self._changing
        marks = self._marks
        out: list[bool] = []
        sets = 0
        for key, value, deadline in items:
            if key[:1] == "\x00" and is_marker(key):  # a flush (actors.store.flush_marks)
                out.append(self._flush_mark(key, version))
                continue
            if marks is not None and version <= self._mark_max and version <= marks.get(self._partition_of(key), ZERO):
                out.append(False)  # older than its partition's flush
                continue
            # Sized before anything changes: an entry is stored and charged, or neither.
            # ``size`` is what the value costs (estimate_size inlined for bytes, what RESP
            # stores); the entry's own overhead and key are added for a key new here, and
            # an overwrite subtracts what the old value cost (the old entry_size less the
            # same overhead and key).
            if type(value) is bytes:
                size = _BYTES + len(value)
            else:
                if type(value) is Coll:
                    merged = self._merge_delta(key, value, deadline, version, wall)
                    if merged is None:
                        out.append(False)
                        continue
                    if merged is _GONE:  # the last field or member went: no key (a single copy)
                        gone = entries.get(key)
                        if gone is not None:
                            self._remove(key, gone)
                        out.append(True)
                        continue
                    if merged is _UNCHANGED:
                        out.append(True)
                        continue
                    value, deadline = merged
                    if coll_kind(value) is None:  # every field deleted: forgotten after the tombstone time
                        heapq.heappush(self._purge_heap, (version.wall_ms / 1000 + self.tombstone_ttl, key))
                size = estimate_size(value)
            if deadline is not None:
                size += VOLATILE_OVERHEAD
            old = entries.get(key)
            if old is not None:
                # Compared as a plain tuple: the same order as its Version, without making
                # one; an older millisecond (the common overwrite) decides it at once.
                if not zero and old[VWALL] >= wall_ms and version <= (old[VWALL], old[VLOGICAL], old[META][0]):
                    out.append(False)
                    continue
                if tap is not None:
                    tap(key)
                old_value = old[VALUE]
                size -= _BYTES + len(old_value) if type(old_value) is bytes else estimate_size(old_value)
                if old[DEADLINE] is not None:
                    size -= VOLATILE_OVERHEAD
                    if deadline is None:
                        self._unindex(key)
                elif deadline is not None:
                    self._index(key)
            else:
                size += ENTRY_OVERHEAD + len(key)
                tomb = tombstones.get(key)
                if tomb is not None:
                    if version <= tomb[0]:
                        out.append(False)
                        continue
                    self._drop_tombstone(key)
                elif tap is not None:
                    tap(key)
                if parts is not None:
                    p, b = self._slot_of(key)
                    parts[p][key] = b
                    self.used_bytes += PARTITION_SLOT
                if deadline is not None:
                    self._index(key)
            if tracked:
                entry: Entry = TrackedEntry(value, wall_ms, logical, meta, deadline)
            else:
                entry = (value, wall_ms, logical, meta, deadline)
            entries[key] = entry
            if evictor is not None:
                evictor.inserted(key, entry, old)
            self.used_bytes += size  # (an overwrite: the difference from the old entry)
            sets += 1
            out.append(True)
        self.sets += sets
        return out

    def delete(self, key: str, wall: float, version: Version = ZERO, purge_at: float | None = None) -> bool:
        """Delete ``key`` as of ``version``; True if a live entry was removed.

        An entry newer than ``version`` survives. With a ``purge_at`` in the future (and
        tombstones enabled) a tombstone remembers the delete until then.
        """
        entry = self.entry(key, wall)
        if entry is not None and version is not ZERO and entry_version(entry) > version:
            return False
        if entry is not None:
            self._remove(key, entry)
            self.deletes += 1
        if purge_at is not None and self.tombstone_ttl > 0:
            self._tombstone(key, version, purge_at, wall)
        return entry is not None

    def apply(self, record: Record, wall: float) -> bool:
        """Merge a record from a peer (repair, hint, stream); True if it changed anything."""
        if record.key[:1] == "\x00" and is_marker(record.key):
            return self._flush_mark(record.key, record.version)
        if type(record.value) is Coll or type((self._entries.get(record.key) or _NO_ENTRY)[VALUE]) is Coll:
            return self._apply_merge(record, wall)
        if record.purge_at is None:
            if record.deadline is not None and record.deadline <= wall:
                if self.tombstone_ttl <= 0:
                    return False
                record = Record(record.key, None, None, record.version, record.deadline + self.tombstone_ttl)
            else:
                if self.max_memory and self.used_bytes >= self.max_memory and record.key not in self._entries:
                    # A full node does not take on keys by repair (it may have just evicted them).
                    self.repairs_skipped_full += 1
                    return False
                return self.set(record.key, record.value, record.deadline, record.version)
        newest = self._newest(record.key)
        if newest is not None and record.version <= newest:
            return False
        entry = self._entries.get(record.key)
        if entry is not None:
            self._remove(record.key, entry)
        return self._tombstone(record.key, record.version, record.purge_at, wall)

    # --- internals ----------------------------------------------------------------

    def make_room(self, wall: float) -> bool:
        """Evict (by policy) until under ``max_memory``; False if still at or over it."""
        if not self.max_memory:
            return True
        evictor = self.evictor
        if evictor is not None:
            evictor.tick(wall)
        while self.used_bytes >= self.max_memory:
            key = evictor.victim(self) if evictor is not None else None
            if key is None:
                return False
            self._remove(key, self._entries[key])
            self.evicted += 1
        return True

    def _remove(self, key: str, entry: Entry) -> None:
        self._changing(key)
        del self._entries[key]
        if self.evictor is not None:
            self.evictor.removed(key, entry, self._entries)
        deadline = entry[DEADLINE]
        self.used_bytes -= entry_size(key, entry[VALUE], deadline)
        self._unpartition(key)
        if deadline is not None:
            self._unindex(key)


#: A miss, as :meth:`Keyspace.get_all` answers it.
_MISS = (None, False)

#: What a key without an entry reads as in a type check (``_NO_ENTRY[VALUE]`` is None).
_NO_ENTRY = (None,)
