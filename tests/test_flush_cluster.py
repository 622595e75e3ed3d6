"""FLUSHDB in a cluster (flush markers, actors/store/flush_marks.py): the keyspace rules
in process, then the simulator: a replica cut off during the flush, with hints off and
on, never brings a flushed key back; writes after the flush survive it."""

from __future__ import annotations

from typing import Any

import pytest

from actors.protocol.codec import decode_request
from actors.protocol.errors import BadRequestError
from actors.protocol.messages import Ack, Get, Inspect, MSet, Set, Value
from actors.protocol.record import Record
from actors.protocol.txn_messages import Flush
from actors.protocol.version import Version
from actors.store.flush_marks import MARKER_VALUE, marker_key, marker_keys
from actors.store.keyspace import Keyspace, entry_version
from actors.store.partitions import partition_of
from tests.test_cluster_sim import SimCluster
from tests.test_sim_checkers import violations

V = lambda wall, n="a": Version(wall, 0, n)  # noqa: E731


def _flushed() -> tuple[Keyspace, str, int]:
    ks = Keyspace(partitions=8, tombstone_ttl=60.0)
    ks.set("old", 1, None, V(10))
    ks.set("new", 2, None, V(30))
    ks.delete("gone", 0.0, V(11), 100.0)
    p = partition_of("old", 8)
    for key in marker_keys(8):
        ks.set(key, MARKER_VALUE, None, V(20))
    return ks, "old", p


def test_a_marker_forgets_older_keys_keeps_newer_and_refuses_old_records() -> None:
    ks, key, p = _flushed()
    assert ks.get("old", 0.0) == (None, False)
    assert ks.get("new", 0.0) == (2, True)
    assert ks.tombstone_count == 0
    assert not ks.set("old", 1, None, V(15))  # a hint of an old write
    assert not ks.apply(Record("old", 1, None, V(19)), 0.0)  # anti-entropy from a stale replica
    assert not ks.apply(Record("x", None, None, V(19), 50.0), 0.0)  # an old tombstone
    assert ks.newest_version("old") == V(20)  # a write stamped below the flush is re-stamped above it
    assert ks.record("old", 0.0) == Record("old", None, None, V(20), 60.0)  # reads: flushed = deleted at F
    assert ks.set("old", 3, None, V(21)) and ks.get("old", 0.0) == (3, True)
    assert (marker_key(p, 8), V(20)) in ks.listing(p)
    assert ks.record(marker_key(p, 8), 0.0) == Record(marker_key(p, 8), MARKER_VALUE, None, V(20))
    assert len(ks) == 2  # markers are not keys


def test_a_marker_travels_as_a_record_and_an_older_one_changes_nothing() -> None:
    ks = Keyspace(partitions=8, tombstone_ttl=60.0)
    ks.set("k", 1, None, V(10))
    p = partition_of("k", 8)
    assert ks.apply(Record(marker_key(p, 8), MARKER_VALUE, None, V(20)), 0.0)
    assert ks.get("k", 0.0) == (None, False)
    assert not ks.apply(Record(marker_key(p, 8), MARKER_VALUE, None, V(5)), 0.0)
    assert ks.flush_mark(p) == V(20)


def test_clients_cannot_name_a_marker_key() -> None:
    for obj in ({"type": "set", "key": "\x00flush{p1}", "value": 1}, {"type": "mget", "keys": ["a", "\x00flush{x"]}):
        with pytest.raises(BadRequestError):
            decode_request(obj)


@pytest.mark.parametrize("hints", [True, False])
def test_a_replica_cut_off_during_the_flush_brings_nothing_back(hints: bool) -> None:
    c = SimCluster(3) if hints else SimCluster(3, hint_limit=0)
    host = c.host
    try:
        host.request([MSet(tuple((f"k{i}", i) for i in range(40)), consistency="all")], node_id="n1")
        host.network.partition(["n3"], ["n1", "n2"])
        host.run_for(0.2)
        assert host.request([Flush(rid=1)], node_id="n1") == (Ack(rid=1),)
        host.request([Set("after", "kept")], node_id="n2")
        reads_before_heal = host.request([Get(f"k{i}", consistency="quorum") for i in range(40)], node_id="n1")
        assert all(r == Value(None, False) for r in reads_before_heal)
        host.network.heal()
        host.run_for(12.0)  # anti-entropy rounds (16 partitions each 0.3 s) (and hints, when on)
        for node in c.ids:
            assert c.stats(node)["keys"] == 1, (node, c.stats(node))
            assert host.request([Get("k7")], node_id=node) == (Value(None, False),)
            assert host.request([Inspect("after")], node_id=node)[0].record.value == "kept"
    finally:
        host.shutdown()


# --- the simulator's checkers --------------------------------------------------------------------------


def test_flush_partition_scenario_keeps_every_promise(seed: int = 1) -> None:
    """One seed here; ``python -m sim.sweep scenarios/flush-partition.toml --seeds 1-20``
    for more (20 seeds: none violating)."""
    from sim.scenario import load_scenario

    runners: list[Any] = []
    found = violations(load_scenario("scenarios/flush-partition.toml"), seed, prepare=runners.append)
    assert sum(1 for op in runners[0].history.ops if op.kind == "flush" and op.outcome == "ok") >= 2, "it flushed"
    assert not found, found


def _naive_flush(self: Keyspace, key: str, version: Version) -> bool:
    """What a flush would be without markers: forget what this replica holds now, older
    than the flush, and remember nothing (a stale replica's copies then win)."""
    partition = self._partition_of(key)
    for k in list(self._partition_index()[partition]):
        entry = self._entries.get(k)
        if entry is not None and entry_version(entry) <= version:
            self._remove(k, entry)
    return True


def _flush_scenario() -> Any:
    import dataclasses

    from sim.scenario import Fault, load_scenario
    from sim.workload import WorkloadSpec

    # Writes until ~2.5 s (n3 gets them), n3 cut off at 3 s, one flush at 8 s (n3 is down by
    # then: nothing is sent to it), heal at 11 s: nothing overwrites what n3 holds; no
    # hints, so only anti-entropy repairs n3.
    return dataclasses.replace(
        load_scenario("scenarios/flush-partition.toml"),
        nodes=3,
        workload=WorkloadSpec(clients=2, ops=100, rate=150.0, keys=20, read_fraction=0.3, delete_fraction=0.0),
        faults=(Fault(3.0, "partition", {"kind": "isolate", "node": "n3"}), Fault(11.0, "heal")),
        duration=14.0,
        node={"hint_limit": 0},  # anti-entropy alone must carry the flush to n3
    )


def test_a_flush_while_a_replica_is_cut_off_holds_and_a_naive_flush_fails_resurrection(monkeypatch: Any) -> None:
    """The checker can fail: the same run with the naive flush (no marker) lets n3, cut off
    during the flush, copy every flushed key back by anti-entropy; with markers, nothing."""
    assert _run_with_flush(_flush_scenario(), at=8.0) == {}
    monkeypatch.setattr(Keyspace, "_flush_mark", _naive_flush)
    found = _run_with_flush(_flush_scenario(), at=8.0)
    assert found.get("resurrection"), found


def _run_with_flush(scenario: Any, at: float) -> dict[str, list[str]]:
    """Each checker's violations of ``scenario`` with one more client request: a flush
    through n1 at ``at`` s (acknowledged)."""
    from sim.history import OK
    from sim.workload import record_reply

    def flush_at(runner: Any) -> None:
        env = runner.host.env

        def flush() -> Any:
            yield env.timeout(at)
            op = runner.history.invoke(99, "n1", "flush", "*", "default", env.now)
            future = runner.host.submit([Flush()], node_id="n1", conn=999_999)
            done = env.event()
            future.add_done_callback(lambda _f: done.succeed())
            yield done
            record_reply(op, future.result()[0], env.now)
            assert op.outcome == OK

        env.process(flush())

    return violations(scenario, 1, prepare=flush_at)
