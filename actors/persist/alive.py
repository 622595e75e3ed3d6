"""The "alive" mark: until when a node's data on disk was known to be a current copy.

A node refuses disk data older than the tombstone lifetime (:mod:`actors.persist.manager`):
a key deleted after the data was current may have had its tombstone purged on every peer.
What matters is when the data was last *current*, not when it was last *written*: an idle
node that is up and in sync has current data however long ago its last write was. So while
the node is ready (its copy complete: a warming node's is not, and marking it would let a
crash mid-warming bring deleted keys back) and what it holds is durable on disk (the log
fsynced; snapshot-only: no change since the last installed snapshot), the store rewrites
this tiny file every ``tombstone_ttl / 4``: ``alive <version> <wall> <current 0|1>``,
installed atomically through the :class:`~actors.kernel.disk.Disk` port.

At load, a current mark at ``T`` makes the data as fresh as ``T`` (if newer than its own
times). A node that loaded its disk writes a mark that is *not* current, holding the loaded
data's freshness: log blocks written while it warms carry fresh times, but the old loaded
records ride along with them, so until a current mark replaces it, freshness is capped at
that mark. A damaged mark is ignored (the data's own times apply: never fresher).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from actors.kernel.disk import Disk

__all__ = ["ALIVE", "AliveMark", "read_mark", "write_mark"]

ALIVE = "alive.acs"
_TMP = ALIVE + ".tmp"


@dataclass(frozen=True, slots=True)
class AliveMark:
    #: Wall time at which the data on disk was (current) or is known to be (not current) fresh.
    at: float
    #: Whether the node was ready (a complete copy) when it wrote this mark.
    current: bool


def read_mark(disk: Disk) -> AliveMark | None:
    """The mark on disk, or None when absent or unreadable (never trusted when damaged)."""
    data = disk.read(ALIVE)
    if not data:
        return None
    try:
        word, version, at, current = data.decode("ascii").split()
        wall = float(at)
    except (UnicodeDecodeError, ValueError):
        return None
    if word != "alive" or version != "1" or current not in ("0", "1") or not math.isfinite(wall):
        return None
    return AliveMark(wall, current == "1")


def write_mark(disk: Disk, mark: AliveMark) -> None:
    """Install ``mark`` atomically (temporary file, fsync, rename, fsync of the directory).
    Raises :class:`~actors.kernel.disk.DiskError`."""
    disk.remove(_TMP)
    disk.append(_TMP, f"alive 1 {mark.at!r} {int(mark.current)}\n".encode("ascii"))
    disk.install(_TMP, ALIVE)
