"""``Continuations``: what an actor does when an answer it waits for arrives, by id.

An actor never blocks: it asks (a store call, a timer) under a fresh id and files the
rest of its work here; the answer carrying that id resumes it, once. One table per actor
holds everything it waits on, so routing an answer is one lookup, never a search of
several tables.

Invariants: ids come from the actor's one counter, so an id is never reused while its
continuation waits; :meth:`resume` removes the continuation before calling it (an
answer that arrives twice continues nothing the second time, and a continuation may
file new ones); an answer for an id nobody waits on (dropped, or never asked) is ignored.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Callable, Generic, TypeVar

__all__ = ["Continuations"]

T = TypeVar("T")


class Continuations(Generic[T]):
    """Continuations by id; ``ids`` numbers them (the actor's one counter)."""

    __slots__ = ("_ids", "_waiting")

    def __init__(self, ids: Iterator[int] | None = None) -> None:
        self._ids = ids if ids is not None else itertools.count(1)
        self._waiting: dict[int, Callable[[T], None]] = {}

    def add(self, then: Callable[[T], None]) -> int:
        """File ``then`` under a new id (ask with that id)."""
        key = next(self._ids)
        self._waiting[key] = then
        return key

    def resume(self, key: int, answer: T) -> bool:
        """Continue the work waiting on ``key`` with ``answer``; False if nothing waits."""
        then = self._waiting.pop(key, None)
        if then is None:
            return False
        then(answer)
        return True

    def discard(self, key: int) -> None:
        """Stop waiting on ``key`` (its answer, if it comes, is ignored)."""
        self._waiting.pop(key, None)

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, key: object) -> bool:
        return key in self._waiting
