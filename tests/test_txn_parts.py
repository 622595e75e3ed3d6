"""The sans-IO parts of transactions, flush and scan: the watch table, the glob matcher,
scan steps over a keyspace, the Transact store operation, the multi wire shape; and a
single node on both hosts (asyncio and the simulator) running them end to end."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.node.watches import MAX_WATCHED_KEYS, Watches
from actors.protocol.codec import decode_reply, decode_request, encode_reply, encode_request
from actors.protocol.errors import BadRequestError
from actors.protocol.messages import Ack, Delete, ErrorReply, Get, Incr, MSet, Ping, Set, Stats, Value
from actors.protocol.txn_messages import Flush, Multi, MultiReply, Scan, ScanReply, Watch
from actors.protocol.version import Version
from actors.store.apply import apply
from actors.store.keyspace import Keyspace
from actors.store.scan import glob_match, scan_step
from actors.store.txn_ops import Transact
from actors.protocol.replica_ops import Write


# --- glob ------------------------------------------------------------------------------------


def _reference(pattern: str, text: str) -> bool:
    """A regex translation of the patterns the strategy below makes (no classes, no escapes)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.DOTALL) is not None


@settings(max_examples=150, deadline=None)
@given(st.text("ab*?", max_size=8), st.text("ab", max_size=10))
def test_glob_agrees_with_a_regex_on_stars_and_question_marks(pattern: str, text: str) -> None:
    assert glob_match(pattern, text) == _reference(pattern, text)


def test_glob_classes_and_escapes_as_redis() -> None:
    assert glob_match("h[ae]llo", "hello") and glob_match("h[ae]llo", "hallo") and not glob_match("h[ae]llo", "hillo")
    assert glob_match("h[^e]llo", "hallo") and not glob_match("h[^e]llo", "hello")
    assert glob_match("h[a-c]llo", "hbllo") and not glob_match("h[a-c]llo", "hdllo")
    assert glob_match("a\\*b", "a*b") and not glob_match("a\\*b", "axb")
    assert glob_match("{user1}:*", "{user1}:a")


def test_a_hostile_glob_costs_polynomial_time() -> None:
    assert not glob_match("*a" * 200 + "b", "a" * 3000)  # exponential backtracking would never end


# --- scan --------------------------------------------------------------------------------------


def test_scan_steps_return_every_key_present_throughout() -> None:
    ks = Keyspace(partitions=16)
    stable = [f"s{i}" for i in range(200)]
    for key in stable:
        ks.set(key, 1, None)
    seen: set[str] = set()
    cursor, step = 0, 0
    while True:
        cursor, keys = scan_step(ks, cursor, 10, None, 0.0)
        seen.update(keys)
        ks.set(f"new{step}", 1, None)
        if step < 100:
            ks.delete(stable[199 - step], 0.0) if step % 7 == 3 else None
        step += 1
        if cursor == 0:
            break
    deleted = {stable[199 - s] for s in range(step) if s % 7 == 3}
    assert set(stable) - deleted <= seen
    assert 1 < step <= 16


def test_scan_skips_expired_and_matches() -> None:
    ks = Keyspace(partitions=4)
    ks.set("a1", 1, None)
    ks.set("a2", 1, 5.0)
    ks.set("b1", 1, None)
    assert scan_step(ks, 0, 1000, "a*", 10.0) == (0, ("a1",))


# --- watches --------------------------------------------------------------------------------------


def _stamp() -> Version:
    return Version(1, 0, "n")


def test_watch_dirty_on_another_connections_write_not_on_a_read() -> None:
    w = Watches()
    w.watch(1, ("k",), _stamp)
    w.touch_batch(2, [Get("k"), Set("other", 1)])
    assert not w.seal(1, Multi((Get("k"),))).aborted
    w.watch(1, ("k",), _stamp)
    w.touch_batch(2, [Delete("k")])
    sealed = w.seal(1, Multi((Get("k"),)))
    assert sealed.aborted and sealed.watch == (("k", _stamp()),)
    assert not w.active  # sealing forgot them


def test_watch_own_transaction_does_not_dirty_itself_but_own_write_does() -> None:
    w = Watches()
    w.watch(1, ("k",), _stamp)
    w.touch_batch(1, [Multi((Set("k", 1),))])
    assert not w.seal(1, Multi(())).aborted
    w.watch(1, ("k",), _stamp)
    w.watch(2, ("z",), _stamp)
    w.touch_batch(1, [Incr("k")])
    w.touch_batch(3, [Flush()])
    assert w.seal(1, Multi(())).aborted and w.seal(2, Multi(())).aborted


def test_own_writes_after_exec_in_the_same_batch_do_not_abort_it() -> None:
    """Red team s26: WATCH in one read, then ``EXEC, SET k`` in the next: the batch was
    walked whole before the EXEC was sealed, so the SET after it aborted it (Redis runs
    it). Own writes before the batch's first EXEC still dirty (the test above)."""
    w = Watches()
    w.watch(1, ("k",), _stamp)
    multi = Multi((Set("other", 1),))
    w.touch_batch(1, [Get("k"), multi, Set("k", 2), Incr("k")])
    assert not w.seal(1, multi).aborted
    w.watch(1, ("k",), _stamp)
    w.watch(2, ("k",), _stamp)
    w.touch_batch(1, [Multi(()), Delete("k")])
    assert w.seal(2, Multi(())).aborted  # another connection's watch still sees it
    w.watch(1, ("k",), _stamp)
    w.touch_batch(1, [Set("k", 3), Multi(())])
    assert w.seal(1, Multi(())).aborted  # before the EXEC: dirty, as in Redis


def test_watch_is_bounded_and_forgotten_with_the_connection() -> None:
    w = Watches()
    assert w.watch(1, tuple(f"k{i}" for i in range(MAX_WATCHED_KEYS)), _stamp)
    assert not w.watch(1, ("one-more",), _stamp)
    assert w.watched(1) == MAX_WATCHED_KEYS
    w.unwatch(1)
    assert not w.active


# --- the store operation ----------------------------------------------------------------------------


def test_transact_aborts_on_a_newer_version_else_applies_in_order() -> None:
    ks = Keyspace()
    ks.set("k", 1, None, Version(10, 0, "n"))
    ops = (Write((("k", 2, None),), Version(11, 0, "n")), Write((("j", 3, None),), Version(11, 1, "n")))
    assert apply(ks, Transact(ops, (("k", Version(9, 0, "n")),)), 0.0) == MultiReply(None)
    assert ks.get("k", 0.0) == (1, True)
    assert apply(ks, Transact(ops, (("k", Version(10, 0, "n")),)), 0.0) == (1, 1)
    assert ks.get("j", 0.0) == (3, True)


# --- wire -------------------------------------------------------------------------------------------


def test_multi_round_trips_and_refuses_what_is_not_data() -> None:
    multi = Multi((Set("a", 1), Incr("n", 2), MSet((("x", [1]),))), "id1", (("a", Version(5, 1, "n1")), ("b", None)))
    assert decode_request(encode_request(multi)) == multi
    reply = MultiReply((Ack(), Value(3, True), Ack()), "id1")
    assert decode_reply(encode_reply(reply), multi) == reply
    assert decode_reply(encode_reply(MultiReply(None, 1)), multi) == MultiReply(None, 1)
    for bad in (
        {"type": "multi", "requests": [{"type": "ping"}]},
        {"type": "multi", "requests": [{"type": "multi", "requests": []}]},
        {"type": "multi", "requests": "x"},
        {"type": "multi", "requests": [], "watch": [["k", [1, 2]]]},
        {"type": "multi", "requests": [{"type": "set", "key": "k"}]},
    ):
        with pytest.raises(BadRequestError):
            decode_request(bad)
    assert decode_request({"type": "scan", "cursor": 3, "match": "a*"}) == Scan(3, "a*", 10)
    assert decode_request({"type": "unwatch"}) == Watch(())
    assert encode_reply(ScanReply(0, ("a",))) == {"type": "scan", "success": True, "cursor": 0, "keys": ["a"]}


# --- a single node, both hosts -------------------------------------------------------------------------


def test_single_node_multi_watch_flush_scan(host: Any) -> None:
    host.start_node()
    replies = host.request([Set("a", 1), Multi((Set("a", 2), Get("a"), Incr("c"))), Ping()])
    assert replies[1] == MultiReply((Ack(), Value(2, True), Value(1, True)))
    assert host.request([Watch(("a",))], conn=1) == (Ack(),)
    host.request([Set("a", 5)], conn=2)
    assert host.request([Multi((Set("a", 0),))], conn=1) == (MultiReply(None),)
    assert host.request([Get("a")]) == (Value(5, True),)
    (scan,) = host.request([Scan(0, "[ac]", 1000)])
    assert scan.cursor == 0 and sorted(scan.keys) == ["a", "c"]
    assert host.request([Flush(), Get("a"), Stats()])[:2] == (Ack(), Value(None, False))


# --- hash tags ----------------------------------------------------------------------------------------


def test_hash_tags_place_keys_together_and_leave_other_keys_where_they_were() -> None:
    import hashlib

    from actors.store.partitions import hash_tag, partition_of

    def untagged(key: str, partitions: int = 256) -> int:  # the placement before hash tags
        return int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big") % partitions

    assert partition_of("{user1}:a") == partition_of("{user1}:b") == partition_of("user1")
    assert hash_tag("a{b}c{d}") == "b" and hash_tag("{}x") == "{}x" and hash_tag("x{y") == "x{y" and hash_tag("}{z}") == "z"
    for key in ("plain", "{}", "{", "}a{", "x{y", "a}b", "\udcff", "k" * 300):
        assert partition_of(key) == untagged(key), key
        assert partition_of(key, 7) == untagged(key, 7), key


# --- hostile shapes ----------------------------------------------------------------------------------

_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5) | st.binary(max_size=5)
_junk = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=12)
_shapes = st.fixed_dictionaries(
    {"type": st.sampled_from(["multi", "watch", "unwatch", "flush", "scan"])},
    optional={
        "requests": st.lists(_junk | st.fixed_dictionaries({"type": st.sampled_from(["set", "get", "multi", "ping", "incr"]), "key": _junk, "value": _junk}), max_size=4) | _junk,
        "watch": st.lists(st.lists(_junk, max_size=3), max_size=3) | _junk,
        "keys": st.lists(_junk, max_size=3) | _junk,
        "cursor": _junk, "match": _junk, "count": _junk, "count_only": _junk, "aborted": _junk,
    },
)


@settings(max_examples=40, deadline=None)
@given(_shapes)
def test_decoders_answer_any_shape_with_a_request_or_a_bad_request(obj: dict[str, Any]) -> None:
    from actors.protocol.errors import CacheError

    try:
        request = decode_request(obj)
    except CacheError as exc:
        assert exc.code.value == "bad_request", exc
        return
    assert decode_request(encode_request(request)) == request


def test_a_multi_is_bounded_in_size_and_depth() -> None:
    from actors.protocol.txn_kinds import MAX_MULTI_REQUESTS

    with pytest.raises(BadRequestError):
        decode_request({"type": "multi", "requests": [{"type": "get", "key": "k"}] * (MAX_MULTI_REQUESTS + 1)})
    deep: Any = 1
    for _ in range(200):
        deep = [deep]
    with pytest.raises(BadRequestError):
        decode_request({"type": "multi", "requests": [{"type": "set", "key": "k", "value": deep}]}, 100)


def test_a_multi_needs_what_each_of_its_requests_needs() -> None:
    from runtime.acl import User

    reader = User.build("r", enabled=True, nopass=True, categories=["read"], patterns=["pub:*"])
    assert reader.refusal(Multi((Get("pub:a"), Get("pub:b")), rid=1)) is None
    refused = reader.refusal(Multi((Get("pub:a"), Set("pub:b", 1)), rid=2))
    assert refused is not None and refused.code.value == "noperm" and refused.rid == 2
    assert reader.refusal(Multi((Get("secret"),), rid=3)) is not None
    assert reader.refusal(Flush()) is not None  # admin
