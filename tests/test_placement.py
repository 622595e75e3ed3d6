"""Placement: stable key -> partition, and rendezvous owners that move minimally."""

from __future__ import annotations

import os
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.cluster.placement import Placement
from actors.store.partitions import partition_of

MEMBERS = [f"node{i}" for i in range(1, 6)]


def test_partition_of_is_the_same_in_every_process() -> None:
    keys = ["a", "user:42", "ключ", "\udcff"]
    here = [partition_of(k) for k in keys]
    code = f"from actors.store.partitions import partition_of; print([partition_of(k) for k in {keys!r}])"
    for seed in ("1", "4242"):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True,
            env=dict(os.environ, PYTHONHASHSEED=seed),
        ).stdout
        assert out.strip() == str(here)


def test_owners_do_not_depend_on_member_order() -> None:
    a = Placement(MEMBERS, 3)
    b = Placement(list(reversed(MEMBERS)), 3)
    assert all(a.owners(p) == b.owners(p) for p in range(256))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(2, 8))
def test_a_join_moves_only_the_joiners_share_and_a_leave_only_the_leavers(replicas: int, n: int) -> None:
    members = [f"m{i}" for i in range(n)]
    before = Placement(members, replicas)
    after = Placement([*members, "new"], replicas)
    for p in range(256):
        gone = set(before.owners(p)) - set(after.owners(p))
        came = set(after.owners(p)) - set(before.owners(p))
        # Only the joiner comes in, displacing one owner (none while the replica cap grows).
        assert came <= {"new"} and len(gone) == len(came) - (after.replicas - before.replicas)
    assert sum("new" in after.owners(p) for p in range(256)) == len(after.owned_by("new"))
    left = Placement(members[1:], replicas)
    for p in range(256):
        if members[0] not in before.owners(p) and left.replicas == before.replicas:
            assert before.owners(p) == left.owners(p)  # partitions the leaver did not own stay put


def test_replicas_are_capped_at_the_cluster_size_and_spread_evenly() -> None:
    assert Placement(["a", "b"], 3).replicas == 2
    placement = Placement(MEMBERS, 3)
    counts = [len(placement.owned_by(m)) for m in MEMBERS]
    assert sum(counts) == 3 * 256
    assert max(counts) < 1.4 * min(counts)


def test_write_route_is_write_targets_split_by_reachability_and_cached() -> None:
    from actors.cluster.membership import ClusterView, State
    from actors.protocol.peer_messages import Member, MemberStatus

    ids = ["a", "b", "c", "d", "e"]
    members = tuple(Member(n, f"{n}:1", 1, MemberStatus.LEAVING if n == "e" else MemberStatus.READY) for n in ids)
    placement = Placement(ids, 3, 64)
    future = Placement(ids[:4], 3, 64)
    states = {"a": State.SELF, "b": State.ALIVE, "c": State.DOWN, "d": State.SUSPECT, "e": State.ALIVE}
    view = ClusterView("a", members, states, placement, future)
    for partition in range(64):
        targets, pending = view.write_targets(partition)
        route = view.write_route(partition)
        assert route[:3] == (targets, pending, tuple(sorted(placement.owners(partition))))
        assert route[3] == tuple(m for m in targets if m != "c")
        assert route[4] == (("c",) if "c" in targets else ())
        assert view.write_route(partition) is route


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=300), max_size=40), st.sampled_from([1, 7, 256]))
def test_remembered_slots_are_the_hashed_ones(keys: list[str], partitions: int) -> None:
    """slot_of's memo (and slot_lookup's) answers what hashing answers, and partition_of its partition: first
    asks, repeats, keys too long to remember, hash tags, and past its bound (here 5
    keys), where it starts afresh."""
    from actors.store import partitions as module

    bound = module.MEMO_KEYS
    module.MEMO_KEYS = 5
    lookup = module.slot_lookup(partitions)
    try:
        for key in keys + keys[::-1] + ["{tag}a", "{tag}b", "{}c", "{d"]:
            hashed = module._hashed(key, partitions, module.SUB_BUCKETS)
            assert module.slot_of(key, partitions) == hashed == lookup(key)
            assert partition_of(key, partitions) == hashed[0]
            memo = module._memos[(partitions, module.SUB_BUCKETS)]
            assert len(memo) <= 5
            assert all(len(k) <= module.MEMO_KEY_LEN for k in memo)
    finally:
        module.MEMO_KEYS = bound
