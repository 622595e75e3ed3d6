"""``Disk``: the port through which a node's actors reach durable storage.

Like time and peers (:class:`~actors.kernel.ctx.Ctx`), the disk is provided by the host:
the runtime gives a directory of real files (:class:`runtime.file_disk.FileDisk`), and a
simulator can give a disk that survives a simulated crash and injects faults (lose what was
not fsynced, tear the last write, corrupt a block, slow fsync, a full disk). The persistence
logic in :mod:`actors.persist` never opens a file: it is fed entries and records and hands
the bytes it wants written, and the fsyncs it needs, to this port.

Names are flat file names inside the node's data directory (no ``/``). Every method runs
on the host's thread inside a turn; what may block is said per method. Failures raise
:class:`DiskError` (a full disk, an I/O error): the caller reports it and goes on serving.
"""

from __future__ import annotations

from typing import Callable, Protocol

__all__ = ["Disk", "DiskError"]


class DiskError(Exception):
    """A disk operation failed (``ENOSPC``, ``EIO``, a missing file): the message says which."""


class Disk(Protocol):
    def names(self) -> list[str]:
        """The files in the data directory, sorted."""
        ...

    def read(self, name: str) -> bytes | None:
        """A whole file, or None when it does not exist (at start-up only: may block)."""
        ...

    def append(self, name: str, data: bytes) -> None:
        """``write(2)`` ``data`` at the end of ``name`` (created if missing). Not durable
        until :meth:`sync`; a crash may keep any prefix of what was appended since."""
        ...

    def sync(self, name: str) -> None:
        """``fsync(2)``: blocks until what was appended to ``name`` is durable."""
        ...

    def sync_soon(self, name: str) -> bool:
        """Start an fsync of ``name`` off the host's thread (``appendfsync everysec``);
        False, doing nothing, while the previous one for ``name`` is still running
        (Redis postpones it the same way)."""
        ...

    def truncate(self, name: str, size: int) -> None:
        """Cut ``name`` to ``size`` bytes and make that durable (a torn log tail)."""
        ...

    def install(self, tmp: str, name: str) -> None:
        """Make ``tmp`` durable and atomically the new ``name``: fsync ``tmp``, rename it
        over ``name``, fsync the directory. Blocks (``SAVE``, whose answer waits anyway)."""
        ...

    def install_soon(self, tmp: str, name: str, done: Callable[[DiskError | None], None]) -> None:
        """:meth:`install` off the host's thread (``BGSAVE``: an fsync may take from
        milliseconds to seconds, and the node serves meanwhile). ``done`` is called on the
        host's thread with None or the :class:`DiskError`, possibly before this returns (a
        simulated disk): it must only send a message. Nothing may be appended to ``tmp``
        after this call."""
        ...

    def settle(self) -> None:
        """Block until every operation started by :meth:`sync_soon` or :meth:`install_soon`
        has finished (their ``done`` calls may still be on their way)."""
        ...

    def move_aside(self, name: str, suffix: str) -> str:
        """Rename ``name`` to a free name ending in ``suffix`` (a corrupt file kept for
        inspection, never loaded again); returns the new name."""
        ...

    def remove(self, name: str) -> None:
        """Delete ``name`` (no error when it is already gone)."""
        ...

    def size(self, name: str) -> int:
        """Bytes in ``name`` (appended ones included), 0 when it does not exist."""
        ...
