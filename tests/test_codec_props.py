"""Property tests of the codec and framing: round trips, and no crash on any bytes."""

from __future__ import annotations

import json
import os
from typing import Any

import msgpack
from hypothesis import given, settings, strategies as st

from actors.protocol.codec import decode_reply, decode_request, encode_reply, encode_request, request_or_error
from actors.protocol.errors import BadRequestError, CacheError, ErrorCode, UnknownTypeError
from actors.protocol.messages import (
    Ack,
    TtlReply,
    Delete,
    ErrorReply,
    Get,
    Join,
    MGet,
    MSet,
    Ping,
    Pong,
    Set,
    Stats,
    StatsReply,
    Value,
    Values,
)
from runtime.framing import JsonLinesDecoder, MsgpackDecoder, choose_decoder
from runtime.reply_encoding import encode_json_reply, encode_msgpack_reply

keys = st.text(min_size=1, max_size=20)
json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
ttls = st.none() | st.integers(1, 10**6) | st.floats(min_value=0.001, max_value=1e6)
rids = st.none() | st.integers(-1000, 1000) | st.text(max_size=10)

requests = st.one_of(
    st.builds(Get, keys, rids),
    st.builds(Set, keys, json_values, ttls, rids),
    st.builds(Delete, keys, rids),
    st.builds(MGet, st.lists(keys, max_size=5).map(tuple), rids),
    st.builds(MSet, st.dictionaries(keys, json_values, max_size=5).map(lambda d: tuple(d.items())), ttls, rids),
    st.builds(Ping, rids),
    st.builds(Stats, rids),
    st.builds(Join, keys, rids),
)


def _json_line(obj: Any) -> bytes:
    return json.dumps(obj).encode() + b"\n"


@given(st.lists(requests, min_size=1, max_size=8))
def test_requests_round_trip_through_json_lines(batch: list[Any]) -> None:
    data = b"".join(_json_line(encode_request(r)) for r in batch)
    assert JsonLinesDecoder(1 << 20).feed(data) == batch


@given(st.lists(requests, min_size=1, max_size=8))
def test_requests_round_trip_through_msgpack(batch: list[Any]) -> None:
    data = b"".join(msgpack.packb(encode_request(r)) for r in batch)
    assert choose_decoder(data[0], 1 << 20).feed(data) == batch


@given(st.lists(requests, min_size=1, max_size=8), st.data())
def test_framing_is_independent_of_how_reads_split_the_stream(batch: list[Any], data: st.DataObject) -> None:
    for framing in ("json", "msgpack"):
        if framing == "json":
            stream = b"".join(_json_line(encode_request(r)) for r in batch)
            decoder: Any = JsonLinesDecoder(1 << 20)
        else:
            stream = b"".join(msgpack.packb(encode_request(r)) for r in batch)
            decoder = MsgpackDecoder(1 << 20)
        cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
        items: list[Any] = []
        last = 0
        for cut in [*cuts, len(stream)]:
            items.extend(decoder.feed(stream[last:cut]))
            last = cut
        assert items == batch


replies = st.one_of(
    st.builds(Ack, rids, st.none() | st.booleans(), st.none() | st.booleans()),
    st.builds(TtlReply, st.booleans(), st.none() | st.floats(0, 1e9), rids),
    st.builds(Value, json_values, st.booleans(), rids),
    st.builds(Values, st.lists(st.tuples(keys, json_values, st.booleans()), max_size=4).map(tuple), rids),
    st.builds(Pong, rids),
    st.builds(StatsReply, st.dictionaries(st.text(max_size=8), st.integers(-(2**63), 2**63), max_size=4), rids),
    st.builds(ErrorReply, st.sampled_from(list(ErrorCode)), st.text(max_size=20), rids),
)


@given(replies)
def test_replies_round_trip_through_both_framings(reply: Any) -> None:
    if isinstance(reply, Value) and not reply.found:
        reply = Value(None, False, reply.rid)  # a miss carries no value on the wire
    assert decode_reply(json.loads(encode_json_reply(reply))) == reply
    assert decode_reply(msgpack.unpackb(encode_msgpack_reply(reply))) == reply


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_any_bytes_yield_requests_or_typed_errors(data: bytes) -> None:
    for decoder in (JsonLinesDecoder(128), MsgpackDecoder(128), choose_decoder(data[0] if data else 0, 128)):
        items = decoder.feed(data) + decoder.feed(b"\n")
        for item in items:
            assert isinstance(item, (Get, Set, Delete, MGet, MSet, Ping, Stats, Join, ErrorReply))


@settings(max_examples=300)
@given(st.recursive(json_scalars | st.binary(max_size=8), lambda i: st.lists(i, max_size=3) | st.dictionaries(st.text(max_size=5), i, max_size=3), max_leaves=10))
def test_any_decoded_object_yields_a_request_or_a_typed_error(obj: Any) -> None:
    for candidate in (obj, {"type": "set", "key": "k", "value": obj, "ttl": obj}, {"type": obj, "key": obj}):
        try:
            decode_request(candidate)
        except CacheError as exc:
            assert exc.code in (ErrorCode.BAD_REQUEST, ErrorCode.UNKNOWN_TYPE)


def test_error_codes_for_typical_mistakes() -> None:
    cases = [
        ([], BadRequestError),
        ({}, BadRequestError),
        ({"type": 3}, BadRequestError),
        ({"type": "frobnicate"}, UnknownTypeError),
        ({"type": "get"}, BadRequestError),
        ({"type": "get", "key": ""}, BadRequestError),
        ({"type": "get", "key": 5}, BadRequestError),
        ({"type": "set", "key": "k"}, BadRequestError),
        ({"type": "set", "key": "k", "value": 1, "ttl": -1}, BadRequestError),
        ({"type": "set", "key": "k", "value": 1, "ttl": "10"}, BadRequestError),
        ({"type": "set", "key": "k", "value": 1, "ttl": True}, BadRequestError),
        ({"type": "mget", "keys": "k"}, BadRequestError),
        ({"type": "mget", "keys": ["a", 1]}, BadRequestError),
        ({"type": "mset", "entries": [["a", 1]]}, BadRequestError),
        ({"type": "join"}, BadRequestError),
    ]
    for obj, exc_type in cases:
        reply = request_or_error(obj)
        assert isinstance(reply, ErrorReply), obj
        assert reply.code == exc_type.code, obj


def test_ttl_zero_and_null_mean_no_expiry_and_extra_fields_are_ignored() -> None:
    assert decode_request({"type": "set", "key": "k", "value": 1, "ttl": 0}) == Set("k", 1, None)
    assert decode_request({"type": "set", "key": "k", "value": 1, "ttl": None}) == Set("k", 1, None)
    assert decode_request({"type": "set", "key": "k", "value": 1, "ttl": 300, "node_id": "node1"}) == Set("k", 1, 300)


def test_seed_reply_shapes_are_byte_exact() -> None:
    assert encode_json_reply(Ack()) == b'{"type":"ack","success":true}\n'
    assert encode_json_reply(Value("hello", True)) == b'{"type":"response","value":"hello","success":true}\n'
    assert encode_json_reply(Value(None, False)) == b'{"type":"response","value":null,"success":false}\n'


def test_bytes_values_are_readable_over_json() -> None:
    assert json.loads(encode_json_reply(Value(b"hi", True)))["value"] == "hi"
    assert json.loads(encode_json_reply(Value(b"\xff\x00", True)))["value"] == {"$base64": "/wA="}
    assert json.loads(encode_json_reply(Value({b"k": [b"v", float("nan")]}, True)))["value"] == {"k": ["v", None]}


def test_numbers_every_framing_cannot_carry_are_rejected() -> None:
    decoder = JsonLinesDecoder(1 << 20)
    for line in (b'{"type":"set","key":"k","value":18446744073709551616}', b'{"type":"set","key":"k","value":1e400}'):
        (reply,) = decoder.feed(line + b"\n")
        assert isinstance(reply, ErrorReply) and reply.code == ErrorCode.BAD_REQUEST
    (ok,) = decoder.feed(b'{"type":"set","key":"k","value":18446744073709551615}\n')
    assert ok == Set("k", 2**64 - 1)


def test_a_reply_that_cannot_be_encoded_becomes_an_internal_error() -> None:
    out = msgpack.unpackb(encode_msgpack_reply(Value(2**70, True, rid=3)))
    assert out["error"] == "internal" and out["id"] == 3


@given(replies)
def test_json_fast_paths_match_the_general_encoding(reply: Any) -> None:
    from runtime.reply_encoding import _json_encode, to_jsonable

    if isinstance(reply, Value) and not reply.found:
        reply = Value(None, False, reply.rid)  # the store never returns a value with a miss
    try:
        general = _json_encode(encode_reply(reply)).encode() + b"\n"
    except (TypeError, ValueError):
        general = _json_encode(to_jsonable(encode_reply(reply))).encode() + b"\n"
    assert encode_json_reply(reply) == general


def test_lone_surrogates_come_back_escaped_over_json_and_as_an_error_over_msgpack() -> None:
    (req,) = JsonLinesDecoder(1 << 20).feed(b'{"type":"set","key":"s","value":"\\ud800"}\n')
    assert req == Set("s", "\ud800")
    assert encode_json_reply(Value("\ud800", True)) == b'{"type":"response","value":"\\ud800","success":true}\n'
    assert json.loads(encode_json_reply(Values((("\ud800", "x", True),))))["values"][0]["key"] == "\ud800"
    assert msgpack.unpackb(encode_msgpack_reply(Value("\ud800", True)))["error"] == "internal"


def _decoded_the_general_way(obj: Any) -> Any:
    """What ``request_or_error`` answered before its fast path: the kinds table's decoder."""
    try:
        return decode_request(obj)
    except CacheError as exc:
        return ErrorReply(exc.code, exc.message, obj.get("id") if type(obj) is dict else None)


_plain_types = st.sampled_from(["get", "set", "del", 1, None])
_plain_keys = st.sampled_from(["", "\x00flush{1}", "\x00k", 7]) | keys
plain_shaped = st.fixed_dictionaries(
    {"type": _plain_types, "key": _plain_keys}, optional={"value": json_values | st.binary(max_size=4), "id": rids}
) | st.fixed_dictionaries(
    {"type": _plain_types, "key": _plain_keys},
    optional={"value": json_values, "id": rids, "ttl": ttls, "nx": st.booleans(), "x": json_scalars},
)


@given(plain_shaped | st.dictionaries(st.sampled_from(["type", "key", "value", "id"]), json_values | st.sampled_from(["get", "set"]), max_size=4))
@settings(max_examples=300, deadline=None)
def test_the_plain_get_and_set_fast_path_decodes_as_the_kinds_table_does(obj: dict[str, Any]) -> None:
    assert request_or_error(obj) == _decoded_the_general_way(obj)


def _reference_line(line: bytes) -> Any:
    """What a JSON line decodes to through the decoder's full ``decode`` (no fast path)."""
    from runtime.framing import _json_decoder

    try:
        obj = _json_decoder.decode(line.decode("utf-8"))
    except ValueError as exc:
        return ErrorReply(ErrorCode.BAD_REQUEST, f"invalid JSON: {exc}")
    except RecursionError:
        return ErrorReply(ErrorCode.BAD_REQUEST, "value nested deeper than --max-value-depth 128")
    return request_or_error(obj)


request_like_lines = st.builds(
    lambda obj, prefix, suffix: (prefix + json.dumps(obj) + suffix).encode(),
    st.dictionaries(st.sampled_from(["type", "key", "value", "id", "ttl", "x"]), json_values, max_size=5)
    | st.fixed_dictionaries({"type": st.sampled_from(["get", "set", "del"]), "key": keys, "value": json_values}),
    st.sampled_from(["", " ", "{", "[", "\t"]),
    st.sampled_from(["", " ", "}", ",{}", "]", "\r", "x"]),
)


@given(request_like_lines | st.text(max_size=60).map(str.encode))
@settings(max_examples=400, deadline=None)
def test_the_json_fast_path_decodes_every_line_as_full_decode_does(line: bytes) -> None:
    if b"\n" in line or not line.strip(b" \t\r"):
        return
    assert JsonLinesDecoder(1 << 20).feed(line + b"\n") == [_reference_line(line)]


def _recursive_to_jsonable(value: Any) -> Any:
    """``to_jsonable`` as it was written before its walk became iterative: the oracle."""
    import base64
    import math

    t = type(value)
    if t is bytes:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"$base64": base64.b64encode(value).decode("ascii")}
    if t is list or t is tuple:
        return [_recursive_to_jsonable(v) for v in value]
    if t is dict:
        return {
            (k if type(k) is str else k.decode("utf-8", "backslashreplace") if type(k) is bytes else str(k)): _recursive_to_jsonable(v)
            for k, v in value.items()
        }
    if t is float and not math.isfinite(value):
        return None
    return value


stored_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4)
    | st.lists(inner, max_size=3).map(tuple)
    | st.dictionaries(st.text(max_size=3) | st.binary(max_size=3) | st.integers(0, 3), inner, max_size=4),
    max_leaves=25,
)


# Fixed seed in CI; run long with ACTORCACHE_HYPOTHESIS_EXAMPLES=20000.
@settings(derandomize=True, max_examples=int(os.environ.get("ACTORCACHE_HYPOTHESIS_EXAMPLES", "400")), deadline=None)
@given(stored_values)
def test_to_jsonable_matches_its_recursive_definition(value: Any) -> None:
    from runtime.reply_encoding import to_jsonable

    expected = _recursive_to_jsonable(value)
    got = to_jsonable(value)
    assert json.dumps(got, sort_keys=False) == json.dumps(expected, sort_keys=False)


def test_to_jsonable_takes_any_depth() -> None:
    from runtime.reply_encoding import to_jsonable

    value: Any = b"\xff"
    for i in range(100_000):
        value = [value] if i % 2 else {b"k": value}
    out = to_jsonable(value)
    for i in reversed(range(100_000)):
        out = out[0] if i % 2 else out["k"]
    assert out == {"$base64": "/w=="}


def test_a_decoder_bug_costs_one_internal_reply_not_an_exception(monkeypatch: Any) -> None:
    from actors.protocol import codec

    def broken(obj: Any, rid: Any) -> Any:
        raise ZeroDivisionError("a bug")

    monkeypatch.setitem(codec._DECODERS, "ping", broken)
    reply = request_or_error({"type": "ping", "id": 9})
    assert reply == ErrorReply(ErrorCode.INTERNAL, "internal error decoding this request (ZeroDivisionError)", 9)
    assert JsonLinesDecoder(1 << 20).feed(b'{"type":"ping"}\n{"type":"get","key":"k"}\n')[1] == Get("k")
    decoder = MsgpackDecoder(1 << 20)
    items = decoder.feed(msgpack.packb({"type": "ping"}) + msgpack.packb({"type": "get", "key": "k"}))
    assert items[0].code == ErrorCode.INTERNAL and items[1] == Get("k") and not decoder.fatal
