"""How long the cluster takes to notice an outage, the first time and again soon after:
``python -m bench.failure_detection [--scenario scenarios/second-partition.toml] [--seeds 3] [--record]``.

Runs a scenario whose faults isolate one node more than once (by default
``scenarios/second-partition.toml``: n3 cut off for 6 s, healed, cut off again 4 s later)
in the simulator, and reads from each run's trace when the other nodes mark the isolated
node ``suspect`` and ``down`` after each isolation. Same run, same seeds, two failure
detectors: the one in ``actors/`` (long intervals dropped) and the same detector keeping
every interval (how it was before), so the figures compare like with like.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from pathlib import Path

from actors.cluster import failure_detector
from bench.results import machine, record
from sim.run import run_once
from sim.scenario import load_scenario

DEFAULT_SCENARIO = str(Path(__file__).resolve().parent.parent / "scenarios" / "second-partition.toml")


def detection_times(scenario: str, seed: int) -> list[tuple[float, float]]:
    """Per isolation fault: seconds until the first other node marks the isolated node
    ``suspect`` and ``down`` (``nan`` when it never does before the next fault)."""
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.jsonl"
        run_once(scenario, seed, trace)
        events = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines() if line]
    faults = [e for e in events if e["kind"] == "fault"]
    times = []
    for i, fault in enumerate(faults):
        if fault["action"] != "partition" or not fault["detail"].endswith(" isolated"):
            continue
        node = fault["detail"].split()[0]
        end = faults[i + 1]["t"] if i + 1 < len(faults) else math.inf
        seen: dict[str, float] = {}
        for e in events:
            if e["kind"] != "view" or e["node"] == node or not fault["t"] <= e["t"] < end:
                continue
            state = e.get("changes", {}).get(node, "").split("/")[-1]
            if state in ("suspect", "down") and state not in seen:
                seen[state] = e["t"] - fault["t"]
        times.append((seen.get("suspect", math.nan), seen.get("down", math.nan)))
    return times


def measure(scenario: str, seeds: list[int], keep_long_intervals: bool) -> list[list[tuple[float, float]]]:
    saved = failure_detector.MAX_INTERVAL_HEARTBEATS
    if keep_long_intervals:
        failure_detector.MAX_INTERVAL_HEARTBEATS = math.inf  # type: ignore[assignment]
    try:
        return [detection_times(scenario, seed) for seed in seeds]
    finally:
        failure_detector.MAX_INTERVAL_HEARTBEATS = saved


def _cell(runs: list[list[tuple[float, float]]], outage: int, which: int) -> str:
    values = [run[outage][which] for run in runs if len(run) > outage]
    return f"{statistics.median(values):.2f}" if values else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.failure_detection")
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--record", action="store_true", help="append the figures to bench/RESULTS.md")
    args = parser.parse_args(argv)
    load_scenario(args.scenario)  # a clear error before any run
    seeds = list(range(1, args.seeds + 1))
    variants = {
        "every interval kept (before)": measure(args.scenario, seeds, keep_long_intervals=True),
        f"intervals > {failure_detector.MAX_INTERVAL_HEARTBEATS} heartbeats dropped (now)": measure(
            args.scenario, seeds, keep_long_intervals=False
        ),
    }
    outages = max(len(run) for runs in variants.values() for run in runs)
    header = "| failure detector | " + " | ".join(
        f"outage {i + 1} suspect s | outage {i + 1} down s" for i in range(outages)
    ) + " |"
    lines = [header, "|---" * (1 + 2 * outages) + "|"]
    for name, runs in variants.items():
        cells = [_cell(runs, i, w) for i in range(outages) for w in (0, 1)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    body = "\n".join(lines) + (
        f"\n\nMedian over seeds {seeds[0]}-{seeds[-1]} of `{Path(args.scenario).name}`, simulated seconds from the "
        f"isolation to the first other node marking the isolated node suspect / down. {machine()}"
    )
    print(body)
    if args.record:
        command = "python -m bench.failure_detection " + " ".join(argv if argv is not None else sys.argv[1:])
        record("Failure detection after an outage (issue 15)", command, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
