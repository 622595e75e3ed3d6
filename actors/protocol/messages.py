"""Client requests and replies, and :func:`message`, the decorator of every message class.

The requests and replies are what the client protocol carries, after decoding by
:mod:`actors.protocol.codec` (the only place that knows wire field names);
:mod:`actors.protocol.kinds` says, per request type, how it is named on the wire and how
a node treats it. The other messages are by concept: a host and its node's connections in
:mod:`actors.protocol.edge`, messages that never leave a node in
:mod:`actors.protocol.internal`, between nodes in :mod:`actors.protocol.peer_messages`,
the store's operations in :mod:`actors.store.ops` (those replicas get in
:mod:`actors.protocol.replica_ops`).

``rid`` is the optional request ``"id"`` a client may send; it is echoed in the reply.

Messages are shared, never copied, between the actors of a host, so no actor changes a
message it sent or received: treat every field as read-only. They are not ``frozen``
dataclasses because freezing costs each construction one ``object.__setattr__`` per
field: 0.90 us instead of 0.20 us for a ``Set`` (CPython 3.11), with several messages
built per request on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from actors.protocol.errors import ErrorCode
from actors.protocol.record import Record

#: The decorator of every message class: slotted, compared and hashed by value.
message = dataclass(slots=True, unsafe_hash=True)

__all__ = [
    "REPLY_TYPES",
    "ACK",
    "Ack",
    "Auth",
    "CollOp",
    "Delete",
    "ErrorReply",
    "Expire",
    "Get",
    "Incr",
    "Inspect",
    "InspectReply",
    "Join",
    "Locate",
    "LocateReply",
    "MGet",
    "MSet",
    "Ping",
    "Pong",
    "RemoveNode",
    "Reply",
    "ReplyTo",
    "Request",
    "Set",
    "Stats",
    "Save",
    "StatsReply",
    "Ttl",
    "TtlReply",
    "Value",
    "Values",
    "message",
]


class ReplyTo(Protocol):
    """Where an answer goes: an ``ActorRef``, or a sink at the edge (a connection)."""

    def tell(self, message: Any) -> None: ...


# --- client requests -------------------------------------------------------------------


@message
class Get:
    key: str
    rid: Any = None
    consistency: str | None = None


@message
class Set:
    """Store ``value`` under ``key``; ``ttl`` seconds (None: never expires).

    Redis's options: ``cond`` "nx" (only if absent) or "xx" (only if present),
    ``get`` (answer the previous value), ``keep_ttl`` (keep the key's deadline). Any of
    them makes the set a read-modify-write, run atomically by the key's coordinator.
    ``at``: an absolute deadline in epoch seconds instead of ``ttl`` (Redis's EXAT/PXAT,
    and the RESP door's EX/PX made absolute at its clock); one already past stores a
    value that is gone at once, as Redis's ``SET k v EXAT 1``.
    """

    key: str
    value: Any
    ttl: float | None = None
    rid: Any = None
    consistency: str | None = None
    cond: str | None = None
    get: bool = False
    keep_ttl: bool = False
    at: float | None = None

    @property
    def conditional(self) -> bool:
        """A read-modify-write: an option, or an absolute deadline (which may be past)."""
        return self.cond is not None or self.get or self.keep_ttl or self.at is not None


@message
class Delete:
    key: str
    rid: Any = None
    consistency: str | None = None


@message
class MGet:
    keys: tuple[str, ...]
    rid: Any = None
    consistency: str | None = None


@message
class MSet:
    entries: tuple[tuple[str, Any], ...]
    ttl: float | None = None
    rid: Any = None
    consistency: str | None = None


@message
class Ping:
    rid: Any = None


@message
class Stats:
    rid: Any = None


@message
class Save:
    """Write a snapshot of this node now (``SAVE``: answered once it is installed) or in
    the background (``BGSAVE``: answered once started); needs ``--dir``."""

    background: bool = False
    rid: Any = None


@message
class Join:
    """The Go original's join: accepted now; membership arrives with the cluster."""

    node_id: str
    rid: Any = None


@message
class Expire:
    """Give an existing key a new TTL in seconds (> 0), or none at all (``ttl`` None: persist).

    Answered ``Ack(applied=...)``: whether the key existed (and, for persist, had a TTL).
    ``at``: an absolute deadline (epoch seconds) instead of ``ttl``, any time, also one
    already past (the key goes at once, answered applied). ``cond``: Redis 7's ``nx``
    (only if it has no TTL), ``xx`` (only if it has one), ``gt``/``lt`` (only if the new
    deadline is later/earlier; no TTL counts as infinite), ``xx+lt``; not met: ``applied=False``.
    """

    key: str
    ttl: float | None
    rid: Any = None
    consistency: str | None = None
    at: float | None = None
    cond: str | None = None

    @property
    def persist(self) -> bool:
        return self.ttl is None and self.at is None


@message
class Ttl:
    """The key's remaining time to live; answered by :class:`TtlReply`."""

    key: str
    rid: Any = None
    consistency: str | None = None


@message
class Incr:
    """Add ``by`` to the integer stored at ``key`` (absent counts as 0); answers the result."""

    key: str
    by: int = 1
    rid: Any = None
    consistency: str | None = None


@message
class Locate:
    """Which partition ``key`` is in and which nodes own it."""

    key: str
    rid: Any = None


@message
class Inspect:
    """This node's own copy of ``key`` (value, version, deadline, tombstone), no coordination."""

    key: str
    rid: Any = None


@message
class RemoveNode:
    """Declare a member that will not come back gone, so its partitions move to others."""

    node_id: str
    rid: Any = None


@message
class Auth:
    """Authenticate the connection as ``user`` (None: ``default``). Answered by the
    connection itself when the node has passwords (``runtime/acl.py``); the node only
    sees one when it has none (and answers as Redis does then). The password is never
    part of ``repr``."""

    user: str | None
    password: str | bytes = field(repr=False)  # bytes: msgpack binary
    rid: Any = None


@message
class CollOp:
    """A hash or set command (``hset``, ``sadd``, ...: ``cmd``, its wire name) on ``key``,
    with its arguments after the key (names as strings, values as sent). A
    read-modify-write at the key's coordinator (:mod:`actors.store.coll_ops`); answered
    with a :class:`Value` whose value is the command's result."""

    key: str
    cmd: str
    args: tuple[Any, ...] = ()
    rid: Any = None
    consistency: str | None = None


Request: TypeAlias = (
    Get | Set | Delete | MGet | MSet | Ping | Stats | Save | Join | Locate | Inspect | RemoveNode | Expire | Ttl | Incr | Auth
    | CollOp
)


# --- replies ---------------------------------------------------------------------------


@message
class Ack:
    """A write was done. ``deleted`` (deletes): whether the key existed. ``applied``
    (conditional sets, expire): whether the condition held and the write happened."""

    rid: Any = None
    deleted: bool | None = None
    applied: bool | None = None


#: A plain write's acknowledgement with no request id (every RESP set's): messages are
#: read-only and shared, so one object serves them all (an allocation less per set), and
#: a run of them is recognised by identity (``list.count``) before equality.
ACK = Ack()


@message
class Value:
    value: Any
    found: bool
    rid: Any = None


@message
class Values:
    """Answer to mget: ``(key, value, found)`` per requested key, in request order."""

    items: tuple[tuple[str, Any, bool], ...]
    rid: Any = None


@message
class Pong:
    rid: Any = None


@message
class StatsReply:
    stats: dict[str, Any]
    rid: Any = None


@message
class ErrorReply:
    code: ErrorCode
    message: str
    rid: Any = None


@message
class TtlReply:
    """``found``: the key exists; ``ttl``: seconds left, or None when it never expires;
    ``deadline``: when it expires, in epoch seconds (what ``PEXPIRETIME`` answers)."""

    found: bool
    ttl: float | None
    rid: Any = None
    deadline: float | None = None


@message
class LocateReply:
    key: str
    partition: int
    owners: tuple[str, ...]
    rid: Any = None


@message
class InspectReply:
    key: str
    record: Record | None
    rid: Any = None
    replicas: tuple[str, ...] = ()


Reply: TypeAlias = Ack | Value | Values | Pong | StatsReply | ErrorReply | LocateReply | InspectReply | TtlReply
#: The reply classes, for ``isinstance`` checks.
REPLY_TYPES = (Ack, Value, Values, Pong, StatsReply, ErrorReply, LocateReply, InspectReply, TtlReply)

