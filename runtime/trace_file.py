"""``--trace FILE``: the node's trace events as JSON lines (the simulator's schema).

Lines are buffered and written by the event loop at most every ``flush_s`` and at close,
so tracing costs one ``json.dumps`` per event on the hot path, never a syscall per event.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, TextIO

from actors.kernel.trace import trace_line

__all__ = ["TraceFile"]


class TraceFile:
    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop, flush_s: float = 0.2) -> None:
        self._file: TextIO = open(path, "w", encoding="utf-8", errors="surrogatepass")  # noqa: SIM115
        self._loop = loop
        self._flush_s = flush_s
        self._lines: list[str] = []
        self._armed = False

    def __call__(self, t: float, node: str, kind: str, fields: dict[str, Any]) -> None:
        """The ``Ctx`` trace sink (called on the loop thread, inside actor turns)."""
        self._lines.append(trace_line(t, node, kind, fields))
        if not self._armed:
            self._armed = True
            self._loop.call_later(self._flush_s, self.flush)

    def flush(self) -> None:
        self._armed = False
        if self._lines and not self._file.closed:
            self._file.write("\n".join(self._lines) + "\n")
            self._lines.clear()
            self._file.flush()

    def close(self) -> None:
        self.flush()
        self._file.close()
