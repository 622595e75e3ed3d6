"""Store operations applied by calling their pure functions: no actor, no host, no clock."""

from __future__ import annotations

import random
import typing
from typing import Any

import pytest

from actors.protocol.errors import ErrorCode
from actors.protocol.messages import Ack, ErrorReply, Expire, Incr, Set, TtlReply, Ttl, Value
from actors.protocol.record import Record
from actors.protocol.replica_ops import Apply, Fetch, ItemResults, Remove, Write
from actors.protocol.version import ZERO, Version
from actors.store.apply import APPLY, apply
from actors.store.eviction import make_evictor
from actors.store.keyspace import Keyspace
from actors.store.ops import Describe, DigestQuery, DropPartitions, ListingQuery, Modify, Read, SaveSnapshot, StatsQuery, StoreOp
from actors.store.partitions import partition_of

V1, V2, V3 = Version(1, 0, "a"), Version(2, 0, "a"), Version(3, 0, "b")


class Tracer:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))


def test_every_store_operation_has_a_row_except_the_actors_own_stats() -> None:
    assert set(typing.get_args(StoreOp)) - set(APPLY) == {StatsQuery, SaveSnapshot}  # the store's own
    with pytest.raises(TypeError, match="unknown store operation StatsQuery"):
        apply(Keyspace(), StatsQuery(), 0.0)


def test_read_answers_value_and_found_per_key_and_counts_hits() -> None:
    ks = Keyspace()
    apply(ks, Write((("a", 1, None), ("b", 2, 5.0)), V1), 0.0)
    assert apply(ks, Read(("a", "b", "c")), 1.0) == ((1, True), (2, True), (None, False))
    assert apply(ks, Read(("b",)), 5.0) == ((None, False),)  # exactly at its deadline: gone
    assert (ks.hits, ks.misses) == (2, 2)


def test_a_write_counts_what_it_stored_and_traces_each_key() -> None:
    ks, trace = Keyspace(), Tracer()
    assert apply(ks, Write((("a", 1, None), ("b", 2, None)), V2, ("n1", "n2")), 0.0, trace) == 2
    assert trace.events == [("apply", {"key": "a", "version": [2, 0, "a"]}), ("apply", {"key": "b", "version": [2, 0, "a"]})]
    assert apply(ks, Describe(("a",)), 0.0) == ((Record("a", 1, None, V2), ("n1", "n2")),)


def test_a_write_older_than_what_a_key_holds_answers_the_newer_version_and_keeps_it() -> None:
    ks, trace = Keyspace(), Tracer()
    apply(ks, Write((("held", "new", None),), V3), 0.0)
    assert apply(ks, Write((("fresh", 1, None), ("held", "old", None)), V2), 0.0, trace) == V3
    assert apply(ks, Read(("fresh", "held")), 0.0) == ((1, True), ("new", True))
    assert [fields["key"] for _, fields in trace.events] == ["fresh"]


def test_an_item_by_item_write_answers_each_item() -> None:
    ks = Keyspace()
    apply(ks, Write((("held", "x", None),), V3), 0.0)
    apply(ks, Write((("same", "y", None),), V2), 0.0)
    op = Write((("fresh", 1, None), ("held", 2, None), ("same", 3, None)), V2, ("a",), each=True)
    result = apply(ks, op, 0.0)
    assert type(result) is ItemResults and result == (1, V3, 1)


def test_at_the_memory_bound_noeviction_refuses_the_whole_write_and_names_the_policy() -> None:
    ks = Keyspace(max_memory=1, evictor=make_evictor("noeviction", random.Random(1)))
    apply(ks, Write((("a", "x" * 100, None),), V1), 0.0)  # the first write fits under nothing: it is let in
    refused = apply(ks, Write((("b", 1, None), ("c", 2, None)), V2), 0.0)
    assert type(refused) is ErrorReply and refused.code is ErrorCode.OUT_OF_MEMORY
    assert "policy noeviction" in refused.message
    assert apply(ks, Read(("b", "c")), 0.0) == ((None, False), (None, False))
    each = apply(ks, Write((("b", 1, None),), V2, each=True), 0.0)
    assert type(each[0]) is ErrorReply
    assert apply(ks, Remove(("a",), V2), 0.0) == 1  # deletes still work


def test_remove_counts_what_existed_keeps_a_tombstone_and_refuses_to_undo_a_newer_write() -> None:
    ks = Keyspace(tombstone_ttl=60.0)
    apply(ks, Write((("a", 1, None), ("b", 2, None)), V1), 0.0)
    trace = Tracer()
    assert apply(ks, Remove(("a", "missing"), V2, purge_at=60.0), 0.0, trace) == 1
    assert apply(ks, Fetch(("a",)), 1.0) == (Record("a", None, None, V2, 60.0),)
    assert [fields for _, fields in trace.events] == [
        {"key": "a", "version": [2, 0, "a"], "delete": True},
        {"key": "missing", "version": [2, 0, "a"], "delete": True},
    ]
    apply(ks, Write((("b", 3, None),), V3), 0.0)
    assert apply(ks, Remove(("b",), V2), 0.0) == V3
    assert apply(ks, Read(("b",)), 0.0) == ((3, True),)


def test_fetch_answers_records_and_counts_hits_only_when_asked() -> None:
    ks = Keyspace()
    apply(ks, Write((("a", 1, 9.0),), V1), 0.0)
    assert apply(ks, Fetch(("a", "b"), count=False), 0.0) == (Record("a", 1, 9.0, V1), None)
    assert (ks.hits, ks.misses) == (0, 0)
    apply(ks, Fetch(("a", "b")), 0.0)
    assert (ks.hits, ks.misses) == (1, 1)


def test_modify_applies_a_read_modify_write_in_one_step() -> None:
    ks = Keyspace()
    assert apply(ks, Modify(Incr("n", 5, rid=7), V1), 0.0) == Value(5, True, 7)
    assert apply(ks, Modify(Incr("n", 2), V2), 0.0) == Value(7, True)
    assert apply(ks, Modify(Set("n", "x", cond="nx"), V2), 0.0) == Ack(applied=False)
    assert apply(ks, Modify(Expire("n", 10.0), V3), 1.0) == Ack(applied=True)
    assert apply(ks, Modify(Ttl("n"), ZERO), 4.0) == TtlReply(True, 7.0, None, 11.0)
    assert apply(ks, Read(("n",)), 4.0) == ((7, True),)


def test_modify_against_a_newer_stored_version_answers_it_for_a_re_stamp() -> None:
    ks = Keyspace()
    apply(ks, Write((("n", 1, None),), V3), 0.0)
    assert apply(ks, Modify(Incr("n"), V2), 0.0) == V3
    assert apply(ks, Read(("n",)), 0.0) == ((1, True),)


def test_apply_merges_records_last_write_wins() -> None:
    ks, trace = Keyspace(), Tracer()
    apply(ks, Write((("a", "mine", None),), V2), 0.0)
    records = (Record("a", "older", None, V1), Record("b", "theirs", None, V3))
    assert apply(ks, Apply(records), 0.0, trace) == 1
    assert apply(ks, Read(("a", "b")), 0.0) == (("mine", True), ("theirs", True))
    assert trace.events == [("apply", {"key": "b", "version": [3, 0, "b"], "via": "repair"})]


def test_listing_digest_and_drop_partitions_agree() -> None:
    ks = Keyspace(partitions=4)
    keys = [f"k{i}" for i in range(20)]
    apply(ks, Write(tuple((key, i, None) for i, key in enumerate(keys)), V1), 0.0)
    p = partition_of("k0", 4)
    mine = sorted(key for key in keys if partition_of(key, 4) == p)
    ((partition, listing),) = apply(ks, ListingQuery((p,)), 0.0)
    assert partition == p and sorted(listing) == [(key, V1) for key in mine]
    ((_, digest),) = apply(ks, DigestQuery((p,)), 0.0)
    assert digest != 0
    assert apply(ks, DropPartitions((p,)), 0.0) == len(mine)
    assert apply(ks, DigestQuery((p,)), 0.0) == ((p, 0),)
    assert len(ks) == len(keys) - len(mine)
