"""Cluster integration tests (issue 3): real ``python -m runtime.node`` subprocesses on
127.0.0.1 joining each other, replicating, failing, rejoining and leaving.

Everything goes through the external protocol (docs/protocol.md plus the cluster
additions: ``consistency``, ``locate``, ``inspect``, ``stats.cluster``). Every process is
reaped by the ``make_cluster`` fixture even when a test fails, every wait is a poll with
a deadline, and every test has a pytest-timeout bound. Nodes use short failure detection
(``--heartbeat-interval 0.1 --down-after 1``, :data:`tests.cluster.DEFAULT_FLAGS`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import Cluster, Ledger, WriteLoad, dump, eventually, is_miss
from tests.wire import Conn

pytestmark = pytest.mark.integration

GO_SET = b'{"type":"set","key":"test","value":"hello","ttl":300}\n'
GO_ACK = b'{"type":"ack","success":true}\n'
GO_GET = b'{"type":"get","key":"test"}\n'
GO_VALUE = b'{"type":"response","value":"hello","success":true}\n'
GO_DELETE = b'{"type":"delete","key":"test"}\n'
ACK = {"type": "ack", "success": True}
PARTITIONS = 256


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """``make_cluster(n, *flags)``: ``n`` nodes joined and converged; all reaped afterwards."""
    clusters: list[Cluster] = []

    def make(n: int, *flags: str, wait: bool = True) -> Cluster:
        cluster = Cluster(flags, log_dir=tmp_path / f"cluster{len(clusters)}")
        clusters.append(cluster)
        cluster.start(n, wait=wait)
        return cluster

    try:
        yield make
    finally:
        for cluster in clusters:
            cluster.close()


def set_many(cluster: Cluster, items: dict[str, Any], via: list[str], ledger: Ledger | None = None, **extra: Any) -> None:
    """Pipelined sets spread round-robin over ``via``; each must be acknowledged."""
    batches: dict[str, list[tuple[str, Any]]] = {v: [] for v in via}
    for i, (key, value) in enumerate(items.items()):
        batches[via[i % len(via)]].append((key, value))
    for node, batch in batches.items():
        replies = cluster.requests(node, [{"type": "set", "key": k, "value": v, **extra} for k, v in batch], timeout=10)
        for (key, value), reply in zip(batch, replies):
            assert reply == ACK, f"set {key} via {node}: {reply}"
            if ledger is not None:
                ledger.ack(key, value)


def owners_by_node(owners: dict[str, list[str]]) -> dict[str, list[str]]:
    """node -> the keys it owns."""
    out: dict[str, list[str]] = {}
    for key, nodes in owners.items():
        for n in nodes:
            out.setdefault(n, []).append(key)
    return out


def check_on_owners(cluster: Cluster, ledger: Ledger, keys: list[str], via: str) -> None:
    """Every key is present with an allowed value on every owner ``locate`` names (inspect)."""
    owners = cluster.locate_many(keys, via=via)
    for node, owned in owners_by_node(owners).items():
        records = cluster.inspect_many(node, owned)
        for key in owned:
            rec = records[key]
            assert rec["found"] is True, f"{key} missing on owner {node} (owners {owners[key]}): {rec}"
            ledger.check_value(key, True, rec.get("value"), where=node)


# --- 0. the harness itself (runs against today's single-node build too) ----------------


@pytest.mark.timeout(30)
def test_harness_starts_freezes_restarts_and_reaps_nodes(tmp_path: Path) -> None:
    """No cluster features needed: start, join arguments, freeze/thaw, kill, restart on
    the same port, graceful stop, and close() reaps every process ever started."""
    cluster = Cluster(base_flags=(), log_dir=tmp_path)
    try:
        cluster.start(3, wait=False)
        assert cluster.ids == ["node1", "node2", "node3"]
        assert cluster.proc(1).start_line.endswith(f"listening on 127.0.0.1:{cluster.port(1)}")
        assert cluster.proc(2).start_line.endswith(f" peers={cluster.addr(1)}")
        assert cluster.proc(3).start_line.endswith(f" peers={cluster.addr(1)},{cluster.addr(2)}")
        for n in (1, 2, 3):
            assert cluster.request(n, {"type": "ping"}) == {"type": "pong", "success": True}

        cluster.freeze(2)
        assert cluster.running() == ["node1", "node3"]
        with Conn(cluster.port(2), timeout=0.3) as c:  # the kernel still accepts; nobody answers
            c.send_json({"type": "ping"})
            with pytest.raises(TimeoutError):
                c.read_json()
        cluster.thaw(2)
        assert cluster.request(2, {"type": "ping"}) == {"type": "pong", "success": True}

        old = cluster.proc(3)
        old_port = old.port
        cluster.kill(3)
        assert old.proc.returncode == -9
        cluster.restart(3, wait=False)
        assert cluster.proc(3) is not old and cluster.proc(3).running
        assert cluster.port(3) == old_port  # a restart asks for its old port
        assert cluster.request(3, {"type": "ping"}) == {"type": "pong", "success": True}

        assert cluster.stop(1) == 0
        assert cluster.status["node1"] == "stopped"
        assert "listening on" in (tmp_path / "node1.log").read_text()
        cluster.freeze(3)  # close() must reap a frozen node too
    finally:
        cluster.close()
    assert len(cluster.all_procs) == 4
    for proc in cluster.all_procs:
        assert proc.proc.poll() is not None, f"{proc.node_id} pid {proc.pid} still running"


# --- 1. the seed's README scenario, on three nodes -------------------------------------


@pytest.mark.timeout(45)
def test_readme_three_node_scenario(make_cluster) -> None:
    def _assert(cond: bool, what: Any = "") -> None:
        assert cond, what

    # node1; node2 -> node1; node3 -> node1 node2 (Cluster.start joins each through all before it)
    cluster = make_cluster(3)
    assert cluster.peer_ids == {"node1": [], "node2": ["node1"], "node3": ["node1", "node2"]}
    for n in cluster.ids:
        cl = cluster.stats(n)["cluster"]
        assert sorted(cl["members"]) == ["node1", "node2", "node3"]
        assert cl["replicas"] == 3 and cl["partitions"] == PARTITIONS
        assert cl["partitions_owned"] == PARTITIONS  # 3 members, 3 replicas: everyone owns everything

    with cluster.client(1) as c:
        c.send(GO_SET)
        assert c.read_line() == GO_ACK
    for n in (2, 3):
        assert cluster.get(n, "test", consistency="quorum") == {"type": "response", "value": "hello", "success": True}

        def read_one(n: int = n) -> None:  # consistency one may hit the replica a quorum ack left behind
            with cluster.client(n) as c:
                c.send(GO_GET)
                assert c.read_line() == GO_VALUE

        eventually(read_one, 3.0, f"node{n} to return the value at consistency one")

    with cluster.client(3) as c:
        c.send(GO_DELETE)
        assert c.read_json() == {"type": "ack", "success": True, "deleted": True}
    for n in cluster.ids:
        assert is_miss(cluster.get(n, "test", consistency="all")), cluster.get(n, "test", consistency="all")
        assert is_miss(cluster.get(n, "test", consistency="quorum"))
        eventually(lambda n=n: _assert(is_miss(cluster.get(n, "test")), n), 3.0, f"{n} to miss at consistency one")
    # Every replica (all three own everything) ends up holding the tombstone, none the value.
    for n in cluster.ids:
        def tombstoned(n: str = n) -> None:
            rec = cluster.inspect(n, "test")
            assert rec["found"] is False and rec["tombstone"] is True, (n, rec)

        eventually(tombstoned, 3.0, f"{n} to replace the value with a tombstone")
        stats = cluster.stats(n)
        assert stats["keys"] == 0 and stats["tombstones"] == 1, (n, stats)


# --- 2. placement and replication on five nodes ----------------------------------------


@pytest.mark.timeout(60)
def test_five_nodes_place_every_key_on_its_three_owners(make_cluster) -> None:
    cluster = make_cluster(5, "--replicas", "3")
    keys = [f"key-{i}" for i in range(200)]
    items = {k: {"i": i, "s": f"v{i}"} for i, k in enumerate(keys)}
    set_many(cluster, items, via=cluster.ids)

    # locate: three distinct members, identical from every node
    located = {n: cluster.locate_many(keys, via=n) for n in cluster.ids}
    owners = located["node1"]
    for n in cluster.ids:
        assert located[n] == owners, f"{n} disagrees with node1 on owners"
    for key, nodes in owners.items():
        assert len(nodes) == 3 and len(set(nodes)) == 3 and set(nodes) <= set(cluster.ids), (key, nodes)
    partitions = {
        r["key"]: r["partition"]
        for r in cluster.requests(2, [{"type": "locate", "key": k} for k in keys])
    }
    assert all(0 <= p < PARTITIONS for p in partitions.values())
    assert len(set(partitions.values())) > 100  # 200 keys spread over 256 partitions
    assert len({n for nodes in owners.values() for n in nodes}) == 5

    # inspect: present on exactly its three owners, same value and version everywhere
    def replicated() -> None:
        records = {n: cluster.inspect_many(n, keys) for n in cluster.ids}
        for key in keys:
            versions = []
            for n in cluster.ids:
                rec = records[n][key]
                if n in owners[key]:
                    assert rec["found"] is True and rec["tombstone"] is False, f"{key} missing on owner {n}: {rec}"
                    assert rec["value"] == items[key], (key, n, rec)
                    versions.append(rec["version"])
                else:
                    assert rec["found"] is False and not rec.get("tombstone"), f"{key} on non-owner {n}: {rec}"
            assert all(v == versions[0] for v in versions), (key, versions)

    eventually(replicated, 5.0, "every key on exactly its 3 owners")

    # stats agree: each partition owned 3 times, each key held 3 times
    def counted() -> None:
        all_stats = {n: cluster.stats(n) for n in cluster.ids}
        assert sum(s["cluster"]["partitions_owned"] for s in all_stats.values()) == 3 * PARTITIONS
        assert sum(s["keys"] for s in all_stats.values()) == 3 * len(keys), {n: s["keys"] for n, s in all_stats.items()}

    eventually(counted, 3.0, "stats to count 3 copies")

    # get from every node returns the value (quorum: no polling needed)
    for n in cluster.ids:
        replies = cluster.requests(n, [{"type": "get", "key": k, "consistency": "quorum"} for k in keys])
        for key, reply in zip(keys, replies):
            assert reply == {"type": "response", "value": items[key], "success": True}, (n, key, reply)
        replies = cluster.requests(n, [{"type": "get", "key": k} for k in keys])  # one, replicated by now
        for key, reply in zip(keys, replies):
            assert reply == {"type": "response", "value": items[key], "success": True}, (n, key, reply)
    mget = cluster.request(4, {"type": "mget", "keys": keys[:20] + ["absent"], "consistency": "quorum"})
    assert mget["success"] is True
    assert mget["values"] == [{"key": k, "value": items[k], "found": True} for k in keys[:20]] + [
        {"key": "absent", "value": None, "found": False}
    ]


# --- 3. a node crashes under quorum write load and comes back ---------------------------


@pytest.mark.timeout(90)
def test_quorum_writes_survive_a_crash_and_the_node_catches_up(make_cluster, record_property) -> None:
    cluster = make_cluster(5)
    victim = "node5"
    incarnation_before = cluster.members("node1")[victim]["incarnation"]
    # Threads 0 and 1 also read back at quorum; threads 2 and 3 only write, so a read
    # waiting on the dead replica cannot hide whether writes stay available.
    load = WriteLoad(cluster, via=["node1", "node2", "node3", "node4"], keys_per_thread=25, read_every=5, readers=2)
    load.start()
    try:
        time.sleep(1.0)  # load before the crash (the load runs a fixed 3.5 s in all)
        before_kill = load.outcomes["ack"]
        killed_at = time.monotonic()
        cluster.kill(victim)
        time.sleep(2.5)  # load while node5 is down
    finally:
        load.stop()
    settled = killed_at + 1.5  # --down-after 1, plus heartbeat and slack

    total = sum(load.outcomes.values())
    summary = f"writes {dict(load.outcomes)}, reads {dict(load.read_outcomes)}"
    assert not load.bad, f"wrong answers: {dump(load.bad[:10])}"
    assert set(load.outcomes) <= {"ack", "unavailable", "timeout"}, summary
    assert before_kill > 50, f"too little load before the crash: {summary}"
    assert load.outcomes["ack"] >= 0.9 * total, f"too many failed writes: {summary}"
    # Once the crash is detected, writes and quorum reads succeed again.
    acks = load.count("ack", since=settled)
    failed = sum(load.count(o, since=settled) for o in ("unavailable", "timeout"))
    assert acks > 50 and failed <= 0.05 * (acks + failed), (acks, failed, summary)
    reads = load.count("read:ok", since=settled)
    failed = sum(load.count(o, since=settled) for o in ("read:unavailable", "read:timeout"))
    assert reads > 10 and failed <= 0.05 * (reads + failed), (reads, failed, summary)
    record_property("writes", dict(load.outcomes))
    record_property("reads", dict(load.read_outcomes))
    print(summary, f"slowest write {load.max_latency():.3f}s, slowest read {load.max_latency('read:'):.3f}s")

    restarted_at = time.monotonic()
    cluster.restart(victim, wait=False)
    keys = load.ledger.acked_keys()
    assert len(keys) == 100, len(keys)

    def caught_up() -> None:
        check_on_owners(cluster, load.ledger, keys, via="node1")
        cluster.check_converged()

    eventually(caught_up, 10.0, "every acknowledged write on all its owners after the restart", interval=0.1)
    converge_s = time.monotonic() - restarted_at
    record_property("converge_after_restart_s", round(converge_s, 2))
    print(f"all owners converged {converge_s:.2f}s after the restart")

    members = cluster.members("node1")
    assert members[victim]["incarnation"] > incarnation_before, (incarnation_before, members[victim])
    assert cluster.members(victim)[victim]["incarnation"] == members[victim]["incarnation"]
    owned = [k for k, nodes in cluster.locate_many(keys).items() if victim in nodes]
    assert owned, "node5 owns none of the keys"
    for key, rec in cluster.inspect_many(victim, owned).items():
        load.ledger.check_value(key, rec["found"], rec.get("value"), where=victim)


# --- 4. a sixth node joins a loaded cluster; then a node leaves gracefully --------------


@pytest.mark.timeout(90)
def test_join_takes_a_share_and_graceful_leave_loses_nothing(make_cluster) -> None:
    cluster = make_cluster(5, "--leave-timeout", "5")
    ledger = Ledger()
    keys = [f"pre-{i}" for i in range(300)]
    set_many(cluster, {k: i for i, k in enumerate(keys)}, via=cluster.ids, ledger=ledger)

    cluster.add("node6", peers=["node1"], wait=False)
    cluster.wait_converged(timeout=15)

    def took_share() -> int:
        owned = cluster.stats("node6")["cluster"]["partitions_owned"]
        assert owned > 0, "node6 owns no partition"
        all_owned = [cluster.stats(n)["cluster"]["partitions_owned"] for n in cluster.running()]
        assert sum(all_owned) == 3 * PARTITIONS, all_owned
        owners = cluster.locate_many(keys, via="node6")
        assert owners == cluster.locate_many(keys, via="node1"), "node6 and node1 disagree on owners"
        mine = [k for k, nodes in owners.items() if "node6" in nodes]
        assert mine, "node6 owns none of 300 keys"
        for key, rec in cluster.inspect_many("node6", mine).items():
            assert rec["found"] is True, f"{key} not streamed to node6: {rec}"
            ledger.check_value(key, True, rec["value"], where="node6")
        return owned

    owned = eventually(took_share, 15.0, "node6 to take and fill its share", interval=0.1)
    assert 3 * PARTITIONS / 6 * 0.6 <= owned <= 3 * PARTITIONS / 6 * 1.4, owned  # ~128 of 256
    assert cluster.stats("node6")["keys"] > 0

    # node2 leaves while clients keep writing through node1 and node3.
    load = WriteLoad(cluster, via=["node1", "node3"], keys_per_thread=20, prefix="leave", ledger=ledger)
    load.start()
    try:
        time.sleep(0.5)
        leaving = cluster.stop_async("node2")
        rc = leaving.proc.wait(timeout=15)
        time.sleep(0.3)
    finally:
        load.stop()
    assert rc == 0, f"graceful leave exited {rc}"
    assert not load.bad, dump(load.bad[:10])
    assert set(load.outcomes) <= {"ack", "unavailable", "timeout"}, load.outcomes
    assert load.outcomes["ack"] >= 0.9 * sum(load.outcomes.values()), load.outcomes

    cluster.wait_member_state("node2", ["left"], timeout=10)
    all_keys = ledger.acked_keys()
    assert len(all_keys) == 300 + 40

    def nothing_lost() -> None:
        owners = cluster.locate_many(all_keys, via="node1")
        assert all("node2" not in nodes and len(nodes) == 3 for nodes in owners.values())
        check_on_owners(cluster, ledger, all_keys, via="node1")
        assert sum(cluster.stats(n)["cluster"]["partitions_owned"] for n in cluster.running()) == 3 * PARTITIONS

    eventually(nothing_lost, 10.0, "every acknowledged write on its new owners after node2 left", interval=0.1)
    for n in ("node1", "node6"):
        replies = cluster.requests(n, [{"type": "get", "key": k, "consistency": "quorum"} for k in all_keys])
        for key, reply in zip(all_keys, replies):
            assert reply["type"] == "response", (n, key, reply)
            ledger.check_value(key, reply["success"], reply["value"], where=f"get via {n}")


# --- 5. deletes made while a replica was cut off are not resurrected --------------------


@pytest.mark.timeout(60)
def test_deletes_survive_a_frozen_replica_coming_back(make_cluster) -> None:
    cluster = make_cluster(4, "--anti-entropy-interval", "0.3")
    victim = "node3"
    candidates = [f"del-{i}" for i in range(120)]
    owners = cluster.locate_many(candidates, via="node1")
    doomed = [k for k in candidates if victim in owners[k]][:30]
    kept = [k for k in candidates if victim in owners[k]][30:40]
    assert len(doomed) == 30 and kept
    items = {k: f"value-{k}" for k in doomed + kept}
    set_many(cluster, items, via=["node1", "node2", "node4"], consistency="all")
    for node, owned in owners_by_node({k: owners[k] for k in items}).items():
        assert all(r["found"] for r in cluster.inspect_many(node, owned).values()), node

    cluster.freeze(victim)  # cut off: holds its copies, answers nothing
    cluster.wait_member_state(victim, ["down"], timeout=8)
    replies = cluster.requests("node1", [{"type": "delete", "key": k, "consistency": "quorum"} for k in doomed])
    for key, reply in zip(doomed, replies):
        assert reply.get("type") == "ack" and reply.get("success") is True, (key, reply)
    assert all(is_miss(r) for r in cluster.requests("node2", [{"type": "get", "key": k, "consistency": "quorum"} for k in doomed]))
    for node, owned in owners_by_node({k: owners[k] for k in doomed}).items():
        if node != victim:
            assert not any(r["found"] for r in cluster.inspect_many(node, owned).values()), node

    rounds_before = {n: cluster.stats(n)["cluster"]["anti_entropy_rounds"] for n in cluster.running()}
    cluster.thaw(victim)
    rounds_before[victim] = cluster.stats(victim)["cluster"]["anti_entropy_rounds"]
    cluster.wait_converged(timeout=10)

    def victim_has_tombstones() -> None:
        for key, rec in cluster.inspect_many(victim, doomed).items():
            assert rec["found"] is False, f"{key} still live on {victim}: {rec}"

    eventually(victim_has_tombstones, 8.0, "the thawed replica to learn the deletes", interval=0.1)

    # A few more anti-entropy rounds everywhere, then nothing has come back anywhere.
    def more_rounds() -> None:
        for n in cluster.ids:
            assert cluster.stats(n)["cluster"]["anti_entropy_rounds"] >= rounds_before[n] + 3, n

    eventually(more_rounds, 8.0, "three more anti-entropy rounds", interval=0.1)
    for n in cluster.ids:
        for key, rec in cluster.inspect_many(n, doomed).items():
            assert rec["found"] is False, f"{key} resurrected on {n}: {rec}"
            if n in owners[key] and "value" in rec:
                assert rec["tombstone"] is True, (n, key, rec)
        replies = cluster.requests(n, [{"type": "get", "key": k, "consistency": "all"} for k in doomed])
        assert all(is_miss(r) for r in replies), (n, [r for r in replies if not is_miss(r)][:3])
        replies = cluster.requests(n, [{"type": "get", "key": k, "consistency": "all"} for k in kept])
        assert [r.get("value") for r in replies] == [items[k] for k in kept], n


# --- 6. TTL deadlines are the coordinator's, on every replica ---------------------------


@pytest.mark.timeout(45)
def test_ttl_deadline_is_the_same_on_every_replica(make_cluster) -> None:
    cluster = make_cluster(4)
    ttl = 3.0  # long enough to inspect every owner before it expires
    keys = {"ttl-a": "node1", "ttl-b": "node2", "ttl-c": "node4"}
    owners = cluster.locate_many(list(keys) + ["ttl-forever"])
    # Let at least one write be coordinated by a node that is not an owner.
    non_owner = next((n for n in cluster.ids if n not in owners["ttl-c"]), None)
    if non_owner is not None:
        keys["ttl-c"] = non_owner
    window: dict[str, tuple[float, float]] = {}
    for key, via in keys.items():
        sent = time.time()
        assert cluster.set(via, key, key.upper(), ttl=ttl) == ACK
        window[key] = (sent + ttl, time.time() + ttl)
    assert cluster.set("node3", "ttl-forever", 1) == ACK
    mset_at = time.time()
    assert cluster.request("node3", {"type": "mset", "entries": {"ttl-m1": 1, "ttl-m2": 2}, "ttl": ttl}) == ACK
    window["ttl-m1"] = window["ttl-m2"] = (mset_at + ttl, time.time() + ttl)
    owners.update(cluster.locate_many(["ttl-m1", "ttl-m2"]))

    def same_deadline() -> dict[str, float]:
        deadlines = {}
        for key, (lo, hi) in window.items():
            seen = {}
            for n in cluster.ids:
                rec = cluster.inspect(n, key)
                if n in owners[key]:
                    assert rec["found"] is True, (key, n, rec)
                    seen[n] = rec["deadline"]
                else:
                    assert rec["found"] is False, (key, n, rec)
            assert len(set(seen.values())) == 1, f"{key}: deadlines differ across owners {seen}"
            deadline = next(iter(seen.values()))
            assert lo - 0.05 <= deadline <= hi + 0.05, (key, deadline, lo, hi)
            deadlines[key] = deadline
        for n in owners["ttl-forever"]:
            rec = cluster.inspect(n, "ttl-forever")
            assert rec["found"] is True and rec["deadline"] is None, (n, rec)
        return deadlines

    deadlines = eventually(same_deadline, 2.0, "every owner to hold the same deadline")
    wait = max(deadlines.values()) + 0.1 - time.time()
    if wait > 0:
        time.sleep(wait)  # until just past the known deadlines (< ttl)
    for key in window:
        for n in owners[key]:
            rec = cluster.inspect(n, key)
            assert rec["found"] is False, f"{key} still live on {n} after its deadline: {rec}"
        for n in cluster.ids:
            assert is_miss(cluster.get(n, key)), (n, key)
            assert is_miss(cluster.get(n, key, consistency="all")), (n, key)
    assert cluster.get("node1", "ttl-forever", consistency="all")["value"] == 1


# --- 7. not enough replicas: definite errors, never a false ack -------------------------


@pytest.mark.timeout(45)
def test_consistency_levels_refuse_when_replicas_are_gone(make_cluster) -> None:
    cluster = make_cluster(3, "--replicas", "3")
    keys = [f"c-{i}" for i in range(10)]
    set_many(cluster, {k: f"old-{k}" for k in keys}, via=["node1"], consistency="all")

    cluster.kill("node2")
    cluster.kill("node3")
    # Before the failure detector has spoken, the coordinator may only time out.
    reply = cluster.set("node1", keys[0], "during", consistency="all")
    assert reply.get("type") == "error" and reply.get("success") is False, reply
    assert reply.get("error") in ("unavailable", "timeout"), reply

    cluster.wait_member_state("node2", ["down"], observers=["node1"], timeout=8)
    cluster.wait_member_state("node3", ["down"], observers=["node1"], timeout=8)

    def unavailable(reply: dict[str, Any]) -> bool:
        return reply.get("type") == "error" and reply.get("success") is False and reply.get("error") == "unavailable"

    for level in ("all", "quorum", None):
        reply = cluster.set("node1", keys[1], f"new-{level}", consistency=level)
        assert unavailable(reply), (level, reply)
    assert unavailable(cluster.delete("node1", keys[2], consistency="quorum"))
    assert unavailable(cluster.request("node1", {"type": "mset", "entries": {keys[3]: "x"}, "consistency": "all"}))
    assert unavailable(cluster.get("node1", keys[4], consistency="quorum"))
    assert unavailable(cluster.request("node1", {"type": "mget", "keys": [keys[4]], "consistency": "all"}))

    # Definite means nothing was applied: the survivor still holds the old values.
    for key in keys[1:4]:
        assert cluster.get("node1", key, consistency="one") == {"type": "response", "value": f"old-{key}", "success": True}
        assert cluster.inspect("node1", key)["value"] == f"old-{key}"
    assert cluster.get("node1", keys[4]) == {"type": "response", "value": f"old-{keys[4]}", "success": True}
    # One reachable owner is enough at consistency one.
    assert cluster.set("node1", keys[5], "solo", consistency="one") == ACK
    assert cluster.get("node1", keys[5], consistency="one")["value"] == "solo"
    members = cluster.members("node1")
    assert members["node2"]["state"] == "down" and members["node3"]["state"] == "down", members
