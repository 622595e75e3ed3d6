"""What each store operation does to a keyspace: one pure function per operation type, in a table.

Every function is ``(keyspace, op, wall, trace) -> result``. It changes ``keyspace`` as
``op`` says at wall time ``wall`` (epoch seconds: deadlines and purge times are compared
with it) and returns the operation's result, documented on each operation
(:mod:`actors.store.ops`, :mod:`actors.protocol.replica_ops`). ``trace`` is the actor's
``ctx.trace`` when tracing is on, else None; it is told an ``apply`` event for every key a
write, delete or repair changed. Nothing here reads a clock, sends a message or keeps
state outside the keyspace, so each operation is tested by calling it
(``tests/test_store_apply.py``); the :class:`~actors.store.actor.Store` actor only routes
batches through :data:`APPLY`. A new operation is one function and one row of the table.

Invariants:

- a write or delete never replaces a newer version: it answers the newest version the
  key holds instead (the coordinator re-stamps above it and sends again), so a write is
  never acknowledged while lost;
- a write that needs memory the keyspace cannot free (at ``max_memory`` under
  ``noeviction``) stores nothing of that write and answers ``out_of_memory``; deletes
  and repairs always work;
- versions and deadlines come in the operation (the coordinator decided them): a replica
  applies exactly what it is told.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable

from actors.protocol.errors import ErrorCode
from actors.protocol.messages import ErrorReply
from actors.protocol.replica_ops import Apply, Fetch, ItemResults, Remove, Write
from actors.protocol.version import Version
from actors.store.keyspace import Keyspace, entry_replicas
from actors.store.ops import BucketQuery, Describe, DigestQuery, DropPartitions, ListingQuery, Modify, Read
from actors.store.partition_digests import pack_digests
from actors.protocol.string_ops import Rename
from actors.store.rmw import DELETE, plan_rename, plan_update
from actors.store.txn_ops import TXN_APPLY

__all__ = ["APPLY", "OpFunction", "Trace", "apply", "out_of_memory"]

#: ``ctx.trace``: ``trace(event, **fields)``.
Trace = Callable[..., None]
#: One operation's function.
OpFunction = Callable[[Keyspace, Any, float, "Trace | None"], Any]


def read(keyspace: Keyspace, op: Read, wall: float, trace: Trace | None = None) -> tuple[tuple[Any, bool], ...]:
    return keyspace.get_all(op.keys, wall)


def write(keyspace: Keyspace, op: Write, wall: float, trace: Trace | None = None) -> Any:
    if op.each:
        return _write_each(keyspace, op, wall, trace)
    if keyspace.max_memory and not keyspace.make_room(wall):
        return out_of_memory(keyspace)
    version = op.version
    items = op.items
    stored = keyspace.set_all(items, version, op.replicas, wall)
    if trace is None and all(stored):
        return len(stored)
    applied = 0
    conflict = None
    for (key, _, _), ok in zip(items, stored):
        if ok:
            applied += 1
            if trace is not None:
                trace("apply", key=key, version=list(version))
        else:
            conflict = _newer(conflict, keyspace.newest_version(key), version)
    return applied if conflict is None else conflict


def _write_each(keyspace: Keyspace, op: Write, wall: float, trace: Trace | None) -> ItemResults:
    """A coordinator's run of single-key writes: each item applied, and answered, as
    if it had come alone (its own memory check, its own conflict)."""
    version = op.version
    replicas = op.replicas
    items = op.items
    if not keyspace.max_memory:  # no memory check per item: the keyspace stores them in one pass
        stored = keyspace.set_all(items, version, replicas, wall)
        if trace is None and all(stored):
            return ItemResults([1] * len(stored))
        outcomes: Iterable[bool | None] = stored
    else:
        outcomes = [None] * len(items)  # each item sized up against the memory limit, then stored
    each: list[Any] = []
    for (key, value, deadline), ok in zip(items, outcomes):
        if ok is None:
            if not keyspace.make_room(wall):
                each.append(out_of_memory(keyspace))
                continue
            ok = keyspace.set(key, value, deadline, version, replicas, wall)
        if ok:
            each.append(1)
            if trace is not None:
                trace("apply", key=key, version=list(version))
        else:
            newer = _newer(None, keyspace.newest_version(key), version)
            each.append(1 if newer is None else newer)
    return ItemResults(each)


def remove(keyspace: Keyspace, op: Remove, wall: float, trace: Trace | None = None) -> int | Version:
    version, purge_at = op.version, op.purge_at
    deleted = 0
    conflict = None
    for key in op.keys:
        newest = keyspace.newest_version(key)
        if newest is not None and newest > version:
            conflict = _newer(conflict, newest, version)
            continue
        deleted += keyspace.delete(key, wall, version, purge_at)
        if trace is not None:
            trace("apply", key=key, version=list(version), delete=True)
    return deleted if conflict is None else conflict


def fetch(keyspace: Keyspace, op: Fetch, wall: float, trace: Trace | None = None) -> tuple[Any, ...]:
    records = tuple(keyspace.record(key, wall) for key in op.keys)
    for record in records if op.count else ():
        if record is None or record.purge_at is not None:
            keyspace.misses += 1
        else:
            keyspace.hits += 1
    return records


def modify(keyspace: Keyspace, op: Modify, wall: float, trace: Trace | None = None) -> Any:
    """A read-modify-write in one step: its reply, or the newer version the key holds."""
    request = op.request
    if type(request) is Rename:
        writes, reply = plan_rename(request, keyspace.record(request.key, wall), keyspace.record(request.new_key, wall), wall)
    else:
        written, reply = plan_update(request, keyspace.record(request.key, wall), wall)
        writes = {} if written is None else {request.key: written}
    if not writes:
        return reply
    newer = _newer(None, None, op.version)
    for key in writes:  # all or nothing: a key holding a newer version re-stamps the whole op
        newer = _newer(newer, keyspace.newest_version(key), op.version)
    if newer is not None:
        return newer  # stored version is newer: the node re-stamps
    if any(w is not DELETE for w in writes.values()) and keyspace.max_memory and not keyspace.make_room(wall):
        return out_of_memory(keyspace)
    for key, written in writes.items():
        if written is DELETE:
            keyspace.delete(key, wall, op.version, wall + keyspace.tombstone_ttl)
        elif not keyspace.set(key, written[0], written[1], op.version, op.replicas, wall):  # type: ignore[index]
            return keyspace.newest_version(key)  # it holds this very version: the node re-stamps
    return reply


def describe(keyspace: Keyspace, op: Describe, wall: float, trace: Trace | None = None) -> tuple[Any, ...]:
    out = []
    for key in op.keys:
        entry = keyspace.entry(key, wall)
        out.append((keyspace.record(key, wall), entry_replicas(entry) if entry is not None else ()))
    return tuple(out)


def apply_records(keyspace: Keyspace, op: Apply, wall: float, trace: Trace | None = None) -> int:
    applied = 0
    for record in op.records:
        if keyspace.apply(record, wall):
            applied += 1
            if trace is not None:
                trace("apply", key=record.key, version=list(record.version), via="repair")
    return applied


def digests(keyspace: Keyspace, op: DigestQuery, wall: float, trace: Trace | None = None) -> tuple[Any, ...]:
    return tuple((p, keyspace.digest(p)) for p in op.partitions)


def bucket_digests(keyspace: Keyspace, op: BucketQuery, wall: float, trace: Trace | None = None) -> tuple[Any, ...]:
    return tuple(
        (p, keyspace.listing(p) if op.small and keyspace.partition_size(p) <= op.small else pack_digests(keyspace.bucket_digests(p)))
        for p in op.partitions
    )


def listings(keyspace: Keyspace, op: ListingQuery, wall: float, trace: Trace | None = None) -> tuple[Any, ...]:
    if op.buckets:
        return tuple((p, keyspace.listing(p, frozenset(b))) for p, b in zip(op.partitions, op.buckets))
    return tuple((p, keyspace.listing(p)) for p in op.partitions)


def drop_partitions(keyspace: Keyspace, op: DropPartitions, wall: float, trace: Trace | None = None) -> int:
    return sum(keyspace.drop_partition(p) for p in op.partitions)


#: Operation type -> its function. ``StatsQuery`` is not here: its answer is the ``Store``
#: actor's counters as well as the keyspace's, so the actor adds its own row.
APPLY: dict[type, OpFunction] = {
    Read: read,
    Write: write,
    Remove: remove,
    Fetch: fetch,
    Modify: modify,
    Describe: describe,
    Apply: apply_records,
    DigestQuery: digests,
    BucketQuery: bucket_digests,
    ListingQuery: listings,
    DropPartitions: drop_partitions,
}
APPLY.update(TXN_APPLY)  # transactions, flush, scan (actors.store.txn_ops)


def apply(keyspace: Keyspace, op: Any, wall: float, trace: Trace | None = None) -> Any:
    """Apply one operation; raises TypeError for a type the table does not know."""
    function = APPLY.get(type(op))
    if function is None:
        raise TypeError(f"unknown store operation {type(op).__name__}")
    return function(keyspace, op, wall, trace)


def out_of_memory(keyspace: Keyspace) -> ErrorReply:
    """The refusal of a write at ``max_memory`` that eviction could not make room for."""
    policy = keyspace.evictor.policy if keyspace.evictor is not None else "noeviction"
    return ErrorReply(
        ErrorCode.OUT_OF_MEMORY,
        f"out of memory: {keyspace.used_bytes} of --max-memory {keyspace.max_memory} bytes used and policy "
        f"{policy} evicts nothing here; deletes still work",
    )


def _newer(conflict: Version | None, newest: Version | None, version: Version) -> Version | None:
    """The highest version seen that beats ``version`` (a write that must be re-stamped)."""
    if newest is None or newest <= version:
        return conflict
    return newest if conflict is None or newest > conflict else conflict
