"""Does steady write load over a large keyspace stall the node? Ping latency under load.

``python -m bench.write_stall [--keys 1000000] [--seconds 10] [--record]`` starts a node,
loads N keys (32 B values, no TTL), then runs :mod:`bench.loadgen` overwriting random
keys of those N (``--conns`` connections, pipeline 16) for ``--seconds`` while this
process pings the node on a connection of its own in a bounded loop. Reports ping
p50/p99/max with the node idle and under the load, their ratio, and the overwrite rate.

What it is for: a pause of the whole node (CPython's cyclic GC scanning a large heap, a
long store turn) shows up in the ping's tail, which a throughput figure hides.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from bench.expiry_stall import _pct, ping_cell
from bench.results import RESULTS, machine, record
from bench.servers import node_server
from runtime.client import Client

ROOT = Path(__file__).resolve().parent.parent


def _pings(client: Client, seconds: float, cap: int = 1_000_000) -> list[float]:
    out: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end and len(out) < cap:
        out.append(client.ping())
        time.sleep(0.0005)  # a ping every ~0.5 ms: a probe, not a load
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.write_stall")
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--seconds", type=float, default=10.0, help="of overwrite load (and of idle pings)")
    p.add_argument("--conns", type=int, default=10, help="load generator connections")
    p.add_argument("--record", action="store_true")
    p.add_argument("--results", type=Path, default=RESULTS, help=argparse.SUPPRESS)  # tests record elsewhere
    args = p.parse_args(argv)

    server = node_server("stall", resp=False)
    try:
        client = Client(f"127.0.0.1:{server.port}", timeout=30)
        t0 = time.monotonic()
        for start in range(0, args.keys, 1000):
            client.mset({f"key:{i}": "v" * 32 for i in range(start, min(args.keys, start + 1000))})
        load_s = time.monotonic() - t0
        idle = _pings(client, min(args.seconds, 5.0))
        sets_before = client.stats()["sets"]
        load = subprocess.Popen(
            [
                sys.executable, "-m", "bench.loadgen", "--addr", f"127.0.0.1:{server.port}",
                "--conns", str(args.conns), "--pipeline", "16", "--workload", "set",
                "--keys", str(args.keys), "--duration", str(args.seconds),
            ],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.5)  # connections up
            t_load = time.monotonic()
            busy = _pings(client, args.seconds - 1.0)
            busy_s = time.monotonic() - t_load
            sets = client.stats()["sets"] - sets_before
        finally:
            load.wait(timeout=args.seconds + 30)
        client.close()
    finally:
        server.terminate()

    row = (
        f"| {args.keys:,} | {ping_cell(idle)} | {ping_cell(busy)} "
        f"| {_pct(busy, 0.99) / _pct(idle, 0.99):.1f} | {sets / busy_s:,.0f} | {len(busy):,} |"
    )
    print(f"loaded {args.keys:,} keys in {load_s:.1f} s")
    print(row)
    if args.record:
        command = "python -m bench.write_stall " + " ".join(argv if argv is not None else sys.argv[1:])
        record(
            "Write stall: ping latency while a large keyspace is overwritten (`bench/write_stall.py`)",
            command,
            f"{machine()}; node with default options, keys loaded with `mset` (32 B values, no TTL), then "
            f"`bench/loadgen.py --workload set --pipeline 16 --conns {args.conns}` over the same keys for "
            f"{args.seconds:g} s; pings every ~0.5 ms on a connection of their own.\n\n"
            "| keys | ping p50 / p99 / max ms, idle | ping p50 / p99 / max ms, under load | p99 under load / idle "
            "| overwrites/s | pings under load |\n"
            "|---|---|---|---|---|---|\n" + row,
            path=args.results,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
