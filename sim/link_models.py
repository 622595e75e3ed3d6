"""Link models of the simulated network: one-way latency distributions and per-link loss,
duplication and ordering, as data.

A scenario describes its network with these (:mod:`sim.scenario`, TOML ``[link]``);
:mod:`sim.network` draws from them with the network's RNG only, so a seed replays every
delay; :func:`sim.latency.fit_lognormal` fits one to measured latencies.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

__all__ = ["LatencyModel", "Link", "constant", "lognormal", "uniform"]


@dataclass(frozen=True)
class LatencyModel:
    """A one-way delay distribution in seconds; ``draw`` uses the network's RNG only."""

    kind: str
    a: float
    b: float = 0.0
    tail_p: float = 0.0
    tail_factor: float = 1.0

    def draw(self, rng: random.Random) -> float:
        if self.kind == "constant":
            delay = self.a
        elif self.kind == "uniform":
            delay = rng.uniform(self.a, self.b)
        else:  # lognormal: a = median seconds, b = sigma of the underlying normal
            delay = self.a * math.exp(self.b * rng.gauss(0.0, 1.0))
        if self.tail_p and rng.random() < self.tail_p:
            delay *= self.tail_factor
        return max(0.0, delay)

    def describe(self) -> str:
        if self.kind == "constant":
            text = f"constant {self.a * 1000:g} ms"
        elif self.kind == "uniform":
            text = f"uniform {self.a * 1000:g}-{self.b * 1000:g} ms"
        else:
            text = f"lognormal median {self.a * 1000:g} ms sigma {self.b:g}"
        if self.tail_p:
            text += f", {self.tail_p:.1%} x{self.tail_factor:g} tail"
        return text


def constant(seconds: float) -> LatencyModel:
    return LatencyModel("constant", seconds)


def uniform(low: float, high: float) -> LatencyModel:
    return LatencyModel("uniform", low, high)


def lognormal(median: float, sigma: float, tail_p: float = 0.0, tail_factor: float = 10.0) -> LatencyModel:
    return LatencyModel("lognormal", median, sigma, tail_p, tail_factor)


@dataclass
class Link:
    latency: LatencyModel = field(default_factory=lambda: constant(0.0005))
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: bool = False
