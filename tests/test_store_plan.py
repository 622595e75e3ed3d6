"""A single node's path as pure functions: plan a request, apply its operation, make its reply."""

from __future__ import annotations

from typing import Any

from actors.protocol.errors import ErrorCode
from actors.protocol.kinds import KINDS, Route
from actors.protocol.messages import (
    Ack,
    Delete,
    ErrorReply,
    Expire,
    Get,
    Incr,
    Inspect,
    Join,
    Locate,
    MGet,
    MSet,
    Ping,
    RemoveNode,
    Set,
    Stats,
    StatsReply,
    Ttl,
    TtlReply,
    Value,
    Values,
)
from actors.protocol.replica_ops import Remove, Write
from actors.protocol.version import Version
from actors.store.apply import apply
from actors.store.keyspace import Keyspace
from actors.store.ops import Modify, Read
from actors.protocol.txn_messages import Multi
from actors.store.plan import PLANS, REPLIES, Stamp, local_reply, plan_local


class Clock:
    def __init__(self) -> None:
        self.logical = 0

    def tick(self, wall: float) -> Version:
        self.logical += 1
        return Version(int(wall * 1000), self.logical, "n1")


def _node() -> tuple[Keyspace, Stamp]:
    return Keyspace(tombstone_ttl=60.0), Stamp(Clock().tick, ("n1",), 60.0)


def _serve(ks: Keyspace, stamp: Stamp, request: Any, wall: float) -> Any:
    op = plan_local(request, wall, stamp)
    assert op is not None, request
    return local_reply(request, apply(ks, op, wall))


def test_every_kind_the_node_does_not_answer_itself_has_a_plan_and_a_reply() -> None:
    planned = {kind.type for kind in KINDS.values() if kind.route in (Route.READ, Route.WRITE, Route.LOCAL)}
    internal = {t for t in planned if not KINDS[t].decoders}  # the rmw coordinator's: never planned locally
    assert set(PLANS) == planned - internal
    assert set(REPLIES) == set(PLANS) - {Ttl} | {Multi}  # ttl's Modify answers its own reply; a multi is planned by plan_local itself


def test_the_node_answers_these_itself() -> None:
    _, stamp = _node()
    for request in (Ping(), Join("n2"), Locate("k"), RemoveNode("n2")):
        assert plan_local(request, 0.0, stamp) is None


def test_plans_stamp_versions_and_absolute_deadlines() -> None:
    _, stamp = _node()
    write = plan_local(Set("k", 1, ttl=2.0), 100.0, stamp)
    assert write == Write((("k", 1, 102.0),), Version(100_000, 1, "n1"), ("n1",))
    assert plan_local(MSet((("a", 1), ("b", 2))), 100.0, stamp) == Write(
        (("a", 1, None), ("b", 2, None)), Version(100_000, 2, "n1"), ("n1",)
    )
    assert plan_local(Delete("k"), 100.0, stamp) == Remove(("k",), Version(100_000, 3, "n1"), 160.0)
    assert plan_local(MGet(("a", "b")), 100.0, stamp) == Read(("a", "b"))
    conditional = Set("k", 1, cond="nx")
    assert plan_local(conditional, 100.0, stamp) == Modify(conditional, Version(100_000, 4, "n1"), ("n1",))
    assert plan_local(Incr("n"), 100.0, stamp) == Modify(Incr("n"), Version(100_000, 5, "n1"), ("n1",))


def test_a_single_node_serves_a_session_through_the_pure_functions() -> None:
    ks, stamp = _node()
    assert _serve(ks, stamp, Set("a", "x", rid=1), 0.0) == Ack(1)
    assert _serve(ks, stamp, Get("a", rid=2), 0.0) == Value("x", True, 2)
    assert _serve(ks, stamp, MSet((("b", 1), ("c", 2)), ttl=10.0, rid=3), 1.0) == Ack(3)
    assert _serve(ks, stamp, MGet(("a", "b", "zz"), rid=4), 1.0) == Values(
        (("a", "x", True), ("b", 1, True), ("zz", None, False)), 4
    )
    assert _serve(ks, stamp, Ttl("b", rid=5), 6.0) == TtlReply(True, 5.0, 5, 11.0)
    assert _serve(ks, stamp, Incr("n", 3, rid=6), 6.0) == Value(3, True, 6)
    assert _serve(ks, stamp, Set("a", "y", cond="nx", rid=7), 6.0) == Ack(7, applied=False)
    assert _serve(ks, stamp, Expire("a", 1.0, rid=8), 6.0) == Ack(8, applied=True)
    assert _serve(ks, stamp, Get("a", rid=9), 7.0) == Value(None, False, 9)
    assert _serve(ks, stamp, Delete("c", rid=10), 8.0) == Ack(10, deleted=True)
    assert _serve(ks, stamp, Delete("c", rid=11), 8.0) == Ack(11, deleted=False)
    inspected = _serve(ks, stamp, Inspect("n", rid=12), 8.0)
    assert inspected.key == "n" and inspected.record.value == 3 and inspected.replicas == ("n1",)
    assert inspected.rid == 12
    assert _serve(ks, stamp, Incr("a", rid=13), 8.0) == Value(1, True, 13)  # expired: counts from 0


def test_a_store_made_reply_gets_the_requests_id() -> None:
    full = ErrorReply(ErrorCode.OUT_OF_MEMORY, "full")
    assert local_reply(Set("k", 1, rid=5), full) == ErrorReply(ErrorCode.OUT_OF_MEMORY, "full", 5)
    assert local_reply(Stats(rid=6), {"keys": 0}) == StatsReply({"keys": 0}, 6)
