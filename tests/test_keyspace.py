"""The keyspace against a controllable clock: exact deadlines, counters, volatile index."""

from __future__ import annotations

import random

from hypothesis import given, settings, strategies as st

from actors.protocol.record import Record
from actors.protocol.version import Version
from actors.store.entries import PARTITION_SLOT, TOMBSTONE_SIZE, VALUE, entry_size
from actors.store.keyspace import DEADLINE, Keyspace
from actors.store.sizing import ENTRY_OVERHEAD


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


# --- the partition index: built on first use, maintained from then on ------------------


def _random_ops(ks: Keyspace, rng: random.Random, steps: int, start: int = 0) -> None:
    """Sets, deletes and expiries (leaving tombstones when enabled), purges and merges (of
    tombstones too, when enabled)."""
    from actors.protocol.record import Record
    from actors.protocol.version import Version

    for step in range(start, start + steps):
        key = f"k{rng.randrange(300)}"
        wall = step / 10
        version = Version(step, rng.randrange(3), rng.choice(["n1", "n2"]))
        op = rng.random()
        if op < 0.45:
            deadline = rng.choice([None, None, wall + rng.randrange(1, 30)])
            ks.set(key, "v" * rng.randrange(20), deadline, version, ("n1", "n2"))
        elif op < 0.65:
            ks.delete(key, wall, version, wall + rng.randrange(1, 50))
        elif op < 0.75:
            ks.expire_if_due(key, wall)
        elif op < 0.85:
            ks.purge_tombstones(wall)
        elif op < 0.95 and ks.tombstone_ttl > 0:
            ks.apply(Record(key, None, None, version, wall + 20), wall)
        else:
            ks.get(key, wall)


def _expected_used_bytes(ks: Keyspace) -> int:
    from actors.store.keyspace import PARTITION_SLOT, TOMBSTONE_SIZE, VALUE, entry_size

    total = sum(entry_size(k, e[VALUE], e[DEADLINE]) for k, e in ks._entries.items())
    total += sum(TOMBSTONE_SIZE + len(k) for k in ks._tombstones)
    if ks.partition_indexed:
        total += PARTITION_SLOT * (len(ks._entries) + len(ks._tombstones))
    return total


def _brute_partitions(ks: Keyspace) -> list[set[str]]:
    from actors.store.partitions import partition_of

    parts: list[set[str]] = [set() for _ in range(ks.partitions)]
    for key in [*ks._entries, *ks._tombstones]:
        parts[partition_of(key, ks.partitions)].add(key)
    return parts


def test_a_single_node_never_builds_the_partition_index() -> None:
    ks = Keyspace(partitions=16, tombstone_ttl=5.0)
    _random_ops(ks, random.Random(1), 2000)
    assert not ks.partition_indexed
    assert ks.used_bytes == _expected_used_bytes(ks)


def test_partition_index_built_late_equals_one_maintained_from_the_start() -> None:
    for tombstone_ttl in (0.0, 5.0):
        for seed in range(5):
            eager = Keyspace(partitions=16, tombstone_ttl=tombstone_ttl)
            assert eager.partition_sizes() == [0] * 16  # builds the (empty) index now
            lazy = Keyspace(partitions=16, tombstone_ttl=tombstone_ttl)
            _random_ops(eager, random.Random(seed), 3000)
            _random_ops(lazy, random.Random(seed), 3000)
            assert eager.partition_indexed and not lazy.partition_indexed
            assert bool(lazy._tombstones) == (tombstone_ttl > 0)
            assert lazy.used_bytes < eager.used_bytes or len(eager._entries) + len(eager._tombstones) == 0
            for p in range(16):
                assert lazy.digest(p) == eager.digest(p)  # builds lazy's index
                if tombstone_ttl == 0:
                    # No tombstones: the same order, not just the same keys.
                    assert lazy.listing(p) == eager.listing(p)
                else:
                    assert sorted(lazy.listing(p)) == sorted(eager.listing(p))
            assert lazy.partition_sizes() == eager.partition_sizes()
            assert lazy.used_bytes == eager.used_bytes == _expected_used_bytes(lazy)
            assert [set(lazy.partition_keys(p)) for p in range(16)] == _brute_partitions(lazy)


def test_partition_index_is_maintained_after_a_lazy_build() -> None:
    rng = random.Random(3)
    ks = Keyspace(partitions=8, tombstone_ttl=5.0)
    _random_ops(ks, rng, 1000)
    ks.partition_sizes()
    for round_ in range(10):
        _random_ops(ks, rng, 300, start=1000 + 300 * round_)
        assert [set(ks.partition_keys(p)) for p in range(8)] == _brute_partitions(ks)
        assert ks.used_bytes == _expected_used_bytes(ks)
        for p in range(8):
            listing = ks.listing(p)
            assert len({key for key, _ in listing}) == len(listing)
            assert {key: v for key, v in listing} == {
                key: ks.newest_version(key) for key in ks.partition_keys(p)
            }


def test_drop_partition_on_first_use_forgets_exactly_that_partition() -> None:
    ks = Keyspace(partitions=8, tombstone_ttl=5.0)
    _random_ops(ks, random.Random(4), 2000)
    before = _brute_partitions(ks)
    assert not ks.partition_indexed
    dropped = ks.drop_partition(3)
    assert dropped == len(before[3]) > 0
    after = _brute_partitions(ks)
    assert after[3] == set() and after[:3] + after[4:] == before[:3] + before[4:]
    assert ks.partition_sizes()[3] == 0 and ks.digest(3) == 0 and ks.listing(3) == ()
    assert ks.used_bytes == _expected_used_bytes(ks)
    assert ks.volatile_count == sum(1 for e in ks._entries.values() if e[DEADLINE] is not None)


# --- entries: exact tuples the GC stops tracking, shared meta ----------------------------


def test_plain_entries_are_exact_tuples_of_five_fields() -> None:
    import sys

    from actors.store.keyspace import VALUE, entry_size, entry_version
    from actors.store.sizing import VOLATILE_OVERHEAD
    from actors.protocol.version import Version

    ks = Keyspace()
    ks.set("k", b"v", None, Version(5, 0, "n1"), ("n1", "n2"))
    plain = ks._entries["k"]
    assert type(plain) is tuple and plain == (b"v", 5, 0, ("n1", ("n1", "n2")), None)
    assert sys.getsizeof(plain) <= 80  # five items and CPython's headers: 80 B, as four
    assert entry_version(plain) == Version(5, 0, "n1")
    assert ks.used_bytes == entry_size("k", b"v")
    ks.set("k", b"w", 50.0, Version(6, 0, "n1"), ("n1", "n2"))
    timed = ks._entries["k"]
    assert type(timed) is tuple and timed[DEADLINE] == 50.0 and ks.volatile_count == 1
    assert ks.used_bytes == entry_size("k", b"w") + VOLATILE_OVERHEAD
    assert ks.record("k", 0.0) is not None and ks.record("k", 0.0).deadline == 50.0  # type: ignore[union-attr]
    ks.set("k", b"x", None, Version(7, 0, "n1"), ("n1", "n2"))
    assert ks._entries["k"][DEADLINE] is None and ks._entries["k"][VALUE] == b"x" and ks.volatile_count == 0
    assert ks.used_bytes == entry_size("k", b"x")
    assert ks.get("k", 1e9) == (b"x", True)


def test_plain_entries_are_untracked_by_the_gc_after_a_collection() -> None:
    """A full collection scans every tracked object: plain entries must not be among them
    (with a million keys, tracked entries made each full collection an ~100 ms stall).

    CPython untracks a tuple when a collection finds all its items untracked. An entry's
    meta tuple is shared by every entry of its writer and owner set: once a collection has
    untracked it, a new entry is untracked by the first collection that sees it. (Entries
    made alongside a brand-new meta tuple may be looked at before it within that
    collection and need one more.)"""
    import gc

    from actors.store.keyspace import META
    from actors.protocol.version import Version

    values = {"bytes": b"v" * 32, "str": "s" * 32, "int": 12345678901234567890, "small-int": 7, "float": 1.5}
    version = Version(1_700_000_000_000, 300, "n1")

    def fill(ks: Keyspace) -> None:
        for name, value in values.items():
            for deadline in (None, 1e12):
                ks.set(f"{name}-{deadline}", value, deadline, version, ("n1", "n2"))
        ks.set("zero-version", b"v", None)
        assert all(type(e) is tuple for e in ks._entries.values())

    ks = Keyspace()
    ks.set("warm-up-zero", b"v", None)
    ks.set("warm-up", b"v", None, version, ("n1", "n2"))
    gc.collect()
    gc.collect()  # these writers' meta tuples are untracked by now
    assert not gc.is_tracked(ks._entries["warm-up"][META]) and not gc.is_tracked(ks._entries["warm-up-zero"][META])
    fill(ks)
    assert len(ks) == 13
    gc.collect()
    assert [key for key, entry in ks._entries.items() if gc.is_tracked(entry)] == []
    # The dict itself stays tracked (an EntryDict): an exact dict would be untracked now and
    # re-tracked into the youngest generation by the next write, all its values traversed
    # by the next young collections.
    assert gc.is_tracked(ks._entries)

    fresh = Keyspace()
    fill(fresh)  # new meta tuples (one keyspace's), as young as the entries
    fresh.set("n9-writer", b"v", 5.0, Version(1, 0, "n9"), tuple(["n9"]))  # a new owner-set tuple too
    for _ in range(3):  # one collection per level of new tuples, at most
        gc.collect()
    assert [key for key, entry in fresh._entries.items() if gc.is_tracked(entry)] == []

    # A value that is itself a container stays tracked, as does its entry: nothing to untrack.
    fresh.set("list", [1, 2], None, version, ("n1", "n2"))
    gc.collect()
    assert gc.is_tracked(fresh._entries["list"])


def test_tracked_entries_read_like_plain_ones() -> None:
    import gc

    from actors.store.eviction import make_evictor
    from actors.store.keyspace import META, VALUE, VLOGICAL, VWALL, TrackedEntry, entry_replicas, entry_version
    from actors.protocol.version import Version

    plain, tracked = Keyspace(), Keyspace(max_memory=10**9, evictor=make_evictor("allkeys-lfu", random.Random(1)))
    for ks in (plain, tracked):
        ks.set("a", b"v", None, Version(1, 2, "n1"), ("n1", "n2"))
        ks.set("b", "w", 10.0, Version(3, 4, "n2"), ("n2",))
    gc.collect()
    for key in ("a", "b"):
        p, t = plain._entries[key], tracked._entries[key]
        assert type(t) is TrackedEntry and gc.is_tracked(t)
        assert len(t) == len(p) == 5 and tuple(t) == p
        assert [t[i] for i in (VALUE, VWALL, VLOGICAL, META, DEADLINE)] == list(p)
        assert entry_version(t) == entry_version(p) and entry_replicas(t) == entry_replicas(p)
        assert tracked.record(key, 0.0) == plain.record(key, 0.0)
    assert entry_replicas(plain._entries["b"]) == ("n2",) and entry_version(plain._entries["b"]) == Version(3, 4, "n2")


def test_entries_share_one_meta_per_writer_and_owner_set() -> None:
    from actors.store.keyspace import META, entry_replicas, entry_version
    from actors.protocol.version import Version

    ks = Keyspace()
    for i in range(10):
        owners = ("n1", "n2") if i % 2 else ("n2", "n3")
        ks.set(f"k{i}", i, None, Version(i, 0, "n1" if i < 5 else "n2"), tuple(owners))
    entries = [ks._entries[f"k{i}"] for i in range(10)]
    assert len({id(e[META]) for e in entries}) == 4
    assert [entry_version(e) for e in entries] == [Version(i, 0, "n1" if i < 5 else "n2") for i in range(10)]
    assert [entry_replicas(e) for e in entries] == [("n1", "n2") if i % 2 else ("n2", "n3") for i in range(10)]


def test_tracked_entries_keep_their_eviction_fields_across_deadline_changes() -> None:
    from actors.store.eviction import make_evictor
    from actors.store.keyspace import TrackedEntry
    from actors.protocol.version import Version

    ks = Keyspace(max_memory=10**9, evictor=make_evictor("allkeys-lru", random.Random(1)))
    ks.set("a", 1, None, Version(1, 0, "n1"))
    ks.set("b", 1, 10.0, Version(1, 1, "n1"))
    assert all(type(e) is TrackedEntry for e in ks._entries.values())
    assert ks._entries["a"][DEADLINE] is None and ks._entries["b"][DEADLINE] == 10.0
    ks.set("a", 2, 20.0, Version(2, 0, "n1"))
    ks.set("b", 2, None, Version(2, 1, "n1"))
    assert ks._entries["a"][DEADLINE] == 20.0 and ks._entries["b"][DEADLINE] is None
    keys = ks.evictor.keys  # type: ignore[union-attr]
    assert all(keys[e.pos] == k for k, e in ks._entries.items())  # type: ignore[union-attr]
    assert ks.volatile_count == 1 and ks.sample_volatile(random.Random(0), 5) == ["a"]


def test_set_all_is_set_item_by_item() -> None:
    """``set_all`` (a write's items in one pass) leaves the keyspace as ``set`` called for
    each item in turn does: repeated keys, tombstones newer and older than the write,
    deadlines coming and going, with and without partitions."""
    from hypothesis import given, settings, strategies as st

    from actors.protocol.version import Version

    keys = st.sampled_from(["a", "b", "c", "d"])
    items = st.lists(st.tuples(keys, st.integers(0, 9), st.none() | st.just(100.0)), max_size=8)
    earlier = st.lists(st.tuples(keys, st.integers(1, 30), st.booleans()), max_size=6)  # (key, wall_ms, deleted)

    @settings(max_examples=200, deadline=None)
    @given(before=earlier, write=items, wall_ms=st.integers(1, 30), partitions=st.sampled_from([None, 4]))
    def check(before: list[tuple[str, int, bool]], write: list[tuple[str, int, float | None]], wall_ms: int, partitions: int | None) -> None:
        one, many = Keyspace(partitions), Keyspace(partitions)
        for ks in (one, many):
            for key, ms, deleted in before:
                version = Version(ms, 0, "other")
                if deleted:
                    ks.delete(key, 0.0, version, 1000.0)
                else:
                    ks.set(key, "old", None, version, ("other",))
        version = Version(wall_ms, 1, "me")
        expected = [one.set(key, value, deadline, version, ("me",)) for key, value, deadline in write]
        assert many.set_all(write, version, ("me",)) == expected
        assert [many.newest_version(k) for k in "abcd"] == [one.newest_version(k) for k in "abcd"]
        assert [many.get(k, 0.0) for k in "abcd"] == [one.get(k, 0.0) for k in "abcd"]
        assert (many.used_bytes, many.volatile_count, many.tombstone_count, len(many)) == (
            one.used_bytes, one.volatile_count, one.tombstone_count, len(one)
        )

    check()


# --- used_bytes, by shape (red team s26) ---

_KEYS = ["a", "b", "c", "dd", "\u00e9"]
_VALUES = [b"", b"x", b"y" * 40, "text", "t\u00e9", 7, 1.5, None, True, [1, 2], {"k": [b"v"]}]


def _recomputed_used_bytes(ks: Keyspace) -> int:
    total = 0
    for key, entry in ks._entries.items():
        total += entry_size(key, entry[VALUE], entry[DEADLINE])
    total += sum(TOMBSTONE_SIZE + len(k) for k in ks._tombstones)
    if ks._partitions is not None:
        total += PARTITION_SLOT * (len(ks._entries) + len(ks._tombstones))
    return total


_OP = st.tuples(
    st.sampled_from(["set", "set_ttl", "set_all", "delete", "apply", "apply_tomb", "get", "expire", "partitions", "purge"]),
    st.lists(st.sampled_from(_KEYS), min_size=1, max_size=4),
    st.lists(st.sampled_from(_VALUES), min_size=1, max_size=4),
    st.integers(0, 50),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_OP, max_size=40))
def test_used_bytes_is_the_sum_of_what_is_stored(ops: list) -> None:
    """Red team s26 (the write path is being inlined for speed): after any mix of writes,
    overwrites with and without deadlines, batches repeating a key, replica records,
    tombstones, expiry and the partition index, ``used_bytes`` is exactly what the
    module's invariant says (each entry's ``entry_size``, each tombstone, each slot)."""
    ks = Keyspace(partitions=4, tombstone_ttl=0.01)
    for t, (kind, keys, values, n) in enumerate(ops):
        wall = 1000.0 + t * 0.004
        v = Version(int(wall * 1000) + n % 3, n, f"n{n % 2}")
        if kind == "set":
            ks.set(keys[0], values[0], None, v)
        elif kind == "set_ttl":
            ks.set(keys[0], values[0], wall + 0.005 * (n % 4), v)
        elif kind == "set_all":
            items = tuple((k, values[i % len(values)], (wall + 0.006) if (n + i) % 3 == 0 else None) for i, k in enumerate(keys))
            ks.set_all(items, v)
        elif kind == "delete":
            ks.delete(keys[0], wall, v, purge_at=wall + 0.01)
        elif kind == "apply":
            ks.apply(Record(keys[0], values[0], (wall + 0.01) if n % 2 else None, v), wall)
        elif kind == "apply_tomb":
            ks.apply(Record(keys[0], None, None, v, wall + 0.01), wall)
        elif kind == "get":
            for k in keys:
                ks.get(k, wall)
        elif kind == "expire":
            ks.expire_if_due(keys[0], wall)
        elif kind == "partitions":
            ks.digest(n % 4)
        elif kind == "purge":
            ks.purge_tombstones(wall)
        assert ks.used_bytes == _recomputed_used_bytes(ks), (t, kind, keys, values)
