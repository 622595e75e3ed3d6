"""The SimPy environment as an actor :class:`~actors.kernel.scheduler.Scheduler`.

Everything runs on the caller's thread. Ties between callbacks due at the same virtual
time are broken by SimPy's ``(time, priority, sequence)`` order, so a run is a pure
function of its inputs. A blocking ``get`` from a driver (a test, ``sim.run``) advances
virtual time until the future is done; from inside a turn it would deadlock, so it
raises instead.
"""

from __future__ import annotations

import math
from typing import Callable

import pykka
import simpy

from actors.kernel import BlockingCallInActorError, ScheduledFuture

__all__ = ["SimDeadlockError", "SimScheduler"]


class SimDeadlockError(RuntimeError):
    """A driver waited for a reply, but no event is left that could ever produce it."""


class _SimTimer:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class SimScheduler:
    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self._depth = 0

    def in_turn(self) -> bool:
        return self._depth > 0

    def _run(self, fn: Callable[[], None]) -> None:
        self._depth += 1
        try:
            fn()
        finally:
            self._depth -= 1

    def call_soon(self, fn: Callable[[], None]) -> None:
        self.env.timeout(0).callbacks.append(lambda _event: self._run(fn))

    def call_later(self, delay: float, fn: Callable[[], None]) -> _SimTimer:
        timer = _SimTimer()

        def fire(_event: object) -> None:
            if not timer.cancelled:
                self._run(fn)

        self.env.timeout(delay).callbacks.append(fire)
        return timer

    def wait(self, future: ScheduledFuture, timeout: float | None) -> None:
        if self.in_turn():
            raise BlockingCallInActorError(
                "blocking wait inside a simulated actor turn would deadlock the simulation"
            )
        env = self.env
        deadline = math.inf if timeout is None else env.now + timeout
        while not future.done():
            next_time = env.peek()
            if next_time == math.inf:
                raise SimDeadlockError("no scheduled events left; the awaited reply can never arrive")
            if next_time > deadline:
                if deadline > env.now:
                    env.run(until=deadline)
                raise pykka.Timeout(f"{timeout} simulated seconds")
            env.step()


class NodeScheduler:
    """One node's view of the shared :class:`SimScheduler`, which can be paused.

    A paused node is a stalled process (a long GC pause, a frozen VM, ``SIGSTOP``): its
    clock keeps running, but none of its actor turns or timers run, and messages for it
    queue up. On resume everything held runs in the order it became due.
    """

    def __init__(self, base: SimScheduler) -> None:
        self.base = base
        self.paused = False
        self._held: list[Callable[[], None]] = []

    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            if self.paused:
                self._held.append(fn)
            else:
                fn()

        return run

    def call_soon(self, fn: Callable[[], None]) -> None:
        self.base.call_soon(self._guard(fn))

    def call_later(self, delay: float, fn: Callable[[], None]) -> _SimTimer:
        return self.base.call_later(delay, self._guard(fn))

    def in_turn(self) -> bool:
        return self.base.in_turn()

    def wait(self, future: ScheduledFuture, timeout: float | None) -> None:
        self.base.wait(future, timeout)

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        held, self._held = self._held, []
        for fn in held:
            self.base.call_soon(self._guard(fn))

    def discard(self) -> None:
        """The node crashed: forget what it held and let its actors be stopped."""
        self._held.clear()
        self.paused = False
