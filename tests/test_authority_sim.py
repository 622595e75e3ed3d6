"""Issue 13's stranger actions, as a peer that *holds* the cluster secret would try them.

A stranger without the secret is refused at the handshake (tests/test_stranger.py,
tests/test_sim_peer_auth.py); these tests check what an authenticated link may still say
(item 4: it speaks only for its own node id, within bounds; item 5: no version or heartbeat
from beyond the max clock skew is merged). On the simulator, forged messages are put
straight into a node's inbox as :class:`~actors.kernel.peer.FromPeer` with the sender id
the link authenticated (``rogue``, or a member's id where the test needs a reply matched).
Each test fails on the code before issue 13 (b740dc6..d19478d) and passes after.
"""

from __future__ import annotations

from typing import Any

from actors.kernel.peer import FromPeer
from actors.protocol.messages import Ack, ErrorReply, Get, RemoveNode, Set, Value
from actors.protocol.peer_messages import Gossip, Member, Push, ReplicaRequest, ReplicaResponse
from actors.protocol.record import Record
from actors.protocol.replica_ops import Apply, Write
from actors.protocol.version import Version
from sim.network import Link, constant
from tests.test_cluster_sim import SimCluster

YEAR_2100_MS = 4_102_444_800_000
HUGE = 2**64 - 1


def _inject(c: SimCluster, node: str, msg: Any, src: str = "rogue") -> None:
    """``msg`` arrives at ``node`` from a link authenticated as ``src``."""
    c.host.nodes[node].node.tell(FromPeer(src, src, msg))


def _members(c: SimCluster, node: str) -> dict[str, Any]:
    return c.stats(node)["cluster"]["members"]


def _partitions(c: SimCluster) -> int:
    return c.stats("n1")["cluster"]["partitions"]


def _version(c: SimCluster, node: str, key: str) -> Version:
    return c.local(node, key).version


def test_identity_takeover_with_incarnation_2_64_is_refused() -> None:
    """``["node2", <stranger's addr>, 2**64-1, "ready"]`` rerouted node2's traffic and node2
    could not refute it. Now: nobody adopts the row (not from the rogue's link, not relayed
    by a member), node2 never refutes past the bound, and writes at ``all`` land on node2."""
    c = SimCluster(3)
    try:
        n2 = _members(c, "n1")["n2"]
        parts = _partitions(c)
        for forged in (Member("n2", "rogue", HUGE, "ready"), Member("n2", "rogue", n2["incarnation"] + 1, "ready")):
            for node in c.ids:
                _inject(c, node, Gossip((forged,), False, parts))
                _inject(c, node, Gossip((forged,), False, parts), src="n3")  # a member relaying it
        c.run(1.0)
        for node in c.ids:
            row = _members(c, node)["n2"]
            assert row["addr"] == "n2" and row["incarnation"] < 2**63, (node, row)
        assert _members(c, "n2")["n2"]["incarnation"] < 2**63  # never refuted to 2**64
        for i in range(100):
            assert c.one(Set(f"k{i}", i, consistency="all"), "n1") == Ack()
        c.run(0.2)
        assert all(c.local("n2", f"k{i}").value == i for i in range(100))
        assert c.stats("n1")["cluster"]["gossip_rows_refused"] >= 1
    finally:
        c.host.shutdown()


def test_a_forged_version_2_64_cannot_freeze_a_coordinator() -> None:
    """One version ``[2**64-1, 2**64-1]`` left a coordinator's HLC unencodable (and its key
    never overwritable). Now: a replica op carrying it is refused (not stored, clock
    unmoved), and a replica's *answer* carrying it counts as that replica's refusal."""
    c = SimCluster(3)
    try:
        forged = Version(HUGE, HUGE, "rogue")
        _inject(c, "n1", ReplicaRequest(7, (Write((("frozen", "x", None),), forged, ("n1",)),)))
        c.run(0.2)
        assert c.local("n1", "frozen") is None
        assert c.one(Set("frozen", "mine"), "n1") == Ack()
        assert _version(c, "n1", "frozen").wall_ms < 2**63
        # a replica that answers a write with a conflict at 2**64-1 (its link is the one asked)
        c.host.network.links[("n2", "n1")] = Link(latency=constant(0.3))
        sent: list[Any] = []
        c.host.network.on_deliver = lambda s, d, m: sent.append(m) if (s, d) == ("n1", "n2") and type(m) is ReplicaRequest else None
        future = c.host.submit([Set("frozen", "again")], node_id="n1")
        c.run(0.05)
        assert sent
        _inject(c, "n1", ReplicaResponse(sent[0].req, (Version(HUGE, HUGE, "n2"),)), src="n2")
        c.run(0.6)
        assert future.get(timeout=5) == (Ack(),)  # n1 and n3 acked; n2's forged answer refused
        assert c.one(Get("frozen", consistency="all"), "n3") == Value("again", True)
        assert _version(c, "n1", "frozen").wall_ms < 2**63
        assert c.stats("n1")["cluster"]["versions_refused"] >= 2
    finally:
        c.host.shutdown()


def test_a_year_2100_version_moves_no_clock() -> None:
    """A forged year-2100 version moved every node's clock forward for good (through the
    replica write, then anti-entropy). Now it is refused wherever it arrives: a replica op,
    a read repair, a push; nothing is stored and later writes are stamped at today's time."""
    c = SimCluster(3)
    try:
        v2100 = Version(YEAR_2100_MS, 0, "rogue")
        record = Record("future", "from 2100", None, v2100)
        _inject(c, "n1", ReplicaRequest(9, (Write((("future", "from 2100", None),), v2100, ("n1",)),)))
        _inject(c, "n2", ReplicaRequest(0, (Apply((record,)),), reply=False))
        c.host.nodes["n3"].replicator.tell(FromPeer("rogue", "rogue", Push(5, (record,), ack=True)))
        c.run(2.0)  # anti-entropy rounds, too
        for node in c.ids:
            assert c.local(node, "future") is None, node
            assert c.one(Set(f"now-{node}", 1), node) == Ack()
            assert _version(c, node, f"now-{node}").wall_ms < YEAR_2100_MS - 10**11
        refused = sum(c.stats(node)["cluster"]["versions_refused"] for node in c.ids)
        assert refused >= 3
        traced = [fields for _, node, event, fields in c.host.trace if event == "version_refused"]
        assert len(traced) >= 3 and all(f["peer"] == "rogue" and f["beyond_ms"] > 10**11 for f in traced)
    finally:
        c.host.shutdown()


def test_invented_members_do_not_make_writes_unavailable() -> None:
    """One gossip frame adding 8 invented members made 429 of 500 quorum writes
    ``unavailable``. Now nobody admits a member on another's word (its own answer would,
    and invented ones never answer)."""
    c = SimCluster(3)
    try:
        parts = _partitions(c)
        wall_ms = _version(c, "n1", "x").wall_ms if c.one(Set("x", 1), "n1") == Ack() else 0
        invented = tuple(Member(f"ghost{i}", f"ghost{i}", wall_ms, "ready") for i in range(8))
        for node in c.ids:
            _inject(c, node, Gossip(invented, False, parts))
        c.run(3.0)  # long enough for never-heard members to be down
        replies = [c.one(Set(f"w{i}", i), c.ids[i % 3]) for i in range(300)]
        assert replies.count(Ack()) == 300, [r for r in replies if r != Ack()][:3]
        assert all(sorted(_members(c, node)) == c.ids for node in c.ids)
    finally:
        c.host.shutdown()


def test_a_removed_member_is_not_readded_with_incarnation_plus_one() -> None:
    """Removing invented (or dead) members was undone by re-adding them with incarnation
    + 1. Now a removed member comes back only by its own link."""
    c = SimCluster(4)
    try:
        c.host.crash("n4")
        c.run(3.0)  # n4 is down everywhere
        assert c.one(RemoveNode("n4"), "n1") == Ack()
        c.run(1.0)
        row = _members(c, "n1")["n4"]
        assert all(_members(c, node)["n4"]["status"] == "left" for node in ("n1", "n2", "n3"))
        readded = Member("n4", "n4", row["incarnation"] + 1, "ready")
        for node in ("n1", "n2", "n3"):
            _inject(c, node, Gossip((readded,), False, _partitions(c)))
            _inject(c, node, Gossip((readded,), False, _partitions(c)), src="n2")
        c.run(1.0)
        for node in ("n1", "n2", "n3"):
            assert _members(c, node)["n4"]["status"] == "left", node
        assert type(c.one(Set("after", 1), "n1")) is not ErrorReply
    finally:
        c.host.shutdown()


def test_a_cluster_still_converges_when_members_are_known_only_through_relays() -> None:
    """A node joining through one contact hears of the others only through that contact's
    table: it gossips to them (introductions) and their own answers admit them, both ways."""
    c = SimCluster(5)
    try:
        for node in c.ids:
            assert sorted(_members(c, node)) == c.ids, node
            assert all(m["status"] == "ready" for m in _members(c, node).values())
    finally:
        c.host.shutdown()


def test_a_split_answer_s_parts_are_acknowledged_only_by_the_link_that_asked() -> None:
    """Reply matching by (link, id) for ``replica_ack`` too: an acknowledgement from another
    authenticated link, even one that names the asker's address, does not move the parts on."""
    from actors.cluster.replica_flow import ResponseParts
    from actors.protocol.peer_messages import ReplicaResponse as Response

    sent: list[tuple[str, Any]] = []
    parts = ResponseParts(lambda addr, msg: sent.append((addr, msg)), timeout=1.0, budget=10)
    big = tuple((Record(f"k{i}", "x" * 20, None, Version(1, 0, "n2")),) for i in range(3))
    parts.answer("n1:1", 6, big, now=0.0, peer="n1")
    assert [(a, m.start) for a, m in sent] == [("n1:1", 0)]
    assert not parts.on_ack("n1:1", 6, 0, now=0.1, peer="rogue")  # same address, other link
    assert len(sent) == 1
    assert parts.on_ack("n1:1", 6, 0, now=0.1, peer="n1")
    assert [(a, type(m) is Response and m.start) for a, m in sent] == [("n1:1", 0), ("n1:1", 1)]
