"""Prometheus exposition of a node's metrics, with the ``prometheus_client`` library.

Theory of operation
-------------------
Nothing is counted here. The actors count in plain integers and fixed-bucket histograms
(actors/kernel/latency.py) as they work; a scrape asks the node for one ``stats``
snapshot (``StatsAsk``, answered on the event loop like any message), then
:class:`NodeCollector` turns it into ``prometheus_client`` metric families
(:func:`actors.node.metric_families.metric_families` names them) while
``generate_latest`` renders the registry. The collector holds that one snapshot only for
the duration of a scrape, so the registry's other collectors (the library's process, GC
and platform collectors) and ours are rendered together.

Which thread: everything here runs on the node's own asyncio loop, between actor turns
(the actors are ``call_soon`` callbacks of that loop, runtime/loop_scheduler.py), so no
actor state is read from another thread and no lock is needed. The library's own HTTP
server (a thread) would have had to ask across threads and block; the node's loop
serves the endpoint instead (runtime/metrics_http.py).

The event loop's own health comes from the GC pacer (runtime/gc_pacer.py), which runs
every 10 ms anyway: how late each of its timers fires (``event_loop_lag_seconds``) and how
long each young collection it runs takes (``gc_pause_seconds``).
"""

from __future__ import annotations

from typing import Any, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from actors.kernel.latency import LATENCY_BUCKETS_S
from actors.node.metric_families import PREFIX, Family, metric_families
from runtime.gc_pacer import GcPacer

__all__ = ["CONTENT_TYPE", "NodeCollector", "node_registry", "render", "to_prometheus"]

#: The exposition's content type (text format 0.0.4), as prometheus_client renders it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _buckets(counts: list[int]) -> list[tuple[str, float]]:
    """Per-bucket counts as the cumulative ``(le, count)`` pairs of a histogram sample."""
    out, seen = [], 0
    for bound, count in zip((*LATENCY_BUCKETS_S, float("inf")), counts):
        seen += count
        out.append(("+Inf" if bound == float("inf") else repr(bound), seen))
    return out


def to_prometheus(family: Family) -> Metric:
    """A :class:`Family` as the ``prometheus_client`` family of its kind."""
    labels = list(family.labels)
    if family.kind == "counter":
        metric: Any = CounterMetricFamily(family.name, family.help, labels=labels)
        for values, value in family.samples:
            metric.add_metric(list(values), value)
    elif family.kind == "gauge":
        metric = GaugeMetricFamily(family.name, family.help, labels=labels)
        for values, value in family.samples:
            metric.add_metric(list(values), value)
    else:
        metric = HistogramMetricFamily(family.name, family.help, labels=labels)
        for values, (counts, total) in family.samples:
            metric.add_metric(list(values), _buckets(counts), total)
    return metric


class NodeCollector(Collector):
    """Yields the families of the snapshot a scrape put in :attr:`stats` (none without
    one), and the event loop's lag and GC pauses from ``pacer``."""

    def __init__(self, pacer: GcPacer | None = None) -> None:
        self.stats: dict[str, Any] | None = None
        self.pacer = pacer

    def collect(self) -> Iterator[Metric]:
        if self.stats is not None:
            for family in metric_families(self.stats):
                yield to_prometheus(family)
        pacer = self.pacer
        if pacer is not None:
            yield to_prometheus(
                Family(PREFIX + "event_loop_lag_seconds", "histogram", "How late the event loop ran timers due (the GC pacer's, every 10 ms).")
                .add((pacer.lag.counts, pacer.lag.sum))
            )
            yield to_prometheus(
                Family(PREFIX + "gc_pause_seconds", "histogram", "Young-generation collections the GC pacer ran, by how long each stalled the loop.")
                .add((pacer.pauses.counts, pacer.pauses.sum))
            )


def node_registry(pacer: GcPacer | None = None) -> tuple[CollectorRegistry, NodeCollector]:
    """A registry with the library's process, GC and platform collectors and a
    :class:`NodeCollector` (returned too: a scrape sets its snapshot)."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    PlatformCollector(registry=registry)
    collector = NodeCollector(pacer)
    registry.register(collector)
    return registry, collector


def render(registry: CollectorRegistry, collector: NodeCollector, stats: dict[str, Any] | None) -> bytes:
    """The exposition of ``registry`` with ``stats`` as the node's snapshot."""
    collector.stats = stats
    try:
        return generate_latest(registry)
    finally:
        collector.stats = None
