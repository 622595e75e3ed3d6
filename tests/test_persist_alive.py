"""The "alive" mark (actors/persist/alive.py): disk data is as fresh as the last moment the
node was ready with everything on disk, not as old as its last write. Red team 2: a 3-node
cluster idle past --tombstone-ttl, then all SIGKILLed, refused every node's disk at restart
and lost every acknowledged write."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis

from actors.persist.alive import ALIVE, read_mark
from actors.store.keyspace import Keyspace
from tests.cluster import Cluster, eventually
from tests.test_persist import WALL, MemoryDisk, clock, persistence, state, v


def written(disk: MemoryDisk, appendonly: bool) -> Keyspace:
    ks = Keyspace(tombstone_ttl=60)
    p = persistence(disk, ks, appendonly=appendonly, appendfsync="always")
    p.load(ks, WALL)
    ks.set("k", "value", None, v(1))
    if appendonly:
        p.end_turn(ks, WALL, 0.0)
    else:
        p.start_save(ks, WALL, 0.0)
        assert p.save_slice(clock, float("inf"), WALL)
    return ks, p  # type: ignore[return-value]


@pytest.mark.parametrize("appendonly", [True, False])
def test_a_ready_idle_node_marks_its_disk_current_and_loads_after_a_crash(appendonly: bool) -> None:
    disk = MemoryDisk()
    ks, p = written(disk, appendonly)  # type: ignore[misc]
    assert not p.mark_alive(ks, WALL + 100, ready=False)  # warming: never marked
    assert p.mark_alive(ks, WALL + 100, ready=True)
    assert not p.mark_alive(ks, WALL + 110, ready=True)  # within tombstone_ttl / 4 of the last
    assert p.mark_alive(ks, WALL + 115, ready=True)
    mark = read_mark(disk)
    assert mark is not None and mark.current and mark.at == WALL + 115
    again = Keyspace()
    said = persistence(disk, again, appendonly=appendonly).load(again, WALL + 170)
    assert "not loaded" not in said and set(state(again)) == {"k"}
    # ... and the mark it leaves is not current: it holds the loaded data's freshness.
    mark = read_mark(disk)
    assert mark is not None and not mark.current and mark.at == WALL + 115


def test_snapshot_only_is_marked_only_with_no_change_since_the_snapshot() -> None:
    disk = MemoryDisk()
    ks, p = written(disk, appendonly=False)  # type: ignore[misc]
    ks.set("unsaved", "x", None, v(2))
    assert not p.mark_alive(ks, WALL + 100, ready=True)
    stale = Keyspace()
    assert "not loaded" in persistence(disk, stale).load(stale, WALL + 61)


def test_a_node_that_loaded_and_crashed_while_warming_is_not_fresher_for_its_new_log_blocks() -> None:
    """The red team's warning: the old loaded records ride along with the fresh blocks a
    warming node logs; their freshness stays the loaded data's until the node is ready."""
    disk = MemoryDisk()
    written(disk, appendonly=True)
    warming = Keyspace(tombstone_ttl=60)
    p = persistence(disk, warming, appendonly=True, appendfsync="always")
    p.load(warming, WALL + 30)  # loaded (30 s old), warming begins
    warming.set("merged", "from a peer", None, v(3))
    p.end_turn(warming, WALL + 50, 1.0)  # a fresh log block while warming
    assert not p.mark_alive(warming, WALL + 50, ready=False)
    later = Keyspace()
    assert "not loaded" in persistence(disk, later, appendonly=True).load(later, WALL + 65)
    assert ALIVE not in disk.files and len(later) == 0


def test_a_damaged_mark_is_ignored() -> None:
    disk = MemoryDisk()
    written(disk, appendonly=True)
    disk.files[ALIVE] = bytearray(b"alive 1 nan 1\n")
    assert read_mark(disk) is None
    stale = Keyspace()
    assert "not loaded" in persistence(disk, stale, appendonly=True).load(stale, WALL + 61)



@pytest.mark.integration
def test_whole_cluster_killed_after_idling_past_the_tombstone_lifetime_keeps_every_write(tmp_path: Path) -> None:
    """Red team 2's reproducer, fast: --tombstone-ttl 10, idle 11 s, kill -9 all, restart all.
    A loaded machine takes seconds to start a node, and a node restarted more than the
    lifetime after its last mark rightly refuses its disk: the margin is for that."""
    tmp = tmp_path
    flags = ["--resp-port", "0", "--request-timeout", "1", "--tombstone-ttl", "10"]
    with Cluster(flags=flags, log_dir=tmp_path / "logs") as c:
        for i in (1, 2, 3):
            c.add(extra=["--dir", f"{tmp}/n{i}", "--appendonly", "yes", "--appendfsync", "always"], wait=False)
        c.wait_converged(timeout=30)
        r = redis.Redis(port=c.proc(1).resp_port, socket_timeout=5, decode_responses=True)
        keys = {f"k{i}": f"v{i}" for i in range(20)}
        for key, value in keys.items():
            assert r.set(key, value)
        assert r.hset("h", "f", "v") == 1
        time.sleep(11)
        for n in (1, 2, 3):
            c.kill(n)
        c.restart(1, wait=False)  # the one the others join through
        # Two at once, each warming while the other does: one of them stayed warming for
        # ever before the pulls counted a co-owner that turned ready (tests/test_restart_quorum.py).
        starts = [threading.Thread(target=c.restart, args=(n,), kwargs={"wait": False}) for n in (2, 3)]
        for t in starts:
            t.start()
        for t in starts:
            t.join(timeout=60)
        c.wait_converged(timeout=30)
        for n in (1, 2, 3):
            rn = redis.Redis(port=c.proc(n).resp_port, socket_timeout=5, decode_responses=True)
            eventually(lambda: rn.mget(list(keys)) == list(keys.values()) or None, 15, f"node{n} serves every key")
            assert rn.hgetall("h") == {"f": "v"}
        # Before the fix every node refused its disk and nothing was left anywhere. A node
        # whose restart took longer than the lifetime after its last mark rightly refuses.
        logs = "".join(p.read_text() for p in c.log_dir.glob("*.log"))
        assert "loaded from disk: snapshot" in logs or "loaded from disk: appendonly" in logs
