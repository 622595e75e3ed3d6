"""The asyncio event loop as an actor :class:`~actors.kernel.scheduler.Scheduler`."""

from __future__ import annotations

import asyncio
import threading
from typing import Callable

import pykka

from actors.kernel import BlockingCallInActorError, Cancellable, ScheduledFuture

__all__ = ["LoopScheduler"]

_get_ident = threading.get_ident  # (in_turn runs on every tell)


class LoopScheduler:
    """Runs actor turns as ``call_soon`` callbacks on one event loop.

    ``call_soon`` may be called from any thread; waiting (``Future.get``) is only allowed
    from threads other than the loop's, where it blocks that thread, never the loop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._thread_id: int | None = None

    def bind_thread(self) -> None:
        """Record the loop's thread; call from the loop thread before any actor runs."""
        self._thread_id = threading.get_ident()

    def in_turn(self) -> bool:
        return _get_ident() == self._thread_id

    def call_soon(self, fn: Callable[[], None]) -> None:
        if self.in_turn():
            self.loop.call_soon(fn)
        else:
            self.loop.call_soon_threadsafe(fn)

    def call_later(self, delay: float, fn: Callable[[], None]) -> Cancellable:
        if self.in_turn():
            return self.loop.call_later(delay, fn)
        return _ThreadsafeTimer(self.loop, delay, fn)

    def wait(self, future: ScheduledFuture, timeout: float | None) -> None:
        if self.in_turn():
            raise BlockingCallInActorError(
                "blocking wait on the event loop thread: it would stall every connection"
            )
        done = threading.Event()
        self.loop.call_soon_threadsafe(future.add_done_callback, lambda _f: done.set())
        if not done.wait(timeout):
            raise pykka.Timeout(f"{timeout} seconds")


class _ThreadsafeTimer:
    """A ``call_later`` requested from outside the loop thread, cancellable from anywhere."""

    def __init__(self, loop: asyncio.AbstractEventLoop, delay: float, fn: Callable[[], None]) -> None:
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None
        self._cancelled = False
        loop.call_soon_threadsafe(self._arm, delay, fn)

    def _arm(self, delay: float, fn: Callable[[], None]) -> None:
        if not self._cancelled:
            self._handle = self._loop.call_later(delay, fn)

    def cancel(self) -> None:
        self._cancelled = True
        self._loop.call_soon_threadsafe(self._cancel_on_loop)

    def _cancel_on_loop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
