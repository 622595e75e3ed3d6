"""Peer messages that carry values stay within a byte budget per frame (issue 11).

A replica built one 134 MB ``replica_response`` for 256 pipelined gets of a 512 KiB
value (dropped as over the 64 MiB peer frame limit: the client got only timeouts), and a
coordinator could gather a turn of big writes into one request over the limit. Now
replica requests and answers are cut by :mod:`actors.cluster.peer_budget` and paced by answers
(:mod:`actors.cluster.replica_flow`). Here: the codec of the new fields (``push``'s ``covered``
too), the flow objects alone, and whole clusters on the simulator, measuring each frame as
the runtime would encode it. The replicator's pushes: ``test_replicator_pushes.py``.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from actors.protocol.errors import BadRequestError
from actors.protocol.messages import Ack, ErrorReply, Get, Set, Value
from actors.protocol.replica_ops import Write
from actors.cluster.peer_budget import PEER_FRAME_BUDGET, PEER_REQUEST_WINDOW, op_bytes
from actors.protocol.peer_codec import decode_peer, encode_peer
from actors.kernel.peer import FromPeer
from actors.protocol.replica_ops import Fetch
from actors.protocol.peer_messages import Push, ReplicaAck, ReplicaRequest, ReplicaResponse
from actors.protocol.record import Record
from actors.cluster.replica_flow import MAX_SPLIT_ANSWERS, ReplicaRequests, ResponseParts, Route, cut
from actors.protocol.version import Version
from sim.network import Link, constant
from tests.test_cluster_sim import SimCluster

MiB = 1 << 20
#: A frame's msgpack framing around its values (headers, versions, keys): far below this.
OVERHEAD = 64 * 1024
V = Version(1_700_000_000_000, 0, "n1")


def frame_bytes(msg: Any) -> int:
    """The size of ``msg``'s frame as the runtime's peer links encode it."""
    return len(msgpack.packb(encode_peer(msg), use_bin_type=True, unicode_errors="surrogatepass"))


def rec(key: str, size: int) -> Record:
    return Record(key, "v" * size, None, V)


def record_frames(c: SimCluster) -> list[tuple[str, str, Any]]:
    """Every peer message delivered from now on, as ``(src, dst, msg)``."""
    seen: list[tuple[str, str, Any]] = []
    c.host.network.on_deliver = lambda s, d, m: seen.append((s, d, m))
    return seen


# --- the wire -----------------------------------------------------------------------------


def test_a_part_round_trips_and_a_whole_answer_keeps_its_wire_form() -> None:
    part = ReplicaResponse(7, ((rec("k", 3),), 1), 3, True)
    assert encode_peer(part)["start"] == 3 and encode_peer(part)["ack"] is True
    assert decode_peer(encode_peer(part)) == part
    whole = ReplicaResponse(7, (1, 2))
    assert set(encode_peer(whole)) == {"type", "req", "results"}  # as protocol 3 sent it
    assert decode_peer(encode_peer(whole)) == whole
    assert decode_peer(encode_peer(ReplicaAck(7, 3))) == ReplicaAck(7, 3)
    answer = Push(4, (rec("k", 3),), reply=True, covered=2)
    assert decode_peer(encode_peer(answer)) == answer
    assert "covered" not in encode_peer(Push(4, (), reply=True))


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "replica_response", "req": 1, "results": [1], "start": -1, "ack": True},
        {"type": "replica_response", "req": 1, "results": [1], "start": True, "ack": True},
        {"type": "replica_response", "req": 1, "results": [1], "start": 1.0, "ack": True},
        {"type": "replica_response", "req": 1, "results": [1], "start": "2", "ack": True},
        {"type": "replica_response", "req": 1, "results": [1], "start": 2, "ack": 1},
        {"type": "replica_response", "req": 1, "results": [], "start": 2, "ack": True},  # a part answering nothing
        {"type": "replica_ack", "req": 1, "start": -3},
        {"type": "replica_ack", "req": 1},
        {"type": "push", "sid": 1, "records": [], "reply": True, "covered": 0},
        {"type": "push", "sid": 1, "records": [], "reply": True, "covered": "all"},
        {"type": "push", "sid": 1, "records": [], "ack": True, "covered": 2},  # covered only answers a pull
    ],
)
def test_malformed_parts_are_refused_by_the_codec(obj: dict[str, Any]) -> None:
    with pytest.raises(BadRequestError):
        decode_peer(obj)


# --- the flow objects alone ------------------------------------------------------------


def test_cut_fills_the_budget_and_takes_one_result_past_it_alone() -> None:
    results = ((rec("a", 3 * MiB),), (rec("b", 2 * MiB),), 1, (rec("c", 5 * MiB),), (None,))
    assert cut(results, 0) == 1  # 3 MiB, then 2 more would pass 4 MiB
    assert cut(results, 1) == 3  # 2 MiB and a count
    assert cut(results, 3) == 4  # 5 MiB: alone, over the budget
    assert cut(results, 4) == 5


class Sent:
    def __init__(self) -> None:
        self.msgs: list[tuple[str, Any]] = []

    def __call__(self, addr: str, msg: Any) -> None:
        self.msgs.append((addr, msg))


def big_writes(n: int, size: int) -> list[Any]:
    return [Write(((f"k{i}", "v" * size, None),), V, ("n1", "n2")) for i in range(n)]


def test_an_outbox_leaves_at_the_budget_and_a_window_holds_the_rest_back() -> None:
    sent = Sent()
    ids = iter(range(1, 100))
    open_batches = {1, 2}
    flow = ReplicaRequests(sent, lambda: next(ids), open_batches.__contains__, flush_ops=128)
    wire = big_writes(10, MiB)
    attempts = [(i, 0) for i in range(10)]
    flow.add("n2:1", "n2", 1, attempts, wire)  # one quorum round of 10 MiB of values
    flow.flush()
    requests = [m for _, m in sent.msgs]
    assert len(requests) == 2 and flow.waiting() == 2  # 3 + 3 ops in flight (6 MiB), 3 + 1 wait
    assert [len(r.ops) for r in requests] == [3, 3]
    assert all(sum(op_bytes(op) for op in r.ops) <= PEER_FRAME_BUDGET for r in requests)
    assert sum(flow.in_flight.values()) <= PEER_REQUEST_WINDOW
    # The first answer frees its bytes: the waiting requests leave, in order, as they fit.
    first = flow.route(requests[0].req)
    assert first is not None and first.segments == [(1, attempts[0:3])]
    flow.done(requests[0].req, first)
    assert [m.ops for _, m in sent.msgs[2:]] == [tuple(wire[6:9]), tuple(wire[9:10])]
    assert [flow.route(m.req).segments for _, m in sent.msgs[1:]] == [  # type: ignore[union-attr]
        [(1, attempts[3:6])],
        [(1, attempts[6:9])],
        [(1, attempts[9:10])],
    ]
    assert flow.waiting() == 0 and sum(flow.in_flight.values()) <= PEER_REQUEST_WINDOW


def test_a_waiting_request_whose_batch_closed_is_dropped_with_its_window() -> None:
    sent = Sent()
    ids = iter(range(1, 100))
    open_batches = {1}
    flow = ReplicaRequests(sent, lambda: next(ids), open_batches.__contains__, flush_ops=128)
    flow.add("n2:1", "n2", 1, [(i, 0) for i in range(10)], big_writes(10, MiB))
    flow.flush()
    assert len(sent.msgs) == 2 and flow.waiting() == 2
    open_batches.clear()  # the batch timed out
    flow.forget_lost()  # its routes go, their window bytes free, and what waited is dropped
    assert flow.routes == {} and flow.in_flight == {} and flow.waiting() == 0
    assert len(sent.msgs) == 2


def test_small_requests_are_gathered_as_before() -> None:
    sent = Sent()
    ids = iter(range(1, 100))
    flow = ReplicaRequests(sent, lambda: next(ids), {1, 2}.__contains__, flush_ops=128)
    flow.add("n2:1", "n2", 1, [(0, 0)], big_writes(1, 10))
    flow.add("n2:1", "n2", 2, [(0, 0), (1, 0)], [Fetch(("a",)), Fetch(("b",))])
    assert sent.msgs == []  # until the turn ends
    flow.flush()
    assert len(sent.msgs) == 1 and len(sent.msgs[0][1].ops) == 3
    route = flow.route(sent.msgs[0][1].req)
    assert route is not None and route.segments == [(1, [(0, 0)]), (2, [(0, 0), (1, 0)])]


def test_a_big_answer_goes_in_acknowledged_parts_one_at_a_time() -> None:
    sent = Sent()
    parts = ResponseParts(sent, timeout=1.0)
    parts.answer("n1:1", 5, (1, 2), now=0.0)  # small: at once, whole, as before
    assert sent.msgs == [("n1:1", ReplicaResponse(5, (1, 2)))]
    big = tuple((rec(f"k{i}", MiB),) for i in range(10))
    parts.answer("n1:1", 6, big, now=0.0)
    parts.answer("n1:1", 7, big[:6], now=0.0)  # queued behind req 6
    assert sent.msgs[1:] == [("n1:1", ReplicaResponse(6, big[0:3], 0, True))]
    assert not parts.on_ack("n1:1", 6, 3, now=0.1)  # not the part in flight: ignored
    assert not parts.on_ack("n9:1", 6, 0, now=0.1)  # another peer's acknowledgement: ignored
    for start in (0, 3, 6, 9):
        assert parts.on_ack("n1:1", 6, start, now=0.1)
    assert [(m.req, m.start, len(m.results)) for _, m in sent.msgs[2:]] == [(6, 3, 3), (6, 6, 3), (6, 9, 1), (7, 0, 3)]
    assert parts.split == 2 and parts.abandoned == 0
    parts.expire(now=0.5)  # acknowledged 0.4 s ago: still waited for
    assert parts.queued
    parts.expire(now=1.2)  # a coordinator silent past the timeout: its queue goes
    assert parts.queued == {} and parts.abandoned == 1


def test_a_route_places_each_part_in_the_segments_it_answers() -> None:
    route = Route("n2", "n2:1", [(1, ["a", "b", "c"]), (2, ["d", "e"])], total=5, nbytes=0)
    assert route.take(("A", "B")) == [(1, ["a", "b"], ("A", "B"))]
    assert route.take(("C", "D")) == [(1, ["c"], ("C",)), (2, ["d"], ("D",))]
    assert route.take(("E",)) == [(2, ["e"], ("E",))]
    assert route.answered == route.total


def test_split_answers_past_the_cap_or_the_timeout_are_dropped() -> None:
    sent = Sent()
    parts = ResponseParts(sent, timeout=1.0)
    big = tuple((rec(f"k{i}", 3 * MiB),) for i in range(2))
    for req in range(MAX_SPLIT_ANSWERS + 3):
        parts.answer("n1:1", req, big, now=0.0)
    assert parts.split == MAX_SPLIT_ANSWERS and parts.abandoned == 3  # one in flight, 31 queued, 3 dropped
    assert len(sent.msgs) == 1
    parts.on_ack("n1:1", 0, 0, now=0.5)  # its second part
    parts.on_ack("n1:1", 0, 1, now=1.5)  # the next answers waited past the timeout: dropped unsent
    assert len(sent.msgs) == 2 and parts.queued == {} and parts.abandoned == 3 + MAX_SPLIT_ANSWERS - 1


# --- whole clusters on the simulator ---------------------------------------------------


def test_pipelined_gets_at_all_of_a_big_value_are_answered_from_parts() -> None:
    """Helper B's case at 64 gets: 32 MiB per replica, answered in parts of ~4 MiB."""
    c = SimCluster(3)
    try:
        value = "x" * (512 * 1024)
        assert c.one(Set("big", value, consistency="all"), "n1") == Ack()
        c.run(0.2)
        seen = record_frames(c)
        replies = c.host.request([Get("big", consistency="all")] * 64, node_id="n1")
        assert replies == (Value(value, True),) * 64
        c.run(0.1)
        for replica in ("n2", "n3"):
            parts = [m for s, d, m in seen if (s, d) == (replica, "n1") and type(m) is ReplicaResponse]
            assert len(parts) >= 8 and all(m.ack for m in parts)
            assert [m.start for m in parts] == [sum(len(p.results) for p in parts[:i]) for i in range(len(parts))]
            assert all(frame_bytes(m) <= PEER_FRAME_BUDGET + len(value) + OVERHEAD for m in parts)
            acks = [m for s, d, m in seen if (s, d) == ("n1", replica) and type(m) is ReplicaAck]
            assert [(a.req, a.start) for a in acks] == [(m.req, m.start) for m in parts]
        cluster = c.stats("n1")["cluster"]
        assert cluster["replica_requests_in_flight"] == 0 and cluster["replica_parts_refused"] == 0
        assert c.stats("n2")["cluster"]["replica_responses_split"] == 1
    finally:
        c.host.shutdown()


def test_a_forged_part_from_another_peer_is_ignored() -> None:
    c = SimCluster(3)
    try:
        value = "x" * (512 * 1024)
        assert c.one(Set("big", value, consistency="all"), "n1") == Ack()
        c.run(0.2)
        c.host.network.links[("n2", "n1")] = Link(latency=constant(0.3))
        seen = record_frames(c)
        future = c.host.submit([Get("big", consistency="all")] * 16, node_id="n1")
        c.run(0.05)
        sent = [m for s, d, m in seen if (s, d) == ("n1", "n2") and type(m) is ReplicaRequest]
        assert len(sent) == 1 and not future.done()
        forged = Record("big", "forged", None, Version(2**50, 0, "n3"))
        c.host.network.send("n3", "n1", ReplicaResponse(sent[0].req, ((forged,),) * 16, 0, True))  # n3 forges n2's
        c.run(0.05)
        assert not future.done()
        assert c.stats("n1")["cluster"]["replies_from_wrong_peer"] == 1
        acks = [m for s, d, m in seen if (s, d) == ("n1", "n3") and type(m) is ReplicaAck]
        assert not [a for a in acks if a.req == sent[0].req]  # no ack to a forger (n3's own parts are acked)
        c.run(1.0)
        assert future.get(timeout=5) == (Value(value, True),) * 16
        assert all(c.local(node, "big").value == value for node in c.ids)  # no read repair of the forgery
    finally:
        c.host.shutdown()


@pytest.mark.parametrize(
    ("start", "count"),
    [(2, 2), (0, 5)],  # ops 2-3 first (a part was lost on the way); 5 answers to 4 ops
    ids=["out-of-order", "out-of-range"],
)
def test_a_part_out_of_order_or_range_answers_nothing(start: int, count: int) -> None:
    """Such a part, from the very peer asked, is refused and counted; its request's reads
    time out (the real answer, coming later, finds no route)."""
    c = SimCluster(3)
    try:
        assert c.one(Set("k", "v", consistency="all"), "n1") == Ack()
        c.run(0.2)
        c.host.network.links[("n2", "n1")] = Link(latency=constant(0.3))
        seen = record_frames(c)
        future = c.host.submit([Get("k", consistency="all")] * 4, node_id="n1")
        c.run(0.05)
        req = next(m.req for s, d, m in seen if (s, d) == ("n1", "n2") and type(m) is ReplicaRequest)
        bad = ReplicaResponse(req, ((rec("k", 1),),) * count, start, True)
        c.host.nodes["n1"].node.tell(FromPeer("n2", "n2", bad))  # ahead of n2's real answer, still on its way
        c.run(1.5)
        replies = future.get(timeout=5)
        assert all(type(r) is ErrorReply and r.code.value == "timeout" for r in replies), replies
        cluster = c.stats("n1")["cluster"]
        assert cluster["replica_parts_refused"] == 1 and cluster["replica_requests_in_flight"] == 0
    finally:
        c.host.shutdown()


def test_a_turn_of_big_writes_goes_in_budgeted_requests_within_the_window() -> None:
    c = SimCluster(3)
    try:
        seen = record_frames(c)
        value = "y" * (900 * 1024)
        futures = [c.host.submit([Set(f"w{i}", value, consistency="all")], node_id="n1", conn=i) for i in range(24)]
        c.run(1.0)
        assert [f.get(timeout=5) for f in futures] == [(Ack(),)] * 24
        for replica in ("n2", "n3"):
            requests = [m for s, d, m in seen if (s, d) == ("n1", replica) and type(m) is ReplicaRequest]
            assert len(requests) >= 6
            assert all(frame_bytes(m) <= PEER_FRAME_BUDGET + len(value) + OVERHEAD for m in requests)
        cluster = c.stats("n1")["cluster"]
        assert cluster["hints_written"] == 0 and cluster["timeouts"] == 0
        assert all(c.local(node, "w7").value == value for node in c.ids)
    finally:
        c.host.shutdown()
