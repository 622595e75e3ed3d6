"""Every operation a node's ``Store`` actor applies, and the envelopes that carry them.

The store is told a :class:`StoreCall`: operations tagged with the caller's slot numbers,
applied in order in one store turn and answered with one :class:`StoreAnswer` in the same
order (several batches gathered in one :class:`StoreCalls` share the turn and the answer). The operations are plain values, applied by the pure
functions of :mod:`actors.store.apply` (one per operation type, a dispatch table), so what an
operation does can be tested without an actor.

:data:`StoreOp` names them all. Four of them (``Fetch``, ``Write``, ``Remove``, ``Apply``)
also travel between nodes inside replica requests, so they are defined below the store, in
:mod:`actors.protocol.replica_ops`; the rest never leave a node and live here.

Invariants: an operation carries everything the store needs (versions, deadlines and purge
times are decided by the coordinating node, never by the store); operations and results
are read-only once sent; a batch's results come back in the order of its operations.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from actors.protocol.messages import ReplyTo, message
from actors.protocol.replica_ops import Apply, Fetch, Remove, Write
from actors.protocol.version import Version

__all__ = [
    "BucketQuery",
    "Describe",
    "DigestQuery",
    "DropPartitions",
    "ExpireCycle",
    "ExpireCycleDone",
    "KeepTombstones",
    "ListingQuery",
    "Modify",
    "Read",
    "SaveSnapshot",
    "StatsQuery",
    "StoreCall",
    "StoreCalls",
    "StoreOp",
    "StoreAnswer",
    "StoreAnswers",
]


# --- operations that never leave the node --------------------------------------------------


@message
class Read:
    """Look up keys; the result is a tuple of ``(value, found)``."""

    keys: tuple[str, ...]


@message
class Describe:
    """Local only (``inspect``): a tuple of ``(Record | None, replica ids)`` per key."""

    keys: tuple[str, ...]


@message
class Modify:
    """A read-modify-write request (``actors.store.rmw``) applied in one store turn;
    the result is the request's reply. ``version`` stamps what it writes."""

    request: Any
    version: Version
    replicas: tuple[str, ...] = ()


@message
class SaveSnapshot:
    """Write a snapshot (``background``: start one and answer at once); the result is
    True, or an error reply (no ``--dir``, a save already running, a disk failure).
    ``take_over`` (the save at SIGTERM, never a client's): a running background save is
    abandoned for this one instead of refusing it, as Redis's shutdown does."""

    background: bool = False
    take_over: bool = False


@message
class DigestQuery:
    """The result is ``((partition, digest), ...)``."""

    partitions: tuple[int, ...]


@message
class BucketQuery:
    """The result is ``((partition, its sub-bucket digests packed: 8 bytes each, big-endian), ...)``,
    or its listing (as :class:`ListingQuery`'s) where the partition holds at most ``small``
    keys (0: never) (a listing is then smaller and cheaper than the digests and a second step)."""

    partitions: tuple[int, ...]
    small: int = 0


@message
class ListingQuery:
    """The result is ``((partition, ((key, version), ...)), ...)``; with ``buckets`` (one
    tuple of sub-bucket numbers per partition), only the items in those sub-buckets."""

    partitions: tuple[int, ...]
    buckets: tuple[tuple[int, ...], ...] = ()


@message
class DropPartitions:
    """Forget partitions this node no longer owns; the result is how many keys went."""

    partitions: tuple[int, ...]


@message
class StatsQuery:
    """The store's counters; the result is a dict."""


StoreOp: TypeAlias = (
    Read | Write | Remove | Fetch | Apply | Describe | Modify | DigestQuery | BucketQuery | ListingQuery | DropPartitions | StatsQuery | SaveSnapshot
)


# --- envelopes -------------------------------------------------------------------------------


@message
class StoreCall:
    """Operations for the store, each tagged with the caller's slot number."""

    batch: int
    ops: tuple[tuple[int, StoreOp], ...]
    reply_to: ReplyTo


@message
class StoreAnswer:
    batch: int
    results: tuple[tuple[int, Any], ...]


@message
class StoreCalls:
    """Several store calls gathered in one turn of their sender, applied in order in one
    store turn and answered with one :class:`StoreAnswers` (one hop each way, not one
    per batch)."""

    batches: tuple[StoreCall, ...]
    reply_to: ReplyTo


@message
class StoreAnswers:
    """The answer to :class:`StoreCalls`: each batch's results, in the same order."""

    results: tuple[StoreAnswer, ...]


# --- told to the store, not applied as operations ----------------------------------------------


@message
class KeepTombstones:
    """Keep tombstones this long (0: none, a single-copy node). ``ready``: the node's copy
    is complete (status ready, not warming): persistence may mark its disk current then."""

    ttl_s: float
    ready: bool = False


@message
class ExpireCycle:
    """Run one active-expiry cycle within ``budget_s`` of ``ctx.now()`` time."""

    budget_s: float
    reply_to: ReplyTo
    sample_size: int = 20


@message
class ExpireCycleDone:
    sampled: int
    expired: int
    rounds: int
    hit_budget: bool
    remaining_volatile: int
