"""Keyspace entries: how one stored value is laid out in memory and what it is charged.

Split out of :mod:`actors.store.keyspace` (which re-exports every name here) because the
layout is its own concern: the exact-tuple shape keeps the cyclic GC's full collections
cheap at millions of keys, eviction policies that track access swap in
:class:`TrackedEntry`, and ``used_bytes`` accounting (:func:`entry_size`,
:data:`TOMBSTONE_SIZE`, :data:`PARTITION_SLOT`) must agree with it everywhere.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, Union

from actors.protocol.version import Version
from actors.store.sizing import ENTRY_OVERHEAD, VOLATILE_OVERHEAD, estimate_size

__all__ = [
    "DEADLINE",
    "Entry",
    "EntryDict",
    "META",
    "PARTITION_SLOT",
    "TOMBSTONE_SIZE",
    "TrackedEntry",
    "VALUE",
    "VLOGICAL",
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
