"""Persistence's sans-IO parts in process: snapshots (point in time, round trip, damage),
the append-only log (torn tails, corruption, generations), save rules; on an in-memory
:class:`~actors.kernel.disk.Disk` (real files and processes: tests/test_persist_real.py)."""

from __future__ import annotations

import itertools
import random
from typing import Callable

import pytest
from hypothesis import given, settings, strategies as st

from actors.kernel.disk import DiskError
from actors.persist.aof import LogCorrupt, log_name
from actors.persist.blocks import Corrupt, Truncated
from actors.persist.manager import SNAPSHOT, PersistConfig, Persistence, SaveRefused
from actors.persist.snapshot import read_snapshot
from actors.protocol.version import Version
from actors.store.keyspace import Keyspace, entry_version

WALL = 1_800_000_000.0


class MemoryDisk:
    """The Disk port over a dict; ``fail_appends`` makes every append raise (a full disk)."""

    def __init__(self) -> None:
        self.files: dict[str, bytearray] = {}
        self.synced: list[str] = []
        self.fail_appends = False
        self.pending: list[tuple[str, str, Callable[[DiskError | None], None]]] = []

    def names(self) -> list[str]:
        return sorted(self.files)

    def read(self, name: str) -> bytes | None:
        data = self.files.get(name)
        return None if data is None else bytes(data)

    def append(self, name: str, data: bytes) -> None:
        if self.fail_appends:
            raise DiskError(f"cannot write {name}: No space left on device")
        self.files.setdefault(name, bytearray()).extend(data)

    def sync(self, name: str) -> None:
        self.synced.append(name)

    def sync_soon(self, name: str) -> bool:
        self.synced.append(name)
        return True

    def truncate(self, name: str, size: int) -> None:
        del self.files[name][size:]

    def install(self, tmp: str, name: str) -> None:
        self.files[name] = self.files.pop(tmp)

    def install_soon(self, tmp: str, name: str, done: Callable[[DiskError | None], None]) -> None:
        """Held until :meth:`finish_installs` (a real disk's thread finishing later)."""
        self.pending.append((tmp, name, done))

    def finish_installs(self, error: DiskError | None = None) -> None:
        for tmp, name, done in self.pending:
            if error is None:
                self.install(tmp, name)
            done(error)
        self.pending.clear()

    def settle(self) -> None:
        for tmp, name, _ in self.pending:
            self.install(tmp, name)
        self.pending.clear()

    def move_aside(self, name: str, suffix: str) -> str:
        aside = next(f"{name}{suffix}-{n}" for n in itertools.count(1) if f"{name}{suffix}-{n}" not in self.files)
        self.files[aside] = self.files.pop(name)
        return aside

    def remove(self, name: str) -> None:
        self.files.pop(name, None)

    def size(self, name: str) -> int:
        return len(self.files.get(name, b""))


def v(n: int, node: str = "n1") -> Version:
    return Version(int(WALL * 1000) - 10_000_000 + n, 0, node)


def state(ks: Keyspace) -> dict[str, tuple]:
    """Everything a keyspace holds, as comparable values."""
    values, tombs = ks.all_keys()
    out = {}
    for key in values + tombs:
        entry, tomb = ks.peek(key)
        if entry is not None:
            out[key] = ("v", entry[0], entry[4], entry_version(entry), entry[3][1])
        else:
            out[key] = ("t", tomb)
    return out


def filled(n: int, tombstone_ttl: float = 60.0, seed: int = 1) -> Keyspace:
    """``n`` keys: values without and with (future) deadlines, and tombstones."""
    rng = random.Random(seed)
    ks = Keyspace(tombstone_ttl=tombstone_ttl)
    for i in range(n):
        kind = rng.random()
        key = f"k{i}"
        if kind < 0.5:
            ks.set(key, {"i": i, "s": "x" * (i % 7)}, None, v(i), ("n1", "n2"))
        elif kind < 0.8:
            ks.set(key, f"value-{i}", WALL + 1000 + i, v(i))
        else:
            ks.set(key, i, None, v(i))
            ks.delete(key, WALL, v(n + i), WALL + 500)
    return ks


def persistence(disk: MemoryDisk, ks: Keyspace, **config: object) -> Persistence:
    return Persistence(disk, PersistConfig(**config), ks, "n1")  # type: ignore[arg-type]


def clock() -> float:
    return 0.0


def test_snapshot_round_trip_100k_keys_with_ttls_and_tombstones() -> None:
    ks = filled(100_000)
    assert ks.tombstone_count > 10_000 and ks.volatile_count > 10_000
    disk = MemoryDisk()
    p = persistence(disk, ks)
    p.start_save(ks, WALL, 0.0)
    slices = 0
    while not p.save_slice(clock, 0.0, WALL):  # a zero budget: one block per slice
        slices += 1
    assert slices > 50 and p.last_status == "ok"
    assert SNAPSHOT in disk.files and not any(n.endswith(".tmp") for n in disk.files)
    loaded = Keyspace()
    said = persistence(disk, loaded).load(loaded, WALL + 1)
    assert "snapshot 100000 records" in said
    assert state(loaded) == state(ks)
    assert loaded.volatile_count == ks.volatile_count and loaded.used_bytes == ks.used_bytes


def test_load_drops_expired_values_and_purged_tombstones() -> None:
    ks = Keyspace(tombstone_ttl=60)
    ks.set("live", 1, WALL + 100, v(1))
    ks.set("gone", 2, WALL + 10, v(2))
    ks.set("t", 3, None, v(3))
    ks.delete("t", WALL, v(4), WALL + 20)
    disk = MemoryDisk()
    p = persistence(disk, ks)
    p.start_save(ks, WALL, 0.0)
    p.save_slice(clock, 1.0, WALL)
    loaded = Keyspace()
    persistence(disk, loaded).load(loaded, WALL + 15)
    assert set(state(loaded)) == {"live", "t"}
    loaded = Keyspace()
    persistence(disk, loaded).load(loaded, WALL + 25)
    assert set(state(loaded)) == {"live"}


def test_snapshot_is_the_keyspace_when_the_capture_began() -> None:
    """Writes, deletes, expiries and new keys between slices do not leak into the file."""
    ks = filled(5_000, seed=2)
    before = state(ks)
    disk = MemoryDisk()
    p = persistence(disk, ks)
    p.start_save(ks, WALL, 0.0)
    rng = random.Random(3)
    n = 0
    while not p.save_slice(clock, 0.0, WALL):
        for _ in range(20):
            n += 1
            i = rng.randrange(6_000)
            op = rng.random()
            if op < 0.4:
                ks.set(f"k{i}", ("new", n), None, v(100_000 + n))
            elif op < 0.7:
                ks.delete(f"k{i}", WALL, v(100_000 + n), WALL + 30)
            else:
                ks.expire_if_due(f"k{i}", WALL + 10**6)
    assert state(ks) != before
    loaded = Keyspace()
    persistence(MemoryDisk(), loaded)  # (a tap of its own: loading must not count as changes)
    header, records = read_snapshot(bytes(disk.files[SNAPSHOT]))
    for record, replicas in records:
        loaded.restore(record, replicas, WALL)
    assert state(loaded) == before


def _saved(n: int = 1_000) -> tuple[MemoryDisk, dict[str, tuple]]:
    ks = filled(n, seed=4)
    disk = MemoryDisk()
    p = persistence(disk, ks)
    p.start_save(ks, WALL, 0.0)
    while not p.save_slice(clock, 0.0, WALL):
        pass
    return disk, state(ks)


@settings(max_examples=20, deadline=None)
@given(st.data())
def test_damaged_snapshot_is_refused_moved_aside_never_loaded(data: st.DataObject) -> None:
    disk, _ = _saved()
    blob = bytearray(disk.files[SNAPSHOT])
    if data.draw(st.booleans(), label="truncate"):
        cut = data.draw(st.integers(0, len(blob) - 1), label="cut")
        del blob[cut:]
    else:
        at = data.draw(st.integers(0, len(blob) - 1), label="at")
        blob[at] ^= data.draw(st.integers(1, 255), label="xor")
    disk.files[SNAPSHOT] = blob
    with pytest.raises((Truncated, Corrupt)):
        read_snapshot(bytes(blob))
    ks = Keyspace()
    said = persistence(disk, ks).load(ks, WALL)
    assert "damaged" in said and len(ks) == 0 and ks.tombstone_count == 0
    assert SNAPSHOT not in disk.files and bytes(disk.files[f"{SNAPSHOT}.corrupt-1"]) == bytes(blob)


def _logged(turns: int = 30) -> tuple[MemoryDisk, list[dict[str, tuple]]]:
    """A node with --appendonly writing ``turns`` turns; the state after each turn."""
    disk = MemoryDisk()
    ks = Keyspace()
    p = persistence(disk, ks, appendonly=True, appendfsync="always")
    p.load(ks, WALL)
    states = [state(ks)]
    for t in range(turns):
        for j in range(5):
            ks.set(f"k{(t * 5 + j) % 40}", [t, j], WALL + 1000 if j % 2 else None, v(t * 10 + j))
        ks.delete(f"k{t % 40}", WALL, v(t * 10 + 9))
        p.end_turn(ks, WALL, float(t))
        states.append(state(ks))
    return disk, states


def test_log_replays_every_turn_and_always_fsyncs_each() -> None:
    disk, states = _logged()
    assert disk.synced.count(log_name(1)) == 31  # the new log's header, then every turn
    ks = Keyspace()
    said = persistence(disk, ks, appendonly=True).load(ks, WALL)
    assert "appendonly.1.aof 30 records" not in said  # per-key records, 6 per turn
    assert state(ks) == states[-1]


def _block_starts(blob: bytes) -> list[int]:
    import struct

    starts, at = [], 8
    while at < len(blob):
        starts.append(at)
        at += 10 + struct.unpack_from("<I", blob, at + 2)[0]
    return starts


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_torn_last_write_is_truncated_and_the_rest_loaded(data: st.DataObject) -> None:
    disk, states = _logged()
    name = log_name(1)
    blob = bytes(disk.files[name])
    last = _block_starts(blob)[-1]
    if data.draw(st.booleans(), label="cut"):
        torn = blob[: data.draw(st.integers(last + 1, len(blob) - 1), label="at")]
    else:  # whole in length, garbage in content (a write that never reached the platter)
        at = data.draw(st.integers(last + 10, len(blob) - 1), label="at")
        torn = blob[:at] + bytes([blob[at] ^ 0xFF]) + blob[at + 1 :]
    disk.files[name] = bytearray(torn)
    ks = Keyspace()
    said = persistence(disk, ks, appendonly=True).load(ks, WALL)
    assert "torn tail truncated" in said
    assert state(ks) == states[-2]
    assert bytes(disk.files[name]) == blob[:last]


def test_corruption_before_the_last_block_stops_the_load_naming_the_offset() -> None:
    disk, _ = _logged()
    name = log_name(1)
    blob = bytearray(disk.files[name])
    middle = _block_starts(bytes(blob))[10]
    blob[middle + 12] ^= 0x55
    disk.files[name] = blob
    ks = Keyspace()
    with pytest.raises(LogCorrupt) as caught:
        persistence(disk, ks, appendonly=True).load(ks, WALL)
    assert caught.value.offset == middle and f"offset {middle}" in str(caught.value)


def logging_node(keys: int, prefix: str) -> tuple[MemoryDisk, Keyspace, Persistence]:
    """A node with --appendonly yes that wrote ``keys`` keys ``<prefix><i>`` in one turn."""
    disk = MemoryDisk()
    ks = Keyspace()
    p = persistence(disk, ks, appendonly=True)
    p.load(ks, WALL)
    for i in range(keys):
        ks.set(f"{prefix}{i}", i, None, v(i))
    p.end_turn(ks, WALL, 0.0)
    return disk, ks, p


def test_rewrite_rotates_the_log_and_a_crash_before_install_loses_nothing() -> None:
    disk, ks, p = logging_node(100, "a")
    p.start_save(ks, WALL, 0.0)  # gen 2 begins now
    assert p.gen == 2 and log_name(2) in disk.files
    p.save_slice(clock, 0.0, WALL)  # part of the snapshot only: the "crash" comes before install
    for i in range(50):
        ks.set(f"a{i}", -i, None, v(1000 + i))
        ks.delete(f"a{99 - i}", WALL, v(2000 + i))
    p.end_turn(ks, WALL, 1.0)
    crashed = MemoryDisk()
    crashed.files = {k: bytearray(b) for k, b in disk.files.items() if not k.endswith(".tmp")}
    again = Keyspace()
    persistence(crashed, again, appendonly=True).load(again, WALL)
    assert state(again) == state(ks)
    while not p.save_slice(clock, 0.0, WALL):  # now finish: gen 1 is covered and removed
        pass
    assert log_name(1) not in disk.files and SNAPSHOT in disk.files
    again = Keyspace()
    persistence(disk, again, appendonly=True).load(again, WALL)
    assert state(again) == state(ks)


def test_save_rules_and_rewrite_threshold() -> None:
    ks = Keyspace()
    disk = MemoryDisk()
    p = persistence(disk, ks, save=((60, 3),), appendonly=True, rewrite_percentage=100, rewrite_min_size=2000)
    p.load(ks, WALL)
    p.last_save = WALL
    ks.set("a", 1, None, v(1))
    ks.set("b", 1, None, v(2))
    ks.set("c", 1, None, v(3))
    assert p.due(WALL + 59) is None
    assert p.due(WALL + 60) == "3 changes in 60 seconds"
    p.start_save(ks, WALL + 60, 0.0)
    with pytest.raises(SaveRefused):
        p.start_save(ks, WALL + 60, 0.0)
    assert p.due(WALL + 1000) is None  # one at a time
    while not p.save_slice(clock, 0.0, WALL + 60):
        pass
    assert p.due(WALL + 1000) is None and p.tap.changes == 0
    for i in range(200):
        ks.set(f"big{i}", "x" * 100, None, v(10 + i))
        p.end_turn(ks, WALL, float(i))
    assert "log rewrite" in (p.due(WALL + 61) or "")


def test_a_failing_disk_fails_the_save_and_the_next_waits() -> None:
    ks = filled(2_000)
    disk = MemoryDisk()
    p = persistence(disk, ks, save=((1, 1),))
    p.start_save(ks, WALL, 0.0)
    disk.fail_appends = True
    assert p.save_slice(clock, 0.0, WALL) and p.last_status == "err" and p.capture is None
    assert SNAPSHOT not in disk.files and ks.tap is not None and p.tap.preimages is None
    ks.set("x", 1, None, v(10**6))
    assert p.due(WALL + 2) is None and p.due(WALL + 6) is not None


def test_flush_is_logged_and_kept_out_of_a_running_capture() -> None:
    disk, ks, p = logging_node(3000, "f")
    before = state(ks)
    p.start_save(ks, WALL, 0.0)
    p.save_slice(clock, 0.0, WALL)
    assert ks.clear() == 3000  # FLUSHDB mid-capture
    ks.set("after", 1, None, v(10**6))
    p.end_turn(ks, WALL, 1.0)
    while not p.save_slice(clock, 0.0, WALL):
        pass
    _, records = read_snapshot(bytes(disk.files[SNAPSHOT]))
    snap = Keyspace()
    for record, replicas in records:
        snap.restore(record, replicas, WALL)
    assert state(snap) == before
    again = Keyspace()
    persistence(disk, again, appendonly=True).load(again, WALL)
    assert state(again) == state(ks) and set(state(again)) == {"after"}


@pytest.mark.parametrize("via", ["snapshot", "log"])
def test_disk_data_older_than_the_tombstone_lifetime_is_not_loaded(via: str) -> None:
    """A key deleted after the data was written may have had its tombstone purged on every
    peer by now: the old value must not come back (docs/persistence.md)."""
    disk = MemoryDisk()
    ks = Keyspace(tombstone_ttl=60)
    p = persistence(disk, ks, appendonly=via == "log")
    p.load(ks, WALL)
    ks.set("old", "value", None, v(1))
    if via == "snapshot":
        p.start_save(ks, WALL, 0.0)
        p.save_slice(clock, 1.0, WALL)
    else:
        p.end_turn(ks, WALL, 0.0)
    fresh = Keyspace()
    persistence(disk, fresh, appendonly=via == "log").load(fresh, WALL + 59)
    assert set(state(fresh)) == {"old"} and fresh.tombstone_ttl == 60
    stale = Keyspace()
    said = persistence(disk, stale, appendonly=via == "log").load(stale, WALL + 61)
    assert "not loaded" in said and len(stale) == 0


@pytest.mark.parametrize("via", ["snapshot", "log"])
def test_data_not_loaded_for_its_age_never_comes_back_at_the_next_restart(via: str) -> None:
    """Red team 2: after a start that refused old data, the log went on at its old
    generation, so a restart soon after loaded the refused records under the new writes'
    fresh wall time (a real 3-node cluster brought 20 deleted keys back everywhere). The
    refused files are set aside and a new log begins."""
    disk = MemoryDisk()
    ks = Keyspace(tombstone_ttl=60)
    p = persistence(disk, ks, appendonly=True)
    p.load(ks, WALL)
    ks.set("deleted-meanwhile", "old", None, v(1))
    if via == "snapshot":
        p.start_save(ks, WALL, 0.0)
        assert p.save_slice(clock, float("inf"), WALL)
    else:
        p.end_turn(ks, WALL, 0.0)
    later = Keyspace(tombstone_ttl=60)
    p2 = persistence(disk, later, appendonly=True)
    assert "not loaded" in p2.load(later, WALL + 61) and len(later) == 0
    later.set("new", "x", None, v(2))
    p2.end_turn(later, WALL + 62, 1.0)
    again = Keyspace()
    persistence(disk, again, appendonly=True).load(again, WALL + 63)
    assert set(state(again)) == {"new"}
    assert any(name.startswith(SNAPSHOT if via == "snapshot" else "appendonly") and ".stale" in name for name in disk.files)


def test_a_foreground_save_takes_over_from_a_background_one() -> None:
    ks = filled(3_000)
    disk = MemoryDisk()
    p = persistence(disk, ks, appendonly=True)
    p.start_save(ks, WALL, 0.0)
    p.save_slice(clock, 0.0, WALL)
    ks.set("late", 1, None, v(10**6))
    p.abandon_save()
    assert ks.tap is not None and p.tap.preimages is None and not any(n.endswith(".tmp") for n in disk.files)
    p.start_save(ks, WALL + 1, 0.0)
    assert p.save_slice(clock, float("inf"), WALL + 1) and p.last_status == "ok"
    again = Keyspace()
    persistence(disk, again).load(again, WALL + 1)
    assert state(again) == state(ks)


def test_logs_without_their_snapshot_are_moved_aside_not_replayed() -> None:
    disk, ks, p = logging_node(100, "a")
    p.start_save(ks, WALL, 0.0)
    p.save_slice(clock, float("inf"), WALL)
    ks.set("later", 1, None, v(10**6))
    p.end_turn(ks, WALL, 1.0)
    disk.files[SNAPSHOT][-3] ^= 0xFF
    again = Keyspace()
    said = persistence(disk, again, appendonly=True).load(again, WALL)
    assert "orphaned" in said and len(again) == 0
    assert f"{log_name(2)}.orphaned-1" in disk.files and log_name(1) in disk.files  # a new one, from empty
    again2 = Keyspace()  # the next start: nothing to replay, then a write to the new log
    p3 = persistence(disk, again2, appendonly=True)
    p3.load(again2, WALL)
    again2.set("new", 1, None, v(10**7))
    p3.end_turn(again2, WALL, 2.0)
    fourth = Keyspace()
    persistence(disk, fourth, appendonly=True).load(fourth, WALL)
    assert set(state(fourth)) == {"new"}
