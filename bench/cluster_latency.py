"""A 3-node loopback cluster: write latency per consistency level, and how long a
restarted node takes to converge. ``python -m bench.cluster_latency [--record]``.

In the same run, a single node (no replication) takes the same writes, so the cluster
figures come with a ratio. Writes are sequential from one connection (latency, not
throughput: one request in flight). Convergence: after node3 is SIGKILLed and writes go
on without it, node3 restarts with the same id; we time until it reports ``ready`` and
until every key holds its latest value in node3's own copy (``inspect``, no quorum).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time

from bench.results import machine, record
from runtime.local_cluster import NodeProcess

FAST = ["--heartbeat-interval", "0.2", "--log-level", "warning"]


def start_node(node_id: str, peers: list[str], port: int = 0) -> NodeProcess:
    """One quiet node joining through ``peers`` (its stderr discarded)."""
    return NodeProcess(node_id, *peers, *FAST, port=port, stderr=subprocess.DEVNULL)


class Conn:
    """One JSON-lines connection, pipelining when asked."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def many(self, requests: list[dict]) -> list[dict]:
        self.sock.sendall(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
        return [json.loads(self.file.readline()) for _ in requests]

    def one(self, request: dict) -> dict:
        return self.many([request])[0]

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q / 100 * len(xs)))]


def write_latencies(conn: Conn, n: int, consistency: str | None, prefix: str) -> list[float]:
    out = []
    for i in range(n):
        request = {"type": "set", "key": f"{prefix}{i}", "value": "x" * 32}
        if consistency:
            request["consistency"] = consistency
        t0 = time.perf_counter()
        reply = conn.one(request)
        out.append((time.perf_counter() - t0) * 1000)
        assert reply.get("success"), reply
    return out


def wait_ready(port: int, members: int, timeout: float = 30.0) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            conn = Conn(port)
            stats = conn.one({"type": "stats"})["stats"]["cluster"]
            conn.close()
            ready = [m for m in stats["members"].values() if m["status"] == "ready" and m["state"] in ("self", "alive")]
            if stats["ready"] and len(ready) >= members:
                return time.perf_counter() - t0
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError("cluster did not become ready")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cluster_latency")
    p.add_argument("--writes", type=int, default=3000, help="sequential writes per cell")
    p.add_argument("--keys", type=int, default=20000, help="keys written around the restart")
    p.add_argument("--warmup", type=int, default=300, help="writes per consistency level before its measured ones")
    p.add_argument("--down-seconds", type=float, default=3.0, help="how long writes go on while node3 is down")
    p.add_argument("--record", action="store_true", help="append the figures to bench/RESULTS.md")
    args = p.parse_args(argv)
    nodes: list[NodeProcess] = []
    try:
        solo = start_node("solo", [])
        nodes.append(solo)
        n1 = start_node("node1", [])
        nodes.append(n1)
        n2 = start_node("node2", [n1.addr])
        nodes.append(n2)
        n3 = start_node("node3", [n1.addr, n2.addr])
        nodes.append(n3)
        wait_ready(n1.port, 3)
        wait_ready(n3.port, 3)
        rows = []
        solo_conn = Conn(solo.port)
        conn = Conn(n1.port)
        base = write_latencies(solo_conn, args.writes, None, "w")
        base = write_latencies(solo_conn, args.writes, None, "w")  # warm, then measure
        rows.append(("single node (no replication)", base))
        for level in ("one", "quorum", "all"):
            write_latencies(conn, args.warmup, level, "warm")
            rows.append((f"3 nodes, --replicas 3, consistency {level}", write_latencies(conn, args.writes, level, f"{level}-")))
        solo_conn.close()
        base_p50 = _pct(base, 50)
        table = ["| writes | p50 ms | p99 ms | p50 vs single node |", "|---|---|---|---|"]
        for name, xs in rows:
            table.append(f"| {name} | {_pct(xs, 50):.3f} | {_pct(xs, 99):.3f} | {_pct(xs, 50) / base_p50:.2f} |")
        print("\n".join(table), flush=True)

        # Restart convergence.
        batch = 500
        for start in range(0, args.keys, batch):
            conn.many([{"type": "set", "key": f"r{i}", "value": 0} for i in range(start, min(start + batch, args.keys))])
        n3.kill()
        t_kill = time.perf_counter()
        written_while_down = 0
        while time.perf_counter() - t_kill < args.down_seconds:  # keep writing while node3 is down (a batch at least)
            lo = written_while_down % args.keys
            keys = range(lo, min(lo + batch, args.keys))
            replies = conn.many([{"type": "set", "key": f"r{i}", "value": 1} for i in keys])
            assert all(r.get("success") for r in replies), replies[:2]
            written_while_down += len(keys)
        latest = {f"r{i}": (1 if i < written_while_down else 0) for i in range(args.keys)}
        if written_while_down >= args.keys:
            latest = {k: 1 for k in latest}
        t_restart = time.perf_counter()
        n3b = start_node("node3", [n1.addr, n2.addr], port=n3.port)
        nodes.append(n3b)
        wait_ready(n3b.port, 3)
        ready_s = time.perf_counter() - t_restart  # includes the process start
        c3 = Conn(n3b.port)
        keys = list(latest)
        converged_s = None
        while time.perf_counter() - t_restart < 60:
            missing = 0
            for start in range(0, len(keys), 1000):
                chunk = keys[start : start + 1000]
                for key, reply in zip(chunk, c3.many([{"type": "inspect", "key": k} for k in chunk])):
                    if not reply.get("found") or reply.get("value") != latest[key]:
                        missing += 1
            if missing == 0:
                converged_s = time.perf_counter() - t_restart
                break
            time.sleep(0.05)
        c3.close()
        conn.close()
        print(
            f"restart: {args.keys} keys ({written_while_down} overwritten while node3 was down {args.down_seconds:g} s); "
            f"node3 ready {ready_s:.2f} s after its process started, every key latest on node3 after "
            f"{converged_s if converged_s is None else round(converged_s, 2)} s"
        )
    finally:
        for node in nodes:
            node.terminate(timeout=15)
    if args.record:
        record(
            "Cluster: write latency by consistency level, restart convergence (`bench/cluster_latency.py`)",
            "python -m bench.cluster_latency " + " ".join(argv if argv is not None else sys.argv[1:]),
            f"{machine()}; 3 nodes and the single node on loopback, sequential writes from one connection, "
            f"{args.writes} per row, 32 B values.\n\n" + "\n".join(table) + "\n\n"
            f"Restart: {args.keys:,} keys written at quorum, node3 SIGKILLed, {written_while_down:,} writes "
            f"while it was down ({args.down_seconds:g} s), then restarted with the same id: ready (warmed from peers) "
            f"{ready_s:.2f} s after its process started; every key's latest value in node3's own copy "
            f"after {converged_s:.2f} s.",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
