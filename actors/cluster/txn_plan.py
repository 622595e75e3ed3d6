"""What a transaction does in a cluster, given what its keys hold: a pure function.

At the partition's coordinator (:mod:`actors.cluster.rmw_coordinator`) a transaction
reads every key it touches at quorum, then :func:`plan_transaction` runs it on a scratch
:class:`~actors.store.keyspace.Keyspace` loaded with those records, through exactly the
single-node path (:func:`~actors.store.plan.plan_local`, the store's apply table,
:func:`~actors.store.plan.local_reply`), so a transaction means the same on one node and
in a cluster, and its reads see its own earlier writes. What it changed becomes the
writes the coordinator sends: a ``WriteRecord`` per key holding a value at the end, a
``Delete`` per key that held one and no longer does; a key written and then deleted
again, or not changed at all, is not written.

The watch check is here too: a watched key whose record holds a version newer than the
stamp taken when it was watched aborts the transaction (``MultiReply(None)``) before
anything is planned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from actors.protocol.errors import ErrorCode
from actors.protocol.internal import WriteRecord
from actors.protocol.kinds import Route, route_of
from actors.protocol.messages import Delete, ErrorReply, Reply
from actors.protocol.record import Record
from actors.protocol.txn_messages import Multi, MultiReply
from actors.protocol.version import Version
from actors.store.apply import apply
from actors.store.keyspace import Keyspace
from actors.store.plan import Stamp, local_reply, plan_local

__all__ = ["plan_transaction", "watch_failed"]


def watch_failed(multi: Multi, records: Mapping[str, Record | None]) -> bool:
    """Whether a watched key changed: another version than the one read when it was
    watched (``exact``), or a version newer than its watch stamp."""
    for key, watched in multi.watch:
        record = records.get(key)
        if multi.exact:
            if (record.version if record is not None else None) != watched:
                return True
        elif watched is not None and record is not None and record.version > watched:
            return True
    return False


def plan_transaction(
    multi: Multi,
    records: Mapping[str, Record | None],
    wall: float,
    tick: Callable[[float], Version],
    partitions: int,
    tombstone_ttl_s: float,
) -> tuple[list[Any], Reply]:
    """``(writes, reply)``: the requests that store the transaction's effect (none if
    it changed nothing or was aborted) and its reply."""
    if watch_failed(multi, records):
        return [], MultiReply(None, multi.rid)
    scratch = Keyspace(partitions, tombstone_ttl=max(tombstone_ttl_s, 1.0))
    for record in records.values():
        if record is not None:
            scratch.apply(record, wall)
    stamp = Stamp(tick, (), tombstone_ttl_s)
    replies: list[Reply] = []
    written: dict[str, None] = {}
    for request in multi.requests:
        route = route_of(request)
        if route not in (Route.READ, Route.WRITE, Route.UPDATE):
            replies.append(ErrorReply(
                ErrorCode.BAD_REQUEST, "only data requests run inside a transaction in a cluster", getattr(request, "rid", None)
            ))
            continue
        op = plan_local(request, wall, stamp)
        replies.append(local_reply(request, apply(scratch, op, wall)))
        if route is not Route.READ:
            for key in _keys(request):
                written[key] = None
    writes: list[Any] = []
    for key in written:
        before = records.get(key)
        after = scratch.record(key, wall)
        if after is not None and after.purge_at is None:
            if before is None or before.version != after.version:
                writes.append(WriteRecord(key, after.value, after.deadline, None, multi_consistency(multi)))
        elif before is not None and before.purge_at is None and (before.deadline is None or before.deadline > wall):
            writes.append(Delete(key, None, multi_consistency(multi)))
    return writes, MultiReply(tuple(replies), multi.rid)


def multi_consistency(multi: Multi) -> str | None:
    """The write level of a transaction's writes: the strongest its requests asked for."""
    levels = [getattr(r, "consistency", None) for r in multi.requests]
    for level in ("all", "quorum", "one"):
        if level in levels:
            return level
    return None


def _keys(request: Any) -> tuple[str, ...]:
    from actors.protocol.kinds import KINDS

    return KINDS[type(request)].keys(request)
