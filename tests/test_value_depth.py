"""``--max-value-depth``: every decoder refuses a value nested deeper than the limit with
``bad_request`` naming it, never with an exception, and nothing under the limit trips the
nesting limits of the libraries underneath (JSON scanner and encoder, msgpack's unpacker
and packer)."""

from __future__ import annotations

import json
import os
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from actors.protocol.codec import decode_request, encode_reply, request_or_error
from actors.protocol.errors import BadRequestError, ErrorCode
from actors.protocol.messages import ErrorReply, MSet, Ping, Set, Value, Values
from actors.protocol.replica_ops import Write
from actors.protocol.peer_codec import decode_peer, encode_peer
from actors.protocol.replica_ops import Apply
from actors.protocol.peer_messages import Forward, ForwardReply, Push, ReplicaRequest, ReplicaResponse
from actors.protocol.record import Record
from actors.protocol.value_depth import DEFAULT_MAX_VALUE_DEPTH, MAX_SUPPORTED_VALUE_DEPTH, exceeds_depth
from actors.protocol.version import Version
from runtime.framing import JsonLinesDecoder, MsgpackDecoder
from runtime.reply_encoding import encode_json_reply, encode_msgpack_reply

#: Run long with e.g. ``ACTORCACHE_HYPOTHESIS_EXAMPLES=20000 pytest tests/test_value_depth.py``.
EXAMPLES = int(os.environ.get("ACTORCACHE_HYPOTHESIS_EXAMPLES", "300"))
TOO_DEEP = f"value nested deeper than --max-value-depth {DEFAULT_MAX_VALUE_DEPTH}"
V = Version(1_700_000_000_000, 0, "n1")


def nest(depth: int, leaf: Any = "x", kind: str = "list") -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if kind == "list" or (kind == "mixed" and i % 2) else {"k": value}
    return value


def oracle_depth(value: Any) -> int:
    """Depth by the definition, recursively (fine for the shallow values generated)."""
    if type(value) is dict:
        return 1 + max((oracle_depth(v) for v in value.values()), default=0)
    if type(value) in (list, tuple):
        return 1 + max((oracle_depth(v) for v in value), default=0)
    return 0


values = st.recursive(
    st.none() | st.integers() | st.text(max_size=5) | st.binary(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.lists(inner, max_size=3).map(tuple)
    | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=30,
)


@settings(derandomize=True, max_examples=EXAMPLES, deadline=None)
@given(values, st.integers(0, 12))
def test_exceeds_depth_agrees_with_the_definition(value: Any, limit: int) -> None:
    assert exceeds_depth(value, limit) == (oracle_depth(value) > limit)


def test_depth_counts_containers() -> None:
    assert not exceeds_depth("x", 0)
    assert exceeds_depth([], 0) and not exceeds_depth([], 1)
    assert not exceeds_depth(["x"], 1) and exceeds_depth([["x"]], 1)
    assert not exceeds_depth(nest(128), 128) and exceeds_depth(nest(129), 128)
    assert exceeds_depth(nest(100_000), 128)  # iterative, and stops at the limit
    assert exceeds_depth(nest(100_000, kind="mixed"), 128)


def test_a_set_at_the_limit_is_accepted_and_one_deeper_refused_naming_the_limit() -> None:
    assert decode_request({"type": "set", "key": "k", "value": nest(128)}) == Set("k", nest(128))
    reply = request_or_error({"type": "set", "key": "k", "value": nest(129), "id": 7})
    assert reply == ErrorReply(ErrorCode.BAD_REQUEST, TOO_DEEP, 7)
    with pytest.raises(BadRequestError, match="--max-value-depth 3"):
        decode_request({"type": "set", "key": "k", "value": nest(4, kind="mixed"), "nx": True}, max_depth=3)
    assert decode_request({"type": "set", "key": "k", "value": nest(3)}, max_depth=3).value == nest(3)


def test_every_value_of_an_mset_is_checked() -> None:
    ok = {"a": 1, "b": nest(128)}
    assert decode_request({"type": "mset", "entries": ok}) == MSet(tuple(ok.items()))
    reply = request_or_error({"type": "mset", "entries": {"a": 1, "b": nest(129, kind="mixed")}})
    assert isinstance(reply, ErrorReply) and reply.message == TOO_DEEP


@pytest.mark.parametrize("depth", [129, 500, 5_000, 100_000])
def test_json_lines_refuse_deep_values_and_serve_the_next_line(depth: int) -> None:
    decoder = JsonLinesDecoder(1 << 22)
    line = b'{"type":"set","key":"deep","value":' + b"[" * depth + b'"x"' + b"]" * depth + b"}\n"
    items = decoder.feed(line + b'{"type":"ping"}\n')
    assert items == [ErrorReply(ErrorCode.BAD_REQUEST, TOO_DEEP), Ping()]
    assert not decoder.fatal


def test_json_lines_accept_a_value_at_the_limit() -> None:
    line = json.dumps({"type": "set", "key": "k", "value": nest(128, kind="mixed")}).encode() + b"\n"
    assert JsonLinesDecoder(1 << 20).feed(line) == [Set("k", nest(128, kind="mixed"))]
    assert JsonLinesDecoder(1 << 20, max_depth=127).feed(line)[0].message == (
        "value nested deeper than --max-value-depth 127"
    )


def _msgpack_set(depth: int) -> bytes:
    # Packed by hand: msgpack's own packer refuses to nest past its limit.
    return b"\x83\xa4type\xa3set\xa3key\xa1k\xa5value" + b"\x91" * depth + b"\xa1x"


def test_msgpack_refuses_a_deep_value_as_one_bad_request() -> None:
    decoder = MsgpackDecoder(1 << 20)
    items = decoder.feed(_msgpack_set(128) + _msgpack_set(129) + msgpack.packb({"type": "ping"}))
    assert items == [Set("k", nest(128)), ErrorReply(ErrorCode.BAD_REQUEST, TOO_DEEP), Ping()]
    assert not decoder.fatal


@pytest.mark.parametrize("depth", [1_025, 100_000])
def test_msgpack_past_the_unpackers_stack_is_a_clean_fatal_error(depth: int) -> None:
    decoder = MsgpackDecoder(1 << 20)
    items = decoder.feed(msgpack.packb({"type": "ping"}) + _msgpack_set(depth))
    assert items == [Ping(), ErrorReply(ErrorCode.BAD_REQUEST, TOO_DEEP)]
    assert decoder.fatal
    raw = MsgpackDecoder(1 << 20)
    assert raw.feed(_msgpack_set(depth), raw=True) == [ErrorReply(ErrorCode.BAD_REQUEST, TOO_DEEP)]


# --- the peer protocol ----------------------------------------------------------------------

DEEP = nest(129)
OK = nest(128, kind="mixed")


def _peer_frames(value: Any) -> dict[str, Any]:
    """One frame of every peer message kind that carries a value, holding ``value``."""
    rec = Record("k", value, None, V)
    msgs = {
        "w": ReplicaRequest(1, (Write((("k", value, None),), V, ("n1",)),)),
        "ws": ReplicaRequest(1, (Write((("a", 1, None), ("k", value, None)), V, ("n1",), True),)),
        "write": ReplicaRequest(1, (Write((("a", 1, None), ("k", value, None)), V, ("n1",)),)),
        "apply": ReplicaRequest(1, (Apply((rec,)),)),
        "fetch-result": ReplicaResponse(1, ((None, rec),)),
        "push": Push(1, (rec,), True),
        "forward": Forward(1, {"type": "set", "key": "k", "value": value, "nx": True}),
        "forward-reply": ForwardReply(1, encode_reply(Value(value, True))),
    }
    frames = {name: encode_peer(msg) for name, msg in msgs.items()}
    frames["forward-mset"] = encode_peer(Forward(1, {"type": "mset", "entries": {"a": 1, "k": value}}))
    frames["forward-values"] = encode_peer(ForwardReply(1, encode_reply(Values((("a", 1, True), ("k", value, True))))))
    return frames


@pytest.mark.parametrize("kind", sorted(_peer_frames(1)))
def test_every_value_a_peer_frame_carries_is_checked(kind: str) -> None:
    decode_peer(_peer_frames(OK)[kind])  # at the limit: fine
    with pytest.raises(BadRequestError, match="--max-value-depth 128"):
        decode_peer(_peer_frames(DEEP)[kind])
    with pytest.raises(BadRequestError, match="--max-value-depth 200"):
        decode_peer(_peer_frames(nest(201))[kind], max_depth=200)
    decode_peer(_peer_frames(nest(200))[kind], max_depth=200)


def test_peer_item_answers_do_not_nest() -> None:
    """An item-by-item write's answers are flat: a nested ``each`` is refused, not recursed into."""
    inner: Any = {"error": "internal", "message": ""}
    for _ in range(400):
        inner = {"conflict": [1, 0, "n"], "each": [inner]}
    frame = {"type": "replica_response", "req": 1, "results": [{"each": [inner]}]}
    with pytest.raises(BadRequestError):
        decode_peer(frame)


def test_peer_ids_must_be_strings_not_coerced() -> None:
    deep_id = nest(5_000)
    frames = [
        {"type": "gossip", "members": [[deep_id, "a", 1, "ready"]], "reply": False, "partitions": 8},
        {"type": "replica_request", "req": 1, "ops": [["remove", ["k"], [1, 0, deep_id], None]]},
        {"type": "replica_request", "req": 1, "writers": [[deep_id, []]], "ops": [["w", "k", 1, None, 5, 0, 0]]},
        {"type": "push", "sid": 1, "records": [["k", 1, [deep_id], [1, 0, "n"], None]]},
    ]
    for frame in frames:
        with pytest.raises(BadRequestError):
            decode_peer(frame)


def test_error_messages_about_a_peer_frame_never_walk_what_it_sent() -> None:
    """A deep value where a name belongs is named by its type in the error (its repr
    would recurse past the interpreter's limit)."""
    from actors.protocol.peer_codec import decode_hello

    deep = nest(100_000)
    with pytest.raises(BadRequestError, match="unknown peer message type a list"):
        decode_peer({"type": deep})
    with pytest.raises(BadRequestError, match="unknown replica op a list"):
        decode_peer({"type": "replica_request", "req": 1, "ops": [[deep]]})
    with pytest.raises(BadRequestError, match="peer protocol a list"):
        decode_hello({"type": "hello", "node_id": "n", "addr": "a", "partitions": 8, "proto": deep})


# --- nothing under the limit trips a library's own nesting limit --------------------------


def test_values_at_the_supported_limit_pass_every_encoder_and_decoder() -> None:
    """``MAX_SUPPORTED_VALUE_DEPTH`` leaves room for the envelope around a value in every
    frame we build: client replies in both framings, and the deepest peer frames."""
    value = nest(MAX_SUPPORTED_VALUE_DEPTH, kind="mixed")
    line = json.dumps({"type": "set", "key": "k", "value": value}).encode() + b"\n"
    assert JsonLinesDecoder(1 << 20, MAX_SUPPORTED_VALUE_DEPTH).feed(line) == [Set("k", value)]
    packed = msgpack.packb({"type": "set", "key": "k", "value": value})
    assert MsgpackDecoder(1 << 20, max_depth=MAX_SUPPORTED_VALUE_DEPTH).feed(packed) == [Set("k", value)]
    for reply in (Value(value, True, rid=1), Values((("k", value, True),), rid=1)):
        assert json.loads(encode_json_reply(reply))["type"] == "response"
        assert msgpack.unpackb(encode_msgpack_reply(reply))["type"] == "response"
    for frame in _peer_frames(value).values():
        wire = msgpack.packb(frame, use_bin_type=True)
        decode_peer(msgpack.unpackb(wire, raw=False), max_depth=MAX_SUPPORTED_VALUE_DEPTH)


@pytest.mark.parametrize("depth", [1_100, 100_000])
def test_encoding_a_reply_past_every_limit_answers_an_error_never_raises(depth: int) -> None:
    value = nest(depth)
    for reply in (Value(value, True, rid=3), Values((("k", value, True),), rid=3)):
        out = json.loads(encode_json_reply(reply))
        assert out["error"] == "internal" and out["id"] == 3
        out = msgpack.unpackb(encode_msgpack_reply(reply))
        assert out["error"] == "internal" and out["id"] == 3
    # the shared packer is still usable afterwards
    assert msgpack.unpackb(encode_msgpack_reply(Value("v", True))) == {"type": "response", "value": "v", "success": True}


@pytest.mark.parametrize("depth", [1_100, 3_000])
def test_an_id_nested_past_the_encoders_depth_gets_an_error_without_it(depth: int) -> None:
    """Red team s25: only values are held to --max-value-depth; a JSON request whose ``id``
    nests ~1,000 deep decodes, its reply cannot be encoded, and the error replacing it
    echoed the same id and failed too: the connection was cut off (a reset, the replies
    before it lost). Now the error goes without the id."""
    for reply in (Value("v", True, rid=nest(depth)), Values((("k", "v", True),), rid=nest(depth)), ErrorReply(ErrorCode.BAD_REQUEST, "x", nest(depth))):
        out = json.loads(encode_json_reply(reply))
        assert out["error"] == "internal" and "id" not in out
        out = msgpack.unpackb(encode_msgpack_reply(reply))
        assert out["error"] == "internal" and "id" not in out
    assert json.loads(encode_json_reply(Value("v", True, rid=[[1]]))) == {"type": "response", "value": "v", "success": True, "id": [[1]]}
