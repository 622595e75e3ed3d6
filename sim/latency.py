"""Latency statistics: samples from traces and histories, their summaries, and a link
model fitted to them.

All figures are milliseconds. :func:`replication_latencies` (a coordinator accepts a
write -> each replica applies it, from a trace) and :func:`write_latencies` (what a client
waited, from a :class:`~sim.history.History`) give samples; :func:`percentiles` and
:func:`cdf` summarise them (nearest rank: a reported percentile is always a sample);
:func:`compare_percentiles` sets simulated series against a real one; and
:func:`fit_lognormal` turns measured delays into a :class:`~sim.network.LatencyModel` whose
p50 and p99 are the samples'.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from statistics import NormalDist
from typing import Any

from sim.history import OK, History, Op
from sim.network import LatencyModel, lognormal
from sim.traces import TraceEvent

__all__ = [
    "cdf",
    "compare_percentiles",
    "fit_body",
    "fit_lognormal",
    "percentiles",
    "relative_difference",
    "replication_latencies",
    "write_latencies",
]


def percentiles(values: list[float], points: tuple[float, ...] = (50, 90, 99)) -> dict[str, float]:
    """``{"p50": ..., "p90": ..., "p99": ..., "max": ..., "count": n}`` of ``values``
    (nearest rank, rounded to 3 decimals; all 0 for no values)."""
    if not values:
        return {**{f"p{int(p)}": 0.0 for p in points}, "max": 0.0, "count": 0}
    ordered = sorted(values)
    out: dict[str, float] = {}
    for p in points:
        rank = max(0, math.ceil(p / 100 * len(ordered)) - 1)
        out[f"p{int(p)}"] = round(ordered[rank], 3)
    out["max"] = round(ordered[-1], 3)
    out["count"] = len(ordered)
    return out


def replication_latencies(
    trace: Iterable[TraceEvent], *, local: bool = True
) -> list[float]:
    """Milliseconds from a coordinator accepting a write to each replica applying it (the
    first time each replica applies that version). ``local=False`` leaves out the
    coordinator's own copy, which applies without crossing the network."""
    accepted: dict[tuple[str, tuple[Any, ...]], tuple[float, str]] = {}
    seen: set[tuple[str, tuple[Any, ...], str]] = set()
    out = []
    for t, node, kind, fields in trace:
        if kind == "write":
            accepted.setdefault((fields["key"], tuple(fields["version"])), (t, node))
        elif kind == "apply":
            version = tuple(fields["version"])
            start = accepted.get((fields["key"], version))
            mark = (fields["key"], version, node)
            if start is not None and mark not in seen and (local or node != start[1]):
                seen.add(mark)
                out.append((t - start[0]) * 1000.0)
    return out


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


def fit_body(samples_ms: Sequence[float]) -> LatencyModel:
    """A lognormal (seconds) through the samples' median, as wide as their interquartile
    range says, without a tail: the spread of the thing itself. On a shared machine the
    tail of most delays is other processes holding the cores, which is no property of a
    link or a message (:func:`fit_lognormal` keeps it, when the tail is what is wanted)."""
    values = sorted(v for v in samples_ms if v > 0)
    if len(values) < 20:
        raise ValueError("fit_body needs at least 20 positive samples")
    sigma = max(1e-3, math.log(_quantile(values, 75) / _quantile(values, 25)) / _Z_IQR)
    return lognormal(_quantile(values, 50) / 1000.0, sigma)


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
