"""Is the load generator the bottleneck? The C one against the Python one, same run.

``python -m bench.loadgen_check [--duration 2] [--rounds 2] [--record]`` starts the bare
asyncio dict server (:mod:`bench.bare_server`) and a node, both pinned to CPU 0, pins
itself (and so both load generators) to CPU 1, and drives each server with
:mod:`bench.loadgen` (one Python process) and :mod:`bench.cloadgen` (``bench/loadgen.c``),
the two generators alternating first from round to round. Every key is set before the
first round, so gets hit for both. Prints, per workload and pipeline, the median ops/s
of the rounds, the C/Python ratio on each server and node/bare as the C generator sees
it, and each generator's CPU share of its run against the bare server and the bare
server's own (one core is 100%: whichever side is near it is the bottleneck; the
server's share counts from just before the generator starts); ``--record`` appends the table to ``bench/RESULTS.md`` (or ``--results``).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import cloadgen, loadgen
from bench.results import RESULTS, machine, record
from bench.servers import conditions, cpu_seconds, node_server, pin_prefix
from runtime.local_cluster import NodeProcess

SERVER_CPU, LOAD_CPU = 0, 1


def _load_args(port: int, workload: str, pipeline: int, args: argparse.Namespace) -> list[str]:
    return [
        "--addr", f"127.0.0.1:{port}", "--conns", str(args.conns), "--pipeline", str(pipeline),
        "--workload", workload, "--value-size", str(args.value_size), "--keys", str(args.keys),
        "--duration", str(args.duration),
    ]


def _run(gen: str, port: int, workload: str, pipeline: int, args: argparse.Namespace, prefill: bool = False) -> tuple[Any, float]:
    """One run of generator ``gen``: its result and its CPU share (CPU seconds per second of the run).
    The C one sets every key first only when ``prefill`` (the keys are set once, before the rounds)."""
    argv = _load_args(port, workload, pipeline, args)
    if gen == "c":
        r = cloadgen.run_load(cloadgen.parser().parse_args(argv + ([] if prefill else ["--no-prefill"])))
        cpu = r.cpu_seconds
    else:  # the worker process is reaped by run_load: its CPU is in RUSAGE_CHILDREN (start-up included)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = loadgen.run_load(loadgen.parser().parse_args(argv))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if r.errors:
        print(f"  {gen} generator: {r.errors} errors ({workload} P{pipeline})", file=sys.stderr)
    return r, cpu / r.seconds if r.seconds else 0.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen_check")
    p.add_argument("--duration", type=float, default=2.0, help="seconds per run")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--conns", type=int, default=50)
    p.add_argument("--value-size", type=int, default=100)
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--workloads", default="mix")
    p.add_argument("--pipelines", default="1,16")
    p.add_argument("--record", action="store_true", help="append the table to the results file")
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    cloadgen.binary()  # build before anything is timed
    pin = pin_prefix(SERVER_CPU)
    pinned = bool(pin) and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > LOAD_CPU
    servers = {
        "bare": NodeProcess("bare", command=[sys.executable, "-m", "bench.bare_server"], prefix=pin, stderr=subprocess.DEVNULL),
        "node": node_server("bench", cpu=SERVER_CPU, resp=False),
    }
    if pinned:
        os.sched_setaffinity(0, {LOAD_CPU})  # both generators (and the Python one's worker) inherit it
    workloads = args.workloads.split(",")
    pipelines = [int(x) for x in args.pipelines.split(",")]
    ops: dict[tuple[str, str, str, int], list[float]] = {}
    p99: dict[tuple[str, str, str, int], list[float]] = {}
    busy: dict[tuple[str, str, str, int], list[float]] = {}  # each generator's CPU share of its run
    served: dict[tuple[str, str, str, int], list[float]] = {}  # the server's CPU share during that run
    errors = 0
    try:
        for server in servers.values():  # every key set once (the C generator's prefill), gets hit from here on
            _run("c", server.port, "get", 16, argparse.Namespace(**{**vars(args), "duration": 0.2}), prefill=True)
        for rnd in range(args.rounds):
            gens = ("py", "c") if rnd % 2 == 0 else ("c", "py")
            for workload in workloads:
                for pipeline in pipelines:
                    for name, server in servers.items():
                        for gen in gens:
                            before = cpu_seconds(server.pid)
                            r, share = _run(gen, server.port, workload, pipeline, args)
                            served.setdefault((name, gen, workload, pipeline), []).append(
                                (cpu_seconds(server.pid) - before) / r.seconds if r.seconds else 0.0
                            )
                            errors += r.errors
                            ops.setdefault((name, gen, workload, pipeline), []).append(r.ops_per_s)
                            p99.setdefault((name, gen, workload, pipeline), []).append(r.percentile(0.99))
                            busy.setdefault((name, gen, workload, pipeline), []).append(share)
    finally:
        for server in servers.values():
            server.terminate()

    def med(d: dict[tuple[str, str, str, int], list[float]], *key: Any) -> float:
        return statistics.median(d[key])  # type: ignore[arg-type]

    rows = []
    for workload in workloads:
        for pipeline in pipelines:
            bp, bc = med(ops, "bare", "py", workload, pipeline), med(ops, "bare", "c", workload, pipeline)
            np_, nc = med(ops, "node", "py", workload, pipeline), med(ops, "node", "c", workload, pipeline)
            rows.append(
                f"| {workload} | {pipeline} | {bp:,.0f} | {bc:,.0f} | {bc / bp:.2f} | {np_:,.0f} | {nc:,.0f} | {nc / np_:.2f} "
                f"| {med(p99, 'bare', 'c', workload, pipeline):.2f} / {med(p99, 'node', 'c', workload, pipeline):.2f} "
                f"| {bc / nc:.2f} | {med(busy, 'bare', 'py', workload, pipeline):.0%} / {med(busy, 'bare', 'c', workload, pipeline):.0%} "
                f"| {med(served, 'bare', 'py', workload, pipeline):.0%} / {med(served, 'bare', 'c', workload, pipeline):.0%} |"
            )
    header = (
        "| workload | pipeline | bare, Python gen | bare, C gen | C / Python | node, Python gen | node, C gen | C / Python "
        "| p99 ms bare / node (C gen) | bare / node (C gen) | gen CPU, Python / C (bare) | bare server CPU, Python / C gen |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    print(header)
    for row in rows:
        print(row, flush=True)
    print(f"errors: {errors}")
    if args.record:
        command = "python -m bench.loadgen_check " + " ".join(argv if argv is not None else sys.argv[1:])
        where = (
            f"servers on CPU {SERVER_CPU} (`taskset -c {SERVER_CPU}`), both load generators on CPU {LOAD_CPU}"
            if pinned else "not pinned (no taskset or fewer than 2 cores)"
        )
        record(
            "Load generators: the C one (`bench/loadgen.c`) vs the Python one, same run (`bench/loadgen_check.py`)",
            command,
            f"{machine()}; {conditions()}. {where}; {args.conns} connections, {args.value_size} B values, "
            f"{args.keys:,} keys (all set first: gets hit), {args.duration:g} s per run, median of {args.rounds} rounds, "
            f"the two generators alternating first; ops/s; Python gen is `bench/loadgen.py` with one process; "
            f"errors across all runs: {errors}.\n\n" + header + "\n" + "\n".join(rows),
            args.results,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
