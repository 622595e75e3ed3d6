"""Plain items (``actors.protocol.edge``): a JSON-lines connection sends a plain get as its
key and a plain set as its store item; everything must behave as for the typed requests
they stand for: the decoder's items, the node's replies, counts, re-stamps, ordering, and
a cluster node (which types them before planning)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings, strategies as st

from actors.node.ordering import ReplySlots
from actors.protocol.codec import encode_request
from actors.protocol.edge import typed, typed_requests
from actors.protocol.messages import Ack, ErrorReply, Get, Incr, MGet, Set, Stats, Value
from runtime.framing import JsonLinesDecoder
from tests.test_codec_props import requests
from tests.test_cluster_sim import SimCluster
from tests.test_node_behaviour import _stored_ahead


def _lines(batch: list[Any]) -> bytes:
    return b"".join(json.dumps(encode_request(r)).encode() + b"\n" for r in batch)


@settings(max_examples=100, deadline=None)
@given(st.lists(requests, min_size=1, max_size=8))
def test_a_plain_decoder_gives_plain_items_for_exactly_the_plain_requests(batch: list[Any]) -> None:
    data = _lines(batch)
    reference = JsonLinesDecoder(1 << 20).feed(data)
    decoder = JsonLinesDecoder(1 << 20)
    decoder.plain = True
    items = decoder.feed(data)
    assert typed_requests(tuple(items)) == tuple(reference)
    for item, request in zip(items, reference):
        plain = (type(request) is Get and request.rid is None) or (
            type(request) is Set and request.rid is None and request.ttl is None
            and type(request.value) not in (list, dict) and request.key[:1] not in ("", "\x00")
        )
        if type(request) is Get and request.key[:1] in ("", "\x00"):
            plain = False
        assert type(item) in (str, tuple) if plain else type(item) is type(request), (item, request)


#: Batches as a client sends them: typed, and the same with the plain ones as plain items.
_BATCHES = [
    [Set("a", "1"), Set("b", 2), Set("a", "3"), Get("a"), Get("nope"), Set("c", "x", rid=9)],
    [Get("a"), Get("b", rid="r"), Set("b", None), Get("b"), Incr("n"), Get("n"), Set("d", True)],
    [Set("e", "v", ttl=100), Get("e"), MGet(("a", "b", "e")), Get("")],
    [Get("c")],
    [Set("f", 1.5)],
]


def _plain(batch: list[Any]) -> list[Any]:
    out: list[Any] = []
    for r in batch:
        if type(r) is Get and r.rid is None and r.key:
            out.append(r.key)
        elif type(r) is Set and r == Set(r.key, r.value) and r.key:
            out.append((r.key, r.value, None))
        else:
            out.append(r)
    return out


def _counts(stats: dict[str, Any]) -> dict[str, Any]:
    counts = dict(stats["requests_by_command"])
    counts.pop("stats", None)
    return counts


def test_a_node_answers_plain_items_as_the_typed_requests(host: Any) -> None:
    host.start_node("typed")
    host.start_node("plain")
    assert any(type(r) in (str, tuple) for b in _BATCHES for r in _plain(b))
    for batch in _BATCHES:
        assert host.request(_plain(batch), node_id="plain") == host.request(batch, node_id="typed")
    typed_stats = host.request([Stats()], node_id="typed")[0].stats
    plain_stats = host.request([Stats()], node_id="plain")[0].stats
    assert _counts(plain_stats) == _counts(typed_stats)
    gets = sum(type(r) is Get for b in _BATCHES for r in b)
    sets = sum(type(r) is Set for b in _BATCHES for r in b)
    assert _counts(plain_stats)["get"] == {"ok": gets} and _counts(plain_stats)["set"] == {"ok": sets}  # one row each
    assert plain_stats["sets"] == typed_stats["sets"] and plain_stats["hits"] == typed_stats["hits"]


def test_a_plain_set_below_a_newer_stored_version_is_restamped_alone_and_in_a_run(host: Any) -> None:
    from actors.config import NodeConfig

    _stored_ahead(host, NodeConfig(max_clock_skew_s=120.0), 60_000)
    assert host.request([("s", "new", None)]) == (Ack(),)  # a run of one: its typed request
    assert host.request([("x", 1, None), ("d", "new", None), ("y", 2, None)]) == (Ack(),) * 3  # a run
    assert host.request(["s", "d", "x"]) == (Value("new", True), Value("new", True), Value(1, True))


def test_a_cluster_node_answers_plain_items_as_the_typed_requests() -> None:
    c = SimCluster(3)
    try:
        for node in c.ids:
            conn = c.host.connect(node)
            batch = [Set(f"k{node}", "v"), Get(f"k{node}"), Get("missing"), Set("n", 1), Incr("n")]
            assert c.host.request(_plain(batch), node_id=node, conn=conn) == (
                Ack(), Value("v", True), Value(None, False), Ack(), Value(2, True)
            )
    finally:
        c.host.shutdown()


def test_a_pending_plain_set_holds_back_a_read_modify_write_of_its_key() -> None:
    from actors.node.ordering import ReplyOrder

    order = ReplyOrder("test")
    earlier = ReplySlots(1, (("k", "v", None), "k"), None)  # type: ignore[arg-type]
    later = ReplySlots(1, (Incr("k"),), None)  # type: ignore[arg-type]
    order.enqueue(earlier)
    order.enqueue(later)
    assert order.writes_before(later, 0, ("k",)) and not order.writes_before(later, 0, ("j",))
    earlier.fill(0, Ack())
    assert not order.writes_before(later, 0, ("k",))


def test_typed_turns_plain_items_into_their_requests_and_leaves_the_rest() -> None:
    error = ErrorReply(Ack().rid, "x")  # type: ignore[arg-type]
    assert typed("k") == Get("k") and typed(("k", [1], None)) == Set("k", [1])
    assert typed(error) is error
    batch = (Get("k"), Ack())
    assert typed_requests(batch) is batch


def test_encode_json_acks_is_the_lines_of_each_ack_joined() -> None:
    from actors.protocol.messages import ACK
    from runtime.reply_encoding import encode_json_acks, encode_json_reply

    acks = (ACK,) * 16
    assert encode_json_acks(acks, 100) == b"".join(map(encode_json_reply, acks))
    assert encode_json_acks((ACK, Ack(), ACK), 100) == encode_json_reply(ACK) * 3  # (an equal Ack too)
    assert encode_json_acks(acks, 15) is None  # more than it may join
    assert encode_json_acks((ACK, Ack(7)), 100) is None and encode_json_acks((ACK, Value(1, True)), 100) is None


def test_a_real_node_answers_pipelined_plain_lines_byte_for_byte(metrics_node: Any) -> None:
    """Over a real JSON-lines connection: plain sets (answered as one run of acks), plain
    gets, a set and a get with ids, a bad line, all in one write; the bytes are each
    reply's own encoding, in order."""
    import socket
    import uuid

    from actors.protocol.errors import ErrorCode
    from runtime.reply_encoding import encode_json_reply

    p = uuid.uuid4().hex[:8]
    lines = [{"type": "set", "key": f"{p}{i}", "value": f"v{i}"} for i in range(16)]
    lines += [{"type": "get", "key": f"{p}{i}"} for i in range(0, 16, 3)]
    lines += [{"type": "get", "key": f"{p}none"}, {"type": "set", "key": f"{p}x", "value": 12345678901234567890, "id": 1}]
    lines += [{"type": "get", "key": f"{p}x", "id": "g"}, {"type": "get"}]
    expected = [Ack()] * 16 + [Value(f"v{i}", True) for i in range(0, 16, 3)] + [Value(None, False), Ack(1)]
    expected += [Value(12345678901234567890, True, "g"), ErrorReply(ErrorCode.BAD_REQUEST, "missing field 'key'")]
    want = b"".join(map(encode_json_reply, expected))
    with socket.create_connection(("127.0.0.1", metrics_node.port(1)), timeout=10) as sock:
        sock.sendall(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
        got = b""
        while got.count(b"\n") < len(expected):
            chunk = sock.recv(65536)
            assert chunk, got
            got += chunk
    assert got == want
