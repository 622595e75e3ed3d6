"""Read-modify-write requests (conditional set, expire/persist, ttl, incr): one semantics,
applied by a single node in one store turn and by a cluster at the key's coordinator."""

from __future__ import annotations

import pytest

from actors.protocol.messages import Ack, Delete, ErrorReply, Expire, Get, Incr, Set, Ttl, TtlReply, Value
from actors.protocol.record import Record
from actors.protocol.string_ops import Append, GetDel, GetEx, IncrByFloat, Rename
from actors.store.rmw import DELETE, plan_rename, plan_update
from actors.config import NodeConfig
from actors.protocol.version import Version
from sim.cache_host import CacheSimHost

V = Version(1, 0, "n1")


def rec(value: object, deadline: float | None = None, purge_at: float | None = None) -> Record:
    return Record("k", value, deadline, V, purge_at)


@pytest.mark.parametrize(
    "request_, current, write, reply",
    [
        (Set("k", "v", cond="nx"), None, ("v", None), Ack(applied=True)),
        (Set("k", "v", cond="nx"), rec("old"), None, Ack(applied=False)),
        (Set("k", "v", cond="xx"), None, None, Ack(applied=False)),
        (Set("k", "v", cond="xx", get=True), rec("old"), ("v", None), Value("old", True)),
        (Set("k", "v", get=True), None, ("v", None), Value(None, False)),
        (Set("k", "v", ttl=5, cond="nx"), rec("old", deadline=99.0), ("v", 105.0), Ack(applied=True)),  # expired counts as absent
        (Set("k", "v", keep_ttl=True), rec("old", deadline=150.0), ("v", 150.0), Ack()),
        (Set("k", "v", keep_ttl=True), None, ("v", None), Ack()),
        (Expire("k", 10), rec("x"), ("x", 110.0), Ack(applied=True)),
        (Expire("k", 10), None, None, Ack(applied=False)),
        (Expire("k", 10), rec(None, purge_at=200.0), None, Ack(applied=False)),
        (Expire("k", None), rec("x", deadline=150.0), ("x", None), Ack(applied=True)),
        (Expire("k", None), rec("x"), None, Ack(applied=False)),
        (Ttl("k"), rec("x", deadline=130.0), None, TtlReply(True, 30.0, None, 130.0)),
        (Ttl("k"), rec("x"), None, TtlReply(True, None)),
        (Ttl("k"), None, None, TtlReply(False, None)),
        (Incr("k", 5), None, (5, None), Value(5, True)),
        (Incr("k", -1), rec(b"10", deadline=150.0), (9, 150.0), Value(9, True)),
        (Incr("k", 1), rec("-7"), (-6, None), Value(-6, True)),
        (Incr("k", 1), rec((1 << 63) - 1), None, ErrorReply("bad_request", "increment or decrement would overflow")),  # type: ignore[arg-type]
        (Incr("k", 1), rec("abc"), None, ErrorReply("bad_request", "value is not an integer or out of range")),  # type: ignore[arg-type]
        (Incr("k", 1), rec("007"), None, ErrorReply("bad_request", "value is not an integer or out of range")),  # type: ignore[arg-type]
        (Incr("k", 1), rec(1.5), None, ErrorReply("bad_request", "value is not an integer or out of range")),  # type: ignore[arg-type]
        # Issue 16: Redis's string2ll (no -0, int64 only), deadlines already past delete at
        # once, EXPIRE's conditions, the string operations.
        (Incr("k", 1), rec(b"-0"), None, ErrorReply("bad_request", "value is not an integer or out of range")),  # type: ignore[arg-type]
        (Incr("k", 1), rec(b"9223372036854775808"), None, ErrorReply("bad_request", "value is not an integer or out of range")),  # type: ignore[arg-type]
        (Set("k", "v", at=1.0), rec("old"), DELETE, Ack()),
        (Set("k", "v", at=150.0, cond="xx"), rec("old"), ("v", 150.0), Ack(applied=True)),
        (Expire("k", None, at=50.0), rec("x"), DELETE, Ack(applied=True)),
        (Expire("k", None, at=150.0, cond="nx"), rec("x", deadline=120.0), None, Ack(applied=False)),
        (Expire("k", None, at=150.0, cond="gt"), rec("x", deadline=120.0), ("x", 150.0), Ack(applied=True)),
        (Expire("k", None, at=150.0, cond="gt"), rec("x"), None, Ack(applied=False)),  # no TTL is infinite
        (Expire("k", None, at=150.0, cond="lt"), rec("x"), ("x", 150.0), Ack(applied=True)),
        (Expire("k", None, at=150.0, cond="xx+lt"), rec("x"), None, Ack(applied=False)),
        (GetDel("k"), rec("x"), DELETE, Value("x", True)),
        (GetDel("k"), None, None, Value(None, False)),
        (GetEx("k", ttl=5.0), rec("x"), ("x", 105.0), Value("x", True)),
        (GetEx("k", persist=True), rec("x", deadline=130.0), ("x", None), Value("x", True)),
        (GetEx("k", at=1.0), rec("x"), DELETE, Value("x", True)),
        (Append("k", b"\x00b"), rec(12, deadline=130.0), (b"12\x00b", 130.0), Value(4, True)),
        (Append("k", "é"), None, ("é".encode(), None), Value(2, True)),
        (IncrByFloat("k", "0.1"), rec(b"10.5"), ("10.6", None), Value("10.6", True)),
        (IncrByFloat("k", "inf"), rec(b"1"), None, ErrorReply("bad_request", "increment would produce NaN or Infinity")),  # type: ignore[arg-type]
        (IncrByFloat("k", "1"), rec(b"x"), None, ErrorReply("bad_request", "value is not a valid float")),  # type: ignore[arg-type]
    ],
)
def test_plan_update(request_: object, current: Record | None, write: object, reply: object) -> None:
    assert plan_update(request_, current, wall=100.0) == (write, reply)


def test_plan_rename() -> None:
    src, dst = rec("x", deadline=150.0), Record("k2", "y", None, V, None)
    assert plan_rename(Rename("k", "k2"), src, dst, 100.0) == ({"k2": ("x", 150.0), "k": DELETE}, Ack(applied=True))
    assert plan_rename(Rename("k", "k2", nx=True), src, dst, 100.0) == ({}, Ack(applied=False))
    assert plan_rename(Rename("k", "k2", nx=True), src, None, 100.0)[1] == Ack(applied=True)
    assert plan_rename(Rename("k", "k"), src, src, 100.0) == ({}, Ack(applied=True))
    assert plan_rename(Rename("k", "k2"), None, dst, 100.0) == ({}, ErrorReply("bad_request", "no such key"))  # type: ignore[arg-type]


def test_single_node_on_both_hosts(host: object) -> None:
    host.start_node()  # type: ignore[attr-defined]

    def one(request: object) -> object:
        return host.request([request])[0]  # type: ignore[attr-defined]

    assert one(Set("a", "1", cond="nx")) == Ack(applied=True)
    assert one(Set("a", "2", cond="nx")) == Ack(applied=False)
    assert one(Set("a", "3", cond="xx", get=True, rid=9)) == Value("1", True, 9)
    assert one(Get("a")) == Value("3", True)
    assert one(Incr("n", 2)) == Value(2, True)
    assert one(Incr("n", -5)) == Value(-3, True)
    assert one(Expire("n", 100)) == Ack(applied=True)
    reply = one(Ttl("n"))
    assert type(reply) is TtlReply and reply.found and 99 < reply.ttl <= 100
    assert one(Expire("n", None)) == Ack(applied=True)
    assert one(Ttl("n")) == TtlReply(True, None)
    assert one(Delete("n")) == Ack(deleted=True)
    assert one(Ttl("n")) == TtlReply(False, None)


def cluster(n: int) -> CacheSimHost:
    h = CacheSimHost(seed=3)
    h.start_node("n1", NodeConfig(heartbeat_interval_s=0.1))
    for i in range(2, n + 1):
        h.start_node(f"n{i}", NodeConfig(contacts=("n1",), heartbeat_interval_s=0.1))
    h.run_for(2.0)
    return h


def test_concurrent_increments_through_every_node_add_up() -> None:
    h = cluster(4)
    try:
        futures = [h.submit([Incr("hits", 1)], node_id=f"n{1 + i % 4}") for i in range(200)]
        h.run_for(3.0)
        results = sorted(f.get()[0].value for f in futures)
        assert results == list(range(1, 201))  # every increment saw the one before it
        for node in ("n1", "n2", "n3", "n4"):
            assert h.request([Get("hits", consistency="quorum")], node_id=node)[0] == Value(200, True)
    finally:
        h.shutdown()


def test_only_one_of_many_concurrent_nx_sets_wins() -> None:
    h = cluster(3)
    try:
        futures = [h.submit([Set("lock", f"owner{i}", cond="nx")], node_id=f"n{1 + i % 3}") for i in range(30)]
        h.run_for(3.0)
        replies = [f.get()[0] for f in futures]
        winners = [i for i, r in enumerate(replies) if r == Ack(applied=True)]
        assert len(winners) == 1
        assert all(r == Ack(applied=False) for i, r in enumerate(replies) if i not in winners)
        assert h.request([Get("lock", consistency="all")], node_id="n1")[0] == Value(f"owner{winners[0]}", True)
    finally:
        h.shutdown()


def test_expire_and_ttl_agree_across_the_cluster() -> None:
    h = cluster(3)
    try:
        assert h.request([Set("s", "v")], node_id="n2")[0] == Ack()
        assert h.request([Expire("s", 2)], node_id="n3")[0] == Ack(applied=True)
        for node in ("n1", "n2", "n3"):
            reply = h.request([Ttl("s", consistency="all")], node_id=node)[0]
            assert reply.found and 1.9 < reply.ttl <= 2.0
        h.run_for(2.1)
        assert h.request([Get("s", consistency="all")], node_id="n1")[0] == Value(None, False)
    finally:
        h.shutdown()


def test_update_fails_definitely_when_no_owner_can_coordinate() -> None:
    h = cluster(3)
    try:
        h.crash("n2")
        h.crash("n3")
        h.run_for(3.5)  # both detected down (suspect, then down_after_s)
        reply = h.request([Incr("x", 1)], node_id="n1")[0]
        # n1 can coordinate, but a quorum read of 3 owners with 2 down cannot happen.
        assert type(reply) is ErrorReply and reply.code == "unavailable"
        assert h.request([Incr("x", 1, consistency="one")], node_id="n1")[0] == Value(1, True)
    finally:
        h.shutdown()
