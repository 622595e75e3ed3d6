"""``python -m sim.run SCENARIO --real`` and ``--compare``: the command-line side of real mode.

The same summary (:func:`sim.run._summary`, which shows a real result's notes), ``--json``
line and exit codes as a simulated run (0 no violation, 1 violations, 2 bad usage), plus
4 (:data:`~sim.real_runner.EXIT_NEEDS_NETEM`: the scenario needs netem; rerun with
``--real-ignore-links``), 5 (:data:`~sim.real_runner.EXIT_NO_REAL_MODE`: not root, no
``ip netns`` or iptables) and 130 when interrupted (Ctrl-C or SIGTERM: everything the run
made is removed first). ``--compare`` plays the scenario simulated first, then real, and
prints :func:`sim.compare.side_by_side`; its exit code is 1 when either run found a
violation.
"""

from __future__ import annotations

import argparse
import json
import sys

from sim.compare import side_by_side
from sim.real_runner import RealModeError, RealRunner
from sim.scenario import ScenarioError, load_scenario
from sim.traces import trace_lines

__all__ = ["EXIT_INTERRUPTED", "main_real"]

EXIT_INTERRUPTED = 130


def main_real(args: argparse.Namespace) -> int:
    from sim.run import EXIT_USAGE, EXIT_VIOLATION, _summary, replay_command, run_once

    if args.check_determinism:
        print("python -m sim.run: error: a real run is not deterministic (--check-determinism is for the simulator)",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        runner = RealRunner(load_scenario(args.scenario), args.seed, ignore_links=args.real_ignore_links)
        sim = run_once(args.scenario, args.seed) if args.compare else None
        result = runner.run()
    except ScenarioError as exc:
        print(f"python -m sim.run: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RealModeError as exc:
        print(f"python -m sim.run --real: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("python -m sim.run --real: interrupted; its processes, namespaces and rules are removed", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.trace is not None:
        args.trace.write_text("\n".join(trace_lines(runner.trace)) + "\n", encoding="utf-8")
    print(_summary(result))
    violations = bool(result.violations)
    if sim is not None:
        print(side_by_side(sim, result))
        violations = violations or bool(sim.violations)
    if result.violations:
        print(f"replay: {replay_command(args.scenario, args.seed)} --real"
              + (" --real-ignore-links" if args.real_ignore_links else ""))
    if args.json:
        print(json.dumps(result.to_json(), separators=(",", ":")))
    return EXIT_VIOLATION if violations else 0
