"""The simulator's nodes speak the real node's metric names, per node, in virtual time.

``python -m sim.run SCENARIO --metrics FILE.jsonl [--metrics-interval S]`` writes one JSON
line per running node every ``S`` virtual seconds and once after the run settles:
``{"t": virtual seconds, "node": id, "metrics": {name: family}}``, each family as
:meth:`actors.node.metric_families.Family.to_json` gives it. The names are exactly those
of the real node's ``/metrics`` (the same table, :func:`metric_families`, made from the
same ``stats`` the same actors keep), so a notebook compares a simulated and a real run
by metric name. A family name here is the one exposed minus ``_total`` for counters, as
``prometheus_client.parser`` names families. What a simulated node has no socket for
(connection limits, client bytes, the event loop, the process) is absent.

Sampling reads the actors' counters in place (the simulator runs one thing at a time,
so nothing is mid-turn) and sends no message: the trace of a run is the same with and
without ``--metrics``, though SimPy's event count grows by one per sample.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from actors.node.metric_families import metric_families
from actors.node.stats import node_stats
from actors.node.system import NodeRefs

__all__ = ["MetricsSampler", "node_metrics", "open_sampler"]


def node_metrics(refs: NodeRefs) -> dict[str, Any]:
    """One node's metric families now, by name (its ``stats`` as a ``StatsAsk`` would answer)."""
    node = refs.node._actor_weakref()  # (pykka keeps no public handle on the actor object)
    store = refs.store._actor_weakref()
    if node is None or store is None:
        return {}
    stats = node_stats(node, store.stats(store.ctx.wall()))
    return {family.name: family.to_json() for family in metric_families(stats)}


class MetricsSampler:
    """Writes every running node's metrics to ``out`` every ``interval_s`` virtual seconds
    of ``host`` (a :class:`~sim.cache_host.CacheSimHost`) from :meth:`start` on."""

    def __init__(self, host: Any, out: IO[str], interval_s: float = 1.0) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.host = host
        self.out = out
        self.interval_s = interval_s
        self.samples = 0
        self._running = False

    def start(self) -> None:
        self._running = True
        self._arm()

    def stop(self) -> None:
        """Take a last sample and stop."""
        self._running = False
        self.sample()

    def _arm(self) -> None:
        self.host.env.timeout(self.interval_s).callbacks.append(self._tick)

    def _tick(self, _event: Any) -> None:
        if self._running:
            self.sample()
            self._arm()

    def sample(self) -> None:
        t = round(self.host.env.now, 6)
        for node_id in sorted(self.host.nodes):
            line = {"t": t, "node": node_id, "metrics": node_metrics(self.host.nodes[node_id])}
            self.out.write(json.dumps(line, separators=(",", ":")) + "\n")
            self.samples += 1


def open_sampler(host: Any, path: Path, interval_s: float) -> tuple[MetricsSampler, IO[str]]:
    """A sampler writing to ``path`` (created or truncated), and the file to close."""
    out = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed by the caller)
    return MetricsSampler(host, out, interval_s), out
