"""The simulated disk (:mod:`sim.disk`), its faults (:mod:`sim.faults`) and the checkers that
judge persistence (``lost-writes`` and ``quorum-reads`` with their at-risk intervals,
``corrupt-reads``).

The disk scenarios (``scenarios/disk-*.toml``: single-node crash-restart with each
``appendfsync`` policy, disk corruption) run over a few seeds here (the CI sweep of the
built-ins is at its time limit). Each checker is shown able to fail on a weakened run:
a lying fsync loses acknowledged writes under ``appendfsync always``; a reader that does
not check block checksums serves a flipped bit; a loader that ignores the tombstone
lifetime brings deleted keys back from an old snapshot in a cluster. Same scenario and seed: the same trace
and the same bytes on every disk."""

from __future__ import annotations

import dataclasses
import hashlib
import random
import tomllib
import types
import zlib
from pathlib import Path

import pytest

import actors.persist.blocks as blocks
import actors.persist.manager as manager
from actors.kernel.disk import DiskError
from sim.checkers import CheckContext, check_corrupt_reads
from sim.disk import SimDisk
from sim.history import OK, History
from sim.runner import Runner
from sim.scenario import Fault, ScenarioError, load_scenario, scenario_from_dict
from sim.scenario_file import dumps

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "scenarios").glob("disk-*.toml"))
pytestmark = pytest.mark.timeout(120)

def _run(scenario, seed):
    runner = Runner(scenario, seed)
    try:
        return runner, runner.run()
    finally:
        runner.close()

# --- the disk alone ------------------------------------------------------------------------

class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

def test_crash_modes_keep_what_they_say() -> None:
    clock = _Clock()
    disk = SimDisk(clock, random.Random(1))
    disk.append("log", b"durable")
    disk.sync("log")
    disk.append("log", b"-pending")
    disk.crash("keep")
    assert disk.read("log") == b"durable-pending"  # a killed process: the kernel keeps it
    disk.append("log", b"+more")
    disk.crash("lose-unsynced")
    assert disk.read("log") == b"durable-pending"  # power loss: back to the durable prefix
    for seed in range(20):
        d = SimDisk(clock, random.Random(seed))
        d.append("log", b"abc")
        d.sync("log")
        d.append("log", b"0123456789")
        d.crash("torn")
        data = d.read("log")
        assert data is not None and data.startswith(b"abc") and b"abc0123456789".startswith(data) and data != b"abc0123456789"
    with pytest.raises(ValueError):
        disk.crash("melt")

def test_background_fsync_is_durable_once_done_and_one_at_a_time() -> None:
    clock = _Clock()
    disk = SimDisk(clock, random.Random(1))
    disk.fsync_delay = 0.5
    disk.append("aof", b"one")
    assert disk.sync_soon("aof")
    assert not disk.sync_soon("aof")  # the previous one is still running
    disk.append("aof", b"two")
    clock.t = 0.4
    disk.crash("lose-unsynced")
    assert disk.read("aof") == b""  # not done yet: nothing durable
    disk.append("aof", b"one")
    assert disk.sync_soon("aof")
    disk.append("aof", b"two")
    clock.t = 1.0
    disk.crash("lose-unsynced")
    assert disk.read("aof") == b"one"  # what was there when it started

def test_full_disk_install_move_aside_and_bad_names() -> None:
    disk = SimDisk(_Clock(), random.Random(1))
    disk.full = True
    with pytest.raises(DiskError, match="No space left"):
        disk.append("x", b"data")
    disk.full = False
    disk.append("dump.tmp", b"snap")
    disk.install("dump.tmp", "dump")
    disk.crash("lose-unsynced")
    assert disk.names() == ["dump"] and disk.read("dump") == b"snap"
    assert disk.move_aside("dump", ".corrupt") == "dump.corrupt-1"
    assert disk.names() == ["dump.corrupt-1"] and disk.size("dump.corrupt-1") == 4
    with pytest.raises(DiskError):
        disk.append("../escape", b"")
    assert disk.corrupt("missing") is None

def test_disk_faults_need_a_disk_and_the_file_round_trips() -> None:
    base = {"name": "x", "nodes": 1, "replicas": 1, "faults": [{"at": 1.0, "action": "corrupt", "node": "n1"}]}
    with pytest.raises(ScenarioError, match="disk = true"):
        scenario_from_dict(base)
    with pytest.raises(ScenarioError, match="disk must be one of"):
        scenario_from_dict({**base, "disk": True, "faults": [{"at": 1.0, "action": "crash", "node": "n1", "disk": "x"}]})
    for path in SCENARIOS:
        scenario = load_scenario(str(ROOT / path))
        assert scenario.disk

        assert scenario_from_dict(tomllib.loads(dumps(scenario))) == scenario

# --- the scenarios ----------------------------------------------------------------------------

@pytest.mark.parametrize("path", SCENARIOS)
def test_disk_scenarios_hold_over_seeds(path: str) -> None:
    scenario = load_scenario(str(ROOT / path))
    for seed in (1, 2, 3):
        runner, result = _run(scenario, seed)
        assert result.violations == [], (path, seed, [v.message for v in result.violations[:3]])
        assert result.ops["ok"] > 300
        crashes = [f for _t, _n, e, f in runner.host.trace if e == "disk-crash"]
        assert crashes
        if "crash-no" in path:
            # without fsyncs a power loss does lose bytes: the at-risk excuse is exercised
            assert any(f["lost_bytes"] > 0 for f in crashes)
        if "always" in path:
            assert not runner.at_risk  # nothing excused: every acked write must survive

def test_a_hint_older_than_the_tombstone_lifetime_is_dropped_not_delivered() -> None:
    """Seed 10 (red team 2): a hint of k80's write for the down n3 reached it after the
    acknowledged delete had reached every owner and every tombstone was purged (2 s), and
    read repair spread it back; hints past the tombstone lifetime are now dropped."""
    runner, result = _run(load_scenario(str(ROOT / "scenarios/disk-partition-hashes.toml")), 10)
    assert result.violations == [], [v.message for v in result.violations[:3]]
    expired = [f for _t, _n, e, f in runner.host.trace if e == "hints-expired"]
    assert expired and all(f["dropped"] > 0 for f in expired), expired


def test_a_lying_fsync_loses_acked_writes_and_the_checkers_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    original = SimDisk.__init__

    def lying(self: SimDisk, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)
        self.fsync_noop = True

    monkeypatch.setattr(SimDisk, "__init__", lying)
    _runner, result = _run(load_scenario(str(ROOT / "scenarios/disk-crash-always.toml")), 1)
    checkers = {v.checker for v in result.violations}
    assert "lost-writes" in checkers, [v.message for v in result.violations[:3]]

def test_an_old_snapshot_loaded_after_the_tombstones_are_purged_brings_deleted_keys_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """disk-cluster-old-snapshot with a loader that ignores the tombstone lifetime (the saved
    one read as 0): the restarted node loads values deleted since, and ``resurrection``
    fires. (The same seed holds with the real loader: test_disk_scenarios_hold_over_seeds.)"""
    original = manager.read_snapshot

    def no_lifetime(data: bytes):  # type: ignore[no-untyped-def]
        header, records = original(data)
        return {**header, "tombstone_ttl": 0.0}, records

    monkeypatch.setattr(manager, "read_snapshot", no_lifetime)
    _runner, result = _run(load_scenario(str(ROOT / "scenarios/disk-cluster-old-snapshot.toml")), 1)
    assert "resurrection" in {v.checker for v in result.violations}


def _corrupt_log_late():
    scenario = load_scenario(str(ROOT / "scenarios/disk-corruption.toml"))
    return dataclasses.replace(
        scenario,
        duration=4.0,
        faults=(
            Fault(3.0, "corrupt", {"node": "n1", "file": "log"}),
            Fault(3.0, "crash", {"node": "n1"}),
            Fault(3.2, "restart", {"node": "n1"}),
        ),
    )

def test_unchecked_blocks_serve_a_flipped_bit_and_corrupt_reads_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same runs with the real reader: the damaged block is cut, nothing is flagged."""
    scenario = _corrupt_log_late()
    hit = None
    unchecked = types.SimpleNamespace(crc32=lambda *a: 0, compress=zlib.compress, decompressobj=zlib.decompressobj, error=zlib.error)
    with monkeypatch.context() as m:
        m.setattr(blocks, "zlib", unchecked)
        for seed in range(1, 13):
            _runner, result = _run(scenario, seed)
            if any(v.checker == "corrupt-reads" for v in result.violations):
                hit = seed
                break
    assert hit is not None, "no seed served the flipped bit with checksums off"
    _runner, result = _run(scenario, hit)
    assert result.violations == []
    assert any("corrupt" in f for f in result.faults)

def test_corrupt_reads_flags_another_keys_value_and_an_unwritten_one() -> None:
    history = History()
    w = history.invoke(0, "n1", "set", "k1", "one", 0.0, value="v1")
    history.complete(w, OK, 0.1)
    r1 = history.invoke(0, "n1", "get", "k2", "one", 0.2)
    history.complete(r1, OK, 0.3, value="v1", found=True)
    r2 = history.invoke(0, "n1", "get", "k1", "one", 0.4)
    history.complete(r2, OK, 0.5, value="v0", found=True)
    r3 = history.invoke(0, "n1", "get", "k1", "one", 0.6)
    history.complete(r3, OK, 0.7, value="v1", found=True)
    ctx = CheckContext(history=history, final={}, replicas=1, write_default="one", read_default="one", skew_bound=0.0)
    assert [v.message.split(" served")[0] for v in check_corrupt_reads(ctx)] == ["read op 1", "read op 2"]

# --- determinism ----------------------------------------------------------------------------

def _disk_digest(runner: Runner) -> str:
    h = hashlib.sha256()
    for node, disk in sorted(runner.host.disks.items()):
        for name in disk.names():
            h.update(f"{node}/{name}\0".encode() + (disk.read(name) or b""))
    return h.hexdigest()

def test_same_scenario_and_seed_same_trace_and_same_disk_bytes() -> None:
    scenario = load_scenario(str(ROOT / "scenarios/disk-corruption.toml"))
    a_runner, a = _run(scenario, 3)
    b_runner, b = _run(scenario, 3)
    assert a.trace_sha256 == b.trace_sha256 and a.faults == b.faults
    assert _disk_digest(a_runner) == _disk_digest(b_runner)
    _c_runner, c = _run(scenario, 4)
    assert c.trace_sha256 != a.trace_sha256

def test_a_full_disk_stops_the_log_and_answers_nothing_it_could_not_log() -> None:
    """``appendfsync always`` and a full disk: the store stops rather than answer writes it
    could not log (clients time out: indefinite); after a power loss and a restart every
    acknowledged write is still there."""
    scenario = load_scenario(str(ROOT / "scenarios/disk-crash-always.toml"))
    scenario = dataclasses.replace(
        scenario,
        faults=(
            Fault(2.0, "disk-full", {"node": "n1", "duration": 1.0}),
            Fault(5.0, "crash", {"node": "n1", "disk": "lose-unsynced"}),
            Fault(5.5, "restart", {"node": "n1"}),
        ),
    )
    _runner, result = _run(scenario, 1)
    assert result.ops["timeout"] > 0 and result.ops["ok"] > 300
    assert result.violations == []


def test_a_slow_fsync_under_always_keeps_the_node_busy() -> None:
    """50 ms fsyncs for 3 s under ``appendfsync always``: every write waits for one, so the
    node completes fewer requests in the same run, and loses nothing."""
    scenario = dataclasses.replace(load_scenario(str(ROOT / "scenarios/disk-crash-always.toml")), faults=())
    _r, fast = _run(scenario, 1)
    slow_scenario = dataclasses.replace(scenario, faults=(Fault(1.0, "slow-fsync", {"node": "n1", "delay": 0.05, "duration": 3.0}),))
    _r, slow = _run(slow_scenario, 1)
    assert slow.ops["ok"] < fast.ops["ok"] * 0.9, (slow.ops, fast.ops)
    assert slow.violations == [] and fast.violations == []
