"""Single-node planning: what a request needs from this node's store, and its reply.

A plain object the ``Node`` actor drives through :class:`~actors.cluster.node_io.NodeIO`.
While the cluster is this node alone, every request is planned here (plain gets and
sets as the host may send them, their keys and items: :mod:`actors.protocol.edge`): the node answers
what it can itself (ping, join, locate, remove-node, decode errors, an ``auth`` when the
node has no passwords, replies its host already gave, see ``ClientBatch``) and turns the rest
into store operations through the request kinds table (:mod:`actors.store.plan`),
stamped with the node's clock and absolute deadlines (``wall + ttl``); the store's
results become the replies. Runs of plain gets or sets, within a batch and across the
batches of one node turn, become one store operation each (:mod:`actors.node.turn_call`).
In a cluster the node
plans here the requests that need no other node (stats, inspect, locate, ...).

Invariants: a batch's operations reach the store in slot order, so a reply reflects
every request before it on its connection; a run of plain requests answers each of its
members with its own id; a write the store refuses as older than what it holds
is never acknowledged: the clock moves past the stored version and the write is
planned again.
"""

from __future__ import annotations

import collections
from typing import Any, Callable

from actors.cluster.lifecycle import Lifecycle
from actors.cluster.node_io import NodeIO
from actors.node.ordering import ReplySlots
from actors.node.turn_call import MAX_CALL_OPS, TurnCall, TurnRun
from actors.protocol.edge import typed
from actors.protocol.errors import ErrorCode
from actors.protocol.messages import (
    ACK,
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
from actors.protocol.replica_ops import ItemResults, Write
from actors.protocol.version import HybridClock, Version
from actors.store.ops import Read, StoreOp, StoreAnswer
from actors.store.partitions import partition_of
from actors.store.plan import Stamp, local_reply, plan_local, with_rid
from actors.node.watches import MAX_WATCHED_KEYS, Watches
from actors.protocol.kinds import wire_name
from actors.protocol.txn_messages import Flush, Multi, MultiReply, Scan, Watch

__all__ = ["LocalPlanner"]

#: Requests plan_one hands to ``_txn`` first.
_TXN_TYPES = frozenset((Watch, Multi, Flush, Scan))

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
        #: Requests that failed to decode (answered with their error).
        self.errors = 0
        #: What each connection watches (WATCH; the node walks batches through it too).
        self.watches = Watches()
        #: The turn's store call for single-node batches (see :mod:`actors.node.turn_call`).
        self._call = TurnCall()

    def plan(self, pending: ReplySlots) -> None:
        """Plan every request of ``pending`` (a single node's batch): answered here, or
        added to the turn's store call (:mod:`actors.node.turn_call`), plain gets and sets
        to its open run; the call leaves when anything else is sent to the store, at the
        turn's end at the latest."""
        wall = self.io.wall()
        ops: Ops = []
        for slot, request in enumerate(pending.requests):
            call = self._call  # (anew each time: answering a request here may have sent it)
            t = type(request)
            # Only a request with a string key joins a run (decoders make every key one): an
            # item the store cannot apply would fail the run's one operation for every member.
            if t is str:  # a plain get (actors.protocol.edge): its key is its item
                is_get = True
                item: Any = request
                key = request
            elif t is tuple:  # a plain set: its item as the store takes it
                is_get = False
                item = request
                key = request[0]
            elif t is Get and type(request.key) is str:
                is_get = True
                item = key = request.key
            elif t is Set and not request.conditional and type(request.key) is str:
                is_get = False
                ttl = request.ttl
                key = request.key
                try:
                    item = (key, request.value, wall + ttl if ttl else None)
                except Exception as exc:  # a bug must cost one reply, never the batch (as in plan_one)
                    pending.fill(slot, self.io.request_failed("planning", request, exc))
                    continue
            else:
                self.plan_one(pending, slot, request, wall, ops)
                if ops:
                    self._close_run(call)
                    call.add(ops.pop()[1], (pending, slot))
                continue
            run = call.run
            call.size += 1
            # A plain request joins the open run of its kind (a set only with a key new to the run).
            if run is not None and run.is_get is is_get and (is_get or key not in run.keys):  # type: ignore[operator]
                if not is_get:
                    run.keys.add(key)  # type: ignore[union-attr]
                run.items.append(item)
                run.members.append((pending, slot))
            else:
                if run is not None:
                    self._close_run(call)
                call.run = TurnRun(is_get, None if is_get else self.clock.tick(wall), key, item, (pending, slot))
        if self._call.size >= MAX_CALL_OPS:
            self.send_call()
        if pending.missing < len(pending.requests) or not pending.missing:
            pending.settle()  # the node answered some itself (or the batch is empty); the rest come with the call

    def _close_run(self, call: TurnCall) -> None:
        """Build the open run's one operation into ``call``. Sets are one ``Write``
        answered item by item (``each``): every set keeps its own memory check and its
        own outcome, as if it had come alone."""
        run = call.run
        if run is None:
            return
        call.run = None
        call.size -= 1  # (its members were counted as they joined; add counts the operation)
        if len(run.members) == 1:  # a run of one: the operation its request plans alone
            if run.is_get:
                call.add(Read((run.items[0],)), run.members[0])
            else:
                call.add(Write((run.items[0],), run.version, self._only_me), run.members[0])  # type: ignore[arg-type]
        elif run.is_get:
            call.add(Read(tuple(run.items)), run)
        else:
            call.add(Write(tuple(run.items), run.version, self._only_me, True), run)  # type: ignore[arg-type]

    def send_call(self) -> None:
        """Send the turn's store call (:class:`~actors.node.io.ActorIO` calls this before
        anything else goes to the store, and at the turn's end)."""
        call = self._call
        if not call:
            return
        self._close_run(call)
        self._call = TurnCall()
        targets = call.targets
        self.io.ask_store(tuple(call.ops), lambda message: self._answer_call(targets, message))

    def _answer_call(self, targets: list[TurnRun | tuple[ReplySlots, int]], message: StoreAnswer) -> None:
        """Each result to what it answers; then every batch touched sends what is complete."""
        again: dict[ReplySlots, Ops] = {}
        touched: list[ReplySlots] = []
        for index, result in message.results:
            target = targets[index]
            if type(target) is TurnRun:
                batches = target.batches()
                touched.extend(batches)
                try:
                    self._answer_run(target, result, again)
                except Exception as exc:
                    for pending in batches:
                        self.fail(pending, "answering", exc)
            else:
                pending, slot = target  # type: ignore[misc]
                touched.append(pending)
                try:
                    self._answer_slot(pending, slot, result, again)
                except Exception as exc:
                    self.fail(pending, "answering", exc)
        for pending, ops in again.items():
            self.ask_store(pending, ops)
        last = None
        for pending in touched:
            if pending is not last:
                pending.settle()
                last = pending

    def _answer_run(self, run: TurnRun, result: Any, again: dict[ReplySlots, Ops]) -> None:
        """Each member's reply from the run's one result: a ``(value, found)`` per key for
        gets; per set 1 (stored), the newer version the key holds (re-stamped and written
        again into ``again``) or an error; a result of another shape (an error the store
        made for the whole operation) is every member's answer, with its own id."""
        members = run.members
        if type(result) is not ItemResults and type(result) is not tuple:
            for pending, slot in members:
                pending.fill(slot, with_rid(result, getattr(pending.requests[slot], "rid", None)))
        elif run.is_get:
            for (pending, slot), (value, found) in zip(members, result):
                request = pending.requests[slot]  # (a plain get, its key, has no id)
                pending.fill(slot, Value(value, found, None if type(request) is str else request.rid))  # type: ignore[union-attr]
        else:
            for (pending, slot), outcome in zip(members, result):
                request = pending.requests[slot]
                if outcome == 1:
                    # (a plain set, its item, has no id)
                    if type(request) is tuple or request.rid is None:  # type: ignore[union-attr]
                        pending.fill(slot, ACK)
                    else:
                        pending.fill(slot, Ack(request.rid))  # type: ignore[union-attr]
                elif type(outcome) is Version:
                    self._restamp(pending, slot, typed(request), outcome, again.setdefault(pending, []))
                else:
                    pending.fill(slot, with_rid(outcome, getattr(request, "rid", None)))

    def plan_one(
        self, pending: ReplySlots, slot: int, request: Any, wall: float, ops: Ops
    ) -> None:
        """Answer ``request`` here, or add the store operation it needs to ``ops``."""
        try:
            t = type(request)
            if t in _TXN_TYPES:
                request = self._txn(pending, request)
                if type(request) not in _TXN_TYPES:  # answered here (a reply)
                    pending.fill(slot, request)
                    return
            op = plan_local(request, wall, self.stamp)
            if op is None:
                pending.fill(slot, self._immediate(request))
            else:
                ops.append((slot, op))
        except Exception as exc:  # a bug must cost one reply, never the node
            pending.fill(slot, self.io.request_failed("planning", request, exc))

    def _txn(self, pending: ReplySlots, request: Any) -> Any:
        """A watch, flush, scan or transaction of ``pending``'s connection: the transaction
        sealed with the connection's watches (actors.node.watches), or the reply."""
        t = type(request)
        if t is Watch:
            if not request.keys:
                self.watches.unwatch(pending.conn)
                return Ack(request.rid)
            if self.watches.watch(pending.conn, request.keys, lambda: self.clock.tick(self.io.wall())):
                return Ack(request.rid)
            return ErrorReply(ErrorCode.BAD_REQUEST, f"a connection may watch at most {MAX_WATCHED_KEYS} keys", request.rid)
        if t is Multi:
            sealed = self.watches.seal(pending.conn, request)
            return MultiReply(None, request.rid) if sealed.aborted else sealed
        if not self.life.view.solo:
            # (a cluster's node plans flush and scan itself once it has joined: actors.node.actor)
            return ErrorReply(ErrorCode.UNAVAILABLE, f"unavailable: still joining the cluster ({wire_name(request)})", request.rid)
        return request

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

    def _restamp(self, pending: ReplySlots, slot: int, request: Any, newer: Version, again: Ops) -> None:
        """A write refused: the key holds ``newer``, a version above our clock's (a record
        streamed or repaired from a peer whose clock ran ahead, kept after the cluster shrank
        to this node). Move the clock past it and plan the write again into ``again``: never
        ack a loss. Beyond the clock bound (this node's wall clock went back), stamping above
        it is refused and writing below it would be a loss, so the write fails."""
        wall = self.io.wall()
        if self.clock.observe(newer, wall) is None:
            pending.fill(slot, ErrorReply(
                ErrorCode.UNAVAILABLE,
                "unavailable: the key holds a version beyond the max clock skew ahead of this node's clock; nothing was applied",
                getattr(request, "rid", None),
            ))
            return
        self.counters["restamps"] += 1
        self.plan_one(pending, slot, request, wall, again)

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
        again: dict[ReplySlots, Ops] = {}
        for slot, result in message.results:
            self._answer_slot(pending, slot, result, again)
        for ops in again.values():
            self.ask_store(pending, ops)
        pending.settle()

    def _answer_slot(self, pending: ReplySlots, slot: int, result: Any, again: dict[ReplySlots, Ops]) -> None:
        """Fill one slot from its operation's result (a re-stamped write goes to ``again``)."""
        request = typed(pending.requests[slot])  # (a run of one plain request: its typed request)
        if type(result) is Version:
            self._restamp(pending, slot, request, result, again.setdefault(pending, []))
            return
        try:
            reply = local_reply(request, self.stats(result) if type(request) is Stats else result)
        except Exception as exc:
            reply = self.io.request_failed("answering", request, exc)
        pending.fill(slot, reply)
