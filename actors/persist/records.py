"""A key's stored state as a snapshot or log record, and back.

The replication record (:mod:`actors.protocol.replica_wire`: ``[key, value, deadline,
[wall_ms, logical, node_id], purge_at]``) plus the entry's replica ids, so any value
type that replicates also persists, checked by the same decoder. A key that was removed
without a tombstone (a single-copy node) is written with ``purge_at`` 0: already purged.
"""

from __future__ import annotations

from typing import Any

from actors.protocol.errors import BadRequestError
from actors.protocol.record import Record
from actors.protocol.replica_wire import decode_record, text
from actors.store.keyspace import DEADLINE, META, VALUE, VLOGICAL, VWALL, Entry
from actors.protocol.version import Version

__all__ = ["GONE_VERSION", "decode_stored", "stored_record"]

GONE_VERSION = [0, 0, ""]


def stored_record(key: str, entry: Entry | None, tomb: tuple[Version, float] | None) -> list[Any]:
    """The record for what ``key`` holds (``Keyspace.peek``): a value, a tombstone or nothing."""
    if entry is not None:
        meta = entry[META]
        return [key, entry[VALUE], entry[DEADLINE], [entry[VWALL], entry[VLOGICAL], meta[0]], None, meta[1]]
    if tomb is not None:
        version, purge_at = tomb
        return [key, None, None, [version.wall_ms, version.logical, version.node_id], purge_at, ()]
    return [key, None, None, GONE_VERSION, 0, ()]


def decode_stored(obj: Any) -> tuple[Record, tuple[str, ...]]:
    """``(record, replica ids)``; raises ``BadRequestError`` (or ``ValueError``/``TypeError``
    from unpacking) for anything that is not a record."""
    if type(obj) is not list or len(obj) != 6:
        raise BadRequestError("a stored record is an array of 6")
    record = decode_record(obj[:5])
    if type(record.key) is not str or not record.key:  # type: ignore[union-attr]
        raise BadRequestError("a stored record's key must be a non-empty string")
    replicas = obj[5]
    if type(replicas) is not list:
        raise BadRequestError("a stored record's replicas must be an array")
    return record, tuple(text(r) for r in replicas)  # type: ignore[return-value]
