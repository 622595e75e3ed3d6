"""``python -m sim.sweep SCENARIO --seeds 1-500 [--jobs 2] [--json]``: many seeds, one verdict.

Runs every seed on an executor, draws a progress bar on stderr, and reports each
violating seed with the command that replays it. Exit 0 when no seed violated anything,
1 otherwise, 2 on bad usage.

Executors (:data:`EXECUTORS`; each yields the seeds' results as they finish, the
progress bar, summary and replay lines are the same for all):

- ``local`` (default): a pool of ``--jobs`` processes on this machine (``--jobs 1``: this process);
- ``dask``: the workers of an existing Dask cluster, ``--executor dask --scheduler
  tcp://HOST:8786`` (``pip install 'actorcache[dask]'``; every worker needs the same
  actorcache installed, but not the scenario file: the parsed scenario travels with each
  seed). A worker process runs one simulation at a time, whatever its ``--nthreads``:
  the simulator is pure Python (threads would only share one core) and its actors live
  in process-wide state, so start workers with ``--nthreads 1`` and as many as cores.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from sim.run import EXIT_USAGE, EXIT_VIOLATION, replay_command
from sim.runner import Runner
from sim.scenario import BUILTIN, Scenario, ScenarioError, load_scenario

__all__ = ["EXECUTORS", "ExecutorError", "main", "parse_seeds"]

Job = tuple[Scenario, int]


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


def _run(job: Job) -> dict[str, Any]:
    scenario, seed = job
    runner = Runner(scenario, seed)
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
        "process": f"{socket.gethostname()}:{os.getpid()}",
    }


#: One simulation at a time per process (a Dask worker may run several tasks in threads).
_ONE_AT_A_TIME = threading.Lock()


def _run_alone(job: Job) -> dict[str, Any]:
    with _ONE_AT_A_TIME:
        return _run(job)


# --- executors: each yields the results of ``jobs`` as they finish -------------------------------


class ExecutorError(Exception):
    """The executor cannot run (a scheduler out of reach, a missing package); the message says why."""


def _local(jobs: list[Job], args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    if args.jobs <= 1:
        # One worker would run every seed one after another in one process, as this one can:
        # no second interpreter to start and import the simulator into (~0.6 CPU s a sweep).
        yield from map(_run, jobs)
        return
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        yield from pool.imap_unordered(_run, jobs)


def _dask(jobs: list[Job], args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    if not args.scheduler:
        raise ExecutorError("--executor dask needs --scheduler tcp://HOST:8786 (a running Dask scheduler)")
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ExecutorError("--executor dask needs Dask's distributed: pip install 'actorcache[dask]'") from None
    try:
        client = Client(args.scheduler, timeout=args.scheduler_timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ExecutorError(f"cannot reach the Dask scheduler at {args.scheduler}: {exc}") from None
    with client:
        print(f"dask scheduler {args.scheduler}: {len(client.nthreads())} workers", file=sys.stderr, flush=True)
        # By its importable name: under ``python -m`` this module is __main__, whose functions
        # would travel by value (with their globals) instead of by reference.
        from sim.sweep import _run_alone as task

        # pure=False: a sweep runs its seeds again, never takes a result kept from another one
        futures = client.map(task, jobs, pure=False)
        for future in as_completed(futures, loop=client.loop):
            yield future.result()


#: ``--executor`` choices.
EXECUTORS: dict[str, Callable[[list[Job], argparse.Namespace], Iterator[dict[str, Any]]]] = {
    "local": _local,
    "dask": _dask,
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
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="local worker processes (default 2)")
    parser.add_argument(
        "--executor", choices=list(EXECUTORS), help="where seeds run: local processes (default) or a Dask cluster"
    )
    parser.add_argument("--scheduler", metavar="tcp://HOST:8786", help="the Dask scheduler (implies --executor dask)")
    parser.add_argument(
        "--scheduler-timeout", type=float, default=10.0, metavar="SECONDS", help="how long to try reaching it (default 10)"
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON summary line")
    args = parser.parse_args(argv)
    executor = args.executor or ("dask" if args.scheduler else "local")
    if args.scheduler and executor != "dask":
        parser.error("--scheduler belongs to --executor dask")
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"python -m sim.sweep: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    jobs = [(scenario, seed) for seed in args.seeds]
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    bad = 0
    tty = sys.stderr.isatty()
    try:
        for result in EXECUTORS[executor](jobs, args):
            results.append(result)
            bad += bool(result["violations"])
            if tty or len(results) == len(jobs) or len(results) % 10 == 0:
                print(_bar(len(results), len(jobs), bad, started), end="" if tty else "\n", file=sys.stderr, flush=True)
    except ExecutorError as exc:
        print(f"python -m sim.sweep: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
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
            "executor": executor,
            "processes": len({r["process"] for r in results}),
        }, separators=(",", ":")))
    return EXIT_VIOLATION if violating else 0


if __name__ == "__main__":
    sys.exit(main())
