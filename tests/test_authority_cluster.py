"""Issue 13's stranger actions against a real secured cluster, by a *rogue* that holds the
cluster secret (tests/rogue_peer.py): it passes the handshake, so what stops it is
authority (item 4: a link speaks for its own node id only, within bounds) and the clock
bound (item 5). A stranger without the secret never gets this far (tests/test_stranger.py).

Each test fails on the code before issue 13 (b740dc6..d19478d, where any hello got in) and
passes after. Real ``python -m runtime.node`` processes on 127.0.0.1, through their ports.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from actors.protocol.peer_messages import Gossip, Member, ReplicaRequest
from actors.protocol.replica_ops import Write
from actors.protocol.version import Version
from runtime.local_cluster import LocalCluster
from tests.cluster import eventually
from tests.rogue_peer import RoguePeer
from tests.wire import Conn

pytestmark = pytest.mark.integration

SECRET = b"a cluster secret the rogue holds"
FAST = ["--heartbeat-interval", "0.1", "--down-after", "1"]
HUGE = 2**64 - 1
YEAR_2100_MS = 4_102_444_800_000


def _request(port: int, request: dict[str, Any]) -> dict[str, Any]:
    with Conn(port) as conn:
        return conn.request(request)


def _cluster_stats(port: int) -> dict[str, Any]:
    return _request(port, {"type": "stats"})["stats"]["cluster"]


def _rogue(cluster: LocalCluster, node: str, as_id: str = "rogue") -> RoguePeer:
    return RoguePeer.open(cluster.procs[node].port, as_id, "127.0.0.1:1", secret=SECRET, partitions=_partitions(cluster))


def _partitions(cluster: LocalCluster) -> int:
    return int(_cluster_stats(cluster.procs["node1"].port)["partitions"])


def _ports(cluster: LocalCluster) -> list[int]:
    return [cluster.procs[n].port for n in cluster.ids]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(3, cluster_secret=SECRET, node_args=FAST) as c:
        yield c


def test_identity_takeover_is_refused(cluster: LocalCluster) -> None:
    """``["node2", <rogue's addr>, 2**64-1, "ready"]`` from the rogue's link, and within the
    incarnation bound from the rogue and from a link claiming node3: node2's address
    stays, and 100 writes at ``all`` are stored on node2."""
    parts = _partitions(cluster)
    node2 = _cluster_stats(cluster.procs["node1"].port)["members"]["node2"]
    for node in cluster.ids:
        with _rogue(cluster, node) as rogue:
            rogue.send({"type": "gossip", "members": [["node2", "127.0.0.1:1", HUGE, "ready"]], "reply": False, "partitions": parts})
        for as_id in ("rogue", "node3"):
            with _rogue(cluster, node, as_id) as rogue:
                rogue.send(Gossip((Member("node2", "127.0.0.1:1", node2["incarnation"] + 1, "ready"),), False, parts))
    time.sleep(0.5)
    for port in _ports(cluster):
        row = _cluster_stats(port)["members"]["node2"]
        assert row["addr"] == node2["addr"] and row["incarnation"] < 2**63, row
    port1, port2 = _ports(cluster)[:2]
    with Conn(port1) as conn:
        for i in range(100):
            assert conn.request({"type": "set", "key": f"t{i}", "value": i, "consistency": "all"})["success"]
    with Conn(port2) as conn:
        assert all(conn.request({"type": "inspect", "key": f"t{i}"})["value"] == i for i in range(100))


def test_forged_versions_freeze_no_coordinator_and_move_no_clock(cluster: LocalCluster) -> None:
    """``[2**64-1, 2**64-1]`` is refused at decode; a year-2100 version is refused (not stored,
    no clock moved) on every node; writes go on with today's versions."""
    ports = _ports(cluster)
    for node in cluster.ids:
        with _rogue(cluster, node) as rogue:
            rogue.send(
                {"type": "replica_request", "req": 1, "ops": [["w", "frozen", "x", None, HUGE, HUGE, 0]], "writers": [["rogue", []]]}
            )
        with _rogue(cluster, node) as rogue:
            rogue.send(ReplicaRequest(2, (Write((("future", "from 2100", None),), Version(YEAR_2100_MS, 0, "rogue")),)))
    time.sleep(1.5)  # anti-entropy rounds too
    now_ms = int(time.time() * 1000)
    for port in ports:
        assert _request(port, {"type": "inspect", "key": "frozen"})["found"] is False
        assert _request(port, {"type": "inspect", "key": "future"})["found"] is False
        assert _request(port, {"type": "set", "key": f"after-{port}", "value": 1})["success"]
        version = _request(port, {"type": "inspect", "key": f"after-{port}"})["version"]
        assert version[0] < now_ms + 60_000, version
    assert sum(_cluster_stats(port)["versions_refused"] for port in ports) >= 3


def test_invented_members_do_not_make_writes_unavailable(cluster: LocalCluster) -> None:
    parts = _partitions(cluster)
    now_ms = int(time.time() * 1000)
    invented = tuple(Member(f"ghost{i}", f"127.0.0.1:{i + 2}", now_ms, "ready") for i in range(8))
    for node in cluster.ids:
        with _rogue(cluster, node) as rogue:
            rogue.send(Gossip(invented, False, parts))
    time.sleep(2.0)  # past --down-after: invented members would be down by now
    with Conn(_ports(cluster)[0]) as conn:
        replies = [conn.request({"type": "set", "key": f"w{i}", "value": i, "consistency": "quorum"}) for i in range(200)]
    assert all(r["success"] for r in replies), [r for r in replies if not r["success"]][:3]
    for port in _ports(cluster):
        assert sorted(_cluster_stats(port)["members"]) == cluster.ids


def test_a_removed_member_is_not_readded_with_incarnation_plus_one() -> None:
    with LocalCluster(4, cluster_secret=SECRET, node_args=FAST) as c:
        ports = {n: c.procs[n].port for n in c.ids}
        c.procs["node4"].kill()
        eventually(lambda: _is(ports["node1"], "node4", "state", "down"), 10, "node4 down")
        assert _request(ports["node1"], {"type": "remove_node", "node_id": "node4"})["success"]
        for node in ("node1", "node2", "node3"):
            eventually(lambda node=node: _is(ports[node], "node4", "status", "left"), 5, "node4 left everywhere")
        row = _cluster_stats(ports["node1"])["members"]["node4"]
        readded = Member("node4", row["addr"], row["incarnation"] + 1, "ready")
        for node in ("node1", "node2", "node3"):
            for as_id in ("rogue", "node2"):
                with _rogue(c, node, as_id) as rogue:
                    rogue.send(Gossip((readded,), False, _partitions(c)))
        time.sleep(0.5)
        for node in ("node1", "node2", "node3"):
            assert _cluster_stats(ports[node])["members"]["node4"]["status"] == "left", node


def _is(port: int, member: str, field: str, value: str) -> None:
    assert _cluster_stats(port)["members"][member][field] == value


def test_made_up_node_ids_do_not_fence_a_node(cluster: LocalCluster) -> None:
    """The rogue opens three links to node1 as ``voice0..2`` (no members: their gossip
    names nobody) and stamps their heartbeats 10 s behind for 2 s. Before, every link heard
    was a voice, three of five said node1's clock was 10 s ahead and node1 refused every
    write (20 of 20 ``unavailable``); only members and contacts judge a clock now."""
    parts = _partitions(cluster)
    port = cluster.procs["node1"].port
    with ExitStack() as stack:
        rogues = [stack.enter_context(_rogue(cluster, "node1", f"voice{i}")) for i in range(3)]
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            stamp = int(time.time() * 1000) - 10_000
            for rogue in rogues:
                rogue.send(Gossip((), False, parts, stamp))
            time.sleep(0.1)
        with Conn(port) as conn:
            replies = [conn.request({"type": "set", "key": f"v{i}", "value": i}) for i in range(20)]
    assert all(r["success"] for r in replies), [r for r in replies if not r["success"]][:2]
    stats = _cluster_stats(port)
    assert stats["clock_refused"] == 0 and abs(stats["clock_offset_ms"]) <= 500, stats["clock_offset_ms"]
    assert not any(m.startswith("voice") for m in stats["members"])


def test_max_clock_skew_sets_the_bound(cluster: LocalCluster) -> None:
    """A version 200 ms ahead is within the default 0.5 s and stored; 5 s ahead is refused;
    a node started with ``--max-clock-skew 10`` takes the 5 s one."""
    now_ms = int(time.time() * 1000)
    write = lambda key, ahead_ms: ReplicaRequest(3, (Write(((key, "v", None),), Version(now_ms + ahead_ms, 0, "rogue")),))  # noqa: E731
    with _rogue(cluster, "node1") as rogue:
        rogue.send(write("near", 200), write("far", 5_000))
    port = cluster.procs["node1"].port
    eventually(lambda: _is_found(port, "near", True), 5, "the near version stored")
    assert _request(port, {"type": "inspect", "key": "far"})["found"] is False
    with LocalCluster(1, cluster_secret=SECRET, node_args=[*FAST, "--max-clock-skew", "10"]) as lenient:
        with _rogue(lenient, "node1") as rogue:
            rogue.send(write("far", 5_000))
        eventually(lambda: _is_found(lenient.procs["node1"].port, "far", True), 5, "taken within a 10 s bound")


def _is_found(port: int, key: str, found: bool) -> None:
    assert _request(port, {"type": "inspect", "key": key})["found"] is found
