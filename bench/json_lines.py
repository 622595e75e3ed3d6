"""Our node vs the bare asyncio dict server, same JSON-lines workloads, same run.

``python -m bench.json_lines [--duration 5] [--record]`` starts both servers as
subprocesses on free loopback ports, drives each with :mod:`bench.loadgen` (get, set and
90:10 mix; pipeline 1 and 16), prints ops/s, p50/p99 and the node/bare ratio, and with
``--record`` appends the rows to ``bench/RESULTS.md``. Ratios, not bare figures, are the
result: the machine is shared and noisy. ``--scrape`` measures what Prometheus costs
instead: two nodes with ``--metrics-port``, one of them scraped every second during its
cells, same run.
"""

from __future__ import annotations

import argparse
import sys
import threading
import urllib.request

from bench.loadgen import parser as load_parser, run_load
from bench.results import machine, record
from bench.servers import bare_server, node_server

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
        help="instead of the bare server: the node with --metrics-port, unscraped and scraped (GET /metrics every "
        "second during its cells), same run; the ratio is scraped / unscraped",
    )
    args = p.parse_args(argv)
    if args.scrape:
        return _scrape_ab(args, argv)

    servers = {
        "node": node_server("bench", resp=False),
        "bare": bare_server(),
    }
    rows = []
    try:
        for workload in args.workloads.split(","):
            for pipeline in (int(x) for x in args.pipelines.split(",")):
                figures = {}
                for name, server in servers.items():
                    load_args = load_parser().parse_args(
                        [
                            "--addr", f"127.0.0.1:{server.port}",
                            "--conns", str(args.conns),
                            "--pipeline", str(pipeline),
                            "--workload", workload,
                            "--value-size", str(args.value_size),
                            "--duration", str(args.duration),
                            "--procs", str(args.procs),
                        ]
                    )
                    figures[name] = run_load(load_args)
                node, bare = figures["node"], figures["bare"]
                ratio = node.ops_per_s / bare.ops_per_s if bare.ops_per_s else float("nan")
                row = (
                    f"| {workload} | {pipeline} | {node.ops_per_s:,.0f} | {node.percentile(0.5):.2f} / {node.percentile(0.99):.2f} "
                    f"| {bare.ops_per_s:,.0f} | {bare.percentile(0.5):.2f} / {bare.percentile(0.99):.2f} | {ratio:.2f} |"
                )
                rows.append(row)
                print(row, flush=True)
                if node.errors or bare.errors:
                    print(f"  errors: node {node.errors}, bare {bare.errors}", file=sys.stderr)
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


def _scrape_ab(args: argparse.Namespace, argv: list[str] | None) -> int:
    """Node throughput with and without a Prometheus scraper, same run, cells interleaved."""
    servers = {
        "quiet": node_server("quiet", "--metrics-port", "0", resp=False),
        "scraped": node_server("scraped", "--metrics-port", "0", resp=False),
    }
    rows = []
    scrapes = 0
    try:
        for workload in args.workloads.split(","):
            for pipeline in (int(x) for x in args.pipelines.split(",")):
                figures = {}
                for name, server in servers.items():
                    load_args = load_parser().parse_args(
                        [
                            "--addr", f"127.0.0.1:{server.port}", "--conns", str(args.conns),
                            "--pipeline", str(pipeline), "--workload", workload,
                            "--value-size", str(args.value_size), "--duration", str(args.duration),
                            "--procs", str(args.procs),
                        ]
                    )
                    with Scraper(server.metrics_port if name == "scraped" else None) as scraper:
                        figures[name] = run_load(load_args)
                    scrapes += scraper.scrapes
                quiet, scraped = figures["quiet"], figures["scraped"]
                ratio = scraped.ops_per_s / quiet.ops_per_s if quiet.ops_per_s else float("nan")
                row = (
                    f"| {workload} | {pipeline} | {quiet.ops_per_s:,.0f} | {quiet.percentile(0.5):.2f} / {quiet.percentile(0.99):.2f} "
                    f"| {scraped.ops_per_s:,.0f} | {scraped.percentile(0.5):.2f} / {scraped.percentile(0.99):.2f} | {ratio:.2f} |"
                )
                rows.append(row)
                print(row, flush=True)
    finally:
        for server in servers.values():
            server.terminate()
    print(f"{scrapes} scrapes", flush=True)
    if args.record:
        command = "python -m bench.json_lines " + " ".join(argv if argv is not None else sys.argv[1:])
        record(
            "Metrics: the node with and without a scraper (`bench/json_lines.py --scrape`)",
            command,
            f"{machine()}, {args.conns} connections, {args.value_size} B values, {args.duration:g} s per cell, "
            f"{args.procs} load process(es); two nodes with --metrics-port, one scraped every second during its "
            f"cells ({scrapes} scrapes); servers and load share the machine.\n\n"
            "| workload | pipeline | unscraped ops/s | p50 / p99 ms | scraped ops/s | p50 / p99 ms | scraped / unscraped |\n"
            "|---|---|---|---|---|---|---|\n" + "\n".join(rows),
        )
    return 0


class Scraper:
    """A thread that GETs ``/metrics`` on ``port`` every second while in a ``with`` block
    (None: does nothing), as Prometheus would, reading the whole answer each time."""

    def __init__(self, port: int | None, interval_s: float = 1.0) -> None:
        self.port = port
        self.interval_s = interval_s
        self.scrapes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Scraper:
        if self.port is not None:
            self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        url = f"http://127.0.0.1:{self.port}/metrics"
        while not self._stop.wait(self.interval_s):
            with urllib.request.urlopen(url, timeout=10) as response:
                if response.status == 200 and response.read():
                    self.scrapes += 1


if __name__ == "__main__":
    sys.exit(main())
