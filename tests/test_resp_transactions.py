"""MULTI/EXEC/DISCARD/WATCH/UNWATCH, FLUSHDB and SCAN/KEYS over RESP: a real single node
next to a real redis-server, the same raw command sequences sent to both and every reply
compared byte for byte; redis-py's transactions and redis-cli's ``--scan`` and
``--bigkeys`` against the node.

One node and one redis-server for the module; every test flushes both first.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest
import redis

from runtime.local_cluster import NodeProcess
from runtime.resp import encode_command
from tests.redis_server import redis_server as _redis_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def node() -> Iterator[NodeProcess]:
    proc = NodeProcess("node1", "--resp-port", "0")
    try:
        yield proc
    finally:
        proc.kill()


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    if shutil.which("redis-server") is None:
        pytest.fail(".ci/run installs redis-server")
    with _redis_server() as port:
        yield port


class Raw:
    """A raw RESP connection: send commands, read exactly one reply each (raw bytes)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self) -> bytes:
        line = self._line()
        kind = line[:1]
        if kind in (b"+", b"-", b":", b"_"):
            return line + b"\r\n"
        if kind == b"$":
            n = int(line[1:])
            if n < 0:
                return line + b"\r\n"
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[: n + 2], self.buf[n + 2 :]
            return line + b"\r\n" + data
        if kind == b"*":
            n = int(line[1:])
            return line + b"\r\n" + b"".join(self._reply() for _ in range(max(n, 0)))
        raise AssertionError(f"unexpected reply line {line!r}")

    def run(self, *commands: tuple[str, ...]) -> list[bytes]:
        """Send ``commands`` pipelined in one write; their replies."""
        self.sock.sendall(b"".join(encode_command([a.encode() for a in c]) for c in commands))
        return [self._reply() for _ in commands]


@pytest.fixture
def both(node: NodeProcess, redis_port: int) -> Iterator[tuple[Raw, Raw]]:
    ours, theirs = Raw(node.resp_port), Raw(redis_port)
    ours.run(("FLUSHALL",))
    theirs.run(("FLUSHALL",))
    try:
        yield ours, theirs
    finally:
        ours.close()
        theirs.close()


SEQUENCES = {
    "exec": [
        ("SET", "a", "1"), ("MULTI",), ("SET", "a", "2"), ("INCR", "n"), ("GET", "a"), ("MGET", "a", "n", "zz"),
        ("EXPIRE", "a", "100"), ("TTL", "a"), ("DEL", "a", "n"), ("PING",), ("ECHO", "hi"), ("EXEC",), ("GET", "a"),
    ],
    "django set_many": [
        ("MULTI",), ("MSET", ":1:a", "1", ":1:b", "2"), ("EXPIRE", ":1:a", "300"), ("EXPIRE", ":1:b", "300"), ("EXEC",),
        ("MGET", ":1:a", ":1:b"), ("TTL", ":1:b"),
    ],
    "runtime error inside": [("SET", "s", "x"), ("MULTI",), ("INCR", "s"), ("SET", "t", "1"), ("SET", "u", "1", "BAD"), ("EXEC",), ("GET", "t")],
    "execabort": [("MULTI",), ("SET", "a", "1"), ("NOSUCH", "x"), ("SET", "b"), ("EXEC",), ("GET", "a"), ("EXEC",)],
    "discard": [("MULTI",), ("SET", "a", "1"), ("DISCARD",), ("GET", "a"), ("DISCARD",), ("MULTI",), ("MULTI",), ("DISCARD",)],
    "empty": [("MULTI",), ("EXEC",)],
    "watch unchanged": [("SET", "w", "1"), ("WATCH", "w"), ("GET", "w"), ("MULTI",), ("SET", "w", "2"), ("EXEC",), ("GET", "w")],
    "watch own write": [("WATCH", "w"), ("SET", "w", "9"), ("MULTI",), ("SET", "w", "2"), ("EXEC",), ("GET", "w")],
    "unwatch": [("WATCH", "w"), ("SET", "w", "9"), ("UNWATCH",), ("MULTI",), ("SET", "w", "2"), ("EXEC",)],
    "watch inside multi": [("MULTI",), ("WATCH", "x"), ("SET", "x", "1"), ("EXEC",)],
    # Red team s25: MONITOR inside MULTI made the connection a monitor (GET's reply came after its monitor line)
    "monitor inside multi": [("MULTI",), ("MONITOR",), ("SET", "a", "1"), ("EXEC",), ("GET", "a"), ("MULTI",), ("SAVE",),
                             ("EXEC",), ("GET", "a")],
    "flush": [("SET", "a", "1"), ("MSET", "b", "1", "c", "2"), ("FLUSHDB",), ("DBSIZE",), ("GET", "a"), ("FLUSHALL", "ASYNC"), ("FLUSHDB", "SYNC"), ("FLUSHDB", "NOW")],
    "keys": [("MSET", "user:1", "a", "user:2", "b", "other", "c"), ("KEYS", "nomatch*"), ("SCAN", "x"), ("SCAN", "0", "COUNT", "0")],
}


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_same_replies_as_redis(both: tuple[Raw, Raw], name: str) -> None:
    ours, theirs = both
    for command in SEQUENCES[name]:  # one at a time and then pipelined: both must agree with Redis
        assert ours.run(command) == theirs.run(command), command
    ours.run(("FLUSHALL",))
    theirs.run(("FLUSHALL",))
    assert ours.run(*SEQUENCES[name]) == theirs.run(*SEQUENCES[name])


def test_watch_sees_another_connection_write(both: tuple[Raw, Raw], node: NodeProcess, redis_port: int) -> None:
    for conn, port in zip(both, (node.resp_port, redis_port)):
        other = Raw(port)
        try:
            conn.run(("SET", "w", "1"))
            assert conn.run(("WATCH", "w"), ("MULTI",), ("SET", "w", "mine")) == [b"+OK\r\n", b"+OK\r\n", b"+QUEUED\r\n"]
            other.run(("SET", "w", "theirs"))
            assert conn.run(("EXEC",), ("GET", "w")) == [b"*-1\r\n", b"$6\r\ntheirs\r\n"]
            conn.run(("WATCH", "w"))
            other.run(("DEL", "w"))  # a delete is a change too (no tombstone on a single node)
            assert conn.run(("MULTI",), ("SET", "w", "x"), ("EXEC",))[2] == b"*-1\r\n"
            conn.run(("WATCH", "w2"))
            other.run(("SET", "w3", "unrelated"))
            assert conn.run(("MULTI",), ("GET", "w"), ("EXEC",))[2] == b"*1\r\n$-1\r\n"
        finally:
            other.close()


def test_a_write_after_exec_in_the_same_read_does_not_abort_it(both: tuple[Raw, Raw]) -> None:
    """Red team s26: WATCH and MULTI each in a read of their own, then ``EXEC`` and writes
    of the watched key in one read: Redis runs the transaction (the writes come after
    it); ours aborted it, the whole read being walked before the EXEC was checked."""
    ours, theirs = both
    for conn in both:
        conn.run(("SET", "w", "1"))
        conn.run(("WATCH", "w"))
        conn.run(("MULTI",))
        conn.run(("SET", "x", "in"))
    assert ours.run(("EXEC",), ("SET", "w", "2"), ("INCR", "w"), ("GET", "x")) == theirs.run(
        ("EXEC",), ("SET", "w", "2"), ("INCR", "w"), ("GET", "x")
    ) == [b"*1\r\n+OK\r\n", b"+OK\r\n", b":3\r\n", b"$2\r\nin\r\n"]


def test_redis_py_transactions(node: NodeProcess) -> None:
    r = redis.Redis(port=node.resp_port)
    r2 = redis.Redis(port=node.resp_port)
    try:
        r.set("counter", 5)
        with r.pipeline() as pipe:  # check-and-set: WATCH, read, MULTI, write, EXEC
            pipe.watch("counter")
            value = int(pipe.get("counter"))
            pipe.multi()
            pipe.set("counter", value + 1)
            assert pipe.execute() == [True]
        with r.pipeline() as pipe:
            pipe.watch("counter")
            r2.incr("counter")
            pipe.multi()
            pipe.set("counter", 0)
            with pytest.raises(redis.WatchError):
                pipe.execute()
        assert r.get("counter") == b"7"
        assert r.pipeline().set("x", 1).incr("x").get("x").execute() == [True, 2, b"2"]
        with pytest.raises(redis.ResponseError):
            r.pipeline().set("y", 1).execute_command("NOSUCH").execute()
        assert r.get("y") is None
    finally:
        r.close()
        r2.close()


def test_scan_returns_every_key_while_keys_come_and_go(node: NodeProcess) -> None:
    """Redis's guarantee: every key present for the whole scan comes back at least once,
    with keys added and deleted between steps."""
    r = redis.Redis(port=node.resp_port)
    try:
        r.flushdb()
        stable = {f"stable:{i}" for i in range(600)}
        r.mset({k: 1 for k in stable})
        r.mset({f"gone:{i}": 1 for i in range(300)})
        seen: set[str] = set()
        cursor, step = 0, 0
        while True:
            cursor, keys = r.scan(cursor, count=50)
            seen.update(k.decode() for k in keys)
            r.delete(*[f"gone:{i}" for i in range(step * 20, step * 20 + 20)] or ["none"])
            r.mset({f"new:{step}:{i}": 1 for i in range(20)})
            step += 1
            if cursor == 0:
                break
        assert stable <= seen
        assert step > 2, "more than one step"
        assert {k.decode() for k in r.scan_iter(match="stable:1?")} == {f"stable:{i}" for i in range(10, 20)}
        assert sorted(r.keys("stable:59*")) == sorted(f"stable:{i}".encode() for i in [59] + list(range(590, 600)))
        assert list(r.scan_iter(_type="hash")) == []
    finally:
        r.close()


def test_redis_cli_scan(node: NodeProcess) -> None:
    r = redis.Redis(port=node.resp_port)
    try:
        r.flushdb()
        r.mset({f"k{i}": "v" * i for i in range(1, 40)})
        out = subprocess.run(
            ["redis-cli", "-p", str(node.resp_port), "--scan", "--pattern", "k1*"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.split()
        assert sorted(out) == sorted(["k1"] + [f"k{i}" for i in range(10, 20)])
    finally:
        r.close()


def test_redis_cli_bigkeys(node: NodeProcess) -> None:
    r = redis.Redis(port=node.resp_port)
    try:
        r.flushdb()
        r.mset({f"k{i}": "v" * i for i in range(1, 40)})
        big = subprocess.run(
            ["redis-cli", "-p", str(node.resp_port), "--bigkeys"], capture_output=True, text=True, timeout=30
        )
        assert big.returncode == 0, big.stdout + big.stderr
        assert "Biggest string found so far '\"k39\"' with 39 bytes" in big.stdout, big.stdout
        assert "39 strings with" in big.stdout, big.stdout
    finally:
        r.close()
