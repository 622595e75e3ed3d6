"""A key's stored state as a snapshot or log record, and back.

The replication record (:mod:`actors.protocol.replica_wire`: ``[key, value, deadline,
[wall_ms, logical, node_id], purge_at]``) plus the entry's replica ids, so any value
type that replicates also persists, checked as that decoder checks it: a hash or set is
its ``wire_coll`` state with a 7th element, the peer link's tag (msgpack cannot pack a
``Coll``: before, every log block and snapshot holding one failed). A key that was removed
without a tombstone (a single-copy node) is written with ``purge_at`` 0: already purged.
"""

from __future__ import annotations

import sys
from typing import Any

from actors.protocol.errors import BadRequestError
from actors.protocol.record import Record
from actors.protocol.collection import Coll
from actors.protocol.replica_wire import COLL_TAG, _within, decode_coll, text, wire_coll
from actors.store.keyspace import DEADLINE, META, VALUE, VLOGICAL, VWALL, Entry
from actors.protocol.version import MAX_LOGICAL, MAX_WALL_MS, Version

__all__ = ["GONE_VERSION", "decode_stored", "stored_record"]

GONE_VERSION = (0, 0, "")


def stored_record(key: str, entry: Entry | None, tomb: tuple[Version, float] | None) -> tuple[Any, ...]:
    """The record for what ``key`` holds (``Keyspace.peek``): a value, a tombstone or nothing.
    Tuples (msgpack packs them as arrays): a snapshot makes millions, and tuples of atoms
    drop out of the cyclic GC's view, where lists would keep its collections busy."""
    if entry is not None:
        meta = entry[META]
        value = entry[VALUE]
        version = (entry[VWALL], entry[VLOGICAL], meta[0])
        if type(value) is Coll:  # a hash or set: its wire state, tagged as on a peer link
            return (key, wire_coll(value), entry[DEADLINE], version, None, meta[1], COLL_TAG)
        return (key, value, entry[DEADLINE], version, None, meta[1])
    if tomb is not None:
        return (key, None, None, tomb[0], tomb[1], ())  # a Version is a tuple: packed as the array
    return (key, None, None, GONE_VERSION, 0, ())


def decode_stored(obj: Any) -> tuple[Record, tuple[str, ...]]:
    """``(record, replica ids)``; raises ``BadRequestError`` for anything that is not a
    record. The checks of :func:`~actors.protocol.replica_wire.decode_record`, inline: a
    load decodes every key of the node."""
    if type(obj) is not list or len(obj) not in (6, 7):
        raise BadRequestError("a stored record is an array of 6 (7 for a hash or set)")
    key, value, deadline, version, purge_at, replicas = obj[:6]
    if type(key) is not str or not key:
        raise BadRequestError("a stored record's key must be a non-empty string")
    if deadline is not None and type(deadline) is not float and type(deadline) is not int:
        raise BadRequestError("a deadline must be a number or null")
    if purge_at is not None and type(purge_at) is not float and type(purge_at) is not int:
        raise BadRequestError("a purge time must be a number or null")
    if type(version) is not list or len(version) != 3:
        raise BadRequestError("a version is an array of 3")
    wall_ms, logical, node_id = version
    if (
        type(wall_ms) is not int or type(logical) is not int or type(node_id) is not str
        or not 0 <= wall_ms <= MAX_WALL_MS or not 0 <= logical <= MAX_LOGICAL
    ):
        raise BadRequestError("a version is [wall_ms, logical, node_id] within a clock's range")
    if type(replicas) is not list:
        raise BadRequestError("a stored record's replicas must be an array")
    ids = _IDS.get(node_id)
    if ids is None:
        ids = _IDS[node_id] = sys.intern(node_id)
    if replicas:
        replicas = tuple(text(r) for r in replicas)
    else:
        replicas = ()
    record_version = _new(Version, (wall_ms, logical, ids))
    if len(obj) == 7:
        if obj[6] != COLL_TAG or purge_at is not None:
            raise BadRequestError("a tagged stored record is a live hash or set")
        value = _within(decode_coll(value), record_version)
    return _new(Record, (key, value, deadline, record_version, purge_at)), replicas


#: Builds NamedTuples without their Python-level ``__new__``.
_new = tuple.__new__
#: Node ids met while loading, interned (every entry keeps its writer's id: one string per node).
_IDS: dict[str, str] = {}
