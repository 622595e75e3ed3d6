"""A scenario run both ways, side by side: the simulator's :class:`~sim.runner.RunResult`
against real mode's (:mod:`sim.real_runner`).

``python -m sim.run SCENARIO --seed N --compare`` prints :func:`side_by_side` for one seed;
``python -m sim.compare [SCENARIO ...] --seeds 1 2 3 [--real-ignore-links]`` plays each
scenario (default: every built-in real mode can play) both ways for each seed and prints
one Markdown table, a row per scenario and seed (the table of ``docs/real_mode.md``).
Runs that real mode refuses are listed under the table with the reason.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sim.runner import RunResult

__all__ = ["ROWS", "figures", "main", "markdown_table", "side_by_side"]

#: The figures compared, in order: (label, what it reads from a result).
ROWS: tuple[str, ...] = (
    "ops ok",
    "ops failed (definite)",
    "ops indeterminate",
    "convergence s",
    "replication p50 ms",
    "replication p99 ms",
    "violations",
)


def figures(result: RunResult) -> dict[str, str]:
    """The compared figures of one run, as text."""
    lat = result.replication_latency_ms
    conv = "not converged" if result.convergence_s is None else f"{result.convergence_s:g}"
    return {
        "ops ok": str(result.ops["ok"]),
        "ops failed (definite)": str(result.ops["failed"]),
        "ops indeterminate": str(result.ops["timeout"]),
        "convergence s": conv,
        "replication p50 ms": f"{lat['p50']:g}",
        "replication p99 ms": f"{lat['p99']:g}",
        "violations": str(len(result.violations)) + (
            f" ({', '.join(sorted({v.checker for v in result.violations}))})" if result.violations else ""
        ),
    }


def side_by_side(sim: RunResult, real: RunResult) -> str:
    """A plain-text table: one row per figure, simulated and real columns."""
    a, b = figures(sim), figures(real)
    width = max(len(r) for r in ROWS)
    col = max(12, *(len(a[r]) for r in ROWS))
    lines = [
        f"{sim.scenario} seed {sim.seed}: simulated vs real",
        f"  {'':<{width}}  {'simulated':>{col}}  {'real':>12}",
    ]
    lines += [f"  {r:<{width}}  {a[r]:>{col}}  {b[r]:>12}" for r in ROWS]
    return "\n".join(lines)


def markdown_table(pairs: Sequence[tuple[RunResult, RunResult]]) -> str:
    """One Markdown row per (simulated, real) pair: each figure as ``sim / real``."""
    head = "| scenario | seed | " + " | ".join(f"{r} (sim / real)" for r in ROWS) + " |"
    rule = "|" + "---|" * (len(ROWS) + 2)
    rows = []
    for sim, real in pairs:
        a, b = figures(sim), figures(real)
        rows.append(f"| {sim.scenario} | {sim.seed} | " + " | ".join(f"{a[r]} / {b[r]}" for r in ROWS) + " |")
    return "\n".join([head, rule, *rows])


def main(argv: list[str] | None = None) -> int:
    from sim.real_runner import RealModeError, RealRunner
    from sim.run import run_once
    from sim.scenario import BUILTIN, load_scenario

    parser = argparse.ArgumentParser(prog="python -m sim.compare", description="Scenarios simulated and real, side by side.")
    parser.add_argument("scenarios", nargs="*", help="built-in names or .toml files (default: every built-in)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--real-ignore-links", action="store_true", help="play scenarios that need netem without it")
    args = parser.parse_args(argv)
    pairs: list[tuple[RunResult, RunResult]] = []
    refused: dict[str, str] = {}
    for name in args.scenarios or list(BUILTIN):
        for seed in args.seeds:
            try:
                runner = RealRunner(load_scenario(name), seed, ignore_links=args.real_ignore_links)
            except RealModeError as exc:
                refused[f"{name} seed {seed}"] = str(exc)  # (a random schedule may need netem on one seed only)
                continue
            sim = run_once(name, seed)
            try:
                real = runner.run()
            except RealModeError as exc:
                refused[f"{name} seed {seed}"] = str(exc)
                continue
            print(side_by_side(sim, real), file=sys.stderr, flush=True)
            pairs.append((sim, real))
    print(markdown_table(pairs))
    for name, why in refused.items():
        print(f"\nnot played in real mode: {name}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
