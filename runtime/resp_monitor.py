"""MONITOR: stream every command this node's RESP port serves to the clients that asked.

A client that sends ``MONITOR`` gets ``+OK`` and from then on, for every command any RESP
client of this node sends (itself included, as in Redis), a status line in Redis's
format: ``+<unix time>.<microseconds> [0 <client address>] "<arg>" "<arg>" ...``, the
arguments quoted as Redis's ``sdscatrepr`` quotes them (``\\n``, ``\\"``, ``\\xHH`` for
bytes outside printable ASCII). ``AUTH`` and ``HELLO ... AUTH`` show ``(redacted)`` for
their arguments. What a JSON/msgpack client or a peer sends is not shown (no commands
there), and a cluster's monitor shows only what its own node serves, as
``redis-cli monitor`` against one Redis Cluster node does.

Cost: with no monitor, one emptiness check per socket read. With monitors, every command
is formatted once per read (all of a read's lines in one bytes) and written to each
monitor, under its ``--client-output-buffer-limit``: a monitor that does not keep up is
cut off like any slow client, it never makes the node buffer without bound. The
formatting is Python string work per argument, so a monitored node serves commands
several times slower (Redis documents the same kind of cost for its MONITOR).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Protocol

from runtime.resp_session import Deferred, Session

__all__ = ["Monitor", "cmd_monitor", "feed_monitors", "monitor_lines"]


class Monitor(Protocol):
    """What a monitoring connection offers: write a ready reply."""

    def monitor_write(self, data: bytes) -> None: ...


#: Byte -> its text in Redis's sdscatrepr (printable ASCII as itself but ``\\`` and ``"``).
_REPR = [
    {92: "\\\\", 34: '\\"', 10: "\\n", 13: "\\r", 9: "\\t", 7: "\\a", 8: "\\b"}.get(
        b, chr(b) if 32 <= b < 127 else f"\\x{b:02x}"
    )
    for b in range(256)
]
_PLAIN = frozenset(b for b in range(32, 127) if b not in (34, 92))
_REDACTED = {b"AUTH": 1, b"HELLO": 2}  # arguments from which on Redis shows "(redacted)"


def _quoted(arg: bytes) -> str:
    if all(b in _PLAIN for b in arg):
        return '"' + arg.decode("ascii") + '"'
    return '"' + "".join(_REPR[b] for b in arg) + '"'


def monitor_lines(commands: Iterable[list[bytes]], addr: str, now: float) -> bytes:
    """The status lines of ``commands`` sent by the client at ``addr`` at time ``now``."""
    out = []
    prefix = f"+{now:.6f} [0 {addr}] "
    for argv in commands:
        redact = _REDACTED.get(argv[0].upper())
        if redact is None:
            args = " ".join(_quoted(a) for a in argv)
        else:
            args = " ".join([_quoted(a) for a in argv[:redact]] + ['"(redacted)"'] * (len(argv) - redact))
        out.append(prefix + args + "\r\n")
    return "".join(out).encode("ascii")


def feed_monitors(monitors: dict[Any, None], commands: list[list[bytes]], addr: str) -> None:
    """Write the lines of ``commands`` to every monitoring connection (in the order they
    started monitoring: a dict, never a set)."""
    data = monitor_lines(commands, addr, time.time())
    for conn in list(monitors):
        conn.monitor_write(data)


def cmd_monitor(argv: list[bytes], s: Session) -> bytes | Deferred:
    s.monitor = True  # the connection registers itself once it sees this
    return b"+OK\r\n"
