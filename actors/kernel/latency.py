"""Fixed-bucket latency histograms kept as plain integers, cheap enough for the hot path.

Why fixed buckets: an observation is one ``bisect`` (C) and two additions, with no
allocation; an exporter (the cache's: Prometheus histogram families in runtime/metrics.py,
the simulator's summary) turns the counts into cumulative buckets when asked, never on
the request path. Every histogram uses :data:`LATENCY_BUCKETS_S`, so one list of bounds
tells a reader what any set of counts means.

A :class:`Histogram` lives in one actor (or one host object on the event loop) and is
changed only by its owner's turns.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

__all__ = ["LATENCY_BUCKETS_S", "Histogram", "quantile"]

#: Upper bounds (seconds, inclusive) of the buckets; a last bucket takes the rest (+Inf).
#: 100 us to 5 s: a loopback request is ~0.1-1 ms, a request timeout is seconds.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)


class Histogram:
    """Counts per bucket of :data:`LATENCY_BUCKETS_S` (the last: above them all) and the sum."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.sum = 0.0

    def observe(self, seconds: float, n: int = 1) -> None:
        """``n`` observations of ``seconds`` each (a batch's requests share one latency)."""
        self.counts[bisect_left(LATENCY_BUCKETS_S, seconds)] += n
        self.sum += seconds * n

    def snapshot(self) -> dict[str, Any]:
        """The ``stats`` form: per-bucket (not cumulative) counts and the sum in seconds."""
        return {"counts": list(self.counts), "sum": round(self.sum, 6)}


def quantile(counts: list[int], q: float) -> float | None:
    """The upper bound of the bucket holding quantile ``q`` of ``counts`` (per-bucket counts
    as :meth:`Histogram.snapshot` gives them); None without observations, inf past the
    last bound. An estimate no finer than the buckets, as Prometheus's histogram_quantile."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for bound, count in zip((*LATENCY_BUCKETS_S, float("inf")), counts):
        seen += count
        if seen >= rank:
            return bound
    return float("inf")
