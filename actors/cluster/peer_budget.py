"""How many bytes of values one peer message may carry, and what sizes them cheaply.

A peer frame may be up to 64 MiB (``runtime.peers.DEFAULT_PEER_FRAME_BYTES``); a
bigger one is dropped by the sender, so whatever it answered times out. And a sender
keeps at most 16 MiB queued per peer (``runtime.peers.PeerLinks``, ``max_queue_bytes``),
dropping the oldest frames past that, also while a turn is still queueing them. So the
senders of values (coordinators' replica requests, replicas' answers, the replicator's
pushes) cut what they send into messages of about :data:`PEER_FRAME_BUDGET` bytes of
values and keep only a few of them unanswered per peer at a time: see
``actors.cluster.replica_flow`` (replica requests and responses) and the replicator's
parts, ``actors.cluster.hints``, ``sync_rounds`` and ``streaming`` (pushes).

Sizes are :func:`actors.store.sizing.estimate_size` of the values (iterative, in time
proportional to the value, which decoding it already paid), with strings and bytes, the
common case, sized by ``len`` inline. Keys count their length. The estimate is of memory,
not wire bytes: above the wire size for containers of small items, so a budget is never
exceeded by much more than one item past it (one item always goes, however big).
"""

from __future__ import annotations

from typing import Any

from actors.protocol.replica_ops import Remove, Write
from actors.protocol.replica_ops import Apply, Fetch
from actors.protocol.record import Record
from actors.store.sizing import estimate_size

__all__ = [
    "PEER_FRAME_BUDGET",
    "PEER_REQUEST_WINDOW",
    "PUSH_BUDGET",
    "op_bytes",
    "record_bytes",
    "result_bytes",
]

#: Bytes of values one replica request or one part of a replica response carries before
#: the sender starts another. 4 MiB: a sixteenth of the 64 MiB peer frame limit, so one
#: item past the budget (a value of up to ``--max-request-bytes``, 1 MiB by default)
#: still leaves the frame far under it; a quarter of the 16 MiB a sender keeps queued per
#: peer, so the one response part in flight per peer (``actors.cluster.replica_flow``), the requests in
#: flight (:data:`PEER_REQUEST_WINDOW`) and this turn's small frames fit in that queue; and
#: big enough that the per-frame costs (a header, an acknowledgement, a turn) are noise
#: next to encoding 4 MiB. Values that small answer in one frame, as before.
PEER_FRAME_BUDGET = 4 << 20

#: Bytes of values a coordinator keeps in unanswered replica requests per peer; more
#: waits in that peer's backlog until answers come back. Two budgets: one request being
#: applied while the next is on the wire, and what a turn of many clients' big writes
#: queues for one peer stays within the sender's 16 MiB per-peer queue.
PEER_REQUEST_WINDOW = 2 * PEER_FRAME_BUDGET

#: Bytes of records one replicator ``Push`` carries (hints, handoff, anti-entropy, pull
#: answers). A quarter of :data:`PEER_FRAME_BUDGET`: up to four handoffs, a hint push
#: and a repair may each have one push in flight to the same peer at once.
PUSH_BUDGET = PEER_FRAME_BUDGET // 4


def record_bytes(record: Record | None) -> int:
    """A record's key and value (a missing record or a tombstone's value: nothing)."""
    if record is None:
        return 0
    value = record.value
    t = type(value)
    if t is str or t is bytes:
        return len(record.key) + len(value)
    return len(record.key) + estimate_size(value)


def result_bytes(result: Any) -> int:
    """A replica op's result: the records of a fetch; anything else (a count, a conflict,
    an error, per-item answers) is small."""
    if type(result) is not tuple:
        return 0
    total = 0
    for record in result:
        if record is not None:
            total += record_bytes(record)
    return total


def op_bytes(op: Any) -> int:
    """A replica op's keys and values."""
    t = type(op)
    if t is Write:
        total = 0
        for key, value, _ in op.items:
            vt = type(value)
            total += len(key) + (len(value) if vt is str or vt is bytes else estimate_size(value))
        return total
    if t is Apply:
        return sum(map(record_bytes, op.records))
    if t is Fetch or t is Remove:
        keys = op.keys
        return len(keys[0]) if len(keys) == 1 else sum(map(len, keys))
    return 0
