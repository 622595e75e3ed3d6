"""``ActorIO``: the ``Node`` actor's side of :class:`~actors.cluster.node_io.NodeIO`.

Everything the node waits on is in one continuation table
(:class:`~actors.kernel.continuations.Continuations`), numbered by one counter: store
batches (``StoreAnswer.batch``) and timers (``RequestTimeout.batch``). The node's
mailbox hands each answer to :meth:`ActorIO.resume`; nothing searches several tables.

Store operations of a turn gather in one outbox and leave at the turn's end as one
message (``StoreCalls`` when there are several batches), or at once when the turn has
gathered :data:`OUTBOX_FLUSH_OPS` operations. Batches reach the store in the order they
were asked: a part that asks twice in one turn sees its answers in that order.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any, Callable

from pykka import ActorDeadError, ActorRef

from actors.cluster.node_io import StoreThen
from actors.kernel.continuations import Continuations
from actors.kernel.ctx import Ctx
from actors.kernel.failures import log_failure
from actors.kernel.scheduler import Cancellable
from actors.protocol.errors import ErrorCode
from actors.protocol.messages import ErrorReply
from actors.protocol.internal import RequestTimeout
from actors.store.ops import StoreCall, StoreCalls, StoreOp

__all__ = ["OUTBOX_FLUSH_OPS", "ActorIO"]

logger = logging.getLogger("actorcache.node")

#: Operations a turn gathers for the store or for one peer before it sends them without
#: waiting for the turn's end: batching saves a hop per batch, but a turn of 64 pipelined
#: client batches would otherwise hold its first writes back for the whole turn. A peer's
#: ops also leave once their values pass ``actors.cluster.peer_budget.PEER_FRAME_BUDGET``.
OUTBOX_FLUSH_OPS = 128


class ActorIO:
    """The node's continuation table, store outbox, timers, peer sends and trace."""

    def __init__(self, ctx: Ctx, store: ActorRef[Any], me: ActorRef[Any], owner: object) -> None:
        self.ctx = ctx
        #: The node's clocks: the ctx's own (bound once: read several times per batch).
        self.now: Callable[[], float] = ctx.now
        self.wall: Callable[[], float] = ctx.wall
        self.node_id = ctx.node_id
        self.tracing = ctx.tracing
        self.store = store
        self.me = me
        self.owner = owner  # named in failure logs
        self._ids = itertools.count(1)
        self.waits: Continuations[Any] = Continuations(self._ids)
        self._outbox: list[StoreCall] = []
        self._outbox_ops = 0
        #: Requests answered ``internal`` because handling them raised (the store counts its own).
        self.internal_errors = 0
        #: Called before any store operation is asked or the outbox leaves: a part that
        #: gathers operations across a turn (the local planner's run of plain requests)
        #: sends them there, so the store still sees operations in the order asked.
        self.before_store: Callable[[], None] | None = None

    def next_id(self) -> int:
        return next(self._ids)

    def send(self, addr: str, msg: Any) -> None:
        self.ctx.send(addr, msg)

    def trace(self, event: str, **fields: Any) -> None:
        self.ctx.trace(event, **fields)

    def ask_store(self, ops: tuple[tuple[int, StoreOp], ...], then: StoreThen | None) -> None:
        if self.before_store is not None:
            self.before_store()
        batch = 0 if then is None else self.waits.add(then)
        self._outbox.append(StoreCall(batch, ops, self.me))
        self._outbox_ops += len(ops)
        if self._outbox_ops >= OUTBOX_FLUSH_OPS:
            self.flush_store()

    def flush_store(self) -> None:
        if self.before_store is not None:
            self.before_store()
        outbox = self._outbox
        if not outbox:
            return
        self._outbox = []
        self._outbox_ops = 0
        try:
            if len(outbox) == 1:
                self.store.tell(outbox[0])
            else:
                self.store.tell(StoreCalls(tuple(outbox), self.me))
        except ActorDeadError:
            pass  # the node is shutting down and its store stopped first: nobody waits for these

    def set_timer(self, delay: float, then: Callable[[], None]) -> Cancellable:
        key = self.waits.add(lambda _: then())
        return _Timer(self.ctx.call_later(delay, self.me, RequestTimeout(key)), key, self.waits)

    def resume(self, key: int, answer: Any) -> None:
        """An answer (store results, or None for a timer) for the work waiting on ``key``."""
        self.waits.resume(key, answer)

    def request_failed(self, doing: str, request: Any, exc: Exception) -> ErrorReply:
        self.internal_errors += 1
        what = type(request).__name__
        log_failure(logger, f"{self.owner} {doing} {what}", exc)
        return ErrorReply(ErrorCode.INTERNAL, f"internal error {doing} {what} ({type(exc).__name__})", getattr(request, "rid", None))


class _Timer:
    """A timer set with a continuation: cancelling it also forgets the continuation."""

    __slots__ = ("_handle", "_key", "_waits")

    def __init__(self, handle: Cancellable, key: int, waits: Continuations[Any]) -> None:
        self._handle = handle
        self._key = key
        self._waits = waits

    def cancel(self) -> None:
        self._handle.cancel()
        self._waits.discard(self._key)
