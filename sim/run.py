"""``python -m sim.run SCENARIO [--seed N] [--trace FILE.jsonl] [--json] [--shrink]``: play one scenario.

Prints a readable summary; with ``--json`` the last line is one JSON object (scenario,
seed, sim_time_s, events, trace_sha256, ops, violations, replication_latency_ms,
convergence_s, ...). Exit codes: 0 no violation, 1 violations (the replay command is
printed), 2 bad usage (unknown scenario, unreadable file), 3 ``--check-determinism``
found two runs that differ. ``--shrink`` then looks for the smallest scenario that still
shows the violation (:mod:`sim.shrink`). ``--real`` plays it on real processes
(``sim.real_runner``; 4: it needs netem, 5: real mode cannot run here); ``--compare``
plays it both ways.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from sim import shrink
from sim.metrics import open_sampler
from sim.runner import Runner, RunResult
from sim.scenario import BUILTIN, ScenarioError, load_scenario
from sim.traces import trace_lines

__all__ = ["main", "replay_command"]

EXIT_VIOLATION = 1
EXIT_USAGE = 2
EXIT_NONDETERMINISTIC = 3


def replay_command(scenario: str, seed: int) -> str:
    return f"python -m sim.run {shlex.quote(scenario)} --seed {seed}"


def run_once(
    name: str, seed: int, trace: Path | None = None, *, wire: bool = True,
    metrics: Path | None = None, metrics_interval: float = 1.0,
) -> RunResult:
    """Play scenario ``name`` once; ``metrics``: write every node's metrics there every
    ``metrics_interval`` virtual seconds and at the end (sim/metrics.py)."""
    scenario = load_scenario(name)
    runner = Runner(scenario, seed, wire=wire)
    sampler, out = open_sampler(runner.host, metrics, metrics_interval) if metrics is not None else (None, None)
    try:
        if sampler is not None:
            sampler.start()
        result = runner.run()
        if sampler is not None:
            sampler.stop()
        if trace is not None:
            trace.write_text("\n".join(trace_lines(runner.host.trace)) + "\n", encoding="utf-8")
        return result
    finally:
        if out is not None:
            out.close()
        runner.close()


def _summary(result: RunResult) -> str:
    lat = result.replication_latency_ms
    real = getattr(result, "mode", "sim") == "real"  # sim.real_runner.RealRunResult
    lines = [
        f"scenario {result.scenario}  seed {result.seed}" + ("  REAL processes in network namespaces" if real else ""),
        f"  real run {result.sim_time_s:g} s ({result.events} trace events)" if real else
        f"  simulated {result.sim_time_s:g} s in {result.wall_s:g} s wall "
        f"({result.events} events, {result.events / max(result.wall_s, 1e-9):,.0f} events/s, "
        f"{result.messages} peer messages)",
        f"  ops: {result.ops['ok']} ok, {result.ops['failed']} failed (definite), "
        f"{result.ops['timeout']} timed out (indefinite)",
        f"  replication latency ms: p50 {lat['p50']} p90 {lat['p90']} p99 {lat['p99']} max {lat['max']}",
        "  peer links: not counted (real mode)" if real else _peer_links(result.peer_links),
        *([] if real else _peer_bytes(result.peer_bytes)),
        f"  converged {result.convergence_s} s after heal" if result.convergence_s is not None else "  NOT converged",
    ]
    lines += [f"  fault {f}" for f in result.faults]
    lines += [f"  note {n}" for n in getattr(result, "notes", ())]
    lines.append(f"  trace sha256 {result.trace_sha256}")
    if result.violations:
        lines.append(f"  {len(result.violations)} VIOLATIONS:")
        lines += [f"    [{v.checker}] {v.key}: {v.message}" for v in result.violations[:20]]
        if len(result.violations) > 20:
            lines.append(f"    ... and {len(result.violations) - 20} more")
    else:
        lines.append("  no violations")
    return "\n".join(lines)


def _peer_links(counts: dict[str, int]) -> str:
    line = f"  peer links: {counts.get('handshakes', 0)} handshakes, {counts.get('retries', 0)} retried"
    for name, label in (("refused", "REFUSED"), ("unsendable", "UNSENDABLE"), ("bad_frames", "BAD FRAMES")):
        if counts.get(name):
            line += f", {counts[name]} {label}"
    return line


def _peer_bytes(peer_bytes: dict[str, Any]) -> list[str]:
    """The bytes each link carried: a total, then one line per sender."""
    if not peer_bytes.get("wire"):
        return ["  peer bytes: not counted (--no-wire: objects handed over)"]
    links: dict[str, int] = peer_bytes["links"]
    lines = [f"  peer bytes: {peer_bytes['total']:,} on {len(links)} links"]
    by_src: dict[str, list[str]] = {}
    for link, n in links.items():
        src, _, dst = link.partition("->")
        by_src.setdefault(src, []).append(f"{dst} {n:,}")
    lines += [f"    {src} -> " + " | ".join(row) for src, row in by_src.items()]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.run", description="Run one simulated failure scenario.")
    parser.add_argument("scenario", nargs="?", help="a built-in scenario name or a .toml scenario file")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--trace", type=Path, metavar="FILE.jsonl", help="write the event trace as JSON lines")
    parser.add_argument("--json", action="store_true", help="end with one JSON summary line")
    parser.add_argument(
        "--metrics", type=Path, metavar="FILE.jsonl",
        help="write every node's metrics (the real node's Prometheus names, docs/operations.md) as JSON lines, "
        "every --metrics-interval virtual seconds and at the end",
    )
    parser.add_argument("--metrics-interval", type=float, default=1.0, metavar="SECONDS", help="default 1")
    parser.add_argument("--list", action="store_true", help="list built-in scenarios and exit")
    parser.add_argument("--check-determinism", action="store_true", help="run twice; exit 3 if the traces differ")
    shrink.add_arguments(parser)
    parser.add_argument("--real", action="store_true", help="play it on real nodes in network namespaces (root; docs/real_mode.md)")
    parser.add_argument("--real-ignore-links", action="store_true", help="with --real: ignore link models that need netem")
    parser.add_argument("--compare", action="store_true", help="play it simulated and real; print both side by side")
    parser.add_argument(
        "--no-wire", dest="wire", action="store_false",
        help="hand peer messages over as objects instead of the peer protocol's bytes (quicker: bytes cost "
        "~1.25x the CPU; but no codec, frame limits or byte counts)",
    )
    args = parser.parse_args(argv)
    if args.list:
        width = max(len(name) for name in BUILTIN)
        for name, scenario in BUILTIN.items():
            print(f"{name:<{width}}  {scenario.description}")
        return 0
    if not args.scenario:
        parser.print_usage(sys.stderr)
        print("python -m sim.run: error: a scenario is required (see --list)", file=sys.stderr)
        return EXIT_USAGE
    if args.real or args.compare:
        from sim.real_cli import main_real

        return main_real(args)
    try:
        if args.metrics_interval <= 0:
            parser.error("argument --metrics-interval: must be > 0")
        result = run_once(
            args.scenario, args.seed, args.trace, wire=args.wire, metrics=args.metrics, metrics_interval=args.metrics_interval
        )
        if args.check_determinism:
            again = run_once(args.scenario, args.seed, wire=args.wire)
            if again.trace_sha256 != result.trace_sha256:
                print(
                    f"NONDETERMINISTIC: two runs of {args.scenario} seed {args.seed} differ: "
                    f"{result.trace_sha256} vs {again.trace_sha256}",
                    file=sys.stderr,
                )
                return EXIT_NONDETERMINISTIC
            print(f"deterministic: two runs gave trace sha256 {result.trace_sha256}")
    except ScenarioError as exc:
        print(f"python -m sim.run: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(_summary(result))
    if result.violations:
        print(f"replay: {replay_command(args.scenario, args.seed)}")
    code = EXIT_VIOLATION if result.violations else 0
    if args.shrink:
        code = shrink.main(args.scenario, args.seed, result, args)
    if args.json:
        print(json.dumps(result.to_json(), separators=(",", ":")))
    return code


if __name__ == "__main__":
    sys.exit(main())
