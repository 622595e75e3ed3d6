"""A reply reflects every request before it on its connection, on every host.

Found while testing issue 12: on a 3-node cluster an ``inspect`` pipelined behind a
``set`` of the same key showed the copy from before the set (200 of 200 tries), while a
``get`` in the same position saw the new value; a ``get`` pipelined behind an ``incr``
saw the value from before the incr (the read-modify-write runs as a quorum read, then a
write, and the get overtook it). Checked on the simulator (exact, fast), on the asyncio
host for a single node, and on a real 3-node cluster of subprocesses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actors.protocol.errors import ErrorCode
from actors.protocol.messages import Ack, ErrorReply, Get, Incr, Inspect, Locate, Set, Stats, Value
from sim.network import Link, constant
from tests.cluster import Cluster
from tests.test_cluster_sim import SimCluster

TRIES = 30


def test_single_node_inspect_and_get_behind_a_set_see_it(host: Any) -> None:
    host.start_node()
    conn = host.connect()
    for i in range(TRIES):
        replies = host.request([Set("k", f"v{i}"), Inspect("k"), Get("k"), Incr("n"), Get("n")], conn=conn)
        assert replies[1].record.value == f"v{i}"
        assert replies[2] == Value(f"v{i}", True)
        assert replies[4] == Value(i + 1, True)


def test_cluster_inspect_behind_a_set_on_one_connection_sees_the_set() -> None:
    c = SimCluster(3)
    try:
        for node in c.ids:  # every node owns every key (3 replicas): its copy has the set
            conn = c.host.connect(node)
            for i in range(TRIES):
                value = f"{node}-{i}"
                replies = c.host.request([Set("k", value), Inspect("k"), Get("k")], node_id=node, conn=conn)
                assert replies[0] == Ack()
                assert replies[1].record is not None and replies[1].record.value == value, (node, i, replies[1])
                assert replies[2] == Value(value, True)
            # in separate batches on the connection too
            futures = [c.host.submit([Set("j", i)], node_id=node, conn=conn) for i in range(5)]
            futures.append(c.host.submit([Inspect("j")], node_id=node, conn=conn))
            assert futures[-1].get(timeout=5)[0].record.value == 4
    finally:
        c.host.shutdown()


def test_cluster_requests_behind_a_read_modify_write_see_it() -> None:
    c = SimCluster(3)
    try:
        for i, node in enumerate(("n1", "n2", "n3")):  # the key's coordinator, and nodes forwarding to it
            key = f"c{i}"
            conn = c.host.connect(node)
            assert c.host.request([Set(key, "1")], node_id=node, conn=conn) == (Ack(),)
            replies = c.host.request(
                [Incr(key), Get(key), Inspect(key), Incr(key), Incr(f"other{i}"), Set(key, "10"), Incr(key), Get(key)],
                node_id=node,
                conn=conn,
            )
            assert replies[0] == Value(2, True)
            assert replies[1] == Value("2", True) or replies[1] == Value(2, True)
            assert replies[3] == Value(3, True)
            assert replies[4] == Value(1, True)
            assert replies[6] == Value(11, True)
            assert replies[7].value in ("11", 11)
    finally:
        c.host.shutdown()


def test_requests_held_behind_a_lost_read_modify_write_are_answered_after_its_timeout() -> None:
    """Two faults at once: the key's coordinator is cut off while a forwarded ``incr`` is in
    flight, then crashes. The ``incr`` answers ``timeout`` and releases its key; what waited
    behind it on the connection is answered, in order, and later batches are not stuck."""
    c = SimCluster(3, request_timeout_s=0.5)
    try:
        key = next(k for k in (f"k{i}" for i in range(100)) if c.one(Locate(k)).owners[0] == "n2")
        assert c.one(Set(key, "5")) == Ack()
        for other in ("n1", "n3"):
            c.host.network.cut_one_way(other, "n2")
            c.host.network.cut_one_way("n2", other)
        conn = c.host.connect("n1")
        held = c.host.submit([Incr(key), Get(key), Set(key, "9"), Get(key)], node_id="n1", conn=conn)
        c.run(0.2)
        c.host.crash("n2")
        later = c.host.submit([Get(key)], node_id="n1", conn=conn)
        c.run(5.0)
        replies = held.get(timeout=10)
        assert isinstance(replies[0], ErrorReply) and replies[0].code is ErrorCode.TIMEOUT, replies[0]
        assert replies[1:] == (Value("5", True), Ack(), Value("9", True))
        assert later.get(timeout=10) == (Value("9", True),)
    finally:
        c.host.shutdown()


def test_in_flight_read_modify_writes_are_not_counted_as_connections() -> None:
    """A read-modify-write's read and write phases are not connections: ``connections``
    counts only the clients a host announced."""
    c = SimCluster(3)
    try:
        key = next(k for k in (f"k{i}" for i in range(100)) if c.one(Locate(k)).owners[0] == "n1")
        for peer in ("n2", "n3"):  # n1 coordinates; its quorum read waits for a slow peer
            c.host.network.links[(peer, "n1")] = Link(latency=constant(0.5))
        client, probe = c.host.connect("n1"), c.host.connect("n1")
        futures = [c.host.submit([Incr(f"{key}")], node_id="n1", conn=client) for _ in range(3)]
        c.run(0.1)
        assert not any(f.done() for f in futures)
        (stats,) = c.host.request([Stats()], node_id="n1", conn=probe)
        assert stats.stats["connections"] == 2
        assert [f.get(timeout=10)[0] for f in futures] == [Value(1, True), Value(2, True), Value(3, True)]
    finally:
        c.host.shutdown()


def test_real_cluster_inspect_and_get_behind_a_set_and_an_incr(tmp_path: Path) -> None:
    with Cluster(log_dir=tmp_path) as cluster:
        cluster.start(3)
        for node in (1, 2, 3):
            for i in range(TRIES):
                value = f"node{node}-{i}"
                replies = cluster.requests(
                    node,
                    [
                        {"type": "set", "key": "k", "value": value},
                        {"type": "inspect", "key": "k"},
                        {"type": "get", "key": "k"},
                        {"type": "incr", "key": f"n{node}"},
                        {"type": "get", "key": f"n{node}"},
                    ],
                )
                assert replies[1].get("value") == value, (node, i, replies[1])
                assert replies[2]["value"] == value
                assert replies[3]["value"] == i + 1
                assert replies[4]["value"] in (str(i + 1), i + 1), (node, i, replies)
