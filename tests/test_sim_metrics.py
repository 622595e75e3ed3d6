"""The simulator's nodes speak the real node's metric names (sim/metrics.py, issue 18 item 7).

A short simulated run writes every node's metrics in virtual time; a real node's
/metrics, parsed with ``prometheus_client.parser``, has every family the simulated
nodes have (the same names, types and labels); sampling leaves the run's trace alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sim.run import run_once
from tests.cluster import Cluster
from tests.metrics_support import scrape
from tests.test_sim_cli import SMALL

#: What a simulated node must report, at least (a notebook compares these first).
CORE = (
    "actorcache_requests",
    "actorcache_request_duration_seconds",
    "actorcache_replication_duration_seconds",
    "actorcache_members",
    "actorcache_members_down",
    "actorcache_hints_pending",
    "actorcache_keys",
    "actorcache_memory_used_bytes",
)


@pytest.mark.integration
def test_a_simulated_run_speaks_the_real_nodes_metric_names(tmp_path: Path) -> None:
    """One test (one simulated run shared by its checks: the suite's time is counted)."""
    scenario = tmp_path / "small.toml"
    scenario.write_text(SMALL)
    out = tmp_path / "metrics.jsonl"
    result = run_once(str(scenario), 3, metrics=out, metrics_interval=2.0, wire=False)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    _sampled_in_virtual_time(lines)
    _real_node_has_the_same_families(lines[-1]["metrics"])
    # sampling sends nothing and changes nothing the trace shows
    assert run_once(str(scenario), 3, wire=False).trace_sha256 == result.trace_sha256


def _sampled_in_virtual_time(lines: list[dict[str, Any]]) -> None:
    nodes = {line["node"] for line in lines}
    assert nodes == {"n1", "n2", "n3"}
    times = sorted({line["t"] for line in lines})
    assert len(times) >= 5 and times[1] - times[0] == pytest.approx(2.0)
    last = {line["node"]: line["metrics"] for line in lines if line["t"] == times[-1]}
    for node, metrics in last.items():
        assert set(CORE) <= set(metrics), node
        requests = metrics["actorcache_requests"]
        assert requests["type"] == "counter" and requests["labels"] == ["command", "outcome"]
        assert sum(s["value"] for s in requests["samples"]) > 0
        histogram = metrics["actorcache_request_duration_seconds"]["samples"][0]["value"]
        assert sum(histogram["counts"]) > 0 and histogram["sum"] > 0
        info = metrics["actorcache_node_info"]["samples"]
        assert info == [{"labels": {"node_id": node}, "value": 1}]
    # n3 was cut off for two seconds: someone saw it suspect or down, or counted a hint
    partition = [line for line in lines if 1.0 < line["t"]]
    assert any(
        s["labels"]["state"] in ("suspect", "down")
        for line in partition for s in line["metrics"]["actorcache_members"]["samples"]
    ) or any(line["metrics"]["actorcache_hints_written"]["samples"][0]["value"] > 0 for line in partition)


def _real_node_has_the_same_families(sim_families: dict[str, Any]) -> None:
    with Cluster(("--metrics-port", "0")) as cluster:
        cluster.start(1)
        cluster.set(1, "k", 1)
        real = {family.name: family for family in scrape(cluster.proc(1).metrics_port).values()}
    for name, family in sim_families.items():
        assert name in real, name
        assert real[name].type == family["type"], name
        for sample in family["samples"][:1]:
            real_labels = {k for s in real[name].samples for k in s.labels if k != "le"}
            assert set(sample["labels"]) <= real_labels or not real[name].samples, name
