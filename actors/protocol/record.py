"""``Record``: one key's full replicated state, as replicas exchange it.

A live value has ``purge_at is None``; a tombstone (a delete, or an expired value in a
replicated cluster) has ``value is None`` and the epoch second ``purge_at`` after which
every replica may forget it. Both deadlines are absolute and set by the coordinator, so
every replica hides and purges the same entry at the same moment (up to clock skew).
Replicas merge records by last-write-wins on ``version``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from actors.protocol.version import Version

__all__ = ["Record"]


class Record(NamedTuple):
    key: str
    value: Any
    deadline: float | None
    version: Version
    purge_at: float | None = None

    @property
    def is_tombstone(self) -> bool:
        return self.purge_at is not None
