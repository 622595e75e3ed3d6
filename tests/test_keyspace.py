"""The keyspace against a controllable clock: exact deadlines, counters, volatile index."""

from __future__ import annotations

import random

from actors.keyspace import Keyspace
from actors.sizing import ENTRY_OVERHEAD


def test_entry_is_a_miss_exactly_at_its_deadline() -> None:
    ks = Keyspace()
    ks.set("k", "v", deadline=100.0)
    assert ks.get("k", 99.999999) == ("v", True)
    assert ks.get("k", 100.0) == (None, False)
    assert len(ks) == 0
    assert ks.expired_lazy == 1


def test_entry_without_deadline_never_expires() -> None:
    ks = Keyspace()
    ks.set("k", "v", deadline=None)
    assert ks.get("k", 1e12) == ("v", True)
    assert ks.volatile_count == 0


def test_overwrite_changes_deadline_and_index() -> None:
    ks = Keyspace()
    ks.set("k", 1, deadline=10.0)
    assert ks.volatile_count == 1
    ks.set("k", 2, deadline=None)
    assert ks.volatile_count == 0
    assert ks.get("k", 20.0) == (2, True)
    ks.set("k", 3, deadline=30.0)
    assert ks.volatile_count == 1
    assert ks.get("k", 30.0) == (None, False)
    assert ks.volatile_count == 0


def test_hits_misses_and_deletes_are_counted() -> None:
    ks = Keyspace()
    ks.set("a", 1, None)
    ks.get("a", 0)
    ks.get("b", 0)
    assert (ks.hits, ks.misses) == (1, 1)
    assert ks.delete("a", 0) is True
    assert ks.delete("a", 0) is False
    assert ks.deletes == 1


def test_used_bytes_tracks_entries() -> None:
    ks = Keyspace()
    ks.set("key", "x" * 1000, None)
    one = ks.used_bytes
    assert one >= ENTRY_OVERHEAD + 1000
    ks.set("key", "y" * 10, None)
    assert ks.used_bytes < one
    ks.delete("key", 0)
    assert ks.used_bytes == 0


def test_volatile_index_stays_consistent_under_random_operations() -> None:
    rng = random.Random(7)
    ks = Keyspace()
    model: dict[str, float | None] = {}
    for step in range(5000):
        key = f"k{rng.randrange(200)}"
        op = rng.random()
        if op < 0.5:
            deadline = rng.choice([None, float(rng.randrange(1, 100))])
            ks.set(key, step, deadline)
            model[key] = deadline
        elif op < 0.7:
            ks.delete(key, 0.0)
            model.pop(key, None)
        else:
            wall = float(rng.randrange(0, 100))
            if ks.expire_if_due(key, wall):
                assert model.pop(key) <= wall  # type: ignore[operator]
        assert ks.volatile_count == sum(1 for d in model.values() if d is not None)
        assert len(ks) == len(model)
    sample = ks.sample_volatile(rng, 20)
    assert len(set(sample)) == len(sample)
    assert all(model[k] is not None for k in sample)


def test_deleting_an_expired_entry_reports_it_absent() -> None:
    # Found by the model-based test: a delete at the deadline said deleted=true.
    ks = Keyspace()
    ks.set("k", 1, deadline=1.75)
    assert ks.delete("k", 1.75) is False
    assert len(ks) == 0 and ks.expired_lazy == 1 and ks.deletes == 0
