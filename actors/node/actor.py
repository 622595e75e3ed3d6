"""The ``Node`` actor: a thin shell that wires the node's parts to its mailbox.

Theory of operation
-------------------
A host tells the node one ``ClientBatch`` per socket read; peers' messages arrive as
``FromPeer``; the store answers ``StoreAnswer``; timers fire ``RequestTimeout``. The
node owns no logic of its own beyond dispatch: each job is a plain object with no I/O,
acting through one narrow interface (:class:`~actors.cluster.node_io.NodeIO`: ask the
store with a continuation, send to a peer, set a timer with a continuation, trace),
which :class:`~actors.node.io.ActorIO` implements with one continuation table:

- :mod:`actors.node.ordering`: replies in request order per connection, and requests
  that wait for a read-modify-write before them on their connection;
- :mod:`actors.node.local_plan`: single-node planning (and, in a cluster, requests
  this node answers alone: stats, inspect, locate, ...);
- :mod:`actors.cluster.coordinator`: quorum writes and reads across each key's owners;
- :mod:`actors.cluster.rmw_coordinator`: read-modify-writes at the key's coordinator;
- :mod:`actors.cluster.replica_server`: peers' replica requests applied to the store;
- :mod:`actors.cluster.lifecycle`: join, gossip, heartbeat, leave, remove-node;
- :mod:`actors.node.stats`: the ``stats`` reply.

The node decides everything a replica must not decide for itself: TTL deadlines
(absolute wall time, ``wall + ttl``) and versions (its hybrid logical clock, shared by
the parts). While the cluster is this node alone, requests take the single-node path
with no coordination at all.

A reply reflects every request before it on its connection: a batch's store operations
reach this node's store in slot order (this node's share of a coordinated write goes
before a later ``inspect``), and a request touching a key whose read-modify-write from
the same connection is still in flight waits for it (:mod:`actors.node.ordering`).

No request may take the node down (``survive_failures``): a request whose planning or
answering raises is answered ``internal`` (logged once with its type, never its value;
counted in ``internal_errors``); every ``ClientBatch`` gets exactly one ``BatchReply``
whatever raises while it is handled (:meth:`Node._fail_batch`), since a connection whose
batch is never answered waits forever; any other message whose handling raises is
logged, counted in ``actor_failures`` (with those the node's other actors report) and
the node goes on. Replies from peers are matched by (peer, request id): a reply with
the right id from another node is ignored and counted (``replies_from_wrong_peer``).
"""

from __future__ import annotations

import logging
from typing import Any

from pykka import ActorRef

from actors.cluster.coordinator import Coordinator
from actors.cluster.lifecycle import Lifecycle
from actors.cluster.replica_server import ReplicaServer
from actors.cluster.rmw_coordinator import RmwCoordinator
from actors.config import NodeConfig
from actors.kernel.ctx import Ctx
from actors.kernel.failures import ActorFailed, log_failure
from actors.kernel.peer import FromPeer
from actors.kernel.scheduled import ScheduledActor
from actors.node.io import OUTBOX_FLUSH_OPS, ActorIO
from actors.node.local_plan import LocalPlanner
from actors.node.ordering import ReplySlots, ReplyOrder, keys_of
from actors.node.request_metrics import RequestMetrics
from actors.node.stats import node_stats
from actors.protocol.edge import ClientBatch, ClientConnected, ClientDisconnected, typed_requests
from actors.protocol.errors import ErrorCode
from actors.protocol.kinds import Route, route_of
from actors.protocol.internal import (
    AttachReplicator,
    HandOffDone,
    Leave,
    ReplicatorCounters,
    RequestTimeout,
    HeartbeatTick,
    StatsAsk,
    WarmDone,
)
from actors.protocol.messages import ErrorReply, Reply
from actors.protocol.peer_messages import Forward, ForwardReply, Gossip, ReplicaAck, ReplicaRequest, ReplicaResponse
from actors.cluster.scan_coordinator import ClusterScan
from actors.cluster.value_limit import request_value_bytes, too_large
from actors.protocol.txn_messages import Flush, Multi, MultiReply, Scan, Watch
from actors.node.watches import MAX_WATCHED_KEYS
from actors.protocol.internal import ReadRecord, RecordReply
from actors.protocol.messages import Ack
import dataclasses
from actors.store.flush_marks import flush_write
from actors.protocol.version import HybridClock
from actors.store.ops import StatsQuery, StoreOp, StoreAnswer, StoreAnswers

__all__ = ["Node"]


class _WatchReads:
    """A cluster WATCH's quorum reads, one slot per key; ``then`` runs once all answered."""

    __slots__ = ("done", "replies", "then")

    def __init__(self, n: int) -> None:
        self.replies: list[Any] = [None] * n
        self.then: Any = None
        self.done = False

    def fill(self, slot: int, reply: Reply) -> None:
        self.replies[slot] = reply

    def settle(self) -> None:
        if not self.done and all(r is not None for r in self.replies):
            self.done = True
            self.then()

logger = logging.getLogger("actorcache.node")


class Node(ScheduledActor):
    survive_failures = True  # see ScheduledActor.survive_failures

    def __init__(self, ctx: Ctx, store: ActorRef[Any], config: NodeConfig | None = None) -> None:
        super().__init__(ctx)
        self.config = config = config or NodeConfig()
        self.store = store
        self.clock = HybridClock(ctx.node_id, config.max_clock_skew_s)
        self.started_at = ctx.now()
        #: The one continuation table (store results, timers), the store outbox, peer sends.
        self.io = io = ActorIO(ctx, store, self.actor_ref, self)
        #: Each connection's batches, answered strictly in request order.
        #: Requests by command and outcome, latency by command and level (``stats``, metrics).
        self.request_metrics = RequestMetrics(config.read_consistency, config.write_consistency)
        self.order = ReplyOrder(self, self.request_metrics, ctx.now)
        self.order.on_unblock = self._resume  # a write a read-modify-write waited for was answered
        self.life = Lifecycle(io, config, int(ctx.wall() * 1000))
        self.coordinator = Coordinator(io, self.life, self.clock, config, OUTBOX_FLUSH_OPS)
        self.rmw = RmwCoordinator(io, self.life, self.coordinator, self.clock, config)
        self.scans = ClusterScan(io, self.life, self.rmw.forward, config)
        self.rmw.serve_scan = self.scans.serve
        self.replica = ReplicaServer(io, self.clock, config.request_timeout_s, config.max_clock_skew_s)
        self.local = LocalPlanner(
            io, self.life, self.clock, config, self.coordinator.counters, self._stats, self._fail_batch
        )
        io.before_store = self.local.send_call
        self.watches = self.local.watches
        self.requests = 0
        #: Requests refused while this node's clock was off its peers' (``clock_refused``).
        self.clock_refused = 0
        #: Failures the node's other actors survived and reported (``ActorFailed``).
        self.reported_failures = 0
        self.replicator_counters: dict[str, int] = {}
        #: Connections whose deferred requests are being planned (see _resume).
        self._resuming: set[int] = set()

    def on_start(self) -> None:
        self.life.gossip()
        self.ctx.call_later(self.config.heartbeat_interval_s, self.actor_ref, HeartbeatTick())

    def on_receive(self, message: Any) -> Any:
        t = type(message)
        if t is ClientBatch:
            self._on_client_batch(message)
        elif t is StoreAnswers:
            resume = self.io.resume
            for results in message.results:
                resume(results.batch, results)
        elif t is StoreAnswer:
            self.io.resume(message.batch, message)
        elif t is FromPeer:
            self._on_peer(message)
        elif t is ClientConnected:
            self.order.connected(message.conn)
        elif t is ClientDisconnected:
            self.order.disconnected(message.conn)
            self.watches.unwatch(message.conn)
        elif t is RequestTimeout:
            self.io.resume(message.batch, None)
        elif t is HeartbeatTick:
            self._on_heartbeat()
        elif t is ReplicatorCounters:
            self.replicator_counters = message.counters
        elif t is WarmDone:
            self.life.warm_done(message.keys)
        elif t is Leave:
            self.life.start_leave(message)
        elif t is HandOffDone:
            self.life.finish_leave(message.keys, message.complete)
        elif t is AttachReplicator:
            self.life.attach(message.replicator)
        elif t is ActorFailed:
            self.reported_failures += 1
        elif t is StatsAsk:
            reply_to = message.reply_to
            self.io.ask_store(((0, StatsQuery()),), lambda answer: reply_to.tell(self._stats(answer.results[0][1])))
        else:
            return super().on_receive(message)
        return None

    def on_turn_end(self) -> None:
        """Send what this turn gathered: one message to the store for all its batches, one
        ``ReplicaRequest`` per peer for the replica ops of the turn's quorum rounds not
        sent yet (or kept back by that peer's window: see actors.cluster.replica_flow)."""
        self.coordinator.requests.flush()
        self.io.flush_store()

    def _on_heartbeat(self) -> None:
        self.ctx.call_later(self.config.heartbeat_interval_s, self.actor_ref, HeartbeatTick())
        now = self.ctx.now()
        self.life.on_heartbeat(now)
        self.coordinator.on_heartbeat()
        self.replica.on_heartbeat(now)
        self.life.gossip()

    def _on_peer(self, env: FromPeer) -> None:
        msg = env.msg
        t = type(msg)
        if t is ReplicaRequest:
            self.replica.serve(env, msg)
        elif t is ReplicaResponse:
            self.coordinator.on_replica_response(env, msg)
        elif t is ReplicaAck:
            self.replica.on_ack(env, msg)
        elif t is Gossip:
            self.life.on_gossip(env, msg)
        elif t is Forward:
            self.rmw.on_forward(env, msg)
        elif t is ForwardReply:
            self.rmw.on_forward_reply(env.src, msg)
        elif self.life.replicator is not None:
            self.life.replicator.tell(env)

    def _stats(self, store_stats: dict[str, Any]) -> dict[str, Any]:
        return node_stats(self, store_stats)

    # --- client batches -----------------------------------------------------------

    def _on_client_batch(self, batch: ClientBatch) -> None:
        conn = batch.conn
        pending = ReplySlots(conn, batch.requests, batch.reply_to, self.ctx.now())
        self.requests += len(batch.requests)
        order = self.order
        try:
            order.enqueue(pending)
            if self.watches.active:  # a write of a watched key dirties its watchers (actors.node.watches)
                pending.requests = typed_requests(pending.requests)
                self.watches.touch_batch(conn, pending.requests)
            life = self.life
            if order.free(conn) and life.joined and life.clock_off is None and life.view.solo:
                self.local.plan(pending)  # the common case: a single node, nothing waiting on conn
            else:
                pending.requests = typed_requests(pending.requests)  # (only the planner takes plain items)
                if order.waiting(conn):  # behind requests waiting for a read-modify-write
                    order.defer(pending, 0)
                else:
                    self._plan_cluster(pending, 0)
                    pending.settle()
        except Exception as exc:
            self._fail_batch(pending, "planning", exc)

    def _plan_cluster(self, pending: ReplySlots, start: int) -> bool:
        """Plan ``pending`` from ``start`` on in a cluster; True if planning stopped at a
        request that waits for a read-modify-write before it (it resumes there)."""
        life, order, coordinator = self.life, self.order, self.coordinator
        conn = pending.conn
        me = self.io.node_id
        wall = self.io.wall()
        qround = coordinator.begin()
        local_ops: list[tuple[int, StoreOp]] = []
        deferred = False
        requests = pending.requests
        for slot in range(start, len(requests)):
            request = requests[slot]
            try:
                if type(request) is Flush:  # a cluster's flush: a marker per partition (actors.store.flush_marks)
                    request = flush_write(request, self.config.partitions)
                elif type(request) is Scan and life.joined:  # across the cluster (actors.cluster.scan_coordinator)
                    self.scans.scan(request, self._scanned(pending, slot))
                    continue
                elif type(request) is Watch and request.keys and life.joined and life.clock_off is None:
                    self._watch(pending, slot, request)  # each key's version, read at quorum
                    continue
                elif type(request) is Multi and self.watches.reading(conn):
                    order.defer(pending, slot, first=conn in self._resuming)  # after its WATCH's reads
                    deferred = True
                    break
                route = route_of(request)
                update = route is Route.UPDATE
                if order.blocks(conn, request, update, pending, slot):
                    order.defer(pending, slot, first=conn in self._resuming)
                    deferred = True
                    break
                data = route is Route.READ or route is Route.WRITE
                if (update or route is Route.WRITE) and not life.view.solo:  # values must fit a peer frame
                    size = request_value_bytes(request)
                    if size > self.config.max_cluster_value_bytes:
                        pending.fill(slot, too_large(size, self.config.max_cluster_value_bytes, request.rid))
                        continue
                if (data or update) and not life.joined:
                    pending.fill(slot, ErrorReply(ErrorCode.UNAVAILABLE, "unavailable: still joining the cluster", request.rid))
                elif (data or update) and life.clock_off is not None:
                    pending.fill(slot, self._clock_refusal(request))
                elif update:
                    if type(request) is Multi:  # with this connection's watches (actors.node.watches)
                        request = self.watches.seal(conn, request)
                        if request.aborted:
                            pending.fill(slot, MultiReply(None, request.rid))
                            continue
                        keys = request.keys
                    else:
                        keys = keys_of(request)  # (two for a rename)
                    for key in keys:
                        order.hold(conn, key)
                    try:
                        self.rmw.update(request, self._updated(pending, slot, keys))
                    except Exception:
                        for key in keys:
                            order.release(conn, key)
                        raise
                elif data:
                    reply = coordinator.add(qround, slot, request, wall, route is Route.WRITE)
                    if reply is not None:
                        pending.fill(slot, reply)
                    elif local_ops and me in qround.outgoing:  # this node's store: in slot order
                        self.local.ask_store(pending, local_ops)
                        local_ops = []
                else:
                    coordinator.send_share(qround)  # this node's store: in slot order
                    self.local.plan_one(pending, slot, request, wall, local_ops)
            except Exception as exc:
                pending.fill(slot, self.io.request_failed("planning", request, exc))
        if local_ops:
            self.local.ask_store(pending, local_ops)
        coordinator.start(qround, pending)
        return deferred

    def _clock_refusal(self, request: Any) -> ErrorReply:
        """This node's clock is off its peers' beyond the max clock skew: it coordinates
        nothing (its versions would be refused, or lose to older writes). Definite."""
        self.clock_refused += 1
        return ErrorReply(
            ErrorCode.UNAVAILABLE,
            f"unavailable: this node's clock is {self.life.clock_off:+d} ms off its peers' "
            f"(max clock skew {self.life.offsets.max_skew_ms} ms); it coordinates no reads or writes until fixed",
            request.rid,
        )

    def _watch(self, pending: ReplySlots, slot: int, request: Watch) -> None:
        """WATCH in a cluster: read each key's record at quorum and watch the versions
        found (a transaction after it aborts unless they are still what its keys hold;
        actors.node.watches). A transaction behind it on the connection waits for it."""
        conn = pending.conn
        keys = tuple(dict.fromkeys(request.keys))
        self.watches.start_reading(conn)
        gather = _WatchReads(len(keys))

        def finish() -> None:
            self.watches.done_reading(conn)
            failed = next((r for r in gather.replies if type(r) is not RecordReply), None)
            if failed is not None:
                reply: Reply = failed if type(failed) is ErrorReply else ErrorReply(ErrorCode.INTERNAL, "watch read failed", request.rid)
                reply = dataclasses.replace(reply, rid=request.rid)
            elif self.watches.watch_versions(conn, {k: (r.record.version if r.record else None) for k, r in zip(keys, gather.replies)}):
                reply = Ack(request.rid)
            else:
                reply = ErrorReply(ErrorCode.BAD_REQUEST, f"a connection may watch at most {MAX_WATCHED_KEYS} keys", request.rid)
            pending.fill(slot, reply)
            pending.settle()
            self._resume(conn)

        gather.then = finish
        coordinator = self.coordinator
        qround = coordinator.begin()
        wall = self.io.wall()
        for i, key in enumerate(keys):
            reply = coordinator.add(qround, i, ReadRecord(key, None, "quorum"), wall, False)
            if reply is not None:
                gather.fill(i, reply)
        coordinator.start(qround, gather)
        gather.settle()

    def _scanned(self, pending: ReplySlots, slot: int) -> Any:
        def done(reply: Reply) -> None:
            pending.fill(slot, reply)
            pending.settle()

        return done

    def _updated(self, pending: ReplySlots, slot: int, keys: tuple[str, ...]) -> Any:
        """What a read-modify-write's answer does: fill its slot, release its keys, and
        plan what waited for it."""

        def done(reply: Reply) -> None:
            pending.fill(slot, reply)
            for key in keys:
                self.order.release(pending.conn, key)
            pending.settle()
            self._resume(pending.conn)

        return done

    def _resume(self, conn: int) -> None:
        """Plan, in order, what waits on ``conn`` until a request must wait again."""
        if conn in self._resuming:  # a read-modify-write answered while planning: the loop below goes on
            return
        self._resuming.add(conn)
        try:
            while True:
                entry = self.order.next_deferred(conn)
                if entry is None:
                    return
                pending, slot = entry
                try:
                    deferred = self._plan_cluster(pending, slot)
                    pending.settle()
                except Exception as exc:
                    self._fail_batch(pending, "planning", exc)
                    continue
                if deferred:
                    return
        finally:
            self._resuming.discard(conn)

    def _fail_batch(self, pending: ReplySlots, doing: str, exc: Exception) -> None:
        """``doing`` something with ``pending`` raised: answer each of its slots not answered
        yet ``internal``, and make sure the batch is queued and sent, once (a connection whose
        batch is never answered waits forever)."""
        unanswered = [slot for slot, reply in enumerate(pending.replies) if reply is None]
        self.io.internal_errors += len(unanswered)
        log_failure(logger, f"{self} {doing} a batch of {len(pending.requests)} requests", exc)
        message = f"internal error {doing} this batch ({type(exc).__name__}); it may have been applied"
        for slot in unanswered:
            pending.fill(slot, ErrorReply(ErrorCode.INTERNAL, message, getattr(pending.requests[slot], "rid", None)))
        if pending.order is None:
            self.order.enqueue(pending)
        pending.settle()
