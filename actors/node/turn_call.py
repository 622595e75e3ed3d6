"""What one node turn asks of its store for a single node's batches, as one store call.

Why: clients that send one request at a time arrive as one-request batches, dozens per
node turn (one per connection that was readable). Asked batch by batch, each costs a
store call, a continuation and an answer of its own, and each plain get or set its own
operation (and each set its own version). Gathered, the turn's operations, from every
batch and connection, make one call answered once; and consecutive plain gets become
one ``Read`` of all their keys, consecutive plain sets of distinct keys one ``Write``
with one version (as an ``mset`` is), whose results each member gets its own reply from.

Invariants (kept by :class:`~actors.node.local_plan.LocalPlanner`): operations are
added in the order the node handles their requests, and the call is sent before any
other store operation leaves the node (:class:`~actors.node.io.ActorIO` calls the
planner first), so the store applies them in that order; a key seen twice ends a set
run (the second set needs the newer version); a set run is answered item by item
(``Write.each``), so each set keeps its own memory check and its own outcome (a set
refused for a newer stored version is re-stamped and written again, as when it comes
alone); a set run's version is stamped when the run begins, so every version stamped
after it is newer and its operation reaches the store after the run.
"""

from __future__ import annotations

from typing import Any

from actors.node.ordering import ReplySlots
from actors.protocol.version import Version
from actors.store.ops import StoreOp

__all__ = ["MAX_CALL_OPS", "TurnCall", "TurnRun"]

#: Most operations (a run counting one per member) one call gathers before it is sent.
MAX_CALL_OPS = 128


class TurnRun:
    """Plain gets (``is_get``) or plain sets of distinct keys, in handling order.

    ``items`` are what the store operation carries (keys, or ``(key, value, deadline)``),
    ``members`` the ``(batch, slot)`` each item answers, ``version`` a set run's version."""

    __slots__ = ("is_get", "items", "keys", "members", "version")

    def __init__(self, is_get: bool, version: Version | None, key: str, item: Any, member: tuple[ReplySlots, int]) -> None:
        self.is_get = is_get
        self.version = version
        self.items: list[Any] = [item]
        self.members: list[tuple[ReplySlots, int]] = [member]
        #: Keys of a set run (a key seen twice ends it); None for gets.
        self.keys: set[str] | None = None if is_get else {key}

    def batches(self) -> list[ReplySlots]:
        """The run's batches, each once, in order (members of one batch are consecutive)."""
        out: list[ReplySlots] = []
        last = None
        for pending, _ in self.members:
            if pending is not last:
                out.append(pending)
                last = pending
        return out


class TurnCall:
    """The operations of one call: ``ops`` as the store takes them (``(index, op)``) and,
    per index, what its result answers (``targets``: a :class:`TurnRun`, or a batch's
    ``(batch, slot)``); ``run`` is the run still open (its operation not built yet)."""

    __slots__ = ("ops", "run", "size", "targets")

    def __init__(self) -> None:
        self.ops: list[tuple[int, StoreOp]] = []
        self.targets: list[TurnRun | tuple[ReplySlots, int]] = []
        self.run: TurnRun | None = None
        #: Operations so far, a run counting one per member (see MAX_CALL_OPS).
        self.size = 0

    def add(self, op: StoreOp, target: TurnRun | tuple[ReplySlots, int]) -> None:
        self.ops.append((len(self.targets), op))
        self.targets.append(target)
        self.size += 1

    def __bool__(self) -> bool:
        return bool(self.targets) or self.run is not None
