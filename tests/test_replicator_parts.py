"""The replicator's sans-IO parts, driven directly: messages and the time in, what they
send and ask the store out (through a recording :class:`ReplicatorIo`), no actor, no host.

The cluster-level behaviour (hints reach a healed node, a restarted node warms, a
leaving node hands off, anti-entropy repairs) is tested on the simulator in
``test_cluster_sim.py`` and ``test_replicator_pushes.py``; these pin the rules each part
states at its top.
"""

from __future__ import annotations

import collections
import itertools
from types import SimpleNamespace
from typing import Any

from actors.cluster.hints import Hints
from actors.cluster.membership import ClusterView, State
from actors.cluster.peer_budget import PUSH_BUDGET
from actors.cluster.placement import Placement
from actors.cluster.replicator_io import Then
from actors.cluster.streaming import Streaming, sources_needed
from actors.cluster.sync_rounds import SyncRounds, diff_listings
from actors.protocol.peer_messages import Member, MemberStatus, Pull, Push, PushAck, SyncListing, SyncRequest
from actors.protocol.record import Record
from actors.protocol.replica_ops import Apply, Fetch
from actors.protocol.version import Version
from actors.store.ops import DropPartitions, ListingQuery

V1 = Version(1, 0, "n1")
V2 = Version(2, 0, "n2")
CONFIG = SimpleNamespace(stream_batch=2, anti_entropy_interval_s=1.0, anti_entropy_partitions=4)


def rec(key: str, size: int = 1) -> Record:
    return Record(key, "v" * size, None, V1)


class RecordingIo:
    """A ReplicatorIo that records what a part does; the test answers store asks in order."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.sent: list[tuple[str, Any]] = []
        self.asks: list[tuple[list[Any], Then]] = []
        self.wrong: list[tuple[str, str, str]] = []
        self.soon = 0

    def next_id(self) -> int:
        return next(self._ids)

    def ask_store(self, ops: list[Any], then: Then) -> None:
        self.asks.append((ops, then))

    def send(self, peer: str, msg: Any) -> None:
        self.sent.append((peer, msg))

    def reply(self, addr: str, msg: Any) -> None:
        self.sent.append((addr, msg))

    def tick_soon(self) -> None:
        self.soon += 1

    def wrong_peer(self, kind: str, src: str, expected: str) -> None:
        self.wrong.append((kind, src, expected))

    def answer(self, *results: Any, now: float = 0.0) -> list[Any]:
        """Answer the oldest store ask with ``results`` (one per op); returns its ops."""
        ops, then = self.asks.pop(0)
        then(results, now)
        return ops

    def take_sent(self) -> list[tuple[str, Any]]:
        sent, self.sent = self.sent, []
        return sent


def make_view(members: dict[str, tuple[str, str]], replicas: int = 2, partitions: int = 64) -> ClusterView:
    """A view from n1's side: ``members`` maps a node id to its (status, observed state)."""
    rows = tuple(Member(n, f"{n}:7000", 1, status) for n, (status, _) in sorted(members.items()))
    owners = [m.node_id for m in rows if m.status != MemberStatus.LEFT]
    staying = [m.node_id for m in rows if m.status not in (MemberStatus.LEFT, MemberStatus.LEAVING)]
    return ClusterView(
        self_id="n1",
        members=rows,
        states={n: state for n, (_, state) in members.items()},
        placement=Placement(owners, replicas, partitions),
        future=Placement(staying, replicas, partitions),
        addresses={m.node_id: m.addr for m in rows},
    )


READY_ALL = {
    "n1": (MemberStatus.READY, State.SELF),
    "n2": (MemberStatus.READY, State.ALIVE),
    "n3": (MemberStatus.READY, State.ALIVE),
}


# --- hints --------------------------------------------------------------------------------


def test_hints_past_the_limit_drop_the_oldest_of_the_longest_queue() -> None:
    counters: collections.Counter[str] = collections.Counter()
    hints = Hints("n1", 3, 500, RecordingIo(), counters)
    hints.add((("n2", rec("a")), ("n2", rec("b")), ("n3", rec("c")), ("n1", rec("mine")), ("n2", rec("d"))))
    assert hints.count == 3 and counters["hints_dropped"] == 1
    assert [r.key for r in hints.queues["n2"]] == ["b", "d"]
    assert [r.key for r in hints.queues["n3"]] == ["c"]


def test_hint_pushes_fill_a_budget_one_at_a_time_and_only_their_target_acks_them() -> None:
    io = RecordingIo()
    counters: collections.Counter[str] = collections.Counter()
    hints = Hints("n1", 100, 500, io, counters)
    hints.add(tuple(("n2", rec(f"k{i}", PUSH_BUDGET // 4)) for i in range(5)))
    view = make_view(READY_ALL)
    hints.deliver(view, now=1.0)
    [(peer, push)] = io.take_sent()
    assert peer == "n2" and type(push) is Push and push.ack
    assert [r.key for r in push.records] == ["k0", "k1", "k2"]  # a fourth would pass the budget
    hints.deliver(view, now=1.1)
    assert io.take_sent() == []  # one push in flight per target
    assert hints.on_ack("n3", PushAck(push.sid, 3))  # a guessed sid from another peer
    assert io.wrong == [("PushAck", "n3", "n2")] and hints.count == 5
    assert hints.on_ack("n2", PushAck(push.sid, 3))
    assert hints.count == 2 and counters["hints_delivered"] == 3
    assert not hints.on_ack("n2", PushAck(push.sid, 3))  # a repeat is no hint push's answer
    hints.deliver(view, now=1.2)
    [(_, second)] = io.take_sent()
    assert [r.key for r in second.records] == ["k3", "k4"]


def test_hints_wait_for_a_down_target_and_go_when_it_left() -> None:
    io = RecordingIo()
    counters: collections.Counter[str] = collections.Counter()
    hints = Hints("n1", 100, 500, io, counters)
    hints.add((("n2", rec("a")), ("n2", rec("b"))))
    hints.deliver(make_view({**READY_ALL, "n2": (MemberStatus.READY, State.DOWN)}), now=1.0)
    assert io.sent == [] and hints.count == 2
    hints.drop_left(make_view({**READY_ALL, "n2": (MemberStatus.LEFT, State.LEFT)}))
    assert hints.count == 0 and hints.queues == {} and counters["hints_dropped"] == 2


def test_hints_older_than_the_tombstone_lifetime_are_dropped_not_pushed() -> None:
    io = RecordingIo()
    counters: collections.Counter[str] = collections.Counter()
    hints = Hints("n1", 100, 2, io, counters)
    old, new = Version(1_000, 0, "n1"), Version(5_000, 0, "n1")
    hints.add((("n2", Record("a", "1", None, old)), ("n2", Record("b", "1", None, new)),
               ("n2", Record("c", "1", None, old)), ("n2", Record("d", "1", None, new))))
    view = make_view(READY_ALL)
    assert hints.deliver(view, now=1.0, oldest_ms=2_000) == [("n2", 2)]
    [(_, push)] = io.take_sent()
    assert [r.key for r in push.records] == ["b", "d"]  # the front stream_batch hints, none stale
    assert hints.count == 2 and counters["hints_dropped"] == 2
    assert hints.on_ack("n2", PushAck(push.sid, 2)) and hints.count == 0 and hints.queues == {}
    hints.add((("n3", Record("e", "1", None, old)),))
    assert hints.deliver(view, now=2.0, oldest_ms=2_000) == [("n3", 1)]
    assert io.take_sent() == [] and hints.queues == {} and hints.count == 0
    hints.add((("n3", Record("f", "1", None, old)),))
    assert hints.deliver(view, now=3.0) == [] and len(io.take_sent()) == 1  # 0: no limit


def _at(key: str, wall_ms: int) -> Record:
    return Record(key, "1", None, Version(wall_ms, 0, "n1"))


def test_stale_hints_never_take_the_place_of_fresh_ones_under_the_limit() -> None:
    """Red team s25: stale hints (older than the tombstone lifetime) were dropped only when
    they reached the front of an alive target's queue, so those waiting for a down target,
    or behind fresh ones, counted against --hint-limit and fresh hints were dropped instead."""
    counters: collections.Counter[str] = collections.Counter()
    hints = Hints("n1", 5, 500, RecordingIo(), counters)
    hints.add((("n3", _at("s1", 1_000)), ("n3", _at("s2", 1_500))))  # n3 is down; both go stale
    hints.add((("n2", _at("f1", 5_000)), ("n2", _at("f2", 5_100))), oldest_ms=2_000)
    hints.add((("n2", _at("late", 1_200)),), oldest_ms=2_000)  # a late, stale hint: deep in n2's queue
    assert [r.key for r in hints.queues["n2"]] == ["late", "f1", "f2"]  # (version order)
    hints.add((("n2", _at("f3", 5_200)),), oldest_ms=2_000)
    assert hints.count == 3 and counters["hints_dropped"] == 3  # the three stale ones, and only they
    assert "n3" not in hints.queues and [r.key for r in hints.queues["n2"]] == ["f1", "f2", "f3"]
    hints.add((("n2", _at("f4", 5_300)), ("n2", _at("f5", 5_400)), ("n2", _at("f6", 5_500))), oldest_ms=2_000)
    assert [r.key for r in hints.queues["n2"]] == ["f2", "f3", "f4", "f5", "f6"]  # no stale one left: the oldest goes


def test_the_limit_never_drops_a_hint_a_push_in_flight_carries() -> None:
    io = RecordingIo()
    counters: collections.Counter[str] = collections.Counter()
    hints = Hints("n1", 3, 2, io, counters)
    hints.add((("n2", _at("a", 5_000)), ("n2", _at("b", 5_001)), ("n2", _at("c", 5_002))))
    hints.deliver(make_view(READY_ALL), now=1.0)
    [(_, push)] = io.take_sent()
    assert [r.key for r in push.records] == ["a", "b"]
    hints.add((("n2", _at("d", 5_003)), ("n2", _at("stale", 1_000))), oldest_ms=2_000)
    assert [r.key for r in hints.queues["n2"]] == ["a", "b", "d"]  # c, the oldest not in flight, went
    assert hints.on_ack("n2", PushAck(push.sid, 2))
    assert [r.key for r in hints.queues["n2"]] == ["d"] and hints.count == 1
    assert counters["hints_dropped"] == 2 and counters["hints_delivered"] == 2


# --- sync rounds --------------------------------------------------------------------------


def test_diff_listings_pushes_what_is_newer_here_and_pulls_what_is_newer_there() -> None:
    mine = (("a", V2), ("b", V1), ("c", V1))
    theirs = (("a", V1), ("b", V2), ("d", V1))
    assert diff_listings(mine, theirs) == (["a", "c"], ["b", "d"])


def test_a_round_listens_only_to_its_peer_and_pulls_again_what_an_answer_did_not_cover() -> None:
    io = RecordingIo()
    counters: collections.Counter[str] = collections.Counter()
    done: list[tuple[str, tuple[int, ...]]] = []
    rounds = SyncRounds("n1", CONFIG, io, counters, lambda peer, partitions: done.append((peer, partitions)))
    rounds.start("n2", (0,), "pull", now=0.0)
    io.answer(((0, 123),))  # our digests
    [(peer, request)] = io.take_sent()
    assert peer == "n2" and type(request) is SyncRequest and request.digests == ((0, 123),)
    sid = request.sid
    listing = SyncListing(sid, ((0, (("a", V2), ("b", V2), ("c", V2))),))
    rounds.on_listing("n3", listing)
    assert io.wrong == [("SyncListing", "n3", "n2")] and io.asks == []
    rounds.on_listing("n2", listing)
    assert type(io.answer(((0, ()),))[0]) is ListingQuery  # we hold none of the three
    assert io.take_sent() == [("n2", Pull(sid, ("a", "b"))), ("n2", Pull(sid, ("c",)))]  # stream_batch 2
    rounds.on_pulled("n2", Push(sid, (rec("a"),), reply=True, covered=1), now=1.0)
    assert io.take_sent() == [("n2", Pull(sid, ("b",)))]  # the uncovered key, at once: one pull was answered
    rounds.on_pulled("n3", Push(sid, (rec("c"),), reply=True), now=1.0)
    assert io.wrong[-1] == ("Push", "n3", "n2")
    rounds.on_pulled("n2", Push(sid, (rec("c"),), reply=True), now=1.1)
    rounds.on_pulled("n2", Push(sid, (rec("b"),), reply=True), now=1.2)
    assert rounds.pulling() == 1 and done == []  # three applies still on their way
    for _ in range(3):
        assert type(io.answer(1)[0]) is Apply
    assert rounds.pulling() == 0 and done == [("n2", (0,))] and counters["keys_streamed"] == 3


def test_a_repair_stream_pushes_one_budget_at_a_time_each_after_its_ack() -> None:
    io = RecordingIo()
    counters: collections.Counter[str] = collections.Counter()
    rounds = SyncRounds("n1", CONFIG, io, counters, lambda peer, partitions: None)
    rounds.start("n2", (0,), "ae", now=0.0)
    io.answer(((0, 1),))
    [(_, request)] = io.take_sent()
    rounds.on_listing("n2", SyncListing(request.sid, ((0, ()),)))  # the peer has none of ours
    io.answer(((0, (("x", V1), ("y", V1), ("z", V1))),))
    [(fetch, ), then] = io.asks.pop(0)
    assert fetch == Fetch(("x", "y"), False)
    big = PUSH_BUDGET  # x alone fills a push: y waits for the next one
    then(((rec("x", big), rec("y", big)),), 2.0)
    [(peer, push)] = io.take_sent()
    assert peer == "n2" and push.ack and [r.key for r in push.records] == ["x"]
    rounds.on_ack("n3", PushAck(push.sid, 1))
    assert io.wrong == [("PushAck", "n3", "n2")] and io.asks == []
    rounds.on_ack("n2", PushAck(push.sid, 1))
    assert io.asks[0][0] == [Fetch(("y", "z"), False)]  # from the first key not pushed


def test_a_stale_round_is_abandoned_and_counted() -> None:
    io = RecordingIo()
    counters: collections.Counter[str] = collections.Counter()
    rounds = SyncRounds("n1", CONFIG, io, counters, lambda peer, partitions: None)
    rounds.start("n2", (0, 1), "pull", now=0.0)
    assert rounds.expire(now=1.0, stale_s=2.0) == []
    [failed] = rounds.expire(now=3.0, stale_s=2.0)
    assert failed.partitions == (0, 1) and counters["sync_rounds_failed"] == 1 and rounds.pulling() == 0


# --- streaming ----------------------------------------------------------------------------


def _streaming(io: RecordingIo) -> tuple[Streaming, SyncRounds]:
    counters: collections.Counter[str] = collections.Counter()
    streaming: Streaming
    rounds = SyncRounds("n1", CONFIG, io, counters, lambda peer, partitions: streaming.pulled(peer, partitions))
    streaming = Streaming("n1", CONFIG, io, counters, rounds)
    return streaming, rounds


def _finish_pull_rounds(io: RecordingIo, rounds: SyncRounds, partitions: list[int], peers: set[str]) -> None:
    """Answer every digest query, then complete the rounds with ``peers`` (empty listings:
    nothing differs) and leave the others under way."""
    while io.asks:
        io.answer(tuple((p, 0) for p in partitions))
    for peer, request in io.take_sent():
        if peer in peers:
            rounds.on_listing(peer, SyncListing(request.sid, ()))
        else:
            io.sent.append((peer, request))  # still under way


def test_sources_needed_is_enough_co_owners_to_meet_every_quorum_write() -> None:
    # N - Q + 1 of the N - 1 co-owners: with W = Q acks, one of them is among the sources.
    assert [sources_needed(n) for n in range(1, 8)] == [0, 1, 2, 2, 3, 3, 4]


def test_a_warming_node_pulls_every_partition_from_enough_co_owners_then_says_so_once() -> None:
    io = RecordingIo()
    streaming, rounds = _streaming(io)
    view = make_view({**READY_ALL, "n1": (MemberStatus.WARMING, State.SELF)}, replicas=3, partitions=8)
    assert streaming.on_view(view, first=True)
    owned = list(streaming.owned)
    assert owned == list(range(8)) and list(streaming.pull_queue) == owned and not streaming.warm_done()
    streaming.start_pulls(now=0.0)
    assert rounds.pulling() == 2  # one round per co-owner: N=3 needs 2 sources
    _finish_pull_rounds(io, rounds, owned, {"n2"})
    assert list(streaming.pull_queue) == owned and not streaming.warm_done()  # one source is not enough
    _finish_pull_rounds(io, rounds, owned, {"n3"})
    assert rounds.pulling() == 0 and streaming.pull_queue == {}
    assert streaming.warm_done() and not streaming.warm_done()


def test_a_warming_node_waits_for_a_second_source_rather_than_serve_from_one() -> None:
    io = RecordingIo()
    streaming, rounds = _streaming(io)
    members = {**READY_ALL, "n1": (MemberStatus.WARMING, State.SELF), "n3": (MemberStatus.READY, State.DOWN)}
    streaming.on_view(make_view(members, replicas=3, partitions=4), first=True)
    streaming.start_pulls(now=0.0)
    assert rounds.pulling() == 1  # only n2 is reachable
    _finish_pull_rounds(io, rounds, [0, 1, 2, 3], {"n2"})
    streaming.start_pulls(now=1.0)
    assert rounds.pulling() == 0 and len(streaming.pull_queue) == 4 and not streaming.warm_done()
    members["n3"] = (MemberStatus.READY, State.ALIVE)  # n3 is back: the second source
    streaming.on_view(make_view(members, replicas=3, partitions=4), first=False)
    streaming.start_pulls(now=2.0)
    assert rounds.pulling() == 1
    _finish_pull_rounds(io, rounds, [0, 1, 2, 3], {"n3"})
    assert streaming.pull_queue == {} and streaming.warm_done()


def _pulled_from_a_warming_co_owner() -> tuple[RecordingIo, Streaming, SyncRounds, dict[str, tuple[str, str]]]:
    """Two of three owners restarted at once (n1 here, and n3): n1 pulls from n2 (ready)
    and n3 (warming); n3's round ends first, while it warms; n2's is still under way."""
    io = RecordingIo()
    streaming, rounds = _streaming(io)
    members = {**READY_ALL, "n1": (MemberStatus.WARMING, State.SELF), "n3": (MemberStatus.WARMING, State.ALIVE)}
    streaming.on_view(make_view(members, replicas=3, partitions=4), first=True)
    streaming.start_pulls(now=0.0)
    assert rounds.pulling() == 2
    _finish_pull_rounds(io, rounds, [0, 1, 2, 3], {"n3"})
    return io, streaming, rounds, members


def test_a_co_owner_pulled_while_warming_is_pulled_again_once_it_serves() -> None:
    # Then n3 is ready: two co-owners serve, so two serving sources are needed, and n3's
    # earlier pull was not one. Before the fix n3, already pulled from, was never asked
    # again and n1 stayed warming for ever.
    io, streaming, rounds, members = _pulled_from_a_warming_co_owner()
    members["n3"] = (MemberStatus.READY, State.ALIVE)
    streaming.on_view(make_view(members, replicas=3, partitions=4), first=False)
    _finish_pull_rounds(io, rounds, [0, 1, 2, 3], {"n2"})
    assert rounds.pulling() == 0 and len(streaming.pull_queue) == 4 and not streaming.warm_done()
    streaming.start_pulls(now=1.0)
    assert [r.peer for r in rounds.rounds.values()] == ["n3"]  # n3 again
    streaming.start_pulls(now=1.1)
    assert rounds.pulling() == 1  # not twice
    _finish_pull_rounds(io, rounds, [0, 1, 2, 3], {"n3"})
    assert streaming.pull_queue == {} and streaming.warm_done()


def test_a_co_owner_pulled_while_warming_is_not_pulled_again_while_it_still_warms() -> None:
    io, streaming, rounds, _ = _pulled_from_a_warming_co_owner()
    _finish_pull_rounds(io, rounds, [0, 1, 2, 3], {"n2"})
    # One serving co-owner (n2) pulled, and one warming (n3): enough while n3 warms.
    assert streaming.pull_queue == {} and streaming.warm_done()
    streaming.start_pulls(now=1.0)
    assert rounds.pulling() == 0


def test_a_failed_pull_round_is_tried_again_from_a_co_owner() -> None:
    io = RecordingIo()
    streaming, rounds = _streaming(io)
    view = make_view({**READY_ALL, "n1": (MemberStatus.WARMING, State.SELF)}, replicas=3, partitions=2)
    streaming.on_view(view, first=True)
    streaming.start_pulls(now=0.0)
    assert rounds.pulling() == 2
    _finish_pull_rounds(io, rounds, [0, 1], {"n2"})  # n3's round never answers
    streaming.rounds_failed(rounds.expire(now=10.0, stale_s=5.0))
    assert rounds.pulling() == 0 and not streaming.warm_done()
    streaming.start_pulls(now=10.0)
    assert rounds.pulling() == 1  # n3 again: n2 was pulled from already
    _finish_pull_rounds(io, rounds, [0, 1], {"n3"})
    assert streaming.warm_done()


def test_gaining_a_partition_cancels_its_handoff_and_losing_it_cancels_its_pull() -> None:
    io = RecordingIo()
    streaming, _ = _streaming(io)
    four = {**READY_ALL, "n4": (MemberStatus.READY, State.ALIVE)}
    streaming.on_view(make_view(READY_ALL), first=True)
    before = set(streaming.owned)
    streaming.on_view(make_view(four), first=False)  # n4 joins: n1 loses some partitions
    lost = before - set(streaming.owned)
    assert lost and set(streaming.handoff_queue) == lost and streaming.pull_queue == {}
    streaming.on_view(make_view(READY_ALL), first=False)  # n4 gone again before the handoff
    assert streaming.handoff_queue == {} and set(streaming.pull_queue) == lost
    assert set(streaming.pull_queue).isdisjoint(streaming.handoff_queue)


def test_a_handoff_batch_goes_on_only_when_every_target_acked_it() -> None:
    io = RecordingIo()
    streaming, _ = _streaming(io)
    streaming.on_view(make_view(READY_ALL, replicas=3, partitions=1), first=True)
    leaving = make_view({**READY_ALL, "n1": (MemberStatus.LEAVING, State.SELF)}, replicas=3, partitions=1)
    assert streaming.on_view(leaving, first=False) and streaming.owned == {}
    assert list(streaming.handoff_queue) == [0]
    streaming.start_handoffs(now=0.0)
    io.answer(((0, (("a", V1), ("b", V1), ("c", V1))),))  # its listing
    io.answer((rec("a"), rec("b")))  # the first batch (stream_batch 2)
    sent = io.take_sent()
    assert sorted(peer for peer, _ in sent) == ["n2", "n3"]  # the owners once n1 is gone
    sid = sent[0][1].sid
    assert streaming.on_ack("n2", PushAck(sid, 2), now=1.0)
    assert streaming.on_ack("n2", PushAck(sid, 2), now=1.0)  # a repeat counts once
    assert io.asks == []
    assert streaming.on_ack("n4", PushAck(sid, 2), now=1.0)
    [(kind, src, expected)] = io.wrong
    assert (kind, src, sorted(expected.split(","))) == ("PushAck", "n4", ["n2", "n3"])
    assert streaming.on_ack("n3", PushAck(sid, 2), now=1.0)
    assert io.answer((rec("c"),)) == [Fetch(("c",), False)]  # the next batch
    for peer, push in io.take_sent():
        streaming.on_ack(peer, PushAck(push.sid, 1), now=2.0)
    # A leaving node still answers reads for the partition until it has left: it keeps the data.
    assert io.asks == []
    assert streaming.leave_done() == 3 and streaming.leave_done() is None


def test_a_partition_lost_to_a_join_is_dropped_after_its_last_batch_was_acked() -> None:
    io = RecordingIo()
    streaming, _ = _streaming(io)
    streaming.on_view(make_view(READY_ALL, replicas=1, partitions=8), first=True)
    four = {**READY_ALL, "n4": (MemberStatus.WARMING, State.ALIVE)}
    streaming.on_view(make_view(four, replicas=1, partitions=8), first=False)
    [lost, *_] = list(streaming.handoff_queue)
    streaming.start_handoffs(now=0.0)
    io.answer(((lost, (("a", V1),)),))  # its listing
    io.answer((rec("a"),))
    [(peer, push), *_] = io.take_sent()
    assert peer == "n4"
    streaming.on_ack("n4", PushAck(push.sid, 1), now=1.0)
    assert io.answer(0) == [DropPartitions((lost,))]  # not an owner any more: dropped once acked
