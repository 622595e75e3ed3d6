"""No request can kill a node's actors: poison fed straight to the node and the store, on
every host (asyncio loop and SimPy), as ``test_node_behaviour.py`` runs.

What each test feeds would have stopped an actor under Pykka's rule (and made the host
exit 70): a value deep enough to overflow a recursive walk, operations whose applying
raises, a batch whose planning raises, peer messages whose handling raises. Afterwards
every actor of the node is alive, the next request is served, and ``stats`` counts what
happened (``internal_errors``, ``actor_failures``).
"""

from __future__ import annotations

from typing import Any

import pytest

from actors.kernel import ScheduledFuture
from actors.protocol.errors import ErrorCode
from actors.store.keyspace import ENTRY_OVERHEAD
from actors.protocol.messages import Ack, Delete, ErrorReply, Get, MSet, Ping, Pong, Set, Stats, Value
from actors.store.ops import Read, StoreCall, StoreAnswer
from actors.protocol.replica_ops import Write
from actors.kernel.peer import FromPeer
from actors.protocol.peer_messages import ReplicaRequest, SyncRequest
from actors.store.sizing import estimate_size
from actors.protocol.version import Version


def nest(depth: int, leaf: Any = "x") -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def _stats(host: Any) -> dict[str, Any]:
    (reply,) = host.request([Stats()])
    return reply.stats  # type: ignore[no-any-return]


def _all_alive(host: Any) -> bool:
    return all(ref.is_alive() for ref in host.nodes["node1"].actors())


def _serves(host: Any) -> None:
    """The node answers a fresh write and read after whatever came before."""
    assert host.request([Set("fresh", "v"), Get("fresh"), Ping()]) == (Ack(), Value("v", True), Pong())


@pytest.mark.parametrize("depth", [500, 100_000])
def test_a_deep_value_handed_to_the_node_is_stored_sized_and_served(host: Any, depth: int) -> None:
    """Decoders refuse such values (``--max-value-depth``); a value that reaches the store
    some other way is still sized without recursion (depth 500 killed the store once)."""
    host.start_node()
    value = nest(depth)
    assert host.request([Set("deep", value)]) == (Ack(),)
    (reply,) = host.request([Get("deep")])
    assert reply.found and reply.value is value
    assert _stats(host)["memory_bytes"] == ENTRY_OVERHEAD + len("deep") + estimate_size(value)
    assert host.request([MSet((("d1", value), ("d2", [value])))]) == (Ack(),)
    assert host.request([Delete("deep"), Delete("d1"), Delete("d2")]) == (Ack(deleted=True),) * 3
    stats = _stats(host)
    assert stats["memory_bytes"] == 0 and stats["internal_errors"] == 0
    assert _all_alive(host)
    _serves(host)


def test_an_operation_whose_applying_raises_is_answered_internal_and_the_next_one_applied(host: Any) -> None:
    host.start_node()
    # An unhashable key: the keyspace raises on it (no decoder ever builds one).
    assert host.request([Set("before", 1)]) == (Ack(),)
    (reply,) = host.request([Set(["not", "hashable"], 1, rid="r1")])
    assert isinstance(reply, ErrorReply) and reply.code == ErrorCode.INTERNAL and reply.rid == "r1"
    assert "not" not in reply.message  # the message names types, never the request's data
    assert host.request([Get("before")]) == (Value(1, True),)
    stats = _stats(host)
    assert stats["internal_errors"] == 1 and stats["actor_failures"] == 0
    assert stats["memory_bytes"] == ENTRY_OVERHEAD + len("before") + estimate_size(1)  # nothing half-stored
    assert _all_alive(host)
    _serves(host)


class _Collect:
    """A reply target for messages the store sends back: completes a future."""

    def __init__(self, future: Any) -> None:
        self.future = future

    def tell(self, message: Any) -> None:
        self.future.set(message)


def test_the_store_answers_each_op_of_a_batch_on_its_own(host: Any) -> None:
    refs = host.start_node()
    future = ScheduledFuture(host.scheduler)
    version = Version(1, 0, "node1")
    ops = (
        (0, Write((("a", 1, None),), version, ("node1",))),
        (1, Write((("b", 2, None), (["bad"], 3, None)), version, ("node1",))),
        (2, Read(("a", "b", "c"))),
        (3, object()),  # not an operation at all
    )
    refs.store.tell(StoreCall(7, ops, _Collect(future)))
    results = future.get(timeout=10)
    assert isinstance(results, StoreAnswer) and results.batch == 7
    by_slot = dict(results.results)
    assert by_slot[0] == 1
    assert isinstance(by_slot[1], ErrorReply) and by_slot[1].code == ErrorCode.INTERNAL
    assert by_slot[2] == ((1, True), (2, True), (None, False))  # "b" was applied before the bad item
    assert isinstance(by_slot[3], ErrorReply) and by_slot[3].code == ErrorCode.INTERNAL
    assert _stats(host)["internal_errors"] == 2
    assert _all_alive(host)
    _serves(host)


def test_a_request_the_store_cannot_apply_costs_its_own_reply_only(host: Any) -> None:
    """An unhashable key (no decoder makes one; a bug upstream could) fails its own
    request, answered ``internal`` with its id, not the batch, and not other connections'
    requests gathered into the same turn's runs (red team, issue 14: one bad member of a
    run used to fail the run's one operation for every member)."""
    host.start_node()
    conn, other, third = host.connect(), host.connect(), host.connect()
    host.request([Set("b", 2)], conn=other)
    bad = host.submit([Set(["k"], 1, rid=1), Set(["k"], 2, rid=2), Ping(rid=3)], conn=conn)
    good = host.submit([Set("a", 1, rid=4), Get("b", rid=5)], conn=other)
    bad_get = host.submit([Get(["x"], rid=6), Get("b", rid=7)], conn=third)
    replies, others, third_replies = bad.get(timeout=10), good.get(timeout=10), bad_get.get(timeout=10)
    assert [type(r) for r in replies[:2]] == [ErrorReply] * 2 and replies[2] == Pong(3)
    assert [r.rid for r in replies] == [1, 2, 3]
    assert all(r.code == ErrorCode.INTERNAL for r in replies[:2])
    assert others == (Ack(4), Value(2, True, 5))
    assert third_replies[0].code == ErrorCode.INTERNAL and third_replies[1] == Value(2, True, 7)
    # The connection's queue moved on: its next batch is answered, in order.
    assert host.request([Set("k", 1), Get("k")], conn=conn) == (Ack(), Value(1, True))
    assert _stats(host)["internal_errors"] == 3
    assert _all_alive(host)


def test_a_set_whose_planning_raises_costs_its_own_reply_only(host: Any) -> None:
    """A plain set whose deadline cannot be computed (a ttl of the wrong type: decoders
    refuse one) is answered ``internal``; the sets before it in its batch, gathered into
    the turn's run, are applied and acknowledged, and nothing of it is stored."""
    host.start_node()
    first, second = host.connect(), host.connect()
    a = host.submit([Set("a", 1, rid=1)], conn=first)
    b = host.submit([Set("b", 2, rid=2), Set("c", 3, ttl="x", rid=3), Set("d", 4, rid=4)], conn=second)  # type: ignore[arg-type]
    assert a.get(timeout=10) == (Ack(1),)
    replies = b.get(timeout=10)
    assert replies[0] == Ack(2) and replies[2] == Ack(4)
    assert type(replies[1]) is ErrorReply and replies[1].code == ErrorCode.INTERNAL and replies[1].rid == 3
    assert host.request([Get("a"), Get("b"), Get("c"), Get("d")]) == (
        Value(1, True), Value(2, True), Value(None, False), Value(4, True)
    )
    assert _all_alive(host)


def test_a_node_actor_handed_a_message_that_raises_keeps_running(host: Any) -> None:
    """Issue 11's simulator test, on both hosts: told messages whose handling raises (a
    malformed peer message, here, as a simulated link delivers it with no codec in
    between) cost a log line and a count; the node, the replicator and the store go on."""
    refs = host.start_node()
    refs.node.tell(FromPeer("n9", "n9", ReplicaRequest(1, None)))  # type: ignore[arg-type]
    refs.replicator.tell(FromPeer("n9", "n9", SyncRequest(1, None)))  # type: ignore[arg-type]
    refs.store.tell(StoreCall(1, None, None))  # type: ignore[arg-type]
    host.run_for(0.05)
    assert _all_alive(host)
    _serves(host)
    stats = _stats(host)
    assert stats["actor_failures"] == 3
    assert stats["internal_errors"] == 0
