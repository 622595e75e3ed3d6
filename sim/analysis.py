"""Reading runs: traces, latencies, percentiles, CDFs, convergence, sweeps.

What the notebooks (``notebooks/``) and :mod:`sim.plots` call, so notebook cells stay short:

- **Traces** are lists of ``(t, node, kind, fields)``: ``SimHost.trace`` in memory, or
  JSON lines (``python -m sim.run --trace``, ``python -m runtime.node --trace``) read
  with :func:`load_trace`, one file or several (a real cluster writes one per node).
- **Latencies** in milliseconds: :func:`replication_latencies` (coordinator accepts a
  write -> each replica applies it) and :func:`write_latencies` (what a client waited,
  from a :class:`~sim.history.History`); :func:`percentiles` and :func:`cdf` summarise.
- **Convergence**: :func:`convergence_time`, from the heal to the last replica catching up.
- **Sweeps**: :func:`simulate` plays one :class:`~sim.scenario.Scenario` and keeps its
  trace and history; :func:`sweep` plays every combination of some scenario fields, each
  built from a base with :func:`dataclasses.replace`.
- **A real cluster** (:class:`runtime.local_cluster.LocalCluster`): :func:`real_workload`
  drives it with the client library and records the same kind of history the simulator does.

The figures are drawn by :mod:`sim.plots`. This module needs nothing beyond the
project's runtime dependencies.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

from sim.history import FAIL, INFO, OK, History, Op
from sim.network import Link, LatencyModel, lognormal
from sim.runner import Runner, RunResult, percentiles, replication_latencies, trace_lines
from sim.scenario import Fault, Scenario
from sim.workload import WorkloadSpec

__all__ = [
    "HINTS",
    "LEVELS",
    "LINKS",
    "SimRun",
    "alternate_writes",
    "cdf",
    "compare_percentiles",
    "convergence_rows",
    "convergence_time",
    "fit_lognormal",
    "format_table",
    "grouped",
    "latency_rows",
    "load_trace",
    "loopback_scenario",
    "lost_write_experiment",
    "lost_writes",
    "percentiles",
    "ping_rtts",
    "real_workload",
    "recovery_by_anti_entropy",
    "recovery_by_duration",
    "relative_difference",
    "replication_experiment",
    "replication_latencies",
    "select",
    "simulate",
    "sweep",
    "trace_lines",
    "variants",
    "weakened_w1",
    "window",
    "write_latencies",
]

ROOT = Path(__file__).resolve().parent.parent

TraceEvent = tuple[float, str, str, dict[str, Any]]

#: The link models the notebooks compare (one-way delay of every link).
LINKS: dict[str, Link] = {
    "LAN (0.2 ms)": Link(lognormal(0.0002, 0.25)),
    "cross-zone (1 ms, jitter)": Link(lognormal(0.001, 0.35)),
    "WAN (40 ms, tail)": Link(lognormal(0.040, 0.3, tail_p=0.02, tail_factor=4.0)),
}


# --- traces -----------------------------------------------------------------------------


def _event(obj: Mapping[str, Any]) -> TraceEvent:
    fields = dict(obj)
    return (float(fields.pop("t")), str(fields.pop("node")), str(fields.pop("kind")), fields)


def load_trace(*sources: str | os.PathLike[str] | Iterable[str]) -> list[TraceEvent]:
    """Events from JSON-lines trace files (paths) or iterables of lines, merged by time.

    Each line is one object with ``t``, ``node``, ``kind`` and the event's fields (the
    form :func:`trace_lines` writes). Several sources (one file per real node) merge into
    one timeline; events at the same time keep their order within a source. Blank lines
    are skipped; a line cut short by a killed process (the last one) is dropped.
    """
    events: list[tuple[float, int, int, TraceEvent]] = []
    for index, source in enumerate(sources):
        if isinstance(source, (str, os.PathLike)):
            with open(source, encoding="utf-8") as f:
                lines = f.read().splitlines()
        else:
            lines = list(source)
        for n, line in enumerate(lines):
            line = line.strip()
            if not line:
                continue
            try:
                event = _event(json.loads(line))
            except json.JSONDecodeError:
                if n == len(lines) - 1:
                    continue  # a torn last line
                raise
            events.append((event[0], index, n, event))
    events.sort(key=lambda e: e[:3])
    return [e[3] for e in events]


# --- latencies ---------------------------------------------------------------------------


def write_latencies(history: History | Iterable[Op], *, outcome: str = OK, kinds: Sequence[str] = ("set", "delete")) -> list[float]:
    """Milliseconds a client waited for each write (``set``/``delete``) that ended in ``outcome``."""
    ops = history.ops if isinstance(history, History) else history
    return [
        (op.completed - op.invoked) * 1000.0
        for op in ops
        if op.kind in kinds and op.outcome == outcome and op.completed is not None
    ]


def cdf(values: Iterable[float]) -> tuple[list[float], list[float]]:
    """The empirical CDF as two lists: sorted values and the fraction at or below each."""
    xs = sorted(values)
    n = len(xs)
    return xs, [(i + 1) / n for i in range(n)]


def relative_difference(sim: float, real: float) -> float:
    """``(sim - real) / real``: +0.10 means the simulator says 10% more."""
    return (sim - real) / real if real else math.inf


def compare_percentiles(
    real: Sequence[float], sims: Mapping[str, Sequence[float]], points: Sequence[str] = ("p50", "p99"), *, goal: float = 0.25
) -> list[dict[str, Any]]:
    """One row per simulated series: each percentile real and simulated (ms), their
    relative difference, and whether every difference is within ``goal``."""
    want = percentiles(list(real))
    rows = []
    for label, values in sims.items():
        got = percentiles(list(values))
        row: dict[str, Any] = {"simulated with": label}
        within = True
        for p in points:
            diff = relative_difference(got[p], want[p])
            within = within and abs(diff) <= goal
            row.update({f"real {p} ms": want[p], f"sim {p} ms": got[p], f"{p} diff": f"{diff:+.0%}"})
        row[f"within {goal:.0%}"] = "yes" if within else "no"
        rows.append(row)
    return rows


def fit_lognormal(samples_ms: Sequence[float]) -> LatencyModel:
    """A one-way delay model (seconds) for the simulator, fitted to measured delays (ms)
    so that the model's p50 and p99 are the samples' p50 and p99.

    The body is a lognormal as wide as the samples' interquartile range says. Samples
    beyond that body's p99.9 (a stalled process, a busy machine), if there are more than
    0.2% of them and the p99 needs them, make the tail: ``tail_factor`` is their median
    over the samples' median, and ``tail_p`` (at most 20%) and the body's median are then
    solved for so the mixture's p99 and p50 come out at the samples'. Without such a tail
    the body's width is set from p50 and p99 directly.
    """
    values = sorted(v for v in samples_ms if v > 0)
    if len(values) < 20:
        raise ValueError("fit_lognormal needs at least 20 positive samples")
    p50, p99 = _quantile(values, 50), _quantile(values, 99)
    sigma = max(1e-3, math.log(_quantile(values, 75) / _quantile(values, 25)) / _Z_IQR)
    outliers = [v for v in values if v > p50 * math.exp(sigma * _Z999)]
    factor = outliers[len(outliers) // 2] / p50 if outliers else 1.0
    if (
        len(outliers) <= 0.002 * len(values)
        or p99 <= p50 * math.exp(sigma * _Z99)  # the body alone reaches p99
        or _mixture_quantile(0.99, p50, sigma, 0.2, factor) < p99  # no plausible tail does
    ):
        sigma = max(1e-3, math.log(p99 / p50) / _Z99)
        return lognormal(p50 / 1000.0, sigma)
    median, tail_p = p50, 0.0
    for _ in range(4):  # p99 is mostly the tail's share, p50 the body's median: alternate
        tail_p = _solve(lambda p: _mixture_quantile(0.99, median, sigma, p, factor) - p99, 0.0, 0.2)
        median = _solve(lambda m: _mixture_quantile(0.5, m, sigma, tail_p, factor) - p50, p50 / 3, p50 * 3)
    return lognormal(median / 1000.0, sigma, tail_p=tail_p, tail_factor=factor)


def _quantile(ordered: Sequence[float], p: float) -> float:
    """The nearest-rank percentile of sorted values (as :func:`percentiles`, unrounded)."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _mixture_quantile(q: float, median: float, sigma: float, tail_p: float, factor: float) -> float:
    """The ``q`` quantile of ``LatencyModel.draw``'s lognormal with its tail (any unit)."""
    phi = _NORMAL.cdf

    def cdf(log_x: float) -> float:
        body = phi((log_x - math.log(median)) / sigma)
        return (1 - tail_p) * body + tail_p * phi((log_x - math.log(median * factor)) / sigma)

    lo, hi = math.log(median) - 10 * sigma, math.log(median * max(factor, 1.0)) + 10 * sigma
    return math.exp(_solve(lambda log_x: cdf(log_x) - q, lo, hi))


def _solve(f: Callable[[float], float], lo: float, hi: float, steps: int = 60) -> float:
    """Bisection for an increasing ``f``: where it crosses 0 in ``[lo, hi]`` (or an end)."""
    for _ in range(steps):
        mid = (lo + hi) / 2
        if f(mid) < 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


_NORMAL = NormalDist()
#: Standard normal quantiles: p99, p99.9, and the width p25..p75.
_Z99 = _NORMAL.inv_cdf(0.99)
_Z999 = _NORMAL.inv_cdf(0.999)
_Z_IQR = 2 * _NORMAL.inv_cdf(0.75)


def window(trace: Iterable[TraceEvent], start: float = -math.inf, end: float = math.inf) -> list[TraceEvent]:
    """The events with ``start <= t < end`` (e.g. one half of a run, to calibrate on one
    and compare on the other)."""
    return [e for e in trace if start <= e[0] < end]


def alternate_writes(trace: Iterable[TraceEvent]) -> tuple[list[TraceEvent], list[TraceEvent]]:
    """Two traces, each with every other ``write`` (and its ``apply`` events); every other
    event goes to both. Calibrate on one and compare on the other: both halves see the
    same machine at the same times, so a busy spell affects them alike."""
    halves: tuple[list[TraceEvent], list[TraceEvent]] = ([], [])
    group: dict[tuple[str, tuple[Any, ...]], int] = {}
    writes = 0
    for event in trace:
        _t, _node, kind, fields = event
        if kind in ("write", "apply"):
            key = (fields["key"], tuple(fields["version"]))
            if kind == "write" and key not in group:
                group[key] = writes % 2
                writes += 1
            if key in group:
                halves[group[key]].append(event)
                continue
        halves[0].append(event)
        halves[1].append(event)
    return halves


# --- convergence -------------------------------------------------------------------------


def convergence_time(trace: Sequence[TraceEvent], healed_at: float | None = None) -> float | None:
    """Seconds from the heal to the last replica applying anything after it: when the
    last owner caught up (hints, anti-entropy, read repair, writes still in flight).

    ``healed_at`` defaults to the trace's last ``heal-all`` event (the runner heals
    everything when the workload stops); ``None`` when there is none. ``0.0`` when
    nothing needed applying after the heal. Finer than ``RunResult.convergence_s``, which
    polls every owner every 0.25 s.
    """
    if healed_at is None:
        heals = [t for t, _node, kind, _f in trace if kind == "heal-all"]
        if not heals:
            return None
        healed_at = heals[-1]
    last = healed_at
    for t, _node, kind, _fields in trace:
        if kind == "apply" and t >= healed_at:
            last = max(last, t)
    return last - healed_at


def lost_writes(run: SimRun | RunResult) -> int:
    """Keys whose latest acknowledged write the ``lost-writes`` checker found lost."""
    result = run.result if isinstance(run, SimRun) else run
    return sum(1 for v in result.violations if v.checker == "lost-writes")


# --- simulating --------------------------------------------------------------------------


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


# --- tables ------------------------------------------------------------------------------


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


# --- a real cluster on loopback (started by runtime.local_cluster.LocalCluster) ------------------


def _rtt_ms(address: str, count: int) -> list[float]:
    from runtime.client import Client

    with Client(address) as client:
        client.ping()
        return [client.ping() * 1000.0 for _ in range(count)]


def ping_rtts(addresses: Iterable[str], count: int = 200) -> list[float]:
    """Round-trip times (ms) of ``count`` pings to each address, one connection each."""
    return [rtt for address in addresses for rtt in _rtt_ms(address, count)]


def real_workload(
    addresses: Sequence[str],
    *,
    ops: int,
    rate: float,
    keys: int = 100,
    seed: int = 1,
    timeout: float = 5.0,
) -> History:
    """Sequential ``set`` requests to randomly chosen nodes at about ``rate`` per second
    (exponential think times, as the simulator's clients), through
    :class:`runtime.client.Client` (one kept connection per node), recorded as a
    :class:`~sim.history.History` timed with ``time.monotonic()`` (the traces' clock)."""
    from actors.protocol.errors import CacheError
    from runtime.client import Client

    rng = random.Random(f"{seed}/real-workload")
    history = History()
    clients = {address: Client(address, timeout=timeout) for address in addresses}
    try:
        for i in range(ops):
            time.sleep(rng.expovariate(rate))
            address = rng.choice(list(addresses))
            key = f"k{rng.randrange(keys)}"
            value = f"v{i + 1}"
            op = history.invoke(0, address, "set", key, "default", time.monotonic(), value=value)
            try:
                clients[address].set(key, value)
            except CacheError as exc:
                History.complete(op, FAIL if exc.definite else INFO, time.monotonic(), error=str(exc))
            else:
                History.complete(op, OK, time.monotonic())
    finally:
        for client in clients.values():
            client.close()
    return history


# --- the notebooks' experiments ------------------------------------------------------------------

LEVELS = ("one", "quorum", "all")


def replication_experiment(
    *,
    ops: int = 300,
    links: Mapping[str, Link] | None = None,
    replicas: Sequence[int] = (1, 2, 3, 4, 5),
    levels: Sequence[str] = LEVELS,
    seed: int = 1,
) -> list[SimRun]:
    """Five nodes, ``ops`` sets from four clients, no faults: every link model x replica
    count x write consistency level (``notebooks/replication_latency.ipynb``)."""
    base = Scenario(
        "replication",
        "five nodes, sets only, no faults",
        nodes=5,
        workload=WorkloadSpec(clients=4, ops=ops, rate=100.0, keys=100, read_fraction=0.0, delete_fraction=0.0),
        # Long enough for every op even on the slowest link at level all; the run's
        # clients stop issuing at `ops`.
        duration=max(5.0, ops / 100.0 * 4),
        settle=10.0,
    )
    axes = {"link": dict(links or LINKS), "replicas": list(replicas), "write_consistency": list(levels)}
    return sweep(base, axes, seeds=(seed,))


def _isolation(duration: float, *, ops_rate: float = 50.0) -> Scenario:
    """Five nodes under load; n5 is cut off one second in, for ``duration`` seconds; the
    runner heals everything (and stops the load) when the partition ends."""
    return Scenario(
        "isolation",
        "n5 cut off from the others under load, then healed",
        nodes=5,
        link=Link(lognormal(0.0005, 0.3)),
        workload=WorkloadSpec(clients=4, ops=1_000_000, rate=ops_rate, keys=100, read_fraction=0.5),
        faults=(Fault(1.0, "partition", {"kind": "isolate", "node": "n5"}),),
        duration=1.0 + duration,
        settle=120.0,
    )


HINTS = {"hints on": 100_000, "hints off": 0}


def recovery_by_duration(durations: Sequence[float] = (1, 2, 4, 8, 16), seeds: Iterable[int] = (1, 2, 3)) -> list[SimRun]:
    """Convergence after heal for each partition duration, hinted handoff on and off."""
    runs: list[SimRun] = []
    for d in durations:
        for run in sweep(_isolation(d), {"node.hint_limit": HINTS}, seeds=seeds, checkers=["convergence"]):
            run.params["partition_s"] = d
            runs.append(run)
    return runs


def recovery_by_anti_entropy(
    intervals: Sequence[float] = (0.25, 0.5, 1.0, 2.0), partition_s: float = 4.0, seeds: Iterable[int] = (1, 2, 3)
) -> list[SimRun]:
    """Convergence after a ``partition_s`` isolation for each anti-entropy interval, hints on and off."""
    axes = {"node.anti_entropy_interval_s": list(intervals), "node.hint_limit": HINTS}
    return sweep(_isolation(partition_s), axes, seeds=seeds, checkers=["convergence"])


def weakened_w1(write_consistency: str = "one") -> Scenario:
    """``tests/test_sim_checkers.py``'s lost-writes case: three nodes, n1 cut off for 5 s
    (writes through it keep being acknowledged at W=1), then n1 crashes, losing them."""
    return Scenario(
        f"w1-crash[{write_consistency}]",
        "n1 isolated, then crashed and restarted",
        nodes=3,
        write_consistency=write_consistency,
        read_consistency="one",
        link=Link(lognormal(0.0005, 0.3)),
        workload=WorkloadSpec(clients=6, ops=700, rate=150.0, keys=30, read_fraction=0.2, delete_fraction=0.0),
        faults=(
            Fault(2.0, "partition", {"kind": "isolate", "node": "n1"}),
            Fault(7.0, "crash", {"node": "n1"}),
            Fault(8.0, "heal"),
            Fault(8.5, "restart", {"node": "n1"}),
        ),
        duration=12.0,
        settle=15.0,
    )


def lost_write_experiment(levels: Sequence[str] = ("one", "quorum"), seeds: Iterable[int] = (1, 2, 3, 4, 5)) -> list[SimRun]:
    """The weakened W=1 configuration next to the default (quorum), every checker on."""
    runs = []
    for level in levels:
        for seed in seeds:
            runs.append(simulate(weakened_w1(level), seed, params={"write_consistency": level, "seed": seed}))
    return runs


def loopback_scenario(link: Link, *, ops: int, rate: float, keys: int = 100) -> Scenario:
    """The simulated twin of :func:`real_workload` on a 3-node ``LocalCluster``: three
    nodes, three replicas, quorum writes, one client sending sets at ``rate``."""
    return Scenario(
        "loopback",
        "three nodes on a link calibrated to loopback, one client sending sets",
        nodes=3,
        replicas=3,
        link=link,
        workload=WorkloadSpec(clients=1, ops=ops, rate=rate, keys=keys, read_fraction=0.0, delete_fraction=0.0),
        duration=ops / rate * 1.5 + 2.0,
        settle=10.0,
    )
