"""The ``Replicator`` actor: everything that repairs replicas without a client asking.

A thin shell over three sans-IO parts, each fed messages and the time:

- :class:`~actors.cluster.hints.Hints`: hinted handoff, the writes an owner missed,
  pushed once it is alive again;
- :class:`~actors.cluster.sync_rounds.SyncRounds`: anti-entropy (one round every
  ``anti_entropy_interval_s`` with one co-owning peer) and pull rounds, and the answers
  to the rounds, pulls and pushes peers start;
- :class:`~actors.cluster.streaming.Streaming`: warming, pulling gained partitions and
  handing off lost ones (then telling the node ``WarmDone`` / ``HandOffDone``).

The actor is their :class:`~actors.cluster.replicator_io.ReplicatorIo`: it numbers ids,
asks the store with ``StoreCall`` and continues the asking part when ``StoreAnswer``
come back (one continuation table), sends to peers, and runs the periodic tick (expire
stale work, start pulls, handoffs, hint pushes and anti-entropy, report counters).
Nothing here waits; every round and push has a deadline (``stale_s``) after which it is
abandoned (and, for pulls, retried).

Records move in pushes of about :data:`~actors.cluster.peer_budget.PUSH_BUDGET` bytes (a
push of many big values would pass the peer frame limit and be dropped, or flood the peer
link's queue), each followed by the next only once answered. A peer's answer continues
work only if it comes from the peer that work talks to: sids are small counters anyone
can guess, so an answer from anyone else is ignored and counted
(``replies_from_wrong_peer``). Records and listed versions stamped beyond the clock bound
are dropped on arrival (``versions_refused``, :mod:`actors.cluster.clock_bound`).
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
from typing import Any

from pykka import ActorRef

from actors.cluster.clock_bound import RefusalLog, bound_records, limit_ms
from actors.cluster.hints import Hints
from actors.cluster.membership import ClusterView
from actors.cluster.replicator_io import Then
from actors.cluster.streaming import Streaming
from actors.cluster.sync_rounds import SyncRounds
from actors.kernel.continuations import Continuations
from actors.kernel.ctx import Ctx
from actors.kernel.peer import FromPeer
from actors.kernel.scheduled import ScheduledActor
from actors.kernel.scheduler import Cancellable
from actors.protocol.internal import HandOffDone, HintRecords, ReplicatorCounters, ReplicatorTick, ViewChanged, WarmDone
from actors.protocol.peer_messages import MemberStatus, Pull, Push, PushAck, SyncListing, SyncRequest
from actors.store.ops import KeepTombstones, StoreCall, StoreAnswer

__all__ = ["REPLICATOR_COUNTERS", "Replicator"]

#: What the replicator counts (reported to the node's ``stats``); hints_pending is a gauge.
REPLICATOR_COUNTERS = (
    "hints_pending",
    "hints_delivered",
    "hints_dropped",
    "anti_entropy_rounds",
    "keys_repaired",
    "keys_streamed",
    "keys_handed_off",
    "sync_rounds_failed",
    "replies_from_wrong_peer",
    "versions_refused",
)

logger = logging.getLogger("actorcache.replicator")


class Replicator(ScheduledActor):
    survive_failures = True  # see ScheduledActor.survive_failures

    def __init__(self, ctx: Ctx, store: ActorRef[Any], node: ActorRef[Any], config: Any) -> None:
        super().__init__(ctx)
        self.store = store
        self.node = node
        self.config = config
        self.me = ctx.node_id
        self.view: ClusterView | None = None
        self._ids = itertools.count(1)
        self._waits: Continuations[tuple[Any, ...]] = Continuations(self._ids)
        self._timer: Cancellable | None = None
        self._last_counters: dict[str, int] = {}
        self.counters = collections.Counter(dict.fromkeys(REPLICATOR_COUNTERS[1:], 0))
        self.tick_s = min(0.1, config.anti_entropy_interval_s, config.heartbeat_interval_s)
        self.stale_s = max(2.0, 5 * config.request_timeout_s)
        self.hints = Hints(self.me, config.hint_limit, config.stream_batch, self, self.counters)
        self.rounds = SyncRounds(self.me, config, self, self.counters, self._pulled)
        self.streaming = Streaming(self.me, config, self, self.counters, self.rounds)
        self.refusals = RefusalLog(logger, self.me, ctx.trace)

    def on_start(self) -> None:
        self._timer = self.ctx.call_later(self.tick_s, self.actor_ref, ReplicatorTick())

    def on_stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    # --- dispatch -------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        t = type(message)
        if t is StoreAnswer:
            self._waits.resume(message.batch, tuple(result for _, result in message.results))
        elif t is FromPeer:
            self._on_peer(message)
        elif t is HintRecords:
            self.hints.add(message.items, self._oldest_hint_ms(self.view) if self.view is not None else 0)
        elif t is ViewChanged:
            self._on_view(message.view)
        elif t is ReplicatorTick:
            if message.periodic:
                self._timer = self.ctx.call_later(self.tick_s, self.actor_ref, ReplicatorTick())
            self._tick()
        else:
            return super().on_receive(message)
        return None

    def _on_peer(self, env: FromPeer) -> None:
        msg = env.msg
        t = type(msg)
        if t is Push or t is SyncListing:
            msg = self._bounded(env.src, msg)
        if t is SyncRequest:
            self.rounds.on_sync_request(env.addr, msg)
        elif t is SyncListing:
            self.rounds.on_listing(env.src, msg)
        elif t is Pull:
            self.rounds.on_pull(env.addr, msg)
        elif t is Push:
            if msg.reply:
                self.rounds.on_pulled(env.src, msg, self.ctx.now())
            else:
                self.rounds.on_push(env.addr, msg)
        elif t is PushAck:
            if not self.hints.on_ack(env.src, msg) and not self.streaming.on_ack(env.src, msg, self.ctx.now()):
                self.rounds.on_ack(env.src, msg)

    def _bounded(self, src: str, msg: Any) -> Any:
        """``msg`` without the records (a push) or listed versions (a listing: they would
        only be pulled and refused, round after round) stamped beyond the clock bound
        (actors.cluster.clock_bound); counted and traced."""
        limit = limit_ms(self.ctx.wall(), self.config.max_clock_skew_s)
        if type(msg) is Push:
            records, (refused, furthest) = bound_records(msg.records, limit)
            if refused:
                msg = dataclasses.replace(msg, records=records)
        else:
            refused = furthest = 0
            listings = []
            for partition, items in msg.listings:
                kept = tuple(item for item in items if item[1].wall_ms <= limit)
                if len(kept) < len(items):
                    refused += len(items) - len(kept)
                    furthest = max(furthest, max(v.wall_ms for _, v in items))
                listings.append((partition, kept))
            if refused:
                msg = dataclasses.replace(msg, listings=tuple(listings))
        if refused:
            self.counters["versions_refused"] += refused
            self.refusals.note(src, type(msg).__name__, refused, furthest - limit)
        return msg

    # --- ReplicatorIo: what the parts act through ------------------------------------------

    def next_id(self) -> int:
        return next(self._ids)

    def ask_store(self, ops: list[Any], then: Then) -> None:
        batch = self._waits.add(lambda results: then(results, self.ctx.now()))
        self.store.tell(StoreCall(batch, tuple(enumerate(ops)), self.actor_ref))

    def send(self, peer: str, msg: Any) -> None:
        view = self.view
        addr = view.addresses.get(peer) if view is not None else None
        if addr is not None:
            self.ctx.send(addr, msg)

    def reply(self, addr: str, msg: Any) -> None:
        self.ctx.send(addr, msg)

    def tick_soon(self) -> None:
        # Progress without waiting for the next tick when a round frees a slot.
        if self.streaming.busy():
            self.actor_ref.tell(ReplicatorTick(periodic=False))

    def wrong_peer(self, kind: str, src: str, expected: str) -> None:
        self.counters["replies_from_wrong_peer"] += 1
        logger.debug("%s: ignored a %s from %s for a round with %s", self, kind, src, expected)

    def _pulled(self, peer: str, partitions: tuple[int, ...]) -> None:
        self.streaming.pulled(peer, partitions)

    # --- membership and the periodic driver ----------------------------------------------

    def _on_view(self, view: ClusterView) -> None:
        first = self.view is None
        self.view = view
        ready = view.status(self.ctx.node_id) == MemberStatus.READY
        self.store.tell(KeepTombstones(self.config.tombstone_ttl_s if view.placement.replicas > 1 else 0.0, ready))
        streaming = self.streaming
        was_leaving = streaming.leaving
        if not streaming.on_view(view, first):
            return
        # Warming and the hand-off begin here, once each (their ends: WarmDone, HandOffDone).
        if first and streaming.warming:
            self.ctx.trace("warming", partitions=len(streaming.pull_queue))
        if streaming.leaving and not was_leaving:
            self.ctx.trace("handoff", partitions=streaming.handing_off())
        self.hints.drop_left(view)
        self._tick()

    def _tick(self) -> None:
        view = self.view
        if view is None:
            return
        now = self.ctx.now()
        self.streaming.rounds_failed(self.rounds.expire(now, self.stale_s))
        self.streaming.expire(now, self.stale_s)
        self.hints.expire(now, self.stale_s)
        streaming = self.streaming
        streaming.start_pulls(now)
        streaming.start_handoffs(now)
        for target, dropped in self.hints.deliver(view, now, self._oldest_hint_ms(view)):
            self.ctx.trace("hints-expired", target=target, dropped=dropped)
        if not streaming.warming and not streaming.leaving:
            self.rounds.anti_entropy(view, streaming.owned, now)
        if streaming.warm_done():
            self.node.tell(WarmDone(self.counters["keys_streamed"]))
        handed_off = streaming.leave_done()
        if handed_off is not None:
            self.node.tell(HandOffDone(handed_off, True))
        self._report()

    def _oldest_hint_ms(self, view: ClusterView) -> int:
        """The oldest version (``wall_ms``) a hint may carry to be delivered: wall time
        minus the tombstone lifetime (0, no limit, where tombstones are off). An older
        hint's key may have been deleted and its tombstone purged since (actors.cluster.hints)."""
        ttl = self.config.tombstone_ttl_s if view.placement.replicas > 1 else 0.0
        if ttl <= 0:
            return 0
        return max(0, int((self.ctx.wall() - ttl) * 1000))

    def _report(self) -> None:
        counters = dict(self.counters)
        counters["hints_pending"] = self.hints.count
        counters["partitions_pulling"] = len(self.streaming.pull_queue)
        counters["partitions_handing_off"] = self.streaming.handing_off()
        if counters != self._last_counters:
            self._last_counters = counters
            self.node.tell(ReplicatorCounters(counters))
