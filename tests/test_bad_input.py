"""Bad input over real sockets: every bad request gets the right error, and the SAME
connection then still serves a good request correctly (except where the protocol says the
stream cannot be resynchronised: an oversized line and corrupt msgpack close it)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.local_cluster import NodeProcess
from tests.wire import Conn, MsgpackConn, closed_by_peer, dumps

pytestmark = pytest.mark.integration

BLANK = b" \t\r\n"
ERROR_CODES = {"bad_request", "too_large", "unknown_type"}
REPLY_TYPES = {"ack", "response", "pong", "stats", "error"}


@pytest.fixture(scope="module")
def shared_node() -> Iterator[NodeProcess]:
    """One node for the whole module (bad input must never hurt it); killed in teardown."""
    proc = NodeProcess("badinput")
    try:
        yield proc
    finally:
        alive = proc.proc.poll() is None
        proc.kill()
        assert alive, "the node died during the bad-input tests"


def check_error(reply: Any, code: str) -> None:
    assert isinstance(reply, dict), reply
    assert reply.get("type") == "error", reply
    assert reply.get("success") is False, reply
    assert reply.get("error") == code, reply
    assert isinstance(reply.get("message"), str) and reply["message"], reply


# (name, raw line without "\n", expected error code)
BAD_LINES: list[tuple[str, bytes, str]] = [
    ("invalid-json-truncated", b'{"type":"get",', "bad_request"),
    ("invalid-json-text", b"hello world", "bad_request"),
    ("invalid-json-single-quotes", b"{'type':'ping'}", "bad_request"),
    ("invalid-json-trailing-garbage", b'{"type":"ping"} x', "bad_request"),
    ("invalid-json-two-objects", b'{"type":"ping"}{"type":"ping"}', "bad_request"),
    ("invalid-utf8-in-string", b'{"type":"get","key":"\xff\xfe"}', "bad_request"),
    ("invalid-utf8-overlong", b'{"type":"get","key":"\xc0\xaf"}', "bad_request"),
    ("invalid-utf8-bare", b"\x80\x81\x82", "bad_request"),
    ("non-object-array", b'[{"type":"ping"}]', "bad_request"),
    ("non-object-empty-array", b"[]", "bad_request"),
    ("non-object-number", b"42", "bad_request"),
    ("non-object-float", b"-1.5e3", "bad_request"),
    ("non-object-string", b'"ping"', "bad_request"),
    ("non-object-null", b"null", "bad_request"),
    ("non-object-bool", b"true", "bad_request"),
    ("missing-type", b'{"key":"bad"}', "bad_request"),
    ("empty-object", b"{}", "bad_request"),
    ("type-null", b'{"type":null,"key":"bad"}', "bad_request"),
    ("type-number", b'{"type":1,"key":"bad"}', "bad_request"),
    ("type-list", b'{"type":["get"],"key":"bad"}', "bad_request"),
    ("type-object", b'{"type":{"get":1},"key":"bad"}', "bad_request"),
    ("type-bool", b'{"type":true,"key":"bad"}', "bad_request"),
    ("unknown-type", b'{"type":"flushall"}', "unknown_type"),
    ("unknown-type-empty", b'{"type":""}', "unknown_type"),
    ("get-missing-key", b'{"type":"get"}', "bad_request"),
    ("delete-missing-key", b'{"type":"delete"}', "bad_request"),
    ("set-missing-key", b'{"type":"set","value":1}', "bad_request"),
    ("get-key-null", b'{"type":"get","key":null}', "bad_request"),
    ("get-key-number", b'{"type":"get","key":1}', "bad_request"),
    ("set-key-list", b'{"type":"set","key":["bad"],"value":1}', "bad_request"),
    ("delete-key-object", b'{"type":"delete","key":{"k":1}}', "bad_request"),
    ("get-key-bool", b'{"type":"get","key":false}', "bad_request"),
    ("get-empty-key", b'{"type":"get","key":""}', "bad_request"),
    ("set-empty-key", b'{"type":"set","key":"","value":1}', "bad_request"),
    ("delete-empty-key", b'{"type":"delete","key":""}', "bad_request"),
    ("set-missing-value", b'{"type":"set","key":"bad"}', "bad_request"),
    ("set-missing-value-with-ttl", b'{"type":"set","key":"bad","ttl":5}', "bad_request"),
    ("ttl-negative", b'{"type":"set","key":"bad","value":1,"ttl":-1}', "bad_request"),
    ("ttl-negative-float", b'{"type":"set","key":"bad","value":1,"ttl":-0.001}', "bad_request"),
    ("ttl-string", b'{"type":"set","key":"bad","value":1,"ttl":"300"}', "bad_request"),
    ("ttl-bool-true", b'{"type":"set","key":"bad","value":1,"ttl":true}', "bad_request"),
    ("ttl-bool-false", b'{"type":"set","key":"bad","value":1,"ttl":false}', "bad_request"),
    ("ttl-list", b'{"type":"set","key":"bad","value":1,"ttl":[1]}', "bad_request"),
    ("ttl-object", b'{"type":"set","key":"bad","value":1,"ttl":{}}', "bad_request"),
    ("ttl-nan-literal", b'{"type":"set","key":"bad","value":1,"ttl":NaN}', "bad_request"),
    ("ttl-infinity-literal", b'{"type":"set","key":"bad","value":1,"ttl":Infinity}', "bad_request"),
    ("ttl-overflow-to-inf", b'{"type":"set","key":"bad","value":1,"ttl":1e999}', "bad_request"),
    ("mset-ttl-negative", b'{"type":"mset","entries":{"bad":1},"ttl":-5}', "bad_request"),
    ("mset-ttl-string", b'{"type":"mset","entries":{"bad":1},"ttl":"5"}', "bad_request"),
    ("value-nan", b'{"type":"set","key":"bad","value":NaN}', "bad_request"),
    ("value-infinity", b'{"type":"set","key":"bad","value":Infinity}', "bad_request"),
    ("value-minus-infinity", b'{"type":"set","key":"bad","value":-Infinity}', "bad_request"),
    ("value-nested-nan", b'{"type":"set","key":"bad","value":[1,{"x":NaN}]}', "bad_request"),
    ("mget-keys-missing", b'{"type":"mget"}', "bad_request"),
    ("mget-keys-string", b'{"type":"mget","keys":"bad"}', "bad_request"),
    ("mget-keys-object", b'{"type":"mget","keys":{"bad":1}}', "bad_request"),
    ("mget-keys-null", b'{"type":"mget","keys":null}', "bad_request"),
    ("mget-keys-number", b'{"type":"mget","keys":3}', "bad_request"),
    ("mget-keys-with-number", b'{"type":"mget","keys":["bad",1]}', "bad_request"),
    ("mget-keys-with-null", b'{"type":"mget","keys":[null]}', "bad_request"),
    ("mget-keys-with-list", b'{"type":"mget","keys":[["bad"]]}', "bad_request"),
    ("mget-keys-with-empty", b'{"type":"mget","keys":["bad",""]}', "bad_request"),
    ("mset-entries-missing", b'{"type":"mset"}', "bad_request"),
    ("mset-entries-list", b'{"type":"mset","entries":[["bad",1]]}', "bad_request"),
    ("mset-entries-string", b'{"type":"mset","entries":"bad"}', "bad_request"),
    ("mset-entries-null", b'{"type":"mset","entries":null}', "bad_request"),
    ("mset-entries-empty-key", b'{"type":"mset","entries":{"":1}}', "bad_request"),
    ("join-missing-node-id", b'{"type":"join"}', "bad_request"),
    ("join-node-id-number", b'{"type":"join","node_id":2}', "bad_request"),
    ("deeply-nested-arrays", b"[" * 100_000, "bad_request"),
    ("deeply-nested-objects", b'{"a":' * 50_000, "bad_request"),
    (
        "deeply-nested-balanced-value",
        b'{"type":"set","key":"bad","value":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "bad_request",
    ),
]


def assert_bad_key_untouched(conn: Conn) -> None:
    assert conn.request({"type": "get", "key": "bad"}) == {"type": "response", "value": None, "success": False}


@pytest.mark.parametrize(("line", "code"), [(line, code) for _, line, code in BAD_LINES],
                         ids=[name for name, _, _ in BAD_LINES])
def test_bad_line_then_good_request_on_same_connection(shared_node: NodeProcess, line: bytes, code: str) -> None:
    with Conn(shared_node.port) as c:
        # A good request first fixes the framing as JSON lines (a first byte 0x80-0x8f
        # would select msgpack, see test_first_byte_selects_the_framing).
        assert c.request({"type": "ping", "id": "first"}) == {"type": "pong", "success": True, "id": "first"}
        # Separately: the error, then a good request answered correctly.
        c.send(line + b"\n")
        check_error(c.read_json(), code)
        assert c.request({"type": "ping", "id": "good"}) == {"type": "pong", "success": True, "id": "good"}
        # Pipelined in one write, between good requests: order and framing hold.
        c.send(dumps({"type": "ping", "id": 1}) + line + b"\n" + dumps({"type": "ping", "id": 2}))
        first, err, last = c.read_jsons(3)
        assert first == {"type": "pong", "success": True, "id": 1}
        check_error(err, code)
        assert last == {"type": "pong", "success": True, "id": 2}
        # Nothing was stored by the bad request, and a real write/read still works.
        assert_bad_key_untouched(c)
        assert c.request({"type": "set", "key": "good", "value": [1, "x"]}) == {"type": "ack", "success": True}
        assert c.request({"type": "get", "key": "good"}) == {"type": "response", "value": [1, "x"], "success": True}


def test_garbage_as_the_very_first_bytes(shared_node: NodeProcess) -> None:
    for line in (b"hello", b"\x00\x01", b"\xff\xfe", b"[1]", b"}"):
        with Conn(shared_node.port) as c:
            c.send(line + b"\n")
            check_error(c.read_json(), "bad_request")
            assert c.request({"type": "ping"}) == {"type": "pong", "success": True}


def test_first_byte_selects_the_framing(shared_node: NodeProcess) -> None:
    # 0x80 is an empty msgpack map: the connection speaks msgpack from then on.
    with MsgpackConn(shared_node.port) as c:
        c.send(b"\x80")
        check_error(c.read_msgs(1)[0], "bad_request")  # {} has no type
        assert c.msg_request({"type": "ping"}) == {"type": "pong", "success": True}


def test_error_replies_echo_the_request_id(shared_node: NodeProcess) -> None:
    with Conn(shared_node.port) as c:
        c.send_json(
            {"type": "get", "id": 5},
            {"type": "nope", "id": "u"},
            {"type": "set", "key": "bad", "value": 1, "ttl": -1, "id": [1]},
            {"type": "ping", "id": None},
        )
        missing_key, unknown, bad_ttl, pong = c.read_jsons(4)
        check_error(missing_key, "bad_request")
        assert missing_key["id"] == 5
        check_error(unknown, "unknown_type")
        assert unknown["id"] == "u"
        check_error(bad_ttl, "bad_request")
        assert bad_ttl["id"] == [1]
        assert pong == {"type": "pong", "success": True}


def test_empty_lines_are_ignored(shared_node: NodeProcess) -> None:
    with Conn(shared_node.port) as c:
        # Blank lines first (before the framing is chosen) and between requests.
        c.send(b"\n\n   \n\t\r\n" + dumps({"type": "ping", "id": 1}) + b"\n \n\r\n" + dumps({"type": "ping", "id": 2}))
        assert c.read_jsons(2) == [
            {"type": "pong", "success": True, "id": 1},
            {"type": "pong", "success": True, "id": 2},
        ]
        c.send(b"\n" * 1000)
        assert c.request({"type": "ping", "id": 3}) == {"type": "pong", "success": True, "id": 3}


def test_crlf_line_endings_are_accepted(shared_node: NodeProcess) -> None:
    with Conn(shared_node.port) as c:
        c.send(
            b'{"type":"set","key":"crlf","value":"v"}\r\n'
            b'{"type":"get","key":"crlf","id":1}\r\n'
            b'{"type":"ping"}\r\n'
        )
        assert c.read_jsons(3) == [
            {"type": "ack", "success": True},
            {"type": "response", "value": "v", "success": True, "id": 1},
            {"type": "pong", "success": True},
        ]
        # The reply framing stays "\n"-terminated JSON.
        c.send(b'{"type":"ping"}\r\n')
        assert c.read_line() == b'{"type":"pong","success":true}\n'


def test_request_split_across_many_writes(shared_node: NodeProcess) -> None:
    line = b'{"type":"set","key":"slow","value":"' + "é".encode() * 50 + b'"}\n'
    with Conn(shared_node.port) as c:
        for i in range(len(line)):  # byte by byte, splitting the UTF-8 sequences too
            c.send(line[i : i + 1])
        assert c.read_json() == {"type": "ack", "success": True}
        assert c.request({"type": "get", "key": "slow"})["value"] == "é" * 50


# --- oversized requests: too_large, then the connection is closed --------------------------


def test_line_over_max_request_bytes(node_factory) -> None:
    node = node_factory("--max-request-bytes", "1K")
    with Conn(node.port) as other, Conn(node.port) as c:
        assert other.request({"type": "ping"}) == {"type": "pong", "success": True}
        big = dumps({"type": "set", "key": "big", "value": "x" * 2000})
        assert len(big) > 1024
        c.send(dumps({"type": "ping", "id": 1}) + big + dumps({"type": "ping", "id": 2}))
        assert c.read_json() == {"type": "pong", "success": True, "id": 1}
        check_error(c.read_json(), "too_large")
        c.assert_eof()  # recv returns b"": the request after it is not answered
        # The other connection is unaffected, and nothing was stored.
        assert other.request({"type": "get", "key": "big"}) == {"type": "response", "value": None, "success": False}
        assert other.request({"type": "ping", "id": "still"}) == {"type": "pong", "success": True, "id": "still"}
    with Conn(node.port) as fresh:
        assert fresh.request({"type": "ping"}) == {"type": "pong", "success": True}


def test_max_request_bytes_boundary(node_factory) -> None:
    node = node_factory("--max-request-bytes", "1K")

    def line_of(size: int) -> bytes:
        head = b'{"type":"set","key":"edge","value":"'
        tail = b'"}'
        return head + b"v" * (size - len(head) - len(tail)) + tail

    with Conn(node.port) as c:
        exact = line_of(1024)
        assert len(exact) == 1024
        c.send(exact + b"\n")
        assert c.read_json() == {"type": "ack", "success": True}
        c.send(line_of(1025) + b"\n")
        check_error(c.read_json(), "too_large")
        c.assert_eof()


def test_endless_line_without_newline_is_cut_off(node_factory) -> None:
    """A client streaming one line with no end gets too_large before it ever ends."""
    node = node_factory("--max-request-bytes", "1K")
    with Conn(node.port) as other, Conn(node.port) as c:
        c.sock.settimeout(5)
        chunk = b"x" * 8192
        for _ in range(256):  # at most 2 MiB
            try:
                c.sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                break
        check_error(c.read_json(timeout=5), "too_large")
        assert closed_by_peer(c.sock)
        assert other.request({"type": "ping"}) == {"type": "pong", "success": True}
    assert node.proc.poll() is None


def test_msgpack_over_max_request_bytes(node_factory) -> None:
    node = node_factory("--max-request-bytes", "1K")
    with MsgpackConn(node.port) as c:
        assert c.msg_request({"type": "ping"}) == {"type": "pong", "success": True}
        c.send_msgs({"type": "set", "key": "big", "value": b"\x00" * 4000})
        check_error(c.read_msgs(1)[0], "too_large")
        assert closed_by_peer(c.sock)
    with MsgpackConn(node.port) as c:
        assert c.msg_request({"type": "get", "key": "big"})["success"] is False


def test_corrupt_msgpack_gets_bad_request_then_close(shared_node: NodeProcess) -> None:
    with Conn(shared_node.port) as other, MsgpackConn(shared_node.port) as c:
        # 0xc1 is never used in msgpack: the stream cannot be resynchronised.
        c.send(
            msgpack.packb({"type": "ping", "id": 1})
            + b"\xc1"
            + msgpack.packb({"type": "ping", "id": 2})
        )
        pong, err = c.read_msgs(2)
        assert pong == {"type": "pong", "success": True, "id": 1}
        check_error(err, "bad_request")
        assert c.objs == []
        c.sock.settimeout(5)
        assert c.sock.recv(1 << 16) == b""
        assert other.request({"type": "ping"}) == {"type": "pong", "success": True}


def test_well_formed_msgpack_that_is_not_a_request_keeps_the_connection(shared_node: NodeProcess) -> None:
    with MsgpackConn(shared_node.port) as c:
        c.send_msgs({"type": "ping", "id": 1}, [1, 2], "str", None, {"type": 3}, {"type": "zzz"}, {"type": "get"})
        pong, arr, string, null, typ, unknown, nokey = c.read_msgs(7)
        assert pong == {"type": "pong", "success": True, "id": 1}
        for reply in (arr, string, null, typ, nokey):
            check_error(reply, "bad_request")
        check_error(unknown, "unknown_type")
        # Binary keys are not strings.
        check_error(c.msg_request({"type": "get", "key": b"bin"}), "bad_request")
        assert c.msg_request({"type": "ping", "id": 2}) == {"type": "pong", "success": True, "id": 2}


def test_values_a_framing_cannot_carry_never_hurt_the_node(shared_node: NodeProcess) -> None:
    # A lone surrogate is a legal JSON escape but not UTF-8 text: JSON readers get it back
    # escaped, a msgpack reader gets an internal error for that reply alone.
    with Conn(shared_node.port) as c:
        c.send(b'{"type":"set","key":"surrogate","value":"\\ud800"}\n{"type":"get","key":"surrogate"}\n'
               b'{"type":"mget","keys":["surrogate"]}\n')
        ack, got, many = c.read_lines(3)
        assert json.loads(ack) == {"type": "ack", "success": True}
        assert got == b'{"type":"response","value":"\\ud800","success":true}\n'
        assert json.loads(many)["values"][0]["value"] == "\ud800"
    with MsgpackConn(shared_node.port) as m:
        check_error_code = m.msg_request({"type": "get", "key": "surrogate"})
        assert check_error_code["type"] == "error" and check_error_code["error"] == "internal"
        assert m.msg_request({"type": "ping"}) == {"type": "pong", "success": True}
    with Conn(shared_node.port) as c:
        assert c.request({"type": "ping"}) == {"type": "pong", "success": True}


# --- fuzzing: arbitrary bytes lines ------------------------------------------------------


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)

request_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["get", "set", "delete", "mget", "mset", "ping", "stats", "join", "nope"]) | json_values},
    optional={
        "key": st.sampled_from(["fz", ""]) | json_values,
        "value": json_values,
        "ttl": st.sampled_from([0, -1, 0.5, None, "1", True, 1e308]) | json_values,
        "keys": st.lists(st.sampled_from(["fz", ""]) | json_values, max_size=4) | json_values,
        "entries": st.dictionaries(st.sampled_from(["fz", "fz2", ""]), json_values, max_size=3) | json_values,
        "node_id": json_values,
        "id": json_values,
    },
)

garbage_lines = (
    st.binary(max_size=300)
    | st.text(max_size=100).map(lambda s: s.encode("utf-8", "surrogatepass"))
    | request_like.map(lambda obj: json.dumps(obj).encode())
    | json_values.map(lambda obj: json.dumps(obj).encode())
).filter(lambda b: b"\n" not in b)


def _check_reply_line(line: bytes) -> None:
    assert line.endswith(b"\n") and b"\n" not in line[:-1], line
    reply = json.loads(line)
    assert isinstance(reply, dict), reply
    assert reply.get("type") in REPLY_TYPES, reply
    assert isinstance(reply.get("success"), bool), reply
    if reply["type"] == "error":
        # Garbage must never be an internal error (a server bug).
        assert reply.get("error") in ERROR_CODES, reply


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(garbage=garbage_lines)
def test_arbitrary_line_gets_exactly_one_reply(shared_node: NodeProcess, garbage: bytes) -> None:
    assert shared_node.proc.poll() is None, "node died"
    with Conn(shared_node.port, timeout=10) as c:
        # Fix the framing as JSON lines first (a msgpack map byte would otherwise switch it).
        assert c.request({"type": "ping", "id": 0}) == {"type": "pong", "success": True, "id": 0}
        c.send(garbage + b"\n" + b'{"type":"ping","id":"after"}\n')
        if garbage.strip(BLANK):
            _check_reply_line(c.read_line())
        assert c.read_line() == b'{"type":"pong","success":true,"id":"after"}\n'
        # No stray extra reply: the very next line answers the next request.
        assert c.request({"type": "ping", "id": "end"}) == {"type": "pong", "success": True, "id": "end"}
    assert shared_node.proc.poll() is None, "node died"


def test_node_survived_everything(shared_node: NodeProcess) -> None:
    assert shared_node.proc.poll() is None
    with Conn(shared_node.port) as c:
        assert c.request({"type": "stats"})["success"] is True
        assert c.request({"type": "ping"}) == {"type": "pong", "success": True}
