"""What a Prometheus scraper costs a node: ``python -m bench.json_lines --scrape``.

Two nodes started alike with ``--metrics-port`` (pinned to core 0; this process and its
load generator to core 1), the JSON-lines load of :mod:`bench.json_lines` on one at a
time; for the scraped runs a thread GETs ``/metrics`` every second, as Prometheus would,
reading each answer whole. Which node is scraped alternates pair by pair and so does the
order within a pair, so neither node nor position is favoured; a cell's figure is the
median over pairs of scraped / unscraped ops/s and of the node's CPU per request (from
/proc: the load generator's CPU is not in it), which a loaded machine disturbs less.
The counting itself is always on (the actors count as they answer); what it costs
against a node without it is ``python -m bench.ab_nodes`` between two trees.

``python -m bench.scrape_ab [--scrapes 200] [--record]`` measures one scrape instead: the
node CPU it takes on a 3-node cluster (scrapes back to back, idle CPU subtracted).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import urllib.request

from bench.json_lines import load_args
from bench.loadgen import LoadResult, run_load
from bench.results import machine, record
from bench.servers import conditions, cpu_seconds, node_server

__all__ = ["Scraper", "main", "per_scrape", "scrape_ab"]


class Scraper:
    """A thread that GETs ``/metrics`` on ``port`` every ``interval_s`` while in a ``with``
    block (None: does nothing)."""

    def __init__(self, port: int | None, interval_s: float = 1.0) -> None:
        self.port = port
        self.interval_s = interval_s
        self.scrapes = 0
        self.bytes = 0
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
            self._thread.join(timeout=15)

    def _run(self) -> None:
        url = f"http://127.0.0.1:{self.port}/metrics"
        while not self._stop.wait(self.interval_s):
            with urllib.request.urlopen(url, timeout=10) as response:
                body = response.read()
                if response.status == 200 and body:
                    self.scrapes += 1
                    self.bytes = len(body)


def _run(args: argparse.Namespace, node: object, workload: str, pipeline: int, scraped: bool) -> tuple[LoadResult, float, int]:
    """One run against ``node``: its load result, the node's CPU microseconds per request, scrapes."""
    cpu0 = cpu_seconds(node.pid)  # type: ignore[attr-defined]
    with Scraper(node.metrics_port if scraped else None) as scraper:  # type: ignore[attr-defined]
        result = run_load(load_args(args, node.port, workload, pipeline))  # type: ignore[attr-defined]
    cpu = cpu_seconds(node.pid) - cpu0  # type: ignore[attr-defined]
    return result, cpu / max(1, result.ops) * 1e6, scraper.scrapes


def scrape_ab(args: argparse.Namespace, command: str) -> int:
    pinned = (os.cpu_count() or 1) >= 2
    if pinned:
        os.sched_setaffinity(0, {1})
    cpu = 0 if pinned else None
    nodes = [node_server(name, "--metrics-port", "0", resp=False, cpu=cpu) for name in ("a", "b")]
    head = (
        "| workload | pipeline | unscraped ops/s | scraped ops/s | scraped / unscraped ops/s (median, min-max) "
        "| unscraped us/req | scraped us/req | scraped / unscraped us/req |"
    )
    print(f"{conditions()}; {'nodes on core 0, load on core 1' if pinned else 'not pinned'}; "
          f"{args.pairs} pairs x {args.duration:g} s per cell", flush=True)
    print(head + "\n|---|---|---|---|---|---|---|---|", flush=True)
    rows, scrapes, size = [], 0, 0
    try:
        for workload in args.workloads.split(","):
            for pipeline in (int(x) for x in args.pipelines.split(",")):
                ratios, cpu_ratios, quiet_ops, loud_ops, quiet_us, loud_us = [], [], [], [], [], []
                for i in range(args.pairs):
                    target = nodes[i % 2]  # the scraped node alternates, and so does who goes first
                    other = nodes[1 - i % 2]
                    order = [(target, True), (other, False)] if (i // 2) % 2 == 0 else [(other, False), (target, True)]
                    runs = {}
                    for node, scraped in order:
                        result, us, n = _run(args, node, workload, pipeline, scraped)
                        runs[scraped] = (result, us)
                        scrapes += n
                    (loud, loud_cpu), (quiet, quiet_cpu) = runs[True], runs[False]
                    ratios.append(loud.ops_per_s / quiet.ops_per_s if quiet.ops_per_s else float("nan"))
                    cpu_ratios.append(loud_cpu / quiet_cpu if quiet_cpu else float("nan"))
                    quiet_ops.append(quiet.ops_per_s)
                    loud_ops.append(loud.ops_per_s)
                    quiet_us.append(quiet_cpu)
                    loud_us.append(loud_cpu)
                row = (
                    f"| {workload} | {pipeline} | {statistics.median(quiet_ops):,.0f} | {statistics.median(loud_ops):,.0f} "
                    f"| {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) "
                    f"| {statistics.median(quiet_us):.1f} | {statistics.median(loud_us):.1f} | {statistics.median(cpu_ratios):.2f} |"
                )
                rows.append(row)
                print(row, flush=True)
        size = _scrape_size(nodes[0].metrics_port)
    finally:
        for node in nodes:
            node.terminate()
    print(f"{scrapes} scrapes of about {size:,} bytes", flush=True)
    if args.record:
        record(
            "Metrics: a node scraped every second vs not (`bench/json_lines.py --scrape`, bench/scrape_ab.py)",
            command,
            f"{machine()}; {conditions()}; {'nodes pinned to core 0, load generator to core 1' if pinned else 'not pinned'}; "
            f"{args.pairs} alternating pairs x {args.duration:g} s per cell, {args.conns} connections, "
            f"{args.value_size} B values; {scrapes} scrapes of about {size:,} bytes. CPU per request is the node's "
            f"(/proc), scrapes included.\n\n{head}\n|---|---|---|---|---|---|---|---|\n" + "\n".join(rows),
        )
    return 0


def _scrape_size(port: int | None) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return len(response.read())


def per_scrape(scrapes: int = 200) -> tuple[float, int, float]:
    """CPU milliseconds node1 of a fresh 3-node cluster spends per ``/metrics`` scrape:
    ``scrapes`` back to back, its CPU (from /proc) minus what it used idle over as long
    (heartbeats, gossip). Returns (ms per scrape, bytes per scrape, seconds taken)."""
    import time

    from runtime.local_cluster import LocalCluster

    with LocalCluster(3, node_args=("--metrics-port", "0")) as cluster:
        node = cluster.procs["node1"]
        url = f"http://127.0.0.1:{node.metrics_port}/metrics"
        for _ in range(5):  # warm: imports, first families
            _get(url)
        cpu0, t0 = cpu_seconds(node.pid), time.monotonic()
        size = 0
        for _ in range(scrapes):
            size = len(_get(url))
        busy, wall = cpu_seconds(node.pid) - cpu0, time.monotonic() - t0
        cpu1 = cpu_seconds(node.pid)
        time.sleep(wall)
        idle = cpu_seconds(node.pid) - cpu1
    return (busy - idle) / scrapes * 1000, size, wall


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.scrape_ab [--scrapes 200] [--record]``: CPU per scrape."""
    import sys

    p = argparse.ArgumentParser(prog="python -m bench.scrape_ab")
    p.add_argument("--scrapes", type=int, default=200)
    p.add_argument("--record", action="store_true")
    args = p.parse_args(argv)
    ms, size, wall = per_scrape(args.scrapes)
    line = (
        f"node1 of a 3-node cluster: {args.scrapes} scrapes of {size:,} bytes back to back in {wall:.2f} s, "
        f"{ms:.2f} ms of node CPU each (its idle CPU over as long subtracted): one scrape a second is "
        f"{ms / 10:.2f}% of a core"
    )
    print(line)
    if args.record:
        command = "python -m bench.scrape_ab " + " ".join(argv if argv is not None else sys.argv[1:])
        record("Metrics: what counting and scraping cost (`bench/json_lines.py --scrape`, `bench/ab_nodes.py`)",
               command, f"{machine()}; {conditions()}.\n\n{line}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
