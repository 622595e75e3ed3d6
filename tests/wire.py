"""Small raw-socket helpers for the integration tests: JSON lines and msgpack on a socket.

Every read has a deadline; nothing here loops without a bound. ``Conn`` is a context
manager so every socket is closed.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import msgpack

__all__ = [
    "Conn",
    "ConnectionClosed",
    "MsgpackConn",
    "closed_by_peer",
    "dumps",
    "port_is_free",
    "port_rebindable",
    "port_refuses",
]


def dumps(obj: Any) -> bytes:
    """One compact JSON line, as a client would send it."""
    return json.dumps(obj, separators=(",", ":")).encode("utf-8") + b"\n"


class ConnectionClosed(Exception):
    """The peer closed (or reset) the connection before the expected data arrived."""


class Conn:
    """A blocking client socket with a line buffer."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.timeout = timeout

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_json(self, *objs: Any) -> None:
        self.sock.sendall(b"".join(dumps(o) for o in objs))

    def _recv(self, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data before the deadline")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 16)
        except ConnectionResetError as exc:
            raise ConnectionClosed("connection reset") from exc
        except socket.timeout as exc:
            raise TimeoutError("no data before the deadline") from exc
        if not chunk:
            raise ConnectionClosed("connection closed by the peer")
        return chunk

    def read_line(self, timeout: float | None = None) -> bytes:
        """One line including its ``\\n``."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\n" not in self.buf:
            self.buf += self._recv(deadline)
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def read_lines(self, count: int, timeout: float | None = None) -> list[bytes]:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        lines: list[bytes] = []
        while len(lines) < count:
            while b"\n" in self.buf and len(lines) < count:
                line, _, self.buf = self.buf.partition(b"\n")
                lines.append(line + b"\n")
            if len(lines) < count:
                self.buf += self._recv(deadline)
        return lines

    def read_json(self, timeout: float | None = None) -> Any:
        return json.loads(self.read_line(timeout))

    def read_jsons(self, count: int, timeout: float | None = None) -> list[Any]:
        return [json.loads(line) for line in self.read_lines(count, timeout)]

    def request(self, obj: Any, timeout: float | None = None) -> Any:
        self.send_json(obj)
        return self.read_json(timeout)

    def read_until_closed(self, timeout: float | None = None) -> bytes:
        """Everything until the peer closes; TimeoutError if it does not close in time."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        data, self.buf = self.buf, b""
        while True:
            try:
                data += self._recv(deadline)
            except ConnectionClosed:
                return data

    def assert_eof(self, timeout: float = 5.0) -> None:
        """The next read sees an orderly close (recv returns b"") with no data before it."""
        assert self.buf == b"", f"unexpected buffered data {self.buf[:200]!r}"
        self.sock.settimeout(timeout)
        assert self.sock.recv(1 << 16) == b""


class MsgpackConn(Conn):
    """The same socket, speaking msgpack maps."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        super().__init__(port, timeout)
        self.unpacker = msgpack.Unpacker(raw=False)
        self.objs: list[Any] = []

    def send_msgs(self, *objs: Any) -> None:
        self.sock.sendall(b"".join(msgpack.packb(o, use_bin_type=True) for o in objs))

    def read_msgs(self, count: int, timeout: float | None = None) -> list[Any]:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.objs) < count:
            self.unpacker.feed(self._recv(deadline))
            self.objs.extend(self.unpacker)
        out, self.objs = self.objs[:count], self.objs[count:]
        return out

    def msg_request(self, obj: Any, timeout: float | None = None) -> Any:
        self.send_msgs(obj)
        return self.read_msgs(1, timeout)[0]


def closed_by_peer(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True when the peer has closed: recv returns b"" (or the connection was reset)."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1 << 16) == b""
    except ConnectionResetError:
        return True


def port_refuses(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port any more."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2.0):
            return False
    except ConnectionRefusedError:
        return True


def port_is_free(port: int) -> bool:
    """Nothing holds 127.0.0.1:port: a plain ``bind`` (no SO_REUSEADDR) succeeds."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def port_rebindable(port: int) -> bool:
    """A new server (SO_REUSEADDR, as the node binds) can listen on the port again.

    Unlike :func:`port_is_free` this tolerates the server side of
    connections the node closed itself lingering in TIME_WAIT, which is the kernel's
    doing and does not stop a restarted node from binding the port.
    """
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
        except OSError:
            return False
        return True
