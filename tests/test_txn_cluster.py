"""Transactions in a cluster, on the simulator (the very actors, deterministic) and on a
real 3-node cluster over RESP: atomic at the partition's coordinator, CROSSSLOT across
partitions, hash tags, WATCH by version through any node."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import subprocess

import pytest
import redis

from actors.protocol.errors import ErrorCode
from actors.protocol.messages import Ack, Delete, ErrorReply, Get, Incr, MGet, MSet, Set, Value
from actors.protocol.txn_messages import Multi, MultiReply, Scan, ScanReply, Watch
from tests.test_cluster_sim import SimCluster


@pytest.fixture(scope="module")
def sim() -> Iterator[SimCluster]:
    cluster = SimCluster(3)
    try:
        yield cluster
    finally:
        cluster.host.shutdown()


def test_a_transaction_runs_at_its_partition_and_is_seen_whole(sim: SimCluster) -> None:
    host = sim.host
    (reply,) = host.request([Multi((Set("{u}:a", 1), Incr("{u}:n"), Get("{u}:a"), Delete("{u}:gone")))], node_id="n2")
    assert reply == MultiReply((Ack(), Value(1, True), Value(1, True), Ack(deleted=False)))
    assert host.request([MGet(("{u}:a", "{u}:n"), consistency="quorum")], node_id="n3")[0].items == (
        ("{u}:a", 1, True), ("{u}:n", 1, True),
    )


def test_keys_of_several_partitions_are_crossslot_and_nothing_is_applied(sim: SimCluster) -> None:
    (reply,) = sim.host.request([Multi((Set("x1", 1), Set("x2", 2), Set("x3", 3)))], node_id="n1")
    assert type(reply) is ErrorReply and reply.code is ErrorCode.CROSSSLOT
    assert sim.host.request([Get("x1", consistency="all")], node_id="n2") == (Value(None, False),)


def test_concurrent_transactions_through_every_node_never_interleave(sim: SimCluster) -> None:
    """Each transaction reads {c}:a and {c}:b, and increments both: interleaved, some
    increment would be lost or the two would differ; atomic, both end at the count."""
    host = sim.host
    futures = []
    for i in range(60):
        node = sim.ids[i % 3]
        futures.append(host.submit([Multi((Get("{c}:a"), Incr("{c}:a"), Incr("{c}:b")))], node_id=node, conn=100 + i))
    replies = [f.get() for f in futures]
    host.run_for(1.0)
    ok = [r[0] for r in replies if type(r[0]) is MultiReply]
    assert len(ok) == 60, [r for r in replies if type(r[0]) is not MultiReply][:3]
    seen = sorted(r.replies[1].value for r in ok)
    assert seen == list(range(1, 61))  # every increment saw all the ones before it
    assert all(r.replies[1].value == r.replies[2].value for r in ok)
    assert host.request([MGet(("{c}:a", "{c}:b"), consistency="all")], node_id="n1")[0].items == (
        ("{c}:a", 60, True), ("{c}:b", 60, True),
    )


def test_watch_check_and_set_through_different_nodes(sim: SimCluster) -> None:
    """Optimistic increments: WATCH, read, MULTI SET value+1, EXEC, retried on nil; from
    three nodes at once. The final value is the number of transactions that succeeded."""
    host = sim.host
    host.request([Set("{w}:k", 0, consistency="all")], node_id="n1")
    succeeded = 0
    for rounds in range(15):
        conns = [(sim.ids[i], 200 + i) for i in range(3)]
        values = []
        for node, conn in conns:
            host.request([Watch(("{w}:k",))], node_id=node, conn=conn)
            values.append(host.request([Get("{w}:k", consistency="quorum")], node_id=node, conn=conn)[0].value)
        futures = [
            host.submit([Multi((Set("{w}:k", value + 1),))], node_id=node, conn=conn)
            for (node, conn), value in zip(conns, values)
        ]
        results = [f.get()[0] for f in futures]
        assert all(type(r) is MultiReply for r in results), results
        won = [r for r in results if r.replies is not None]
        assert len(won) <= 1 or len(set(values)) > 1, (rounds, results)
        succeeded += len(won)
        host.run_for(0.05)
    assert succeeded >= 15
    assert host.request([Get("{w}:k", consistency="all")], node_id="n2") == (Value(succeeded, True),)


def test_scan_through_any_node_returns_every_key_present_throughout(sim: SimCluster) -> None:
    host = sim.host
    host.request([MSet(tuple((f"s{i}", i) for i in range(300)))], node_id="n2")
    seen: set[str] = set()
    cursor, step = 0, 0
    while True:
        (reply,) = host.request([Scan(cursor, "s*", 10)], node_id=sim.ids[step % 3])
        assert type(reply) is ScanReply, reply
        seen.update(reply.keys)
        host.request([Delete(f"s{250 + step % 50}"), Set(f"s-new{step}", 1)], node_id="n3")
        cursor, step = reply.cursor, step + 1
        if cursor == 0:
            break
    assert {f"s{i}" for i in range(250)} <= seen
    assert step == 256  # one partition per step
    (count,) = host.request([Scan(0, None, 1 << 62, count_only=True)], node_id="n1")
    (keys,) = host.request([Scan(0, None, 1 << 62)], node_id="n2")
    assert count.total == len(keys.keys) == len(set(keys.keys))


def test_a_pipelined_watch_is_read_before_its_transaction_is_sealed(sim: SimCluster) -> None:
    host = sim.host
    host.request([Set("{p}:k", "v0", consistency="all")], node_id="n2")
    replies = host.request([Watch(("{p}:k", "{p}:absent")), Get("{p}:k"), Multi((Set("{p}:k", "v1"),))], node_id="n1", conn=300)
    assert replies == (Ack(), Value("v0", True), MultiReply((Ack(),)))
    host.request([Watch(("{p}:absent",))], node_id="n1", conn=301)
    host.request([Set("{p}:absent", "now here")], node_id="n3")  # an absent key that appears is a change
    assert host.request([Multi((Get("{p}:k"),))], node_id="n1", conn=301) == (MultiReply(None),)


# --- a real 3-node cluster over RESP -----------------------------------------------------------------


@pytest.mark.integration
def test_real_cluster_multi_exec_watch_and_crossslot() -> None:
    from tests.cluster import Cluster, eventually

    # 32 partitions: a full scan is 32 steps (each asks every owner), not 256.
    with Cluster(flags=("--resp-port", "0", "--partitions", "32")) as cluster:
        cluster.start(3)
        clients = {i: redis.Redis(port=cluster.proc(i).resp_port, socket_timeout=10) for i in (1, 2, 3)}
        try:
            r1, r2, r3 = clients[1], clients[2], clients[3]
            assert r1.pipeline().set("{user1}:a", 1).incr("{user1}:n").get("{user1}:a").execute() == [True, 1, b"1"]
            with pytest.raises(redis.ResponseError, match="Keys in request don't hash to the same slot"):
                r1.pipeline().set("plain-a", 1).set("plain-b", 2).set("plain-c", 3).execute()
            assert r3.exists("plain-a", "plain-b", "plain-c") == 0
            with r2.pipeline() as pipe:  # WATCH through node2, a write through node3 in between
                pipe.watch("{user1}:a")
                pipe.multi()
                pipe.set("{user1}:a", "mine")
                r3.set("{user1}:a", "theirs")
                with pytest.raises(redis.WatchError):
                    pipe.execute()
            with r2.pipeline() as pipe:  # and without one, it goes through
                pipe.watch("{user1}:a")
                value = pipe.get("{user1}:a")
                pipe.multi()
                pipe.set("{user1}:a", value + b"+")
                assert pipe.execute() == [True]
            assert r1.get("{user1}:a") in (b"theirs+", b"theirs")  # (read at one: may lag a moment)
            r1.mset({f"f{i}": i for i in range(30)})
            assert r2.flushdb() is True  # a marker per partition, at quorum
            r3.set("after-flush", 1)
            assert r3.mget(*[f"f{i}" for i in range(0, 30, 7)]) == [None] * 5
            eventually(lambda: _all_equal([c.dbsize() for c in clients.values()], 1), 10, "every node flushed")
            r2.mset({f"{{s}}:{i}": i for i in range(40)})
            scanned = subprocess.run(
                ["redis-cli", "-p", str(cluster.proc(3).resp_port), "--scan", "--pattern", "{s}:*"],
                capture_output=True, text=True, timeout=60, check=True,
            ).stdout.split()
            assert sorted(scanned) == sorted(f"{{s}}:{i}" for i in range(40))
            assert r1.dbsize() == 41 and len(r3.keys("*")) == 41
        finally:
            for client in clients.values():
                client.close()


def _all_equal(got: list[int], want: int) -> bool:
    assert all(g == want for g in got), got
    return True
