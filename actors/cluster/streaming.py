"""Streaming: whole partitions move when ownership changes (warming, gained partitions, handoff).

A joining or restarted node (``warming``) pulls every partition it owns before it serves
reads; any node pulls the partitions it gains when membership changes (pull rounds of
:mod:`~actors.cluster.sync_rounds`). Partitions it no longer owns are pushed to their
owners (the ``future`` placement's: owners once leaving members are gone) in acknowledged
batches of about :data:`~actors.cluster.peer_budget.PUSH_BUDGET` bytes, then dropped; a
leaving node does that for all of its partitions, but keeps their data until it has left.
Sans-IO: fed views, acks and the time; acts through a
:class:`~actors.cluster.replicator_io.ReplicatorIo` and says when warming or the handoff
is done (:meth:`Streaming.warm_done`, :meth:`Streaming.leave_done`).

Why a partition is pulled from several co-owners (:func:`sources_needed`): a node that
restarted lost its memory, and it may have been one of the W owners that acknowledged a
quorum write; then only W - 1 of the other N - 1 owners hold that write. Pulling from one
co-owner (which may have missed the write) and then serving reads breaks R + W > N: a
quorum read can meet this node and that co-owner and miss an acknowledged value. Pulled
from N - W + 1 of the others (W a quorum), the union of what it pulled must include one
of the W - 1, so this node holds every quorum-acknowledged write again before it serves
a read, and the quorum argument holds as if it had never lost its memory (the same count
covers a node that gains a partition: the N - 1 owners it shares it with include W - 1
that acknowledged). A leaving node still owns its partitions in the read placement until
it has left, so it must keep answering them from its data: it drops nothing it handed
off before it is ``left``. See docs/consistency.md.

Invariants:

- a partition is in at most one of the pull queue and the handoff queue: gaining it
  cancels its handoff, losing it cancels its pull; a handoff in progress stops when its
  partition is owned again (membership flapped) and keeps the data;
- a partition leaves the pull queue only once pull rounds from :func:`sources_needed`
  distinct reachable co-owners completed; while fewer are reachable it waits (a warming
  node then stays warming: it takes writes and serves no reads); a failed round is
  retried, from any co-owner not pulled yet; :func:`serving_sources_needed` of those
  sources were not warming for the whole round; a co-owner pulled from while it was
  warming is pulled from again once it serves, if a serving source is still missing
  (the need grows when a warming co-owner becomes ready: without that second pull, two
  owners restarted together could leave one warming for ever); a warming co-owner
  answers pulls with what it holds, like any other;
- sources are counted against the owners of the current view: only pulls from members
  that are still co-owners count, and while warming, a partition whose owners changed
  (a rumoured member admitted: the earlier placement was short of it) goes back in the
  queue until enough of its current co-owners were pulled from;
- at most :data:`MAX_PULL_ROUNDS` pull rounds (of up to :data:`PULL_PARTITIONS`
  partitions, one source each) and :data:`MAX_HANDOFFS` handoffs run at once;
- a handoff batch goes on only when every target acked it (each counts once, whatever it
  repeats; an ack from anyone else is ignored and counted); a partition is dropped here
  only after its last batch was acked; a handoff idle for ``stale_s`` is abandoned and
  the data kept (anti-entropy finishes it);
- ``WarmDone`` and ``HandOffDone`` are each said once.
"""

from __future__ import annotations

import collections
import logging
from typing import Any

from actors.cluster.membership import ClusterView
from actors.cluster.replicator_io import ReplicatorIo, fill
from actors.cluster.sync_rounds import Round, SyncRounds
from actors.protocol.peer_messages import MemberStatus, Push, PushAck
from actors.protocol.replica_ops import Fetch
from actors.store.ops import DropPartitions, ListingQuery

__all__ = ["MAX_HANDOFFS", "MAX_PULL_ROUNDS", "PULL_PARTITIONS", "Streaming", "serving_sources_needed", "sources_needed"]

logger = logging.getLogger("actorcache.replicator")

#: Concurrent pull rounds (warming, gained partitions) and handoffs.
MAX_PULL_ROUNDS = 4
MAX_HANDOFFS = 4
#: Partitions per warming round.
PULL_PARTITIONS = 32


def sources_needed(owners: int) -> int:
    """Distinct co-owners a partition with ``owners`` owners (N) is pulled from: N - Q + 1
    with Q = N // 2 + 1 a quorum, so that the sources include one of the Q - 1 other
    owners of any quorum-acknowledged write (at most the N - 1 co-owners there are)."""
    quorum = owners // 2 + 1
    return max(0, min(owners - quorum + 1, owners - 1))


def serving_sources_needed(owners: int, serving: int) -> int:
    """How many of the sources must be co-owners that are not warming, of ``serving``
    such co-owners (reachable or not). A warming co-owner may itself have lost its memory
    after acknowledging a write: with f owners warming, a quorum write still lives on at
    least Q - f of the N - f others, and only N - Q + 1 of those are sure to include one
    (two of five owners restarted together, the third holder cut off: pulling from each
    other and the two that missed the write, both would serve reads without it). Fewer
    than that are not warming only when f >= Q: a write those f alone held is lost
    (promise 1's condition), and every one of the others is pulled from."""
    return min(sources_needed(owners), serving)


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


class Streaming:
    """The partitions this node owns, and those it is pulling or handing off."""

    def __init__(
        self, me: str, config: Any, io: ReplicatorIo, counters: collections.Counter[str], rounds: SyncRounds
    ) -> None:
        self.me = me
        self.config = config
        self.io = io
        self.counters = counters
        self.rounds = rounds
        self.view: ClusterView | None = None
        self.owned: dict[int, None] = {}
        self.warming = False
        self.leaving = False
        #: Partitions still to pull (from more co-owners than those in ``_pulled_from``).
        self.pull_queue: dict[int, None] = {}
        #: Per queued partition (and, while warming, per pulled one: the view may still
        #: gain a co-owner it must be pulled from): the co-owners a pull round completed
        #: from, and those a round is under way with, each with whether it was serving
        #: (not warming) for the whole round (insertion-ordered: the same rounds on every
        #: replay).
        self._pulled_from: dict[int, dict[str, bool]] = {}
        self._pulling_from: dict[int, dict[str, bool]] = {}
        self.handoff_queue: dict[int, None] = {}
        self.handoffs: dict[int, _HandOff] = {}  # sid -> handoff
        self._handed_off = 0
        #: Partitions a handoff found no reachable owner for (kept here).
        self.unreachable_handoffs = 0
        self._leave_done_sent = False

    # --- ownership ---------------------------------------------------------------------

    def on_view(self, view: ClusterView, first: bool) -> bool:
        """Queue the partitions gained (to pull) and lost (to hand off); False once this
        node has left (nothing is left to move)."""
        self.view = view
        status = view.status(self.me)
        if status == MemberStatus.LEFT:
            # Gone (handed off, or gave up at the leave timeout): nothing left to move.
            self.owned = {}
            self.pull_queue.clear()
            self._pulled_from.clear()
            self._pulling_from.clear()
            self.handoff_queue.clear()
            self.handoffs.clear()
            return False
        if status == MemberStatus.LEAVING:
            owned: dict[int, None] = {}
            self.leaving = True
        else:
            owned = dict.fromkeys(view.placement.owned_by(self.me))
        if first:
            if status == MemberStatus.WARMING:
                self.warming = True
                self.pull_queue.update(owned)
        else:
            for p in owned:
                if p not in self.owned:
                    self.pull_queue[p] = None
                    self.handoff_queue.pop(p, None)
            for p in self.owned:
                if p not in owned:
                    self.handoff_queue[p] = None
                    self._unqueue(p)
            if self.warming:
                # A member admitted while warming (one that was rumoured) can be an owner
                # the pulls so far were not counted against: pull from it too.
                for p in owned:
                    if p not in self.pull_queue and not self._enough(p):
                        self.pull_queue[p] = None
        self.owned = owned
        return True

    def busy(self) -> bool:
        """Partitions wait to be pulled or handed off."""
        return bool(self.pull_queue or self.handoff_queue)

    def handing_off(self) -> int:
        """Partitions queued for handoff or being handed off."""
        return len(self.handoff_queue) + len(self.handoffs)

    # --- pulls ---------------------------------------------------------------------------

    def _unqueue(self, partition: int) -> None:
        self.pull_queue.pop(partition, None)
        self._pulled_from.pop(partition, None)
        self._pulling_from.pop(partition, None)

    def _pulled_enough(self, partition: int) -> None:
        """``partition`` was pulled from enough co-owners: out of the queue; while warming
        its sources are kept (a co-owner admitted later may be one more it needs)."""
        if self.warming:
            self.pull_queue.pop(partition, None)
            self._pulling_from.pop(partition, None)
        else:
            self._unqueue(partition)

    def _needs(self, partition: int) -> tuple[int, int, int, int]:
        """``(total wanted, serving wanted)`` more sources for ``partition``, then
        ``(total, serving)`` of those under way: counted over its co-owners in the current
        view (:func:`sources_needed`, :func:`serving_sources_needed`)."""
        view = self.view
        assert view is not None
        owners = view.placement.owners(partition)
        done = self._pulled_from.get(partition, {})
        under_way = self._pulling_from.get(partition, {})
        serving = sum(1 for m in owners if m != self.me and view.status(m) != MemberStatus.WARMING)
        total_needed = sources_needed(len(owners))
        serving_needed = serving_sources_needed(len(owners), serving)
        done_total = sum(1 for m in owners if m in done)
        done_serving = sum(1 for m in owners if done.get(m))
        return (
            total_needed - done_total,
            serving_needed - done_serving,
            sum(1 for m in under_way if m not in done),  # a pull again counts once in total
            sum(1 for v in under_way.values() if v),
        )

    def _enough(self, partition: int) -> bool:
        """Whether ``partition`` was pulled from enough of its current co-owners, and
        enough of them not warming when pulled."""
        total, serving, _, _ = self._needs(partition)
        return total <= 0 and serving <= 0

    def _sources(self, partition: int) -> list[str]:
        """Co-owners ``partition`` may be pulled from, serving ones first: every reachable
        owner but this node. Only owners count (not the pending owners of a leave): the
        argument for :func:`sources_needed` is about the N - 1 co-owners a quorum write
        reached. A warming one counts too: it holds what it has pulled and been written
        since it started, and two restarted owners waiting for each other would
        otherwise wait forever; but not towards :func:`serving_sources_needed` (it may
        have lost a write it acknowledged)."""
        view = self.view
        assert view is not None
        reachable = [m for m in view.placement.owners(partition) if m != self.me and view.reachable(m)]
        return [m for m in reachable if view.serves_reads(m)] + [m for m in reachable if not view.serves_reads(m)]

    def _pull_again(self, done: dict[str, bool], source: str, serving: int) -> bool:
        """Whether a co-owner already pulled from is pulled from again: when it was
        warming then, serves reads now, and only a serving source helps. Two owners
        restarted together each pull from the other while it warms; once one is ready it
        counts towards :func:`serving_sources_needed` of the other, which must then pull
        from it again (its earlier pull does not count as serving) or wait forever."""
        view = self.view
        assert view is not None
        return serving > 0 and not done[source] and view.serves_reads(source)

    def start_pulls(self, now: float) -> None:
        """Start pull rounds for queued partitions, each from as many co-owners not yet
        pulled from as it still needs (:func:`sources_needed`), grouped by source."""
        view = self.view
        assert view is not None
        pulling = self.rounds.pulling()
        if pulling >= MAX_PULL_ROUNDS:
            return
        by_source: dict[str, list[int]] = {}
        for p in list(self.pull_queue):
            done = self._pulled_from.setdefault(p, {})
            under_way = self._pulling_from.setdefault(p, {})
            total, serving, total_under_way, serving_under_way = self._needs(p)
            if total <= 0 and serving <= 0:
                if not under_way:  # enough sources (or none needed: a single owner)
                    self._pulled_enough(p)
                continue
            total -= total_under_way
            serving -= serving_under_way
            for source in self._sources(p):  # serving ones first
                if total <= 0 and serving <= 0:
                    break
                if source in under_way or (source in done and not self._pull_again(done, source, serving)):
                    continue
                if serving > 0 and not view.serves_reads(source) and total <= 0:
                    break  # only a serving source helps now: wait for one
                group = by_source.setdefault(source, [])
                if len(group) < PULL_PARTITIONS:
                    group.append(p)
                    if source not in done:
                        total -= 1
                    if view.serves_reads(source):
                        serving -= 1
        for source, parts in by_source.items():
            if pulling >= MAX_PULL_ROUNDS:
                break
            for p in parts:
                self._pulling_from[p][source] = view.status(source) != MemberStatus.WARMING
            self.rounds.start(source, tuple(parts), "pull", now)
            pulling += 1

    def pulled(self, source: str, partitions: tuple[int, ...]) -> None:
        """A pull round from ``source`` over ``partitions`` completed."""
        view = self.view
        for p in partitions:
            under_way = self._pulling_from.get(p)
            if under_way is None or view is None:
                continue  # no longer queued (lost, or already pulled enough)
            serving = under_way.pop(source, False)
            # Serving at the start and still (a restart in between shows as warming).
            self._pulled_from[p][source] = serving and view.status(source) != MemberStatus.WARMING
            if self._enough(p):
                self._pulled_enough(p)

    def rounds_failed(self, failed: list[Round]) -> None:
        """Abandoned pull rounds: their partitions stay queued and are pulled again, from
        any co-owner not pulled from yet."""
        for r in failed:
            if r.purpose == "pull":
                for p in r.partitions:
                    under_way = self._pulling_from.get(p)
                    if under_way is not None:
                        under_way.pop(r.peer, None)

    def warm_done(self) -> bool:
        """True once, when a warming node has pulled every partition from enough
        co-owners, and knows every member the others name (a rumoured one may be an owner
        its placement leaves out)."""
        view = self.view
        if view is not None and view.rumoured:
            return False
        if self.warming and not self.pull_queue and not self.rounds.pulling():
            self.warming = False
            self._pulled_from.clear()  # kept only to re-check sources while warming
            self._pulling_from.clear()
            return True
        return False

    # --- handoff -------------------------------------------------------------------------

    def _handoff_targets(self, partition: int) -> tuple[str, ...]:
        view = self.view
        assert view is not None
        return tuple(m for m in view.future.owners(partition) if m != self.me and view.reachable(m))

    def start_handoffs(self, now: float) -> None:
        while self.handoff_queue and len(self.handoffs) < MAX_HANDOFFS:
            p = next(iter(self.handoff_queue))
            del self.handoff_queue[p]
            sid = self.io.next_id()
            handoff = self.handoffs[sid] = _HandOff(p, now)

            def listed(results: tuple[Any, ...], now: float, sid: int = sid, handoff: _HandOff = handoff) -> None:
                handoff.keys = [key for key, _ in results[0][0][1]]
                self._next_batch(sid, handoff)

            self.io.ask_store([ListingQuery((p,))], listed)

    def _next_batch(self, sid: int, handoff: _HandOff) -> None:
        if sid not in self.handoffs:
            return
        p = handoff.partition
        if p in self.owned:  # owned again (membership flapped): keep it
            del self.handoffs[sid]
            return
        if handoff.pos >= len(handoff.keys):
            del self.handoffs[sid]
            if not self.leaving:
                # A leaving node keeps the data: until it has left it is still an owner
                # that quorum reads ask (see the module docstring).
                self.io.ask_store([DropPartitions((p,))], lambda res, now: None)
            self.io.tick_soon()
            return
        targets = self._handoff_targets(p)
        if not targets:
            del self.handoffs[sid]
            # Logged at the 1st, 2nd, 4th, 8th... such partition: a lone node that leaves
            # (or one cut off) has none for any of them, and must not log a line per partition.
            self.unreachable_handoffs += 1
            n = self.unreachable_handoffs
            logger.log(
                logging.WARNING if n & (n - 1) == 0 else logging.DEBUG,
                "no reachable owner to hand partition %d to; keeping it (%d partition(s) so far)", p, n,
            )
            return
        start = handoff.pos
        keys = handoff.keys[start : start + self.config.stream_batch]
        handoff.targets = targets
        handoff.acked = {}

        def fetched(results: tuple[Any, ...], now: float) -> None:
            records, covered = fill(results[0])
            # The keys whose records did not fit go in the next batch. Set, not added: a
            # repeated acknowledgement that fetched this batch twice skips nothing.
            handoff.pos = start + covered
            handoff.sent = len(records)
            for target in targets:
                self.io.send(target, Push(sid, records, ack=True))

        self.io.ask_store([Fetch(tuple(keys), False)], fetched)

    def on_ack(self, src: str, msg: PushAck, now: float) -> bool:
        """Whether ``msg`` answers a handoff batch (then it is handled here)."""
        handoff = self.handoffs.get(msg.sid)
        if handoff is None:
            return False
        if src not in handoff.targets:
            self.io.wrong_peer("PushAck", src, ",".join(handoff.targets))
            return True
        handoff.acked[src] = None
        if len(handoff.acked) >= len(handoff.targets):
            self.counters["keys_handed_off"] += handoff.sent
            self._handed_off += handoff.sent
            handoff.started = now
            self._next_batch(msg.sid, handoff)
        return True

    def expire(self, now: float, stale_s: float) -> None:
        for sid in [sid for sid, h in self.handoffs.items() if now - h.started > stale_s]:
            h = self.handoffs.pop(sid)
            logger.warning("handoff of partition %d timed out; anti-entropy will finish it", h.partition)

    def leave_done(self) -> int | None:
        """The keys handed off, once, when a leaving node has handed off every partition."""
        if self.leaving and not self._leave_done_sent and not self.handoff_queue and not self.handoffs:
            self._leave_done_sent = True
            return self._handed_off
        return None
