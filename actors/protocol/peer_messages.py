"""Messages between nodes: membership gossip, replica operations, repair and streaming.

Every peer message is a :func:`~actors.protocol.messages.message` dataclass (read-only by
convention). A host's transport delivers each one to the receiving node's ``Node`` actor
wrapped in :class:`~actors.kernel.peer.FromPeer`, which names the sender as the transport authenticated it
(the ``hello`` of a peer connection, or the simulated link). Senders address peers by advertised address (``host:port``), not by id, so a
node can join through a contact whose id it does not know yet. :mod:`actors.protocol.peer_codec`
maps these to wire objects; the simulator passes them as they are.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeAlias

from actors.protocol.messages import message
from actors.protocol.record import Record
from actors.protocol.version import Version

__all__ = [
    "Forward",
    "ForwardReply",
    "Gossip",
    "Member",
    "MemberStatus",
    "PeerMessage",
    "Pull",
    "Push",
    "PushAck",
    "ReplicaAck",
    "ReplicaRequest",
    "ReplicaResponse",
    "SyncListing",
    "SyncRequest",
]


class MemberStatus:
    """What a member says about itself (failure detection is each observer's own view)."""

    WARMING = "warming"  # owns partitions for writes, filling them from peers before serving reads
    READY = "ready"
    LEAVING = "leaving"  # handing its partitions off before it goes
    LEFT = "left"


class Member(NamedTuple):
    """One row of the gossiped membership table.

    ``incarnation`` is the epoch millisecond the node process started: a restarted node
    outranks its previous life without remembering anything. Between two rows for the
    same node, the higher ``(incarnation, status rank)`` wins.
    """

    node_id: str
    addr: str
    incarnation: int
    status: str


# --- peer messages --------------------------------------------------------------------------


@message
class Gossip:
    """The sender's membership table; also its heartbeat. ``reply``: answer with yours.

    ``wall_ms``: the sender's wall clock when it sent this (0: not stamped). A receiver
    refuses a heartbeat stamped beyond its clock bound and learns from the stamps how far
    its own clock is off its peers' (actors.cluster.clock_offsets). ``echo_ms``: the last
    ``wall_ms`` the sender heard from the receiver (0: none), ``held_ms``: how long the
    sender held it before this send, so the receiver measures the round trip (NTP's rule)."""

    members: tuple[Member, ...]
    reply: bool = False
    partitions: int = 256
    wall_ms: int = 0
    echo_ms: int = 0
    held_ms: int = 0


@message
class ReplicaRequest:
    """A coordinator's operations for one replica; answered by one :class:`ReplicaResponse`,
    or by several when the results carry more than ``actors.cluster.peer_budget.PEER_FRAME_BUDGET``.

    ``ops`` hold ``Fetch``, ``Write``, ``Remove`` and ``Apply`` operations
    (:mod:`actors.protocol.replica_ops`), stamped by the coordinator.

    ``reply``: False for a request nobody waits for (a read repair): the replica applies
    it and sends no answer. On the wire it is ``"noreply": true``, absent otherwise; a
    peer that predates it answers anyway, and the answer matches no request.
    """

    req: int
    ops: tuple[Any, ...]
    reply: bool = True


@message
class ReplicaResponse:
    """Results in op order: an int for writes, a tuple of ``Record | None`` for fetches, or
    for a write the replica refused a ``Version``: the newer version it holds (a conflict
    the coordinator resolves by re-stamping the write above it).

    ``start``: the index of the request's op the first result answers. A response whose
    results carry more than the frame budget is sent in parts, each answering a
    contiguous range of ops, in order; each part has ``ack`` set, and the replica sends
    its next part to this coordinator only once it got the :class:`ReplicaAck` of this
    one (one part in flight per peer, so a big answer never piles up in the link).
    """

    req: int
    results: tuple[Any, ...]
    start: int = 0
    ack: bool = False


@message
class ReplicaAck:
    """A coordinator got the :class:`ReplicaResponse` part of ``req`` at ``start``."""

    req: int
    start: int


@message
class SyncRequest:
    """Anti-entropy round ``sid``: the sender's digest per partition both nodes own.

    ``sub``: the number of sub-buckets per partition the sender compares (0: none, a peer
    from before sub-buckets, which never sends the field): a responder with as many
    answers a large differing partition with its sub-bucket digests, not its listing.
    ``want``: the second step of such a round, ``(partition, sub-buckets)`` whose digests
    differed: list only those (``digests`` is then empty)."""

    sid: int
    digests: tuple[tuple[int, int], ...]
    sub: int = 0
    want: tuple[tuple[int, tuple[int, ...]], ...] = ()


@message
class SyncListing:
    """The partitions whose digests differed, with the responder's ``(key, version)`` lists;
    ``buckets``: for partitions answered by sub-bucket (see :class:`SyncRequest`), the
    digest of each sub-bucket, 8 bytes big-endian apiece."""

    sid: int
    listings: tuple[tuple[int, tuple[tuple[str, Version], ...]], ...]
    buckets: tuple[tuple[int, bytes], ...] = ()


@message
class Pull:
    """Send me your records for these keys (answered by a :class:`Push` with the same sid)."""

    sid: int
    keys: tuple[str, ...]


@message
class Push:
    """Records to merge. ``ack``: answer with :class:`PushAck` (hints, handoff and repairs
    need it: each sends its next push only once the last one was acknowledged).

    ``reply``: this push answers the receiver's own :class:`Pull` ``sid`` (sids are
    per sender, so the flag says whose numbering ``sid`` is in). ``covered``: for a reply,
    how many of the pulled keys (from the first) it answers, when not all of them (their
    records passed the frame budget): the puller pulls the rest again. None: all.
    """

    sid: int
    records: tuple[Record, ...]
    ack: bool = False
    reply: bool = False
    covered: int | None = None


@message
class PushAck:
    sid: int
    applied: int


@message
class Forward:
    """A read-modify-write request for the key's coordinator, as a client wire object."""

    fid: int
    request: dict[str, Any]


@message
class ForwardReply:
    """The coordinator's answer to :class:`Forward` ``fid``, as a client wire object."""

    fid: int
    reply: dict[str, Any]


PeerMessage: TypeAlias = (
    Gossip | ReplicaRequest | ReplicaResponse | ReplicaAck | SyncRequest | SyncListing | Pull | Push | PushAck | Forward
    | ForwardReply
)
