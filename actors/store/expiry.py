"""Active expiry, in the style of Redis's ``activeExpireCycle``.

Lazy expiry alone leaves keys that are never read again in memory forever, so every
tick the janitor has the store sample keys that carry a deadline and delete the expired
ones, repeating while more than 25% of a sample was expired (there is likely a lot more
to do), and stopping when the time budget is spent so a million keys expiring at once
never stall the node: the rest is picked up by later ticks (and by lazy expiry).

The budget is measured with ``now`` (the host's monotonic clock). In the simulator that
clock does not move within a turn, so ``max_samples`` is the deterministic backstop.
"""

from __future__ import annotations

import random
from typing import Callable

from actors.store.keyspace import Keyspace
from actors.store.ops import ExpireCycleDone

__all__ = ["run_expire_cycle"]

#: Stop repeating once this share (or less) of a sample had expired.
ACCEPTABLE_STALE = 0.25


def run_expire_cycle(
    keyspace: Keyspace,
    *,
    wall: float,
    now: Callable[[], float],
    rng: random.Random,
    budget_s: float,
    sample_size: int = 20,
    max_samples: int = 200_000,
) -> ExpireCycleDone:
    """Expire sampled keys due at ``wall`` until few are stale or the budget is spent."""
    start = now()
    sampled = expired = rounds = 0
    hit_budget = False
    while keyspace.volatile_count:
        keys = keyspace.sample_volatile(rng, sample_size)
        rounds += 1
        sampled += len(keys)
        round_expired = 0
        for key in keys:
            if keyspace.expire_if_due(key, wall):
                round_expired += 1
        expired += round_expired
        if round_expired <= ACCEPTABLE_STALE * len(keys):
            break
        if now() - start >= budget_s or sampled >= max_samples:
            hit_budget = True
            break
    return ExpireCycleDone(sampled, expired, rounds, hit_budget, keyspace.volatile_count)
