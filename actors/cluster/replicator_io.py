"""The one narrow interface the replicator's parts act through, and the push filling they share.

The parts (:mod:`~actors.cluster.hints`, :mod:`~actors.cluster.anti_entropy`,
:mod:`~actors.cluster.streaming`) are plain objects: fed messages and the current time,
they never touch an actor, a clock or the network. Everything they cause goes through a
:class:`ReplicatorIo`, which the ``Replicator`` actor implements with its one
continuation table.

Invariants:

- ids come from one counter per replicator, for round and push ids (``sid``, on the wire)
  and store calls alike: a part takes an id exactly where it needs one, so the ids a
  peer sees follow the order of the work, the same on every run;
- a store answer continues exactly one continuation, once, with the time it arrived;
- :func:`fill` never returns an empty push for records that exist: one record always
  goes, however big, so a push stream always makes progress.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from actors.cluster.peer_budget import PUSH_BUDGET, record_bytes
from actors.protocol.record import Record

__all__ = ["Then", "ReplicatorIo", "fill"]

#: A continuation of a store query: the results (one per op asked), and the time now.
Then = Callable[[tuple[Any, ...], float], None]


class ReplicatorIo(Protocol):
    """What a replicator part may do (the ``Replicator`` actor does it)."""

    def next_id(self) -> int:
        """A fresh id for a round or a push (the store calls take theirs from the same counter)."""

    def ask_store(self, ops: list[Any], then: Then) -> None:
        """Ask the store ``ops`` in one batch; ``then`` continues with their results."""

    def send(self, peer: str, msg: Any) -> None:
        """Send ``msg`` to the member ``peer`` (dropped if the view has no address for it)."""

    def reply(self, addr: str, msg: Any) -> None:
        """Send ``msg`` to the peer at ``addr`` (one that asked us)."""

    def tick_soon(self) -> None:
        """A slot freed: run the periodic work again now if partitions wait to move."""

    def wrong_peer(self, kind: str, src: str, expected: str) -> None:
        """An answer carrying the sid of a round or push with another peer: ignored, counted."""


def fill(records: tuple[Record | None, ...], budget: int = PUSH_BUDGET) -> tuple[tuple[Record, ...], int]:
    """``(records, covered)``: the present records among the first ``covered`` of
    ``records`` (a store fetch's answer, one per key), as many as fit in ``budget`` bytes
    and at least one; ``covered`` counts the keys answered (missing ones included)."""
    out: list[Record] = []
    used = 0
    for i, record in enumerate(records):
        if record is None:
            continue
        size = record_bytes(record)
        if out and used + size > budget:
            return tuple(out), i
        out.append(record)
        used += size
    return tuple(out), len(records)
