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
"""

from __future__ import annotations

import hashlib
import heapq
import random
from operator import attrgetter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable, Union

from actors.store.flush_marks import MARKER_VALUE, is_marker, marker_key
from actors.store.partitions import DEFAULT_PARTITIONS, partition_of
from actors.protocol.collection import Coll, coll_kind, content_digest, merge_records, prune
from actors.protocol.record import Record
from actors.store.sizing import ENTRY_OVERHEAD, VOLATILE_OVERHEAD, estimate_size
from actors.protocol.version import ZERO, Version, shared_logical

if TYPE_CHECKING:
    from actors.store.eviction import Evictor

__all__ = [
    "DEADLINE",
    "Entry",
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
]

#: Bytes charged for a tombstone besides its key's characters: the key's str header, its
#: tuple, Version, purge time, the tombstone dict slot and its purge-heap entry; its
#: partition-index slot is :data:`PARTITION_SLOT`, charged while the index exists.
#: Measured on CPython 3.11 (64-bit): 1M tombstones of 10-character keys grow RSS by
#: 344 B each without the index.
TOMBSTONE_SIZE = 335

#: Bytes charged per key (value or tombstone) while the partition index exists: its slot
#: in one of the partitions' dicts, slack included (CPython 3.11, 1M keys in 256
#: partitions: 27 to 34 B/key of RSS, depending on how full the dicts happen to be).
PARTITION_SLOT = 30

# --- entries ----------------------------------------------------------------------
#
# A stored value is an exact tuple ``(value, vwall, vlogical, meta, deadline)``:
#
# - ``vwall`` and ``vlogical``: the version's wall time and logical counter (shared int
#   objects, see :meth:`Keyspace.set`);
# - ``meta``: one shared ``(node_id, replicas)`` tuple per writer and owner set, holding
#   the version's node id and the ids of the nodes with a copy (the Go original's ReplicaIDs);
# - ``deadline``: the wall time the value expires at, or None.
#
# An exact tuple, not an object or a tuple subclass: CPython's cyclic GC stops tracking a
# tuple whose items are all untracked (str, bytes, int, float, None, such tuples) at the
# first collection that finds them so (the shared meta tuples are untracked early), and a
# full collection then only visits it from the dict (:class:`EntryDict`) instead of
# handling one more tracked object: at 1M keys ~25 ms instead of ~100-160 ms
# (``python -m bench.gc_pause``). Five items take 80 bytes with the GC header, the same
# 16-byte size class as four: the deadline costs no memory where there is none. The
# entry's size is recomputed rather than stored.
#
# Eviction policies that sample by access (``Evictor.tracks_keys``) store a
# :class:`TrackedEntry` instead: the same fields, read through the same indexes.

#: Indexes of an entry's fields (a tuple or a :class:`TrackedEntry`).
VALUE, VWALL, VLOGICAL, META, DEADLINE = 0, 1, 2, 3, 4


class TrackedEntry:
    """An entry an eviction policy samples: the five fields of a plain entry, readable by
    the same indexes (``entry[VALUE]``, ...), plus its slot in the evictor's key list
    (``pos``), last access and LFU frequency, which change as the key is read. Eight
    fields, 96 bytes (a GC-tracked object: only under ``allkeys-*`` policies)."""

    __slots__ = ("value", "vwall", "vlogical", "meta", "deadline", "pos", "access", "freq")

    def __init__(
        self, value: Any, vwall: int, vlogical: int, meta: tuple[str, tuple[str, ...]], deadline: float | None
    ) -> None:
        self.value = value
        self.vwall = vwall
        self.vlogical = vlogical
        self.meta = meta
        self.deadline = deadline

    def __len__(self) -> int:
        return 5

    def __getitem__(self, index: int) -> Any:
        return _TRACKED_FIELDS[index](self)


_TRACKED_FIELDS = tuple(attrgetter(name) for name in ("value", "vwall", "vlogical", "meta", "deadline"))

#: What ``Keyspace._entries`` maps keys to.
Entry = Union[tuple[Any, ...], TrackedEntry]


class EntryDict(dict):  # type: ignore[type-arg]
    """The keyspace's key -> entry dict: a plain dict, except that CPython's GC tracks it
    for good (it untracks only exact dicts, at full collections, once no value is tracked).

    Untracked entries would get an exact dict untracked by every full collection, then
    tracked again by the next write (a new tuple is tracked until a collection looks at
    it), which puts it back in the youngest generation: the next generation-0 and
    generation-1 collections would each traverse every value (~20 ms at 1M keys), and the
    next full collection scan them all again to untrack it. Always tracked, the dict stays
    in the oldest generation, and only full collections traverse it.
    """

    __slots__ = ()


def entry_version(entry: Entry) -> Version:
    return Version(entry[VWALL], entry[VLOGICAL], entry[META][0])


def entry_replicas(entry: Entry) -> tuple[str, ...]:
    """The ids of the nodes the entry's writer sent it to (its owners then)."""
    return entry[META][1]  # type: ignore[no-any-return]


def entry_size(key: str, value: Any, deadline: float | None = None) -> int:
    """What an entry is charged in ``used_bytes`` (see :data:`ENTRY_OVERHEAD` and
    :data:`VOLATILE_OVERHEAD`)."""
    size = ENTRY_OVERHEAD + len(key) + estimate_size(value)
    return size if deadline is None else size + VOLATILE_OVERHEAD


class Keyspace:
    __slots__ = (
        "_entries",
        "_last_wall",
        "_mark_max",
        "_marks",
        "_metas",
        "_partition_of",
        "_partitions",
        "_purge_heap",
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
        #: partition -> its keys (dicts as ordered sets); None until first needed.
        self._partitions: list[dict[str, None]] | None = None
        self._partition_of: Callable[[str], int] = lambda key: partition_of(key, partitions)
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
        entry = self.entry(key, wall)
        if entry is None:
            self.misses += 1
            return None, False
        self.hits += 1
        if self.evictor is not None:
            self.evictor.touched(entry)
        return entry[VALUE], True

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
        tap = self.tap
        marks = self._marks
        out: list[bool] = []
        for key, value, deadline in items:
            if key[:1] == "\x00" and is_marker(key):  # a flush (actors.store.flush_marks)
                out.append(self._flush_mark(key, version))
                continue
            if marks is not None and version <= self._mark_max and version <= marks.get(self._partition_of(key), ZERO):
                out.append(False)  # older than its partition's flush
                continue
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
            # Sized before anything changes: an entry is stored and charged, or neither.
            size = entry_size(key, value, deadline)
            old = entries.get(key)
            if old is not None:
                # Compared as a plain tuple: the same order as its Version, without making one.
                if not zero and version <= (old[VWALL], old[VLOGICAL], old[META][0]):
                    out.append(False)
                    continue
                if tap is not None:
                    tap(key)
                old_deadline = old[DEADLINE]
                self.used_bytes -= entry_size(key, old[VALUE], old_deadline)
                if old_deadline is not None and deadline is None:
                    self._unindex(key)
                elif old_deadline is None and deadline is not None:
                    self._index(key)
            else:
                tomb = tombstones.get(key)
                if tomb is not None:
                    if version <= tomb[0]:
                        out.append(False)
                        continue
                    self._drop_tombstone(key)
                elif tap is not None:
                    tap(key)
                if parts is not None:
                    parts[self._partition_of(key)][key] = None
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
            self.used_bytes += size
            self.sets += 1
            out.append(True)
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

    # --- persistence --------------------------------------------------------------

    def peek(self, key: str) -> tuple[Entry | None, tuple[Version, float] | None]:
        """``(entry, tombstone)`` as stored, expired or not, changing nothing (no lazy
        expiry, no counters): what a snapshot or the log writes."""
        entry = self._entries.get(key)
        if entry is None and self._marks is not None and key[:1] == "\x00" and is_marker(key):
            return self._mark_entry(key), None
        return entry, self._tombstones.get(key)

    def _mark_entry(self, key: str) -> Entry | None:
        """A flush marker as the entry a snapshot or the log writes (a value at the flush's
        version), so a node restarted from disk still refuses what the flush deleted."""
        assert self._marks is not None
        partition = self._partition_of(key)
        mark = self._marks.get(partition)
        if mark is None or key != marker_key(partition, self.partitions):
            return None
        return (MARKER_VALUE, mark.wall_ms, mark.logical, (mark.node_id, ()), None)

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

    # --- collections (hashes and sets) ---------------------------------------------

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

    # --- tombstones and expiry ----------------------------------------------------

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
        if self.tap is not None:
            self.tap(key)
        if old is None:
            self.used_bytes += TOMBSTONE_SIZE + len(key)
            parts = self._partitions
            if parts is not None:
                parts[self._partition_of(key)][key] = None
                self.used_bytes += PARTITION_SLOT
        self._tombstones[key] = (version, purge_at)
        heapq.heappush(self._purge_heap, (purge_at, key))
        return True

    def _drop_tombstone(self, key: str) -> None:
        if self.tap is not None:
            self.tap(key)
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

    # --- partitions ---------------------------------------------------------------

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
            part_of = self._partition_of
            for key in self._entries:
                parts[part_of(key)][key] = None
            for key in self._tombstones:
                parts[part_of(key)][key] = None
            self._partitions = parts
            self.used_bytes += PARTITION_SLOT * (len(self._entries) + len(self._tombstones))
        return parts

    def _unpartition(self, key: str) -> None:
        parts = self._partitions
        if parts is not None and parts[self._partition_of(key)].pop(key, 0) is None:  # was there
            self.used_bytes -= PARTITION_SLOT

    def partition_keys(self, partition: int) -> list[str]:
        return list(self._partition_index()[partition])

    def partition_sizes(self) -> list[int]:
        return [len(keys) for keys in self._partition_index()]

    def listing(self, partition: int) -> tuple[tuple[str, Version], ...]:
        """``(key, version)`` of every value and tombstone in ``partition``.

        An expired value lists with its own version, exactly as the tombstone it turns
        into would, so replicas that expired it at different moments still agree.
        """
        entries = self._entries
        tombs = self._tombstones
        out = []
        for key in self._partition_index()[partition]:
            entry = entries.get(key)
            if entry is None:
                out.append((key, tombs[key][0]))
            elif type(entry[VALUE]) is Coll:
                out.append((key, listed_version(entry_version(entry), entry[VALUE])))
            else:
                out.append((key, entry_version(entry)))
        mark = None if self._marks is None else self._marks.get(partition)
        if mark is not None:
            out.append((marker_key(partition, self.partitions), mark))
        return tuple(out)

    def digest(self, partition: int) -> int:
        """An order-independent 64-bit digest of :meth:`listing` (XOR of item hashes)."""
        acc = 0
        for key, version in self.listing(partition):
            acc ^= item_hash(key, version)
        return acc

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
        return len(keys)

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
        self.used_bytes = 0
        return count

    # --- flush markers (actors.store.flush_marks) -------------------------------------

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
        if self.tap is not None:
            self.tap(key)  # persisted: a flush forgotten at a restart would let flushed keys back
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
        if self.tap is not None:
            self.tap(key)
        del self._entries[key]
        if self.evictor is not None:
            self.evictor.removed(key, entry, self._entries)
        deadline = entry[DEADLINE]
        self.used_bytes -= entry_size(key, entry[VALUE], deadline)
        self._unpartition(key)
        if deadline is not None:
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


#: :meth:`Keyspace._merge_delta`'s answer when the write leaves no key.
_GONE = ("gone",)
#: ... when it changes nothing, yet is no conflict (a deadline for a key that is no hash).
_UNCHANGED = ("unchanged",)

#: What a key without an entry reads as in a type check (``_NO_ENTRY[VALUE]`` is None).
_NO_ENTRY = (None,)


def listed_version(version: Version, coll: Coll) -> Version:
    """A collection's version in a listing: its newest version, the node id followed by
    ``\\x00`` (no node id has it: ids are printable) and a digest of the whole state, so
    replicas with the same newest version but different fields differ (anti-entropy
    exchanges both ways then: ``actors.cluster.sync_rounds.diff_listings``)."""
    return Version(version.wall_ms, version.logical, f"{version.node_id}\x00{content_digest(coll)}")


def item_hash(key: str, version: Version) -> int:
    text = f"{key}\x00{version.wall_ms}.{version.logical}.{version.node_id}"
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")
