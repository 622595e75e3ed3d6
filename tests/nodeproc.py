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
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_LINE = re.compile(r"actorcache node (\S+) listening on (\S+):(\d+)")
_RESP_LINE = re.compile(r"actorcache node (\S+) resp on (\S+):(\d+)")


class NodeProcess:
    """One node subprocess.

    ``port`` (default 0: a free port) is the port asked for; ``log_path``, when given,
    sends the node's stderr and, after the start-up line, its stdout to that file
    (appended, so a restarted node adds to the same log) instead of pipes nobody reads,
    which would otherwise fill up and block a chatty node. With ``--resp-port`` among
    ``args`` the second start-up line is read too: ``resp_port`` is the Redis-protocol
    port (None without it).
    """

    def __init__(
        self,
        node_id: str = "node1",
        *args: str,
        start_timeout: float = 15.0,
        port: int = 0,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.node_id = node_id
        self.log_path = Path(log_path) if log_path is not None else None
        self._log = None
        self._drain: threading.Thread | None = None
        self.resp_port: int | None = None
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.log_path is not None:
            self._log = open(self.log_path, "a", buffering=1, encoding="utf-8", errors="replace")
            self._log.write(f"--- start {node_id} port={port} args={list(args)}\n")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runtime.node", node_id, str(port), *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if self._log is None else self._log,
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
                if self._log is not None:
                    self._log.write(line)
                if "--resp-port" in args:
                    resp_line = self.proc.stdout.readline()
                    m = _RESP_LINE.search(resp_line)
                    if m is None:
                        self.kill()
                        raise RuntimeError(f"node {node_id} printed no resp line: {resp_line!r}")
                    self.resp_port = int(m.group(3))
                    if self._log is not None:
                        self._log.write(resp_line)
                if self._log is not None:
                    self._drain = threading.Thread(target=self._drain_stdout, name=f"drain-{node_id}", daemon=True)
                    self._drain.start()
                return
            if self._log is not None:
                self._log.write(line)
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
        exited = self.proc.poll() is not None
        self.kill()
        err = ""
        if self.log_path is not None:
            err = self.log_tail(20)
        elif exited and self.proc.stderr is not None and not self.proc.stderr.closed:
            err = self.proc.stderr.read()
        raise RuntimeError(f"node {node_id} did not start: {line!r} {err}")

    def _drain_stdout(self) -> None:
        stream, log = self.proc.stdout, self._log
        try:
            for line in stream:  # ends at EOF, when the process exits
                log.write(line)
        except (ValueError, OSError):
            pass  # closed under us

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        """Send ``sig`` if the process is still running (SIGSTOP/SIGCONT freeze and thaw it)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log file ("" without ``log_path``)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])

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
            self.proc.kill()  # SIGKILL also ends a SIGSTOPped process
            self.proc.wait(timeout=10)
        if self._drain is not None:
            self._drain.join(timeout=5)  # the pipe is at EOF now that the process is gone
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        if self._log is not None:
            self._log.close()


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
