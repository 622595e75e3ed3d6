"""Logging a failure without the data that caused it.

A request's value can be megabytes, or a secret, and its ``repr`` can itself fail (a
value nested past the recursion limit). So a failure is logged once, as: who failed,
the *type* of what it was handling, the exception's type, its message when that is a
plain string (cut to :data:`MAX_MESSAGE` characters), and the last
:data:`TRACEBACK_FRAMES` frames of its traceback (source lines, not values) — never the
request or message itself, nor an exception argument that is not a string.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_MESSAGE", "TRACEBACK_FRAMES", "ActorFailed", "ReportFailuresTo", "brief", "describe", "log_failure"]

MAX_MESSAGE = 200
TRACEBACK_FRAMES = 12


def brief(value: object, limit: int = 60) -> str:
    """A short rendering of an untrusted value for an error message: a scalar's ``repr``
    cut to ``limit`` characters, a container only by its type (its ``repr`` would walk it,
    and recurse)."""
    if value is None or type(value) in (str, bytes, int, float, bool):
        text = repr(value) if type(value) is not int or value.bit_length() < 256 else "a very large integer"
        return text if len(text) <= limit else text[:limit] + "..."
    return f"a {type(value).__name__}"


def describe(exc: BaseException) -> str:
    """``Type: message``, the message only when it is one plain string, cut short."""
    args = exc.args
    if not args:
        return type(exc).__name__
    if len(args) == 1 and type(args[0]) is str:
        text = args[0]
        if len(text) > MAX_MESSAGE:
            text = text[:MAX_MESSAGE] + "..."
        return f"{type(exc).__name__}: {text}"
    return f"{type(exc).__name__} (arguments not shown)"


def log_failure(logger: logging.Logger, context: str, exc: BaseException) -> None:
    """Log ``exc`` once, at error level, under ``context`` (who, and the type of what)."""
    frames = "".join(traceback.format_tb(exc.__traceback__, limit=-TRACEBACK_FRAMES))
    logger.error("%s failed: %s\n%s", context, describe(exc), frames.rstrip())


# The two messages of ``ScheduledActor.survive_failures``: they belong to the actor kernel
# (actors/kernel/scheduled.py), not to the cache's protocol, so the kernel imports nothing of it.


@dataclass(slots=True, unsafe_hash=True)
class ReportFailuresTo:
    """From now on, tell ``sink`` an :class:`ActorFailed` for every failure this actor
    survives (``ScheduledActor.survive_failures``). ``spawn_node`` points a node's store,
    janitor and replicator at its ``Node``, which counts them in ``stats``."""

    sink: Any


@dataclass(slots=True, unsafe_hash=True)
class ActorFailed:
    """``actor`` lived through an exception while ``what`` (a message type)."""

    actor: str
    what: str
