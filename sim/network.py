"""The simulated network between nodes: per-link latency, loss and partitions.

Addresses are node ids (``ctx.send("node2", msg)``). Every link is FIFO, as TCP is within
a connection: a message never overtakes an earlier one on the same link, whatever
latency it drew. A message is dropped when the link is cut (partition) at send time or
when its destination is down at delivery time. All randomness comes from one
``random.Random`` handed in by the host, so a seed replays a run exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

import simpy

from actors.peer_messages import FromPeer

__all__ = ["Link", "SimNetwork"]

#: Latency model: draws one delay in seconds from the network's RNG.
LatencyFn = Callable[[random.Random], float]


def constant(seconds: float) -> LatencyFn:
    return lambda rng: seconds


def uniform(low: float, high: float) -> LatencyFn:
    return lambda rng: rng.uniform(low, high)


@dataclass
class Link:
    latency: LatencyFn
    loss: float = 0.0


class SimNetwork:
    def __init__(self, env: simpy.Environment, rng: random.Random, default: Link | None = None) -> None:
        self.env = env
        self.rng = rng
        self.default = default or Link(constant(0.0005))
        self.links: dict[tuple[str, str], Link] = {}
        #: Node id -> the node actor that receives its peer messages (absent: down).
        self.inboxes: dict[str, Any] = {}
        self.cut: set[tuple[str, str]] = set()
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

        def send(dest: str, msg: Any) -> None:
            self.send(node_id, dest, msg)

        return send

    def send(self, src: str, dst: str, msg: Any) -> None:
        self.sent += 1
        link_key = (src, dst)
        if link_key in self.cut:
            self.dropped += 1
            return
        link = self.links.get(link_key, self.default)
        if link.loss and self.rng.random() < link.loss:
            self.dropped += 1
            return
        now = self.env.now
        at = max(now + max(0.0, link.latency(self.rng)), self._last_delivery.get(link_key, 0.0))
        self._last_delivery[link_key] = at
        envelope = FromPeer(src, src, msg)
        self.env.timeout(at - now).callbacks.append(lambda _e: self._deliver(src, dst, envelope))

    def _deliver(self, src: str, dst: str, envelope: FromPeer) -> None:
        inbox = self.inboxes.get(dst)
        if inbox is None or not inbox.is_alive():
            self.dropped += 1
            return
        if self.on_deliver is not None:
            self.on_deliver(src, dst, envelope.msg)
        inbox.tell(envelope)
