"""``python -m runtime.node --trace FILE`` writes the simulator's trace schema."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from runtime.client import Client
from sim.latency import replication_latencies
from runtime.local_cluster import NodeProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_two_nodes_trace_writes_and_replica_applies(tmp_path: Path) -> None:
    fast = ("--heartbeat-interval", "0.1", "--replicas", "2")
    a = NodeProcess("node1", "--trace", str(tmp_path / "n1.jsonl"), *fast)
    b = None
    try:
        b = NodeProcess("node2", a.addr, "--trace", str(tmp_path / "n2.jsonl"), *fast)
        deadline = time.monotonic() + 10
        with Client(a.addr) as client:
            while client.stats()["cluster"]["members"].get("node2", {}).get("status") != "ready":
                assert time.monotonic() < deadline, "node2 never became ready"
                time.sleep(0.05)
            for i in range(50):
                client.set(f"k{i}", i)
        assert a.terminate() == 0
        assert b.terminate() == 0
    finally:
        a.kill()
        if b is not None:
            b.kill()
    events = []
    for name in ("n1.jsonl", "n2.jsonl"):
        for line in (tmp_path / name).read_text().splitlines():
            event = json.loads(line)
            assert {"t", "node", "kind"} <= set(event)
            events.append(event)
    events.sort(key=lambda e: e["t"])
    writes = [e for e in events if e["kind"] == "write"]
    assert len(writes) == 50 and all(e["node"] == "node1" for e in writes)
    applies = {(e["node"], e["key"]) for e in events if e["kind"] == "apply"}
    assert all((node, f"k{i}") in applies for node in ("node1", "node2") for i in range(50))
    trace = [(e.pop("t"), e.pop("node"), e.pop("kind"), e) for e in events]
    latencies = replication_latencies(trace)
    assert len(latencies) == 100
    assert all(0 <= ms < 1000 for ms in latencies)
