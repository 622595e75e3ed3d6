"""The hybrid logical clock: ordering, and versions sharing their int objects."""

from __future__ import annotations

import random

from actors.store.keyspace import VLOGICAL, VWALL, Keyspace, entry_version
from actors.protocol.version import SHARED_LOGICAL_LIMIT, ZERO, HybridClock, Version, shared_logical

T0 = 1_700_000_000.0  # a realistic wall time: its milliseconds are not a cached small int


def fresh(n: int) -> int:
    """``n`` as a new int object (as decoding a peer's message makes)."""
    return int(str(n))


def test_ticks_increase_and_a_new_millisecond_restarts_the_counter() -> None:
    clock = HybridClock("n1")
    versions = [clock.tick(T0 + i * 0.0004) for i in range(20)]
    assert versions == sorted(versions) and len(set(versions)) == 20
    assert all(v.node_id == "n1" for v in versions)
    assert versions[3].wall_ms > versions[2].wall_ms and versions[3].logical == 0
    assert clock.tick(T0 - 5).wall_ms == versions[-1].wall_ms  # a clock going back changes nothing


def test_ticks_of_one_millisecond_share_wall_ms_and_logical_objects() -> None:
    a, b = HybridClock("a"), HybridClock("b")
    va = [a.tick(T0) for _ in range(1000)]
    vb = [b.tick(T0) for _ in range(1000)]
    assert all(v.wall_ms is va[0].wall_ms for v in va)
    assert [v.logical for v in va] == list(range(1000))
    assert all(x.logical is y.logical for x, y in zip(va, vb))  # above 256 too


def _observe_by_max(last: Version, remote: Version, wall_ms: int, node: str) -> Version:
    """The HLC merge rule as written in Kulkarni et al., for comparison."""
    top = max(wall_ms, last.wall_ms, remote.wall_ms)
    if top == last.wall_ms == remote.wall_ms:
        logical = max(last.logical, remote.logical) + 1
    elif top == last.wall_ms:
        logical = last.logical + 1
    elif top == remote.wall_ms:
        logical = remote.logical + 1
    else:
        logical = 0
    return Version(top, logical, node)


def test_observe_follows_the_hlc_rule_and_keeps_the_last_wall_ms_object() -> None:
    rng = random.Random(5)
    clock = HybridClock("n1")
    base = int(T0 * 1000)
    for _ in range(2000):
        wall_s = T0 + rng.randrange(5) / 1000
        remote = Version(fresh(base + rng.randrange(5)), rng.randrange(600), "n2")
        last = clock._last
        expected = _observe_by_max(last, remote, int(wall_s * 1000), "n1")
        got = clock.observe(remote, wall_s)
        assert got == expected
        if got.wall_ms == last.wall_ms:
            assert got.wall_ms is last.wall_ms
        elif got.wall_ms == remote.wall_ms:
            assert got.wall_ms is remote.wall_ms
        assert got.logical is shared_logical(got.logical)


def test_shared_logical_is_equal_always_and_identical_below_the_limit() -> None:
    for n in (0, 5, 256, 257, 1000, SHARED_LOGICAL_LIMIT - 1):
        assert shared_logical(fresh(n)) is shared_logical(fresh(n)) and shared_logical(n) == n
    for n in (-1, -300, SHARED_LOGICAL_LIMIT, 10**20):
        assert shared_logical(fresh(n)) == n


def test_entries_share_version_ints_whoever_made_the_version() -> None:
    ks = Keyspace()
    wall_ms = int(T0 * 1000)
    for i in range(600):  # as decoded from peers: every int a new object
        ks.set(f"k{i}", b"v", None, Version(fresh(wall_ms), fresh(i), "n2"))
    entries = list(ks._entries.values())
    assert all(e[VWALL] is entries[0][VWALL] for e in entries)
    assert all(e[VLOGICAL] is shared_logical(i) for i, e in enumerate(entries))
    assert [entry_version(e) for e in entries] == [Version(wall_ms, i, "n2") for i in range(600)]
    assert ks.set("z", b"v", None, ZERO) and entry_version(ks._entries["z"]) == ZERO
