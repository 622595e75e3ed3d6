"""Hashes and sets as replicated types, in process: the merge is a join (commutative,
associative, idempotent), a field write survives any order and repetition of delivery,
whole-key writes erase exactly the fields older than them, the simulator checker's own
reference agrees with the node's merge, the peer wire carries states and deltas and
refuses malformed ones, anti-entropy exchanges differing hashes both ways, memory is
accounted for, and a single node answers the commands as ``actors.store.coll_ops`` says."""

from __future__ import annotations

import itertools
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from actors.cluster.sync_rounds import diff_listings
from actors.protocol.collection import PENDING, Coll, merge_records, view
from actors.protocol.errors import BadRequestError, ErrorCode
from actors.protocol.messages import CollOp, ErrorReply, Expire, Get, Value
from actors.protocol.peer_codec import decode_peer, encode_peer
from actors.protocol.peer_messages import Push, ReplicaRequest
from actors.protocol.record import Record
from actors.protocol.replica_ops import Apply, Write
from actors.protocol.version import ZERO, Version
from actors.store.apply import apply
from actors.store.flush_marks import MARKER_VALUE, marker_key
from actors.store.keyspace import Keyspace
from actors.store.ops import Modify, Read
from actors.store.plan import local_reply
from sim.checkers import fields_of

# Few distinct parts, so equal versions, equal names and ties come up often.
versions = st.builds(Version, st.integers(1, 4), st.integers(0, 2), st.sampled_from(["n1", "n2"]))
names = st.sampled_from(["ha", "hb", "hc", "sx", "t"])
items = st.dictionaries(names, st.tuples(st.one_of(st.none(), st.sampled_from([b"1", b"2"])), versions), max_size=4)


@st.composite
def colls(draw: Any) -> Record:
    """A state as merges make them: its deadline's version is none above its newest item
    (a deadline-only write carries the ``t`` item)."""
    drawn = draw(items)
    ttl = draw(st.sampled_from([ZERO, *sorted(v for _, v in drawn.values())]))
    coll = Coll(drawn, draw(st.one_of(st.just(ZERO), versions)), ttl)
    deadline = draw(st.one_of(st.none(), st.sampled_from([50.0, 60.0]))) if coll.ttl_version != ZERO else None
    return Record("k", coll, deadline, coll.max_version)


records = st.one_of(
    colls(),
    st.builds(
        Record, key=st.just("k"), value=st.sampled_from([b"s1", b"s2"]), deadline=st.none(), version=versions, purge_at=st.none()
    ),
    st.builds(Record, key=st.just("k"), value=st.none(), deadline=st.none(), version=versions, purge_at=st.just(100.0)),
    st.none(),
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(records, records, records)
def test_the_merge_is_a_join(a: Record | None, b: Record | None, c: Record | None) -> None:
    ab = merge_records(a, b)
    assert ab == merge_records(b, a)
    assert merge_records(ab, c) == merge_records(a, merge_records(b, c))
    assert merge_records(ab, b) == ab
    assert merge_records(ab, ab) == ab


# --- a history of writes, delivered in any order -------------------------------------------


@st.composite
def write_histories(draw: Any) -> list[Record]:
    """Distinct versions (each write its own), field writes and deletes of a hash, and
    whole-key writes and deletes between them."""
    count = draw(st.integers(1, 8))
    stamps = sorted(draw(st.sets(st.integers(1, 60), min_size=count, max_size=count)))
    out = []
    for wall in stamps:
        version = Version(wall, 0, draw(st.sampled_from(["n1", "n2"])))
        kind = draw(st.sampled_from(["hset", "hset", "hset", "hdel", "set", "del"]))
        if kind == "set":
            out.append(Record("k", b"plain", None, version))
        elif kind == "del":
            out.append(Record("k", None, None, version, 1e9))
        else:
            name = draw(st.sampled_from(["ha", "hb", "hc"]))
            value = None if kind == "hdel" else f"v{wall}".encode()
            out.append(Record("k", Coll({name: (value, PENDING)}), None, version))
    return out


@settings(max_examples=100, deadline=None, derandomize=True)
@given(write_histories(), st.randoms(use_true_random=False))
def test_every_order_and_repetition_of_delivery_ends_in_the_same_fields(history: list[Record], rng: Any) -> None:
    """Two replicas apply the same writes (as repairs, hints and streams do) in different
    orders, some twice: both end with the same state, and the fields it shows are those
    the simulator checker's reference expects: each field's newest write, unless a
    whole-key write newer than it erased it (never one older than it)."""
    first, second = Keyspace(tombstone_ttl=1e9), Keyspace(tombstone_ttl=1e9)
    for record in history:
        first.apply(record, 0.0)
    shuffled = history + rng.sample(history, len(history) // 2)
    rng.shuffle(shuffled)
    for record in shuffled:
        second.apply(record, 0.0)
    a, b = first.record("k", 0.0), second.record("k", 0.0)
    assert a == b
    shown = view(a.value)[1] if a is not None and type(a.value) is Coll else {}
    assert shown == fields_of([a], "h")
    # The reference, from the history alone: the newest field writes above the newest whole-key write.
    floor = max((r.version for r in history if type(r.value) is not Coll), default=ZERO)
    expected: dict[str, Any] = {}
    for r in history:
        if type(r.value) is Coll and r.version > floor:
            (name, (value, _)), = r.value.items.items()
            expected[name[1:]] = value
    assert shown == {name: value for name, value in sorted(expected.items()) if value is not None}


def test_a_whole_key_delete_erases_older_fields_and_keeps_newer_ones() -> None:
    ks = Keyspace(tombstone_ttl=100.0)
    v = [Version(i, 0, "n1") for i in range(10)]
    ks.apply(Record("k", Coll({"ha": (b"1", PENDING)}), None, v[1]), 0.0)
    ks.apply(Record("k", Coll({"hb": (b"2", PENDING)}), None, v[5]), 0.0)
    ks.apply(Record("k", None, None, v[3], 100.0), 0.0)  # a DEL between them, arriving last
    assert view(ks.record("k", 0.0).value) == ("h", {"b": b"2"})
    ks.apply(Record("k", None, None, v[7], 100.0), 0.0)  # a DEL newer than every field: gone
    assert ks.record("k", 0.0) == Record("k", None, None, v[7], 100.0)


# --- writes through the store: refusal, re-stamp, single-copy cleanup -----------------------


def _run(ks: Keyspace, request: Any, wall_ms: int, wall: float = 1.0) -> Any:
    return apply(ks, Modify(request, Version(wall_ms, 0, "n1"), ("n1",)), wall)


def test_a_field_write_older_than_the_key_is_refused_with_the_newer_version() -> None:
    ks = Keyspace(tombstone_ttl=10.0)
    assert _run(ks, CollOp("k", "hset", ("a", b"1")), 5) == Value(1, True)
    # An older field write (another coordinator's clock behind) is refused: it re-stamps.
    stale = Write((("k", Coll({"hb": (b"2", PENDING)}), None),), Version(3, 0, "n2"))
    assert apply(ks, stale, 1.0) == Version(5, 0, "n1")
    restamped = Write((("k", Coll({"hb": (b"2", PENDING)}), None),), Version(6, 0, "n2"))
    assert apply(ks, restamped, 1.0) == 1
    assert _run(ks, CollOp("k", "hgetall", ()), 7) == Value(["a", b"1", "b", b"2"], True)


def test_a_single_node_frees_a_hash_whose_last_field_goes() -> None:
    ks = Keyspace()
    assert _run(ks, CollOp("k", "sadd", ("x", "y")), 1) == Value(2, True)
    grown = ks.used_bytes
    assert grown > 0
    assert _run(ks, CollOp("k", "srem", ("x", "y", "z")), 2) == Value(2, True)
    assert len(ks) == 0 and ks.used_bytes == 0
    assert _run(ks, CollOp("k", "scard", ()), 3) == Value(0, True)


def test_wrong_types_and_expiry_of_a_whole_hash() -> None:
    ks = Keyspace(tombstone_ttl=10.0)
    _run(ks, CollOp("h", "hset", ("f", b"v")), 1)
    assert type(_run(ks, CollOp("h", "sadd", ("m",)), 2)) is ErrorReply
    assert _run(ks, Expire("h", 5.0), 3, wall=1.0).applied
    assert _run(ks, CollOp("h", "hset", ("g", b"w")), 4, wall=2.0) == Value(1, True)
    assert ks.record("h", 2.0).deadline == 6.0  # a field write keeps the key's deadline
    assert ks.record("h", 6.0).purge_at is not None  # the whole hash expires: a tombstone
    assert _run(ks, CollOp("h", "hgetall", ()), 9000, wall=7.0) == Value([], True)
    assert _run(ks, CollOp("h", "hset", ("z", b"1")), 9001, wall=7.0) == Value(1, True)
    assert _run(ks, CollOp("h", "hgetall", ()), 9002, wall=7.0) == Value(["z", b"1"], True)
    assert ks.record("h", 7.0).deadline is None
    got = local_reply(Get("h"), apply(ks, Read(("h",)), 7.0))
    assert type(got) is ErrorReply and got.code == ErrorCode.WRONG_TYPE  # GET on a hash


# --- the wire ------------------------------------------------------------------------------


def _round_trip(msg: Any) -> Any:
    return decode_peer(msgpack.unpackb(msgpack.packb(encode_peer(msg), use_bin_type=True), raw=False))


def test_states_and_deltas_cross_the_peer_wire() -> None:
    state = Coll({"ha": (b"1", Version(3, 1, "n1")), "hb": (None, Version(4, 0, "n2"))}, Version(2, 0, "n1"), Version(3, 1, "n1"))
    record = Record("k", state, 99.5, Version(4, 0, "n2"))
    assert _round_trip(Push(1, (record, Record("p", b"v", None, Version(1, 0, "n1"))), False, False)).records[0] == record
    delta = Write((("k", Coll({"sm": (1, PENDING)}, ZERO, PENDING), None),), Version(9, 0, "n1"), ("n1", "n2"))
    back = _round_trip(ReplicaRequest(7, (delta, Apply((record,))), True))
    assert back.ops[0] == delta and back.ops[1] == Apply((record,))


@pytest.mark.parametrize(
    "bad",
    [
        ["k", "notalist", None, [1, 0, "n1"], None, "c"],
        ["k", [None, None, [["xa", b"1"]]], None, [1, 0, "n1"], None, "c"],  # no h/s prefix
        ["k", [None, None, [["ha", b"1"], ["ha", b"2"]]], None, [1, 0, "n1"], None, "c"],  # a name twice
        ["k", [None, None, [["ha", [1, 2]]]], None, [1, 0, "n1"], None, "c"],  # a nested value
        ["k", [None, None, [["ha", b"1", -1, 0, "n1"]]], None, [1, 0, "n1"], None, "c"],  # a bad version
        ["k", [None, None, []], None, [1, 0, "n1"], 5.0, "c"],  # a tagged tombstone
        ["k", [None, None, []], None, [1, 0, "n1"], None, "x"],  # an unknown tag
        ["k", [None, None, [["ha", b"1", 9, 0, "n1"]]], None, [1, 0, "n1"], None, "c"],  # a field above its record
        ["k", [[9, 0, "n1"], None, [["ha", b"1", 1, 0, "n1"]]], None, [1, 0, "n1"], None, "c"],  # a floor above it
        ["k", [None, [1, 0, "n1"], [["ha", b"1", 0, 5, "n1"]]], None, [1, 0, "n1"], None, "c"],  # a deadline above all fields
    ],
)
def test_malformed_hashes_from_a_peer_are_refused(bad: list[Any]) -> None:
    with pytest.raises(BadRequestError):
        decode_peer({"type": "push", "sid": 1, "records": [bad], "ack": False, "reply": False})


# --- anti-entropy and memory -------------------------------------------------------------------


def test_anti_entropy_exchanges_hashes_with_different_fields_both_ways() -> None:
    a, b = Keyspace(tombstone_ttl=10.0, partitions=1), Keyspace(tombstone_ttl=10.0, partitions=1)
    a.apply(Record("k", Coll({"ha": (b"1", PENDING)}), None, Version(1, 0, "n1")), 0.0)
    a.apply(Record("k", Coll({"hc": (b"3", PENDING)}), None, Version(9, 0, "n1")), 0.0)
    b.apply(Record("k", Coll({"hb": (b"2", PENDING)}), None, Version(5, 0, "n2")), 0.0)
    assert a.digest(0) != b.digest(0)
    push, pull = diff_listings(a.listing(0), b.listing(0))
    assert push == ["k"] and pull == ["k"]  # although a's newest version is newer than b's
    a.apply(b.record("k", 0.0), 0.0)
    b.apply(a.record("k", 0.0), 0.0)
    assert a.digest(0) == b.digest(0) and view(a.record("k", 0.0).value)[1] == {"a": b"1", "b": b"2", "c": b"3"}
    assert diff_listings(a.listing(0), b.listing(0)) == ([], [])


def test_memory_grows_with_fields_and_returns_when_the_key_goes() -> None:
    ks = Keyspace(tombstone_ttl=10.0)
    sizes = []
    for i, wall in zip(range(5), itertools.count(1)):
        _run(ks, CollOp("k", "hset", (f"field{i}", b"x" * 100)), wall)
        sizes.append(ks.used_bytes)
    assert all(later - earlier > 100 for earlier, later in zip(sizes, sizes[1:]))
    ks.delete("k", 1.0, Version(100, 0, "n1"))
    assert ks.used_bytes == 0


def test_a_flush_erases_the_fields_it_covers_and_a_stale_replica_cannot_bring_them_back() -> None:
    ks = Keyspace(tombstone_ttl=100.0, partitions=1)
    v = [Version(i, 0, "n1") for i in range(10)]
    ks.apply(Record("k", Coll({"ha": (b"1", PENDING)}), None, v[1]), 0.0)
    ks.apply(Record("k", Coll({"hb": (b"2", PENDING)}), None, v[5]), 0.0)
    stale = ks.record("k", 0.0)  # what a replica that misses the flush keeps
    ks.apply(Record(marker_key(0, 1), MARKER_VALUE, None, v[3]), 0.0)  # FLUSHDB at version 3
    assert view(ks.record("k", 0.0).value)[1] == {"b": b"2"}
    assert not ks.apply(stale, 0.0)  # anti-entropy from the stale replica: "a" stays gone
    assert view(ks.record("k", 0.0).value)[1] == {"b": b"2"}
    ks.apply(Record("k", Coll({"hc": (b"3", PENDING)}), None, v[7]), 0.0)
    assert view(ks.record("k", 0.0).value)[1] == {"b": b"2", "c": b"3"}


def test_a_hash_whose_fields_were_all_deleted_is_forgotten_after_the_tombstone_time() -> None:
    ks = Keyspace(tombstone_ttl=10.0)
    _run(ks, CollOp("k", "hset", ("a", b"1")), 1000, wall=1.0)
    _run(ks, CollOp("k", "hdel", ("a",)), 2000, wall=2.0)
    assert len(ks) == 1 and _run(ks, CollOp("k", "hlen", ()), 2001, wall=2.0) == Value(0, True)
    assert ks.purge_tombstones(11.9) == 0 and len(ks) == 1  # its field tombstone still guards "a"
    assert ks.purge_tombstones(12.0) == 1 and len(ks) == 0 and ks.used_bytes == 0


anything = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**64), 2**64), st.text(max_size=4), st.binary(max_size=4), st.floats()),
    lambda inner: st.lists(inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(anything, anything, anything)
def test_any_shape_of_a_tagged_record_from_a_peer_is_refused_cleanly_or_decoded(coll: Any, deadline: Any, version: Any) -> None:
    """Every byte from a peer is hostile: whatever a tagged record holds, decoding it gives
    a hash or set whose names, values and versions are checked, or a BadRequestError."""
    for record in (["k", coll, deadline, version, None, "c"], ["k", [None, None, coll], None, [1, 0, "n1"], None, "c"]):
        try:
            msg = decode_peer({"type": "push", "sid": 1, "records": [record], "ack": False, "reply": False})
        except BadRequestError:
            continue
        got = msg.records[0].value
        assert type(got) is Coll
        assert all(type(name) is str and name[0] in "hst" for name in got.items)
        assert all(v is None or type(v) in (str, bytes, int) for v, _ in got.items.values())


def test_replicas_prune_field_tombstones_alike_whatever_their_clocks() -> None:
    """A field tombstone goes once a write 10 s newer than it arrives (the tombstone
    time), on every replica alike, whenever each applies that write: their digests agree."""
    early, late = Keyspace(tombstone_ttl=10.0, partitions=1), Keyspace(tombstone_ttl=10.0, partitions=1)
    writes = [
        Write((("k", Coll({"ha": (b"1", PENDING)}), None),), Version(1_000, 0, "n1")),
        Write((("k", Coll({"ha": (None, PENDING)}), None),), Version(2_000, 0, "n1")),
        Write((("k", Coll({"hb": (b"2", PENDING)}), None),), Version(20_000, 0, "n1")),
    ]
    for op in writes:
        apply(early, op, 11.0)  # (its clock says 11 s; the write's version 20 s)
        apply(late, op, 500.0)
    assert early.digest(0) == late.digest(0)
    assert "ha" not in early.record("k", 11.0).value.items  # 2 s old, the write 20 s: pruned
