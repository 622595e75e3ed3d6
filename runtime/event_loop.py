"""Which event loop a process runs on: asyncio's own, or uvloop's when it is installed.

uvloop is an optional accelerator (the node's sockets and timers in C, through libuv): the
node behaves the same on either loop, only the CPU per request differs, which is why the
choice is an option (``--event-loop``) and ``bench/stack.py`` measures both.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["AUTO_UVLOOP", "EVENT_LOOPS", "UVLOOP_AVAILABLE", "event_loop_choice", "run_on"]

try:
    import uvloop as _uvloop
except ImportError:  # optional: asyncio's loop serves without it
    _uvloop = None  # type: ignore[assignment]

UVLOOP_AVAILABLE = _uvloop is not None
EVENT_LOOPS = ("auto", "asyncio", "uvloop")
#: Whether ``auto`` picks uvloop when it is installed (never with TLS).
AUTO_UVLOOP = True

T = TypeVar("T")


def event_loop_choice(name: str = "auto", *, tls: bool = False) -> str:
    """``asyncio`` or ``uvloop`` for ``name``; ``auto``: ``$ACTORCACHE_EVENT_LOOP`` when
    set, else uvloop when installed (and ``AUTO_UVLOOP``) unless the process serves
    ``tls``. ValueError for an unknown name, uvloop when it is not installed, and uvloop
    with TLS (the TLS layer, runtime/tls.py, is built and tested on asyncio's
    ``start_tls``; uvloop's behaves differently)."""
    if name == "auto":
        name = os.environ.get("ACTORCACHE_EVENT_LOOP", "").lower() or "auto"
        if name == "auto" or (tls and name == "uvloop"):
            name = "uvloop" if UVLOOP_AVAILABLE and AUTO_UVLOOP and not tls else "asyncio"
    if name not in EVENT_LOOPS[1:]:
        raise ValueError(f"unknown event loop {name!r} (choose from {', '.join(EVENT_LOOPS)})")
    if name == "uvloop" and _uvloop is None:
        raise ValueError("event loop uvloop asked for but uvloop is not installed")
    if name == "uvloop" and tls:
        raise ValueError("--event-loop uvloop does not serve TLS: use --event-loop asyncio (or auto) with TLS options")
    return name


def run_on(name: str, main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop ``name`` (``asyncio`` or ``uvloop``) chooses."""
    factory = _uvloop.new_event_loop if event_loop_choice(name) == "uvloop" else None  # type: ignore[union-attr]
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
