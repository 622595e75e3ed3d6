"""The ``Node`` actor: the front door and coordinator of client requests.

Theory of operation
-------------------
A host tells the node one :class:`ClientBatch` per socket read. The node gives every
request a slot in a :class:`PendingBatch`; what it can answer itself (ping, join, decode
errors) fills its slot at once, the rest becomes store operations sent in one
:class:`StoreBatch`. When the store's results come back, each slot gets its reply.

Replies leave strictly in request order per connection: batches wait in a per-connection
queue and a batch is sent only when it and every batch before it are complete. This is
what later lets cluster replies, which return out of order, keep pipelining honest.

The node decides everything a replica must not decide for itself: TTL deadlines
(absolute wall time, ``wall + ttl``) and versions (its hybrid logical clock).

In a cluster the node is also a coordinator (any node accepts any key: see
:mod:`actors.cluster.coordination`), a replica (it applies peers' ``ReplicaRequest`` through its
store) and the keeper of membership (:mod:`actors.cluster.membership`): it gossips its table to
every member each ``heartbeat_interval_s`` and hands every view change to the
replicator. While the cluster is this node alone, requests take the single-node path
with no coordination at all.

No request may take the node down (``survive_failures``): a request whose planning or
answering raises is answered ``internal`` (logged once with its type, never its value;
counted in ``internal_errors``); every ``ClientBatch`` gets exactly one ``BatchReply``
whatever raises while it is handled (:meth:`Node._fail_batch`), since a connection whose
batch is never answered waits forever; any other message whose handling raises is
logged, counted in ``actor_failures`` (with those the node's other actors report) and
the node goes on. Replies from peers are matched by (peer, request id): a reply with
the right id from another node is ignored and counted (``replies_from_wrong_peer``).

Values make peer frames big, so replica requests and answers travel in frames of about
``actors.cluster.peer_budget.PEER_FRAME_BUDGET`` bytes of values, with a bounded amount in flight
per peer: a coordinator holds requests back past a window of unanswered bytes, a replica
sends a big answer in parts, each acknowledged before the next (:mod:`actors.cluster.replica_flow`).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from typing import Any

from pykka import ActorRef

from actors.config import NodeConfig
from actors.cluster.lifecycle import Lifecycle
from actors.node.io import OUTBOX_FLUSH_OPS, ActorIO
from actors.node.ordering import PendingBatch, ReplyOrder
from actors.kernel.scheduled import ScheduledActor
from actors.kernel.ctx import Ctx
from actors.protocol.codec import decode_reply, decode_request, encode_reply, encode_request
from actors.cluster.coordination import ClusterBatch, is_data_request, is_write
from actors.cluster.replicator import REPLICATOR_COUNTERS
from actors.store.rmw import is_update, plan_update
from actors.protocol.errors import CacheError, ErrorCode
from actors.kernel.failures import log_failure
from actors.cluster.membership import State
from actors.protocol.messages import (
    Ack,
    REPLY_TYPES,
    Ttl,
    Inspect,
    InspectReply,
    Locate,
    LocateReply,
    RemoveNode,
    Delete,
    ErrorReply,
    Get,
    Join,
    MGet,
    MSet,
    Ping,
    Pong,
    Reply,
    Request,
    Set,
    Stats,
    StatsReply,
    Value,
    Values,
)
from actors.protocol.internal import (
    AttachReplicator,
    ReadRecord,
    RecordReply,
    RmwStep,
    WriteRecord,
    HandOffDone,
    HintRecords,
    Leave,
    ReplicatorCounters,
    RequestTimeout,
    Tick,
    WarmDone,
)
from actors.protocol.edge import BatchReply, ClientBatch, ClientConnected, ClientDisconnected
from actors.protocol.replica_ops import ItemResults, Remove, Write
from actors.store.ops import Read, StatsQuery, StoreOp, StoreResults, StoreResultsList
from actors.kernel.failures import ActorFailed
from actors.kernel.peer import FromPeer
from actors.protocol.replica_ops import Apply
from actors.store.ops import Describe, Modify
from actors.protocol.peer_messages import (
    Forward,
    ForwardReply,
    Gossip,
    ReplicaAck,
    ReplicaRequest,
    ReplicaResponse,
)
from actors.cluster.replica_flow import ReplicaRequests, ResponseParts
from actors.store.partitions import partition_of
from actors.protocol.version import ZERO, HybridClock, Version

__all__ = ["Node"]

logger = logging.getLogger("actorcache.node")


#: A write is re-stamped at most this often when replicas hold newer versions.
MAX_RESTAMPS = 3
class Node(ScheduledActor):
    survive_failures = True  # see ScheduledActor.survive_failures

    def __init__(self, ctx: Ctx, store: ActorRef[Any], config: NodeConfig | None = None) -> None:
        super().__init__(ctx)
        self.config = config = config or NodeConfig()
        self.store = store
        self.clock = HybridClock(ctx.node_id)
        self._only_me = (ctx.node_id,)  # the replica set of a single node's entries
        self.started_at = ctx.now()
        #: The one continuation table (store results, timers), the store outbox, peer sends.
        self.io = io = ActorIO(ctx, store, self.actor_ref, self)
        #: True while every version the store holds came from this node's clock (no peer
        #: has ever sent us anything): then no write of ours can be refused as stale.
        self._own_versions_only = not config.seeds
        #: Each connection's batches, answered strictly in request order.
        self.order = ReplyOrder(self)
        self.requests = 0
        self.errors = 0
        #: Failures the node's other actors survived and reported (``ActorFailed``).
        self.reported_failures = 0
        # --- cluster ---
        #: Membership, the view, join and leave.
        self.life = Lifecycle(io, config, int(ctx.wall() * 1000))
        self._cluster: dict[int, tuple[ClusterBatch, PendingBatch]] = {}
        #: Replica requests to peers (actors.cluster.replica_flow): per peer the current turn's
        #: outbox (sent by ``on_turn_end``), each request's route by req (target and, in
        #: segments, the cluster batches and tasks its ops answer), and the values in flight.
        self._requests = ReplicaRequests(
            self.ctx.send, io.next_id, self._cluster.__contains__, OUTBOX_FLUSH_OPS
        )
        #: This node's answers to peers' replica requests, big ones in acknowledged parts.
        self._answers = ResponseParts(self.ctx.send, config.request_timeout_s)
        self._rmw_queues: dict[str, collections.deque[_RmwJob]] = {}
        self._rmw_jobs: dict[int, _RmwJob] = {}
        self._forwards: dict[int, tuple[Any, Any, Any]] = {}  # fid -> (request, done, timer)
        self.replicator_counters: dict[str, int] = {}
        self.coord = collections.Counter(
            {
                "read_repairs": 0,
                "unavailable": 0,
                "timeouts": 0,
                "hints_written": 0,
                "restamps": 0,
                "replies_from_wrong_peer": 0,
                # replica response parts refused: out of order (one was lost) or out of range
                "replica_parts_refused": 0,
            }
        )

    def on_start(self) -> None:
        self.life.gossip()
        self.ctx.call_later(self.config.heartbeat_interval_s, self.actor_ref, Tick("gossip"))

    def on_receive(self, message: Any) -> Any:
        t = type(message)
        if t is ClientBatch:
            self._on_client_batch(message)
        elif t is StoreResultsList:
            resume = self.io.resume
            for results in message.results:
                resume(results.batch, results)
        elif t is StoreResults:
            self.io.resume(message.batch, message)
        elif t is FromPeer:
            self._on_peer(message)
        elif t is ClientConnected:
            self.order.connected(message.conn)
        elif t is ClientDisconnected:
            self.order.disconnected(message.conn)
        elif t is RequestTimeout:
            self.io.resume(message.batch, None)
        elif t is RmwStep:
            self._on_rmw_step(message)
        elif t is Tick:
            self._on_heartbeat()
        elif t is ReplicatorCounters:
            self.replicator_counters = message.counters
        elif t is WarmDone:
            self.life.warm_done()
        elif t is Leave:
            self.life.start_leave(message)
        elif t is HandOffDone:
            self.life.finish_leave(message.keys, message.complete)
        elif t is AttachReplicator:
            self.life.attach(message.replicator)
        elif t is ActorFailed:
            self.reported_failures += 1
        else:
            return super().on_receive(message)
        return None

    def on_turn_end(self) -> None:
        """Send what this turn gathered: one message to the store for all its batches, one
        ``ReplicaRequest`` per peer for the replica ops of the turn's cluster batches not
        sent yet (or kept back by that peer's window: see actors.cluster.replica_flow)."""
        self._requests.flush()
        self.io.flush_store()

    def _on_heartbeat(self) -> None:
        self.ctx.call_later(self.config.heartbeat_interval_s, self.actor_ref, Tick("gossip"))
        now = self.ctx.now()
        self.life.on_heartbeat(now)
        self._requests.forget_lost()
        self._answers.expire(now)
        self.life.gossip()

    # --- peers ------------------------------------------------------------------------

    def _on_peer(self, env: FromPeer) -> None:
        self._own_versions_only = False  # a peer may send or stream versions from its clock
        msg = env.msg
        t = type(msg)
        if t is ReplicaRequest:
            self._serve_replica(env, msg)
        elif t is ReplicaResponse:
            self._on_replica_response(env, msg)
        elif t is ReplicaAck:
            self._answers.on_ack(env.addr, msg.req, msg.start, self.ctx.now())
        elif t is Gossip:
            self.life.on_gossip(env, msg)
        elif t is Forward:
            self._on_forward(env, msg)
        elif t is ForwardReply:
            self._on_forward_reply(env.src, msg)
        elif self.life.replicator is not None:
            self.life.replicator.tell(env)

    def _serve_replica(self, env: FromPeer, msg: ReplicaRequest) -> None:
        wall = self.ctx.wall()
        for op in msg.ops:
            version = getattr(op, "version", None)
            if version is not None:
                self.clock.observe(version, wall)
        addr, req = env.addr, msg.req

        def answer(message: StoreResults) -> None:
            self._answers.answer(addr, req, tuple(result for _, result in message.results), self.ctx.now())

        self.io.ask_store(tuple(enumerate(msg.ops)), answer)

    def _on_replica_response(self, env: FromPeer, msg: ReplicaResponse) -> None:
        """A replica's answer, or one part of it (``ack``: acknowledge it, so the replica
        sends its next part; see actors.cluster.replica_flow)."""
        requests = self._requests
        route = requests.route(msg.req)
        src = env.src
        if route is not None and src != route.target:  # ids are guessable: only the node we asked may answer
            self._wrong_peer("ReplicaResponse", src, route.target)
            return
        if msg.ack:
            self.ctx.send(env.addr, ReplicaAck(msg.req, msg.start))
        if route is None:
            return
        if not requests.fits(route, msg):
            # Out of order (a part was lost: nothing after it can be placed) or answering
            # ops the request did not carry: the request's batches time out instead.
            self.coord["replica_parts_refused"] += 1
            logger.warning(
                "%s: refused a replica_response part from %s: ops %d-%d of request %d, which had %d and %d answered",
                self, src, msg.start, msg.start + len(msg.results), msg.req, route.total, route.answered,
            )
            requests.done(msg.req, route)
            return
        cluster = self._cluster
        for batch_id, attempts, results in route.take(msg.results):  # one segment per cluster batch answered
            entry = cluster.get(batch_id)
            if entry is not None:
                self._on_task_results(entry, src, _task_results(attempts, results))
        if route.answered == route.total:
            requests.done(msg.req, route)

    # --- coordinated batches --------------------------------------------------------

    def _coordinate(self, batch: ClientBatch, pending: PendingBatch) -> None:
        view = self.life.view
        wall = self.ctx.wall()
        config = self.config
        batch_id = self.io.next_id()
        cb = ClusterBatch(batch_id)
        local_ops: list[tuple[int, StoreOp]] = []
        run_version: Version | None = None
        run_keys: set[str] = set()
        for slot, request in enumerate(pending.requests):
            try:
                data = is_data_request(request)
                if (data or is_update(request)) and not self.life.joined:
                    pending.fill(slot, ErrorReply(ErrorCode.UNAVAILABLE, "unavailable: still joining the cluster", request.rid))
                    continue
                if is_update(request):
                    self._update(pending, slot, request)
                    continue
                if data:
                    write = is_write(request)
                    level = request.consistency or (config.write_consistency if write else config.read_consistency)
                    if not write:
                        version = None
                    elif type(request) is Set:
                        # A run of plain sets of distinct keys shares one version, so each
                        # replica gets the run as one item-by-item write (_wire_ops); a
                        # repeated key needs a newer version and starts a new run.
                        if run_version is None or request.key in run_keys:
                            run_version, run_keys = self.clock.tick(wall), set()
                        run_keys.add(request.key)
                        version = run_version
                    else:
                        version, run_version = self.clock.tick(wall), None
                    error = cb.plan(slot, request, view, level, wall, version, config.tombstone_ttl_s)
                    if error is not None:
                        self.coord["unavailable"] += 1
                        pending.fill(slot, error)
                    elif cb.slot_done(slot):  # nothing to ask anyone (an mget or mset of no keys)
                        pending.fill(slot, cb.reply(slot, wall))
                    continue
            except Exception as exc:
                pending.fill(slot, self._request_failed("planning", request, exc))
                continue
            self._plan_local(pending, slot, request, wall, local_ops)
        if local_ops:
            self._ask_store(pending, local_ops)
        if cb.hints:
            self._hint(tuple(cb.hints))
        if not cb.tasks:
            return
        if self.ctx.tracing:
            for task in cb.tasks:
                if task.write:
                    self.ctx.trace(
                        "write", key=task.key, version=list(task.op.version), replicas=list(task.sent_to)
                    )
        self._cluster[batch_id] = (cb, pending)
        self._send_tasks(cb, cb.outgoing)
        cb.outgoing = {}
        cb.timer = self.io.set_timer(config.request_timeout_s, lambda: self._on_timeout(batch_id))

    # --- read-modify-write at the key's coordinator ---------------------------------

    def _update(self, pending: PendingBatch, slot: int, request: Any) -> None:
        """Run ``request`` at the key's coordinator: here, or forwarded to it."""
        view = self.life.view
        owners = view.placement.owners(partition_of(request.key, self.config.partitions))
        coordinator = next((m for m in owners if view.serves_reads(m)), None)

        def done(reply: Reply) -> None:
            pending.fill(slot, reply)
            self.order.flush(pending.conn)

        if coordinator is None:
            self.coord["unavailable"] += 1
            pending.fill(slot, ErrorReply(ErrorCode.UNAVAILABLE, f"unavailable: no owner of {request.key!r} is reachable; nothing was applied", request.rid))
        elif coordinator == self.ctx.node_id:
            self._rmw_submit(request, done)
        else:
            fid = self.io.next_id()
            timer = self.io.set_timer(2 * self.config.request_timeout_s, lambda: self._on_forward_timeout(fid))
            self._forwards[fid] = (request, done, timer, coordinator)
            self.ctx.send(view.addresses[coordinator], Forward(fid, encode_request(request)))

    def _on_forward(self, env: FromPeer, msg: Forward) -> None:
        try:
            request = decode_request(msg.request, self.config.max_value_depth)
        except CacheError as exc:
            self.ctx.send(env.addr, ForwardReply(msg.fid, encode_reply(ErrorReply(exc.code, exc.message))))
            return
        if not is_update(request):
            reply = ErrorReply(ErrorCode.BAD_REQUEST, "only read-modify-write requests are forwarded", request.rid)
            self.ctx.send(env.addr, ForwardReply(msg.fid, encode_reply(reply)))
            return
        self._rmw_submit(request, lambda reply: self.ctx.send(env.addr, ForwardReply(msg.fid, encode_reply(reply))))

    def _on_forward_reply(self, src: str, msg: ForwardReply) -> None:
        entry = self._forwards.get(msg.fid)
        if entry is None:
            return
        request, done, timer, coordinator = entry
        if src != coordinator:  # only the coordinator we forwarded to may answer
            self._wrong_peer("ForwardReply", src, coordinator)
            return
        del self._forwards[msg.fid]
        timer.cancel()
        try:
            reply = decode_reply(msg.reply, request)
        except Exception:  # CacheError, or a shape decode_reply did not foresee (a peer's bytes)
            reply = ErrorReply(ErrorCode.INTERNAL, "the key's coordinator sent a malformed reply", request.rid)
        done(dataclasses.replace(reply, rid=request.rid))

    def _wrong_peer(self, kind: str, src: str, expected: str) -> None:
        """A reply carrying the id of a request sent to another node: ignored, counted."""
        self.coord["replies_from_wrong_peer"] += 1
        logger.debug("%s: ignored a %s from %s to a request sent to %s", self, kind, src, expected)

    def _on_forward_timeout(self, fid: int) -> None:
        entry = self._forwards.pop(fid, None)
        if entry is not None:
            request, done, _, _ = entry
            self.coord["timeouts"] += 1
            done(ErrorReply(ErrorCode.TIMEOUT, "the key's coordinator did not answer; it may have been applied", request.rid))

    def _rmw_submit(self, request: Any, done: Any) -> None:
        """Queue ``request`` behind earlier ones for its key: one at a time per key."""
        job = _RmwJob(self.io.next_id(), request, done)
        queue = self._rmw_queues.setdefault(request.key, collections.deque())
        queue.append(job)
        if len(queue) == 1:
            self._rmw_read(job)

    def _rmw_read(self, job: _RmwJob) -> None:
        level = job.request.consistency or "quorum"
        self._internal(job, ReadRecord(job.request.key, None, level))

    def _internal(self, job: _RmwJob, request: Any) -> None:
        self._rmw_jobs[job.id] = job
        job.conn = -job.id - (job.phase << 40)
        job.phase += 1
        pending = PendingBatch(job.conn, (request,), _StepReply(self.actor_ref, job.id))
        self.order.enqueue(pending)
        self._coordinate(None, pending)
        self.order.flush(job.conn)

    def _on_rmw_step(self, step: RmwStep) -> None:
        job = self._rmw_jobs.pop(step.job, None)
        if job is None:
            return
        try:
            self._rmw_step(job, step)
        except Exception as exc:  # the job must end (and its key's queue move on) whatever raised
            self._rmw_jobs.pop(job.id, None)
            self._rmw_finish(job, self._request_failed("running", job.request, exc))

    def _rmw_step(self, job: _RmwJob, step: RmwStep) -> None:
        self.order.disconnected(job.conn)
        reply = step.replies[0]
        if type(reply) is ErrorReply:
            self._rmw_finish(job, reply)
            return
        if type(reply) is RecordReply:
            wall = self.ctx.wall()
            if reply.record is not None:
                self.clock.observe(reply.record.version, wall)
            try:
                write, final = plan_update(job.request, reply.record, wall)
            except Exception as exc:
                write, final = None, self._request_failed("planning", job.request, exc)
            if write is None:
                self._rmw_finish(job, final)
                return
            job.final = final
            self._internal(job, WriteRecord(job.request.key, write[0], write[1], None, job.request.consistency))
            return
        self._rmw_finish(job, job.final)  # the write was acknowledged

    def _rmw_finish(self, job: _RmwJob, reply: Any) -> None:
        queue = self._rmw_queues.get(job.request.key)
        if queue and queue[0] is job:
            queue.popleft()
        try:
            job.done(dataclasses.replace(reply, rid=job.request.rid))
        except Exception as exc:
            log_failure(logger, f"{self} answering {type(job.request).__name__}", exc)
        if queue:
            self._rmw_read(queue[0])
        else:
            self._rmw_queues.pop(job.request.key, None)

    def _send_tasks(self, cb: ClusterBatch, outgoing: dict[str, list[tuple[int, Any]]]) -> None:
        """One store batch for this node's share, one ReplicaRequest per peer."""
        me = self.ctx.node_id
        addresses = self.life.view.addresses
        tasks = cb.tasks
        for target, planned in outgoing.items():
            attempts, wire = _wire_ops(planned, tasks)
            if target == me:
                self.io.ask_store(tuple(enumerate(wire)), self._local_results(cb.batch_id, attempts))
            else:
                addr = addresses.get(target)
                if addr is not None:
                    self._requests.add(addr, target, cb.batch_id, attempts, wire)

    def _restamp(self, cb: ClusterBatch) -> None:
        """Writes a replica refused as older than what it holds: stamp above it, send again."""
        wall = self.ctx.wall()
        outgoing: dict[str, list[tuple[int, Any]]] = {}
        for index in cb.conflicts:
            task = cb.tasks[index]
            if task.conflict is None:
                continue
            if task.attempt >= MAX_RESTAMPS:
                # Concurrent writers keep overtaking each other: let last-write-wins decide.
                task.conflict = None
                continue
            self.clock.observe(task.conflict, wall)
            task.restamp(self.clock.tick(wall))
            self.coord["restamps"] += 1
            if self.ctx.tracing:
                self.ctx.trace("write", key=task.key, version=list(task.op.version), replicas=list(task.sent_to))
            for target in task.sent_to:
                outgoing.setdefault(target, []).append((index, task.op))
        cb.conflicts = {}
        self._send_tasks(cb, outgoing)

    def _on_task_results(self, entry: tuple[ClusterBatch, PendingBatch], source: str, results: Any) -> None:
        cb, pending = entry
        wall = self.ctx.wall()
        touched = False
        for index, attempt, result in results:
            task = cb.on_result(index, source, result, attempt)
            if task is None:
                continue
            if not task.write and task.needed > 1:
                self._read_repair(cb.repairs(task))
            if cb.slot_done(task.slot) and pending.replies[task.slot] is None:
                try:
                    reply = cb.reply(task.slot, wall)
                except Exception as exc:
                    reply = self._request_failed("answering", pending.requests[task.slot], exc)
                pending.fill(task.slot, reply)
                touched = True
        if touched:
            self.order.flush(pending.conn)
        if cb.conflicts:
            self._restamp(cb)
        if cb.finished():
            self._close_batch(cb)

    def _read_repair(self, repairs: list[tuple[str, Any]]) -> None:
        if not repairs:
            return
        me = self.ctx.node_id
        for source, record in repairs:
            self.coord["read_repairs"] += 1
            self.ctx.trace("read_repair", key=record.key, replica=source)
            if source == me:
                self.io.ask_store(((0, Apply((record,))),), None)
            else:
                addr = self.life.view.addresses.get(source)
                if addr is not None:
                    self.ctx.send(addr, ReplicaRequest(0, (Apply((record,)),)))

    def _on_timeout(self, batch_id: int) -> None:
        entry = self._cluster.get(batch_id)
        if entry is None:
            return
        cb, pending = entry
        try:
            self._expire_batch(cb, pending)
        except Exception as exc:
            self._cluster.pop(batch_id, None)
            self._fail_batch(pending, "timing out", exc)
            return
        # Past the timeout every slot of the batch has its answer, even one whose answer
        # raised earlier (a slot done but never filled would otherwise wait forever).
        unanswered = [slot for slot in cb.slots if pending.replies[slot] is None]
        for slot in unanswered:
            pending.fill(slot, self._request_failed("answering", pending.requests[slot], _Unanswered()))
        if unanswered:
            self.order.flush(pending.conn)

    def _expire_batch(self, cb: ClusterBatch, pending: PendingBatch) -> None:
        failed = cb.expire()
        for slot in failed:
            self.coord["timeouts"] += 1
            pending.fill(slot, cb.slots[slot].error)  # type: ignore[arg-type]
        if failed:
            self.order.flush(pending.conn)
        self._hint(tuple(cb.unacked()))
        cb.timer = None
        self._close_batch(cb)

    def _fail_batch(self, pending: PendingBatch, doing: str, exc: Exception) -> None:
        """``doing`` something with ``pending`` raised: answer each of its slots not answered
        yet ``internal``, and make sure the batch is queued and sent, once (a connection whose
        batch is never answered waits forever)."""
        rids = [_rid(request) for request, reply in zip(pending.requests, pending.replies) if reply is None]
        self.io.internal_errors += len(rids)
        log_failure(logger, f"{self} {doing} a batch of {len(pending.requests)} requests", exc)
        message = f"internal error {doing} this batch ({type(exc).__name__}); it may have been applied"
        for slot, reply in enumerate(pending.replies):
            if reply is None:
                pending.fill(slot, ErrorReply(ErrorCode.INTERNAL, message, _rid(pending.requests[slot])))
        if not pending.queued:
            self.order.enqueue(pending)
        self.order.flush(pending.conn)

    def _request_failed(self, doing: str, request: Any, exc: Exception) -> ErrorReply:
        return self.io.request_failed(doing, request, exc)

    def _close_batch(self, cb: ClusterBatch) -> None:
        if cb.timer is not None:
            cb.timer.cancel()
            cb.timer = None
        self._cluster.pop(cb.batch_id, None)

    def _hint(self, items: tuple[tuple[str, Any], ...]) -> None:
        replicator = self.life.replicator
        if items and replicator is not None:
            self.coord["hints_written"] += len(items)
            replicator.tell(HintRecords(items))

    # --- client batches -----------------------------------------------------------

    def _on_client_batch(self, batch: ClientBatch) -> None:
        pending = PendingBatch(batch.conn, batch.requests, batch.reply_to)
        try:
            self._plan_batch(batch, pending)
        except Exception as exc:
            self._fail_batch(pending, "planning", exc)

    def _plan_batch(self, batch: ClientBatch, pending: PendingBatch) -> None:
        requests = batch.requests
        if not self.life.view.solo or not self.life.joined:
            self.requests += len(requests)
            self.order.enqueue(pending)
            self._coordinate(batch, pending)
            self.order.flush(batch.conn)
            return
        ops: list[tuple[int, StoreOp]] = []
        wall = self.ctx.wall()
        self.requests += len(requests)
        if len(requests) > 1:
            self._plan_solo(pending, wall, ops)
        else:
            for slot, request in enumerate(requests):
                self._plan_local(pending, slot, request, wall, ops)
        self.order.enqueue(pending)
        if ops:
            self._ask_store(pending, ops)
        else:
            self.order.flush(batch.conn)

    def _plan_solo(self, pending: PendingBatch, wall: float, ops: list[tuple[int, StoreOp]]) -> None:
        """Plan a batch as ``_plan_local`` does, but runs of consecutive plain requests of one
        kind become one store operation with one result: gets one ``Read`` of all their
        keys, sets of distinct keys one ``Write`` with one version (as an ``mset`` does).

        Set runs only while every version in the store is this node's own
        (``_own_versions_only``) and without ``--max-memory``: the store then never refuses
        a write (the clock only moves forward), so a grouped write is never re-stamped and
        re-sent after later writes to the same keys; and each set would otherwise need its
        own memory check. A key seen twice ends a set run: the second set needs the newer
        version.
        """
        group_sets = self._own_versions_only and not self.config.max_memory
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
                self._plan_local(pending, slot, request, wall, ops)
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
        pending: PendingBatch,
        kind: type | None,
        slots: list[int],
        items: list[Any],
        wall: float,
        ops: list[tuple[int, StoreOp]],
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

    def _plan_local(
        self, pending: PendingBatch, slot: int, request: Any, wall: float, ops: list[tuple[int, StoreOp]]
    ) -> None:
        """Answer ``request`` here, or add the store operation it needs to ``ops``."""
        try:
            op = self._plan(request, wall)
            if op is None:
                pending.fill(slot, self._immediate(request))
            else:
                ops.append((slot, op))
        except Exception as exc:  # a bug must cost one reply, never the node
            pending.fill(slot, self._request_failed("planning", request, exc))

    def _plan(self, request: Request | ErrorReply, wall: float) -> StoreOp | None:
        """The store operation a request needs, or None if the node answers it itself."""
        t = type(request)
        if t is Get:
            return Read((request.key,))
        if t is Set and not request.conditional:
            ttl = request.ttl
            deadline = wall + ttl if ttl else None
            return Write(((request.key, request.value, deadline),), self.clock.tick(wall), self._only_me)
        if is_update(request):
            return Modify(request, self.clock.tick(wall), self._only_me)
        if t is Ttl:
            return Modify(request, ZERO)
        if t is Delete:
            return Remove((request.key,), self.clock.tick(wall), wall + self.config.tombstone_ttl_s)
        if t is MGet:
            return Read(request.keys)
        if t is MSet:
            ttl = request.ttl
            deadline = wall + ttl if ttl else None
            items = tuple((key, value, deadline) for key, value in request.entries)
            return Write(items, self.clock.tick(wall), self._only_me)
        if t is Stats:
            return StatsQuery()
        if t is Inspect:
            return Describe((request.key,))
        return None

    def _immediate(self, request: Request | ErrorReply) -> Reply:
        t = type(request)
        if t is ErrorReply:
            self.errors += 1
            return request
        if t is Ping:
            return Pong(request.rid)
        if t is Join:
            # The seed's join message: acknowledged; nodes join by gossip (see docs/protocol.md).
            self.ctx.trace("join", peer=request.node_id)
            return Ack(request.rid)
        if t is RemoveNode:
            return self.life.remove_node(request)
        if t is Locate:
            partition = partition_of(request.key, self.config.partitions)
            return LocateReply(request.key, partition, self.life.view.placement.owners(partition), request.rid)
        raise TypeError(f"no handler for {type(request).__name__}")

    # --- store results ------------------------------------------------------------

    def _ask_store(self, pending: PendingBatch, ops: list[tuple[int, StoreOp]]) -> None:
        """Send ``pending``'s store operations; their results fill its slots."""

        def answer(message: StoreResults) -> None:
            try:
                self._answer(pending, message)
            except Exception as exc:
                self._fail_batch(pending, "answering", exc)

        self.io.ask_store(tuple(ops), answer)

    def _answer(self, pending: PendingBatch, message: StoreResults) -> None:
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
                    pending.fill(member, Ack(rid) if type(result) is int else _with_rid(result, rid))
                continue
            if type(result) is Version:
                # The key holds a newer version than our clock's (a record streamed or
                # repaired from a peer whose clock ran ahead, kept after the cluster shrank
                # to this node): move the clock past it and write again, never ack a loss.
                wall = self.ctx.wall()
                self.clock.observe(result, wall)
                self.coord["restamps"] += 1
                self._plan_local(pending, slot, request, wall, again)
                continue
            try:
                reply = self._reply_for(request, result)
            except Exception as exc:
                reply = self._request_failed("answering", request, exc)
            pending.fill(slot, reply)
        if again:
            self._ask_store(pending, again)
        self.order.flush(pending.conn)

    def _local_results(self, batch_id: int, attempts: list[Any]) -> Any:
        """The continuation of this node's share of cluster batch ``batch_id``."""

        def answer(message: StoreResults) -> None:
            entry = self._cluster.get(batch_id)
            if entry is not None:
                self._on_task_results(entry, self.ctx.node_id, _task_results(attempts, [result for _, result in message.results]))

        return answer

    def _reply_for(self, request: Request | ErrorReply, result: Any) -> Reply:
        t = type(request)
        rt = type(result)
        if t is Get and rt is tuple:
            value, found = result[0]
            return Value(value, found, request.rid)
        if t is Set and rt is int:
            return Ack(request.rid)
        if isinstance(result, REPLY_TYPES):
            # A read-modify-write answered by the store itself, or an error (which the
            # store made without knowing the request's id).
            return _with_rid(result, _rid(request))
        if t is Set or t is MSet:
            return Ack(request.rid)
        if t is Delete:
            return Ack(request.rid, deleted=result > 0)
        if t is MGet:
            return Values(
                tuple((key, value, found) for key, (value, found) in zip(request.keys, result)),
                request.rid,
            )
        if t is Stats:
            return StatsReply(self._node_stats(result), request.rid)
        if t is Inspect:
            record, replicas = result[0]
            return InspectReply(request.key, record, request.rid, replicas)
        raise TypeError(f"no reply for {type(request).__name__} from {type(result).__name__}")

    def _node_stats(self, store_stats: dict[str, Any]) -> dict[str, Any]:
        stats = {
            "node_id": self.ctx.node_id,
            "uptime_s": round(self.ctx.now() - self.started_at, 3),
            "connections": len(self.order),
            "connections_total": self.order.total,
            "requests": self.requests,
            "errors": self.errors,
        }
        stats.update(store_stats)
        stats["internal_errors"] = self.io.internal_errors + store_stats.get("internal_errors", 0)
        stats["actor_failures"] = self.actor_failures + self.reported_failures
        stats.update(self.ctx.host_stats())
        stats["cluster"] = self._cluster_stats()
        return stats

    def _cluster_stats(self) -> dict[str, Any]:
        view = self.life.view
        me = self.ctx.node_id
        members = {
            m.node_id: {
                "addr": m.addr,
                "incarnation": m.incarnation,
                "status": m.status,
                "state": view.states.get(m.node_id, State.ALIVE),
            }
            for m in view.members
        }
        out: dict[str, Any] = {
            "members": members,
            "replicas": view.placement.replicas,
            "partitions": view.placement.partitions,
            "partitions_owned": len(view.placement.owned_by(me)),
            "ready": self.life.ready,
            "joined": self.life.joined,
            "write_consistency": self.config.write_consistency,
            "read_consistency": self.config.read_consistency,
            **dict.fromkeys(REPLICATOR_COUNTERS, 0),
        }
        out.update(self.coord)
        out["replica_requests_in_flight"] = len(self._requests.routes)
        out["replica_requests_waiting"] = self._requests.waiting()
        out["replica_responses_split"] = self._answers.split
        out["replica_responses_abandoned"] = self._answers.abandoned
        out.update(self.replicator_counters)
        # Both count peers' answers to what was sent to another node: one figure.
        out["replies_from_wrong_peer"] = self.coord["replies_from_wrong_peer"] + self.replicator_counters.get(
            "replies_from_wrong_peer", 0
        )
        return out


def _wire_ops(planned: list[tuple[int, Any]], tasks: list[Any]) -> tuple[list[Any], list[Any]]:
    """The ops for one target, and for each op the ``(task index, attempt)`` it answers.

    Consecutive single-key writes sharing one version object (a run of plain sets, or an
    mset's keys) become one ``Write`` with ``each`` per owner set: one op and one wire item
    for many keys, yet one answer per key, so each key is still acked, refused or
    re-stamped on its own. Such an op's entry is a tuple of ``(task index, attempt)``
    pairs.
    """
    attempts: list[Any] = []
    wire: list[Any] = []
    run: list[tuple[int, Any]] = []

    def close() -> None:
        # One op per owner set: owners come in each partition's own order. The keys of a
        # run are distinct (the coordinator starts a new version at a repeated key; an
        # mset's repeated key has one owner set), so regrouping them reorders nothing
        # that matters.
        by_owners: dict[tuple[str, ...], list[tuple[int, Any]]] = {}
        for index, op in run:
            group = by_owners.get(op.replicas)
            if group is None:
                by_owners[op.replicas] = [(index, op)]
            else:
                group.append((index, op))
        for owners, group in by_owners.items():
            if len(group) == 1:
                index, op = group[0]
                attempts.append((index, tasks[index].attempt))
                wire.append(op)
            else:
                attempts.append(tuple((index, tasks[index].attempt) for index, _ in group))
                wire.append(Write(tuple(op.items[0] for _, op in group), group[0][1].version, owners, True))
        run.clear()

    for index, op in planned:
        if type(op) is Write and len(op.items) == 1 and not op.each:
            if run and op.version is not run[0][1].version:
                close()
            run.append((index, op))
            continue
        close()
        attempts.append((index, tasks[index].attempt))
        wire.append(op)
    close()
    return attempts, wire


def _task_results(attempts: list[Any], results: Any) -> list[tuple[int, int, Any]]:
    """``(task index, attempt, result)`` for each task, from one result per op: an
    item-by-item write's ``ItemResults`` answer its tasks one each; any other answer to
    it (an error) answers all of them."""
    out: list[tuple[int, int, Any]] = []
    for entry, result in zip(attempts, results):
        if type(entry[0]) is tuple:  # the tasks of one item-by-item write
            if type(result) is ItemResults:
                out.extend((index, attempt, r) for (index, attempt), r in zip(entry, result))
            else:
                out.extend((index, attempt, result) for index, attempt in entry)
        else:
            out.append((entry[0], entry[1], result))
    return out


def _with_rid(reply: Any, rid: Any) -> Any:
    """``reply`` (an error the store made) carrying the request's id."""
    if isinstance(reply, REPLY_TYPES):
        return reply if getattr(reply, "rid", None) == rid else dataclasses.replace(reply, rid=rid)
    return ErrorReply(ErrorCode.INTERNAL, f"internal error: unexpected result {type(reply).__name__}", rid)


def _rid(request: Any) -> Any:
    return getattr(request, "rid", None)


class _Unanswered(Exception):
    """A slot of a cluster batch was still unanswered at the request timeout."""

    def __init__(self) -> None:
        super().__init__("no answer was recorded for this request by the request timeout")


class _RmwJob:
    """One read-modify-write request going through read, then write, at its coordinator."""

    __slots__ = ("conn", "done", "final", "id", "phase", "request")

    def __init__(self, job_id: int, request: Any, done: Any) -> None:
        self.id = job_id
        self.request = request
        self.done = done
        self.final: Any = None
        self.phase = 0
        self.conn = 0


class _StepReply:
    """The reply target of a job's internal batch: back into the node's own mailbox."""

    __slots__ = ("job", "node")

    def __init__(self, node: ActorRef[Any], job: int) -> None:
        self.node = node
        self.job = job

    def tell(self, message: BatchReply) -> None:
        self.node.tell(RmwStep(self.job, message.replies))
