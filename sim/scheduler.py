"""The SimPy environment as an actor :class:`~actors.kernel.scheduler.Scheduler`.

Everything runs on the caller's thread. Ties between callbacks due at the same virtual
time are broken by SimPy's ``(time, priority, sequence)`` order, so a run is a pure
function of its inputs. A blocking ``get`` from a driver (a test, ``sim.run``) advances
virtual time until the future is done; from inside a turn it would deadlock, so it
raises instead.
"""

from __future__ import annotations

import collections
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
    """One node's view of the shared :class:`SimScheduler`: it can be paused, and it is
    one server whose work takes time.

    A paused node is a stalled process (a long GC pause, a frozen VM, ``SIGSTOP``): its
    clock keeps running, but none of its actor turns or timers run, and messages for it
    queue up. On resume everything held runs in the order it became due.

    Service time (the model of :mod:`sim.service`), as an asyncio loop spends it:

    - a message from outside (a client batch, a peer message) is a *job*: :meth:`admit`
      queues it with its cost; the server takes jobs one at a time, in arrival order, and
      when a job's cost has passed its delivery runs (the message enters the node's actor);
    - the actor turns and timers that become due are *calls*: they run while the server
      is free, before it takes the next job (asyncio runs every ready callback before it
      polls its sockets again), and one after another in the order they became due;
    - a call may :meth:`charge` work of its own (encoding and writing a peer message):
      the server is busy until it is done, and the calls after it wait.

    With nothing admitted or charged (no service model) it is the scheduler it always was:
    every call runs when it becomes due.
    """

    def __init__(self, base: SimScheduler) -> None:
        self.base = base
        self.paused = False
        self._held: list[Callable[[], None]] = []
        #: Virtual time until which the server is busy (a job's cost, or charged work).
        self.busy_until = 0.0
        self._calls: collections.deque[Callable[[], None]] = collections.deque()
        self._jobs: collections.deque[tuple[float, Callable[[], None]]] = collections.deque()
        self._delivery: Callable[[], None] | None = None  # the job in progress
        self._wake_at: float | None = None
        self._draining = False
        self._gone = False
        #: Sends whose cost is being spent: ``[fn]`` each, ``[None]`` once gone out.
        self._leaving: collections.deque[list[Callable[[], None] | None]] = collections.deque()

    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            if self.paused:
                self._held.append(fn)
            elif self.busy_until > self.base.env.now:
                self._calls.append(fn)
                self._arm()
            else:
                fn()

        return run

    def call_soon(self, fn: Callable[[], None]) -> None:
        if self._draining:
            self._calls.append(fn)  # runs in this drain, after what is due before it
        else:
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
        """The node crashed: forget what it held and the input it had not handled yet;
        what waited for the server runs now, so its actors' stops are handled at once."""
        self._held.clear()
        self.paused = False
        self._gone = True
        self.busy_until = 0.0
        self._jobs.clear()
        self._delivery = None
        calls, self._calls = self._calls, collections.deque()
        for fn in calls:
            self.base.call_soon(fn)

    # --- service time ------------------------------------------------------------------

    def idle(self) -> bool:
        """Whether the server has nothing to do: a message now is taken at once."""
        return not (self._jobs or self._delivery is not None or self._draining or self.busy_until > self.base.env.now)

    def admit(self, cost: float, deliver: Callable[[], None]) -> None:
        """A message from outside that costs ``cost`` seconds: ``deliver`` runs once the
        server has taken it (after the jobs before it) and spent its cost."""
        if self.idle():
            self._start(cost, deliver)
        else:
            self._jobs.append((cost, deliver))
            if not self._draining:
                self._arm()

    def charge(self, cost: float) -> float:
        """Work of ``cost`` seconds done by the call running now: the server is busy until
        the returned time, and the calls after this one wait for it."""
        now = self.base.env.now
        self.busy_until = (self.busy_until if self.busy_until > now else now) + cost
        return self.busy_until

    def at_free(self, at: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` at virtual time ``at`` (a message leaving once its cost is spent),
        or sooner if the node goes away first (:meth:`flush`)."""
        env = self.base.env
        entry = [fn]
        self._leaving.append(entry)

        def fire(_event: object) -> None:
            fn = entry[0]
            if fn is not None:  # not flushed
                entry[0] = None
                leaving = self._leaving
                if leaving[0] is entry:  # sends leave in the order they were charged
                    leaving.popleft()
                else:
                    leaving.remove(entry)
                self.base._run(fn)  # noqa: SLF001 - the rest of a turn, run as part of one

        env.timeout(at - env.now).callbacks.append(fire)

    def flush(self) -> None:
        """The node's process ends: what its turns already wrote leaves now, in order (a
        process that exits, even one that is killed, loses nothing it had written to
        its sockets)."""
        leaving, self._leaving = self._leaving, collections.deque()
        for entry in leaving:
            fn, entry[0] = entry[0], None
            if fn is not None:
                self.base._run(fn)  # noqa: SLF001

    def _start(self, cost: float, deliver: Callable[[], None]) -> None:
        self._delivery = deliver
        self.busy_until = self.base.env.now + cost
        self._arm()

    def _arm(self) -> None:
        if self._wake_at is None:
            self._wake_at = at = max(self.busy_until, self.base.env.now)
            env = self.base.env
            env.timeout(at - env.now).callbacks.append(self._wake)

    def _wake(self, _event: object) -> None:
        self._wake_at = None
        if self._gone:
            return
        if self.busy_until > self.base.env.now:  # more was charged meanwhile: wait for it
            self._arm()
            return
        deliver, self._delivery = self._delivery, None
        self._drain(deliver)

    def _drain(self, deliver: Callable[[], None] | None) -> None:
        """The server is free: deliver the job just done, run the calls due (and those they
        make due) until one charges work or none is left, then take the next job."""
        run = self.base._run  # noqa: SLF001 - each call is one turn of the host
        calls = self._calls
        self._draining = True
        try:
            if deliver is not None:
                run(deliver)
            env = self.base.env
            while calls and self.busy_until <= env.now:
                if self.paused:
                    self._held.extend(calls)
                    calls.clear()
                    break
                run(calls.popleft())
        finally:
            self._draining = False
        if self.busy_until > self.base.env.now:
            self._arm()
        elif self._jobs:
            self._start(*self._jobs.popleft())
