"""Two checkouts of the node, side by side: which serves more, in the same minutes?

A refactor must not cost throughput, and on a shared 2-core machine two benchmark runs
minutes apart differ by more than any refactor does (the same commit gave 68k and 144k
set/s in one afternoon). So both nodes run at once, each pinned to core 0, the load
generator pinned to core 1, and the load alternates between them in short runs (A, B,
B, A, ...): each pair of neighbouring runs sees the same machine, and the figure is the
median over pairs of B/A ops/s and of B/A CPU per request (the nodes' own CPU time from
/proc, which the load generator does not share).

    python -m bench.ab_nodes --a /path/to/old/checkout --b . [--pairs 6] [--duration 2]
    python -m bench.ab_nodes --a /path/to/old/checkout --cluster 3 --workloads set --pipelines 16
    python -m bench.ab_nodes --a . --b-args '--peer-compress off' --cluster 3 --workloads set --pipelines 16

With ``--gen redis`` the load is ``redis-benchmark -c CONNS -d VALUE_SIZE -r 100000 -n N
-t set|get -P P`` against each node's ``--resp-port`` (N is ``--requests`` at P1, 5x that at
P16; workloads set and get only), as ``bench/stack_resp.py`` runs it.

With ``--cluster N`` each side is an N-node cluster (``--replicas N``, quorum writes, its
nodes all on core 0), the load spread over its nodes, and CPU per request is summed
over them.

Only one node carries load at a time; the idle one costs nothing but memory. The load
generator is ``bench/loadgen.py`` from this checkout for both, so both see the same
client. Loopback only.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import cloadgen
from bench.resp_redis import bench_args, run_benchmark
from bench.loadgen import parser as load_parser, run_load
from bench.servers import conditions, cpu_seconds, need_redis_tools, pin_prefix
from runtime.local_cluster import LocalCluster, NodeProcess

WORKLOADS = ("get", "set", "mix")
PIPELINES = (1, 16)


class Side:
    """One checkout's node, or cluster, pinned to ``cpu``: its addresses and pids."""

    def __init__(self, checkout: Path, cpu: int | None, cluster: int, resp: bool = False, extra: Sequence[str] = ()) -> None:
        command = [sys.executable, "-m", "runtime.node"]
        if cluster > 1:
            self._run: NodeProcess | LocalCluster = LocalCluster(
                cluster, command=command, cwd=checkout, prefix=pin_prefix(cpu), logs=False,
                node_args=["--log-level", "warning", "--replicas", str(cluster), "--write-consistency", "quorum", *extra],
            )
        else:
            self._run = NodeProcess(
                f"ab-{checkout.name}", "--log-level", "warning", *(("--resp-port", "0") if resp else ()), *extra,
                command=command, cwd=checkout, prefix=pin_prefix(cpu),
            )

    def __enter__(self) -> Side:
        self._run.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._run.__exit__(*exc)

    @property
    def addrs(self) -> list[str]:
        if isinstance(self._run, LocalCluster):
            return list(self._run.addresses.values())
        return [f"127.0.0.1:{self._run.port}"]

    @property
    def resp_port(self) -> int:
        assert isinstance(self._run, NodeProcess) and self._run.resp_port is not None
        return self._run.resp_port

    @property
    def pids(self) -> list[int]:
        return self._run.pids if isinstance(self._run, LocalCluster) else [self._run.pid]


def one_run(side: Side, workload: str, pipeline: int, args: argparse.Namespace, warm: bool = False) -> tuple[Any, float]:
    """The load's result against ``side`` and its nodes' CPU microseconds per request.
    ``args.gen == "c"``: the compiled generator (``bench/cloadgen.py``), which sets every
    key only on the warm-up run (``warm``); ``"redis"``: ``redis-benchmark`` on its RESP port;
    else ``bench/loadgen.py``."""
    if args.gen == "redis":
        n = args.requests * (1 if pipeline == 1 else 5)
        shape = argparse.Namespace(clients=args.conns, data_size=args.value_size, requests=n)
        cmd = [*bench_args(args.redis_benchmark, side.resp_port, workload, pipeline, shape, None), "-r", "100000"]
        run = run_benchmark(cmd, side.pids[0], workload, n, 120 + n / 1000)
        return argparse.Namespace(ops_per_s=run.ops_per_s, ops=n), run.cpu_us_per_op
    common = [
        "--conns", str(args.conns), "--pipeline", str(pipeline), "--workload", workload,
        "--value-size", str(args.value_size), "--keys", str(args.keys), "--duration", str(args.duration),
    ]
    cpu0 = sum(cpu_seconds(pid) for pid in side.pids)
    if args.gen == "c":
        result: Any = cloadgen.run_load(
            cloadgen.parser().parse_args(["--addr", side.addrs[0], *common, *([] if warm else ["--no-prefill"])])
        )
    else:
        result = run_load(load_parser().parse_args(["--addr", ",".join(side.addrs), *common, "--procs", "1"]))
    return result, (sum(cpu_seconds(pid) for pid in side.pids) - cpu0) / max(1, result.ops) * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--a", type=Path, required=True, help="the reference checkout (e.g. a worktree of the old commit)")
    p.add_argument("--b", type=Path, default=Path("."), help="the checkout under test (default: this one)")
    p.add_argument("--pairs", type=int, default=6, help="A/B pairs per cell (order alternates)")
    p.add_argument("--duration", type=float, default=2.0, help="seconds per run")
    p.add_argument("--conns", type=int, default=50)
    p.add_argument("--value-size", type=int, default=32)
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--pipelines", default=",".join(map(str, PIPELINES)))
    p.add_argument("--cluster", type=int, default=1, help="nodes per side (1: a single node)")
    p.add_argument(
        "--a-args", default="", metavar="ARGS",
        help="more node options for side A's nodes, one shell-quoted string (e.g. '--peer-compress off'): "
        "with --b the same checkout, A/B of an option",
    )
    p.add_argument("--b-args", default="", metavar="ARGS", help="more node options for side B's nodes")
    p.add_argument(
        "--gen", choices=("py", "c", "redis"), default="py",
        help="load generator: bench/loadgen.py, the compiled bench/loadgen.c (single node only: one address), "
        "or redis-benchmark on the RESP port (single node; workloads set, get)",
    )
    p.add_argument("--requests", type=int, default=100_000, help="--gen redis: requests per run at P1 (5x at P16)")
    args = p.parse_args(argv)
    if not 1 <= args.pairs <= 50 or not 0.5 <= args.duration <= 30 or not 1 <= args.cluster <= 7:
        p.error("--pairs must be 1..50, --duration 0.5..30 s, --cluster 1..7 (every load loop is bounded)")
    if args.gen in ("c", "redis") and args.cluster > 1:
        p.error(f"--gen {args.gen} drives one address: use it with a single node")
    if args.gen == "redis":
        if set(args.workloads.split(",")) - {"set", "get"} or not 1_000 <= args.requests <= 10_000_000:
            p.error("--gen redis: workloads set and get only, --requests 1000..10000000")
        args.redis_benchmark = need_redis_tools("redis-benchmark")["redis-benchmark"]
    if args.gen == "c":
        cloadgen.binary()  # built before anything is timed
    a_dir, b_dir = args.a.resolve(), args.b.resolve()
    a_args, b_args = shlex.split(args.a_args), shlex.split(args.b_args)
    # The load generator runs in this process's children: pin it (and them) to core 1,
    # the nodes to core 0 (on a machine with fewer cores, nothing is pinned).
    pinned = {0, 1} <= os.sched_getaffinity(0)
    if pinned:
        os.sched_setaffinity(0, {1})
    node_cpu = 0 if pinned else None
    placement = "nodes pinned to core 0, load generator to core 1" if pinned else "nothing pinned (fewer than 2 cores)"
    print(f"{conditions()}; A = {a_dir}, B = {b_dir}; {placement}; {args.gen} load generator; "
          f"{args.pairs} pairs x "
          + (f"{args.requests:,} requests (x5 at P16, -r 100000)" if args.gen == "redis" else f"{args.duration:g} s")
          + f" per cell, {args.conns} connections, {args.value_size} B values"
          + (f"; A's nodes add `{args.a_args}`" if a_args else "") + (f"; B's nodes add `{args.b_args}`" if b_args else "")
          + (f"; each side a {args.cluster}-node cluster, --replicas {args.cluster}, quorum writes" if args.cluster > 1 else ""))
    print()
    print("| workload | pipeline | A ops/s (median) | B ops/s (median) | B/A ops/s (median of pairs, min-max) | A us/req | B us/req | B/A us/req |")
    print("|---|---|---|---|---|---|---|---|")
    resp = args.gen == "redis"
    with Side(a_dir, node_cpu, args.cluster, resp, a_args) as a, Side(b_dir, node_cpu, args.cluster, resp, b_args) as b:
        for workload in args.workloads.split(","):
            for pipeline in map(int, args.pipelines.split(",")):
                one_run(a, workload, pipeline, args, warm=True)  # warm both: keys loaded, caches hot
                one_run(b, workload, pipeline, args, warm=True)
                ops: dict[str, list[float]] = {"a": [], "b": []}
                cpu: dict[str, list[float]] = {"a": [], "b": []}
                for i in range(args.pairs):
                    order = (("a", a), ("b", b)) if i % 2 == 0 else (("b", b), ("a", a))
                    for name, node in order:
                        result, us = one_run(node, workload, pipeline, args)
                        ops[name].append(result.ops_per_s)
                        cpu[name].append(us)
                ratios = [bo / ao for ao, bo in zip(ops["a"], ops["b"])]
                cpu_ratios = [bc / ac for ac, bc in zip(cpu["a"], cpu["b"])]
                print(
                    f"| {workload} | {pipeline} | {statistics.median(ops['a']):,.0f} | {statistics.median(ops['b']):,.0f} "
                    f"| {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) "
                    f"| {statistics.median(cpu['a']):.1f} | {statistics.median(cpu['b']):.1f} | {statistics.median(cpu_ratios):.2f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
