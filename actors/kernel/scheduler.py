"""The seam between actors and whatever runs them.

A host (the asyncio loop in ``runtime/``, the SimPy environment in ``sim/``) implements
:class:`Scheduler`; the actor base in :mod:`actors.kernel.scheduled` only ever talks to it.
Nothing here knows about sockets, wall clocks or threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:
    from actors.kernel.scheduled import ScheduledFuture

__all__ = ["BlockingCallInActorError", "Cancellable", "Scheduler"]


class BlockingCallInActorError(RuntimeError):
    """A blocking wait (``ask()``, ``Future.get()``, ``ref.stop()``) ran inside an actor turn.

    In the simulator it would deadlock the single thread; on the asyncio loop it would
    stall every connection. Use ``tell`` with a ``reply_to`` or ``pipe_to`` instead.
    """


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """What an actor host provides to run actor turns.

    ``call_soon`` must be callable from any thread (tests and drivers put messages from
    outside the host's thread); every callback runs on the host's single thread, in the
    order scheduled for equal times.
    """

    def call_soon(self, fn: Callable[[], None]) -> None: ...

    def call_later(self, delay: float, fn: Callable[[], None]) -> Cancellable: ...

    def in_turn(self) -> bool:
        """True while the calling code runs inside a turn on this host's thread."""
        ...

    def wait(self, future: ScheduledFuture, timeout: float | None) -> None:
        """Block the caller until ``future`` is done or ``timeout`` passes.

        Raises :class:`pykka.Timeout` on timeout and :class:`BlockingCallInActorError`
        when called from inside a turn.
        """
        ...
