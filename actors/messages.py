"""Every message the actors exchange, as frozen dataclasses, in one module.

Three families:

- **client requests and replies**: what the wire protocol carries, after decoding by
  :mod:`actors.codec` (the only place that knows wire field names);
- **edge messages**: what a host tells the node about connections and client batches;
- **internal messages** between node, store and janitor.

``rid`` is the optional request ``"id"`` a client may send; it is echoed in the reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from actors.errors import ErrorCode
from actors.record import Record
from actors.version import Version

__all__ = [
    "REPLY_TYPES",
    "Ack",
    "AttachReplicator",
    "BatchReply",
    "ClientBatch",
    "ClientConnected",
    "ClientDisconnected",
    "Delete",
    "ErrorReply",
    "Expire",
    "ExpireCycle",
    "ExpireCycleDone",
    "Get",
    "Incr",
    "Inspect",
    "InspectReply",
    "HandOffDone",
    "HintRecords",
    "Join",
    "KeepTombstones",
    "Leave",
    "LeaveDone",
    "Locate",
    "LocateReply",
    "MGet",
    "MSet",
    "Ping",
    "Pong",
    "Read",
    "Remove",
    "RemoveNode",
    "Reply",
    "ReplyTo",
    "Request",
    "Set",
    "Stats",
    "StatsQuery",
    "StatsReply",
    "StoreBatch",
    "StoreOp",
    "StoreResults",
    "Tick",
    "Ttl",
    "TtlReply",
    "Value",
    "Values",
    "ReplicatorCounters",
    "RequestTimeout",
    "ViewChanged",
    "WarmDone",
    "Write",
]


class ReplyTo(Protocol):
    """Where an answer goes: an ``ActorRef``, or a sink at the edge (a connection)."""

    def tell(self, message: Any) -> None: ...


# --- client requests -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Get:
    key: str
    rid: Any = None
    consistency: str | None = None


@dataclass(frozen=True, slots=True)
class Set:
    """Store ``value`` under ``key``; ``ttl`` seconds (None: never expires).

    Redis's options: ``cond`` "nx" (only if absent) or "xx" (only if present),
    ``get`` (answer the previous value), ``keep_ttl`` (keep the key's deadline). Any of
    them makes the set a read-modify-write, run atomically by the key's coordinator.
    """

    key: str
    value: Any
    ttl: float | None = None
    rid: Any = None
    consistency: str | None = None
    cond: str | None = None
    get: bool = False
    keep_ttl: bool = False

    @property
    def conditional(self) -> bool:
        return self.cond is not None or self.get or self.keep_ttl


@dataclass(frozen=True, slots=True)
class Delete:
    key: str
    rid: Any = None
    consistency: str | None = None


@dataclass(frozen=True, slots=True)
class MGet:
    keys: tuple[str, ...]
    rid: Any = None
    consistency: str | None = None


@dataclass(frozen=True, slots=True)
class MSet:
    entries: tuple[tuple[str, Any], ...]
    ttl: float | None = None
    rid: Any = None
    consistency: str | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    rid: Any = None


@dataclass(frozen=True, slots=True)
class Stats:
    rid: Any = None


@dataclass(frozen=True, slots=True)
class Join:
    """The seed's join: accepted now; membership arrives with the cluster."""

    node_id: str
    rid: Any = None


@dataclass(frozen=True, slots=True)
class Expire:
    """Give an existing key a new TTL in seconds (> 0), or none at all (``ttl`` None: persist).

    Answered ``Ack(applied=...)``: whether the key existed (and, for persist, had a TTL).
    """

    key: str
    ttl: float | None
    rid: Any = None
    consistency: str | None = None


@dataclass(frozen=True, slots=True)
class Ttl:
    """The key's remaining time to live; answered by :class:`TtlReply`."""

    key: str
    rid: Any = None
    consistency: str | None = None


@dataclass(frozen=True, slots=True)
class Incr:
    """Add ``by`` to the integer stored at ``key`` (absent counts as 0); answers the result."""

    key: str
    by: int = 1
    rid: Any = None
    consistency: str | None = None


@dataclass(frozen=True, slots=True)
class Locate:
    """Which partition ``key`` is in and which nodes own it."""

    key: str
    rid: Any = None


@dataclass(frozen=True, slots=True)
class Inspect:
    """This node's own copy of ``key`` (value, version, deadline, tombstone), no coordination."""

    key: str
    rid: Any = None


@dataclass(frozen=True, slots=True)
class RemoveNode:
    """Declare a member that will not come back gone, so its partitions move to others."""

    node_id: str
    rid: Any = None


Request: TypeAlias = (
    Get | Set | Delete | MGet | MSet | Ping | Stats | Join | Locate | Inspect | RemoveNode | Expire | Ttl | Incr
)


# --- replies ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ack:
    """A write was done. ``deleted`` (deletes): whether the key existed. ``applied``
    (conditional sets, expire): whether the condition held and the write happened."""

    rid: Any = None
    deleted: bool | None = None
    applied: bool | None = None


@dataclass(frozen=True, slots=True)
class Value:
    value: Any
    found: bool
    rid: Any = None


@dataclass(frozen=True, slots=True)
class Values:
    """Answer to mget: ``(key, value, found)`` per requested key, in request order."""

    items: tuple[tuple[str, Any, bool], ...]
    rid: Any = None


@dataclass(frozen=True, slots=True)
class Pong:
    rid: Any = None


@dataclass(frozen=True, slots=True)
class StatsReply:
    stats: dict[str, Any]
    rid: Any = None


@dataclass(frozen=True, slots=True)
class ErrorReply:
    code: ErrorCode
    message: str
    rid: Any = None


@dataclass(frozen=True, slots=True)
class TtlReply:
    """``found``: the key exists; ``ttl``: seconds left, or None when it never expires."""

    found: bool
    ttl: float | None
    rid: Any = None


@dataclass(frozen=True, slots=True)
class LocateReply:
    key: str
    partition: int
    owners: tuple[str, ...]
    rid: Any = None


@dataclass(frozen=True, slots=True)
class InspectReply:
    key: str
    record: Record | None
    rid: Any = None
    replicas: tuple[str, ...] = ()


Reply: TypeAlias = Ack | Value | Values | Pong | StatsReply | ErrorReply | LocateReply | InspectReply | TtlReply
#: The reply classes, for ``isinstance`` checks.
REPLY_TYPES = (Ack, Value, Values, Pong, StatsReply, ErrorReply, LocateReply, InspectReply, TtlReply)


# --- edge: host -> node ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientBatch:
    """Everything decoded from one socket read of connection ``conn``.

    An item that failed to decode is already an :class:`ErrorReply`; it keeps its place
    so replies stay in request order. The node answers with one :class:`BatchReply`.
    """

    conn: int
    requests: tuple[Request | ErrorReply, ...]
    reply_to: ReplyTo


@dataclass(frozen=True, slots=True)
class BatchReply:
    conn: int
    replies: tuple[Reply, ...]


@dataclass(frozen=True, slots=True)
class ClientConnected:
    conn: int


@dataclass(frozen=True, slots=True)
class ClientDisconnected:
    conn: int


# --- internal: node <-> store ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Read:
    """Look up keys; the result is a tuple of ``(value, found)``."""

    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Write:
    """Store items ``(key, value, deadline)``; deadline is epoch seconds or None.

    ``replicas``: the owners the coordinator sent the write to; each entry remembers
    them (the seed's ReplicaIDs), shown by ``inspect``.
    """

    items: tuple[tuple[str, Any, float | None], ...]
    version: Version
    replicas: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Remove:
    """Delete keys; the result is how many existed.

    ``purge_at`` (epoch seconds) keeps a tombstone until then where tombstones are on.
    """

    keys: tuple[str, ...]
    version: Version
    purge_at: float | None = None


@dataclass(frozen=True, slots=True)
class KeepTombstones:
    """Told to the store: keep tombstones this long (0: none, a single-copy node)."""

    ttl_s: float


@dataclass(frozen=True, slots=True)
class StatsQuery:
    """The store's counters; the result is a dict."""


StoreOp: TypeAlias = Read | Write | Remove | StatsQuery


@dataclass(frozen=True, slots=True)
class StoreBatch:
    """Operations for the store, each tagged with the caller's slot number."""

    batch: int
    ops: tuple[tuple[int, StoreOp], ...]
    reply_to: ReplyTo


@dataclass(frozen=True, slots=True)
class StoreResults:
    batch: int
    results: tuple[tuple[int, Any], ...]


# --- internal: read-modify-write at the key's coordinator ---------------------------------


@dataclass(frozen=True, slots=True)
class ReadRecord:
    """Internal: a read that answers the newest :class:`Record` itself (``RecordReply``)."""

    key: str
    rid: Any = None
    consistency: str | None = None


@dataclass(frozen=True, slots=True)
class WriteRecord:
    """Internal: a write with an absolute ``deadline`` (kept exactly, unlike a TTL)."""

    key: str
    value: Any
    deadline: float | None
    rid: Any = None
    consistency: str | None = None


@dataclass(frozen=True, slots=True)
class RecordReply:
    record: Record | None
    rid: Any = None


@dataclass(frozen=True, slots=True)
class RmwStep:
    """An internal request of read-modify-write job ``job`` was answered."""

    job: int
    replies: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ForwardTimeout:
    """A request forwarded to the key's coordinator got no answer in time."""

    fid: int


# --- internal: node <-> replicator ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ViewChanged:
    """Membership changed; ``view`` is an ``actors.membership.ClusterView``."""

    view: Any


@dataclass(frozen=True, slots=True)
class HintRecords:
    """Writes some owners missed: ``(owner node id, record)`` pairs to deliver later."""

    items: tuple[tuple[str, Record], ...]


@dataclass(frozen=True, slots=True)
class WarmDone:
    """The replicator pulled every owned partition from peers: this node may serve reads."""


@dataclass(frozen=True, slots=True)
class HandOffDone:
    """While leaving: every partition was pushed to its next owners (or gave up)."""

    keys: int
    complete: bool


@dataclass(frozen=True, slots=True)
class ReplicatorCounters:
    counters: dict[str, int]


@dataclass(frozen=True, slots=True)
class AttachReplicator:
    """Told to the node once at start: the replicator it feeds views and hints to."""

    replicator: Any


@dataclass(frozen=True, slots=True)
class RequestTimeout:
    """A coordinated batch's request timeout fired (delivered by ``ctx.call_later``)."""

    batch: int


# --- internal: leaving the cluster -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Leave:
    """Hand this node's partitions off, announce ``left``, then answer ``LeaveDone``."""

    reply_to: ReplyTo


@dataclass(frozen=True, slots=True)
class LeaveDone:
    handed_off: int
    complete: bool


# --- internal: janitor -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tick:
    """A periodic timer fired (delivered by ``ctx.call_later``)."""

    name: str = "tick"


@dataclass(frozen=True, slots=True)
class ExpireCycle:
    """Run one active-expiry cycle within ``budget_s`` of ``ctx.now()`` time."""

    budget_s: float
    reply_to: ReplyTo
    sample_size: int = 20


@dataclass(frozen=True, slots=True)
class ExpireCycleDone:
    sampled: int
    expired: int
    rounds: int
    hit_budget: bool
    remaining_volatile: int
