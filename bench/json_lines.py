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
        help="instead of the bare server: the node with --metrics-port, unscraped and scraped (GET /metrics every "
        "second during its cells), same run; the ratio is scraped / unscraped",
    )
    args = p.parse_args(argv)
    if args.scrape:
        # the scraped node first: the row reads scraped, unscraped, scraped / unscraped
        servers = {
            "scraped": node_server("scraped", "--metrics-port", "0", resp=False),
            "unscraped": node_server("unscraped", "--metrics-port", "0", resp=False),
        }
    else:
        servers = {"node": node_server("bench", resp=False), "bare": bare_server()}
    try:
        rows, scrapes = _cells(args, servers, scraped="scraped" if args.scrape else None)
    finally:
        for server in servers.values():
            server.terminate()
    if args.scrape:
        print(f"{scrapes} scrapes", flush=True)
    if args.record:
        command = "python -m bench.json_lines " + " ".join(argv if argv is not None else sys.argv[1:])
        setup = f"{machine()}, {args.conns} connections, {args.value_size} B values, {args.duration:g} s per cell, {args.procs} load process(es)"
        if args.scrape:
            title = "Metrics: the node with and without a scraper (`bench/json_lines.py --scrape`)"
            setup += (
                f"; two nodes with --metrics-port, one scraped every second during its cells ({scrapes} scrapes)"
            )
            head = "| workload | pipeline | scraped ops/s | p50 / p99 ms | unscraped ops/s | p50 / p99 ms | scraped / unscraped |"
        else:
            title = "JSON lines: node vs bare asyncio dict server (`bench/json_lines.py`)"
            head = "| workload | pipeline | node ops/s | node p50 / p99 ms | bare ops/s | bare p50 / p99 ms | node / bare |"
        record(title, command, f"{setup}; servers and load share the machine.\n\n{head}\n|---|---|---|---|---|---|---|\n" + "\n".join(rows))
    return 0


def _cells(args: argparse.Namespace, servers: dict[str, NodeProcess], scraped: str | None) -> tuple[list[str], int]:
    """Every workload x pipeline cell on both ``servers`` in turn (the one named ``scraped``
    under a :class:`Scraper`): one table row each, first / second; and the scrapes made."""
    rows, scrapes = [], 0
    for workload in args.workloads.split(","):
        for pipeline in (int(x) for x in args.pipelines.split(",")):
            figures = []
            for name, server in servers.items():
                with Scraper(server.metrics_port if name == scraped else None) as scraper:
                    figures.append(run_load(_load_args(args, server.port, workload, pipeline)))
                scrapes += scraper.scrapes
            first, second = figures
            ratio = first.ops_per_s / second.ops_per_s if second.ops_per_s else float("nan")
            row = (
                f"| {workload} | {pipeline} | {first.ops_per_s:,.0f} | {first.percentile(0.5):.2f} / {first.percentile(0.99):.2f} "
                f"| {second.ops_per_s:,.0f} | {second.percentile(0.5):.2f} / {second.percentile(0.99):.2f} | {ratio:.2f} |"
            )
            rows.append(row)
            print(row, flush=True)
            if first.errors or second.errors:
                names = list(servers)
                print(f"  errors: {names[0]} {first.errors}, {names[1]} {second.errors}", file=sys.stderr)
    return rows, scrapes


def _load_args(args: argparse.Namespace, port: int, workload: str, pipeline: int) -> argparse.Namespace:
    """bench.loadgen's arguments for one cell against ``port``."""
    return load_parser().parse_args(
        [
            "--addr", f"127.0.0.1:{port}", "--conns", str(args.conns), "--pipeline", str(pipeline),
            "--workload", workload, "--value-size", str(args.value_size), "--duration", str(args.duration),
            "--procs", str(args.procs),
        ]
    )


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
