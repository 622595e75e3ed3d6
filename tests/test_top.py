"""``runtime.cli top``'s sans-IO core: rows from stats (rates from two samples, restarts,
unreachable members, progress) and the rendered table. The real cluster in a terminal is
tests/test_ops_cluster.py."""

from __future__ import annotations

from typing import Any

from actors.kernel.latency import LATENCY_BUCKETS_S
from runtime.client_errors import ConnectionLostError
from runtime.top import Row, Top, member_rows, render

VIEW = {
    "node1": {"addr": "127.0.0.1:8081", "status": "ready", "state": "self"},
    "node2": {"addr": "127.0.0.1:8082", "status": "warming", "state": "alive"},
    "node3": {"addr": "127.0.0.1:8083", "status": "ready", "state": "suspect"},
}


def _stats(node: str, status: str, requests: int, uptime: float, **extra: Any) -> dict[str, Any]:
    cluster = {"members": {node: {"status": status}}, "hints_pending": 4, "partitions_owned": 200,
               "partitions_pulling": 50, "partitions_handing_off": 0}
    cluster.update(extra.pop("cluster", {}))
    return {"node_id": node, "requests": requests, "uptime_s": uptime, "keys": 10, "memory_bytes": 3 << 20,
            "max_memory": 64 << 20, "cluster": cluster, **extra}


def _latency(fast: int, slow: int, slower: int) -> dict[str, Any]:
    """``request_latency`` of two commands: ``fast`` requests <= 1 ms, ``slow`` <= 5 ms, ``slower`` <= 1 s."""
    counts = [0] * (len(LATENCY_BUCKETS_S) + 1)
    counts[LATENCY_BUCKETS_S.index(0.001)] = fast
    counts[LATENCY_BUCKETS_S.index(0.005)] = slow
    half = list(counts)
    half[LATENCY_BUCKETS_S.index(1.0)] = slower
    return {"get": {"one": {"counts": counts, "sum": 0.0}}, "set": {"quorum": {"counts": half, "sum": 0.0}}}


def test_rates_progress_and_a_member_not_reached() -> None:
    first = {"node1": _stats("node1", "ready", 100, 50.0, request_latency=_latency(0, 0, 0)), "node2": _stats("node2", "warming", 7, 3.0), "node3": None}
    rows, samples = member_rows(VIEW, first, {}, now=10.0)
    assert [r.ops for r in rows] == ["-", "-", "-"]  # one sample: no rate yet
    assert rows[2] == Row("node3", "127.0.0.1:8083", "ready", "down")
    second = {
        "node1": _stats("node1", "ready", 301, 52.0, request_latency=_latency(100, 3, 2)),
        "node2": _stats("node2", "warming", 2, 0.5),  # restarted: its counters began again
        "node3": _stats("node3", "leaving", 5, 9.0, cluster={"partitions_handing_off": 12}),
    }
    rows, samples = member_rows(VIEW, second, samples, now=12.0)
    one, two, three = rows
    # 208 requests between the samples: 200 within 1 ms, 6 within 5 ms, 2 slower: the p99 is in the 5 ms bucket.
    assert (one.liveness, one.ops, one.p99, one.memory, one.hints) == ("alive", "100", "5ms", "3.0M/64.0M", "4")
    assert (two.status, two.ops, two.warming) == ("warming", "-", "75%")
    assert (three.status, three.liveness, three.warming) == ("leaving", "suspect", "handoff 12 left")
    assert (samples["node1"].t, samples["node1"].requests, sum(samples["node1"].latency or ())) == (12.0, 301, 208)


def test_render_aligns_columns_under_a_header() -> None:
    lines = render([Row("node1", "127.0.0.1:8081", "ready", "alive", keys="12345"), Row("n2", "h:1", "ready", "down")],
                   "HEADER")
    assert lines[:2] == ["HEADER", ""]
    assert lines[2].split() == ["NODE", "ADDRESS", "STATUS", "LIVENESS", "KEYS", "MEMORY", "OPS/S", "P99", "HINTS",
                                "WARMING"]
    assert lines[2].index("KEYS") == lines[3].index("12345")
    assert lines[2].index("STATUS") == lines[3].index("ready") == lines[4].index("ready")
    assert lines[4].split()[:4] == ["n2", "h:1", "ready", "down"] and not any(line.endswith(" ") for line in lines)


class _Node:
    """A stats source standing in for a member (top's asking logic, no sockets)."""

    def __init__(self, stats: dict[str, Any]) -> None:
        self.stats_reply: dict[str, Any] | None = stats
        self.closed = 0

    def stats(self) -> dict[str, Any]:
        if self.stats_reply is None:
            raise ConnectionLostError("connection refused")
        return self.stats_reply

    def close(self) -> None:
        self.closed += 1


def test_the_view_survives_losing_the_node_it_started_from() -> None:
    members = {node: {"addr": view["addr"], "status": "ready", "state": "alive"} for node, view in VIEW.items()}
    nodes = {
        view["addr"]: _Node({**_stats(node, "ready", 1, 1.0), "cluster": {"members": members}})
        for node, view in VIEW.items()
    }
    top = Top("127.0.0.1:8081", nodes.__getitem__)
    assert [r.liveness for r in top.refresh()] == ["alive", "alive", "alive"] and top.asked_via == "127.0.0.1:8081"
    nodes["127.0.0.1:8081"].stats_reply = None  # node1, the --node, goes away
    rows = top.refresh()
    assert [(r.node, r.liveness) for r in rows] == [("node1", "down"), ("node2", "alive"), ("node3", "alive")]
    assert top.asked_via == "127.0.0.1:8082" and nodes["127.0.0.1:8081"].closed == 1
    for node in nodes.values():
        node.stats_reply = None
    assert [r.liveness for r in top.refresh()] == ["down", "down", "down"] and top.asked_via == "-"
