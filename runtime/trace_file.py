"""``--trace FILE``: the node's trace events as JSON lines (the simulator's schema).

Lines are buffered and written by the event loop at most every ``flush_s`` and at close,
so tracing costs one ``json.dumps`` per event on the hot path, never a syscall per event.

``--trace-sample FRACTION`` keeps the events of only a share of the writes, chosen by key:
a ``write``, ``apply`` or ``read_repair`` event is kept when :func:`key_sampled` says so,
every other event (membership, refusals, clock) always. The rule is a stable function of
the key alone (CRC-32 of its UTF-8 bytes, never Python's salted ``hash``), so every node
keeps the same writes: a write's coordinator event and its replicas' ``apply`` events are
kept or dropped together, and replication latency from a sampled trace is that of the
sampled writes. The sampling lives here, in the runtime's sink: actors call ``ctx.trace``
as before and the simulator, which has no sink of this kind, traces everything. A dropped
event costs the sink one CRC of the key (0.3-0.5 us), a kept one about 4 us.
"""

from __future__ import annotations

import asyncio
import zlib
from pathlib import Path
from typing import Any, TextIO

from actors.kernel.trace import trace_line

__all__ = ["KEYED_EVENTS", "TraceFile", "key_sampled"]

#: The events of one write (or repair) of one key: sampled together, by their ``key``.
KEYED_EVENTS = frozenset({"write", "apply", "read_repair"})

_SPAN = float(1 << 32)


def key_sampled(key: str, fraction: float) -> bool:
    """Whether ``--trace-sample fraction`` keeps the events of ``key``'s writes:
    ``crc32(utf-8 bytes of key) < fraction * 2**32`` (lone surrogates pass through)."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) < fraction * _SPAN


class TraceFile:
    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop, flush_s: float = 0.2, sample: float = 1.0) -> None:
        if not 0 < sample <= 1:
            raise ValueError(f"sample must be in (0, 1], not {sample!r}")
        self._file: TextIO = open(path, "w", encoding="utf-8", errors="surrogatepass")  # noqa: SIM115
        self._loop = loop
        self._flush_s = flush_s
        self._lines: list[str] = []
        self._armed = False
        #: Keyed events with ``crc32(key) >= _below`` are dropped; None: keep everything.
        self._below = sample * _SPAN if sample < 1 else None

    def __call__(self, t: float, node: str, kind: str, fields: dict[str, Any]) -> None:
        """The ``Ctx`` trace sink (called on the loop thread, inside actor turns)."""
        below = self._below
        if below is not None and kind in KEYED_EVENTS:
            key = fields.get("key")  # an event without a string key is kept: the sink never raises in a turn
            if type(key) is str and zlib.crc32(key.encode("utf-8", "surrogatepass")) >= below:
                return
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
