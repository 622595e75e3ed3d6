"""Simulated runs kept for analysis: play scenarios, sweep their variants, pick and
tabulate the runs.

:func:`simulate` plays one :class:`~sim.scenario.Scenario` and keeps its trace and history
(a :class:`SimRun`); :func:`sweep` plays every combination of some scenario fields (each
built from a base with :func:`dataclasses.replace`) for every seed; :func:`select` and
:func:`grouped` pick runs by their parameters; the ``*_rows`` functions and
:func:`format_table` make the notebooks' tables. (``python -m sim.sweep`` is the other
kind of sweep: one scenario over many seeds, for a verdict rather than figures.)
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sim.convergence import convergence_time
from sim.history import OK, History
from sim.latency import percentiles, replication_latencies, write_latencies
from sim.runner import Runner, RunResult
from sim.scenario import Scenario
from sim.traces import TraceEvent

__all__ = [
    "SimRun",
    "convergence_rows",
    "format_table",
    "grouped",
    "latency_rows",
    "select",
    "simulate",
    "sweep",
    "variants",
]


@dataclass
class SimRun:
    """One simulated run, with what the analysis reads: the summary, trace and history."""

    params: dict[str, Any]
    scenario: Scenario
    seed: int
    result: RunResult
    trace: list[TraceEvent] = field(repr=False)
    history: History = field(repr=False)

    def replication_latencies(self, *, local: bool = True) -> list[float]:
        return replication_latencies(self.trace, local=local)

    def write_latencies(self, *, outcome: str = OK) -> list[float]:
        return write_latencies(self.history, outcome=outcome)

    def convergence_time(self) -> float | None:
        return convergence_time(self.trace)


def simulate(scenario: Scenario, seed: int = 1, *, params: dict[str, Any] | None = None, **runner_args: Any) -> SimRun:
    """Play ``scenario`` once (``runner_args`` go to :class:`~sim.runner.Runner`: checkers,
    expect_consistency, skew_bound) and keep its trace and history."""
    runner = Runner(scenario, seed, **runner_args)
    try:
        result = runner.run()
    finally:
        runner.close()
    return SimRun(dict(params or {}), scenario, seed, result, runner.host.trace, runner.history)


def _labelled(values: Sequence[Any] | Mapping[str, Any]) -> list[tuple[Any, Any]]:
    if isinstance(values, Mapping):
        return list(values.items())
    return [(v, v) for v in values]


def _replace(base: Scenario, name: str, value: Any) -> Scenario:
    """``dataclasses.replace`` one field; ``node.X`` sets one NodeConfig field of every node,
    ``workload.X`` one WorkloadSpec field."""
    if name.startswith("node."):
        return dataclasses.replace(base, node={**base.node, name[5:]: value})
    if name.startswith("workload."):
        return dataclasses.replace(base, workload=dataclasses.replace(base.workload, **{name[9:]: value}))
    return dataclasses.replace(base, **{name: value})


def variants(base: Scenario, axes: Mapping[str, Sequence[Any] | Mapping[str, Any]]) -> list[tuple[dict[str, Any], Scenario]]:
    """Every combination of ``axes`` (field name -> values, or -> {label: value}), as
    ``(labels, scenario)`` pairs in row-major order. Field names are Scenario fields, or
    ``node.<NodeConfig field>`` / ``workload.<WorkloadSpec field>``."""
    names = list(axes)
    out = []
    for combo in itertools.product(*(_labelled(axes[n]) for n in names)):
        scenario = base
        labels = {}
        for name, (label, value) in zip(names, combo):
            scenario = _replace(scenario, name, value)
            labels[name] = label
        suffix = ",".join(f"{n}={labels[n]}" for n in names)
        out.append((labels, dataclasses.replace(scenario, name=f"{base.name}[{suffix}]")))
    return out


def sweep(
    base: Scenario,
    axes: Mapping[str, Sequence[Any] | Mapping[str, Any]] | None = None,
    *,
    seeds: Iterable[int] = (1,),
    **runner_args: Any,
) -> list[SimRun]:
    """:func:`simulate` every variant of ``base`` along ``axes`` for every seed (the seed
    is in each run's ``params``); ``runner_args`` go to every :class:`~sim.runner.Runner`."""
    seeds = list(seeds)
    return [
        simulate(scenario, seed, params={**labels, "seed": seed}, **runner_args)
        for labels, scenario in variants(base, axes or {})
        for seed in seeds
    ]


def select(runs: Iterable[SimRun], **params: Any) -> list[SimRun]:
    """The runs whose params match every ``name=value`` given."""
    return [r for r in runs if all(r.params.get(k) == v for k, v in params.items())]


def grouped(runs: Sequence[SimRun], x: str, series: str, y: Callable[[SimRun], float | None]) -> dict[Any, dict[Any, list[float]]]:
    """``{series value: {x value: [y of each run]}}``, leaving out runs whose ``y`` is None."""
    out: dict[Any, dict[Any, list[float]]] = {}
    for run in runs:
        value = y(run)
        if value is not None:
            out.setdefault(run.params[series], {}).setdefault(run.params[x], []).append(value)
    return out


def latency_rows(runs: Iterable[SimRun], columns: Sequence[str]) -> list[dict[str, Any]]:
    """One row per run: the ``columns`` params, then replication and client write latency
    p50/p90/p99 (ms) and the number of writes acknowledged."""
    rows = []
    for run in runs:
        rep = percentiles(run.replication_latencies())
        wr = percentiles(run.write_latencies())
        row = {c: run.params.get(c) for c in columns}
        row.update({f"repl {p}": rep[p] for p in ("p50", "p90", "p99")})
        row.update({f"write {p}": wr[p] for p in ("p50", "p90", "p99")})
        row["acked writes"] = wr["count"]
        rows.append(row)
    return rows


def convergence_rows(runs: Sequence[SimRun], x: str) -> list[dict[str, Any]]:
    """Mean, min and max convergence time (s) per ``x`` value and hint setting."""
    rows = []
    for hints, points in grouped(runs, x, "node.hint_limit", SimRun.convergence_time).items():
        for value in sorted(points):
            ys = points[value]
            rows.append({x: value, "hints": hints, "seeds": len(ys), "mean s": sum(ys) / len(ys),
                         "min s": min(ys), "max s": max(ys)})
    return rows


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A Markdown table (readable as text, rendered by Jupyter's ``Markdown``)."""
    if not rows:
        return ""
    columns = list(columns or rows[0])

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return "" if v is None else str(v)

    table = [[str(c) for c in columns]] + [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    lines = ["| " + " | ".join(v.ljust(w) for v, w in zip(row, widths)) + " |" for row in table]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
