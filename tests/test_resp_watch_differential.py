"""Differential test of WATCH against a real redis-server: which writes by another
connection make a watching connection's EXEC fail (a nil reply).

Connection A sets up keys, WATCHes ``w``, connection B runs one command (every write the
RESP door serves, and some reads, on the watched key or another, including no-ops: EXPIRE
XX of a key without a TTL, SETNX of an existing key, a WRONGTYPE, a RENAMENX that does
nothing), then A runs MULTI/SET/EXEC. All combinations, against a node and redis-server 7.0:

- B's replies are the same as Redis's, byte for byte;
- whenever Redis aborts A's EXEC (the write changed ``w``), ours aborts it too: a write
  path that forgets to mark watches (a fast path, say) lets a lost update through here;
- ours may abort where Redis runs it: a write *command* on a watched key marks it whatever
  its effect (docs/resp.md, "Differences"), never the other way round.
"""

from __future__ import annotations

import itertools
import shutil
import socket
from collections.abc import Iterator

import hiredis
import pytest

from runtime.local_cluster import NodeProcess
from runtime.resp import encode_command
from tests.redis_server import redis_server

pytestmark = pytest.mark.integration


class _Wire:
    """A pipelining RESP2 client; replies parsed by hiredis (errors as their text)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.reader = hiredis.Reader()

    def run(self, *commands: list[bytes]) -> list[object]:
        self.sock.sendall(b"".join(encode_command(c) for c in commands))
        out: list[object] = []
        while len(out) < len(commands):
            reply = self.reader.gets()
            if reply is False:
                chunk = self.sock.recv(65536)
                assert chunk, "connection closed"
                self.reader.feed(chunk)
                continue
            out.append(_plain(reply))
        return out

    def close(self) -> None:
        self.sock.close()


def _plain(reply: object) -> object:
    if isinstance(reply, hiredis.ReplyError):
        return ("error", str(reply))
    if isinstance(reply, list):
        return [_plain(r) for r in reply]
    return reply


def _writes() -> list[tuple[bytes, ...]]:
    keys = [b"w", b"o", b"h"]  # w: watched, o: another string, h: a hash
    out: list[tuple[bytes, ...]] = []
    for k in keys:
        for c in (b"SET", b"GETSET", b"SETNX", b"APPEND"):
            out += [(c, k, b"1"), (c, k, b"x")]
        for c in (b"DEL", b"UNLINK", b"INCR", b"DECR", b"PERSIST", b"GETDEL", b"GETEX", b"TOUCH", b"GET", b"EXISTS",
                  b"TYPE", b"STRLEN", b"TTL"):
            out.append((c, k))
        for c in (b"INCRBY", b"DECRBY", b"INCRBYFLOAT", b"EXPIRE", b"PEXPIRE", b"EXPIREAT", b"PEXPIREAT"):
            out += [(c, k, a) for a in (b"0", b"100", b"-1", b"x", b"99999999999")]
        out += [(b"EXPIRE", k, t, f) for t in (b"100", b"0", b"-5") for f in (b"NX", b"XX", b"GT", b"LT")]
        out += [(b"GETEX", k, b"PERSIST"), (b"GETEX", k, b"EX", b"100"), (b"GETEX", k, b"EX", b"0"), (b"GETEX", k, b"PX", b"-1")]
        for v in (b"1", b"x"):
            for o in ((b"NX",), (b"XX",), (b"KEEPTTL",), (b"GET",), (b"EX", b"100"), (b"EX", b"0"), (b"NX", b"GET"), (b"XX", b"GET")):
                out.append((b"SET", k, v, *o))
        out += [(b"SETEX", k, b"100", b"v"), (b"PSETEX", k, b"100", b"v"), (b"GETRANGE", k, b"0", b"1")]
        for k2 in keys:
            out += [(b"RENAME", k, k2), (b"RENAMENX", k, k2), (b"MSET", k, b"1", k2, b"2")]
        out += [(b"HSET", k, b"f", b"1"), (b"HSET", k, b"g", b"1"), (b"HDEL", k, b"f"), (b"HDEL", k, b"g"),
                (b"HINCRBY", k, b"f", b"0"), (b"HINCRBY", k, b"f", b"x"), (b"HMSET", k, b"f", b"1"),
                (b"SADD", k, b"m"), (b"SADD", k, b"n"), (b"SREM", k, b"m"), (b"SREM", k, b"n")]
    return [*out, (b"FLUSHDB",), (b"FLUSHALL",), (b"FLUSHDB", b"ASYNC")]


_SETUPS = {
    "string": [[b"SET", b"w", b"1"]],
    "string with a ttl": [[b"SET", b"w", b"1", b"EX", b"1000"]],
    "missing": [],
    "hash": [[b"HSET", b"w", b"f", b"1"]],
    "set": [[b"SADD", b"w", b"m"]],
}


@pytest.fixture(scope="module")
def wires() -> Iterator[list[tuple[_Wire, _Wire]]]:
    if shutil.which("redis-server") is None:
        pytest.fail(".ci/run installs redis-server")
    with NodeProcess("node1", "--resp-port", "0") as node, redis_server() as theirs:
        assert node.resp_port is not None
        pairs = [(_Wire(port), _Wire(port)) for port in (node.resp_port, theirs)]
        try:
            yield pairs
        finally:
            for a, b in pairs:
                a.close()
                b.close()


@pytest.mark.parametrize("setup", list(_SETUPS))
def test_a_write_redis_says_changed_a_watched_key_aborts_exec_here_too(wires: list[tuple[_Wire, _Wire]], setup: str) -> None:
    unsafe, differ = [], []
    for write in _writes():
        answers = []
        for a, b in wires:
            a.run([b"UNWATCH"], [b"FLUSHALL"], [b"SET", b"o", b"5"], [b"HSET", b"h", b"f", b"1"], *_SETUPS[setup])
            a.run([b"WATCH", b"w"])
            replies = b.run(list(write))
            answers.append((replies, a.run([b"MULTI"], [b"SET", b"w", b"mine"], [b"EXEC"])[2]))
        (ours, our_exec), (theirs, their_exec) = answers
        if ours != theirs:
            differ.append((write, ours, theirs))
        if their_exec is None and our_exec is not None:
            unsafe.append(write)  # Redis saw w change; we ran the transaction over it
    assert not differ, differ[:10]
    assert not unsafe, unsafe[:10]
