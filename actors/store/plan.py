"""The request kinds table's other half: how a request becomes a store operation on one node,
and how the store's result becomes its reply.

:mod:`actors.protocol.kinds` says what each request type is (wire names, route, keys);
it sits below the store and cannot name store operations. This module, one layer up, adds
two columns keyed by the same request types:

- :data:`PLANS`: ``(request, wall, stamp) -> StoreOp``, the one store operation a request
  needs from this node's store alone (a single-node cluster, or a request no other node
  takes part in: ``stats``, ``inspect``). Read-modify-writes (:func:`~actors.protocol.kinds.route_of`
  says ``UPDATE``) all plan to one ``Modify``, whatever their type;
- :data:`REPLIES`: ``(request, result) -> Reply``, the reply for that operation's result.

Kinds without a plan (``ping``, ``join``, ``locate``, ``remove_node``) are answered by the
node from its own state. A single node's path is then: :func:`plan_local`, then
:func:`actors.store.apply.apply`, then :func:`local_reply`; each is pure, so the
whole path is tested by calling them (``tests/test_store_plan.py``).

Invariants: every version comes from ``stamp.tick`` (the node's clock), one per operation;
deadlines and tombstone purge times are absolute (``wall + ttl``), decided here and never
by the store; a reply carries its own request's id, also when the store made it (an error,
or a read-modify-write's answer).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

from actors.protocol.errors import ErrorCode
from actors.protocol.kinds import KINDS, Route, route_of
from actors.protocol.messages import (
    REPLY_TYPES,
    Ack,
    Delete,
    ErrorReply,
    Get,
    Inspect,
    InspectReply,
    MGet,
    MSet,
    Reply,
    Set,
    Save,
    Stats,
    StatsReply,
    Ttl,
    Value,
    Values,
)
from actors.protocol.replica_ops import Remove, Write
from actors.protocol.txn_messages import TXN_REPLY_TYPES, Flush, Multi, MultiReply, Scan, ScanReply
from actors.store.txn_ops import FlushAll, ScanKeys, Transact
from actors.protocol.collection import Coll, coll_kind
from actors.protocol.version import ZERO, Version
from actors.store.coll_ops import wrong_type
from actors.store.ops import Describe, Modify, Read, SaveSnapshot, StatsQuery, StoreOp

#: Every reply class a store result may already be.
_REPLY_TYPES = REPLY_TYPES + TXN_REPLY_TYPES

__all__ = ["PLANS", "REPLIES", "Stamp", "local_reply", "plan_local", "with_rid"]


class Stamp(NamedTuple):
    """What planning needs from the node: its clock, and what its entries remember."""

    #: The node's hybrid logical clock: a new version for ``wall`` (``HybridClock.tick``).
    tick: Callable[[float], Version]
    #: The replica set a single node's entries remember (itself).
    replicas: tuple[str, ...]
    #: How long a delete's tombstone is kept (``NodeConfig.tombstone_ttl_s``).
    tombstone_ttl_s: float


def _write(request: Any, wall: float, stamp: Stamp) -> Write:
    return Write(KINDS[type(request)].items(request, wall), stamp.tick(wall), stamp.replicas)  # type: ignore[misc]


#: Request type -> the store operation it needs on this node.
PLANS: dict[type, Callable[[Any, float, Stamp], StoreOp]] = {
    Get: lambda r, wall, stamp: Read((r.key,)),
    Set: _write,
    Delete: lambda r, wall, stamp: Remove((r.key,), stamp.tick(wall), wall + stamp.tombstone_ttl_s),
    MGet: lambda r, wall, stamp: Read(r.keys),
    MSet: _write,
    Ttl: lambda r, wall, stamp: Modify(r, ZERO),  # reads through the read-modify-write rules; writes nothing
    Stats: lambda r, wall, stamp: StatsQuery(),
    Save: lambda r, wall, stamp: SaveSnapshot(r.background),
    Inspect: lambda r, wall, stamp: Describe((r.key,)),
    Flush: lambda r, wall, stamp: FlushAll(),
    Scan: lambda r, wall, stamp: ScanKeys(r.cursor, r.count, r.match, 0, r.count_only, r.kind),
}


def plan_local(request: Any, wall: float, stamp: Stamp) -> StoreOp | None:
    """The store operation ``request`` needs, or None when the node answers it itself."""
    if type(request) is Multi:  # one operation applying each of its requests' in one store turn
        return Transact(tuple(plan_local(sub, wall, stamp) for sub in request.requests), request.watch, request.exact)
    if route_of(request) is Route.UPDATE:
        return Modify(request, stamp.tick(wall), stamp.replicas)
    plan = PLANS.get(type(request))
    return None if plan is None else plan(request, wall, stamp)


def _mget(request: MGet, result: Any) -> Values:
    return Values(tuple((key, *string_value(value, found)) for key, (value, found) in zip(request.keys, result)), request.rid)


def _get(request: Get, result: Any) -> Reply:
    value, found = result[0]
    if type(value) is Coll:
        return wrong_type(request.rid) if coll_kind(value) is not None else Value(None, False, request.rid)
    return Value(value, found, request.rid)


def string_value(value: Any, found: bool) -> tuple[Any, bool]:
    """``(value, found)`` as ``MGET`` answers it: a hash or set is no string (nil, as Redis)."""
    return (None, False) if type(value) is Coll else (value, found)


#: Request type -> its reply for the result of its planned operation (a result that is
#: already a reply, or an error, is passed on by :func:`local_reply` with the request's id).
#: ``stats``' figures are the store's; the node merges its own in before asking for the reply.
REPLIES: dict[type, Callable[[Any, Any], Reply]] = {
    Get: _get,
    Set: lambda r, result: Ack(r.rid),
    Delete: lambda r, result: Ack(r.rid, deleted=result > 0),
    MGet: _mget,
    MSet: lambda r, result: Ack(r.rid),
    Stats: lambda r, result: StatsReply(result, r.rid),
    Save: lambda r, result: Ack(r.rid),
    Inspect: lambda r, result: InspectReply(r.key, result[0][0], r.rid, result[0][1]),
    Multi: lambda r, result: MultiReply(tuple(local_reply(sub, res) for sub, res in zip(r.requests, result)), r.rid),
    Flush: lambda r, result: Ack(r.rid),
    Scan: lambda r, result: ScanReply(result[0], (), r.rid, result[1]) if r.count_only else ScanReply(result[0], result[1], r.rid),
}


def local_reply(request: Any, result: Any) -> Reply:
    """The reply to ``request`` for ``result``, its planned operation's result."""
    if isinstance(result, _REPLY_TYPES):
        # A read-modify-write answered by the store itself, or an error (which the
        # store made without knowing the request's id).
        return with_rid(result, request.rid)
    reply = REPLIES.get(type(request))
    if reply is None:
        raise TypeError(f"no reply for {type(request).__name__} from {type(result).__name__}")
    return reply(request, result)


def with_rid(reply: Any, rid: Any) -> Any:
    """``reply`` (one the store made) carrying the request's id; an unexpected result is
    an ``internal`` error, never passed to a client as it is."""
    if isinstance(reply, _REPLY_TYPES):
        return reply if getattr(reply, "rid", None) == rid else dataclasses.replace(reply, rid=rid)
    return ErrorReply(ErrorCode.INTERNAL, f"internal error: unexpected result {type(reply).__name__}", rid)
