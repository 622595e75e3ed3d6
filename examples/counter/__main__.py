"""Run the replicated counter both ways: ``python -m examples.counter [--host sim|loop]``.

Starts ``--nodes`` replicas, makes ``--increments`` increments of 1 at nodes chosen from
``Random(f"{seed}/workload")``, with the first node cut off from the others for the first
half (simulator only: the loop host has no faults), then waits until every replica reads
the total. Prints each replica's value, the host time convergence took, and in the
simulator the SHA-256 of the trace: the same seed prints the same digest, in any process.

This module picks the hosts, so it is the one part of the example that imports them; the
system itself (``replica.py``, ``system.py``) knows only ``actors.kernel``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from typing import Any

from examples.counter.replica import Increment, Read
from examples.counter.system import CounterConfig, spawn_counter


def converge(host: Any, expected: int, within: float, step: float = 0.02) -> float:
    """Let host time pass until every replica reads ``expected``; returns when (host seconds)."""
    deadline = host.now() + within
    while True:
        values = [host.ask(handle.replica, Read()) for handle in host.nodes.values()]
        if all(v == expected for v in values):
            return host.now()
        if host.now() > deadline:
            raise TimeoutError(f"replicas read {values}, not {expected}, after {within} s")
        host.run_for(step)


def scenario(host: Any, seed: int | str, nodes: int, increments: int) -> dict[str, Any]:
    ids = tuple(f"n{i}" for i in range(1, nodes + 1))
    for node_id in ids:
        host.start_node(node_id, CounterConfig(peers=ids))
    network = getattr(host, "network", None)  # the simulator's; the loop host has no faults
    if network is not None and nodes > 1:
        network.partition(ids[:1], ids[1:])
    workload = random.Random(f"{seed}/workload")
    for i in range(increments):
        if network is not None and i == increments // 2:
            network.heal()
        host.ask(host.nodes[workload.choice(ids)].replica, Increment(1))
        host.run_for(0.01)
    if network is not None:
        network.heal()
    started = host.now()
    converged = converge(host, increments, within=30.0)
    return {
        "values": {node_id: host.ask(host.nodes[node_id].replica, Read()) for node_id in ids},
        "converged_after_s": round(converged - started, 3),
    }


def trace_digest(trace: list[tuple[float, str, str, dict[str, Any]]]) -> str:
    lines = (json.dumps([t, node, kind, fields], sort_keys=True) for t, node, kind, fields in trace)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.counter", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", choices=("sim", "loop"), default="sim", help="SimPy in virtual time, or an asyncio loop in real time")
    parser.add_argument("--seed", default="1", help="the simulator's seed (and the workload's, on both hosts)")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--increments", type=int, default=30)
    args = parser.parse_args(argv)
    if args.host == "sim":
        from sim.host import SimHost

        host: Any = SimHost(spawn_counter, args.seed)
    else:
        from runtime.host import ThreadedLoopHost

        host = ThreadedLoopHost(spawn_counter)
    try:
        result = scenario(host, args.seed, args.nodes, args.increments)
        if args.host == "sim":
            result["trace_sha256"] = trace_digest(host.trace)
    finally:
        host.shutdown()
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
