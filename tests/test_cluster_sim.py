"""The cluster's behaviour, proven on the simulator: the very actors the runtime runs,
on a deterministic SimPy network where crashes, partitions and joins are exact.

Subprocess tests (``test_cluster_integration.py``) check the same stories over real
sockets; these check them fast, deterministically, and with faults a real machine
cannot inject on demand.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from actors.kernel import ScheduledFuture
from actors.protocol.messages import (
    Ack,
    Delete,
    ErrorReply,
    Get,
    Inspect,
    Locate,
    MGet,
    MSet,
    Set,
    Stats,
    Value,
    Values,
)
from actors.protocol.internal import Leave, LeaveDone
from actors.config import NodeConfig
from sim.cache_host import CacheSimHost
from sim.network import Link, uniform

FAST = dict(heartbeat_interval_s=0.1, down_after_s=1.0, anti_entropy_interval_s=0.3)


def config(contacts: tuple[str, ...] = (), **overrides: object) -> NodeConfig:
    return NodeConfig(contacts=contacts, **{**FAST, **overrides})  # type: ignore[arg-type]


class SimCluster:
    def __init__(self, n: int, seed: int = 1, **overrides: object) -> None:
        self.host = CacheSimHost(seed=seed)
        self.overrides = overrides
        self.ids = [f"n{i}" for i in range(1, n + 1)]
        self.host.start_node(self.ids[0], config(**overrides))
        for node_id in self.ids[1:]:
            self.start(node_id)
        self.host.run_for(2.0)

    def start(self, node_id: str) -> None:
        self.host.start_node(node_id, config((self.ids[0],) if node_id != self.ids[0] else ("n2",), **self.overrides))

    def one(self, request: object, node: str = "n1") -> object:
        return self.host.request([request], node_id=node)[0]  # type: ignore[list-item]

    def stats(self, node: str) -> dict:
        return self.one(Stats(), node).stats  # type: ignore[attr-defined]

    def owners(self, key: str) -> tuple[str, ...]:
        return self.one(Locate(key)).owners  # type: ignore[attr-defined]

    def local(self, node: str, key: str):
        return self.one(Inspect(key), node).record  # type: ignore[attr-defined]

    def run(self, seconds: float) -> None:
        self.host.run_for(seconds)


@pytest.fixture
def cluster5() -> Iterator[SimCluster]:
    c = SimCluster(5)
    yield c
    c.host.shutdown()


def test_readme_scenario_three_nodes() -> None:
    c = SimCluster(3)
    try:
        for node in c.ids:
            members = c.stats(node)["cluster"]["members"]
            assert sorted(members) == c.ids
            assert all(m["status"] == "ready" for m in members.values())
        assert c.one(Set("k", "hello"), "n1") == Ack()
        assert c.one(Get("k"), "n2") == Value("hello", True)
        assert c.one(Get("k"), "n3") == Value("hello", True)
        assert c.one(Delete("k"), "n3") == Ack(deleted=True)
        for node in c.ids:
            assert c.one(Get("k"), node) == Value(None, False)
            assert c.one(Get("k", consistency="all"), node) == Value(None, False)
    finally:
        c.host.shutdown()


def test_every_key_lives_on_exactly_its_owners(cluster5: SimCluster) -> None:
    c = cluster5
    keys = [f"key-{i}" for i in range(200)]
    for i, key in enumerate(keys):
        assert c.one(Set(key, i), c.ids[i % 5]) == Ack()
    c.run(0.5)
    owned = {node: 0 for node in c.ids}
    for i, key in enumerate(keys):
        owners = c.owners(key)
        assert len(owners) == 3
        assert all(c.one(Locate(key), node).owners == owners for node in c.ids)  # type: ignore[attr-defined]
        for node in c.ids:
            record = c.local(node, key)
            assert (record is not None) == (node in owners), (key, node, owners)
            if record is not None:
                assert c.one(Inspect(key), node).replicas == tuple(sorted(owners))  # type: ignore[attr-defined]
            if record is not None:
                assert record.value == i
                owned[node] += 1
        for node in c.ids:
            assert c.one(Get(key), node) == Value(i, True)
    assert all(count > 0 for count in owned.values())
    assert sum(c.stats(node)["keys"] for node in c.ids) == 3 * len(keys)


def test_crash_during_quorum_writes_then_restart_converges(cluster5: SimCluster) -> None:
    c = cluster5
    futures = []
    for i in range(1500):
        key = f"k{i % 200}"
        futures.append((key, i, c.host.submit([Set(key, i)], node_id=c.ids[i % 4])))
        c.run(0.002)
        if i == 300:
            c.host.crash("n5")
        if i == 1300:
            c.start("n5")
    c.run(1.5)
    latest: dict[str, int] = {}
    failures = []
    for key, i, future in futures:
        reply = future.get(timeout=5)[0]
        if type(reply) is Ack:
            latest[key] = max(latest.get(key, -1), i)
        else:
            failures.append(reply)
    # A quorum of 3 owners survives one crash: no write fails.
    assert failures == []
    deadline = c.host.now() + 10
    missing = None
    while c.host.now() < deadline:
        missing = [
            (key, owner)
            for key, value in latest.items()
            for owner in c.owners(key)
            if (r := c.local(owner, key)) is None or r.value != value
        ]
        if not missing:
            break
        c.run(0.5)
    assert missing == []
    assert c.stats("n5")["cluster"]["ready"]


def test_hints_reach_an_owner_that_was_cut_off() -> None:
    c = SimCluster(3, anti_entropy_interval_s=1000.0)
    try:
        c.host.network.partition(["n3"], ["n1", "n2"])
        c.run(2.0)  # n3 is down in the others' eyes
        assert c.stats("n1")["cluster"]["members"]["n3"]["state"] == "down"
        for i in range(20):
            assert c.one(Set(f"h{i}", i), "n1") == Ack()
        c.run(0.2)  # the replicator reports its counters on its next tick
        assert c.stats("n1")["cluster"]["hints_pending"] == 20
        assert c.local("n3", "h0") is None
        c.host.network.heal()
        c.run(2.0)
        assert c.stats("n1")["cluster"]["hints_delivered"] == 20
        assert all(c.local("n3", f"h{i}").value == i for i in range(20))
    finally:
        c.host.shutdown()


def test_read_repair_fixes_a_stale_replica() -> None:
    c = SimCluster(3, anti_entropy_interval_s=1000.0)
    try:
        c.host.network.cut_one_way("n1", "n3")  # n3 still looks alive to n1, but misses its writes
        assert c.one(Set("r", "new"), "n1") == Ack()
        c.run(2.0)
        assert c.local("n3", "r") is None
        assert c.one(Get("r", consistency="all"), "n2") == Value("new", True)
        c.run(0.1)
        assert c.local("n3", "r").value == "new"
        assert c.stats("n2")["cluster"]["read_repairs"] == 1
    finally:
        c.host.shutdown()


def test_unavailable_is_definite_and_timeout_is_not() -> None:
    c = SimCluster(3)
    try:
        c.host.crash("n2")
        c.host.crash("n3")
        # Not yet detected: the write is sent, the acks never come: indefinite timeout.
        reply = c.one(Set("x", 1, consistency="quorum"), "n1")
        assert type(reply) is ErrorReply and reply.code == "timeout"
        c.run(2.0)
        reply = c.one(Set("y", 1, consistency="quorum"), "n1")
        assert type(reply) is ErrorReply and reply.code == "unavailable"
        assert c.local("n1", "y") is None  # definite: nothing applied, not even locally
        assert c.one(Set("z", 1, consistency="one"), "n1") == Ack()
        assert c.one(Get("z"), "n1") == Value(1, True)
        reply = c.one(Get("z", consistency="all"), "n1")
        assert type(reply) is ErrorReply and reply.code == "unavailable"
    finally:
        c.host.shutdown()


def test_delete_is_not_resurrected_after_partition_heals() -> None:
    c = SimCluster(3)
    try:
        for i in range(30):
            assert c.one(Set(f"d{i}", i), "n1") == Ack()
        c.run(0.2)
        assert c.local("n3", "d0").value == 0
        c.host.network.partition(["n3"], ["n1", "n2"])
        c.run(2.0)
        for i in range(30):
            assert c.one(Delete(f"d{i}"), "n1") == Ack(deleted=True)
        c.host.network.heal()
        c.run(5.0)  # anti-entropy and hints meet the stale replica
        for i in range(30):
            for node in c.ids:
                record = c.local(node, f"d{i}")
                assert record is not None and record.is_tombstone, (node, i, record)
            assert c.one(Get(f"d{i}", consistency="all"), "n3") == Value(None, False)
    finally:
        c.host.shutdown()


def test_ttl_deadline_is_the_same_on_every_replica() -> None:
    c = SimCluster(3)
    try:
        assert c.one(Set("t", "v", ttl=5), "n2") == Ack()
        c.run(0.1)
        deadlines = {c.local(node, "t").deadline for node in c.ids}
        assert len(deadlines) == 1
        c.run(5.0)
        for node in c.ids:
            assert c.one(Get("t"), node) == Value(None, False)
    finally:
        c.host.shutdown()


def test_join_takes_a_share_and_leave_hands_it_off(cluster5: SimCluster) -> None:
    c = cluster5
    entries = {f"j{i}": i for i in range(300)}
    assert c.one(MSet(tuple(entries.items())), "n1") == Ack()
    c.ids.append("n6")
    c.start("n6")
    c.run(3.0)
    stats = c.stats("n6")["cluster"]
    assert stats["ready"]
    assert 60 < stats["partitions_owned"] < 200  # 3 * 256 / 6 = 128 on average
    for key, value in entries.items():
        owners = c.owners(key)
        for node in c.ids:
            record = c.local(node, key)
            assert (record is not None and record.value == value) == (node in owners), (key, node, owners)
    # Graceful leave of n2 while writes continue.
    future = ScheduledFuture(c.host.scheduler)

    class Reply:
        def tell(self, message: object) -> None:
            future.set(message)

    c.host.nodes["n2"].node.tell(Leave(Reply()))
    for i in range(100):
        reply = c.one(Set(f"j{i}", 1000 + i), "n1")
        assert reply == Ack(), reply
        entries[f"j{i}"] = 1000 + i
        c.run(0.01)
    result = future.get(timeout=15)
    assert type(result) is LeaveDone and result.complete
    c.run(2.0)
    c.host.crash("n2")
    c.ids.remove("n2")
    c.run(1.0)
    for key, value in entries.items():
        owners = c.owners(key)
        assert "n2" not in owners
        for owner in owners:
            record = c.local(owner, key)
            assert record is not None and record.value == value, (key, owner)
    values = c.one(MGet(tuple(entries)), "n3").items  # type: ignore[attr-defined]
    assert all(found and entries[key] == value for key, value, found in values)


def test_same_seed_same_trace_different_seed_different_trace() -> None:
    def run(seed: int) -> list:
        c = SimCluster(3, seed=seed)
        c.host.network.default = Link(uniform(0.0002, 0.002))
        try:
            for i in range(50):
                c.host.submit([Set(f"s{i}", i)], node_id=c.ids[i % 3])
                c.run(0.01)
            c.host.crash("n3")
            c.run(2.0)
            return [repr(e) for e in c.host.trace]
        finally:
            c.host.shutdown()

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_remove_node_moves_a_dead_members_partitions() -> None:
    from actors.protocol.messages import RemoveNode

    c = SimCluster(4)
    try:
        for i in range(100):
            assert c.one(Set(f"r{i}", i), "n1") == Ack()
        reply = c.one(RemoveNode("n4"), "n1")
        assert type(reply) is ErrorReply and "not down" in reply.message  # alive: refused
        c.host.crash("n4")
        c.run(2.0)
        assert c.one(RemoveNode("n4"), "n1") == Ack()
        c.run(2.0)
        for node in ("n1", "n2", "n3"):
            members = c.stats(node)["cluster"]["members"]
            assert members["n4"]["status"] == "left"
        for i in range(100):
            owners = c.owners(f"r{i}")
            assert "n4" not in owners and len(owners) == 3
            for owner in owners:
                assert c.local(owner, f"r{i}").value == i
    finally:
        c.host.shutdown()


def test_routes_of_lost_replica_requests_are_forgotten() -> None:
    """A replica request lost on the way leaves no route behind once its batch closed."""
    c = SimCluster(3, anti_entropy_interval_s=1000.0)
    try:
        c.host.network.cut_one_way("n1", "n3")  # n3 never gets n1's requests
        for i in range(20):
            assert c.one(Set(f"lost{i}", i), "n1") == Ack()  # acked by n1 and n2
        assert c.stats("n1")["cluster"]["replica_requests_in_flight"] > 0  # those to n3
        c.run(config().request_timeout_s + 0.5)  # the batches time out on n3 (hinting it), then a heartbeat
        assert c.stats("n1")["cluster"]["replica_requests_in_flight"] == 0
    finally:
        c.host.shutdown()


def test_an_mget_or_mset_of_no_keys_is_answered_at_once() -> None:
    """Nothing to ask any replica: answered when planned (they once waited forever, and
    with them every later batch of their connection)."""
    c = SimCluster(3)
    try:
        replies = c.host.request([MGet((), rid=1), MSet((), rid=2), Get("k", rid=3)], node_id="n1", timeout=1.0)
        assert replies == (Values((), rid=1), Ack(rid=2), Value(None, False, rid=3))
    finally:
        c.host.shutdown()
