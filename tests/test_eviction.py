"""``--max-memory`` and the eviction policies: memory stays under the bound while writes
go on, each policy evicts what it should, and ``noeviction`` refuses with a typed error."""

from __future__ import annotations

import json
import random

import pytest

from actors.protocol.errors import ErrorCode
from actors.store.eviction import EVICTION_POLICIES, make_evictor
from actors.store.keyspace import Keyspace, entry_size
from actors.protocol.messages import Ack, Delete, ErrorReply, Get, Set, Stats
from actors.config import NodeConfig
from actors.protocol.version import Version
from runtime.local_cluster import NodeProcess
from tests.wire import Conn

BOUND = 100_000
VALUE = "v" * 32


def room_for(entries: int) -> int:
    """A bound that holds about ``entries`` entries like the ones these tests write."""
    return entries * entry_size("hot-000", VALUE)


def keyspace(policy: str, bound: int = BOUND) -> Keyspace:
    return Keyspace(max_memory=bound, evictor=make_evictor(policy, random.Random(7)))


def write(ks: Keyspace, key: str, wall: float, ttl: float | None = None, value: str = VALUE) -> bool:
    if not ks.make_room(wall):
        return False
    ks.set(key, value, wall + ttl if ttl else None, Version(int(wall * 1000), 0, "n1"))
    return True


@pytest.mark.parametrize("policy", [p for p in EVICTION_POLICIES if p not in ("noeviction", "volatile-ttl")])
def test_allkeys_policies_keep_memory_under_the_bound_while_writes_go_on(policy: str) -> None:
    ks = keyspace(policy)
    largest = 0
    for i in range(5000):
        assert write(ks, f"key-{i}", 1000.0 + i / 100)
        largest = max(largest, ks.used_bytes)
    one_entry = ks.used_bytes // len(ks)
    assert largest <= BOUND + one_entry  # at most one write over, as Redis: evict, then run the command
    assert ks.evicted == 5000 - len(ks) > 4000
    # The sampling index stays exact through evictions and overwrites.
    assert sorted(ks.evictor.keys) == sorted(ks._entries)  # type: ignore[union-attr]
    assert all(ks.evictor.keys[e.pos] == k for k, e in ks._entries.items())  # type: ignore[union-attr,attr-defined]


def test_noeviction_refuses_once_full_and_deletes_still_work() -> None:
    ks = keyspace("noeviction")
    i = 0
    while write(ks, f"key-{i}", 1000.0):
        i += 1
    assert ks.used_bytes >= BOUND and ks.evicted == 0
    assert ks.delete("key-0", 1000.0)
    assert write(ks, "again", 1000.0)  # room for one more after the delete


def test_lru_keeps_what_is_read() -> None:
    ks = keyspace("allkeys-lru", room_for(1200))  # room for about twice the hot set
    for i in range(500):
        write(ks, f"hot-{i}", 1000.0)
    for i in range(5000):
        wall = 1001.0 + i
        for j in range(i % 10, 500, 10):  # every hot key is read every 10 s of clock
            ks.get(f"hot-{j}", wall)
        write(ks, f"cold-{i}", wall)
    hot = sum(f"hot-{i}" in ks._entries for i in range(500))
    cold = len(ks) - hot
    assert hot / 500 > 0.8 and cold / 4500 < 0.2, (hot, cold)


def test_lfu_keeps_what_is_read_often() -> None:
    ks = keyspace("allkeys-lfu", room_for(900))  # room for about twice the hot set
    for i in range(300):
        write(ks, f"hot-{i}", 1000.0)
    for _ in range(50):
        for i in range(300):
            ks.get(f"hot-{i}", 1000.0)
    for i in range(5000):
        write(ks, f"cold-{i}", 1000.0 + i / 100)
    hot = sum(f"hot-{i}" in ks._entries for i in range(300))
    assert hot / 300 > 0.9, hot


def test_volatile_ttl_evicts_the_soonest_to_expire_and_never_a_persistent_key() -> None:
    ks = keyspace("volatile-ttl")
    for i in range(100):
        write(ks, f"forever-{i}", 1000.0)
    ttls = {f"ttl-{i}": 10 + (i % 100) for i in range(3000)}
    for key, ttl in ttls.items():
        if not write(ks, key, 1000.0, ttl=ttl):
            break
    assert all(f"forever-{i}" in ks._entries for i in range(100))
    kept = [ttls[k] for k in ks._entries if k.startswith("ttl-")]
    assert kept and sum(kept) / len(kept) > sum(ttls.values()) / len(ttls)  # the long-lived stay
    # Only persistent keys left to evict: behaves as noeviction.
    full = keyspace("volatile-ttl", 20_000)
    i = 0
    while write(full, f"p-{i}", 1000.0):
        i += 1
    assert full.evicted == 0 and not full.make_room(1000.0)


def test_a_node_under_the_bound_on_both_hosts(host: object) -> None:
    host.start_node(config=NodeConfig(max_memory=60_000, eviction_policy="allkeys-lru"))  # type: ignore[attr-defined]
    for batch in range(20):
        replies = host.request([Set(f"k{batch}-{i}", VALUE) for i in range(50)])  # type: ignore[attr-defined]
        assert all(r == Ack() for r in replies)
    stats = host.request([Stats()])[0].stats  # type: ignore[attr-defined]
    assert stats["memory_bytes"] <= 60_000 + 300 and stats["evicted"] > 500
    assert stats["max_memory"] == 60_000 and stats["eviction_policy"] == "allkeys-lru"
    assert host.request([Get("k19-49")])[0].found  # type: ignore[attr-defined]


def test_noeviction_node_answers_out_of_memory(host: object) -> None:
    host.start_node(config=NodeConfig(max_memory=20_000))  # type: ignore[attr-defined]
    replies = host.request([Set(f"k{i}", VALUE) for i in range(200)])  # type: ignore[attr-defined]
    refused = [r for r in replies if type(r) is ErrorReply]
    assert refused and all(r.code == ErrorCode.OUT_OF_MEMORY for r in refused)
    assert replies[0] == Ack()
    assert host.request([Delete("k0")])[0] == Ack(deleted=True)  # type: ignore[attr-defined]


@pytest.mark.integration
def test_real_node_with_max_memory_flags() -> None:
    node = NodeProcess("node1", "--max-memory", "100K", "--eviction-policy", "allkeys-random")
    full = NodeProcess("node2", "--max-memory", "50K")
    try:
        with Conn(node.port) as conn:
            conn.send_json(*({"type": "set", "key": f"k{i}", "value": VALUE} for i in range(3000)))
            replies = conn.read_jsons(3000)
            assert all(r.get("success") for r in replies)
            stats = conn.request({"type": "stats"})["stats"]
            assert stats["memory_bytes"] <= 100 * 1024 + 300 and stats["evicted"] > 2000
        with Conn(full.port) as conn:
            conn.send_json(*({"type": "set", "key": f"k{i}", "value": VALUE} for i in range(1000)))
            replies = conn.read_jsons(1000)
            errors = [r for r in replies if r["type"] == "error"]
            assert errors and errors[0]["error"] == "out_of_memory", json.dumps(errors[:1])
    finally:
        node.kill()
        full.kill()


@pytest.mark.integration
def test_redis_clients_see_the_bound_and_the_oom_error() -> None:
    redis = pytest.importorskip("redis")
    node = NodeProcess("node1", "--resp-port", "0", "--max-memory", "30K")
    try:
        r = redis.Redis(port=node.resp_port, protocol=2)
        assert r.config_get("maxmemory") == {"maxmemory": str(30 * 1024)}
        assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        with pytest.raises(redis.exceptions.OutOfMemoryError, match="out of memory"):  # "-OOM ..."
            for i in range(1000):
                r.set(f"k{i}", VALUE)
        assert r.info("memory")["maxmemory"] == 30 * 1024
        r.close()
    finally:
        node.kill()


def test_a_full_cluster_refuses_writes_with_out_of_memory_not_a_timeout() -> None:
    from sim.cache_host import CacheSimHost

    h = CacheSimHost(seed=5)
    try:
        cfg = dict(heartbeat_interval_s=0.1, max_memory=20_000)
        h.start_node("n1", NodeConfig(**cfg))  # type: ignore[arg-type]
        for n in ("n2", "n3"):
            h.start_node(n, NodeConfig(contacts=("n1",), **cfg))  # type: ignore[arg-type]
        h.run_for(2.0)
        replies = h.request([Set(f"k{i}", VALUE) for i in range(300)], node_id="n1")
        refused = [r for r in replies if type(r) is ErrorReply]
        assert replies[0] == Ack() and refused
        assert all(r.code == ErrorCode.OUT_OF_MEMORY for r in refused), refused[:2]
        assert "refused by" in refused[0].message
    finally:
        h.shutdown()
