"""``FileDisk``: the runtime's :class:`~actors.kernel.disk.Disk`, a directory of real files (``--dir``).

Appends are ``write(2)`` on a descriptor kept open per file (no user-space buffer: what
was appended is in the kernel's page cache, so it survives the process being killed,
though not the machine losing power until it is fsynced). ``sync`` is ``fsync(2)`` on the
event loop's thread (``appendfsync always``: the answer waits for it anyway);
``sync_soon`` runs ``fsync`` on a duplicate descriptor in one background thread, at most
one per file at a time (``everysec``, a snapshot's incremental fsyncs). ``install`` is
fsync of the temporary file, ``rename(2)`` over the target, fsync of the directory;
``install_soon`` does the same on that thread (``BGSAVE``: measured 4-10 ms on the event
loop on a quiet disk, and it is where a busy disk stalls for seconds) and hands the outcome
back to the event loop with ``call_soon_threadsafe``. The thread runs its work in order, so
an install runs after the incremental fsyncs queued before it, and ``settle`` (queue a
no-op and wait for it) waits for all of them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from pathlib import Path
from typing import Callable

from actors.kernel.disk import DiskError

__all__ = ["FileDisk"]


class FileDisk:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DiskError(f"cannot use {self.dir} as the data directory: {exc.strerror}") from None
        self._fds: dict[str, int] = {}
        self._syncing: set[str] = set()
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="actorcache-fsync")

    def _path(self, name: str) -> Path:
        if "/" in name or name in ("", ".", ".."):
            raise DiskError(f"not a file name: {name!r}")
        return self.dir / name

    def _fd(self, name: str) -> int:
        fd = self._fds.get(name)
        if fd is None:
            fd = self._fds[name] = os.open(self._path(name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return fd

    def _close(self, name: str) -> None:
        fd = self._fds.pop(name, None)
        if fd is not None:
            os.close(fd)

    def names(self) -> list[str]:
        return sorted(p.name for p in self.dir.iterdir() if p.is_file())

    def read(self, name: str) -> bytes | None:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DiskError(f"cannot read {name}: {exc.strerror}") from None

    def append(self, name: str, data: bytes) -> None:
        try:
            fd = self._fd(name)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            raise DiskError(f"cannot write {name}: {exc.strerror}") from None

    def sync(self, name: str) -> None:
        try:
            os.fsync(self._fd(name))
        except OSError as exc:
            raise DiskError(f"cannot fsync {name}: {exc.strerror}") from None

    def sync_soon(self, name: str) -> bool:
        with self._lock:
            if name in self._syncing:
                return False
            self._syncing.add(name)
        try:
            fd = os.dup(self._fd(name))
        except OSError as exc:
            self._syncing.discard(name)
            raise DiskError(f"cannot fsync {name}: {exc.strerror}") from None
        self._pool.submit(self._background_sync, name, fd)
        return True

    def _background_sync(self, name: str, fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError:
            pass  # the next sync of this file reports it (fsync errors stay on the file)
        finally:
            os.close(fd)
            with self._lock:
                self._syncing.discard(name)

    def truncate(self, name: str, size: int) -> None:
        self._close(name)
        try:
            with open(self._path(name), "r+b") as f:
                f.truncate(size)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise DiskError(f"cannot truncate {name}: {exc.strerror}") from None

    def install(self, tmp: str, name: str) -> None:
        try:
            os.fsync(self._fd(tmp))
            self._close(tmp)
            self._close(name)
            os.replace(self._path(tmp), self._path(name))
            self._sync_dir()
        except OSError as exc:
            raise DiskError(f"cannot install {name}: {exc.strerror}") from None

    def install_soon(self, tmp: str, name: str, done: Callable[[DiskError | None], None]) -> None:
        try:
            fd = self._fd(tmp)
        except OSError as exc:
            raise DiskError(f"cannot install {name}: {exc.strerror}") from None
        del self._fds[tmp]  # the thread owns (and closes) it now
        self._close(name)
        src, dst = self._path(tmp), self._path(name)
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None  # no event loop (a script, a test): done is called from the thread

        def work() -> None:
            error: DiskError | None = None
            try:
                os.fsync(fd)
                os.replace(src, dst)
                self._sync_dir()
            except OSError as exc:
                error = DiskError(f"cannot install {name}: {exc.strerror}")
            finally:
                os.close(fd)
            if loop is None:
                done(error)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(done, error)

        self._pool.submit(work)

    def settle(self) -> None:
        self._pool.submit(lambda: None).result()

    def _sync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def move_aside(self, name: str, suffix: str) -> str:
        self._close(name)
        n = 1
        while (self.dir / f"{name}{suffix}-{n}").exists():
            n += 1
        aside = f"{name}{suffix}-{n}"
        try:
            os.replace(self._path(name), self.dir / aside)
            self._sync_dir()
        except OSError as exc:
            raise DiskError(f"cannot move {name} aside: {exc.strerror}") from None
        return aside

    def remove(self, name: str) -> None:
        self._close(name)
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise DiskError(f"cannot remove {name}: {exc.strerror}") from None

    def size(self, name: str) -> int:
        try:
            return self._path(name).stat().st_size
        except FileNotFoundError:
            return 0

    def close(self) -> None:
        """Wait for background fsyncs, then close every descriptor."""
        self._pool.shutdown(wait=True)
        for name in list(self._fds):
            self._close(name)

    def __repr__(self) -> str:
        return f"FileDisk({str(self.dir)!r})"
