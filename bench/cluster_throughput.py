"""A 3-node loopback cluster vs a single node: peak set throughput, and replication
latency at half the cluster's peak. ``python -m bench.cluster_throughput [--record]``.

1. Peak: :mod:`bench.loadgen` drives ``set`` requests (JSON lines, 50 connections,
   pipeline 16, 32 B values) as fast as replies come back, at a single node and at a
   3-node cluster (``--replicas 3 --write-consistency quorum``; the connections spread
   over the three nodes), ``--rounds`` times interleaved (median shown). Ratio
   cluster/single, and each side's node CPU time per request (all its processes, /proc).
2. Replication latency: a fresh cluster with ``--trace FILE --trace-sample S`` on each node
   (``--trace-sample``, default 0.01: the writes of 1% of the keys are traced, the same keys
   on every node) takes the same load rate-limited to half the cluster's untraced peak
   (``loadgen --rate``). From the merged traces (one system-wide monotonic clock),
   :func:`sim.latency.replication_latencies` gives milliseconds from the coordinator
   accepting a write (``write``) to each replica applying it (``apply``): without the
   coordinator's own copy, and with it.
3. ``--trace-cost``: the cost of tracing itself. Two more clusters, one without ``--trace``
   and one tracing every write (``--trace-sample 1``), take the same rate-limited load,
   ``--rounds`` times, the three alternating (order reversed every other round); each one's
   node CPU per set (median over the rounds) and, for both traced ones, replication latency.

``--pin``: every node on CPU 0 (``taskset``), this process and its load generator on CPU 1.
``--spread`` (with ``--pin``): the clusters' nodes alternate CPUs (node1 on 0, node2 on 1,
node3 on 0) and the load generator is not pinned; the single node stays on CPU 0 with the
load on CPU 1. On a 2-core machine the three nodes then do not all queue on one core (the
replication latency's main cause under ``--pin``), at the price of sharing a core with
the load generator.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench.loadgen import LoadResult, parser as load_parser, run_load
from bench.results import RESULTS, machine, record
from bench.servers import conditions, cpu_seconds, node_server, pin_prefix
from runtime.argtypes import fraction
from runtime.local_cluster import LocalCluster
from sim.latency import percentiles, replication_latencies
from sim.traces import TraceEvent, load_trace

HEADING = "Cluster: set throughput and replication latency at half of peak (`bench/cluster_throughput.py`)"
CLUSTER_ARGS = ["--replicas", "3", "--write-consistency", "quorum", "--log-level", "warning"]


def load(addrs: list[str], args: argparse.Namespace, rate: float = 0.0) -> LoadResult:
    return run_load(
        load_parser().parse_args(
            [
                "--addr", ",".join(addrs),
                "--conns", str(args.conns),
                "--pipeline", str(args.pipeline),
                "--workload", "set",
                "--value-size", str(args.value_size),
                "--keys", str(args.keys),
                "--duration", str(args.duration),
                "--procs", str(args.procs),
                "--rate", str(rate),
            ]
        )
    )


def measured(addrs: list[str], pids: list[int], args: argparse.Namespace, rate: float = 0.0) -> tuple[LoadResult, float]:
    """The load's result and the servers' CPU microseconds per request during it."""
    cpu0 = sum(cpu_seconds(pid) for pid in pids)
    result = load(addrs, args, rate)
    cpu1 = sum(cpu_seconds(pid) for pid in pids)
    return result, (cpu1 - cpu0) / max(1, result.ops) * 1e6


def spread_pids(pids: list[int]) -> None:
    """Pin the i-th process to CPU ``i % 2`` (every thread it has: a node's are few)."""
    for i, pid in enumerate(pids):
        for tid in os.listdir(f"/proc/{pid}/task"):
            os.sched_setaffinity(int(tid), {i % 2})


def _median(runs: list[tuple[LoadResult, float]]) -> tuple[LoadResult, float]:
    ordered = sorted(runs, key=lambda r: r[0].ops_per_s)
    return ordered[(len(ordered) - 1) // 2]


def _latency_rows(name: str, trace: list[TraceEvent]) -> list[str]:
    rows = []
    for what, local in (("to the other replicas (coordinator's own copy excluded)", False), ("to every replica (coordinator's own copy included)", True)):
        q = percentiles(replication_latencies(trace, local=local))
        rows.append(
            f"| {what}{name} | {q['p50']:.3f} | {q['p90']:.3f} | {q['p99']:.3f} | {q['max']:.3f} | {q['count']:,} |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cluster_throughput")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per load run")
    p.add_argument("--conns", type=int, default=50)
    p.add_argument("--pipeline", type=int, default=16)
    p.add_argument("--value-size", type=int, default=32)
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--procs", type=int, default=1, help="load generator processes")
    p.add_argument("--rounds", type=int, default=3, help="interleaved peak runs; the median is reported")
    p.add_argument("--fraction", type=float, default=0.5, help="of the cluster's peak, for the latency run")
    p.add_argument(
        "--trace-sample", type=fraction, default=0.01, metavar="FRACTION",
        help="the latency run's nodes' --trace-sample: the share of keys whose writes are traced (default 0.01)",
    )
    p.add_argument(
        "--trace-cost", action="store_true",
        help="also run the latency load on a cluster without --trace and on one tracing every write, "
        "--rounds times alternating with the sampled one: node CPU per set of each",
    )
    p.add_argument("--pin", action="store_true", help="nodes on CPU 0, this process and its load generator on CPU 1")
    p.add_argument(
        "--spread", action="store_true",
        help="with --pin: the clusters' nodes alternate CPU 0 and CPU 1, the load generator unpinned",
    )
    p.add_argument("--record", action="store_true", help="append the figures to bench/RESULTS.md")
    p.add_argument("--results", type=Path, default=RESULTS, help=argparse.SUPPRESS)  # tests record elsewhere
    args = p.parse_args(argv)
    load_note = conditions()  # before we load the machine ourselves
    node_cpu = 0 if args.pin and pin_prefix(1) else None
    spread_nodes = args.spread and node_cpu is not None
    if node_cpu is not None:
        os.sched_setaffinity(0, {1})  # the load generator's processes inherit it
    prefix = pin_prefix(node_cpu)
    cluster_prefix = [] if spread_nodes else prefix  # spread: pinned node by node once started

    def started(cluster: LocalCluster) -> LocalCluster:
        if spread_nodes:
            spread_pids(cluster.pids)
        return cluster

    def load_cpus() -> None:
        """The load generator's CPUs for a cluster's run (both under --spread)."""
        if node_cpu is not None:
            os.sched_setaffinity(0, {0, 1} if spread_nodes else {1})

    single_runs: list[tuple[LoadResult, float]] = []
    cluster_runs: list[tuple[LoadResult, float]] = []
    solo = node_server("solo", resp=False, cpu=node_cpu)
    try:
        with LocalCluster(3, node_args=CLUSTER_ARGS, prefix=cluster_prefix) as cluster:
            started(cluster)
            addrs = list(cluster.addresses.values())
            for _ in range(args.rounds):
                if node_cpu is not None:
                    os.sched_setaffinity(0, {1})
                single_runs.append(measured([f"127.0.0.1:{solo.port}"], [solo.pid], args))
                load_cpus()
                cluster_runs.append(measured(addrs, cluster.pids, args))
                for name, (r, cpu) in (("single", single_runs[-1]), ("cluster", cluster_runs[-1])):
                    print(
                        f"  {name:7} {r.ops_per_s:,.0f} set/s, p50 {r.percentile(0.5):.2f} ms, "
                        f"p99 {r.percentile(0.99):.2f} ms, {r.errors} errors, node CPU {cpu:.1f} us/set",
                        file=sys.stderr, flush=True,
                    )
    finally:
        solo.terminate()
    single, single_cpu = _median(single_runs)
    peak, cluster_cpu = _median(cluster_runs)
    target = peak.ops_per_s * args.fraction

    sampled = f"--trace --trace-sample {args.trace_sample:g}"
    # (label, --trace-sample or None for no --trace); the sampled cluster is the latency run.
    variants: list[tuple[str, float | None]] = [(sampled, args.trace_sample)]
    if args.trace_cost:
        variants = [("no --trace", None), ("--trace, every write (--trace-sample 1)", 1.0), *variants]
    rated_runs: dict[str, list[tuple[LoadResult, float]]] = {label: [] for label, _ in variants}
    traces: dict[str, list[TraceEvent]] = {}
    with tempfile.TemporaryDirectory(prefix="actorcache-trace-") as tmp, contextlib.ExitStack() as stack:
        clusters = {}
        for n, (label, sample) in enumerate(variants):
            if sample is None:
                clusters[label] = started(stack.enter_context(LocalCluster(3, node_args=CLUSTER_ARGS, prefix=cluster_prefix)))
            else:
                clusters[label] = started(stack.enter_context(
                    LocalCluster(
                        3, trace_dir=Path(tmp) / str(n), prefix=cluster_prefix,
                        node_args=[*CLUSTER_ARGS, "--trace-sample", f"{sample!r}"],
                    )
                ))
        load_cpus()
        for round_ in range(args.rounds if args.trace_cost else 1):
            for label, _ in variants if round_ % 2 == 0 else variants[::-1]:
                c = clusters[label]
                rated_runs[label].append(measured(list(c.addresses.values()), c.pids, args, rate=target))
                r, cpu = rated_runs[label][-1]
                print(
                    f"  {label}: {r.ops_per_s:,.0f} set/s, p99 {r.percentile(0.99):.2f} ms, node CPU {cpu:.1f} us/set",
                    file=sys.stderr, flush=True,
                )
        stack.close()  # the nodes flush their traces on exit
        for label, sample in variants:
            if sample is not None:
                traces[label] = load_trace(*clusters[label].trace_files)
    trace = traces[sampled]
    writes = sum(1 for _, _, kind, _ in trace if kind == "write")
    rated, rated_cpu = _median(rated_runs[sampled])

    def row(name: str, r: LoadResult, cpu: float, ratio: float, cpu_ratio: float) -> str:
        return (
            f"| {name} | {r.ops_per_s:,.0f} | {r.percentile(0.5):.2f} / {r.percentile(0.99):.2f} | {cpu:.1f} "
            f"| {r.errors:,} | {ratio:.2f} | {cpu_ratio:.2f} |"
        )

    # CPU per set: the medians' ratio, and the median of each round's ratio (a round's two
    # runs are neighbours in time, so a busy spell on the shared machine hits both).
    round_cpu = statistics.median(c / s for (_, c), (_, s) in zip(cluster_runs, single_runs))
    throughput = "\n".join(
        [
            "| set, 50 connections, pipeline 16 | ops/s | p50 / p99 ms (per batch) | node CPU us/set (all processes) "
            "| errors | ops/s vs single node | CPU per set vs single node |",
            "|---|---|---|---|---|---|---|",
            row("single node", single, single_cpu, 1.0, 1.0),
            row(
                "3 nodes, --replicas 3, quorum writes", peak, cluster_cpu, peak.ops_per_s / single.ops_per_s,
                cluster_cpu / single_cpu,
            ),
        ]
    ) + (
        f"\n\nCPU per acknowledged set, cluster (all three nodes) / single node: {cluster_cpu / single_cpu:.2f}x "
        f"(the median-throughput runs), {round_cpu:.2f}x (median of the per-round ratios: "
        + ", ".join(f"{c / s:.2f}" for (_, c), (_, s) in zip(cluster_runs, single_runs))
        + ")."
    )
    latency_rows = _latency_rows("", trace)
    if "--trace, every write (--trace-sample 1)" in traces:
        latency_rows += _latency_rows(", every write traced", traces["--trace, every write (--trace-sample 1)"])
    latency = "\n".join(
        ["| replication latency, ms | p50 | p90 | p99 | max | samples |", "|---|---|---|---|---|---|", *latency_rows]
    )
    cost = ""
    if args.trace_cost:
        off_cpu = statistics.median(cpu for _, cpu in rated_runs["no --trace"])
        lines = [
            f"| latency load, `--rate {target:,.0f}` | set/s (median) | client p99 ms per batch (median) "
            "| node CPU us/set (median) | vs no --trace (medians) | vs no --trace (median of per-round ratios) "
            "| CPU us/set per round |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, _ in variants:
            runs = rated_runs[label]
            cpu = statistics.median(c for _, c in runs)
            per_round = statistics.median(c / off for (_, c), (_, off) in zip(runs, rated_runs["no --trace"]))
            lines.append(
                f"| {label} | {statistics.median(r.ops_per_s for r, _ in runs):,.0f} "
                f"| {statistics.median(r.percentile(0.99) for r, _ in runs):.2f} | {cpu:.1f} | {cpu / off_cpu:.2f} "
                f"| {per_round:.2f} | {', '.join(f'{c:.1f}' for _, c in runs)} |"
            )
        cost = "\n".join(lines)
    rated_text = (
        f"Latency run: a fresh traced cluster (`{sampled}` on each node), `--rate {target:,.0f}` "
        f"({args.fraction:.0%} of the peak above), achieved {rated.ops_per_s:,.0f} set/s "
        f"({rated.ops_per_s / peak.ops_per_s:.0%} of peak) for {args.duration:g} s; client p50 / p99 per batch "
        f"{rated.percentile(0.5):.2f} / {rated.percentile(0.99):.2f} ms; {rated.errors:,} errors; "
        f"node CPU {rated_cpu:.1f} us/set"
        + (f" (the median of {args.rounds} rounds)" if args.trace_cost else "")
        + f"; {writes:,} traced writes" + (", all rounds: the latency tables below are over them." if args.trace_cost else ".")
    )
    spread = (
        f"Peak ops/s over the rounds: single {', '.join(f'{r.ops_per_s:,.0f}' for r, _ in single_runs)}; "
        f"cluster {', '.join(f'{r.ops_per_s:,.0f}' for r, _ in cluster_runs)}."
    )
    print(throughput, latency, rated_text, spread, *([cost] if cost else []), sep="\n\n", flush=True)
    if args.record:
        record(
            HEADING,
            "python -m bench.cluster_throughput " + " ".join(argv if argv is not None else sys.argv[1:]),
            f"{machine()}; {load_note}; nodes and load generator ({args.procs} process(es)) share the machine, all on loopback"
            + (
                "; the single node pinned to CPU 0 and its load generator to CPU 1; the clusters' nodes alternate "
                "CPU 0 / CPU 1 / CPU 0 (node1 / node2 / node3), their load generator unpinned; "
                if spread_nodes
                else "; every node pinned to CPU 0, the load generator to CPU 1 (`taskset`); "
                if node_cpu is not None
                else "; no pinning; "
            )
            +
            f"`bench/loadgen.py --workload set --conns {args.conns} --pipeline {args.pipeline} --value-size "
            f"{args.value_size} --keys {args.keys:,}`, {args.duration:g} s per run; the cluster's connections spread "
            f"over its 3 nodes; {args.rounds} interleaved peak round(s), the median shown.\n\n"
            + throughput + "\n\n" + spread + "\n\n" + rated_text + "\n\n" + latency + ("\n\n" + cost if cost else ""),
            path=args.results,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
