"""Sync rounds: compare partitions with one peer and exchange what differs (anti-entropy and pulls).

A round this node starts with ``peer`` over some partitions goes: our per-partition
digests (``SyncRequest``) -> the peer's ``(key, version)`` listings of the partitions that
differ (``SyncListing``); for a partition of more than :data:`LIST_SMALL_KEYS` keys that we
do not hold empty, its sub-bucket digests instead, and we ask (``SyncRequest.want``) for
the listings of the sub-buckets whose digests differ from ours (so a round while writes
are in flight lists what those writes touched, not whole partitions; a peer that does not
send ``sub`` gets whole listings) -> compared with ours (:func:`diff_listings`): the keys newer here
are pushed to the peer in a repair stream, the keys newer there are pulled (``Pull``,
answered by a ``Push`` with ``reply`` set) and applied. Anti-entropy starts one round every
``anti_entropy_interval_s`` with one co-owning peer (round robin, a cursor walks the
shared partitions); streaming starts pull rounds for partitions this node gains (see
:mod:`~actors.cluster.streaming`), which count their records as streamed, not repaired.
The same object answers the rounds, pulls and pushes peers start with us. Sans-IO: fed
messages and the time; acts through a :class:`~actors.cluster.replicator_io.ReplicatorIo`.

Invariants:

- a round is continued only by answers from its own peer (sids are small counters anyone
  can guess); anything else is ignored and counted as from a wrong peer; only partitions
  (and sub-buckets) the round asked about are compared, whatever a peer's answer names;
- a round finishes once its listings (one answer, plus one for the sub-buckets it wanted)
  are compared and every pull is answered and applied;
- at most :data:`PULLS_IN_FLIGHT` pulls of a round are unanswered at once; a pull answer
  covers a prefix of the pulled keys (``covered``) and the rest is pulled again first;
- a repair stream has one push in flight, the next fetched only on its ``PushAck``; its
  position is set, not advanced, from what a fetch covered, so a repeated ack skips nothing;
- a round or repair that made no progress for ``stale_s`` is abandoned (failed pull
  rounds are handed back to streaming, which retries them); nothing here waits.
"""

from __future__ import annotations

import collections
from typing import Any, Callable

from actors.cluster.membership import ClusterView, State
from actors.cluster.replicator_io import ReplicatorIo, fill
from actors.protocol.peer_messages import MemberStatus, Pull, Push, PushAck, SyncListing, SyncRequest
from actors.protocol.replica_ops import Apply, Fetch
from actors.protocol.version import Version
from actors.store.ops import BucketQuery, DigestQuery, ListingQuery
from actors.store.partition_digests import differing_buckets
from actors.store.partitions import SUB_BUCKETS

__all__ = ["PULLS_IN_FLIGHT", "Round", "SyncRounds", "diff_listings"]

#: Pulls a round keeps unanswered at once (each answer is at most a push budget).
PULLS_IN_FLIGHT = 2
#: Sub-buckets one ``want`` asks to list (the next only once its answer came): a listing
#: answer is at most this many sub-buckets, 1/64 of the keyspace at 256 partitions.
WANT_BUCKETS = 4096
#: Keys a differing partition may hold to be listed at once: a listing that small costs
#: less than its sub-bucket digests (8 bytes each of :data:`SUB_BUCKETS`) and a second step.
LIST_SMALL_KEYS = 256
#: Keys a partition may hold to be listed whole to a peer that holds it empty (a warming
#: node: no second step); a larger one goes by sub-bucket, WANT_BUCKETS at a time.
LIST_WHOLE_KEYS = 16_384


def diff_listings(
    mine: tuple[tuple[str, Version], ...], theirs: tuple[tuple[str, Version], ...]
) -> tuple[list[str], list[str]]:
    """``(push, pull)``: keys where we hold the newer version, and where they do.

    A hash or set lists with a digest of its fields in its node id (after ``\\x00``:
    ``actors.store.keyspace.listed_version``): where either side's listing of a key is
    one and they differ, each may hold fields the other misses, so the key goes both
    ways (each side merges what it gets field by field)."""
    my_versions = dict(mine)
    their_versions = dict(theirs)
    pull = [k for k, v in theirs if (mine_v := my_versions.get(k)) is None or mine_v < v or _both_ways(mine_v, v)]
    push = [k for k, v in mine if (their_v := their_versions.get(k)) is None or their_v < v or _both_ways(their_v, v)]
    return push, pull


def _both_ways(a: Version, b: Version) -> bool:
    return a != b and ("\x00" in a.node_id or "\x00" in b.node_id)


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class Round:
    """One sync round this node started with ``peer`` over ``partitions``."""

    __slots__ = (
        "applying", "asked", "comparing", "listed", "partitions", "peer", "purpose", "started", "to_pull", "to_want", "wanted"
    )

    def __init__(self, peer: str, partitions: tuple[int, ...], purpose: str, started: float) -> None:
        self.peer = peer
        self.partitions = partitions
        self.purpose = purpose  # "pull" (warming/gained) or "ae"
        self.started = started  # or when it last made progress
        self.listed = False  # the peer's first answer came back
        self.comparing = 0  # answers being compared, or a sub-bucket step under way
        #: partition -> the sub-buckets asked for (``SyncRequest.want``) and not answered yet.
        self.wanted: dict[int, tuple[int, ...]] | None = None
        #: ``(partition, sub-bucket)`` whose digests differed, still to ask for.
        self.to_want: list[tuple[int, int]] = []
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


class SyncRounds:
    """The rounds and repair streams this node runs, and its answers to peers' ones.

    ``pulled(peer, partitions)`` is told when a pull round with ``peer`` completes.
    """

    def __init__(
        self,
        me: str,
        config: Any,
        io: ReplicatorIo,
        counters: collections.Counter[str],
        pulled: Callable[[str, tuple[int, ...]], None],
    ) -> None:
        self.me = me
        self.config = config
        self.io = io
        self.counters = counters
        self._pulled = pulled
        self.rounds: dict[int, Round] = {}
        self._repairs: dict[int, _Repair] = {}  # sid -> repair stream
        self._ae_next = 0.0
        self._ae_peer = 0
        self._ae_cursor: dict[str, int] = {}
        #: Sub-buckets per partition this node compares (0 behaves as a peer from before them).
        self.sub = SUB_BUCKETS

    def pulling(self) -> int:
        """Pull rounds under way."""
        return sum(1 for r in self.rounds.values() if r.purpose == "pull")

    # --- rounds this node starts -----------------------------------------------------------

    def anti_entropy(self, view: ClusterView, owned: dict[int, None], now: float) -> None:
        """Start this interval's anti-entropy round, if one is due."""
        if now < self._ae_next:
            return
        self._ae_next = now + self.config.anti_entropy_interval_s
        peers = [
            m.node_id
            for m in view.members
            if m.node_id != self.me and m.status == MemberStatus.READY and view.states.get(m.node_id) == State.ALIVE
        ]
        shared_by_peer = {}
        for peer in peers:
            shared = [p for p in owned if peer in view.placement.owners(p)]
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
        self.start(peer, parts, "ae", now)

    def start(self, peer: str, partitions: tuple[int, ...], purpose: str, now: float) -> None:
        sid = self.io.next_id()
        self.rounds[sid] = Round(peer, partitions, purpose, now)

        def send_digests(results: tuple[Any, ...], now: float) -> None:
            if sid in self.rounds:
                digests = tuple((p, d) for p, d in results[0])
                self.io.send(peer, SyncRequest(sid, digests, self.sub))

        self.io.ask_store([DigestQuery(partitions)], send_digests)

    def on_listing(self, src: str, msg: SyncListing) -> None:
        sid = msg.sid
        r = self.rounds.get(sid)
        if r is None:
            return
        if r.peer != src:
            self.io.wrong_peer("SyncListing", src, r.peer)
            return
        wanted = r.wanted
        if wanted is not None:  # the listings of the sub-buckets we asked for
            r.wanted = None
            parts = tuple(wanted)
            self._compare(sid, r, parts, {p: items for p, items in msg.listings if p in wanted}, tuple(wanted[p] for p in parts))
            self._ask_next(sid, r)
            return
        if r.listed:
            return  # a repeated answer: the first was compared
        r.listed = True
        asked = set(r.partitions)
        listings = {p: items for p, items in msg.listings if p in asked}
        buckets = {p: d for p, d in msg.buckets if p in asked and p not in listings and len(d) == 8 * SUB_BUCKETS}
        if listings:
            self._compare(sid, r, tuple(listings), listings)
        if buckets:
            r.comparing += 1
            self.io.ask_store([BucketQuery(tuple(buckets))], lambda res, now: self._want(sid, r, buckets, res[0], now))
        if not listings and not buckets:
            self._finish(sid)

    def _want(self, sid: int, r: Round, theirs: dict[int, bytes], mine: tuple[Any, ...], now: float) -> None:
        """Ask for the listings of the sub-buckets whose digests differ from the peer's."""
        if self.rounds.get(sid) is not r:
            return
        r.to_want = [(p, b) for p, digests in mine for b in differing_buckets(digests, theirs[p])]
        r.started = now
        self._ask_next(sid, r)  # none: equal by now (the writes in flight landed)

    def _ask_next(self, sid: int, r: Round) -> None:
        """Ask for the next :data:`WANT_BUCKETS` sub-buckets still to list, or end the step."""
        if not r.to_want:
            r.comparing -= 1
            self._send_pulls(sid, r)
            return
        chunk, r.to_want = r.to_want[:WANT_BUCKETS], r.to_want[WANT_BUCKETS:]
        wanted: dict[int, tuple[int, ...]] = {}
        for p, b in chunk:
            wanted[p] = (*wanted.get(p, ()), b)
        r.wanted = wanted
        self.io.send(r.peer, SyncRequest(sid, (), self.sub, tuple(wanted.items())))

    def _compare(
        self, sid: int, r: Round, parts: tuple[int, ...], theirs: dict[int, Any], buckets: tuple[tuple[int, ...], ...] = ()
    ) -> None:
        """Compare the peer's listings of ``parts`` (of those sub-buckets) with ours: push
        what is newer here, pull what is newer there. A partition the peer did not list
        holds nothing there."""
        r.comparing += 1
        src = r.peer

        def compare(results: tuple[Any, ...], now: float) -> None:
            if self.rounds.get(sid) is not r:
                return
            push: list[str] = []
            pull: list[str] = []
            for p, mine in results[0]:
                self.counters["sync_keys_listed"] += len(mine)
                pu, pl = diff_listings(mine, theirs.get(p, ()))
                push.extend(pu)
                pull.extend(pl)
            if push:
                rid = self.io.next_id()
                repair = self._repairs[rid] = _Repair(src, push, now)
                self._next_repair(rid, repair)
            r.comparing -= 1
            r.to_pull.extend(tuple(keys) for keys in _chunks(pull, self.config.stream_batch))
            self._send_pulls(sid, r)

        self.io.ask_store([ListingQuery(parts, buckets)], compare)

    def _send_pulls(self, sid: int, r: Round) -> None:
        """Keep up to PULLS_IN_FLIGHT pulls unanswered; finish the round when all is in."""
        while r.to_pull and len(r.asked) < PULLS_IN_FLIGHT:
            keys = r.to_pull.popleft()
            r.asked.append(keys)
            self.io.send(r.peer, Pull(sid, keys))
        if r.listed and not r.comparing and not r.asked and not r.applying and sid in self.rounds:
            self._finish(sid)

    def _next_repair(self, sid: int, repair: _Repair) -> None:
        """Push the next batch of a repair stream (or end it)."""
        if self._repairs.get(sid) is not repair:
            return
        if repair.pos >= len(repair.keys):
            del self._repairs[sid]
            return
        start = repair.pos
        keys = tuple(repair.keys[start : start + self.config.stream_batch])

        def fetched(results: tuple[Any, ...], now: float) -> None:
            if self._repairs.get(sid) is not repair:
                return
            records, covered = fill(results[0])
            repair.pos = start + covered  # set, not added: a repeated acknowledgement skips nothing
            repair.started = now
            if records:
                self.io.send(repair.peer, Push(sid, records, ack=True))
            else:
                self._next_repair(sid, repair)  # all deleted meanwhile: on to the next keys

        self.io.ask_store([Fetch(keys, False)], fetched)

    def on_pulled(self, src: str, msg: Push, now: float) -> None:
        """A peer answered one of our pulls (a ``Push`` with ``reply`` set)."""
        sid = msg.sid
        r = self.rounds.get(sid)
        if r is None:
            return
        if r.peer != src:
            self.io.wrong_peer("Push", src, r.peer)
            return
        if not r.asked:
            return  # an answer to no pull of this round (a duplicate): nothing to place it
        asked = r.asked.popleft()
        covered = len(asked) if msg.covered is None else min(msg.covered, len(asked))
        if covered < len(asked):
            r.to_pull.appendleft(asked[covered:])  # the rest did not fit in that answer
        r.started = now  # progress: a long warming is not a stale round
        r.applying += 1

        def applied(results: tuple[Any, ...], now: float) -> None:
            key = "keys_streamed" if r.purpose == "pull" else "keys_repaired"
            self.counters[key] += results[0]
            r.applying -= 1
            if sid in self.rounds:
                self._send_pulls(sid, r)

        self.io.ask_store([Apply(msg.records)], applied)
        self._send_pulls(sid, r)

    def on_ack(self, src: str, msg: PushAck) -> None:
        """A peer took one push of a repair stream: send the next."""
        repair = self._repairs.get(msg.sid)
        if repair is not None:
            if src != repair.peer:
                self.io.wrong_peer("PushAck", src, repair.peer)
                return
            self._next_repair(msg.sid, repair)

    def _finish(self, sid: int) -> None:
        r = self.rounds.pop(sid, None)
        if r is not None and r.purpose == "pull":
            self._pulled(r.peer, r.partitions)
        self.io.tick_soon()

    def expire(self, now: float, stale_s: float) -> list[Round]:
        """Abandon rounds and repairs idle for ``stale_s``; returns the abandoned rounds."""
        failed = []
        for sid in [sid for sid, r in self.rounds.items() if now - r.started > stale_s]:
            failed.append(self.rounds.pop(sid))
            self.counters["sync_rounds_failed"] += 1
        for sid in [sid for sid, r in self._repairs.items() if now - r.started > stale_s]:
            del self._repairs[sid]  # the next anti-entropy round finds what is left
        return failed

    # --- answering a peer's rounds, pulls and pushes -----------------------------------------

    def on_sync_request(self, addr: str, msg: SyncRequest) -> None:
        """List the partitions whose digests differ from the peer's (none: an empty listing);
        a large one by its sub-bucket digests when the peer compares as many sub-buckets;
        with ``want``, list those sub-buckets. Partitions and sub-buckets out of range, and
        sub-buckets past the first WANT_BUCKETS, are ignored."""
        partitions = self.config.partitions
        if msg.want:
            want = []
            room = WANT_BUCKETS
            for p, b in msg.want:
                if 0 <= p < partitions and all(x < SUB_BUCKETS for x in b) and len(b) <= room:
                    want.append((p, b))
                    room -= len(b)
            parts = tuple(p for p, _ in want)
            self.io.ask_store(
                [ListingQuery(parts, tuple(b for _, b in want))],
                lambda res, now: self._listed(addr, SyncListing(msg.sid, res[0])),
            )
            return
        theirs = {p: d for p, d in msg.digests if 0 <= p < partitions}
        by_bucket = self.sub > 0 and msg.sub == self.sub

        def compare(results: tuple[Any, ...], now: float) -> None:
            differing = [p for p, d in results[0] if theirs[p] != d]
            if not differing:
                self.io.reply(addr, SyncListing(msg.sid, ()))
                return
            if not by_bucket:  # a peer from before sub-buckets
                self.io.ask_store(
                    [ListingQuery(tuple(differing))], lambda res, now: self._listed(addr, SyncListing(msg.sid, res[0]))
                )
                return
            # A partition empty there gains nothing from a second step: listed whole, unless huge.
            split = tuple(p for p in differing if theirs[p] != 0)
            empty = tuple(p for p in differing if theirs[p] == 0)

            def answer(res: tuple[Any, ...], now: float) -> None:
                listings = []
                buckets = []
                for p, found in res[0] + res[1]:
                    if type(found) is bytes:
                        buckets.append((p, found))
                    else:  # small enough: listed
                        listings.append((p, found))
                self._listed(addr, SyncListing(msg.sid, tuple(listings), tuple(buckets)))

            self.io.ask_store([BucketQuery(split, LIST_SMALL_KEYS), BucketQuery(empty, LIST_WHOLE_KEYS)], answer)

        self.io.ask_store([DigestQuery(tuple(theirs))], compare)

    def _listed(self, addr: str, msg: SyncListing) -> None:
        self.counters["sync_keys_listed"] += sum(len(items) for _, items in msg.listings)
        self.io.reply(addr, msg)

    def on_pull(self, addr: str, msg: Pull) -> None:
        """Answer with the pulled keys' records that fit in a push, saying how many it covers."""

        def answer(results: tuple[Any, ...], now: float) -> None:
            records, covered = fill(results[0])
            covered_or_all = None if covered >= len(msg.keys) else covered
            self.io.reply(addr, Push(msg.sid, records, reply=True, covered=covered_or_all))

        self.io.ask_store([Fetch(msg.keys, False)], answer)

    def on_push(self, addr: str, msg: Push) -> None:
        """Apply a peer's push (a hint, handoff or repair batch), acknowledging it if asked."""

        def applied(results: tuple[Any, ...], now: float) -> None:
            self.counters["keys_repaired"] += results[0]
            if msg.ack:
                self.io.reply(addr, PushAck(msg.sid, results[0]))

        self.io.ask_store([Apply(msg.records)], applied)
