"""The ``Replicator`` actor: everything that repairs replicas without a client asking.

- **Hinted handoff.** Writes an owner missed (it was down, or had not acked when the
  request timed out) wait here, bounded by ``hint_limit`` (oldest dropped first and
  counted), and are pushed in batches once the owner is alive again.
- **Anti-entropy.** Every ``anti_entropy_interval_s`` one round with one co-owning peer
  (round robin) compares per-partition digests for a few partitions (a cursor walks all
  of them); partitions that differ exchange ``(key, version)`` listings and each side
  sends the other what it lacks. Throttled by partitions per round and records per batch.
- **Warming and streaming.** A joining or restarted node pulls every partition it owns
  from a ready co-owner before it serves reads (then tells the node ``WarmDone``), and
  pulls partitions it gains when membership changes. Partitions it no longer owns are
  pushed to their owners in acknowledged batches, then dropped; a leaving node does that
  for all of its partitions and then tells the node ``HandOffDone``.

Rounds are state machines keyed by a per-actor id (``sid``); store queries are asked with
``StoreBatch`` and continued when ``StoreResults`` come back. Nothing here waits; every
round has a deadline after which it is abandoned (and, for pulls, retried).

Records move in pushes of about :data:`~actors.cluster.peer_budget.PUSH_BUDGET` bytes (a push
of many big values would pass the peer frame limit and be dropped, or flood the peer
link's queue), each followed by the next only once answered: hint pushes, handoff
batches and repair streams (the keys an anti-entropy round found newer here) wait for
their ``PushAck``; a pull answer covers the pulled keys (from the first) whose records fit
and says how many (``covered``), and the puller pulls the rest again, with at most
:data:`PULLS_IN_FLIGHT` pulls unanswered per round.

A peer's answer continues a round only if it comes from the peer the round talks to:
sids are small counters anyone can guess, so every table keyed by sid also records whom
it waits for (a round's peer, a hint push's target, a handoff's targets, each acking
once), and an answer from anyone else is ignored and counted (``replies_from_wrong_peer``).
"""

from __future__ import annotations

import collections
import itertools
import logging
from typing import Any, Callable

from pykka import ActorRef

from actors.kernel.scheduled import ScheduledActor
from actors.kernel.scheduler import Cancellable
from actors.kernel.ctx import Ctx
from actors.cluster.membership import ClusterView, State
from actors.cluster.peer_budget import PUSH_BUDGET, record_bytes
from actors.protocol.messages import (
    HandOffDone,
    HintRecords,
    KeepTombstones,
    ReplicatorCounters,
    StoreBatch,
    StoreResults,
    Tick,
    ViewChanged,
    WarmDone,
)
from actors.protocol.peer_messages import (
    Apply,
    DigestQuery,
    DropPartitions,
    Fetch,
    FromPeer,
    ListingQuery,
    MemberStatus,
    Pull,
    Push,
    PushAck,
    SyncListing,
    SyncRequest,
)
from actors.protocol.record import Record
from actors.protocol.version import Version

__all__ = ["REPLICATOR_COUNTERS", "Replicator", "diff_listings"]

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
)

logger = logging.getLogger("actorcache.replicator")

#: Concurrent pull rounds (warming, gained partitions) and handoffs.
MAX_PULL_ROUNDS = 4
MAX_HANDOFFS = 4
#: Partitions per warming round.
PULL_PARTITIONS = 32
#: A partition whose pull failed this often is left to anti-entropy.
MAX_PULL_ATTEMPTS = 3
#: Pulls a round keeps unanswered at once (each answer is at most a push budget).
PULLS_IN_FLIGHT = 2


def diff_listings(
    mine: tuple[tuple[str, Version], ...], theirs: tuple[tuple[str, Version], ...]
) -> tuple[list[str], list[str]]:
    """``(push, pull)``: keys where we hold the newer version, and where they do."""
    my_versions = dict(mine)
    their_versions = dict(theirs)
    pull = [k for k, v in theirs if (mine_v := my_versions.get(k)) is None or mine_v < v]
    push = [k for k, v in mine if (their_v := their_versions.get(k)) is None or their_v < v]
    return push, pull


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _fill(records: tuple[Record | None, ...], budget: int = PUSH_BUDGET) -> tuple[tuple[Record, ...], int]:
    """``(records, covered)``: the present records among the first ``covered`` of
    ``records`` (a store fetch's answer, one per key), as many as fit in ``budget`` bytes
    and at least one; ``covered`` counts the keys answered (missing ones included)."""
    out: list[Record] = []
    used = 0
    for i, record in enumerate(records):
        if record is None:
            continue
        size = record_bytes(record)
        if out and used + size > budget:
            return tuple(out), i
        out.append(record)
        used += size
    return tuple(out), len(records)


class _Round:
    """One sync round this node started with ``peer`` over ``partitions``."""

    __slots__ = ("applying", "asked", "listed", "partitions", "peer", "purpose", "started", "to_pull")

    def __init__(self, peer: str, partitions: tuple[int, ...], purpose: str, started: float) -> None:
        self.peer = peer
        self.partitions = partitions
        self.purpose = purpose  # "pull" (warming/gained) or "ae"
        self.started = started  # or when it last made progress
        self.listed = False  # the peer's listing came back and was compared
        #: Key batches to pull, and the pulls sent and not answered yet (in order).
        self.to_pull: collections.deque[tuple[str, ...]] = collections.deque()
        self.asked: collections.deque[tuple[str, ...]] = collections.deque()
        self.applying = 0  # pulled records on their way into the store


class _Repair:
    """Pushing the keys an anti-entropy round found newer here to ``peer``, one
    acknowledged push at a time."""

    __slots__ = ("keys", "peer", "pos", "started")

    def __init__(self, peer: str, keys: list[str], started: float) -> None:
        self.peer = peer
        self.keys = keys
        self.pos = 0
        self.started = started


class _HandOff:
    """Pushing one partition's records to its owners, one acknowledged batch at a time."""

    __slots__ = ("acked", "keys", "partition", "pos", "sent", "started", "targets")

    def __init__(self, partition: int, started: float) -> None:
        self.partition = partition
        self.started = started
        self.keys: list[str] = []
        self.pos = 0
        self.targets: tuple[str, ...] = ()
        #: Targets that acked the batch in flight (each counts once, whatever it repeats).
        self.acked: dict[str, None] = {}
        self.sent = 0


class Replicator(ScheduledActor):
    survive_failures = True  # see ScheduledActor.survive_failures

    def __init__(self, ctx: Ctx, store: ActorRef[Any], node: ActorRef[Any], config: Any) -> None:
        super().__init__(ctx)
        self.store = store
        self.node = node
        self.config = config
        self.me = ctx.node_id
        self.view: ClusterView | None = None
        self.owned: dict[int, None] = {}
        self.warming = False
        self.leaving = False
        self._ids = itertools.count(1)
        self._waits: dict[int, Callable[[tuple[Any, ...]], None]] = {}
        self._rounds: dict[int, _Round] = {}
        self._pull_queue: dict[int, None] = {}
        self._pull_attempts: collections.Counter[int] = collections.Counter()
        self._handoff_queue: dict[int, None] = {}
        self._handoffs: dict[int, _HandOff] = {}  # sid -> handoff
        self._hints: dict[str, collections.deque[Record]] = {}
        self._hint_count = 0
        self._hint_pushes: dict[int, tuple[str, int, float]] = {}  # sid -> (target, n, started)
        self._repairs: dict[int, _Repair] = {}  # sid -> repair stream
        self._ae_next = 0.0
        self._ae_peer = 0
        self._ae_cursor: dict[str, int] = {}
        self._timer: Cancellable | None = None
        self._handed_off = 0
        self._leave_done_sent = False
        self._last_counters: dict[str, int] = {}
        self.counters = collections.Counter(dict.fromkeys(REPLICATOR_COUNTERS[1:], 0))
        self.tick_s = min(0.1, config.anti_entropy_interval_s, config.heartbeat_interval_s)
        self.stale_s = max(2.0, 5 * config.request_timeout_s)

    def on_start(self) -> None:
        self._timer = self.ctx.call_later(self.tick_s, self.actor_ref, Tick("replicator"))

    def on_stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    # --- dispatch -------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        t = type(message)
        if t is StoreResults:
            then = self._waits.pop(message.batch, None)
            if then is not None:
                then(tuple(result for _, result in message.results))
        elif t is FromPeer:
            self._on_peer(message)
        elif t is HintRecords:
            self._add_hints(message.items)
        elif t is ViewChanged:
            self._on_view(message.view)
        elif t is Tick:
            if message.name == "replicator":  # the periodic timer; "-soon" ticks only hurry work
                self._timer = self.ctx.call_later(self.tick_s, self.actor_ref, Tick("replicator"))
            self._tick()
        else:
            return super().on_receive(message)
        return None

    def _ask_store(self, ops: list[Any], then: Callable[[tuple[Any, ...]], None]) -> None:
        batch = next(self._ids)
        self._waits[batch] = then
        self.store.tell(StoreBatch(batch, tuple(enumerate(ops)), self.actor_ref))

    def _send(self, peer: str, msg: Any) -> None:
        view = self.view
        addr = view.addresses.get(peer) if view is not None else None
        if addr is not None:
            self.ctx.send(addr, msg)

    # --- membership -------------------------------------------------------------------

    def _on_view(self, view: ClusterView) -> None:
        first = self.view is None
        self.view = view
        status = view.status(self.me)
        self.store.tell(KeepTombstones(self.config.tombstone_ttl_s if view.placement.replicas > 1 else 0.0))
        if status == MemberStatus.LEFT:
            # Gone (handed off, or gave up at the leave timeout): nothing left to move.
            self.owned = {}
            self._pull_queue.clear()
            self._handoff_queue.clear()
            self._handoffs.clear()
            return
        if status == MemberStatus.LEAVING:
            owned: dict[int, None] = {}
            self.leaving = True
        else:
            owned = dict.fromkeys(view.placement.owned_by(self.me))
        if first:
            if status == MemberStatus.WARMING:
                self.warming = True
                self._pull_queue.update(owned)
        else:
            for p in owned:
                if p not in self.owned:
                    self._pull_queue[p] = None
                    self._handoff_queue.pop(p, None)
            for p in self.owned:
                if p not in owned:
                    self._handoff_queue[p] = None
                    self._pull_queue.pop(p, None)
        self.owned = owned
        # Hints for members that left can never be delivered; anti-entropy covers their keys.
        for target in [t for t in self._hints if view.status(t) == MemberStatus.LEFT]:
            dropped = len(self._hints.pop(target))
            self._hint_count -= dropped
            self.counters["hints_dropped"] += dropped
        self._tick()

    def _ready_source(self, partition: int) -> str | None:
        """A co-owner to pull ``partition`` from: ready, reachable, first in placement order."""
        view = self.view
        assert view is not None
        for member in view.placement.owners(partition):
            if member != self.me and view.serves_reads(member):
                return member
        for member in view.future.owners(partition):
            if member != self.me and view.serves_reads(member):
                return member
        return None

    # --- the periodic driver -------------------------------------------------------------

    def _tick(self) -> None:
        if self.view is None:
            return
        now = self.ctx.now()
        self._expire(now)
        self._start_pulls(now)
        self._start_handoffs(now)
        self._deliver_hints(now)
        if not self.warming and not self.leaving and now >= self._ae_next:
            self._ae_next = now + self.config.anti_entropy_interval_s
            self._anti_entropy(now)
        if self.warming and not self._pull_queue and not any(r.purpose == "pull" for r in self._rounds.values()):
            self.warming = False
            self.node.tell(WarmDone())
        if (
            self.leaving
            and not self._leave_done_sent
            and not self._handoff_queue
            and not self._handoffs
        ):
            self._leave_done_sent = True
            self.node.tell(HandOffDone(self._handed_off, True))
        self._report()

    def _report(self) -> None:
        counters = dict(self.counters)
        counters["hints_pending"] = self._hint_count
        counters["partitions_pulling"] = len(self._pull_queue)
        counters["partitions_handing_off"] = len(self._handoff_queue) + len(self._handoffs)
        if counters != self._last_counters:
            self._last_counters = counters
            self.node.tell(ReplicatorCounters(counters))

    def _expire(self, now: float) -> None:
        for sid in [sid for sid, r in self._rounds.items() if now - r.started > self.stale_s]:
            r = self._rounds.pop(sid)
            self.counters["sync_rounds_failed"] += 1
            if r.purpose == "pull":
                for p in r.partitions:
                    self._pull_attempts[p] += 1
                    if self._pull_attempts[p] < MAX_PULL_ATTEMPTS and p in self.owned:
                        self._pull_queue[p] = None
        for sid in [sid for sid, h in self._handoffs.items() if now - h.started > self.stale_s]:
            h = self._handoffs.pop(sid)
            logger.warning("handoff of partition %d timed out; anti-entropy will finish it", h.partition)
        for sid in [sid for sid, (_, _, t0) in self._hint_pushes.items() if now - t0 > self.stale_s]:
            del self._hint_pushes[sid]
        for sid in [sid for sid, r in self._repairs.items() if now - r.started > self.stale_s]:
            del self._repairs[sid]  # the next anti-entropy round finds what is left

    # --- sync rounds (this node initiates) ------------------------------------------------

    def _start_pulls(self, now: float) -> None:
        pulling = sum(1 for r in self._rounds.values() if r.purpose == "pull")
        while self._pull_queue and pulling < MAX_PULL_ROUNDS:
            by_source: dict[str, list[int]] = {}
            for p in list(self._pull_queue):
                source = self._ready_source(p)
                if source is None:
                    del self._pull_queue[p]  # nobody to pull from: hints and anti-entropy later
                    continue
                group = by_source.setdefault(source, [])
                if len(group) < PULL_PARTITIONS:
                    group.append(p)
            if not by_source:
                return
            source, parts = next(iter(by_source.items()))
            for p in parts:
                del self._pull_queue[p]
            self._start_round(source, tuple(parts), "pull", now)
            pulling += 1

    def _anti_entropy(self, now: float) -> None:
        view = self.view
        assert view is not None
        peers = [
            m.node_id
            for m in view.members
            if m.node_id != self.me and m.status == MemberStatus.READY and view.states.get(m.node_id) == State.ALIVE
        ]
        shared_by_peer = {}
        for peer in peers:
            shared = [p for p in self.owned if peer in view.placement.owners(p)]
            if shared:
                shared_by_peer[peer] = shared
        if not shared_by_peer:
            return
        names = list(shared_by_peer)
        peer = names[self._ae_peer % len(names)]
        self._ae_peer += 1
        shared = shared_by_peer[peer]
        cursor = self._ae_cursor.get(peer, 0) % len(shared)
        count = min(self.config.anti_entropy_partitions, len(shared))
        parts = tuple(shared[(cursor + i) % len(shared)] for i in range(count))
        self._ae_cursor[peer] = cursor + count
        self.counters["anti_entropy_rounds"] += 1
        self._start_round(peer, parts, "ae", now)

    def _start_round(self, peer: str, partitions: tuple[int, ...], purpose: str, now: float) -> None:
        sid = next(self._ids)
        self._rounds[sid] = _Round(peer, partitions, purpose, now)

        def send_digests(results: tuple[Any, ...]) -> None:
            if sid in self._rounds:
                digests = tuple((p, d) for p, d in results[0])
                self._send(peer, SyncRequest(sid, digests))

        self._ask_store([DigestQuery(partitions)], send_digests)

    def _on_listing(self, src: str, msg: SyncListing) -> None:
        r = self._rounds.get(msg.sid)
        if r is None:
            return
        if r.peer != src:
            self._wrong_peer("SyncListing", src, r.peer)
            return
        if not msg.listings:
            self._finish_round(msg.sid)
            return
        theirs = dict(msg.listings)

        def compare(results: tuple[Any, ...]) -> None:
            if msg.sid not in self._rounds:
                return
            push: list[str] = []
            pull: list[str] = []
            for p, mine in results[0]:
                pu, pl = diff_listings(mine, theirs[p])
                push.extend(pu)
                pull.extend(pl)
            if push:
                sid = next(self._ids)
                repair = self._repairs[sid] = _Repair(src, push, self.ctx.now())
                self._next_repair(sid, repair)
            r.listed = True
            r.to_pull.extend(tuple(keys) for keys in _chunks(pull, self.config.stream_batch))
            self._send_pulls(msg.sid, r)

        self._ask_store([ListingQuery(tuple(theirs))], compare)

    def _send_pulls(self, sid: int, r: _Round) -> None:
        """Keep up to PULLS_IN_FLIGHT pulls unanswered; finish the round when all is in."""
        while r.to_pull and len(r.asked) < PULLS_IN_FLIGHT:
            keys = r.to_pull.popleft()
            r.asked.append(keys)
            self._send(r.peer, Pull(sid, keys))
        if r.listed and not r.asked and not r.applying and sid in self._rounds:
            self._finish_round(sid)

    def _next_repair(self, sid: int, repair: _Repair) -> None:
        """Push the next batch of a repair stream (or end it)."""
        if self._repairs.get(sid) is not repair:
            return
        if repair.pos >= len(repair.keys):
            del self._repairs[sid]
            return
        start = repair.pos
        keys = tuple(repair.keys[start : start + self.config.stream_batch])

        def fetched(results: tuple[Any, ...]) -> None:
            if self._repairs.get(sid) is not repair:
                return
            records, covered = _fill(results[0])
            repair.pos = start + covered  # set, not added: a repeated acknowledgement skips nothing
            repair.started = self.ctx.now()
            if records:
                self._send(repair.peer, Push(sid, records, ack=True))
            else:
                self._next_repair(sid, repair)  # all deleted meanwhile: on to the next keys

        self._ask_store([Fetch(keys, False)], fetched)

    def _on_pulled(self, src: str, msg: Push) -> None:
        sid = msg.sid
        r = self._rounds.get(sid)
        if r is None:
            return
        if r.peer != src:
            self._wrong_peer("Push", src, r.peer)
            return
        if not r.asked:
            return  # an answer to no pull of this round (a duplicate): nothing to place it
        asked = r.asked.popleft()
        covered = len(asked) if msg.covered is None else min(msg.covered, len(asked))
        if covered < len(asked):
            r.to_pull.appendleft(asked[covered:])  # the rest did not fit in that answer
        r.started = self.ctx.now()  # progress: a long warming is not a stale round
        r.applying += 1

        def applied(results: tuple[Any, ...]) -> None:
            key = "keys_streamed" if r.purpose == "pull" else "keys_repaired"
            self.counters[key] += results[0]
            r.applying -= 1
            if sid in self._rounds:
                self._send_pulls(sid, r)

        self._ask_store([Apply(msg.records)], applied)
        self._send_pulls(sid, r)

    def _finish_round(self, sid: int) -> None:
        r = self._rounds.pop(sid, None)
        if r is not None and r.purpose == "pull":
            for p in r.partitions:
                self._pull_attempts.pop(p, None)
        self._tick_soon()

    def _tick_soon(self) -> None:
        # Progress without waiting for the next tick when a round frees a slot.
        if self._pull_queue or self._handoff_queue:
            self.actor_ref.tell(Tick("replicator-soon"))

    # --- sync rounds (a peer initiates) ---------------------------------------------------

    def _on_peer(self, env: FromPeer) -> None:
        msg = env.msg
        t = type(msg)
        src = env.src
        if t is SyncRequest:
            theirs = dict(msg.digests)

            def compare(results: tuple[Any, ...]) -> None:
                differing = tuple(p for p, d in results[0] if theirs.get(p) != d)
                if not differing:
                    self.ctx.send(env.addr, SyncListing(msg.sid, ()))
                    return
                self._ask_store(
                    [ListingQuery(differing)],
                    lambda res: self.ctx.send(env.addr, SyncListing(msg.sid, res[0])),
                )

            self._ask_store([DigestQuery(tuple(theirs))], compare)
        elif t is SyncListing:
            self._on_listing(src, msg)
        elif t is Pull:

            def answer(results: tuple[Any, ...]) -> None:
                records, covered = _fill(results[0])
                self.ctx.send(
                    env.addr, Push(msg.sid, records, reply=True, covered=None if covered >= len(msg.keys) else covered)
                )

            self._ask_store([Fetch(msg.keys, False)], answer)
        elif t is Push:
            if msg.reply:
                self._on_pulled(src, msg)
                return

            def applied(results: tuple[Any, ...]) -> None:
                self.counters["keys_repaired"] += results[0]
                if msg.ack:
                    self.ctx.send(env.addr, PushAck(msg.sid, results[0]))

            self._ask_store([Apply(msg.records)], applied)
        elif t is PushAck:
            self._on_push_ack(src, msg)

    # --- handoff -------------------------------------------------------------------------

    def _handoff_targets(self, partition: int) -> tuple[str, ...]:
        view = self.view
        assert view is not None
        return tuple(m for m in view.future.owners(partition) if m != self.me and view.reachable(m))

    def _start_handoffs(self, now: float) -> None:
        while self._handoff_queue and len(self._handoffs) < MAX_HANDOFFS:
            p = next(iter(self._handoff_queue))
            del self._handoff_queue[p]
            sid = next(self._ids)
            handoff = self._handoffs[sid] = _HandOff(p, now)

            def listed(results: tuple[Any, ...], sid: int = sid, handoff: _HandOff = handoff) -> None:
                handoff.keys = [key for key, _ in results[0][0][1]]
                self._next_handoff_batch(sid, handoff)

            self._ask_store([ListingQuery((p,))], listed)

    def _next_handoff_batch(self, sid: int, handoff: _HandOff) -> None:
        if sid not in self._handoffs:
            return
        p = handoff.partition
        if p in self.owned:  # owned again (membership flapped): keep it
            del self._handoffs[sid]
            return
        if handoff.pos >= len(handoff.keys):
            del self._handoffs[sid]
            self._ask_store([DropPartitions((p,))], lambda res: None)
            self._tick_soon()
            return
        targets = self._handoff_targets(p)
        if not targets:
            del self._handoffs[sid]
            logger.warning("no reachable owner to hand partition %d to; keeping it", p)
            return
        start = handoff.pos
        keys = handoff.keys[start : start + self.config.stream_batch]
        handoff.targets = targets
        handoff.acked = {}

        def fetched(results: tuple[Any, ...]) -> None:
            records, covered = _fill(results[0])
            # The keys whose records did not fit go in the next batch. Set, not added: a
            # repeated acknowledgement that fetched this batch twice skips nothing.
            handoff.pos = start + covered
            handoff.sent = len(records)
            for target in targets:
                self._send(target, Push(sid, records, ack=True))

        self._ask_store([Fetch(tuple(keys), False)], fetched)

    def _on_push_ack(self, src: str, msg: PushAck) -> None:
        hint = self._hint_pushes.get(msg.sid)
        if hint is not None:
            target, n, _ = hint
            if src != target:
                self._wrong_peer("PushAck", src, target)
                return
            del self._hint_pushes[msg.sid]
            queue = self._hints.get(target)
            if queue is not None:
                for _ in range(min(n, len(queue))):
                    queue.popleft()
                self._hint_count -= min(n, self._hint_count)
                self.counters["hints_delivered"] += n
                if not queue:
                    del self._hints[target]
            return
        handoff = self._handoffs.get(msg.sid)
        if handoff is None:
            repair = self._repairs.get(msg.sid)
            if repair is not None:
                if src != repair.peer:
                    self._wrong_peer("PushAck", src, repair.peer)
                    return
                self._next_repair(msg.sid, repair)
            return
        if src not in handoff.targets:
            self._wrong_peer("PushAck", src, ",".join(handoff.targets))
            return
        handoff.acked[src] = None
        if len(handoff.acked) >= len(handoff.targets):
            self.counters["keys_handed_off"] += handoff.sent
            self._handed_off += handoff.sent
            handoff.started = self.ctx.now()
            self._next_handoff_batch(msg.sid, handoff)

    def _wrong_peer(self, kind: str, src: str, expected: str) -> None:
        """An answer carrying the sid of a round or push with another peer: ignored, counted."""
        self.counters["replies_from_wrong_peer"] += 1
        logger.debug("%s: ignored a %s from %s for a round with %s", self, kind, src, expected)

    # --- hints ---------------------------------------------------------------------------

    def _add_hints(self, items: tuple[tuple[str, Record], ...]) -> None:
        limit = self.config.hint_limit
        for target, record in items:
            if target == self.me:
                continue
            queue = self._hints.get(target)
            if queue is None:
                queue = self._hints[target] = collections.deque()
            queue.append(record)
            self._hint_count += 1
            if self._hint_count > limit:
                # Drop the oldest hint of the longest queue: that owner needs anti-entropy anyway.
                longest = max(self._hints.values(), key=len)
                longest.popleft()
                self._hint_count -= 1
                self.counters["hints_dropped"] += 1

    def _deliver_hints(self, now: float) -> None:
        view = self.view
        assert view is not None
        busy = {target for target, _, _ in self._hint_pushes.values()}
        for target, queue in self._hints.items():
            if target in busy or not queue or view.states.get(target) != State.ALIVE:
                continue
            records: list[Record] = []
            used = 0
            for record in itertools.islice(queue, self.config.stream_batch):
                size = record_bytes(record)
                if records and used + size > PUSH_BUDGET:
                    break
                records.append(record)
                used += size
            sid = next(self._ids)
            self._hint_pushes[sid] = (target, len(records), now)
            self._send(target, Push(sid, tuple(records), ack=True))
