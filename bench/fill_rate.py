"""Fill rate of a 3-node cluster per slice of keys: does a bulk fill keep its speed as the keyspace grows?

``python -m bench.fill_rate [--keys 500000] [--slice 50000] [--slice-timeout 150] [--record]``:
three nodes (``--replicas 3``, no data directory) get ``--keys`` keys through node1's RESP
port in MSETs of 500 (``bench.warm_restart``'s fill). Reported per slice: keys/s, wall
seconds, CPU seconds of each node and the load average, plus the anti-entropy counters at
the end (rounds, keys repaired). A slice slower than ``--slice-timeout`` ends the run
(reported as not reached). Anti-entropy rounds run every second during the fill, so their
cost per round, if it grows with the keyspace, shows as a falling rate (session 24: ~40k
keys/s down to under 1k by 350k keys while each round listed whole partitions).
"""

from __future__ import annotations

import argparse
import sys
import time

import redis

from bench.results import RESULTS, machine, record
from bench.servers import conditions, cpu_seconds
from bench.warm_restart import FLAGS, mset, stats, wait_ready
from runtime.local_cluster import NodeProcess

HEADING = "Cluster fill rate per slice of keys, 3 nodes, --replicas 3 (`bench/fill_rate.py`)"


def _flags() -> list[str]:
    flags = list(FLAGS)
    i = flags.index("--save")
    return flags[:i] + flags[i + 2 :]  # no data directory: --save needs --dir


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fill_rate")
    p.add_argument("--keys", type=int, default=500_000)
    p.add_argument("--slice", type=int, default=50_000)
    p.add_argument("--slice-timeout", type=float, default=150.0)
    p.add_argument("--label", default="")
    p.add_argument("--record", action="store_true")
    args = p.parse_args(argv)
    note = conditions()
    nodes: list[NodeProcess] = []
    rows = [
        "| slice (keys) | keys/s | wall (s) | CPU s node1/node2/node3 | load |",
        "|---|---|---|---|---|",
    ]
    try:
        for nid in ("node1", "node2", "node3"):
            nodes.append(NodeProcess(nid, *[n.addr for n in nodes], *_flags(), stderr=None, start_timeout=300))
        for n in nodes:
            wait_ready(n, 60)
        time.sleep(2)
        r = redis.Redis(port=nodes[0].resp_port, socket_timeout=120)
        t0 = ts = time.monotonic()
        cpu0 = [cpu_seconds(n.proc.pid) for n in nodes]
        reached = 0
        for start in range(0, args.keys, 500):
            mset(r, {f"key:{i}": "v" * 32 for i in range(start, min(args.keys, start + 500))})
            end = min(args.keys, start + 500)
            if end % args.slice == 0 or end == args.keys:
                now = time.monotonic()
                cpu = [cpu_seconds(n.proc.pid) for n in nodes]
                load = open("/proc/loadavg").read().split()[0]
                size = end - reached
                row = (
                    f"| {reached:,}-{end:,} | {size / (now - ts):,.0f} | {now - ts:.1f} | "
                    f"{'/'.join(f'{c - c0:.1f}' for c, c0 in zip(cpu, cpu0))} | {load} |"
                )
                rows.append(row)
                print(row, flush=True)
                cpu0, ts, reached = cpu, now, end
            elif time.monotonic() - ts > args.slice_timeout:
                rows.append(f"| {reached:,}-... | not reached in {args.slice_timeout:.0f} s ({end - reached:,} keys done) | | | |")
                print(rows[-1], flush=True)
                break
        total = time.monotonic() - t0
        counters = [stats(n).get("cluster", {}) for n in nodes]
        summary = (
            f"{reached:,} keys in {total:.1f} s ({reached / total:,.0f} keys/s overall); the three nodes' "
            + ", ".join(
                f"{name} {sum(c.get(name, 0) for c in counters):,}"
                for name in ("anti_entropy_rounds", "keys_repaired", "sync_keys_listed")
            )
            + " (sync_keys_listed: counted since sub-bucket digests; 0 before)"
        )
        print(summary, flush=True)
        if args.record:
            command = "flock /tmp/bench.lock python -m bench.fill_rate " + " ".join(argv if argv is not None else sys.argv[1:])
            label = f"{args.label}: " if args.label else ""
            record(HEADING, command, "\n".join([label + machine() + f"; no CPU pinning; {note}.", "", *rows, "", summary]), RESULTS)
    finally:
        for n in nodes:
            n.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
