"""``SimDisk``: the simulator's :class:`~actors.kernel.disk.Disk`, one per node, that outlives
the node's crashes and restarts, with the faults scenarios schedule (:mod:`sim.faults`).

Each file is its bytes as the process sees them plus its durable prefix (``synced``):
``append`` grows the bytes, ``sync`` makes all of them durable, ``sync_soon`` makes
what was there when it was called durable once the background fsync finishes (after
``fsync_delay`` seconds of virtual time; until then a second one for the file is
refused, as the port says). Renames, removals, truncations and ``install`` are
durable at once (the port fsyncs them, or the directory, itself).

A crash says what the disk keeps (:data:`CRASH_MODES`):

- ``keep``: the process died, the kernel did not: every appended byte survives (a
  ``kill -9``; the page cache is written back later);
- ``lose-unsynced``: power loss: every file falls back to its durable prefix;
- ``torn``: power loss in the middle of writing: each file keeps its durable prefix
  plus a random prefix of what was appended after it (the last write torn).

Faults while running: ``corrupt`` flips a bit on the durable bytes of a file (bit rot,
found at the next load), ``fsync_delay`` makes every fsync take that long (the node's
server is busy meanwhile: ``charge``), ``full`` makes appends fail with ``ENOSPC``.
``fsync_noop`` (a lying fsync: nothing becomes durable) exists only to show that the
durability checker catches a disk that does not keep its promise.

Every random choice comes from the ``rng`` it is given (``{seed}/disk/{node}``), so the
same seed gives the same bytes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from actors.kernel.disk import DiskError

__all__ = ["CRASH_MODES", "SimDisk"]

CRASH_MODES = ("keep", "lose-unsynced", "torn")


@dataclass(slots=True)
class _File:
    data: bytearray
    #: Length of the durable prefix.
    synced: int = 0


class SimDisk:
    def __init__(self, now: Callable[[], float], rng: random.Random) -> None:
        self._now = now
        self.rng = rng
        self.files: dict[str, _File] = {}
        #: Background fsyncs in flight: name -> (durable length once done, done at).
        self._syncing: dict[str, tuple[int, float]] = {}
        #: Seconds each fsync takes; ``charge`` (the node's server, see
        #: :meth:`sim.scheduler.NodeScheduler.charge`) is billed for a blocking one.
        self.fsync_delay = 0.0
        self.charge: Callable[[float], object] | None = None
        self.full = False
        self.fsync_noop = False
        self.syncs = 0

    # --- the port ----------------------------------------------------------------------

    def _file(self, name: str) -> _File:
        if "/" in name or name in ("", ".", ".."):
            raise DiskError(f"not a file name: {name!r}")
        self._settle()
        f = self.files.get(name)
        if f is None:
            f = self.files[name] = _File(bytearray())
        return f

    def names(self) -> list[str]:
        return sorted(self.files)

    def read(self, name: str) -> bytes | None:
        f = self.files.get(name)
        return None if f is None else bytes(f.data)

    def append(self, name: str, data: bytes) -> None:
        if self.full and data:
            raise DiskError(f"cannot write {name}: No space left on device")
        self._file(name).data += data

    def sync(self, name: str) -> None:
        f = self._file(name)
        self.syncs += 1
        if not self.fsync_noop:
            f.synced = len(f.data)
        if self.fsync_delay and self.charge is not None:
            self.charge(self.fsync_delay)

    def sync_soon(self, name: str) -> bool:
        f = self._file(name)
        if name in self._syncing:
            return False
        self.syncs += 1
        if not self.fsync_noop:
            self._syncing[name] = (len(f.data), self._now() + self.fsync_delay)
            self._settle()
        return True

    def truncate(self, name: str, size: int) -> None:
        f = self._file(name)
        del f.data[size:]
        f.synced = len(f.data)

    def install(self, tmp: str, name: str) -> None:
        f = self._file(tmp)
        if not self.fsync_noop:
            f.synced = len(f.data)
        self._syncing.pop(tmp, None)
        self._syncing.pop(name, None)
        self.files[name] = self.files.pop(tmp)

    def install_soon(self, tmp: str, name: str, done: Callable[[DiskError | None], None]) -> None:
        """At once, as :meth:`install` (deterministic; ``done`` sends a message, so the
        store learns of it in a later turn, as from a real disk's thread)."""
        self.install(tmp, name)
        done(None)

    def settle(self) -> None:
        """Nothing runs in the background here but fsyncs, which settle on their own time."""

    def move_aside(self, name: str, suffix: str) -> str:
        n = 1
        while f"{name}{suffix}-{n}" in self.files:
            n += 1
        aside = f"{name}{suffix}-{n}"
        self._syncing.pop(name, None)
        self.files[aside] = self._file(name)
        del self.files[name]
        return aside

    def remove(self, name: str) -> None:
        self._syncing.pop(name, None)
        self.files.pop(name, None)

    def size(self, name: str) -> int:
        f = self.files.get(name)
        return 0 if f is None else len(f.data)

    # --- the simulator's side ------------------------------------------------------------

    def _settle(self) -> None:
        """Background fsyncs due by now have made their bytes durable."""
        if not self._syncing:
            return
        now = self._now()
        for name, (length, done_at) in sorted(self._syncing.items()):
            if done_at <= now:
                del self._syncing[name]
                f = self.files.get(name)
                if f is not None:
                    f.synced = max(f.synced, min(length, len(f.data)))

    def crash(self, mode: str) -> int:
        """The node died: keep what ``mode`` says survives; returns the bytes lost."""
        if mode not in CRASH_MODES:
            raise ValueError(f"disk crash mode must be one of {', '.join(CRASH_MODES)}, not {mode!r}")
        self._settle()
        self._syncing.clear()
        lost = 0
        for name in sorted(self.files):
            f = self.files[name]
            unsynced = len(f.data) - f.synced
            if mode == "keep" or unsynced <= 0:
                f.synced = len(f.data)
                continue
            keep = self.rng.randrange(unsynced) if mode == "torn" else 0
            lost += unsynced - keep
            del f.data[f.synced + keep :]
            f.synced = len(f.data)
        self.full = False
        return lost

    def corrupt(self, name: str, start: int = 0, end: int | None = None) -> int | None:
        """Flip the low bit of one ASCII letter or digit, drawn at random among the durable
        bytes of ``name`` from ``start`` on (up to ``end``); its offset, or None when there is none. Such a
        flip still decodes as msgpack (a string or a number changes): only the block
        checksum can tell, which is what the ``corrupt-reads`` checker's test relies on."""
        f = self.files.get(name)
        if f is None or f.synced <= start:
            return None
        data = f.data
        stop = f.synced if end is None else min(end, f.synced)
        candidates = [i for i in range(start, stop) if 48 <= data[i] <= 57 or 65 <= data[i] <= 90 or 97 <= data[i] <= 122]
        if not candidates:
            return None
        offset = self.rng.choice(candidates)
        data[offset] ^= 1
        return offset
