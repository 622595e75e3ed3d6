"""The clock bound (issue 13, item 5): ``--max-clock-skew`` and a clock no peer can break.

- decoders refuse versions a clock cannot hold (``wall_ms`` outside int64, a logical counter
  past 2**32-1) and incarnations / heartbeat stamps outside int64, with a clear
  ``BadRequestError`` (Hypothesis over the integers on both sides of each bound);
- :class:`HybridClock` never merges a version beyond its skew bound, so whatever it
  observes it stays encodable;
- :mod:`actors.cluster.clock_bound` splits what a peer sent into admitted and refused;
- :class:`ClockOffsets` fences a node only when a majority of its peers says its clock is
  off, and a delay (a stall) cannot make it so;
- the simulator's ``clock-skew-beyond-bound`` scenario: a node 2 s ahead is refused and
  fences itself; every checker stays green.
"""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.cluster.clock_bound import bound_ops, bound_records, bound_results, limit_ms
from actors.cluster.clock_offsets import OFFSET_TTL_S, ClockOffsets
from actors.config import NodeConfig
from actors.protocol.errors import BadRequestError, ErrorCode
from actors.protocol.messages import Ack, ErrorReply, Set, Stats
from actors.protocol.peer_codec import decode_peer, encode_peer
from actors.protocol.peer_messages import Gossip, Member, Push, ReplicaRequest, ReplicaResponse
from actors.protocol.record import Record
from actors.protocol.replica_ops import Apply, Fetch, ItemResults, Remove, Write
from actors.protocol.version import MAX_LOGICAL, MAX_WALL_MS, HybridClock, Version

NOW_S = 1_767_225_600.0
NOW_MS = int(NOW_S * 1000)


def _wire(msg: object) -> dict:
    """``msg`` as a peer would receive it (through msgpack)."""
    return msgpack.unpackb(msgpack.packb(encode_peer(msg), use_bin_type=True), raw=False)  # type: ignore[arg-type]


def _forms(wall_ms: int, logical: int) -> list[dict]:
    """Every wire form a version takes, carrying ``[wall_ms, logical]``."""
    v = [wall_ms, logical, "n2"]
    return [
        {"type": "replica_request", "req": 1, "ops": [["w", "k", 1, None, wall_ms, logical, 0]], "writers": [["n2", ["n1"]]]},
        {"type": "replica_request", "req": 1, "ops": [["ws", [["k", 1, None]], wall_ms, logical, 0]], "writers": [["n2", []]]},
        {"type": "replica_request", "req": 1, "ops": [["write", [["k", 1, None]], v, []]]},
        {"type": "replica_request", "req": 1, "ops": [["remove", ["k"], v, None]]},
        {"type": "replica_request", "req": 1, "ops": [["apply", [["k", 1, None, v, None]]]]},
        {"type": "replica_response", "req": 1, "results": [{"conflict": v}]},
        {"type": "replica_response", "req": 1, "results": [{"each": [{"conflict": v}]}]},
        {"type": "replica_response", "req": 1, "results": [[["k", 1, None, v, None]]]},
        {"type": "push", "sid": 1, "records": [["k", 1, None, v, None]], "ack": True, "reply": False},
        {"type": "sync_listing", "sid": 1, "listings": [[0, [["k", v]]]]},
    ]


def test_the_issue_s_frozen_version_is_refused_at_decode_everywhere() -> None:
    for form in _forms(2**64 - 1, 2**64 - 1):
        with pytest.raises(BadRequestError, match="wall_ms|logical"):
            decode_peer(form)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.integers(-(2**70), -1), st.integers(MAX_WALL_MS + 1, 2**80), st.integers(0, MAX_WALL_MS)),
    st.one_of(st.integers(-(2**40), -1), st.integers(MAX_LOGICAL + 1, 2**70), st.integers(0, MAX_LOGICAL)),
)
def test_versions_decode_only_within_what_a_clock_holds(wall_ms: int, logical: int) -> None:
    ok = 0 <= wall_ms <= MAX_WALL_MS and 0 <= logical <= MAX_LOGICAL
    for form in _forms(wall_ms, logical):
        if ok:
            decode_peer(form)
        else:
            with pytest.raises(BadRequestError):
                decode_peer(form)


@pytest.mark.parametrize("bad", [True, 1.5, "1", None])
def test_a_version_s_ints_must_be_ints(bad: object) -> None:
    for form in _forms(bad, 0) + _forms(0, bad):  # type: ignore[arg-type]
        with pytest.raises(BadRequestError):
            decode_peer(form)


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.integers(-(2**70), -1), st.integers(MAX_WALL_MS, 2**80), st.integers(0, MAX_WALL_MS - 1)))
def test_incarnations_and_heartbeat_stamps_decode_only_within_int64(n: int) -> None:
    member = {"type": "gossip", "members": [["n2", "n2", n, "ready"]], "reply": False, "partitions": 8}
    stamped = {"type": "gossip", "members": [], "reply": False, "partitions": 8, "wall_ms": n}
    for form in (member, stamped):
        if 0 <= n < MAX_WALL_MS:
            decode_peer(form)
        else:
            with pytest.raises(BadRequestError, match="incarnation|wall_ms"):
                decode_peer(form)


def test_gossip_carries_its_sender_s_wall_clock() -> None:
    g = Gossip((Member("n1", "a:1", 5, "ready"),), True, 8, NOW_MS)
    assert decode_peer(_wire(g)) == g
    legacy = _wire(g)
    del legacy["wall_ms"]
    assert decode_peer(legacy).wall_ms == 0  # unstamped: neither recorded nor refused


def test_the_hlc_never_merges_a_version_beyond_its_bound() -> None:
    clock = HybridClock("n1", max_skew_s=0.5)
    base = clock.tick(NOW_S)
    assert clock.observe(Version(NOW_MS + 501, 0, "n2"), NOW_S) is None
    assert clock.observe(Version(2**64 - 1, 2**64 - 1, "n2"), NOW_S) is None
    assert clock.observe(Version(NOW_MS, MAX_LOGICAL + 1, "n2"), NOW_S) is None
    assert clock.refused == 3
    assert clock.tick(NOW_S) == Version(base.wall_ms, 1, "n1")  # not moved by any of them
    merged = clock.observe(Version(NOW_MS + 500, 7, "n2"), NOW_S)
    assert merged == Version(NOW_MS + 500, 8, "n1")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, MAX_WALL_MS), st.integers(0, MAX_LOGICAL), st.integers(0, 10_000)), max_size=30))
def test_whatever_decodable_versions_it_observes_the_hlc_stays_encodable(versions: list[tuple[int, int, int]]) -> None:
    clock = HybridClock("n1", max_skew_s=0.5)
    wall_s = NOW_S
    for wall_ms, logical, step_ms in versions:
        wall_s += step_ms / 1000
        clock.observe(Version(wall_ms, logical, "n2"), wall_s)
        v = clock.tick(wall_s)
        assert v.wall_ms <= int(wall_s * 1000) + 500 and v.logical <= MAX_LOGICAL + len(versions) * 2
        msgpack.packb([v.wall_ms, v.logical, v.node_id])


def test_bound_ops_refuses_ops_and_records_beyond_the_limit() -> None:
    limit = limit_ms(NOW_S, 0.5)
    ok, far = Version(limit, 0, "n2"), Version(limit + 1, 0, "n2")
    ops = (
        Write((("a", 1, None),), ok),
        Write((("b", 1, None),), far),
        Remove(("c",), far),
        Apply((Record("d", 1, None, ok), Record("e", 1, None, far))),
        Apply((Record("f", 1, None, far),)),
        Fetch(("g",)),
    )
    admitted, errors, (refused, furthest) = bound_ops(ops, limit)
    assert [i for i, _ in admitted] == [0, 3, 5]
    assert admitted[1][1] == Apply((Record("d", 1, None, ok),))
    assert sorted(errors) == [1, 2, 4] and all(e.code == ErrorCode.UNAVAILABLE for e in errors.values())
    assert refused == 4 and furthest == limit + 1
    records, (n, _) = bound_records((Record("x", 1, None, ok),), limit)
    assert n == 0 and records == (Record("x", 1, None, ok),)


def test_bound_results_turns_a_future_answer_into_a_refusal() -> None:
    limit = limit_ms(NOW_S, 0.5)
    far = Version(limit + 10, 0, "n2")
    results = (1, far, (Record("k", 1, None, far), None), ItemResults((1, far)), (None,))
    out, (refused, furthest) = bound_results(results, limit)
    assert out[0] == 1 and out[4] == (None,)
    assert type(out[1]) is ErrorReply and type(out[2]) is ErrorReply
    assert out[3][0] == 1 and type(out[3][1]) is ErrorReply
    assert refused == 3 and furthest == limit + 10
    assert bound_results((1, (None,)), limit)[1] == (0, 0)


def test_clock_offsets_fence_only_on_a_majority_and_a_stall_cannot_fence() -> None:
    offsets = ClockOffsets(0.5)
    assert offsets.heard("n2", NOW_MS + 400, NOW_MS, 0.0)
    assert not offsets.heard("n3", NOW_MS + 2_000, NOW_MS, 0.0)  # refused: from the future
    assert offsets.off_by(0.0) is None  # one voice of two
    offsets.heard("n4", NOW_MS + 2_100, NOW_MS, 0.0)
    assert -2_100 <= offsets.off_by(0.0) <= -2_000  # two of three: this node is 2 s behind
    assert offsets.off_by(0.0, exclude=("n4",)) is None
    # a stall: heartbeats queued while this node was paused arrive late, looking old
    stalled = ClockOffsets(0.5)
    for peer in ("n2", "n3"):
        stalled.heard(peer, NOW_MS, NOW_MS, 0.0)  # before the pause: in step
        stalled.heard(peer, NOW_MS + 100, NOW_MS + 3_000, 3.0)  # sent at 0.1 s, handled at 3 s
    assert stalled.off_by(3.0) is None
    assert stalled.off_by(3.0 + OFFSET_TTL_S + 1) is None  # nothing fresh: no verdict
    assert stalled.offset_ms(3.0 + OFFSET_TTL_S + 1) is None


def test_config_refuses_a_nonsense_bound() -> None:
    assert NodeConfig().max_clock_skew_s == 0.5
    for bad in (0.0, -1.0, 86_401.0):
        with pytest.raises(ValueError, match="clock skew"):
            NodeConfig(max_clock_skew_s=bad)


def test_the_max_clock_skew_flag_sets_the_field() -> None:
    from runtime.node import node_config, parse_args

    assert node_config(parse_args(["n1", "0"])).max_clock_skew_s == 0.5
    assert node_config(parse_args(["n1", "0", "--max-clock-skew", "0.25"])).max_clock_skew_s == 0.25


def test_a_replica_answers_a_future_op_with_a_refusal_and_keeps_the_rest() -> None:
    """On the simulator: a replica request mixing a future write and a good one gets one
    refusal and one ack, and only the good one is stored."""
    from actors.kernel.peer import FromPeer
    from tests.test_cluster_sim import SimCluster

    c = SimCluster(3)
    try:
        answers: list[ReplicaResponse] = []
        c.host.network.on_deliver = lambda s, d, m: answers.append(m) if (s, d) == ("n1", "n2") and type(m) is ReplicaResponse else None
        assert c.one(Set("x", 1)) is not None
        wall_ms = c.local("n1", "x").version.wall_ms  # a time the node stamps now
        good, future = Version(wall_ms, 0, "n2"), Version(wall_ms + 60_000, 0, "n2")
        request = ReplicaRequest(41, (Write((("good", 1, None),), good), Write((("bad", 1, None),), future)))
        c.host.nodes["n1"].node.tell(FromPeer("n2", "n2", request))
        c.run(0.3)
        (answer,) = [a for a in answers if a.req == 41]
        assert answer.results[0] == 1 and type(answer.results[1]) is ErrorReply
        assert "clock skew" in answer.results[1].message
        assert c.local("n1", "good") is not None and c.local("n1", "bad") is None
        assert c.stats("n1")["cluster"]["versions_refused"] == 1
    finally:
        c.host.shutdown()


def test_a_push_with_a_future_record_stores_the_rest() -> None:
    from actors.kernel.peer import FromPeer
    from tests.test_cluster_sim import SimCluster

    c = SimCluster(3)
    try:
        assert c.one(Set("probe", 1)) is not None
        wall_ms = c.local("n1", "probe").version.wall_ms
        push = Push(3, (Record("p-good", 1, None, Version(wall_ms, 0, "n2")), Record("p-bad", 1, None, Version(wall_ms + 60_000, 0, "n2"))))
        c.host.nodes["n1"].replicator.tell(FromPeer("n2", "n2", push))
        c.run(0.5)
        assert c.local("n1", "p-good") is not None and c.local("n1", "p-bad") is None
        assert c.stats("n1")["cluster"]["versions_refused"] == 1
    finally:
        c.host.shutdown()


@pytest.mark.timeout(300)
def test_a_node_beyond_the_bound_is_refused_and_fences_itself_with_every_checker_green() -> None:
    from sim.runner import Runner
    from sim.scenario import BUILTIN

    runner = Runner(BUILTIN["clock-skew-beyond-bound"], 1)
    try:
        result = runner.run()
        assert result.violations == []
        assert result.ops["failed"] > 0  # n5's clients' requests: refused, definite
        stats = {node: runner.host.request([Stats()], node_id=node)[0].stats["cluster"] for node in runner.live()}
        events = [(node, event, fields) for _, node, event, fields in runner.host.trace]
    finally:
        runner.close()
    assert stats["n5"]["clock_refused"] > 0
    assert any(node == "n5" and event == "clock_offset" and fields["off_ms"] > 1_500 for node, event, fields in events)
    assert any(node == "n1" and event == "heartbeat_refused" and fields["peer"] == "n5" for node, event, fields in events)
    assert stats["n5"]["clock_refused"] <= result.ops["failed"]
    for node in ("n1", "n2", "n3", "n4"):
        assert stats[node]["heartbeats_refused"] > 0
        assert "n5" not in stats[node]["members"]
        assert stats[node]["clock_refused"] == 0
        assert abs(stats[node]["clock_offset_ms"]) <= 500


def test_round_trips_judge_a_jump_at_once_and_a_stall_never() -> None:
    offsets = ClockOffsets(0.5)
    # in step: n2 echoes our stamp t1 after holding it 100 ms; 2 ms on the wire each way
    assert offsets.heard("n2", NOW_MS + 102, NOW_MS + 104, 0.1, echo_ms=NOW_MS, held_ms=100)
    assert offsets.peer_offset("n2", 0.1) == 0
    # our clock jumps 2 s ahead: the next round trip (fast) says so at once
    offsets.heard("n2", NOW_MS + 302, NOW_MS + 2_304, 0.3, echo_ms=NOW_MS + 2_200, held_ms=100)
    assert offsets.peer_offset("n2", 0.3) == -2_000
    offsets.heard("n3", NOW_MS + 302, NOW_MS + 2_304, 0.3, echo_ms=NOW_MS + 2_200, held_ms=100)
    assert offsets.off_by(0.3) == 2_000  # both peers: this node is 2 s ahead
    # a stall: a heartbeat queued for 3 s while this node was paused is too slow to judge by
    stalled = ClockOffsets(0.5)
    stalled.heard("n2", NOW_MS + 100, NOW_MS + 3_000, 3.0, echo_ms=NOW_MS - 100, held_ms=100)
    stalled.heard("n3", NOW_MS + 100, NOW_MS + 3_000, 3.0, echo_ms=NOW_MS - 100, held_ms=100)
    assert stalled.off_by(3.0) is None and stalled.offset_ms(3.0) is None


def test_a_clock_jump_mid_run_fences_the_node_and_fixing_it_ends_the_fence() -> None:
    """On the simulator: n5's clock jumps 2 s ahead under a running cluster. Within a few
    heartbeats it refuses to coordinate (its peers refuse its heartbeats), and once its clock
    is back it coordinates again."""
    from tests.test_cluster_sim import SimCluster

    c = SimCluster(5)
    try:
        assert c.one(Set("before", 1), "n5") is not None
        c.host.clocks["n5"].offset = 2.0
        c.run(0.6)
        reply = c.one(Set("during", 1), "n5")
        assert type(reply) is ErrorReply and reply.code == ErrorCode.UNAVAILABLE and "clock" in reply.message
        assert c.local("n5", "during") is None  # nothing stored
        cluster = c.stats("n5")["cluster"]
        assert cluster["clock_refused"] >= 1 and cluster["clock_offset_ms"] < -1_500
        assert c.stats("n1")["cluster"]["heartbeats_refused"] >= 1
        c.host.clocks["n5"].offset = 0.0
        c.run(1.0)
        assert c.one(Set("after", 1), "n5") == Ack()
    finally:
        c.host.shutdown()


def test_only_voters_judge_a_clock() -> None:
    offsets = ClockOffsets(0.5)
    offsets.heard("n2", NOW_MS, NOW_MS, 0.0)
    for ghost in ("ghost0", "ghost1", "ghost2"):
        offsets.heard(ghost, NOW_MS - 10_000, NOW_MS, 0.0)
    assert offsets.off_by(0.0) == 10_000  # every link a voice: three made-up ids outvote n2
    assert offsets.off_by(0.0, voters={"n2", "n3"}) is None
    assert offsets.offset_ms(0.0, voters={"n2"}) == 0
    assert offsets.offset_ms(0.0, voters={"n3"}) is None  # no voter heard: no evidence


def test_links_naming_made_up_node_ids_cannot_fence_a_node() -> None:
    """On the simulator: a holder of the cluster secret opens links to n1 as ghost0..ghost2
    (no members, no contacts) and stamps their heartbeats 10 s behind. Before, three voices
    of five said n1's clock was 10 s ahead and n1 refused every write; now they are no
    voices (and n1 keeps none of their samples), and n1 coordinates as before."""
    from actors.kernel.peer import FromPeer
    from tests.test_cluster_sim import SimCluster

    c = SimCluster(3)
    try:
        assert c.one(Set("before", 1)) == Ack()
        clock, n1 = c.host.clocks["n1"], c.host.nodes["n1"].node
        for _ in range(10):
            wall_ms = int(clock.wall() * 1000)
            for i in range(3):
                n1.tell(FromPeer(f"ghost{i}", "127.0.0.1:1", Gossip((), False, 256, wall_ms - 10_000)))
            c.run(0.1)
        assert c.one(Set("during", 1)) == Ack()
        cluster = c.stats("n1")["cluster"]
        assert cluster["clock_refused"] == 0 and abs(cluster["clock_offset_ms"]) <= 500
        assert sorted(cluster["members"]) == ["n1", "n2", "n3"]
    finally:
        c.host.shutdown()


def test_a_node_behind_its_contacts_fences_itself_though_it_admits_none_of_them() -> None:
    """On the simulator: n4 joins 2 s behind the others. It refuses every heartbeat they
    send (from its future), so none of them becomes a member in its table, yet its contact
    n1's stamps are a voice: it fences itself, and its writes fail instead of being stamped
    2 s in the past (and losing to older writes)."""
    from tests.test_cluster_sim import SimCluster, config

    c = SimCluster(3)
    try:
        c.host.start_node("n4", config(("n1",)), offset=-2.0)
        c.run(1.5)
        reply = c.one(Set("behind", 1), "n4")
        assert type(reply) is ErrorReply and reply.code == ErrorCode.UNAVAILABLE and "clock" in reply.message
        cluster = c.stats("n4")["cluster"]
        assert sorted(cluster["members"]) == ["n4"]  # it admitted nobody: the contact voted
        assert cluster["heartbeats_refused"] > 0 and cluster["clock_offset_ms"] > 1_500
        assert c.one(Set("ahead", 1), "n1") == Ack()  # the others are not fenced
    finally:
        c.host.shutdown()


def test_refusals_are_logged_without_flooding(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from actors.cluster.clock_bound import RefusalLog

    log = RefusalLog(logging.getLogger("actorcache.test"), "n1")
    with caplog.at_level(logging.WARNING, logger="actorcache.test"):
        for _ in range(100):
            log.note("n2", "push", 1, 1500)
        log.note("n3", "push", 2, 10)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 8  # n2's 1st, 2nd, 4th, ..., 64th; n3's 1st
    assert "refused 1 version(s) in a push from n2, up to 1500 ms beyond the max clock skew" in lines[0]
    assert lines[-1].startswith("n1: refused 2 version(s) in a push from n3")
