"""Messages that never leave a node: between its ``Node``, replicator and janitor, and timers.

Three groups:

- **read-modify-write at the key's coordinator**: the internal requests a read-modify-write
  runs through the cluster (:class:`ReadRecord`, :class:`WriteRecord`, answered by
  :class:`RecordReply`) and the node's own notes about them;
- **node and replicator**: views, hints, warm-up and hand-off, counters, timeouts;
- **leaving** the cluster, and the timers' messages (:class:`HeartbeatTick`, :class:`ExpireTick`, :class:`ReplicatorTick`).

None of these is ever encoded: a peer or a client can neither send nor receive one (the
store's operations are in :mod:`actors.store.ops`; client requests and replies in
:mod:`actors.protocol.messages`). Every field is read-only once sent.
"""

from __future__ import annotations

from typing import Any

from actors.protocol.messages import ReplyTo, message
from actors.protocol.record import Record

__all__ = [
    "AttachReplicator",
    "HandOffDone",
    "HintRecords",
    "Leave",
    "LeaveDone",
    "ReadRecord",
    "RecordReply",
    "ReplicatorCounters",
    "RequestTimeout",
    "ExpireTick",
    "PersistTick",
    "SaveInstalled",
    "SaveSlice",
    "HeartbeatTick",
    "ReplicatorTick",
    "StatsAsk",
    "ViewChanged",
    "WarmDone",
    "WriteRecord",
]


# --- read-modify-write at the key's coordinator ---------------------------------------------


@message
class ReadRecord:
    """Internal: a read that answers the newest :class:`Record` itself (``RecordReply``)."""

    key: str
    rid: Any = None
    consistency: str | None = None


@message
class WriteRecord:
    """Internal: a write with an absolute ``deadline`` (kept exactly, unlike a TTL), or
    with ``delete`` a delete of the key (``getdel``, a deadline already past)."""

    key: str
    value: Any
    deadline: float | None
    rid: Any = None
    consistency: str | None = None
    delete: bool = False


@message
class RecordReply:
    record: Record | None
    rid: Any = None


# --- node <-> replicator ----------------------------------------------------------------------


@message
class ViewChanged:
    """Membership changed; ``view`` is an ``actors.cluster.membership.ClusterView``."""

    view: Any


@message
class HintRecords:
    """Writes some owners missed: ``(owner node id, record)`` pairs to deliver later."""

    items: tuple[tuple[str, Record], ...]


@message
class WarmDone:
    """The replicator pulled every owned partition from peers: this node may serve reads.
    ``keys``: the keys it streamed in while warming."""

    keys: int = 0


@message
class HandOffDone:
    """While leaving: every partition was pushed to its next owners (or gave up)."""

    keys: int
    complete: bool


@message
class ReplicatorCounters:
    counters: dict[str, int]


@message
class StatsAsk:
    """A host asks for the node's ``stats`` outside any client connection (its metrics
    endpoint): ``reply_to`` gets the dict a ``stats`` request would answer, and no
    request is counted."""

    reply_to: ReplyTo


@message
class AttachReplicator:
    """Told to the node once at start: the replicator it feeds views and hints to."""

    replicator: Any


@message
class RequestTimeout:
    """A timer the node set fired (delivered by ``ctx.call_later``): resume continuation ``batch``."""

    batch: int


# --- leaving the cluster; timers ---------------------------------------------------------------


@message
class Leave:
    """Hand this node's partitions off, announce ``left``, then answer ``LeaveDone``."""

    reply_to: ReplyTo


@message
class LeaveDone:
    handed_off: int
    complete: bool


@message
class HeartbeatTick:
    """The node's heartbeat timer fired: gossip to a peer and re-check liveness."""


@message
class ExpireTick:
    """The janitor's timer fired: run one active-expiry cycle."""


@message
class PersistTick:
    """The store's once-a-second persistence timer: save rules, log rewrite, everysec fsync."""


@message
class SaveSlice:
    """The store's own timer: write the next slice of the snapshot being captured."""


@message
class SaveInstalled:
    """The host finished installing a background snapshot (``Disk.install_soon``):
    ``error`` is the ``DiskError`` that stopped it, or None."""

    error: Any = None


@message
class ReplicatorTick:
    """The replicator's tick. ``periodic`` ticks come from its timer and re-arm it; the
    others (a round freed a slot) only hurry the work that slot allows."""

    periodic: bool = True
