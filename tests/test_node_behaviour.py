"""Single-node behaviour, run on every host (asyncio loop and SimPy).

On asyncio, time is real, so waits are short; in the simulator, ``run_for`` advances
virtual time. The assertions are the same: the actors cannot tell the difference.
"""

from __future__ import annotations

from typing import Any

from actors.config import NodeConfig
from actors.protocol.errors import ErrorCode
from actors.protocol.messages import (
    Ack,
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
from actors.protocol.edge import BatchReply, ClientBatch


def test_set_get_delete(host: Any) -> None:
    host.start_node()
    assert host.request([Set("k", {"nested": [1, 2]})]) == (Ack(),)
    assert host.request([Get("k")]) == (Value({"nested": [1, 2]}, True),)
    assert host.request([Delete("k")]) == (Ack(deleted=True),)
    assert host.request([Get("k")]) == (Value(None, False),)
    assert host.request([Delete("k")]) == (Ack(deleted=False),)


def test_overwrite_returns_latest(host: Any) -> None:
    host.start_node()
    host.request([Set("k", 1), Set("k", 2)])
    assert host.request([Get("k")]) == (Value(2, True),)


def test_request_ids_are_echoed(host: Any) -> None:
    host.start_node()
    replies = host.request([Set("k", 1, rid="a"), Get("k", rid=7), Ping(rid=[1])])
    assert [r.rid for r in replies] == ["a", 7, [1]]


def test_ttl_expires_and_zero_or_none_never_does(host: Any) -> None:
    host.start_node()
    host.request([Set("short", "v", ttl=0.15), Set("forever", "v", ttl=None), MSet((("m", 1),), ttl=0.15)])
    assert host.request([Get("short"), Get("m")]) == (Value("v", True), Value(1, True))
    host.run_for(0.3)
    assert host.request([Get("short"), Get("m"), Get("forever")]) == (
        Value(None, False),
        Value(None, False),
        Value("v", True),
    )


def test_janitor_expires_keys_nobody_reads(host: Any) -> None:
    host.start_node(config=NodeConfig(cleanup_interval_s=0.05))
    host.request([MSet(tuple((f"k{i}", i) for i in range(200)), ttl=0.1), Set("keep", 1)])
    host.run_for(0.5)
    (stats,) = host.request([Stats()])
    assert isinstance(stats, StatsReply)
    assert stats.stats["keys"] == 1
    assert stats.stats["expired_active"] == 200
    assert stats.stats["expired_lazy"] == 0
    assert stats.stats["expire_cycles"] >= 1


def test_lazy_expiry_counts_separately(host: Any) -> None:
    host.start_node(config=NodeConfig(cleanup_interval_s=3600))
    host.request([Set("k", 1, ttl=0.05)])
    host.run_for(0.15)
    host.request([Get("k")])
    (stats,) = host.request([Stats()])
    assert stats.stats["expired_lazy"] == 1
    assert stats.stats["expired_active"] == 0


def test_mset_mget_batch(host: Any) -> None:
    host.start_node()
    assert host.request([MSet((("a", 1), ("b", "two")))]) == (Ack(),)
    assert host.request([MGet(("a", "missing", "b", "a"))]) == (
        Values((("a", 1, True), ("missing", None, False), ("b", "two", True), ("a", 1, True))),
    )


def test_batch_replies_in_request_order_with_errors_in_place(host: Any) -> None:
    host.start_node()
    bad = ErrorReply(ErrorCode.BAD_REQUEST, "invalid JSON", None)
    requests = [Set("k", 1), bad, Get("k"), Ping(), Join("node2"), Delete("k"), Get("k")]
    assert host.request(requests) == (
        Ack(),
        bad,
        Value(1, True),
        Pong(),
        Ack(),
        Ack(deleted=True),
        Value(None, False),
    )


def test_pipelined_batches_on_one_connection_stay_in_order(host: Any) -> None:
    host.start_node()
    conn = host.connect()
    futures = [host.submit([Set(f"k{i}", i), Get(f"k{i}")], conn=conn) for i in range(100)]
    futures.append(host.submit([Ping()], conn=conn))  # answered without the store
    for i, fut in enumerate(futures[:-1]):
        assert fut.get(timeout=10) == (Ack(), Value(i, True))
    assert futures[-1].get(timeout=10) == (Pong(),)


class Recorder:
    """A reply target that records batch replies in arrival order (on the host thread)."""

    def __init__(self) -> None:
        self.replies: list[Any] = []

    def tell(self, message: BatchReply) -> None:
        self.replies.append(message.replies)


def test_batch_answered_by_node_alone_waits_for_earlier_store_batch(host: Any) -> None:
    refs = host.start_node()
    conn = host.connect()
    recorder = Recorder()
    refs.node.tell(ClientBatch(conn, (MSet(tuple((f"k{i}", i) for i in range(1000))),), recorder))
    refs.node.tell(ClientBatch(conn, (Ping(),), recorder))
    assert host.request([Get("k999")], conn=conn) == (Value(999, True),)
    assert recorder.replies == [(Ack(),), (Pong(),)]


def test_batches_of_many_connections_in_one_turn_each_get_their_own_replies(host: Any) -> None:
    """Batches told together reach the store as one StoreCalls; every connection still
    gets its own replies, in its own order, whatever the others sent."""
    refs = host.start_node()
    conns = [host.connect() for _ in range(20)]
    recorders = {conn: Recorder() for conn in conns}
    for round_ in range(5):
        for conn in conns:
            key = f"c{conn}"
            batch = (Set(key, round_), Get(key), Ping()) if round_ % 2 == 0 else (Get(key), Delete(key))
            refs.node.tell(ClientBatch(conn, batch, recorders[conn]))
    assert host.request([Get("sync")], conn=conns[0]) == (Value(None, False),)
    for conn in conns:
        assert recorders[conn].replies == [
            (Ack(), Value(0, True), Pong()),
            (Value(0, True), Ack(deleted=True)),
            (Ack(), Value(2, True), Pong()),
            (Value(2, True), Ack(deleted=True)),
            (Ack(), Value(4, True), Pong()),
        ]


def test_stats_report_counts(host: Any) -> None:
    host.start_node()
    conn = host.connect()
    host.request([Set("a", "x" * 100), Get("a"), Get("nope")], conn=conn)
    (reply,) = host.request([Stats()], conn=conn)
    stats = reply.stats
    assert stats["node_id"] == "node1"
    assert stats["keys"] == 1
    assert stats["hits"] == 1 and stats["misses"] == 1
    assert stats["memory_bytes"] > 100
    assert stats["connections"] >= 1 and stats["connections_total"] == 1
    assert stats["uptime_s"] >= 0


def _stored_ahead(host: Any, config: NodeConfig | None, ahead_ms: int | None) -> tuple[Any, Any]:
    """Start a node, store ``s``, ``d``, ``n`` = "old" under a version ``ahead_ms`` ahead of
    its clock (None: year 33658) as a peer streamed them; returns (that version, a probe
    record the node stamped before)."""
    from actors.protocol.messages import Inspect
    from actors.protocol.record import Record
    from actors.protocol.replica_ops import Apply
    from actors.protocol.version import Version
    from actors.store.ops import StoreCall

    class Sink:
        def tell(self, message: Any) -> None:
            self.results = message

    refs = host.start_node(config=config) if config is not None else host.start_node()
    assert host.request([Set("probe", 1)]) == (Ack(),)
    (probe,) = host.request([Inspect("probe")])
    wall_ms = probe.record.version.wall_ms
    ahead = Version(10**15 if ahead_ms is None else wall_ms + ahead_ms, 0, "peer-from-the-future")
    for key in ("s", "d", "n"):
        refs.store.tell(StoreCall(0, ((0, Apply((Record(key, "old", None, ahead),)),),), Sink()))
    return ahead, probe.record


def test_a_write_below_a_newer_stored_version_is_restamped_not_lost(host: Any) -> None:
    """A single node whose key holds a version from a clock ahead of its own, within the max
    clock skew (a record a peer streamed before the cluster shrank to this node), still
    applies, then acks, a set and a delete: its clock moves past the stored version."""
    host_config = NodeConfig(max_clock_skew_s=120.0)
    _stored_ahead(host, host_config, 60_000)
    assert host.request([Get("s")]) == (Value("old", True),)
    assert host.request([Set("s", "new")]) == (Ack(),)
    assert host.request([Get("s")]) == (Value("new", True),)
    assert host.request([Delete("d")]) == (Ack(deleted=True),)
    assert host.request([Get("d")]) == (Value(None, False),)
    assert host.request([Set("n", "7", cond="xx")]) == (Ack(applied=True),)  # a read-modify-write
    assert host.request([Get("n")]) == (Value("7", True),)


def test_a_write_below_a_version_beyond_the_clock_bound_fails_and_the_clock_stays(host: Any) -> None:
    """Issue 13 (a forged year-2100 version moved clocks for good): a key holding a version
    far beyond the max clock skew is not overwritten by restamping above it: the write fails
    ``unavailable`` (nothing applied, nothing acked and lost) and the clock does not move."""
    from actors.protocol.messages import Inspect

    ahead, probe = _stored_ahead(host, None, None)
    for request in (Set("s", "new"), Delete("d"), Set("n", "7", cond="xx")):
        (reply,) = host.request([request])
        assert type(reply) is ErrorReply and reply.code == ErrorCode.UNAVAILABLE, reply
        assert "clock skew" in reply.message
    assert host.request([Get("s"), Get("d"), Get("n")]) == (Value("old", True),) * 3
    assert host.request([Set("other", 2)]) == (Ack(),)
    (other,) = host.request([Inspect("other")])
    assert probe.version.wall_ms <= other.record.version.wall_ms < probe.version.wall_ms + 60_000 < ahead.wall_ms
    stats = host.request([Stats()])[0].stats
    assert stats["cluster"]["versions_refused"] >= 3


def test_runs_of_plain_sets_in_a_batch_keep_request_order_and_ids(host: Any) -> None:
    """A single node writes runs of plain sets as one store write; every set still gets its
    own ack (with its id), a repeated key still ends with its last value, and reads between
    sets see exactly the sets before them."""
    host.start_node()
    batch = [
        Set("a", 1, rid=1),
        Set("b", 2, rid=2),
        Set("a", 3, rid=3),  # repeated key: a new run, a newer version
        Get("a", rid=4),
        Set("c", 4, ttl=100, rid=5),
        Set("d", 5),
        Get("c", rid=6),
        Set("b", 6, cond="xx", rid=7),  # a read-modify-write is not grouped
        Set("e", 7, rid=8),
    ]
    assert host.request(batch) == (
        Ack(1),
        Ack(2),
        Ack(3),
        Value(3, True, 4),
        Ack(5),
        Ack(),
        Value(4, True, 6),
        Ack(7, applied=True),
        Ack(8),
    )
    assert host.request([MGet(("a", "b", "c", "d", "e"))]) == (
        Values((("a", 3, True), ("b", 6, True), ("c", 4, True), ("d", 5, True), ("e", 7, True))),
    )
    stats = host.request([Stats()])[0].stats
    assert stats["sets"] == 7 and stats["keys"] == 5


def test_runs_of_gets_in_a_batch_answer_each_get_with_its_own_id(host: Any) -> None:
    host.start_node()
    assert host.request([Set("x", "1"), Set("y", "2")]) == (Ack(), Ack())
    batch = [Get("x", rid="a"), Get("nope", rid="b"), Get("x", rid="c"), Get("y"), Set("x", "3"), Get("x", rid="d")]
    assert host.request(batch) == (
        Value("1", True, "a"),
        Value(None, False, "b"),
        Value("1", True, "c"),
        Value("2", True),
        Ack(),
        Value("3", True, "d"),
    )
    stats = host.request([Stats()])[0].stats
    assert stats["hits"] == 4 and stats["misses"] == 1
