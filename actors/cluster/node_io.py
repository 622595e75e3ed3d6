"""``NodeIO``: the one narrow interface through which the node's parts act.

The node's parts (the quorum coordinator, the read-modify-write coordinator, membership
lifecycle, local planning) are plain objects with no actor and no I/O of their own,
as ``h11.Connection`` is: they are fed messages and ``now``, and act only through this
interface: ask the store with a continuation, send to a peer, set a timer with a
continuation, trace. The ``Node`` actor implements it (``actors.node.io``); a test may
implement it with lists.

Invariants: a continuation runs at most once, in a later turn than the one that filed it
(answers and timers come back through the node's mailbox), so a part never re-enters
itself; a cancelled timer's continuation never runs.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from actors.kernel.scheduler import Cancellable
from actors.protocol.messages import ErrorReply
from actors.store.ops import StoreOp, StoreAnswer

__all__ = ["NodeIO", "StoreThen"]

#: What to do with the store's answer to one batch of operations.
StoreThen = Callable[[StoreAnswer], None]


class NodeIO(Protocol):
    node_id: str
    #: Whether trace events go anywhere (check before building costly fields).
    tracing: bool

    def now(self) -> float: ...

    def wall(self) -> float: ...

    def next_id(self) -> int:
        """A fresh id from the node's one counter (peer request ids, forward ids)."""
        ...

    def ask_store(self, ops: tuple[tuple[int, StoreOp], ...], then: StoreThen | None) -> None:
        """Send ``ops`` (slot, op) to the store in this turn's batch; ``then`` gets the
        results (None: nobody waits for them)."""
        ...

    def send(self, addr: str, msg: Any) -> None:
        """Send a peer message (asynchronous, FIFO per peer, may be lost)."""
        ...

    def set_timer(self, delay: float, then: Callable[[], None]) -> Cancellable:
        """Run ``then`` after ``delay`` seconds unless cancelled first."""
        ...

    def trace(self, event: str, **fields: Any) -> None: ...

    def request_failed(self, doing: str, request: Any, exc: Exception) -> ErrorReply:
        """The reply for one request whose handling raised: logged once by type, counted."""
        ...
