"""Our node vs the bare asyncio dict server, same JSON-lines workloads, same run.

``python -m bench.json_lines [--duration 5] [--record]`` starts both servers as
subprocesses on free loopback ports, drives each with :mod:`bench.loadgen` (get, set and
90:10 mix; pipeline 1 and 16), prints ops/s, p50/p99 and the node/bare ratio, and with
``--record`` appends the rows to ``bench/RESULTS.md``. Ratios, not bare figures, are the
result: the machine is shared and noisy. ``--scrape`` measures what Prometheus costs
instead (:mod:`bench.scrape_ab`): the node with and without a scraper, same run.
"""

from __future__ import annotations

import argparse
import sys

from bench.loadgen import parser as load_parser, run_load
from bench.results import machine, record
from bench.servers import bare_server, node_server
from runtime.local_cluster import NodeProcess

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.json_lines")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--conns", type=int, default=50)
    p.add_argument("--procs", type=int, default=1, help="load generator processes")
    p.add_argument("--value-size", type=int, default=32)
    p.add_argument("--workloads", default="get,set,mix")
    p.add_argument("--pipelines", default="1,16")
    p.add_argument("--record", action="store_true", help="append the rows to bench/RESULTS.md")
    p.add_argument(
        "--scrape", action="store_true",
        help="instead of node vs bare: the node with --metrics-port, scraped every second vs not, same run, "
        "pinned, in alternating pairs (bench/scrape_ab.py)",
    )
    p.add_argument("--pairs", type=int, default=5, help="with --scrape: alternating pairs per cell (default 5)")
    args = p.parse_args(argv)
    if args.scrape:
        from bench.scrape_ab import scrape_ab

        return scrape_ab(args, "python -m bench.json_lines " + " ".join(argv if argv is not None else sys.argv[1:]))
    servers = {"node": node_server("bench", resp=False), "bare": bare_server()}
    try:
        rows = _cells(args, servers)
    finally:
        for server in servers.values():
            server.terminate()
    if args.record:
        command = "python -m bench.json_lines " + " ".join(argv if argv is not None else sys.argv[1:])
        record(
            "JSON lines: node vs bare asyncio dict server (`bench/json_lines.py`)",
            command,
            f"{machine()}, {args.conns} connections, {args.value_size} B values, {args.duration:g} s per cell, "
            f"{args.procs} load process(es); servers and load share the machine.\n\n"
            "| workload | pipeline | node ops/s | node p50 / p99 ms | bare ops/s | bare p50 / p99 ms | node / bare |\n"
            "|---|---|---|---|---|---|---|\n" + "\n".join(rows),
        )
    return 0


def _cells(args: argparse.Namespace, servers: dict[str, NodeProcess]) -> list[str]:
    """Every workload x pipeline cell on both ``servers`` in turn: one table row each,
    first / second."""
    rows = []
    for workload in args.workloads.split(","):
        for pipeline in (int(x) for x in args.pipelines.split(",")):
            first, second = (run_load(load_args(args, server.port, workload, pipeline)) for server in servers.values())
            ratio = first.ops_per_s / second.ops_per_s if second.ops_per_s else float("nan")
            row = (
                f"| {workload} | {pipeline} | {first.ops_per_s:,.0f} | {first.percentile(0.5):.2f} / {first.percentile(0.99):.2f} "
                f"| {second.ops_per_s:,.0f} | {second.percentile(0.5):.2f} / {second.percentile(0.99):.2f} | {ratio:.2f} |"
            )
            rows.append(row)
            print(row, flush=True)
            if first.errors or second.errors:
                print(f"  errors: node {first.errors}, bare {second.errors}", file=sys.stderr)
    return rows


def load_args(args: argparse.Namespace, port: int, workload: str, pipeline: int) -> argparse.Namespace:
    """bench.loadgen's arguments for one cell against ``port``."""
    return load_parser().parse_args(
        [
            "--addr", f"127.0.0.1:{port}", "--conns", str(args.conns), "--pipeline", str(pipeline),
            "--workload", workload, "--value-size", str(args.value_size), "--duration", str(args.duration),
            "--procs", str(args.procs),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
