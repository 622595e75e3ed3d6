"""Real ``python -m runtime.node`` subprocesses for integration tests.

Each node binds port 0 and we read the port it got from its start-up line, so tests never
race for ports. Every process is reaped: ``stop()`` sends SIGTERM and waits, then SIGKILLs.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_LINE = re.compile(r"actorcache node (\S+) listening on (\S+):(\d+)")


class NodeProcess:
    def __init__(self, node_id: str = "node1", *args: str, start_timeout: float = 15.0) -> None:
        self.node_id = node_id
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runtime.node", node_id, "0", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + start_timeout
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = _LINE.search(line)
            if m:
                self.host = m.group(2)
                self.port = int(m.group(3))
                self.start_line = line.rstrip("\n")
                return
        err = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
        self.kill()
        raise RuntimeError(f"node did not start: {line!r} {err}")

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def connect(self, timeout: float = 10.0) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def terminate(self, timeout: float = 5.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def read_lines(sock: socket.socket, count: int, timeout: float = 10.0) -> list[bytes]:
    """Read exactly ``count`` newline-terminated lines from ``sock``."""
    sock.settimeout(timeout)
    buf = b""
    lines: list[bytes] = []
    while len(lines) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        *done, buf = buf.split(b"\n")
        lines.extend(done)
    return lines
