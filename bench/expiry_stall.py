"""Does a mass expiry stall the node? Ping latency while N keys expire at once.

``python -m bench.expiry_stall [--keys 1000000] [--record]`` starts a node with
``--cleanup-interval 0.1``, loads N keys that all expire at the same instant, and pings
it in a tight bounded loop: first while nothing expires (baseline), then through the
mass expiry until the janitor has removed every key. Reports ping p50/p99/max of both
phases and their ratio, measured in the same run, and how long the drain took.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench.results import machine, record
from bench.servers import node_server
from runtime.client import Client


def _pct(xs: list[float], q: float) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def ping_cell(seconds: list[float]) -> str:
    """``p50 / p99 / max`` of ping round trips, in ms, as the stall benches print them."""
    return f"{_pct(seconds, 0.5) * 1000:.3f} / {_pct(seconds, 0.99) * 1000:.3f} / {max(seconds) * 1000:.2f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.expiry_stall")
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--ttl", type=float, default=0.0, help="seconds until expiry (default: load time + 2 s)")
    p.add_argument("--max-seconds", type=float, default=120.0, help="bound on the drain phase")
    p.add_argument("--record", action="store_true")
    args = p.parse_args(argv)

    server = node_server("stall", "--cleanup-interval", "0.1", resp=False)
    try:
        client = Client(f"127.0.0.1:{server.port}", timeout=30)
        est_load_s = args.keys / 150_000
        ttl = args.ttl or est_load_s + 2.0
        t_load = time.monotonic()
        batch = 1000
        for start in range(0, args.keys, batch):
            client.mset({f"k{i}": "v" * 32 for i in range(start, min(args.keys, start + batch))}, ttl=ttl)
        load_s = time.monotonic() - t_load
        expires_at = t_load + ttl
        baseline: list[float] = []
        while time.monotonic() < expires_at - 0.2:
            baseline.append(client.ping())
        during: list[float] = []
        drained_at = None
        deadline = time.monotonic() + args.max_seconds
        polls = 0
        while time.monotonic() < deadline:
            during.append(client.ping())
            polls += 1
            if polls % 200 == 0 and client.stats()["keys"] == 0:
                drained_at = time.monotonic()
                break
        stats = client.stats()
        client.close()
    finally:
        server.terminate()

    drain = f"{drained_at - expires_at:.1f} s" if drained_at else f"not drained in {args.max_seconds:g} s"
    row = (
        f"| {args.keys:,} | {ping_cell(baseline)} | {ping_cell(during)} "
        f"| {_pct(during, 0.99) / _pct(baseline, 0.99):.2f} | {drain} | {stats['expired_active']:,} / {stats['expired_lazy']:,} "
        f"| {stats['expire_budget_hits']:,} |"
    )
    print(f"loaded {args.keys:,} keys in {load_s:.1f} s; ttl {ttl:.1f} s")
    print(row)
    if args.record:
        command = "python -m bench.expiry_stall " + " ".join(argv if argv is not None else sys.argv[1:])
        record(
            "Mass expiry: ping latency while a million keys expire (`bench/expiry_stall.py`)",
            command,
            f"{machine()}; node with `--cleanup-interval 0.1` (2 ms budget per cycle).\n\n"
            "| keys expiring at once | ping p50 / p99 / max ms, before | ping p50 / p99 / max ms, during drain "
            "| p99 during / before | drain time | expired active / lazy | cycles that hit the budget |\n"
            "|---|---|---|---|---|---|---|\n" + row,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
