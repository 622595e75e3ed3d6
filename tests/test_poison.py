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


def test_a_batch_whose_planning_raises_gets_exactly_one_reply(host: Any) -> None:
    host.start_node()
    conn = host.connect()
    # A run of sets is planned as one write; an unhashable key makes planning itself raise.
    replies = host.request([Set(["k"], 1, rid=1), Set(["k"], 2, rid=2), Ping(rid=3)], conn=conn)
    assert [type(r) for r in replies] == [ErrorReply] * 3
    assert [r.rid for r in replies] == [1, 2, 3]
    assert all(r.code == ErrorCode.INTERNAL for r in replies)
    # The connection's queue moved on: its next batch is answered, in order.
    assert host.request([Set("k", 1), Get("k")], conn=conn) == (Ack(), Value(1, True))
    assert _stats(host)["internal_errors"] == 3
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
