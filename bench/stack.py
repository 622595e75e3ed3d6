"""The stack, same run: uvloop and orjson in the node and in the bare server, and the load generator's headroom.

``python -m bench.stack [--duration 2] [--rounds 2] [--record]`` starts eight JSON-lines
servers, all pinned to CPU 0: the bare dict server (:mod:`bench.bare_server`) on each of
asyncio+stdlib, asyncio+orjson, uvloop+stdlib, uvloop+orjson, and a node
(``--event-loop``/``--json-codec``) on the same four stacks. It pins itself, and so the
compiled load generator (:mod:`bench.cloadgen`), to CPU 1, sets every key once, then
drives each server with set, get and mix at pipeline 1 and 16 (50 connections, 100 B
values, 10k keys; gets hit), ``--rounds`` times, the server order reversed every other
round. It prints the median ops/s and p99 of each cell and, from those medians:

- each accelerator's gain in the node and in the bare server (over asyncio+stdlib), in
  ops/s and in the server's CPU per request (from /proc: steadier than ops/s when other
  work shares the machine);
- node / bare on the same stack (the issue's first target: >= 0.8x);
- the load generator's headroom: the bare uvloop+orjson server's ops/s over the best
  node's, cell by cell (the issue asks >= 1.3x: the generator drives something 1.3x
  faster than anything it measures of ours, so it is not what limits the node), with
  the generator's own CPU share and the bare server's in those runs (one core is 100%).

A server that cannot serve a cell (it failed to start, or the generator saw errors) shows
``failed`` and its ratios ``-``. ``--record`` appends the tables to ``bench/RESULTS.md``.
The RESP companion is :mod:`bench.stack_resp`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench import cloadgen
from bench.results import RESULTS, machine, record
from bench.servers import conditions, cpu_seconds, node_server, pin_prefix
from runtime.local_cluster import NodeProcess

SERVER_CPU, LOAD_CPU = 0, 1
HEADING = "The stack: uvloop and orjson in the node and the bare server, and the load generator's headroom (`bench/stack.py`)"
STACKS = ("asyncio+stdlib", "asyncio+orjson", "uvloop+stdlib", "uvloop+orjson")
SERVERS = tuple(f"{kind} {stack}" for kind in ("bare", "node") for stack in STACKS)


@dataclass
class Cell:
    """The runs of one server at one workload and pipeline."""

    ops: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    gen_cpu: list[float] = field(default_factory=list)  # the generator's CPU share of its run
    server_cpu: list[float] = field(default_factory=list)  # the server's CPU share over the same run
    cpu_us: list[float] = field(default_factory=list)  # the server's CPU per request, us
    failed: str = ""

    def median(self, what: str) -> float | None:
        values = getattr(self, what)
        return statistics.median(values) if values and not self.failed else None


_ABSENT = Cell(failed="not run")


def start(name: str, pin: list[str]) -> NodeProcess:
    """Server ``name`` (``bare|node LOOP+CODEC``) on a free port, pinned by ``pin``."""
    kind, stack = name.split(" ")
    loop, codec = stack.split("+")
    if kind == "bare":
        command = [sys.executable, "-m", "bench.bare_server"]
        return NodeProcess("bare", "--loop", loop, "--json", codec, command=command, prefix=pin, stderr=subprocess.DEVNULL)
    return node_server("bench", "--event-loop", loop, "--json-codec", codec, cpu=SERVER_CPU if pin else None, resp=False)


def _load(port: int, workload: str, pipeline: int, args: argparse.Namespace, duration: float, prefill: bool) -> cloadgen.CLoadResult:
    argv = [
        "--addr", f"127.0.0.1:{port}", "--conns", str(args.conns), "--pipeline", str(pipeline), "--workload", workload,
        "--value-size", str(args.value_size), "--keys", str(args.keys), "--duration", str(duration),
    ]
    return cloadgen.run_load(cloadgen.parser().parse_args(argv + ([] if prefill else ["--no-prefill"])))


def measure(args: argparse.Namespace, servers: list[str]) -> tuple[dict[tuple[str, str, int], Cell], bool]:
    """Every cell's runs, and whether servers and generator were pinned."""
    cloadgen.binary()  # build before anything is timed
    pin = pin_prefix(SERVER_CPU)
    pinned = bool(pin) and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > LOAD_CPU
    cells = {(s, w, p): Cell() for s in servers for w in args.workloads for p in args.pipelines}
    procs: dict[str, NodeProcess] = {}
    affinity = os.sched_getaffinity(0) if pinned else None
    try:
        for name in servers:
            try:
                procs[name] = start(name, pin)
            except Exception as exc:  # noqa: BLE001 - a server that cannot start is reported, not fatal
                for key, cell in cells.items():
                    if key[0] == name:
                        cell.failed = f"did not start: {exc}"[:200]
        if pinned:
            os.sched_setaffinity(0, {LOAD_CPU})  # the generator inherits it
        for name, proc in procs.items():  # every key set once: gets hit from here on
            try:
                _load(proc.port, "get", 16, args, 0.2, prefill=True)
            except Exception as exc:  # noqa: BLE001
                for key, cell in cells.items():
                    if key[0] == name:
                        cell.failed = f"prefill failed: {exc}"[:200]
        for rnd in range(args.rounds):
            order = list(procs) if rnd % 2 == 0 else list(reversed(procs))
            for workload in args.workloads:
                for pipeline in args.pipelines:
                    for name in order:
                        cell = cells[(name, workload, pipeline)]
                        if cell.failed:
                            continue
                        proc = procs[name]
                        before = cpu_seconds(proc.pid)
                        try:
                            r = _load(proc.port, workload, pipeline, args, args.duration, prefill=False)
                        except Exception as exc:  # noqa: BLE001
                            cell.failed = str(exc)[:200]
                            continue
                        if r.errors or not r.ops:
                            cell.failed = f"{r.errors} errors, {r.ops} ops"
                            continue
                        cell.ops.append(r.ops_per_s)
                        cell.p99.append(r.percentile(0.99))
                        cell.gen_cpu.append(r.cpu_seconds / r.seconds)
                        used = cpu_seconds(proc.pid) - before
                        cell.server_cpu.append(used / r.seconds)
                        cell.cpu_us.append(used / r.ops * 1e6)
    finally:
        if affinity is not None:
            os.sched_setaffinity(0, affinity)
        for proc in procs.values():
            proc.terminate()
    return cells, pinned


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def tables(cells: dict[tuple[str, str, int], Cell], args: argparse.Namespace, servers: list[str]) -> tuple[str, str]:
    """(figures, ratios) as Markdown tables."""
    columns = [(w, p) for p in args.pipelines for w in args.workloads]
    head = "| server | " + " | ".join(f"{w} P{p}" for w, p in columns) + " |\n|---|" + "---|" * len(columns)
    rows = [head]
    for name in servers:
        parts = []
        for w, p in columns:
            c = cells[(name, w, p)]
            ops, p99 = c.median("ops"), c.median("p99")
            parts.append("failed" if ops is None else f"{ops:,.0f} ({p99:.2f} ms)")
        rows.append(f"| {name} | " + " | ".join(parts) + " |")
    rows += ["", head.replace("| server |", "| server CPU us per request |", 1)]
    for name in servers:
        us = [cells[(name, w, p)].median("cpu_us") for w, p in columns]
        rows.append(f"| {name} | " + " | ".join("failed" if u is None else f"{u:.1f}" for u in us) + " |")

    def cpu(name: str, w: str, p: int) -> float | None:
        return cells[(name, w, p)].median("cpu_us") if (name, w, p) in cells else None

    def ops(name: str, w: str, p: int) -> float | None:
        return cells[(name, w, p)].median("ops") if (name, w, p) in cells else None

    ratio_rows = ["| ratio | " + " | ".join(f"{w} P{p}" for w, p in columns) + " |\n|---|" + "---|" * len(columns)]

    def line(label: str, values: list[str]) -> None:
        ratio_rows.append(f"| {label} | " + " | ".join(values) + " |")

    for kind in ("node", "bare"):
        for stack in STACKS[1:]:
            line(f"{kind}: {stack} / asyncio+stdlib", [_ratio(ops(f"{kind} {stack}", w, p), ops(f"{kind} asyncio+stdlib", w, p)) for w, p in columns])
    for kind in ("node", "bare"):
        for stack in STACKS[1:]:
            line(
                f"{kind}: CPU per request, asyncio+stdlib / {stack}",
                [_ratio(cpu(f"{kind} asyncio+stdlib", w, p), cpu(f"{kind} {stack}", w, p)) for w, p in columns],
            )
    for stack in STACKS:
        line(f"node / bare, {stack}", [_ratio(ops(f"node {stack}", w, p), ops(f"bare {stack}", w, p)) for w, p in columns])
    best = []
    for w, p in columns:
        nodes = [v for s in STACKS if (v := ops(f"node {s}", w, p))]
        best.append(max(nodes) if nodes else None)
    line("generator headroom: bare uvloop+orjson / best node", [_ratio(ops("bare uvloop+orjson", w, p), b) for (w, p), b in zip(columns, best)])
    top = "bare uvloop+orjson"
    line(
        f"generator CPU share / server CPU share ({top})",
        [
            "-" if (g := cells.get((top, w, p), _ABSENT).median("gen_cpu")) is None else f"{g:.0%} / {cells[(top, w, p)].median('server_cpu'):.0%}"
            for w, p in columns
        ],
    )
    line(
        "best node's CPU share",
        [
            "-" if b is None else f"{cells[(next(s for s in (f'node {x}' for x in STACKS) if ops(s, w, p) == b), w, p)].median('server_cpu'):.0%}"
            for (w, p), b in zip(columns, best)
        ],
    )
    return "\n".join(rows), "\n".join(ratio_rows)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.stack")
    p.add_argument("--duration", type=float, default=2.0, help="seconds per run")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--conns", type=int, default=50)
    p.add_argument("--value-size", type=int, default=100)
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--workloads", type=lambda s: s.split(","), default=["set", "get", "mix"])
    p.add_argument("--pipelines", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16])
    p.add_argument("--servers", type=lambda s: s.split(","), default=list(SERVERS), help=argparse.SUPPRESS)
    p.add_argument("--record", action="store_true", help="append the tables to the results file")
    p.add_argument("--results", type=Path, default=RESULTS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    load_note = conditions()  # before we load the machine ourselves
    cells, pinned = measure(args, args.servers)
    figures, ratios = tables(cells, args, args.servers)
    print(figures + "\n\n" + ratios, flush=True)
    failed = sorted({f"{k[0]}: {c.failed}" for k, c in cells.items() if c.failed})
    for why in failed:
        print(f"failed: {why}", file=sys.stderr)
    if args.record:
        where = (
            f"servers on CPU {SERVER_CPU} (`taskset -c {SERVER_CPU}`), the C load generator (`bench/loadgen.c`) on CPU {LOAD_CPU}"
            if pinned else "not pinned (no taskset or fewer than 2 cores)"
        )
        record(
            HEADING,
            "python -m bench.stack " + " ".join(argv if argv is not None else sys.argv[1:]),
            f"{machine()}; {load_note}. {where}; {args.conns} connections, {args.value_size} B values, "
            f"{args.keys:,} keys (all set first: gets hit), {args.duration:g} s per run, median of {args.rounds} rounds "
            f"(server order reversed every other round); ops/s (p99 per request). Bare: `bench/bare_server.py --loop L --json J`; "
            f"node: `python -m runtime.node --event-loop L --json-codec J`."
            + (f" Failed: {'; '.join(failed)}." if failed else "")
            + "\n\n" + figures + "\n\n" + ratios,
            args.results,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
