"""MONITOR (issue 16): the lines a monitoring client gets, compared with a real
redis-server 7.0's for the same commands (timestamps and client ports aside), and the
quoting of every byte as Redis's ``sdscatrepr`` does it."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import pytest

from runtime.local_cluster import NodeProcess
from runtime.resp import encode_command
from runtime.resp_monitor import monitor_lines
from tests.redis_server import needs_redis_server, redis_server


def test_lines_quote_as_redis() -> None:
    line = monitor_lines([[b"SET", b'a"b\\c', b"\x00\xff\r\n\t\x07\x08 ~"]], "127.0.0.1:5", 12.5)
    assert line == b'+12.500000 [0 127.0.0.1:5] "SET" "a\\"b\\\\c" "\\x00\\xff\\r\\n\\t\\a\\b ~"\r\n'
    assert monitor_lines([[b"auth", b"u", b"p"], [b"HELLO", b"3", b"AUTH", b"u", b"p"]], "a", 1.0) == (
        b'+1.000000 [0 a] "auth" "(redacted)" "(redacted)"\r\n'
        b'+1.000000 [0 a] "HELLO" "3" "(redacted)" "(redacted)" "(redacted)"\r\n'
    )


@pytest.fixture(scope="module")
def ports() -> Iterator[tuple[int, int]]:
    with NodeProcess("node1", "--resp-port", "0") as node, redis_server() as theirs:
        assert node.resp_port is not None
        yield node.resp_port, theirs


SCRIPT = [
    [b"SET", b"mk", b"v\x00\xff\"q\""],
    [b"GET", b"mk"],
    [b"CONFIG", b"GET", b"maxmemory"],  # @admin: not shown
    [b"NOSUCH", b"x"],  # unknown: not shown
    [b"GET"],  # wrong argument count: not shown
    [b"MULTI"], [b"INCR", b"mn"], [b"APPEND", b"mk", b"!"], [b"EXEC"],
    [b"AUTH", b"default", b"secret"],
    [b"MGET", b"mk", b"mn", b"x y"],
    [b"PING"],
]


def _monitor_lines(port: int) -> list[str]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as mon, \
            socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        mon.sendall(encode_command([b"MONITOR"]))
        assert mon.recv(5) == b"+OK\r\n"
        client.sendall(b"".join(encode_command(c) for c in SCRIPT))
        replies = b""
        while replies.count(b"\r\n") < 3 or not replies.endswith(b"+PONG\r\n"):
            replies += client.recv(65536)
        got = b""
        deadline = time.monotonic() + 10
        while got.count(b"\r\n") < 9 and time.monotonic() < deadline:
            got += mon.recv(65536)
    lines = got.decode().split("\r\n")[:-1]
    for line in lines:
        stamp = float(line[1:].split(" ", 1)[0])
        assert abs(stamp - time.time()) < 60
    return [re.sub(r"^\+[0-9.]+ \[0 127\.0\.0\.1:[0-9]+\] ", "", line) for line in lines]


@needs_redis_server
@pytest.mark.integration
def test_monitor_shows_what_redis_server_shows(ports: tuple[int, int]) -> None:
    ours, theirs = _monitor_lines(ports[0]), _monitor_lines(ports[1])
    assert ours == theirs
    assert ours[0] == '"SET" "mk" "v\\x00\\xff\\"q\\""' and '"AUTH" "(redacted)" "(redacted)"' in ours
    assert len(ours) == 9


#: What a monitoring connection sends itself after MONITOR: Redis refuses its read and
#: write commands (a monitor is a replica to it), and marks a transaction holding one.
OWN = [
    [b"GET", b"a"], [b"SET", b"a", b"1"], [b"get", b"a"], [b"set", b"a", b"1"], [b"DEL", b"a"], [b"HSET", b"h", b"f", b"v"],
    [b"SADD", b"s", b"m"], [b"DBSIZE"], [b"KEYS", b"*"], [b"SCAN", b"0"], [b"TTL", b"a"], [b"FLUSHDB"], [b"FLUSHALL"],
    [b"PING"], [b"ECHO", b"x"], [b"WATCH", b"a"], [b"UNWATCH"], [b"MULTI"], [b"INCR", b"a"], [b"EXEC"], [b"SELECT", b"0"],
]
_LINE = re.compile(rb"^[0-9]+\.[0-9]+ \[0 ")


def _own_replies(port: int) -> list[object]:
    import hiredis

    with socket.create_connection(("127.0.0.1", port), timeout=10) as mon:
        mon.sendall(encode_command([b"MONITOR"]))
        assert mon.recv(5) == b"+OK\r\n"
        reader = hiredis.Reader()
        replies: list[object] = []
        for command in OWN:  # one at a time: Redis and we feed monitors at other moments
            mon.sendall(encode_command(command))
            while True:
                reply = reader.gets()
                if reply is False:
                    reader.feed(mon.recv(65536))
                elif isinstance(reply, bytes) and _LINE.match(reply):
                    continue  # the monitor's own line
                else:
                    break
            replies.append(str(reply) if isinstance(reply, hiredis.ReplyError) else reply)
        return replies


@needs_redis_server
@pytest.mark.integration
def test_a_monitor_may_not_read_or_write_keys_as_redis_server(ports: tuple[int, int]) -> None:
    """Red team s25: a monitoring connection's GET/SET ran (plain ones on the fast path too);
    Redis refuses them: ``-ERR Replica can't interact with the keyspace``."""
    ours, theirs = _own_replies(ports[0]), _own_replies(ports[1])
    assert ours == theirs
    assert ours[0] == "ERR Replica can't interact with the keyspace" and ours[-2].startswith("EXECABORT")
