"""Prometheus metrics and health probes of real node processes (--metrics-port).

A single node and a 3-node cluster, scraped over HTTP and parsed with
``prometheus_client.parser``: every family docs/operations.md lists exists, and the
figures move when they should (a write moves the request counters and the latency
histogram, and replication latency per peer; a SIGKILLed node moves members-down on its
peers; a write while it is down is counted as a hint); /ready is 503 while a node warms
and 200 once it has; promtool (Debian's prometheus package, installed by .ci/run) accepts
the exposition.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import redis

from tests.cluster import Cluster, WriteLoad, eventually
from tests.metrics_support import ROOT, documented_metrics, http_get, scrape, value

pytestmark = pytest.mark.integration

METRICS = ("--metrics-port", "0")


@pytest.fixture
def single(metrics_node: Cluster) -> Cluster:
    """The session's metrics node (tests/conftest.py), shared with test_metrics_http."""
    return metrics_node


def test_every_documented_family_is_exposed_with_the_library_collectors(single: Cluster) -> None:
    families = scrape(single.proc(1).metrics_port)
    missing = [name for name in documented_metrics() if name not in families]
    assert missing == []
    for name in ("process_cpu_seconds", "process_resident_memory_bytes", "python_gc_collections", "python_info"):
        assert name in families or name + "_total" in families, name
    assert value(families, "actorcache_node_info", node_id="node1") == 1
    assert families["actorcache_request_duration_seconds"].type == "histogram"
    assert families["actorcache_requests_total"].type == "counter"
    assert value(families, "actorcache_event_loop_lag_seconds", "_count") > 0  # the pacer ticks every 10 ms


def test_a_write_moves_the_request_counters_and_the_latency_histogram(single: Cluster) -> None:
    port = single.proc(1).metrics_port
    before = scrape(port)
    for i in range(5):
        single.set(1, f"metrics-key-{i}", i)
    single.get(1, "metrics-key-0")
    after = scrape(port)
    moved = value(after, "actorcache_requests_total", command="set", outcome="ok") - value(
        before, "actorcache_requests_total", command="set", outcome="ok"
    )
    assert moved == 5
    count = lambda f: value(f, "actorcache_request_duration_seconds", "_count", command="set")  # noqa: E731
    assert count(after) - count(before) == 5
    assert value(after, "actorcache_request_duration_seconds", "_sum", command="set") > 0
    inf = value(after, "actorcache_request_duration_seconds", "_bucket", command="set", le="+Inf")
    assert inf == count(after)
    assert value(after, "actorcache_requests_total", command="get", outcome="ok") >= 1
    assert value(after, "actorcache_keys") >= 5
    assert value(after, "actorcache_client_bytes_received_total") > value(before, "actorcache_client_bytes_received_total")
    assert value(after, "actorcache_client_bytes_sent_total") > value(before, "actorcache_client_bytes_sent_total")
    # a scrape is not a request: it leaves the request counters alone
    again = scrape(port)
    assert value(again, "actorcache_requests_total", command="stats", outcome="ok") == value(
        after, "actorcache_requests_total", command="stats", outcome="ok"
    )
    info = redis.Redis(port=single.proc(1).resp_port, socket_timeout=10).info("stats")
    assert info["total_net_input_bytes"] >= value(after, "actorcache_client_bytes_received_total") > 0  # INFO's names
    assert info["total_net_output_bytes"] > 0


def test_an_error_is_counted_by_its_code(single: Cluster) -> None:
    port = single.proc(1).metrics_port
    before = value(scrape(port), "actorcache_requests_total", command="incr", outcome="bad_request")
    single.set(1, "not-a-number", "text")
    reply = single.request(1, {"type": "incr", "key": "not-a-number"})
    assert reply.get("success") is False
    assert value(scrape(port), "actorcache_requests_total", command="incr", outcome=reply["error"]) - before == 1


def test_health_and_ready_on_a_lone_node(single: Cluster) -> None:
    port = single.proc(1).metrics_port
    assert http_get(port, "/health")[:2] == (200, b'{"status": "ok"}\n')
    status, body, content_type = http_get(port, "/ready")
    assert (status, body) == (200, b'{"ready": true, "reason": "ready"}\n')
    assert content_type == "application/json"
    assert http_get(port, "/nope")[0] == 404


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (.ci/run installs prometheus)")
def test_promtool_accepts_the_exposition(single: Cluster) -> None:
    single.set(1, "promtool", 1)
    status, body, _ = http_get(single.proc(1).metrics_port, "/metrics")
    assert status == 200
    check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert check.returncode == 0, (check.stdout + check.stderr).decode()


def test_a_cluster_counts_replication_failures_hints_and_readiness() -> None:
    with Cluster(METRICS) as cluster:
        cluster.start(3)
        port1 = cluster.proc(1).metrics_port
        for i in range(10):
            cluster.set(1, f"replicated-{i}", i)

        def replicated() -> None:  # every replica's answer, this node's own store too (W=quorum: one may be late)
            families = scrape(port1)
            for peer in ("node1", "node2", "node3"):
                assert value(families, "actorcache_replication_duration_seconds", "_count", peer=peer) >= 10, peer

        eventually(replicated, timeout=10, what="every replica answered")
        families = scrape(port1)
        assert value(families, "actorcache_members", status="ready", state="alive") == 2
        assert value(families, "actorcache_members", status="ready", state="self") == 1
        assert value(families, "actorcache_members_down") == 0
        assert value(families, "actorcache_partitions_owned") > 0
        assert value(families, "actorcache_peer_phi", peer="node2") < 8

        port2 = cluster.proc(2).metrics_port
        sets_before = value(scrape(port2), "actorcache_requests_total", command="set", outcome="ok")
        load = WriteLoad(cluster, [1, 2], rate=50.0).start()  # scraped under load from here on
        cluster.kill(3)  # SIGKILL
        eventually(lambda: _check(scrape(port1), "actorcache_members_down", 1), timeout=20, what="node3 down on node1")
        families = scrape(port1)
        assert value(families, "actorcache_members", status="ready", state="down") == 1
        assert value(families, "actorcache_peer_phi", peer="node3") > 8  # finite: stats is JSON
        assert cluster.stats(1)["cluster"]["members"]["node3"]["phi"] <= 1000
        hints = value(families, "actorcache_hints_written_total")
        cluster.set(1, "while-node3-is-down", 1)
        after = scrape(port1)
        assert value(after, "actorcache_hints_written_total") > hints

        # A node joining while node3 is down cannot pull the partitions it shares with node3
        # from enough co-owners: it stays warming, and /ready says so.
        cluster.add("node4", wait=False)
        port4 = cluster.proc("node4").metrics_port
        eventually(lambda: _ready(port4, 503, "warming"), timeout=20, what="node4 warming")
        warming = scrape(port4)
        assert value(warming, "actorcache_ready") == 0
        assert value(warming, "actorcache_partitions_pulling") > 0  # the partitions it shares with node3
        assert http_get(port4, "/health")[0] == 200
        load.stop()
        assert load.outcomes["ack"] > 0
        assert value(scrape(port2), "actorcache_requests_total", command="set", outcome="ok") > sets_before
        cluster.restart(3, wait=False)
        eventually(lambda: _ready(port4, 200, "ready"), timeout=40, what="node4 ready once node3 is back")
        warmed = scrape(port4)
        assert value(warmed, "actorcache_ready") == 1
        assert value(warmed, "actorcache_partitions_pulling") == 0
        assert value(warmed, "actorcache_keys_streamed_total") > 0


def _check(families: dict, name: str, expected: float) -> None:
    assert value(families, name) == expected


def _ready(port: int, status: int, reason: str) -> None:
    got, body, _ = http_get(port, "/ready")
    assert (got, body) == (status, ('{"ready": %s, "reason": "%s"}\n' % (str(status == 200).lower(), reason)).encode())


def test_the_grafana_dashboard_names_documented_metrics_in_valid_promql(tmp_path: Path) -> None:
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    assert dashboard["__inputs"][0]["pluginId"] == "prometheus"  # importable: asks for its data source
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for wanted in ("ops/s by command", "p99 latency by command", "replication p99", "hints pending", "members down", "memory", "evictions"):
        assert wanted in titles, wanted
    documented = set(documented_metrics())
    for expr in exprs:
        for name in re.findall(r"actorcache_[a-z_]+", expr):
            assert name in documented or re.sub(r"_(bucket|count|sum)$", "", name) in documented, (name, expr)
    if shutil.which("promtool") is None:
        return
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:expr{i}", "expr": expr.replace("$job", ".*").replace("$instance", ".*")}
        for i, expr in enumerate(exprs)
    ]}]}
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    check = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, timeout=60)
    assert check.returncode == 0, (check.stdout + check.stderr).decode()
