"""Helpers for the connection-limit integration tests: a node's memory from
``/proc/PID/status``, its ``stats`` on a fresh connection, and waiting for the node to
close a socket (every wait bounded in time and in bytes read)."""

from __future__ import annotations

import socket
import time
from typing import Any

from tests.wire import Conn

__all__ = ["memory_mib", "node_stats", "wait_closed"]


def memory_mib(pid: int) -> dict[str, float]:
    """``{"rss": VmRSS, "peak": VmHWM}`` of process ``pid``, in MiB."""
    fields = {"VmRSS": "rss", "VmHWM": "peak"}
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in fields:
                out[fields[name]] = int(value.split()[0]) / 1024  # kB
    return out


def node_stats(port: int) -> dict[str, Any]:
    """The node's ``stats``, asked on a connection of its own."""
    with Conn(port) as conn:
        reply = conn.request({"type": "stats"})
    assert reply["type"] == "stats", reply
    return reply["stats"]


def wait_closed(sock: socket.socket, timeout: float, max_bytes: int = 256 << 20) -> tuple[bool, int]:
    """Read (and drop) whatever arrives until the node closes ``sock`` (EOF or reset);
    returns ``(closed, bytes read)``: closed is False if ``timeout`` passed first."""
    deadline = time.monotonic() + timeout
    got = 0
    while got <= max_bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False, got
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(1 << 20)
        except (ConnectionResetError, BrokenPipeError):
            return True, got
        except (socket.timeout, TimeoutError):
            return False, got
        if not chunk:
            return True, got
        got += len(chunk)
    return False, got
