"""Active expiry (Redis-style cycle) against a controllable clock."""

from __future__ import annotations

import random

from actors.store.expiry import run_expire_cycle
from actors.store.keyspace import Keyspace


class StepClock:
    """A monotonic clock that advances ``step`` seconds every time it is read."""

    def __init__(self, step: float) -> None:
        self.t = 0.0
        self.step = step
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        self.t += self.step
        return self.t


def _fill(ks: Keyspace, n: int, deadline: float | None, prefix: str = "k") -> None:
    for i in range(n):
        ks.set(f"{prefix}{i}", i, deadline)


def test_budget_is_respected_with_100k_expiring_keys() -> None:
    ks = Keyspace()
    _fill(ks, 100_000, deadline=10.0)
    # Each read of the clock costs 10 µs of "work": a 2 ms budget allows ~200 rounds.
    clock = StepClock(10e-6)
    result = run_expire_cycle(ks, wall=11.0, now=clock, rng=random.Random(1), budget_s=0.002)
    assert result.hit_budget
    assert 0 < result.expired < 100_000
    assert result.rounds <= 0.002 / 10e-6 + 1
    assert len(ks) == 100_000 - result.expired
    # Later cycles drain the backlog slice by slice.
    cycles = 1
    while ks.volatile_count and cycles < 10_000:
        r = run_expire_cycle(ks, wall=11.0, now=StepClock(10e-6), rng=random.Random(cycles), budget_s=0.002)
        assert r.rounds <= 201
        cycles += 1
    assert len(ks) == 0
    assert ks.expired_active == 100_000
    assert cycles > 10


def test_cycle_stops_when_few_sampled_keys_are_stale() -> None:
    ks = Keyspace()
    _fill(ks, 1000, deadline=100.0, prefix="live")
    _fill(ks, 10, deadline=1.0, prefix="dead")
    result = run_expire_cycle(ks, wall=50.0, now=StepClock(0.0), rng=random.Random(3), budget_s=1.0)
    assert not result.hit_budget
    assert result.rounds == 1  # <= 25% of the first sample was expired
    assert len(ks) >= 1000


def test_cycle_repeats_while_many_are_stale_and_finishes_small_sets() -> None:
    ks = Keyspace()
    _fill(ks, 500, deadline=1.0)
    result = run_expire_cycle(ks, wall=2.0, now=StepClock(0.0), rng=random.Random(3), budget_s=1.0)
    assert result.expired == 500
    assert len(ks) == 0


def test_keys_without_deadline_are_never_sampled() -> None:
    ks = Keyspace()
    _fill(ks, 100, deadline=None)
    result = run_expire_cycle(ks, wall=1e12, now=StepClock(0.0), rng=random.Random(3), budget_s=1.0)
    assert result.sampled == 0 and len(ks) == 100


def test_max_samples_bounds_a_cycle_when_time_stands_still() -> None:
    # Virtual time does not move inside a simulated turn: the sample cap must stop it.
    ks = Keyspace()
    _fill(ks, 50_000, deadline=1.0)
    result = run_expire_cycle(
        ks, wall=2.0, now=StepClock(0.0), rng=random.Random(3), budget_s=0.002, max_samples=2_000
    )
    assert result.hit_budget
    assert result.sampled == 2_000
    assert len(ks) == 48_000
