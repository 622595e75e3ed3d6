"""ClusterBatch on its own: how replica answers complete, re-stamp and finish a write."""

from __future__ import annotations

from actors.coordination import ClusterBatch
from actors.membership import ClusterView, State
from actors.messages import Set
from actors.peer_messages import Member, MemberStatus
from actors.placement import Placement
from actors.version import Version

IDS = ("a", "b", "c")


def _view() -> ClusterView:
    members = tuple(Member(n, f"{n}:1", 1, MemberStatus.READY) for n in IDS)
    placement = Placement(IDS, 3, 16)
    states = {"a": State.SELF, "b": State.ALIVE, "c": State.ALIVE}
    return ClusterView("a", members, states, placement, placement)


def _one_write() -> ClusterBatch:
    cb = ClusterBatch(1)
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
