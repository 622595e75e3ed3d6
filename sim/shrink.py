"""Shrinking a failing run to the smallest scenario that still shows its violation.

``python -m sim.run SCENARIO --seed N --shrink [--shrink-budget 120] [--shrink-runs 200]
[--shrink-out FILE.toml]`` runs the scenario; when a checker reports a violation it looks
for a smaller scenario that, run with the same seed, still makes the same checker report
one, writes the smallest it found as a TOML scenario file, prints what it removed and the
command that replays the file.

Theory of operation (Hypothesis's greedy shrinking, on scenarios): a *candidate* is the
current scenario with one thing made smaller; it is *kept* when its run reports a
violation of the same checker. Each pass below proposes candidates from the current
scenario, keeps the first that holds and starts again from it, until none of its
candidates holds; the passes run round after round until a whole round keeps nothing (a
fixpoint) or the budget (seconds and runs, checked before each run) is spent. A candidate
is judged once (a cache keyed by its TOML text), so the last round mostly costs nothing.

- ``expand``: a ``random`` fault becomes the schedule it generated, so the next passes
  can drop its parts one by one;
- ``ops``: fewer operations (first: it makes every later run cheaper);
- ``faults``: drop blocks of faults, all of them first, then halves, quarters, ... single
  ones (delta debugging);
- ``duration``: end the workload just after the last fault, halfway there, 10% sooner
  (never before a fault: a fault after the end would fire while the cluster settles);
- ``earlier``: move the whole fault schedule earlier and end as much sooner;
- ``nodes``: drop the highest-numbered nodes no fault, link, clock or secret names;
- ``clients``, ``keys``: fewer clients, keys;
- ``fault durations``: halve the ``duration`` of pause, slow and stranger faults.

A smaller scenario draws its seed's random numbers in another order, so a kept candidate
is a different run that fails the same checker, not a subset of the original run; every
run is deterministic, so the written file with the same seed fails the same way (the
shrinker runs it once more to confirm, which also covers the TOML round trip).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.runner import Runner, RunResult
from sim.scenario import Fault, Scenario, ScenarioError, load_scenario
from sim.scenario_file import dumps, write_scenario

__all__ = ["ShrinkResult", "add_arguments", "expand_random", "main", "shrink", "violates"]

Candidates = Iterator[tuple[str, Scenario]]
#: Whether a candidate still shows the violation (runs it).
Interesting = Callable[[Scenario], bool]


@dataclass
class ShrinkResult:
    scenario: Scenario
    #: What each kept candidate removed, in order.
    steps: list[str]
    runs: int
    wall_s: float
    #: Whether the passes reached a fixpoint (False: the budget ran out first).
    complete: bool
    #: Candidates whose run raised instead of answering (counted as not interesting).
    errors: list[str] = field(default_factory=list)


class _OutOfBudget(Exception):
    pass


# --- the passes ------------------------------------------------------------------------------


def _with(scenario: Scenario, **changes: Any) -> Scenario:
    return dataclasses.replace(scenario, **changes)


def _workload(scenario: Scenario, **changes: Any) -> Scenario:
    return _with(scenario, workload=dataclasses.replace(scenario.workload, **changes))


def _drop_faults(s: Scenario) -> Candidates:
    n = len(s.faults)
    size = n
    while size >= 1:
        for start in range(0, n, size):
            dropped = s.faults[start : start + size]
            kept = s.faults[:start] + s.faults[start + size :]
            yield "removed " + "; ".join(f"fault {f.describe()}" for f in dropped), _with(s, faults=kept)
        size //= 2


def _last_fault(s: Scenario) -> float:
    return max((f.at for f in s.faults), default=0.0)


def _shorter(s: Scenario) -> Candidates:
    last = _last_fault(s)
    lowest = round(last + 0.5, 1) if s.faults else 0.5
    seen: set[float] = set()
    for d in (lowest, round((lowest + s.duration) / 2, 1), round(s.duration * 0.9, 1)):
        if last < d < s.duration and d > 0 and d not in seen:
            seen.add(d)
            yield f"duration {s.duration:g} -> {d:g} s", _with(s, duration=d)


def _earlier(s: Scenario) -> Candidates:
    first = min((f.at for f in s.faults), default=0.0)
    for shift in (first, round(first / 2, 1)):
        if shift <= 0 or s.duration - shift <= 0:
            continue
        faults = tuple(dataclasses.replace(f, at=round(f.at - shift, 3)) for f in s.faults)
        yield (
            f"fault schedule {shift:g} s earlier, duration {s.duration:g} -> {s.duration - shift:g} s",
            _with(s, faults=faults, duration=round(s.duration - shift, 3)),
        )


def _smaller_int(name: str, value: int, candidates: tuple[int, ...]) -> Iterator[tuple[str, int]]:
    seen: set[int] = set()
    for c in candidates:
        if 1 <= c < value and c not in seen:
            seen.add(c)
            yield f"{name} {value} -> {c}", c


def _highest_named_node(s: Scenario) -> int:
    """The highest ``nK`` a fault, link, clock or secret names (0: none)."""
    names: list[Any] = [n for pair in s.links for n in pair] + list(s.clocks) + list(s.secrets)
    for f in s.faults:
        for key in ("node", "nodes", "from", "to", "groups"):
            value = f.args.get(key)
            stack = [value]
            while stack:
                item = stack.pop()
                if isinstance(item, (list, tuple)):
                    stack.extend(item)
                elif item is not None:
                    names.append(item)
    numbers = [int(n[1:]) for n in names if isinstance(n, str) and n[:1] == "n" and n[1:].isdigit()]
    return max(numbers, default=0)


def _fewer_nodes(s: Scenario) -> Candidates:
    """Drop the highest-numbered nodes nothing names (node ids stay n1..nK)."""
    v = s.nodes
    for text, c in _smaller_int("nodes", v, (max(1, _highest_named_node(s)), (v + 1) // 2, v - 1)):
        if c >= _highest_named_node(s):
            initial = None if s.initial_nodes is None or s.initial_nodes >= c else s.initial_nodes
            yield text, _with(s, nodes=c, initial_nodes=initial)


def _fewer_ops(s: Scenario) -> Candidates:
    v = s.workload.ops
    for text, c in _smaller_int("ops", v, (1, v // 16, v // 4, v // 2, v * 3 // 4, v * 7 // 8)):
        yield text, _workload(s, ops=c)


def _fewer_clients(s: Scenario) -> Candidates:
    v = s.workload.clients
    for text, c in _smaller_int("clients", v, (1, v // 2, v - 1)):
        yield text, _workload(s, clients=c)


def _fewer_keys(s: Scenario) -> Candidates:
    v = s.workload.keys
    for text, c in _smaller_int("keys", v, (1, v // 4, v // 2, v * 3 // 4)):
        yield text, _workload(s, keys=c)


def _shorter_faults(s: Scenario) -> Candidates:
    for i, f in enumerate(s.faults):
        d = f.args.get("duration")
        if f.action in ("pause", "slow", "stranger") and isinstance(d, (int, float)) and d > 0.1:
            shorter = max(0.1, round(d / 2, 1))
            fault = dataclasses.replace(f, args={**f.args, "duration": shorter})
            yield (
                f"fault {f.describe()}: duration {d:g} -> {shorter:g} s",
                _with(s, faults=s.faults[:i] + (fault,) + s.faults[i + 1 :]),
            )


#: Fewer operations first: every later run is cheaper for it.
PASSES: tuple[Callable[[Scenario], Candidates], ...] = (
    _fewer_ops,
    _drop_faults,
    _shorter,
    _earlier,
    _fewer_nodes,
    _fewer_clients,
    _fewer_keys,
    _shorter_faults,
)


# --- the loop ----------------------------------------------------------------------------------


def shrink(
    scenario: Scenario,
    interesting: Interesting,
    *,
    budget_s: float = 120.0,
    max_runs: int = 200,
    expand: Callable[[Scenario], Scenario | None] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> ShrinkResult:
    """The smallest scenario the passes reach from ``scenario`` (which must be
    interesting) whose candidates ``interesting`` keeps, within ``budget_s`` seconds and
    ``max_runs`` calls of ``interesting``. ``expand``: a scenario with its ``random``
    faults spelt out (None: nothing to expand), tried once first; it may run too (it
    counts as a run)."""
    started = time.perf_counter()
    cache: dict[str, bool] = {}
    steps: list[str] = []
    errors: list[str] = []
    runs = 0

    def spend() -> None:
        nonlocal runs
        if runs >= max_runs or time.perf_counter() - started >= budget_s:
            raise _OutOfBudget
        runs += 1

    def holds(candidate: Scenario) -> bool:
        try:
            candidate.validate()
        except ScenarioError:
            return False
        key = dumps(candidate)
        if key not in cache:
            spend()
            try:
                cache[key] = bool(interesting(candidate))
            except Exception as exc:  # a candidate the simulator cannot run fails differently
                errors.append(f"{type(exc).__name__}: {exc}")
                cache[key] = False
        return cache[key]

    def keep(text: str, candidate: Scenario) -> None:
        nonlocal current
        current = candidate
        steps.append(text)
        if on_step is not None:
            on_step(text)

    current = scenario
    complete = False
    try:
        if expand is not None and any(f.action == "random" for f in current.faults):
            spend()
            expanded = expand(current)
            if expanded is not None and holds(expanded):
                keep(f"random faults spelt out as their {len(expanded.faults)} scheduled faults", expanded)
        changed = True
        while changed:
            changed = False
            for proposals in PASSES:
                progress = True
                while progress:
                    progress = False
                    for text, candidate in proposals(current):
                        if holds(candidate):
                            keep(text, candidate)
                            changed = progress = True
                            break
        complete = True
    except _OutOfBudget:
        pass
    return ShrinkResult(current, steps, runs, round(time.perf_counter() - started, 3), complete, errors)


# --- on the simulator ----------------------------------------------------------------------------


def _run(scenario: Scenario, seed: int, checkers: list[str] | None = None) -> RunResult:
    runner = Runner(scenario, seed, checkers=checkers)
    try:
        return runner.run()
    finally:
        runner.close()


def violates(scenario: Scenario, seed: int, checker: str) -> bool:
    """Whether ``scenario`` run with ``seed`` makes ``checker`` report a violation."""
    return any(v.checker == checker for v in _run(scenario, seed, [checker]).violations)


class _Recorder(Runner):
    """A run that keeps the faults its ``random`` faults scheduled."""

    def __init__(self, scenario: Scenario, seed: int) -> None:
        super().__init__(scenario, seed, checkers=[])
        self.generated: list[Fault] = []
        self._recording = False

    def schedule_random(self) -> None:
        self._recording = True
        try:
            super().schedule_random()
        finally:
            self._recording = False

    def _schedule(self, t0: float, fault: Fault) -> None:
        if self._recording:
            self.generated.append(fault)
        super()._schedule(t0, fault)


def expand_random(scenario: Scenario, seed: int) -> Scenario | None:
    """``scenario`` with its ``random`` faults replaced by what they scheduled on ``seed``
    (times are after the workload starts, as a scenario's); None without random faults."""
    if not any(f.action == "random" for f in scenario.faults):
        return None
    runner = _Recorder(scenario, seed)
    try:
        runner.run()
    finally:
        runner.close()
    faults = [f for f in scenario.faults if f.action != "random"] + runner.generated
    rounded = [dataclasses.replace(f, at=round(f.at, 3), args=_rounded(f.args)) for f in faults]
    return dataclasses.replace(scenario, faults=tuple(sorted(rounded, key=lambda f: f.at)))


def _rounded(args: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in args.items()}


# --- the command line ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("shrinking (with --shrink)")
    group.add_argument("--shrink", action="store_true", help="on a violation, write the smallest scenario that still shows it")
    group.add_argument("--shrink-budget", type=float, default=120.0, metavar="SECONDS", help="time to spend shrinking (default 120)")
    group.add_argument("--shrink-runs", type=int, default=200, metavar="N", help="most runs to spend shrinking (default 200)")
    group.add_argument("--shrink-out", type=Path, metavar="FILE.toml", help="where to write it (default SCENARIO-seedN-shrunk.toml)")


def _size(s: Scenario) -> str:
    w = s.workload
    return f"{s.nodes} nodes, {len(s.faults)} faults, {s.duration:g} s, {w.ops} ops, {w.clients} clients, {w.keys} keys"


def main(name: str, seed: int, result: RunResult, args: argparse.Namespace) -> int:
    """``--shrink`` after a run of ``name`` gave ``result``: shrink, write, confirm;
    exit 1 (the run violated) or 0 (nothing to shrink)."""
    from sim.run import EXIT_USAGE, EXIT_VIOLATION, replay_command

    if not result.violations:
        print(f"shrink: seed {seed} violates nothing; nothing to shrink")
        return 0
    checker = result.violations[0].checker
    if args.shrink_out is not None and args.shrink_out.suffix != ".toml":
        print("python -m sim.run: error: --shrink-out must name a .toml file", file=sys.stderr)
        return EXIT_USAGE
    original = load_scenario(name)
    stem = Path(name).stem if name.endswith(".toml") else name
    out = args.shrink_out or Path(f"{stem}-seed{seed}-shrunk.toml")
    print(f"shrink: keeping [{checker}] on seed {seed}, at most {args.shrink_budget:g} s and {args.shrink_runs} runs")
    print(f"  from: {_size(original)}")
    found = shrink(
        original,
        lambda candidate: violates(candidate, seed, checker),
        budget_s=args.shrink_budget,
        max_runs=args.shrink_runs,
        expand=lambda s: expand_random(s, seed),
        on_step=lambda text: print(f"  - {text}", flush=True),
    )
    how = "a fixpoint" if found.complete else "the end of its budget"
    print(f"shrunk to {how} in {found.runs} runs, {found.wall_s:g} s")
    print(f"  to:   {_size(found.scenario)}")
    if found.errors:
        print(f"  {len(found.errors)} candidates raised (not kept); first: {found.errors[0]}")
    shrunk = dataclasses.replace(
        found.scenario,
        name=f"{original.name}-shrunk",
        description=f"{original.name} shrunk on seed {seed}: [{checker}] still reported. {original.description}",
    )
    write_scenario(shrunk, out)
    print(f"wrote {out}")
    if violates(load_scenario(str(out)), seed, checker):
        print(f"  confirmed: the file on seed {seed} reports [{checker}]")
    else:  # a latency the file's milliseconds cannot carry exactly (see sim.scenario_file)
        print(f"  WARNING: the written file on seed {seed} no longer reports [{checker}]", file=sys.stderr)
    print(f"replay: {replay_command(str(out), seed)}")
    return EXIT_VIOLATION
