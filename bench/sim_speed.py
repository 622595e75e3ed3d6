"""How fast the simulator runs: ``python -m bench.sim_speed [--seeds 3] [--record]``.

Runs the built-in ``partition-heal`` scenario (5 nodes, 60 simulated seconds, 10,000
client operations) for a few seeds and reports wall time, simulated seconds per wall
second and SimPy events per wall second. For scale, the same run measures a bare SimPy
loop that only processes zero-work timeouts: the ceiling for any SimPy simulation on
this machine, so the ratio says how much of it our actors, network and checkers use.
Goal (issue 4): the partition-heal run in under 10 s.

``--ab``: what carrying bytes costs (issue 15). Each seed runs twice in the same process,
peers handing message objects over (``--no-wire``) and peers talking the peer protocol's
bytes (the default, :mod:`sim.peer_wire`), in alternating order, and the table gives each
one's CPU seconds (``time.process_time``: the machine is shared) and their ratio, with
the bytes the links carried and whether both gave the same trace.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import simpy

from bench.results import machine, record
from sim.runner import Runner, RunResult
from sim.scenario import BUILTIN

def bare_simpy_events_per_s(events: int = 300_000) -> float:
    env = simpy.Environment()

    def ticker(env: simpy.Environment, n: int):  # type: ignore[no-untyped-def]
        for _ in range(n):
            yield env.timeout(0.001)

    for _ in range(10):
        env.process(ticker(env, events // 10))
    t0 = time.perf_counter()
    env.run()
    return events / (time.perf_counter() - t0)


def _cpu_run(seed: int, wire: bool) -> tuple[float, RunResult]:
    runner = Runner(BUILTIN["partition-heal"], seed, wire=wire)
    try:
        t0 = time.process_time()
        result = runner.run()
        return time.process_time() - t0, result
    finally:
        runner.close()


def wire_ab(seeds: int) -> str:
    """The table of ``--ab``: objects vs bytes, per seed, CPU seconds and their ratio."""
    rows = []
    ratios = []
    load = os.getloadavg()[0]
    for seed in range(1, seeds + 1):
        order = (False, True) if seed % 2 else (True, False)
        runs = {wire: _cpu_run(seed, wire) for wire in order}
        (cpu_obj, objects), (cpu_bytes, wired) = runs[False], runs[True]
        ratios.append(cpu_bytes / cpu_obj)
        same = "yes" if objects.trace_sha256 == wired.trace_sha256 else "NO"
        rows.append(
            f"| {seed} | {wired.messages:,} | {wired.peer_bytes['total']:,} | {cpu_obj:.2f} | {cpu_bytes:.2f} | "
            f"{cpu_bytes / cpu_obj:.2f} | {same} | {wired.peer_links['unsendable']} / {wired.peer_links['bad_frames']} |"
        )
        print(rows[-1], flush=True)
    ratios.sort()
    header = (
        "| seed | peer messages | peer bytes | CPU s, objects | CPU s, bytes | bytes / objects | same trace "
        "| unsendable / bad frames |\n|---|---|---|---|---|---|---|---|"
    )
    return (
        f"{machine()}; load average {load:.2f} (1 min) as the run began; 5-node partition-heal, each seed run "
        "both ways in the same process (alternating order).\n\n"
        f"{header}\n" + "\n".join(rows) + f"\n\nMedian CPU ratio bytes / objects: {ratios[len(ratios) // 2]:.2f}."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sim_speed")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--record", action="store_true", help="append the figures to bench/RESULTS.md")
    parser.add_argument("--ab", action="store_true", help="peers in objects vs in bytes: the CPU cost of the wire")
    parser.add_argument(
        "--scenario", default="partition-heal", choices=list(BUILTIN),
        help="the built-in scenario timed (the recorded figures are partition-heal's; the smoke test runs a short one)",
    )
    parser.add_argument("--bare-events", type=int, default=300_000, help="events of the bare SimPy loop timed first")
    args = parser.parse_args(argv)
    if args.record and args.scenario != "partition-heal":
        parser.error("--record records partition-heal's figures (its heading says so); drop --scenario")
    if args.ab:
        text = wire_ab(args.seeds)
        print(text)
        if args.record:
            record(
                "Simulator: the cost of carrying bytes (`bench/sim_speed.py --ab`)",
                "python -m bench.sim_speed " + " ".join(argv if argv is not None else sys.argv[1:]),
                text,
            )
        return 0
    bare = bare_simpy_events_per_s(args.bare_events)
    rows = []
    for seed in range(1, args.seeds + 1):
        runner = Runner(BUILTIN[args.scenario], seed)
        try:
            result = runner.run()
        finally:
            runner.close()
        ops = sum(result.ops.values())
        rate = result.events / result.wall_s
        rows.append(
            f"| {seed} | {ops:,} | {result.sim_time_s:g} | {result.wall_s:.2f} | "
            f"{result.sim_time_s / result.wall_s:.1f} | {result.events:,} | {rate:,.0f} | {rate / bare:.2f} | "
            f"{len(result.violations)} |"
        )
        print(rows[-1], flush=True)
    header = (
        "| seed | client ops | simulated s | wall s | simulated s per wall s | SimPy events | events/s "
        "| events/s vs bare SimPy | violations |\n|---|---|---|---|---|---|---|---|---|"
    )
    text = f"{machine()}; bare SimPy loop in the same run: {bare:,.0f} events/s.\n\n{header}\n" + "\n".join(rows)
    print(text)
    if args.record:
        record(
            "Simulator speed: 5-node partition-heal, 60 simulated s, 10,000 ops (`bench/sim_speed.py`)",
            "python -m bench.sim_speed " + " ".join(argv if argv is not None else sys.argv[1:]),
            text,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
