"""One node's counter replica: increments, reads, and anti-entropy gossip with its peers.

Theory of operation
-------------------
The state is a grow-only counter: ``counts`` maps each replica *life* to the increments
it accepted; the value is their sum. An increment adds to this life's own entry only. Every
``gossip_interval_s`` (jittered by ``ctx.rng``) the replica sends its whole state to one
peer chosen by ``ctx.rng``; the receiver merges it (per-entry maximum) and, when the sender
lacks something the receiver has, sends its own state back (push-pull), so one exchange
brings both up to date.

Invariants:
- merge is commutative, associative and idempotent, so lost, duplicated and reordered
  gossip never makes a replica wrong, only late; once the network delivers for a while,
  every replica's value is the sum of every increment any replica acknowledged;
- an entry only grows, and only its own replica increments it;
- a replica life is ``node_id#<32 random bits>`` drawn from ``ctx.rng``: a node that crashes
  and restarts (memory lost) starts a fresh entry instead of counting again from zero
  under its old one, which the others' larger copy would swallow. Increments a node
  acknowledged but had not gossiped before it crashed are lost with it (no persistence);
- what leaves the actor (gossip, traces) is built from sorted state, never from dict order.

Runs on the host's thread, one message per turn; never blocks; talks to peers with
``ctx.send`` and to itself with ``ctx.call_later`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.kernel import Ctx, FromPeer, ScheduledActor

__all__ = ["Gossip", "Increment", "Read", "Replica"]


@dataclass(frozen=True, slots=True)
class Increment:
    """Add ``amount`` (>= 0) at this replica; the reply is the replica's value after it."""

    amount: int = 1


@dataclass(frozen=True, slots=True)
class Read:
    """The reply is this replica's current value (it may not have heard of every increment yet)."""


@dataclass(frozen=True, slots=True)
class Gossip:
    """A peer message: the sender's whole state, sorted; ``answer``: send yours back if I lack anything."""

    counts: tuple[tuple[str, int], ...]
    answer: bool


@dataclass(frozen=True, slots=True)
class _Tick:
    """The replica's own gossip timer."""


class Replica(ScheduledActor):
    """A G-Counter replica (see the module's theory of operation)."""

    def __init__(self, ctx: Ctx, peers: tuple[str, ...], gossip_interval_s: float) -> None:
        super().__init__(ctx)
        if gossip_interval_s <= 0:
            raise ValueError("gossip_interval_s must be positive")
        self.peers = tuple(sorted(set(peers) - {ctx.node_id}))
        self.gossip_interval_s = gossip_interval_s
        self.life = f"{ctx.node_id}#{ctx.rng.getrandbits(32):08x}"
        self.counts: dict[str, int] = {}

    def on_start(self) -> None:
        self._arm()

    def on_receive(self, message: Any) -> Any:
        t = type(message)
        if t is Increment:
            return self._increment(message.amount)
        if t is Read:
            return self.value()
        if t is _Tick:
            self._gossip()
            return None
        if t is FromPeer and type(message.msg) is Gossip:
            self._merge(message.src, message.addr, message.msg)
            return None
        return super().on_receive(message)

    def value(self) -> int:
        return sum(self.counts.values())

    def state(self) -> tuple[tuple[str, int], ...]:
        return tuple(sorted(self.counts.items()))

    def _increment(self, amount: int) -> int:
        if type(amount) is not int or amount < 0:
            raise ValueError(f"a grow-only counter takes non-negative integers, not {amount!r}")
        self.counts[self.life] = self.counts.get(self.life, 0) + amount
        value = self.value()
        self.ctx.trace("increment", amount=amount, value=value)
        return value

    def _arm(self) -> None:
        # Jitter keeps replicas from gossiping in lockstep; it comes from ctx.rng, so the
        # simulator replays it from the seed.
        delay = self.gossip_interval_s * self.ctx.rng.uniform(0.5, 1.5)
        self.ctx.call_later(delay, self.actor_ref, _Tick())

    def _gossip(self) -> None:
        if self.peers:
            peer = self.ctx.rng.choice(self.peers)
            self.ctx.send(peer, Gossip(self.state(), answer=True))
            self.ctx.trace("gossip", to=peer, value=self.value())
        self._arm()

    def _merge(self, src: str, addr: str, gossip: Gossip) -> None:
        counts = self.counts
        theirs = dict(gossip.counts)
        changed = 0
        for life, count in gossip.counts:
            if count > counts.get(life, 0):
                counts[life] = count
                changed += 1
        if changed:
            self.ctx.trace("merge", src=src, changed=changed, value=self.value())
        if gossip.answer and any(theirs.get(life, 0) < count for life, count in counts.items()):
            self.ctx.send(addr, Gossip(self.state(), answer=False))
