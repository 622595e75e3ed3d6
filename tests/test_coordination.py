"""QuorumRound on its own: how replica answers complete, re-stamp and finish a write."""

from __future__ import annotations

from actors.cluster.coordination import QuorumRound
from actors.cluster.membership import ClusterView, State
from actors.protocol.messages import Set
from actors.protocol.peer_messages import Member, MemberStatus
from actors.cluster.placement import Placement
from actors.protocol.version import Version

IDS = ("a", "b", "c")


def _view() -> ClusterView:
    members = tuple(Member(n, f"{n}:1", 1, MemberStatus.READY) for n in IDS)
    placement = Placement(IDS, 3, 16)
    states = {"a": State.SELF, "b": State.ALIVE, "c": State.ALIVE}
    return ClusterView("a", members, states, placement, placement)


def _one_write() -> QuorumRound:
    cb = QuorumRound(1)
    assert cb.plan(0, Set("k", "v"), _view(), "quorum", 1000.0, Version(1_000_000, 0, "a"), 60.0) is None
    assert sorted(cb.outgoing) == sorted(IDS)  # every owner gets the write
    return cb


def test_a_quorum_of_acks_completes_the_write_and_the_last_ack_finishes_the_batch() -> None:
    cb = _one_write()
    assert cb.on_result(0, "a", 1) is None
    assert cb.on_result(0, "b", 1) is cb.tasks[0]  # quorum: 2 of 3
    assert not cb.finished() and [m for m, _ in cb.unacked()] == ["c"]
    assert cb.on_result(0, "c", 1) is None
    assert cb.finished() and cb.unacked() == []


def test_a_conflict_before_the_quorum_queues_a_restamp() -> None:
    cb = _one_write()
    newer = Version(2_000_000, 0, "b")
    assert cb.on_result(0, "b", newer) is None
    assert 0 in cb.conflicts and cb.tasks[0].conflict == newer
    assert not cb.finished()


def test_a_conflict_after_the_quorum_counts_as_answered_not_as_a_replica_to_hint() -> None:
    """The late replica holds a newer version: it needs no hint, and the batch must not
    wait for its request timeout to close."""
    cb = _one_write()
    cb.on_result(0, "a", 1)
    cb.on_result(0, "b", 1)
    assert cb.on_result(0, "c", Version(2_000_000, 0, "b")) is None
    assert not cb.conflicts  # acked already: a later write rightly wins, no re-stamp
    assert cb.finished()
    assert cb.unacked() == []


class _Task:
    def __init__(self, op: object, attempt: int = 0) -> None:
        self.op = op
        self.attempt = attempt


def test_wire_ops_make_one_item_by_item_write_per_owner_set_of_a_run() -> None:
    from actors.protocol.replica_ops import ItemResults, Remove, Write
    from actors.cluster.task_wire import task_results as _task_results, wire_ops as _wire_ops

    v1, v2 = Version(1_000_000, 0, "a"), Version(1_000_001, 0, "a")
    abc, bca = ("a", "b", "c"), ("b", "c", "a")
    planned = [
        (0, Write((("k0", 0, None),), v1, abc)),
        (1, Write((("k1", 1, None),), v1, bca)),
        (2, Write((("k2", 2, None),), v1, abc)),
        (3, Remove(("k3",), v2, None)),  # not a write: ends the run
        (4, Write((("k4", 4, None),), v2, abc)),  # a run of one: sent as it is
        (5, Write((("k5", 5, None),), v1, abc)),  # another version object: its own run
    ]
    tasks = [_Task(op, attempt=i % 2) for i, op in planned]
    attempts, wire = _wire_ops([i for i, _ in planned], tasks)
    assert wire == [
        Write((("k0", 0, None), ("k2", 2, None)), v1, abc, True),
        planned[1][1],
        planned[3][1],
        planned[4][1],
        planned[5][1],
    ]
    assert attempts == [((0, 0), (2, 0)), (1, 1), (3, 1), (4, 0), (5, 1)]
    newer = Version(2_000_000, 0, "b")
    results = [ItemResults((1, newer)), 1, 0, 1, 1]
    assert _task_results(attempts, results) == [(0, 0, 1), (2, 0, newer), (1, 1, 1), (3, 1, 0), (4, 0, 1), (5, 1, 1)]
    # an error for an item-by-item write answers each of its tasks
    from actors.protocol.errors import ErrorCode
    from actors.protocol.messages import ErrorReply

    oom = ErrorReply(ErrorCode.OUT_OF_MEMORY, "full")
    assert _task_results(attempts[:1], [oom]) == [(0, 0, oom), (2, 0, oom)]


def test_an_item_by_item_write_answers_each_key_and_names_a_newer_version() -> None:
    from actors.store.keyspace import Keyspace
    from actors.protocol.replica_ops import ItemResults, Write
    from actors.store.apply import apply

    ks = Keyspace()
    new, newer = Version(2, 0, "a"), Version(3, 0, "b")
    ks.set("held", "x", None, newer)
    ks.set("same", "y", None, new)
    op = Write((("fresh", 1, None), ("held", 2, None), ("same", 3, None)), new, ("a",), True)
    assert apply(ks, op, 0.0) == ItemResults((1, newer, 1))
    assert ks.get("fresh", 0.0) == (1, True) and ks.get("held", 0.0) == ("x", True)


def _set_round(keys: list[str]) -> QuorumRound:
    cb = QuorumRound(1)
    version = Version(1_000_000, 0, "a")
    for slot, key in enumerate(keys):
        assert cb.plan(slot, Set(key, slot), _view(), "quorum", 1000.0, version, 60.0) is None
    return cb


def test_on_results_answers_as_on_result_does_answer_by_answer() -> None:
    """The batch path (one call per replica answer, acks counted inline) and the per-key
    path agree: the same tasks complete, in the same order, with the same state after."""
    from actors.cluster.task_wire import task_results, wire_ops
    from actors.protocol.errors import ErrorCode
    from actors.protocol.messages import ErrorReply
    from actors.protocol.replica_ops import ItemResults

    keys = [f"k{i}" for i in range(6)]
    newer = Version(2_000_000, 0, "b")
    oom = ErrorReply(ErrorCode.OUT_OF_MEMORY, "full")
    answers = {  # per source: one answer per op of its wire form
        "a": lambda n: [ItemResults([1] * n)],
        "b": lambda n: [ItemResults([1, newer] + [1] * (n - 2))],
        "c": lambda n: [oom],
    }
    one, batch = _set_round(keys), _set_round(keys)
    for source, answer in answers.items():
        attempts, wire = wire_ops(batch.outgoing[source], batch.tasks)
        results = answer(len(wire[0].items))
        by_key = [t for i, a, r in task_results(attempts, results) if (t := one.on_result(i, source, r, a)) is not None]
        by_batch = batch.on_results(source, attempts, results)
        assert [t.key for t in by_batch] == [t.key for t in by_key]
        for x, y in zip(one.tasks, batch.tasks):
            assert (x.acks, x.done, x.refusals, x.conflict) == (y.acks, y.done, y.refusals, y.conflict)
    assert one.conflicts == batch.conflicts == {1: None}
    assert one.finished() == batch.finished()


def test_a_view_plans_a_key_write_as_its_partition_route_says() -> None:
    from actors.cluster import membership
    from actors.protocol.consistency import required_acks
    from actors.store.partitions import partition_of

    view = _view()
    for level in ("one", "quorum", "all"):
        for key in (f"key:{i}" for i in range(50)):
            targets, pending, owners, live, down = view.write_route(partition_of(key, view.placement.partitions))
            needed = min(required_acks(level, len(targets) - pending) + pending, len(targets))
            assert view.key_write_plan(key, level) == (live, down, needed, owners)
            assert view.key_write_plan(key, level) == (live, down, needed, owners)  # remembered
    assert len(view._key_plans["quorum"]) == 50
    old = membership.KEY_PLAN_CACHE
    membership.KEY_PLAN_CACHE = 50
    try:  # full: the next new key starts the memory afresh, and is planned all the same
        assert view.key_write_plan("another", "quorum")[2] == 2
        assert list(view._key_plans["quorum"]) == ["another"]
    finally:
        membership.KEY_PLAN_CACHE = old
