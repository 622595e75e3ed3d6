"""The simulated network between nodes: latency models, loss, duplication, partitions.

Addresses are node ids (``ctx.send("node2", msg)``). Links are FIFO by default, as TCP
is within a connection: a message never overtakes an earlier one on the same link,
whatever latency it drew; a link marked ``reorder`` drops that guarantee on purpose. A
message is dropped when its link is cut at send time or its destination is down at
delivery time. All randomness comes from one ``random.Random`` handed in by the host,
so a seed replays a run exactly.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable

import simpy

from actors.kernel.peer import FromPeer

__all__ = ["LatencyModel", "Link", "SimNetwork", "constant", "lognormal", "uniform"]


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


class SimNetwork:
    def __init__(self, env: simpy.Environment, rng: random.Random, default: Link | None = None) -> None:
        self.env = env
        self.rng = rng
        self.default = default or Link()
        self.links: dict[tuple[str, str], Link] = {}
        #: Node id -> the node actor that receives its peer messages (absent: down).
        self.inboxes: dict[str, Any] = {}
        self.cut: set[tuple[str, str]] = set()
        #: Extra delay factor per slow node, applied to every link touching it.
        self.slow: dict[str, float] = {}
        self._last_delivery: dict[tuple[str, str], float] = {}
        self.sent = 0
        self.dropped = 0
        #: Called for every delivered message (src, dst, msg): traces and statistics hook here.
        self.on_deliver: Callable[[str, str, Any], None] | None = None

    # --- faults ---------------------------------------------------------------------

    def partition(self, *groups: list[str] | tuple[str, ...]) -> None:
        """Cut every link between different groups (both directions)."""
        for i, a in enumerate(groups):
            for b in groups[i + 1 :]:
                for x in a:
                    for y in b:
                        self.cut.add((x, y))
                        self.cut.add((y, x))

    def cut_one_way(self, src: str, dst: str) -> None:
        self.cut.add((src, dst))

    def heal(self) -> None:
        self.cut.clear()

    # --- transport --------------------------------------------------------------------

    def sender(self, node_id: str) -> Callable[[str, Any], None]:
        """The ``send`` a node's ``Ctx`` gets: ``send(dest_id, msg)``."""
        return functools.partial(self.send, node_id)

    def send(self, src: str, dst: str, msg: Any) -> None:
        self.sent += 1
        link_key = (src, dst)
        if link_key in self.cut:
            self.dropped += 1
            return
        link = self.links.get(link_key, self.default)
        rng = self.rng
        if link.loss and rng.random() < link.loss:
            self.dropped += 1
            return
        copies = 2 if link.duplicate and rng.random() < link.duplicate else 1
        envelope = FromPeer(src, src, msg)
        now = self.env.now
        factor = self.slow.get(src, 1.0) * self.slow.get(dst, 1.0)
        for _ in range(copies):
            at = now + link.latency.draw(rng) * factor
            if not link.reorder:
                at = max(at, self._last_delivery.get(link_key, 0.0))
                self._last_delivery[link_key] = at
            self.env.timeout(at - now).callbacks.append(lambda _e: self._deliver(src, dst, envelope))

    def _deliver(self, src: str, dst: str, envelope: FromPeer) -> None:
        inbox = self.inboxes.get(dst)
        if inbox is None or not inbox.is_alive():
            self.dropped += 1
            return
        if (src, dst) in self.cut:
            self.dropped += 1  # cut while in flight: a partition loses what is on the wire
            return
        if self.on_deliver is not None:
            self.on_deliver(src, dst, envelope.msg)
        inbox.tell(envelope)
