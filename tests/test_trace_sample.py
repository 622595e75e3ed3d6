"""``--trace-sample FRACTION``: a node traces the writes of a fixed share of the keys,
the same keys on every node, and every non-write event.

The rule is restated here (CRC-32 of the key's UTF-8 bytes below ``FRACTION * 2**32``), not
imported, so a change to the node's rule fails these tests.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from pathlib import Path

import pytest

from runtime.client import Client
from runtime.local_cluster import LocalCluster
from runtime.node import parse_args
from runtime.trace_file import TraceFile

FRACTION = 0.3


def selected(key: str, fraction: float = FRACTION) -> bool:
    return zlib.crc32(key.encode("utf-8")) < fraction * 2**32


@pytest.mark.parametrize("value", ["0", "-0.5", "1.01", "nan", "inf", "-inf", "half"])
def test_bad_fractions_are_usage_errors(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(["n", "0", "--trace-sample", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and "--trace-sample" in err, err


def test_fraction_defaults_to_every_write() -> None:
    assert parse_args(["n", "0"]).trace_sample == 1.0
    assert parse_args(["n", "0", "--trace-sample", "1"]).trace_sample == 1.0
    assert parse_args(["n", "0", "--trace-sample", "1e-3"]).trace_sample == 0.001


def test_sink_drops_unselected_keyed_events_and_keeps_the_rest(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    try:
        sink = TraceFile(tmp_path / "t.jsonl", loop, sample=FRACTION)
        keys = [f"key{i}" for i in range(400)] + ["clé-ü", "\U0001f600"]
        for key in keys:
            sink(1.0, "n1", "write", {"key": key, "version": [1, 0], "replicas": ["n1"]})
            sink(1.0, "n1", "apply", {"key": key, "version": [1, 0]})
            sink(1.0, "n1", "read_repair", {"key": key, "replica": "n2"})
        sink(2.0, "n1", "view", {"changes": []})
        sink(2.0, "n1", "apply", {"version": [1, 0]})  # no key: kept, never an error in an actor's turn
        sink(2.0, "n1", "version_refused", {"peer": "n2", "versions": 1, "beyond_ms": 5})
        sink.close()
    finally:
        loop.close()
    events = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text(encoding="utf-8").splitlines()]
    want = {key for key in keys if selected(key)}
    assert 0 < len(want) < len(keys)
    for kind in ("write", "apply", "read_repair"):
        assert sorted(e["key"] for e in events if e["kind"] == kind and "key" in e) == sorted(want)
    assert [e for e in events if "key" not in e and e["kind"] == "apply"] == [{"t": 2.0, "node": "n1", "kind": "apply", "version": [1, 0]}]
    assert [e["kind"] for e in events if e["kind"] not in ("write", "apply", "read_repair")] == ["view", "version_refused"]


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_three_nodes_trace_the_same_writes_and_every_membership_event(tmp_path: Path) -> None:
    args = ["--replicas", "3", "--heartbeat-interval", "0.1", "--log-level", "warning", "--trace-sample", str(FRACTION)]
    keys = [f"k{i}" for i in range(150)]
    with LocalCluster(3, trace_dir=tmp_path, node_args=args) as cluster:
        addrs = list(cluster.addresses.values())
        for n, addr in enumerate(addrs):  # each node coordinates a third of the writes
            with Client(addr) as client:
                for key in keys[n::3]:
                    client.set(key, key)
        with Client(addrs[0]) as client:
            assert all(client.get(key) == key for key in keys)
    trace_files = cluster.trace_files
    events = [json.loads(line) for path in trace_files for line in path.read_text(encoding="utf-8").splitlines()]
    want = {key for key in keys if selected(key)}
    assert 10 < len(want) < len(keys) - 10
    writes = [e for e in events if e["kind"] == "write"]
    assert {e["key"] for e in writes} == want
    assert len({e["node"] for e in writes}) == 3  # coordinators on every node, all following one rule
    for node in cluster.ids:
        assert {e["key"] for e in events if e["kind"] == "apply" and e["node"] == node} == want, node
        kinds = {e["kind"] for e in events if e["node"] == node}
        assert {"joined", "view"} & kinds, (node, kinds)  # membership events are never sampled out
    # Every kept write has its replica applies: sampled traces still give replication latency.
    for write in writes:
        appliers = {e["node"] for e in events if e["kind"] == "apply" and e["key"] == write["key"] and e["version"] == write["version"]}
        assert appliers == set(write["replicas"]), write
