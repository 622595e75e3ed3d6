"""A real node's CPU time per message type, fitted for the simulator's service-time model.
``python -m bench.service_time [--requests N] [--record] [--write sim/data/service_times.toml]``;
``--sim-ab SCENARIO`` measures instead what the model costs the simulator.

The simulator (:mod:`sim.service`) makes each node a single server: every client request
and every peer message costs it CPU time, one at a time, with queueing when busy. The
costs it draws come from here, measured on real ``python -m runtime.node`` processes.

How: one client sends ``--requests`` requests one after another (no pipelining: the
simulator's clients and :func:`sim.real.real_workload` do the same, so each message pays
its own loop pass, decode and write). Before each request, and after its reply plus a
short gap (so the replicas' part is done too), the bench reads every node's on-CPU time
from ``/proc/PID/task/*/schedstat`` (nanoseconds, summed over threads); the difference,
less the node's idle CPU over the same window (heartbeats, timers: measured alone
first), is that request's cost at that node. Three runs:

1. one node, ``--replicas 1``: sets, then gets: ``client.set`` and ``client.get``
   (decode, apply at the local store, encode and write the reply); then pings, and
   ping round trips (:func:`sim.real.ping_rtts`): ``client.link``, the clients' one-way
   link, is half a round trip (the client's own work and the loopback; the node's CPU
   per ping, measured too, is in it as well and shows how much that overstates);
2. three nodes, ``--replicas 3 --write-consistency quorum``, every set sent to node1:
   node2's and node3's cost per set is one replica request served (receive, decode,
   apply, encode and send the answer); node1's cost per set less the median
   single-node set is two replica requests sent plus two answers received.

Splitting these into the simulator's message types takes one assumption, stated here
and in ``bench/RESULTS.md``: sending a peer message (encode, write) costs what receiving
one does (read, decode), so node1's extra is four equal parts (``peer.send`` and
``peer.answer``), and ``peer.request`` is node2/3's cost less one ``peer.send``. Each
type's CPU samples are fitted with :func:`sim.latency.fit_lognormal` (p50 and p99 match the
samples'), the client link with :func:`sim.latency.fit_body` (median and interquartile range: the
link, not the machine's stalls), and written, with the command that made them, to ``--write`` (the simulator
loads ``sim/data/service_times.toml``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.results import machine, record
from bench.servers import conditions
from runtime.local_cluster import LocalCluster
from sim.latency import fit_body, fit_lognormal, percentiles
from sim.real import ping_rtts
from sim.service import DATA_FILE, ServiceModel

HEADING = "Service time: a real node's CPU per message type, for the simulator (`bench/service_time.py`)"


def cpu_ns(pid: int) -> int:
    """On-CPU nanoseconds of every thread of ``pid`` so far (``schedstat``'s first field)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that ended meanwhile
    return total


def idle_rates(pids: Sequence[int], seconds: float) -> list[float]:
    """Each process's CPU nanoseconds per second while nobody sends it anything."""
    before = [cpu_ns(p) for p in pids]
    t0 = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    return [(cpu_ns(p) - b) / elapsed for p, b in zip(pids, before)]


def per_request(
    pids: Sequence[int], send: Callable[[int], object], count: int, gap_s: float, idle: Sequence[float]
) -> list[list[float]]:
    """Per process, each request's CPU microseconds (idle CPU over its window taken off)."""
    out: list[list[float]] = [[] for _ in pids]
    for i in range(count):
        before = [cpu_ns(p) for p in pids]
        t0 = time.monotonic()
        send(i)
        time.sleep(gap_s)
        elapsed = time.monotonic() - t0
        for j, (p, b) in enumerate(zip(pids, before)):
            out[j].append((cpu_ns(p) - b - idle[j] * elapsed) / 1000.0)
    return out


def measure(requests: int, gap_s: float, warmup: int) -> dict[str, list[float]]:
    """Samples (µs) per simulator message type; see the module docstring."""
    from runtime.client import Client

    samples: dict[str, list[float]] = {}
    value = "x" * 32
    quiet = ["--log-level", "warning"]
    with LocalCluster(1, node_args=[*quiet, "--replicas", "1"]) as single:
        (address,) = single.addresses.values()
        pids = single.pids
        with Client(address) as client:
            for i in range(warmup):
                client.set(f"k{i % 100}", value)
            idle = idle_rates(pids, 1.0)
            (samples["client.set"],) = per_request(pids, lambda i: client.set(f"k{i % 100}", value), requests, gap_s, idle)
            (samples["client.get"],) = per_request(pids, lambda i: client.get(f"k{i % 100}"), requests, gap_s, idle)
            (samples["client.ping"],) = per_request(pids, lambda i: client.ping(), requests, gap_s, idle)
        rtts = ping_rtts([address], count=requests)
    samples["ping.rtt"] = [rtt * 1000.0 for rtt in rtts]
    # The clients' link one way: half a ping's round trip. It holds the client's own CPU
    # (encode, syscalls, wake-up, decode), which the simulator models nowhere else, and
    # the node's work on a ping, which is short next to a set's (an overestimate by that).
    samples["client.link"] = [rtt * 1000.0 / 2 for rtt in rtts]
    with LocalCluster(3, node_args=[*quiet, "--replicas", "3", "--write-consistency", "quorum"]) as cluster:
        address = cluster.addresses["node1"]
        pids = cluster.pids
        with Client(address) as client:
            for i in range(warmup):
                client.set(f"k{i % 100}", value)
            idle = idle_rates(pids, 1.0)
            coordinator, *replicas = per_request(pids, lambda i: client.set(f"k{i % 100}", value), requests, gap_s, idle)
    samples["coordinator.set"] = coordinator
    samples["replica.set"] = [v for r in replicas for v in r]
    single_set = statistics.median(samples["client.set"])
    quarter = [(v - single_set) / 4 for v in coordinator]
    samples["peer.send"] = quarter
    samples["peer.answer"] = quarter
    send = statistics.median(quarter)
    samples["peer.request"] = [v - send for v in samples["replica.set"]]
    return samples


def sim_ab(scenario: str, seeds: Sequence[int]) -> str:
    """What service time costs the simulator: ``scenario`` with the measured model and
    with none (``service = "none"``), each seed both ways in this process (order
    alternating), CPU seconds and SimPy events of each, as a Markdown table."""
    import dataclasses

    from sim.runner import Runner
    from sim.scenario import BUILTIN

    lines = [
        f"Simulator cost of service time: `{scenario}`, each seed with the measured model and with none, "
        "in one process (order alternating):", "",
        "| seed | events, none | events, service | CPU s, none | CPU s, service | service / none |", "|---|---|---|---|---|---|",
    ]
    ratios = []
    for seed in seeds:
        cpu: dict[str, float] = {}
        events: dict[str, int] = {}
        for way in ("none", "service") if seed % 2 else ("service", "none"):
            chosen = BUILTIN[scenario] if way == "service" else dataclasses.replace(BUILTIN[scenario], service=None)
            runner = Runner(chosen, seed)
            t0 = time.process_time()
            try:
                events[way] = runner.run().events
            finally:
                runner.close()
            cpu[way] = time.process_time() - t0
        ratios.append(cpu["service"] / cpu["none"])
        lines.append(f"| {seed} | {events['none']:,} | {events['service']:,} | {cpu['none']:.2f} | {cpu['service']:.2f} | {ratios[-1]:.2f} |")
    lines += ["", f"Median CPU ratio service / none: {statistics.median(ratios):.2f}."]
    return "\n".join(lines)


#: The simulator's message types, as fitted (the other samples are the measurements they derive from).
FITTED = ("client.set", "client.get", "peer.request", "peer.answer", "peer.send", "client.link")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.service_time", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=600, help="requests per measured kind (default 600)")
    parser.add_argument("--gap-ms", type=float, default=3.0, help="wait after each reply (default 3 ms)")
    parser.add_argument("--warmup", type=int, default=200, help="requests sent before measuring (default 200)")
    parser.add_argument("--write", metavar="FILE", help=f"write the fitted model here (the simulator's: {DATA_FILE})")
    parser.add_argument("--record", action="store_true", help="add the figures to bench/RESULTS.md")
    parser.add_argument("--sim-ab", metavar="SCENARIO", help="instead: what service time costs the simulator on this built-in")
    parser.add_argument("--seeds", type=int, default=3, help="seeds for --sim-ab (default 3)")
    args = parser.parse_args(argv)
    command = "python -m bench.service_time " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.sim_ab:
        text = "\n".join([machine(), conditions(), "", sim_ab(args.sim_ab, range(1, args.seeds + 1))])
        print(text)
        if args.record:
            record(HEADING, command, text)
        return 0
    if not sys.platform.startswith("linux"):
        raise SystemExit("reads /proc/PID/task/*/schedstat: Linux only")
    when = conditions()
    samples = measure(args.requests, args.gap_ms / 1000.0, args.warmup)
    lines = [
        machine(), when, "",
        "CPU µs per request at one node (sequential requests, idle CPU taken off):", "",
        "| measured | p50 µs | p90 µs | p99 µs | mean µs | n |", "|---|---|---|---|---|---|",
    ]
    for name, values in samples.items():
        p = percentiles(values)
        lines.append(f"| {name} | {p['p50']:.0f} | {p['p90']:.0f} | {p['p99']:.0f} | {statistics.fmean(values):.0f} | {p['count']} |")
    models = {name: fit_lognormal([v / 1000.0 for v in samples[name]]) for name in FITTED if name != "client.link"}
    models["client.link"] = fit_body([v / 1000.0 for v in samples["client.link"]])
    lines += ["", "Fitted (seconds; `sim/data/service_times.toml`, loaded by `sim.service`):", ""]
    lines += [f"- `{name}`: {model.describe()}" for name, model in models.items()]
    text = "\n".join(lines)
    print(text)
    if args.write:
        ServiceModel(models, source=f"{command.strip()} ({time.strftime('%Y-%m-%d')}; {when})").save(Path(args.write))
        print(f"wrote {args.write}")
    if args.record:
        record(HEADING, command, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
