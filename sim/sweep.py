"""``python -m sim.sweep SCENARIO --seeds 1-500 [--jobs 2] [--json]``: many seeds, one verdict.

Runs every seed in a process pool, draws a progress bar on stderr, and reports each
violating seed with the command that replays it. Exit 0 when no seed violated anything,
1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from typing import Any

from sim.run import EXIT_USAGE, EXIT_VIOLATION, replay_command
from sim.runner import Runner
from sim.scenario import BUILTIN, ScenarioError, load_scenario

__all__ = ["main", "parse_seeds"]


def parse_seeds(text: str) -> list[int]:
    """``"1-500"``, ``"7"`` or ``"1,5,9-12"`` -> a list of seeds."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must look like 1-500 or 1,5,9-12, not {text!r}") from None
    return seeds


def _run(job: tuple[str, int]) -> dict[str, Any]:
    name, seed = job
    runner = Runner(load_scenario(name), seed)
    try:
        result = runner.run()
    finally:
        runner.close()
    return {
        "seed": seed,
        "violations": [v.to_json() for v in result.violations],
        "wall_s": result.wall_s,
        "events": result.events,
        "ops": result.ops,
        "convergence_s": result.convergence_s,
    }


def _bar(done: int, total: int, bad: int, started: float) -> str:
    width = 30
    filled = width * done // max(total, 1)
    rate = done / max(time.perf_counter() - started, 1e-9)
    return f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} seeds, {bad} violating, {rate:.1f} seeds/s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.sweep", description="Run one scenario over many seeds.")
    parser.add_argument("scenario", help=f"built-in ({', '.join(BUILTIN)}) or a .toml file")
    parser.add_argument("--seeds", type=parse_seeds, default=parse_seeds("1-20"), help="e.g. 1-500 (default 1-20)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes (default 2)")
    parser.add_argument("--json", action="store_true", help="end with one JSON summary line")
    args = parser.parse_args(argv)
    try:
        load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"python -m sim.sweep: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    jobs = [(args.scenario, seed) for seed in args.seeds]
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    bad = 0
    tty = sys.stderr.isatty()
    with multiprocessing.get_context("spawn").Pool(max(1, args.jobs)) as pool:
        for result in pool.imap_unordered(_run, jobs):
            results.append(result)
            bad += bool(result["violations"])
            if tty or len(results) == len(jobs) or len(results) % 10 == 0:
                print(_bar(len(results), len(jobs), bad, started), end="" if tty else "\n", file=sys.stderr, flush=True)
    if tty:
        print(file=sys.stderr)
    results.sort(key=lambda r: r["seed"])
    violating = [r for r in results if r["violations"]]
    wall = time.perf_counter() - started
    events = sum(r["events"] for r in results)
    print(
        f"{args.scenario}: {len(results)} seeds in {wall:.1f} s, {len(violating)} violating; "
        f"{events:,} simulated events"
    )
    for r in violating:
        kinds = sorted({v["checker"] for v in r["violations"]})
        print(f"  seed {r['seed']}: {len(r['violations'])} violations ({', '.join(kinds)}): "
              f"{r['violations'][0]['message']}")
        print(f"    replay: {replay_command(args.scenario, r['seed'])}")
    if args.json:
        print(json.dumps({
            "scenario": args.scenario,
            "seeds": len(results),
            "violating_seeds": [r["seed"] for r in violating],
            "wall_s": round(wall, 3),
            "events": events,
        }, separators=(",", ":")))
    return EXIT_VIOLATION if violating else 0


if __name__ == "__main__":
    sys.exit(main())
