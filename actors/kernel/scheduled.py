"""A Pykka actor type whose turns are scheduled by a host instead of a thread.

Theory of operation
-------------------
Pykka documents three hooks for new actor types (``_create_actor_inbox``,
``_create_future``, ``_start_actor_loop``); ``ThreadingActor`` fills them with a thread
per actor. :class:`ScheduledActor` fills them with a deque inbox whose ``put`` arms at
most one pending "dispatch a turn" callback on the host's :class:`Scheduler`.
A turn handles the envelopes waiting in the inbox, at most :data:`TURN_ENVELOPES` of
them, each with the same handling as the body of Pykka's ``Actor._actor_loop_running``
(reply set, exception to the asker, ``_handle_failure`` and ``on_failure`` for a told
exception); then it calls :meth:`ScheduledActor.on_turn_end` and re-arms itself if more
envelopes wait.

Why several envelopes per turn: on the asyncio host every turn is one pass of the event
loop (a ``select`` call and a ready-queue round). Fifty connections that each sent one
request in the same loop pass would otherwise cost fifty passes before the node has seen
them all; handled in one turn they also reach the store as one batch
(``on_turn_end`` is where an actor sends what it gathered during the turn).

Invariants:
- all turns of all actors of one host run on one thread, one at a time, to completion;
- envelopes are handled in the order they were put (per actor FIFO), one at a time;
- a turn handles only envelopes put before it began, at most ``TURN_ENVELOPES``, so
  actors interleave fairly and deterministically (what an actor tells itself during a
  turn waits for the next one, after ``on_turn_end``);
- after stop, queued asks get :class:`pykka.ActorDeadError` and later tells raise it.

Differences from Pykka, on purpose:
- a ``BaseException`` in a turn stops this actor and propagates to the host instead of
  calling ``ActorRegistry.stop_all()`` (which would stop every simulated node at once);
- actor urns are deterministic (``node_id/ClassName/counter``), never ``uuid4``;
- an actor class may set :attr:`ScheduledActor.survive_failures`: then an ``Exception``
  raised by a told message (or by ``on_turn_end``) is logged once, counted and reported,
  and the actor handles its next envelope, instead of stopping (see the attribute).
"""

from __future__ import annotations

import collections
import logging
import sys
from typing import TYPE_CHECKING, Any, Callable

import pykka
import pykka.messages

from actors.kernel.scheduler import Scheduler
from actors.kernel.failures import ActorFailed, ReportFailuresTo, log_failure

if TYPE_CHECKING:
    from pykka._envelope import Envelope

    from actors.kernel.ctx import Ctx

__all__ = ["TURN_ENVELOPES", "ScheduledActor", "ScheduledFuture", "ScheduledInbox"]

logger = logging.getLogger("actorcache.actors")

#: Most envelopes one turn handles before the actor yields to the host (and re-arms).
TURN_ENVELOPES = 64


class ScheduledFuture(pykka.Future[Any]):
    """A future completed on the host thread and waited on through the host.

    It learns its host when its envelope enters an inbox (``ask`` creates the future
    before it knows the target), so ``get`` can ask the right host to wait: the asyncio
    host blocks the foreign caller thread, the SimPy host advances virtual time.

    No lock: it is completed, and its callbacks are added, only on the host's thread
    (a foreign waiter registers its callback through ``Scheduler.wait``).
    """

    __slots__ = ("_callbacks", "_exc_info", "_has_result", "_scheduler", "_value")

    def __init__(self, scheduler: Scheduler | None = None) -> None:
        super().__init__()
        self._scheduler = scheduler
        self._has_result = False
        self._value: Any = None
        self._exc_info: Any = None
        self._callbacks: list[Callable[[ScheduledFuture], None]] = []

    def bind(self, scheduler: Scheduler) -> None:
        if self._scheduler is None:
            self._scheduler = scheduler

    def done(self) -> bool:
        return self._has_result

    def set(self, value: Any = None) -> None:
        self._complete(value, None)

    def set_exception(self, exc_info: Any = None) -> None:
        if exc_info is None:
            exc_info = sys.exc_info()
        self._complete(None, exc_info)

    def _complete(self, value: Any, exc_info: Any) -> None:
        if self._has_result or self._get_hook is not None:
            raise RuntimeError("future already completed")
        self._value = value
        self._exc_info = exc_info
        self._has_result = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)

    def add_done_callback(self, callback: Callable[[ScheduledFuture], None]) -> None:
        """Call ``callback(self)`` once the future is done (at once if it already is)."""
        if not self._has_result:
            self._callbacks.append(callback)
            return
        callback(self)

    def result(self) -> Any:
        """The value of a done future (raises its exception); never blocks."""
        if not self._has_result:
            raise RuntimeError("future is not done")
        if self._exc_info is not None:
            _, exc_value, exc_tb = self._exc_info
            if exc_value is None:
                exc_value = self._exc_info[0]()
            raise exc_value.with_traceback(exc_tb)
        return self._value

    def get(self, *, timeout: float | None = None) -> Any:
        if self._get_hook is not None:
            return super().get(timeout=timeout)
        if not self._has_result:
            if self._scheduler is None:
                raise RuntimeError("future was never handed to a host; nothing can complete it")
            self._scheduler.wait(self, timeout)
        return self.result()


class ScheduledInbox:
    """Deque inbox that arms one dispatch callback on the host when work arrives."""

    __slots__ = ("_armed", "_dispatch", "_in_turn", "_queue", "_scheduler", "_started")

    def __init__(self) -> None:
        self._queue: collections.deque[Envelope[Any]] = collections.deque()
        self._scheduler: Scheduler | None = None
        self._dispatch: Callable[[], None] | None = None
        self._in_turn: Callable[[], bool] | None = None  # the scheduler's, looked up once
        self._armed = False
        self._started = False

    def bind(self, scheduler: Scheduler, dispatch: Callable[[], None]) -> None:
        self._scheduler = scheduler
        self._dispatch = dispatch
        self._in_turn = scheduler.in_turn

    def put(self, envelope: Envelope[Any], /) -> None:
        scheduler = self._scheduler
        assert scheduler is not None and self._in_turn is not None, "inbox used before its actor was bound to a host"
        reply_to = envelope.reply_to
        if reply_to is not None and isinstance(reply_to, ScheduledFuture):
            reply_to.bind(scheduler)
        if self._in_turn():  # the common case: a turn (or a host callback) on the host's thread
            self._queue.append(envelope)
            if self._started and not self._armed:
                self._armed = True
                scheduler.call_soon(self._dispatch)  # type: ignore[arg-type]
        else:
            scheduler.call_soon(lambda: self._put_local(envelope))

    def _put_local(self, envelope: Envelope[Any]) -> None:
        self._queue.append(envelope)
        self.arm()

    def arm(self) -> None:
        """Schedule one dispatch turn if work waits and none is pending."""
        if self._started and not self._armed and self._queue:
            self._armed = True
            assert self._scheduler is not None and self._dispatch is not None
            self._scheduler.call_soon(self._dispatch)

    def start(self) -> None:
        self._started = True
        self.arm()

    def disarm(self) -> None:
        self._armed = False

    def get(self) -> Envelope[Any]:
        return self._queue.popleft()

    def empty(self) -> bool:
        return not self._queue

    def __len__(self) -> int:
        return len(self._queue)


#: Messages Pykka's own ``_handle_receive`` interprets (stop, proxy calls and attributes).
_PYKKA_MESSAGES = frozenset(
    {
        pykka.messages._ActorStop,  # noqa: SLF001
        pykka.messages.ProxyCall,
        pykka.messages.ProxyGetAttr,
        pykka.messages.ProxySetAttr,
    }
)


class ScheduledActor(pykka.Actor):
    """Base of every actor in ``actors/``: one turn per envelope, on the host's thread.

    Subclasses take a :class:`~actors.kernel.ctx.Ctx` as first constructor argument and keep
    all their state private; they talk to other actors with ``tell`` only.
    """

    actor_inbox: ScheduledInbox  # type: ignore[assignment]

    #: What an ``Exception`` raised by a told message does. False (Pykka's rule, the
    #: default): the actor logs it, calls ``on_failure`` and stops. True: it is logged
    #: once (:func:`~actors.kernel.failures.log_failure`: the message's type, never the message),
    #: counted in :attr:`actor_failures`, reported to the failure sink if one was set
    #: (:class:`~actors.kernel.failures.ReportFailuresTo`), and the actor goes on with its next
    #: envelope; ``on_failure`` is not called, since nothing stops.
    #:
    #: Why the node's service actors (Node, Store, Replicator, Janitor) turn it on: they
    #: serve every client and peer of the node, and what they handle comes from the
    #: network. Under Pykka's rule one request that trips a bug (a 500-deep value once
    #: did, in size accounting) stops one of them, and the host must then exit (a node
    #: with a dead store answers nobody): every replica of a key could be taken down by
    #: one unauthenticated request. The state an exception can leave half-changed is one
    #: message's worth; each actor contains that where it matters (the store answers each
    #: operation on its own, the node answers every client batch whatever happens), and a
    #: node that lives on with one wrong answer is better than a cluster that loses all of
    #: its data. A ``BaseException`` still stops the actor and reaches the host.
    survive_failures: bool = False

    def __init__(self, ctx: Ctx, *_args: Any, **_kwargs: Any) -> None:
        super().__init__()
        #: Told messages (and turn ends) whose handling raised and were survived.
        self.actor_failures = 0
        self._failure_sink: Any = None
        self.ctx = ctx
        urn = ctx.actor_id(type(self).__name__)
        self.actor_urn = urn
        self.actor_ref.actor_urn = urn
        self.actor_inbox.bind(ctx.scheduler, self._dispatch_turn)

    @staticmethod
    def _create_actor_inbox() -> ScheduledInbox:  # type: ignore[override]
        return ScheduledInbox()

    @staticmethod
    def _create_future() -> ScheduledFuture:
        return ScheduledFuture()

    def _start_actor_loop(self) -> None:
        self.ctx.scheduler.call_soon(self._run_start)

    def _run_start(self) -> None:
        self._actor_loop_setup()
        if self.actor_stopped.is_set():
            self._actor_loop_teardown()
        else:
            self.actor_inbox.start()

    def on_turn_end(self) -> None:
        """Called after every turn that handled at least one envelope (also when the
        actor stopped during it). Override to send what the turn gathered, e.g. one
        batch for many requests. Exceptions are logged, as for a told message."""

    def _dispatch_turn(self) -> None:
        """One turn: the envelopes waiting now, at most ``TURN_ENVELOPES``, then ``on_turn_end``."""
        inbox = self.actor_inbox
        inbox.disarm()
        stopped = self.actor_stopped
        if stopped.is_set():
            self._actor_loop_teardown()
            return
        handled = 0
        waiting = min(len(inbox), TURN_ENVELOPES)  # what arrives during the turn waits for the next
        while handled < waiting:
            handled += 1
            try:
                self._handle_envelope(inbox.get())
            except BaseException:
                self._stop()
                self._actor_loop_teardown()
                raise
            if stopped.is_set():
                break
        if handled:
            try:
                self.on_turn_end()
            except Exception as exc:
                if self.survive_failures:
                    self._survive("on_turn_end", exc)
                else:
                    self._handle_failure(*sys.exc_info())
        if stopped.is_set():
            self._actor_loop_teardown()
        else:
            inbox.arm()

    def _handle_envelope(self, envelope: Envelope[Any]) -> None:
        """Pykka's loop body for one envelope; only a ``BaseException`` escapes."""
        message = envelope.message
        try:
            if type(message) in _PYKKA_MESSAGES:
                response = self._handle_receive(message)
            else:  # the common case: a told message straight to on_receive (what _handle_receive ends in)
                response = self.on_receive(message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception as exc:
            if envelope.reply_to is not None:
                logger.info("Exception returned from %s to caller:", self, exc_info=sys.exc_info())
                envelope.reply_to.set_exception()
            elif self.survive_failures:
                self._survive(f"handling {type(message).__name__}", exc)
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:
                    self._handle_failure(*sys.exc_info())

    def _survive(self, what: str, exc: Exception) -> None:
        """A failure this actor lives through: logged once, counted, reported."""
        self.actor_failures += 1
        log_failure(logger, f"{self} {what} (the actor lives on)", exc)
        sink = self._failure_sink
        if sink is not None:
            try:
                sink.tell(ActorFailed(self.actor_urn, what))
            except Exception:  # noqa: BLE001 - the sink stopped first (shutdown): nothing to count
                pass

    def on_receive(self, message: Any) -> Any:
        """Messages every scheduled actor understands; subclasses end in ``super().on_receive``."""
        if type(message) is ReportFailuresTo:
            self._failure_sink = message.sink
            return None
        return super().on_receive(message)

    def __str__(self) -> str:
        return self.actor_urn
