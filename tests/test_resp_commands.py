"""The RESP command table and connection, without a node: which node messages each
command becomes, Redis's exact error wording, reply encoding, and pipeline order when
some replies come from the node and others are immediate."""

from __future__ import annotations

from typing import Any

import pytest

from actors.protocol.errors import ErrorCode
from actors.protocol.txn_messages import Scan, ScanReply
from actors.protocol.messages import (
    Ack,
    CollOp,
    Delete,
    ErrorReply,
    Expire,
    Get,
    Incr,
    MGet,
    MSet,
    Ping,
    Pong,
    Set,
    Stats,
    StatsReply,
    Ttl,
    TtlReply,
    Value,
    Values,
)
from actors.protocol.edge import BatchReply, ClientBatch, ClientDisconnected, typed_requests
from runtime.resp_commands import dispatch
from runtime.resp_keyspace import value_bulk
from runtime.resp_server import info_text
from runtime.resp_session import RespServerInfo, Session
from tests.resp_fakes import FakeNode, FakeTransport, connection


def session(proto: int = 2) -> Session:
    s = Session(7, RespServerInfo(node_id="n1", port=6380))
    s.proto = proto
    return s


def cmd(*args: bytes | str) -> list[bytes]:
    return [a.encode() if isinstance(a, str) else a for a in args]


def requests_of(*args: bytes | str) -> tuple[Any, ...]:
    result = dispatch(cmd(*args), session())
    assert type(result) is tuple, result
    return result[0]


def reply_to(args: tuple[bytes | str, ...], replies: tuple[Any, ...], proto: int = 2) -> bytes:
    s = session(proto)
    result = dispatch(cmd(*args), s)
    assert type(result) is tuple, result
    _reqs, build, arg = result
    return build(replies, 0, proto, arg)


# --- commands -> node messages -----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("GET", "k"), (Get("k"),)),
        (("get", b"\xff\x00k"), (Get("\udcff\x00k"),)),  # any bytes are a key, losslessly
        (("SET", "k", b"\x00\xff"), (Set("k", b"\x00\xff"),)),
        (("SET", "k", "v", "EX", "10"), (Set("k", b"v", 10.0),)),
        (("set", "k", "v", "px", "1500", "nx"), (Set("k", b"v", 1.5, cond="nx"),)),
        (("SET", "k", "v", "XX", "GET", "KEEPTTL"), (Set("k", b"v", None, cond="xx", get=True, keep_ttl=True),)),
        (("SET", "k", "v", "EX", "1", "EX", "2"), (Set("k", b"v", 2.0),)),  # as Redis: the last one
        (("DEL", "a", "b", "a"), (Delete("a"), Delete("b"), Delete("a"))),
        (("EXISTS", "a", "b"), (CollOp("a", "keytype"), CollOp("b", "keytype"))),
        (("MGET", "a", "b"), (MGet(("a", "b")),)),
        (("MSET", "a", "1", "b", "2"), (MSet((("a", b"1"), ("b", b"2"))),)),
        (("EXPIRE", "k", "5"), (Expire("k", 5.0),)),
        (("PEXPIRE", "k", "250"), (Expire("k", 0.25),)),
        (("PERSIST", "k"), (Expire("k", None),)),
        (("TTL", "k"), (Ttl("k"),)),
        (("PTTL", "k"), (Ttl("k"),)),
        (("INCR", "k"), (Incr("k", 1),)),
        (("DECR", "k"), (Incr("k", -1),)),
        (("INCRBY", "k", "-5"), (Incr("k", -5),)),
        (("DECRBY", "k", "5"), (Incr("k", -5),)),
        (("PING",), (Ping(),)),
        (("DBSIZE",), (Scan(0, None, 1 << 62, count_only=True),)),
        (("INFO", "keyspace"), (Stats(),)),
    ],
)
def test_commands_become_node_messages(args: tuple[Any, ...], expected: tuple[Any, ...]) -> None:
    assert requests_of(*args) == expected


def test_set_exat_is_an_absolute_deadline() -> None:
    import time

    deadline = int(time.time()) + 100
    (req,) = requests_of("SET", "k", "v", "EXAT", str(deadline))
    assert req.at == deadline and req.ttl is None and req.conditional
    (req,) = requests_of("SET", "k", "v", "PXAT", "1")  # long past: the store deletes at once (rmw)
    assert req.at == 0.001


@pytest.mark.parametrize(
    ("args", "reply"),
    [
        (("GET",), b"-ERR wrong number of arguments for 'get' command\r\n"),
        (("get", "a", "b"), b"-ERR wrong number of arguments for 'get' command\r\n"),
        (("MSET", "a", "1", "b"), b"-ERR wrong number of arguments for 'mset' command\r\n"),
        (("foo",), b"-ERR unknown command 'foo', with args beginning with: \r\n"),
        (("FOO", "a", "b c"), b"-ERR unknown command 'FOO', with args beginning with: 'a' 'b c' \r\n"),
        (("foo", "x\r\ny"), b"-ERR unknown command 'foo', with args beginning with: 'x  y' \r\n"),
        (("SET", "k", "v", "EX"), b"-ERR syntax error\r\n"),
        (("SET", "k", "v", "NX", "XX"), b"-ERR syntax error\r\n"),
        (("SET", "k", "v", "EX", "1", "PX", "1"), b"-ERR syntax error\r\n"),
        (("SET", "k", "v", "KEEPTTL", "EX", "1"), b"-ERR syntax error\r\n"),
        (("SET", "k", "v", "BOGUS"), b"-ERR syntax error\r\n"),
        (("SET", "k", "v", "EX", "0"), b"-ERR invalid expire time in 'set' command\r\n"),
        (("SET", "k", "v", "PX", "-1"), b"-ERR invalid expire time in 'set' command\r\n"),
        (("SET", "k", "v", "EX", "9223372036854776"), b"-ERR invalid expire time in 'set' command\r\n"),
        (("SET", "k", "v", "EX", "1.5"), b"-ERR value is not an integer or out of range\r\n"),
        (("EXPIRE", "k", "x"), b"-ERR value is not an integer or out of range\r\n"),
        (("EXPIRE", "k", "10", "NX", "GT"), b"-ERR NX and XX, GT or LT options at the same time are not compatible\r\n"),
        (("EXPIRE", "k", "10", "LT", "GT"), b"-ERR GT and LT options at the same time are not compatible\r\n"),
        (("EXPIRE", "k", "10", "YY"), b"-ERR Unsupported option YY\r\n"),
        (("EXPIRE", "k", "9223372036854776"), b"-ERR invalid expire time in 'expire' command\r\n"),
        (("PEXPIRE", "k", "9223372036854775000"), b"-ERR invalid expire time in 'pexpire' command\r\n"),
        (("SET", "k", "v", "PX", "9223372036854775000"), b"-ERR invalid expire time in 'set' command\r\n"),
        (("SETEX", "k", "0", "v"), b"-ERR invalid expire time in 'setex' command\r\n"),
        (("PING", "a", "b"), b"-ERR wrong number of arguments for 'ping' command\r\n"),
        (("INCRBY", "k", "1e3"), b"-ERR value is not an integer or out of range\r\n"),
        (("DECRBY", "k", "-9223372036854775808"), b"-ERR decrement would overflow\r\n"),
        (("GET", ""), b"-ERR empty keys are not supported\r\n"),
        (("SELECT", "1"), b"-ERR DB index is out of range\r\n"),
        (("SELECT", "x"), b"-ERR value is not an integer or out of range\r\n"),
        (("SELECT", "0"), b"+OK\r\n"),
        (("ECHO", b"a\r\nb"), b"$4\r\na\r\nb\r\n"),
        (("PING", "hi"), b"$2\r\nhi\r\n"),
        (("CLIENT", "SETNAME", "my app"), b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n"),
        (("CLIENT", "NOPE"), b"-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n"),
        (("CONFIG", "GET", "save"), b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n"),
        (("CONFIG", "GET", "appendonly"), b"*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n"),
        (("CONFIG", "GET", "nonesuch"), b"*0\r\n"),
        (("COMMAND", "DOCS"), b"*0\r\n"),
        (("HELLO", "4"), b"-NOPROTO unsupported protocol version\r\n"),
        (("QUIT",), b"+OK\r\n"),
    ],
)
def test_immediate_replies(args: tuple[Any, ...], reply: bytes) -> None:
    assert dispatch(cmd(*args), session()) == reply


def test_hello_switches_protocol_and_client_name() -> None:
    s = session()
    reply = dispatch(cmd("HELLO", "3", "SETNAME", "app"), s)
    assert type(reply) is bytes and reply.startswith(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n")
    assert s.proto == 3 and s.name == b"app"
    assert dispatch(cmd("CLIENT", "GETNAME"), s) == b"$3\r\napp\r\n"
    assert dispatch(cmd("CONFIG", "GET", "save"), s) == b"%1\r\n$4\r\nsave\r\n$0\r\n\r\n"
    assert dispatch(cmd("HELLO", "2"), s).startswith(b"*14\r\n") and s.proto == 2


def test_command_count_matches_the_table() -> None:
    s = session()
    count = dispatch(cmd("COMMAND", "COUNT"), s)
    assert isinstance(count, bytes) and count.startswith(b":")
    n = count[1:-2]
    for sub in ((), ("LIST",)):
        reply = dispatch(cmd("COMMAND", *sub), s)
        assert isinstance(reply, bytes) and reply.startswith(b"*" + n + b"\r\n")
    assert dispatch(cmd("COMMAND", "INFO", "get", "nope"), s).startswith(b"*2\r\n*10\r\n$3\r\nget\r\n:2\r\n")


# --- node replies -> RESP ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "replies", "proto", "expected"),
    [
        (("GET", "k"), (Value(b"v", True),), 2, b"$1\r\nv\r\n"),
        (("GET", "k"), (Value(None, False),), 2, b"$-1\r\n"),
        (("GET", "k"), (Value(None, False),), 3, b"_\r\n"),
        (("SET", "k", "v"), (Ack(),), 2, b"+OK\r\n"),
        (("SET", "k", "v", "NX"), (Ack(applied=True),), 2, b"+OK\r\n"),
        (("SET", "k", "v", "NX"), (Ack(applied=False),), 2, b"$-1\r\n"),
        (("SET", "k", "v", "XX"), (Ack(applied=False),), 3, b"_\r\n"),
        (("SET", "k", "v", "GET"), (Value(b"old", True),), 2, b"$3\r\nold\r\n"),
        (("SET", "k", "v", "GET"), (Value(None, False),), 2, b"$-1\r\n"),
        (("DEL", "a", "b", "c"), (Ack(deleted=True), Ack(deleted=False), Ack(deleted=True)), 2, b":2\r\n"),
        (("EXISTS", "a", "b", "a"), (Value("string", True), Value("none", True), Value("hash", True)), 2, b":2\r\n"),
        (("MGET", "a", "b"), (Values((("a", b"1", True), ("b", None, False))),), 2, b"*2\r\n$1\r\n1\r\n$-1\r\n"),
        (("MGET", "a", "b"), (Values((("a", b"1", True), ("b", None, False))),), 3, b"*2\r\n$1\r\n1\r\n_\r\n"),
        (("MSET", "a", "1"), (Ack(),), 2, b"+OK\r\n"),
        (("EXPIRE", "k", "5"), (Ack(applied=True),), 2, b":1\r\n"),
        (("EXPIRE", "k", "5"), (Ack(applied=False),), 2, b":0\r\n"),
        (("EXPIRE", "k", "0"), (Ack(deleted=True),), 2, b":1\r\n"),
        (("EXPIRE", "k", "0"), (Ack(deleted=False),), 2, b":0\r\n"),
        (("PERSIST", "k"), (Ack(applied=False),), 2, b":0\r\n"),
        (("TTL", "k"), (TtlReply(False, None),), 2, b":-2\r\n"),
        (("TTL", "k"), (TtlReply(True, None),), 2, b":-1\r\n"),
        (("TTL", "k"), (TtlReply(True, 9.4994),), 2, b":9\r\n"),
        (("TTL", "k"), (TtlReply(True, 9.5),), 2, b":10\r\n"),  # Redis rounds: (ms + 500) / 1000
        (("PTTL", "k"), (TtlReply(True, 9.4996),), 2, b":9500\r\n"),
        (("PTTL", "k"), (TtlReply(True, 1e300),), 2, b":9223372036854775807\r\n"),  # a JSON client's TTL
        (("PEXPIRETIME", "k"), (TtlReply(True, 5.0, None, 1796600741.5),), 2, b":1796600741500\r\n"),
        (("EXPIRETIME", "k"), (TtlReply(True, 5.0, None, 1796600741.5),), 2, b":1796600741\r\n"),
        (("PEXPIRETIME", "k"), (TtlReply(True, 1e300, None, 1e300),), 2, b":9223372036854775807\r\n"),
        (("EXPIRETIME", "k"), (TtlReply(False, None),), 2, b":-2\r\n"),
        (("STRLEN", "k"), (Value("é", True),), 2, b":2\r\n"),
        (("GETRANGE", "k", "1", "-1"), (Value(12345, True),), 2, b"$4\r\n2345\r\n"),
        (("TYPE", "k"), (Value("none", True),), 2, b"+none\r\n"),  # (keytype's answer)
        (("TYPE", "k"), (Value("hash", True),), 2, b"+hash\r\n"),
        (("SETNX", "k", "v"), (Ack(applied=False),), 2, b":0\r\n"),
        (("INCRBYFLOAT", "k", "0.1"), (Value("10.6", True),), 2, b"$4\r\n10.6\r\n"),
        (("PTTL", "k"), (TtlReply(False, None),), 2, b":-2\r\n"),
        (("INCR", "k"), (Value(11, True),), 2, b":11\r\n"),
        (("INCR", "k"), (ErrorReply(ErrorCode.BAD_REQUEST, "value is not an integer or out of range"),), 2,
         b"-ERR value is not an integer or out of range\r\n"),
        (("PING",), (Pong(),), 2, b"+PONG\r\n"),
        (("DBSIZE",), (ScanReply(0, (), None, 42),), 2, b":42\r\n"),
        (("GET", "k"), (ErrorReply(ErrorCode.UNAVAILABLE, "2 of 3 owners are down"),), 2,
         b"-UNAVAILABLE nothing was applied: 2 of 3 owners are down\r\n"),
        (("SET", "k", "v"), (ErrorReply(ErrorCode.TIMEOUT, "1 of 2 acks\nin 1s"),), 2,
         b"-TIMEOUT may have been applied: 1 of 2 acks in 1s\r\n"),
        (("DEL", "a", "b"), (Ack(deleted=True), ErrorReply(ErrorCode.TIMEOUT, "t")), 2,
         b"-TIMEOUT may have been applied: t\r\n"),
        (("SET", "k", "v"), (ErrorReply(ErrorCode.INTERNAL, "boom"),), 2, b"-ERR internal error: boom\r\n"),
    ],
)
def test_replies(args: tuple[Any, ...], replies: tuple[Any, ...], proto: int, expected: bytes) -> None:
    assert reply_to(args, replies, proto) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"\x00\xff", b"$2\r\n\x00\xff\r\n"),
        ("héllo", b"$6\r\nh\xc3\xa9llo\r\n"),
        (42, b"$2\r\n42\r\n"),
        (-7, b"$2\r\n-7\r\n"),
        (1.5, b"$3\r\n1.5\r\n"),
        (True, b"$4\r\ntrue\r\n"),
        ({"a": [1, None]}, b'$14\r\n{"a":[1,null]}\r\n'),
        ({"b": b"\xff"}, b'$24\r\n{"b":{"$base64":"/w=="}}\r\n'),
        ("\ud800", b"$3\r\n\xed\xa0\x80\r\n"),  # a lone surrogate from JSON: never an exception
    ],
)
def test_values_written_by_other_protocols(value: Any, expected: bytes) -> None:
    assert value_bulk(value) == expected


def test_info_text() -> None:
    stats = {
        "node_id": "n1", "uptime_s": 12.5, "connections": 3, "connections_total": 9, "requests": 100,
        "errors": 1, "keys": 5, "keys_with_ttl": 2, "memory_bytes": 2048, "hits": 7, "misses": 3,
        "expirations": 4,
        "cluster": {"members": {"n1": {"state": "self", "status": "ready"}, "n2": {"state": "down", "status": "ready"}},
                    "replicas": 2, "partitions_owned": 256, "hints_pending": 3, "ready": True},
    }
    text = info_text(stats, ["server", "clients", "memory", "stats", "replication", "cluster", "keyspace"], session())
    lines = text.split("\r\n")
    assert lines[0] == "# Server" and text.endswith("\r\n")
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    assert fields["redis_version"] == "7.0.0" and fields["tcp_port"] == "6380" and fields["uptime_in_seconds"] == "12"
    assert fields["actorcache_node_id"] == "n1"
    assert fields["connected_clients"] == "3"
    assert fields["used_memory"] == "2048" and fields["used_memory_human"] == "2.00K" and fields["maxmemory"] == "0"
    assert fields["keyspace_hits"] == "7" and fields["expired_keys"] == "4" and fields["evicted_keys"] == "0"
    assert fields["role"] == "master"
    assert fields["cluster_enabled"] == "0" and fields["cluster_members"] == "2" and fields["cluster_members_alive"] == "1"
    assert fields["cluster_hints_pending"] == "3" and fields["cluster_ready"] == "1" and fields["cluster_replicas"] == "2"
    assert fields["db0"] == "keys=5,expires=2,avg_ttl=0"
    assert info_text(stats, ["nonesuch"], session()) == ""  # Redis answers an empty bulk


# --- the connection: ordering, errors, close ---------------------------------------------



def test_immediate_replies_wait_for_earlier_node_replies() -> None:
    conn, node, transport = connection()
    conn.data_received(b"GET a\r\nECHO x\r\nGET b\r\n")
    (batch,) = node.told
    assert isinstance(batch, ClientBatch) and typed_requests(batch.requests) == (Get("a"), Get("b")) and batch.conn == 3
    conn.data_received(b"ECHO y\r\n")  # nothing for the node, but it must wait its turn
    conn.data_received(b"PING\r\n")
    assert transport.written == [] and len(node.told) == 2
    conn.tell(BatchReply(3, (Value(b"1", True), Value(None, False))))
    assert transport.written == [b"$1\r\n1\r\n$1\r\nx\r\n$-1\r\n$1\r\ny\r\n"]
    conn.tell(BatchReply(3, (Pong(),)))
    assert transport.written[1:] == [b"+PONG\r\n"]
    conn.data_received(b"ECHO z\r\n")  # nothing outstanding: written at once
    assert transport.written[2:] == [b"$1\r\nz\r\n"]
    assert conn.outstanding == 0


def test_protocol_error_answers_what_came_before_then_closes() -> None:
    conn, node, transport = connection()
    conn.data_received(b"GET a\r\nECHO b\r\n*1\r\n$x\r\nGET never\r\n")
    assert not transport.reading and not transport.closed
    conn.tell(BatchReply(3, (Value(b"1", True),)))
    assert transport.written == [b"$1\r\n1\r\n$1\r\nb\r\n-ERR Protocol error: invalid bulk length\r\n"]
    assert transport.closed
    conn.data_received(b"GET more\r\n")  # ignored after the error
    assert len(node.told) == 1


def test_quit_answers_ok_and_closes_without_reading_on() -> None:
    conn, node, transport = connection()
    conn.data_received(b"ECHO a\r\nQUIT\r\nGET x\r\n")
    assert transport.written == [b"$1\r\na\r\n+OK\r\n"] and transport.closed and node.told == []


def test_half_close_answers_everything_then_closes() -> None:
    conn, node, transport = connection()
    conn.data_received(b"GET a\r\n")
    assert conn.eof_received() is True and not transport.closed
    conn.tell(BatchReply(3, (Value(None, False),)))
    assert transport.written == [b"$-1\r\n"] and transport.closed
    conn.connection_lost(None)
    assert isinstance(node.told[-1], ClientDisconnected)


def test_reply_protocol_is_the_one_in_force_when_the_command_was_read() -> None:
    conn, node, transport = connection()
    conn.data_received(b"GET a\r\nHELLO 3\r\nGET b\r\n")
    conn.tell(BatchReply(3, (Value(None, False), Value(None, False))))
    out = transport.written[0]
    assert out.startswith(b"$-1\r\n%7\r\n") and out.endswith(b"_\r\n")
