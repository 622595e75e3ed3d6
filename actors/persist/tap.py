"""``Tap``: what persistence learns from the keyspace, one key at a time.

The keyspace calls it with a key just before anything about that key changes
(``Keyspace.tap``). It keeps:

- ``dirty``: keys changed since the store's last turn ended, which the append-only log
  writes then (each key's state at the end of the turn: a turn's replies go out only after
  its log block is written, so every acknowledged change is in the log);
- ``changes``: how many changes since the last snapshot (the ``--save`` rules' count);
- ``preimages``: while a snapshot is being captured, each touched key's state from before
  its first change since the capture started (copy-on-write of touched entries: entries
  are immutable tuples, so keeping the old one is keeping a reference). The capture
  writes a key's pre-image when it has one, else its current state, which then has not
  changed since the capture began: the snapshot is the keyspace at one instant.
"""

from __future__ import annotations

from typing import Any

from actors.store.keyspace import Keyspace

__all__ = ["Tap"]


class Tap:
    __slots__ = ("changes", "dirty", "keyspace", "logging", "preimages")

    def __init__(self, keyspace: Keyspace, logging: bool) -> None:
        self.keyspace = keyspace
        #: Whether changed keys are kept for the log (``--appendonly yes``).
        self.logging = logging
        self.dirty: dict[str, None] = {}
        self.changes = 0
        self.preimages: dict[str, tuple[Any, Any]] | None = None

    def __call__(self, key: str) -> None:
        self.changes += 1
        if self.logging:
            self.dirty[key] = None
        pre = self.preimages
        if pre is not None and key not in pre:
            pre[key] = self.keyspace.peek(key)

    def take_dirty(self) -> list[str]:
        """The keys changed since the last call, in the order first changed."""
        keys = list(self.dirty)
        self.dirty.clear()
        return keys
