"""Flush markers: how FLUSHDB works in a cluster under last-write-wins.

A cluster cannot flush by deleting what each node holds now: a replica that missed the
flush (down, cut off, behind on hints) would bring every key back through anti-entropy,
hints or read repair, since its copies are the newest it knows. Instead a flush writes,
at one version ``F`` (the flushing node's clock), one **marker record** per partition:
key :func:`marker_key` (a reserved key whose hash tag puts it in that partition), value
:data:`MARKER_VALUE`. A marker is an ordinary record to everything that moves records
(quorum writes, hints, anti-entropy listings and digests, streaming to joining nodes,
warming), so it reaches every owner of its partition the way a write does. What makes it
a flush is the keyspace (:class:`~actors.store.keyspace.Keyspace`), which holds a
partition's marker apart from its keys and from then on:

- forgets every value and tombstone of the partition whose version is ``<= F`` (at once,
  when the marker arrives);
- refuses every value or tombstone of the partition at a version ``<= F``, whatever path
  it comes by (a hint of an old write, a stale replica's anti-entropy, a read repair, a
  record streamed from a node that missed the flush): so nothing older than the flush
  comes back, and every path is covered because the check is where records are stored;
- answers ``F`` as the newest version of any key of the partition it holds nothing newer
  for, so a write stamped ``<= F`` (a coordinator whose clock lags the flusher's) is
  refused with ``F`` and re-stamped above it, never acknowledged and dropped; and a
  fetch of such a key answers a tombstone at ``F``, so a quorum read meeting one replica
  that has the marker and one that missed it answers "not found" (and repairs the other);
- keeps the marker until a newer flush replaces it (one record per partition, never
  purged: unlike a tombstone, a flush cannot be brought back by a replica cut off for
  longer than ``--tombstone-ttl``).

Writes newer than ``F`` (concurrent with the flush, or after it) survive: the flush is a
delete of every key at version ``F``, ordered by last-write-wins like any delete.
"""

from __future__ import annotations

import itertools

from actors.protocol.messages import MSet
from actors.protocol.txn_kinds import RESERVED_PREFIX
from actors.protocol.txn_messages import Flush
from actors.store.partitions import partition_of

__all__ = ["MARKER_PREFIX", "MARKER_VALUE", "flush_write", "is_marker", "marker_key", "marker_keys"]

#: Every marker key starts with this; clients may not use keys that do (the decoders refuse them).
MARKER_PREFIX = RESERVED_PREFIX
#: A marker's value (what ``inspect`` shows).
MARKER_VALUE = "flush"

_KEYS: dict[int, tuple[str, ...]] = {}


def marker_keys(partitions: int) -> tuple[str, ...]:
    """The marker key of each partition, in partition order (found once per partition count)."""
    keys = _KEYS.get(partitions)
    if keys is None:
        found: dict[int, str] = {}
        for i in itertools.count():
            tag = f"p{i}"
            part = partition_of(tag, partitions)
            if part not in found:
                found[part] = f"{MARKER_PREFIX}{tag}}}"
                if len(found) == partitions:
                    break
        keys = _KEYS[partitions] = tuple(found[p] for p in range(partitions))
    return keys


def marker_key(partition: int, partitions: int) -> str:
    return marker_keys(partitions)[partition]


def flush_write(flush: Flush, partitions: int) -> MSet:
    """What a flush is in a cluster: one write of every partition's marker, at one version
    (the coordinator's), at the node's write consistency."""
    return MSet(tuple((key, MARKER_VALUE) for key in marker_keys(partitions)), None, flush.rid)


def is_marker(key: str) -> bool:
    """Whether ``key`` is a flush marker's (or any reserved) key."""
    return key.startswith(MARKER_PREFIX)
