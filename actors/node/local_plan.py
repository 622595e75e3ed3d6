"""Single-node planning: what a request needs from this node's store, and its reply.

A plain object the ``Node`` actor drives through :class:`~actors.cluster.node_io.NodeIO`.
While the cluster is this node alone, every request is planned here: the node answers
what it can itself (ping, join, locate, remove-node, decode errors, an ``auth`` when the
node has no passwords, replies its host already gave, see ``ClientBatch``) and turns the rest
into store operations through the request kinds table (:mod:`actors.store.plan`),
stamped with the node's clock and absolute deadlines (``wall + ttl``); the store's
results become the replies. Runs of plain gets or sets in one batch become one store
operation each. In a cluster the node
plans here the requests that need no other node (stats, inspect, locate, ...).

Invariants: a batch's operations reach the store in slot order, so a reply reflects
every request before it on its connection; a grouped run of plain requests answers each
of its members with its own id; a write the store refuses as older than what it holds
is never acknowledged: the clock moves past the stored version and the write is
planned again.
"""

from __future__ import annotations

import collections
from typing import Any, Callable

from actors.cluster.lifecycle import Lifecycle
from actors.cluster.node_io import NodeIO
from actors.node.ordering import ReplySlots
from actors.protocol.errors import ErrorCode
from actors.protocol.messages import (
    Ack,
    Auth,
    ErrorReply,
    Get,
    Join,
    Locate,
    LocateReply,
    Ping,
    Pong,
    RemoveNode,
    Reply,
    Request,
    Set,
    Stats,
    Value,
)
from actors.protocol.replica_ops import Write
from actors.protocol.version import HybridClock, Version
from actors.store.ops import Read, StoreOp, StoreAnswer
from actors.store.partitions import partition_of
from actors.store.plan import Stamp, local_reply, plan_local, with_rid

__all__ = ["LocalPlanner"]

Ops = list[tuple[int, StoreOp]]


def _auth_without_passwords(request: Auth) -> Reply:
    """An ``auth`` that reached the node: the host has no passwords (a host that has
    answers ``auth`` itself). As Redis with no password set: the default user takes any
    password when named; unnamed, the client is told its configuration is wrong."""
    if request.user == "default":
        return Ack(request.rid)
    if request.user is None:
        return ErrorReply(
            ErrorCode.BAD_REQUEST,
            "auth called without any password configured for the default user; "
            "is the client's configuration correct?",
            request.rid,
        )
    return ErrorReply(ErrorCode.WRONGPASS, "invalid username-password pair or user is disabled.", request.rid)


class LocalPlanner:
    """Plans requests against this node's store.

    ``stats(store_stats)`` builds a ``stats`` reply's figures; ``fail(pending, doing,
    exc)`` answers what is left of a batch whose handling raised; ``counters``: the
    node's coordination counters (a local re-stamp counts in ``restamps``).
    """

    def __init__(
        self,
        io: NodeIO,
        life: Lifecycle,
        clock: HybridClock,
        config: Any,
        counters: collections.Counter[str],
        stats: Callable[[dict[str, Any]], dict[str, Any]],
        fail: Callable[[ReplySlots, str, Exception], None],
    ) -> None:
        self.io = io
        self.life = life
        self.clock = clock
        self.config = config
        self.counters = counters
        self.stats = stats
        self.fail = fail
        self._only_me = (io.node_id,)  # the replica set of a single node's entries
        self.stamp = Stamp(clock.tick, self._only_me, config.tombstone_ttl_s)
        #: True while every version the store holds came from this node's clock (no peer
        #: has ever sent us anything): then no write of ours can be refused as stale.
        self.own_versions_only = not config.contacts
        #: Requests that failed to decode (answered with their error).
        self.errors = 0

    def plan(self, pending: ReplySlots) -> Ops:
        """Plan every request of ``pending``: the store operations it needs (its other
        slots are filled)."""
        ops: Ops = []
        wall = self.io.wall()
        if len(pending.requests) > 1:
            self._plan_runs(pending, wall, ops)
        elif pending.requests:
            self.plan_one(pending, 0, pending.requests[0], wall, ops)
        return ops

    def _plan_runs(self, pending: ReplySlots, wall: float, ops: Ops) -> None:
        """Plan a batch as :meth:`plan_one` does, but runs of consecutive plain requests of one
        kind become one store operation with one result: gets one ``Read`` of all their
        keys, sets of distinct keys one ``Write`` with one version (as an ``mset`` does).

        Set runs only while every version in the store is this node's own
        (``own_versions_only``) and without ``--max-memory``: the store then never refuses
        a write (the clock only moves forward), so a grouped write is never re-stamped and
        re-sent after later writes to the same keys; and each set would otherwise need its
        own memory check. A key seen twice ends a set run: the second set needs the newer
        version.
        """
        group_sets = self.own_versions_only and not self.config.max_memory
        kind: type | None = None  # of the current run: Get or Set
        slots: list[int] = []
        items: list[Any] = []
        keys: set[str] = set()
        for slot, request in enumerate(pending.requests):
            t = type(request)
            if t is Set:
                t = Set if group_sets and not request.conditional else None
            elif t is not Get:
                t = None
            if slots and (t is not kind or (t is Set and request.key in keys)):
                self._add_run(pending, kind, slots, items, wall, ops)
                slots, items, keys = [], [], set()
            if t is None:
                self.plan_one(pending, slot, request, wall, ops)
                continue
            kind = t
            slots.append(slot)
            if t is Get:
                items.append(request.key)
            else:
                ttl = request.ttl
                items.append((request.key, request.value, wall + ttl if ttl else None))
                keys.add(request.key)
        if slots:
            self._add_run(pending, kind, slots, items, wall, ops)

    def _add_run(
        self,
        pending: ReplySlots,
        kind: type | None,
        slots: list[int],
        items: list[Any],
        wall: float,
        ops: Ops,
    ) -> None:
        if kind is Get:
            op: StoreOp = Read(tuple(items))
        else:
            op = Write(tuple(items), self.clock.tick(wall), self._only_me)
        ops.append((slots[0], op))
        if len(slots) > 1:
            if pending.groups is None:
                pending.groups = {}
            pending.groups[slots[0]] = slots

    def plan_one(
        self, pending: ReplySlots, slot: int, request: Any, wall: float, ops: Ops
    ) -> None:
        """Answer ``request`` here, or add the store operation it needs to ``ops``."""
        try:
            op = plan_local(request, wall, self.stamp)
            if op is None:
                pending.fill(slot, self._immediate(request))
            else:
                ops.append((slot, op))
        except Exception as exc:  # a bug must cost one reply, never the node
            pending.fill(slot, self.io.request_failed("planning", request, exc))

    def _immediate(self, request: Request | ErrorReply) -> Reply:
        t = type(request)
        if t is ErrorReply:
            self.errors += 1
            return request
        if t is Ping:
            return Pong(request.rid)
        if t is Ack:  # answered by the host (a successful auth)
            return request
        if t is Auth:
            return _auth_without_passwords(request)
        if t is Join:
            # The Go original's join message: acknowledged; nodes join by gossip (see docs/protocol.md).
            self.io.trace("join", peer=request.node_id)
            return Ack(request.rid)
        if t is RemoveNode:
            return self.life.remove_node(request)
        if t is Locate:
            partition = partition_of(request.key, self.config.partitions)
            return LocateReply(request.key, partition, self.life.view.placement.owners(partition), request.rid)
        raise TypeError(f"no handler for {type(request).__name__}")

    def ask_store(self, pending: ReplySlots, ops: Ops) -> None:
        """Send ``pending``'s store operations; their results fill its slots."""

        def answer(message: StoreAnswer) -> None:
            try:
                self._answer(pending, message)
            except Exception as exc:
                self.fail(pending, "answering", exc)

        self.io.ask_store(tuple(ops), answer)

    def _answer(self, pending: ReplySlots, message: StoreAnswer) -> None:
        """Fill ``pending``'s slots from the store's results (re-planning re-stamped writes)."""
        requests = pending.requests
        groups = pending.groups
        again: list[tuple[int, StoreOp]] = []
        for slot, result in message.results:
            request = requests[slot]
            if groups is not None and slot in groups:  # one result for a run of plain requests
                members = groups[slot]
                if type(request) is Get and type(result) is tuple:
                    for member, (value, found) in zip(members, result):
                        pending.fill(member, Value(value, found, requests[member].rid))  # type: ignore[union-attr]
                    continue
                for member in members:
                    rid = requests[member].rid  # type: ignore[union-attr]
                    pending.fill(member, Ack(rid) if type(result) is int else with_rid(result, rid))
                continue
            if type(result) is Version:
                # The key holds a newer version than our clock's (a record streamed or
                # repaired from a peer whose clock ran ahead, kept after the cluster shrank
                # to this node): move the clock past it and write again, never ack a loss.
                wall = self.io.wall()
                if self.clock.observe(result, wall) is None:
                    # Beyond the clock bound (this node's wall clock went back): stamping above
                    # it is refused, and writing below it would be a loss, so the write fails.
                    pending.fill(slot, ErrorReply(
                        ErrorCode.UNAVAILABLE,
                        "unavailable: the key holds a version beyond the max clock skew ahead of this node's clock; nothing was applied",
                        getattr(request, "rid", None),
                    ))
                    continue
                self.counters["restamps"] += 1
                self.plan_one(pending, slot, request, wall, again)
                continue
            try:
                reply = local_reply(request, self.stats(result) if type(request) is Stats else result)
            except Exception as exc:
                reply = self.io.request_failed("answering", request, exc)
            pending.fill(slot, reply)
        if again:
            self.ask_store(pending, again)
        pending.settle()
