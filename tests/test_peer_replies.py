"""Peer replies are matched by (peer, request id), never by a guessable id alone.

Request ids (``req``, ``fid``, ``sid``) are small per-node counters: any node that can
talk to us could guess one. On the simulator (exact timing), each test makes the real
answer slow, forges an answer with the right id from a *third* node, and checks that
the forgery is ignored and counted while the real answer still completes the request.
"""

from __future__ import annotations

from typing import Any

from actors.protocol.messages import Ack, Get, Incr, Set, Value
from actors.protocol.peer_messages import Forward, ForwardReply, Push, PushAck, ReplicaRequest, ReplicaResponse, SyncListing, SyncRequest
from actors.protocol.record import Record
from actors.protocol.version import Version
from sim.network import Link, constant
from tests.test_cluster_sim import SimCluster

SLOW = 0.3  # seconds the real answer takes on its way back


def _capture(c: SimCluster, src: str, dst: str, kind: type) -> list[Any]:
    """Every message of ``kind`` delivered from ``src`` to ``dst`` from now on."""
    seen: list[Any] = []

    def hook(s: str, d: str, msg: Any) -> None:
        if s == src and d == dst and type(msg) is kind:
            seen.append(msg)

    c.host.network.on_deliver = hook
    return seen


def _wrong_peer(c: SimCluster, node: str) -> int:
    return c.stats(node)["cluster"]["replies_from_wrong_peer"]


def test_a_forged_replica_response_cannot_complete_a_write() -> None:
    c = SimCluster(3)
    try:
        c.host.network.links[("n2", "n1")] = Link(latency=constant(SLOW))
        sent = _capture(c, "n1", "n2", ReplicaRequest)
        future = c.host.submit([Set("k", "real", consistency="all")], node_id="n1")
        c.run(0.05)  # n1's and n3's acks are in; n2's is on its slow way back
        assert not future.done() and len(sent) == 1
        c.host.network.send("n3", "n1", ReplicaResponse(sent[0].req, (1,)))  # n3 forges n2's ack
        c.run(0.05)
        assert not future.done()
        assert _wrong_peer(c, "n1") == 1
        c.run(SLOW)
        assert future.get(timeout=5) == (Ack(),)
    finally:
        c.host.shutdown()


def test_a_forged_replica_response_cannot_answer_a_read() -> None:
    c = SimCluster(3)
    try:
        assert c.one(Set("k", "real"), "n1") == Ack()
        c.run(0.5)
        c.host.network.links[("n2", "n1")] = Link(latency=constant(SLOW))
        sent = _capture(c, "n1", "n2", ReplicaRequest)
        future = c.host.submit([Get("k", consistency="all")], node_id="n1")
        c.run(0.05)
        assert not future.done() and len(sent) == 1
        forged = Record("k", "forged", None, Version(2**50, 0, "n3"))
        c.host.network.send("n3", "n1", ReplicaResponse(sent[0].req, ((forged,),)))
        c.run(0.05)
        assert not future.done()
        c.run(SLOW)
        assert future.get(timeout=5) == (Value("real", True),)
        c.run(0.2)
        assert all(c.local(node, "k").value == "real" for node in c.ids)  # no read repair of the forgery
        assert _wrong_peer(c, "n1") == 1
    finally:
        c.host.shutdown()


def test_a_forged_forward_reply_cannot_answer_a_read_modify_write() -> None:
    c = SimCluster(3)
    try:
        key = "counter"
        coordinator = c.owners(key)[0]
        sender, third = [n for n in c.ids if n != coordinator]
        c.host.network.links[(coordinator, sender)] = Link(latency=constant(SLOW))
        sent = _capture(c, sender, coordinator, Forward)
        future = c.host.submit([Incr(key, 1)], node_id=sender)
        c.run(0.1)
        assert not future.done() and len(sent) == 1
        forged = {"type": "response", "value": 666, "success": True}
        c.host.network.send(third, sender, ForwardReply(sent[0].fid, forged))
        c.run(0.05)
        assert not future.done()
        assert _wrong_peer(c, sender) == 1
        c.run(SLOW + 0.1)
        assert future.get(timeout=5) == (Value(1, True),)
    finally:
        c.host.shutdown()


def test_a_forged_push_ack_cannot_clear_hints() -> None:
    c = SimCluster(3, anti_entropy_interval_s=1000.0)
    try:
        c.host.network.partition(["n3"], ["n1", "n2"])
        c.run(2.0)  # n3 is down in the others' eyes: writes leave hints for it
        for i in range(5):
            assert c.one(Set(f"h{i}", i), "n1") == Ack()
        c.run(0.2)
        assert c.stats("n1")["cluster"]["hints_pending"] == 5
        c.host.network.links[("n3", "n1")] = Link(latency=constant(SLOW))
        pushes = _capture(c, "n1", "n3", Push)
        c.host.network.heal()
        for _ in range(40):  # until n1 sees n3 alive again and pushes its hints
            c.run(0.05)
            if pushes:
                break
        assert pushes and pushes[0].ack
        c.host.network.send("n2", "n1", PushAck(pushes[0].sid, len(pushes[0].records)))  # n2 forges n3's ack
        c.run(0.15)  # the replicator reports its counters on its next tick
        cluster = c.stats("n1")["cluster"]
        assert cluster["hints_delivered"] == 0 and cluster["hints_pending"] == 5
        assert cluster["replies_from_wrong_peer"] == 1
        c.run(2 * SLOW)
        assert c.stats("n1")["cluster"]["hints_delivered"] == 5
    finally:
        c.host.shutdown()


def test_a_forged_sync_listing_is_ignored() -> None:
    c = SimCluster(3, anti_entropy_interval_s=0.2)
    try:
        c.host.network.links[("n2", "n1")] = Link(latency=constant(SLOW))
        requests = _capture(c, "n1", "n2", SyncRequest)
        for _ in range(40):
            c.run(0.05)
            if requests:
                break
        assert requests
        c.host.network.send("n3", "n1", SyncListing(requests[0].sid, ()))
        c.run(0.15)
        assert _wrong_peer(c, "n1") >= 1
        c.run(2 * SLOW)
        assert c.stats("n1")["cluster"]["sync_rounds_failed"] == 0  # the real listing finished the round
    finally:
        c.host.shutdown()


def test_a_read_repair_is_fire_and_forget_no_reply_frame() -> None:
    """A read repair says on the wire that nobody waits for it, and the repaired replica
    sends no answer (before, it answered and the coordinator threw the answer away)."""
    from actors.protocol.peer_codec import decode_peer, encode_peer
    from actors.protocol.replica_ops import Apply
    from tests.test_cluster_sim import SimCluster as Cluster

    c = Cluster(3, anti_entropy_interval_s=1000.0)
    try:
        c.host.network.cut_one_way("n1", "n3")  # n3 misses n1's write
        assert c.one(Set("r", "new"), "n1") == Ack()
        c.run(2.0)
        assert c.local("n3", "r") is None
        repairs = _capture(c, "n2", "n3", ReplicaRequest)
        answers: list[Any] = []
        hook = c.host.network.on_deliver

        def both(s: str, d: str, msg: Any) -> None:
            hook(s, d, msg)
            if s == "n3" and d == "n2" and type(msg) is ReplicaResponse:
                answers.append(msg)

        c.host.network.on_deliver = both
        assert c.one(Get("r", consistency="all"), "n2") == Value("new", True)
        c.run(0.5)
        assert c.local("n3", "r").value == "new"  # repaired
        repair = [m for m in repairs if not m.reply]
        assert len(repair) == 1 and type(repair[0].ops[0]) is Apply
        assert [m.req for m in answers] == [m.req for m in repairs if m.reply]  # the fetch's answer only
        # on the wire: the flag survives encoding, and a request without it wants an answer
        wire = encode_peer(repair[0])
        assert wire["noreply"] is True and decode_peer(wire).reply is False
        assert "noreply" not in encode_peer(ReplicaRequest(7, ())) and decode_peer(encode_peer(ReplicaRequest(7, ()))).reply
    finally:
        c.host.shutdown()
