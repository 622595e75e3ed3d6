"""Serving messages one at a time at a cost: the simulator's hook for time that work takes.

Part of the framework's simulated host (it knows nothing of the cache): :class:`SimHost`
wraps a node's peer inbox and its ``ctx.send`` with these when it runs a cost model, so
each message that arrives is charged on the node's single server before it is handled,
and each message a turn sends leaves once its send cost has passed
(:class:`sim.scheduler.NodeScheduler`: ``admit``, ``charge``, ``at_free``). What a message
costs is the model's business: the cache's is :class:`sim.service.ServiceModel`, fitted to
a real node's measured CPU per message type.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Protocol

__all__ = ["CostModel", "ServedInbox", "served_sender"]


class CostModel(Protocol):
    """What a served node's messages cost, in seconds, drawn from ``rng``."""

    def peer_cost(self, msg: Any, rng: random.Random) -> float: ...

    def draw(self, kind: str, rng: random.Random) -> float: ...


class ServedInbox:
    """A node's peer inbox as the network sees it: each message is charged on arrival and
    handled once the node's server has spent its cost (``NodeScheduler.admit``)."""

    __slots__ = ("model", "ref", "rng", "scheduler")

    def __init__(self, ref: Any, scheduler: Any, model: CostModel, rng: random.Random) -> None:
        self.ref = ref
        self.scheduler = scheduler
        self.model = model
        self.rng = rng

    def is_alive(self) -> bool:
        return self.ref.is_alive()

    def tell(self, envelope: Any) -> None:
        ref = self.ref
        self.scheduler.admit(self.model.peer_cost(envelope.msg, self.rng), lambda: ref.tell(envelope))


def served_sender(
    send: Callable[[str, Any], None], scheduler: Any, model: CostModel, rng: random.Random
) -> Callable[[str, Any], None]:
    """``ctx.send`` for a served node: each message costs ``peer.send`` and leaves once
    that cost has passed (in send order: per-link FIFO holds)."""

    def served(dst: str, msg: Any) -> None:
        scheduler.at_free(scheduler.charge(model.draw("peer.send", rng)), lambda: send(dst, msg))

    return served
