"""Red-team regressions for the RESP transaction and scan commands (session 24): each test
is an attack that once worked, against a real node (and a real redis-server where Redis
defines the answer).

- A MULTI queue held whatever a client queued: 150 SETs of 8 MB made a node started with
  ``--max-memory 64mb`` hold 1.2 GB, and commands answered at once (PING, a syntax error)
  were queued without any count. Now a transaction holds at most ``MAX_MULTI_REQUESTS``
  commands and one command's worth of argument bytes.
- KEYS/SCAN globs matched characters, not bytes (``?`` took all of ``é``), and ``[a-]``
  was not Redis's range to ``]``; HSCAN/SSCAN's (and ACL key patterns') glob matched
  characters too: compared with redis-server by shape.
- One key a JSON client stored with a lone surrogate made every RESP KEYS and SCAN answer
  "internal error" (the reply's encoder refused it).
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.protocol.txn_kinds import MAX_MULTI_REQUESTS
from runtime.local_cluster import NodeProcess
from runtime.resp import encode_command
from tests.redis_server import redis_server

pytestmark = pytest.mark.integration

#: --proto-max-bulk-len of the node here: a transaction holds at most this + 1 MiB of arguments.
_BULK = 1 << 20
#: --max-input-buffer-bytes of the node here: all transactions and partial requests together.
_BUDGET = 5 << 20


@pytest.fixture(scope="module")
def node() -> Iterator[NodeProcess]:
    proc = NodeProcess("node1", "--resp-port", "0", "--proto-max-bulk-len", str(_BULK), "--max-input-buffer-bytes", str(_BUDGET))
    try:
        yield proc
    finally:
        proc.kill()


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    if shutil.which("redis-server") is None:
        pytest.fail(".ci/run installs redis-server")
    with redis_server() as port:
        yield port


def _read_lines(sock: socket.socket, n: int) -> list[bytes]:
    """``n`` simple replies (one line each)."""
    buf = b""
    while buf.count(b"\r\n") < n:
        chunk = sock.recv(1 << 20)
        assert chunk, "connection closed"
        buf += chunk
    return buf.split(b"\r\n")[:n]


def test_a_transaction_holds_at_most_one_commands_worth_of_bytes(node: NodeProcess) -> None:
    value = b"x" * (400 << 10)
    with socket.create_connection(("127.0.0.1", node.resp_port), timeout=30) as sock:
        sock.sendall(encode_command([b"MULTI"]) + encode_command([b"SET", b"k", value]) * 8 + encode_command([b"EXEC"]))
        replies = _read_lines(sock, 10)
    assert replies[0] == b"+OK"
    assert replies[1:6] == [b"+QUEUED"] * 5  # 5 x 400 KiB fit in 2 MiB
    assert replies[6].startswith(b"-ERR a transaction holds at most") and b"bytes" in replies[6]
    assert replies[9].startswith(b"-EXECABORT")
    assert redis.Redis(port=node.resp_port).exists("k") == 0  # nothing ran


def test_a_transaction_counts_commands_answered_at_once(node: NodeProcess) -> None:
    n = MAX_MULTI_REQUESTS + 1
    with socket.create_connection(("127.0.0.1", node.resp_port), timeout=30) as sock:
        sock.sendall(encode_command([b"MULTI"]) + encode_command([b"PING"]) * n + encode_command([b"EXEC"]))
        replies = _read_lines(sock, n + 2)
    assert replies[1:n] == [b"+QUEUED"] * (n - 1)
    assert replies[n].startswith(b"-ERR a transaction holds at most")
    assert replies[n + 1].startswith(b"-EXECABORT")


def test_transactions_of_many_connections_stay_within_the_input_budget(node: NodeProcess) -> None:
    """Red team s25: each connection's queue was bounded, not all of them together: four
    connections each queueing their 2 MiB held 8 MiB past a 5 MiB --max-input-buffer-bytes.
    Now a command past the budget is refused (-OOM) or, when a partial request passes it,
    the connection holding the most is closed: what live connections queued stays within it."""
    value = b"x" * (100 << 10)
    command = encode_command([b"SET", b"k", value])
    socks = [socket.create_connection(("127.0.0.1", node.resp_port), timeout=30) for _ in range(4)]
    try:
        queued = []
        for sock in socks:
            sock.sendall(encode_command([b"MULTI"]) + command * 20 + encode_command([b"PING"]))
        answers = [_lines_until_closed_or(sock, 22) for sock in socks]  # (then every byte sent was read)
        for sock, replies in zip(socks, answers):
            assert len(replies) in (0, 22) and all(r in (b"+OK", b"+QUEUED") or r.startswith(b"-OOM ") for r in replies)
            try:
                sock.sendall(encode_command([b"ECHO", b"alive"]))
            except OSError:
                alive = False  # closed for the budget
            else:
                alive = _lines_until_closed_or(sock, 1) == [b"+QUEUED"]
            queued.append(replies.count(b"+QUEUED") - 1 if alive else 0)  # (PING's reply is +QUEUED too)
        assert 0 < sum(queued) * (len(value) + 4) <= _BUDGET
        kills = redis.Redis(port=node.resp_port).info("stats")["client_query_buffer_limit_disconnections"]
        assert kills > 0 or any(0 < n < 20 for n in queued)
    finally:
        for sock in socks:
            sock.close()
    assert redis.Redis(port=node.resp_port).ping()


def _lines_until_closed_or(sock: socket.socket, n: int) -> list[bytes]:
    """``n`` simple replies, or none if the node closed the connection first."""
    buf = b""
    while buf.count(b"\r\n") < n:
        try:
            chunk = sock.recv(1 << 20)
        except OSError:  # (reset)
            return []
        if not chunk:
            return []
        buf += chunk
    return buf.split(b"\r\n")[:n]


_KEY_ALPHABET = "ab-]^\\[é日"
_PATTERN_ALPHABET = "ab-]^\\[*?é日"
_KEYS = sorted({"a", "b", "-", "]", "[", "^", "\\", "ab", "a-b", "é", "aé", "日本", "日", "-]", "a]b", "é?"})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pattern=st.text(_PATTERN_ALPHABET, min_size=1, max_size=7))
def test_keys_hscan_sscan_globs_match_bytes_as_redis(node: NodeProcess, redis_port: int, pattern: str) -> None:
    ours, theirs = redis.Redis(port=node.resp_port), redis.Redis(port=redis_port)
    if ours.dbsize() != len(_KEYS) + 2:
        for client in (ours, theirs):
            client.flushall()
            client.mset({key: "1" for key in _KEYS})
            client.hset("\x01h", mapping={key: "1" for key in _KEYS})
            client.sadd("\x01s", *_KEYS)
    assert sorted(ours.keys(pattern)) == sorted(theirs.keys(pattern)), pattern
    for scan in ("hscan", "sscan"):
        key = "\x01" + scan[0]
        assert sorted(getattr(ours, scan)(key, 0, match=pattern, count=1000)[1]) == sorted(
            getattr(theirs, scan)(key, 0, match=pattern, count=1000)[1]
        ), (scan, pattern)


def test_a_json_clients_lone_surrogate_key_does_not_break_scan(node: NodeProcess) -> None:
    client = redis.Redis(port=node.resp_port, socket_timeout=10)
    client.flushall()
    client.set("plain", "1")
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
        sock.sendall(b'{"type":"set","key":"a\\ud800b","value":1}\n')
        assert b'"success":true' in sock.recv(1000)
    stored = "a\ud800b".encode("utf-8", "surrogatepass")
    assert sorted(client.keys("*")) == sorted([b"plain", stored])
    cursor, keys = client.scan(0, count=1000)
    assert cursor == 0 and sorted(keys) == sorted([b"plain", stored])
    assert client.keys("a*") == [stored]
    client.flushall()


_CURSORS = ["-1", "18446744073709551615", "18446744073709551616", "99999999999999999999999", "", "+5", "-", "+",
            " 1", "1 ", "abc", "0x1", "007", "-0", "1.5"]


def test_scan_cursors_are_parsed_as_redis(node: NodeProcess, redis_port: int) -> None:
    ours, theirs = redis.Redis(port=node.resp_port), redis.Redis(port=redis_port)
    for cursor in _CURSORS:
        answers = []
        for client in (ours, theirs):
            try:
                next_cursor, _ = client.scan(cursor)  # type: ignore[arg-type]
                answers.append("ok")
            except redis.ResponseError as exc:
                answers.append(str(exc))
        assert answers[0] == answers[1], (cursor, answers)
    assert ours.scan("18446744073709551615") == (0, [])  # past the last partition: done


def test_a_pattern_too_long_to_forward_is_refused_clearly(node: NodeProcess) -> None:
    client = redis.Redis(port=node.resp_port)
    for command in (("KEYS", "*a" * 3000), ("SCAN", "0", "MATCH", "*a" * 3000)):
        with pytest.raises(redis.ResponseError, match="pattern is at most 4096"):
            client.execute_command(*command)
    assert client.keys("*a" * 2000) == []


def test_hash_and_set_keys_exist_and_reading_them_does_not_abort_a_watch(node: NodeProcess, redis_port: int) -> None:
    """EXISTS/TOUCH counted strings only (an mget), and a hash or set read (TYPE, HGET,
    HGETALL run as updates at the coordinator) dirtied every WATCH of the key."""

    def run(port: int) -> list[Any]:
        a, b = redis.Redis(port=port), redis.Redis(port=port)
        a.flushall()
        a.set("k", "1")
        a.hset("h", "f", "1")
        a.sadd("t", "m")
        out: list[Any] = [a.exists("k", "h", "t", "h", "nope"), a.touch("h", "t")]
        for read in (("TYPE", "h"), ("HGET", "h", "f"), ("HGETALL", "h"), ("SMEMBERS", "t"), ("SCARD", "t")):
            pipe = a.pipeline(transaction=True)
            pipe.watch("h", "t")
            b.execute_command(*read)
            pipe.multi()
            pipe.set("x", "1")
            try:
                out.append(pipe.execute())
            except redis.WatchError:
                out.append("aborted")
        pipe = a.pipeline(transaction=True)
        pipe.watch("h")
        b.hset("h", "g", "2")  # a write still aborts
        pipe.multi()
        pipe.set("x", "1")
        with pytest.raises(redis.WatchError):
            pipe.execute()
        return out

    assert run(node.resp_port) == run(redis_port)
