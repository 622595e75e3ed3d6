"""The quorum coordinator: a node's writes and reads across each key's owners.

A plain object the ``Node`` actor drives; it acts only through
:class:`~actors.cluster.node_io.NodeIO`. The rules of one batch (who is asked, how many
answers decide, what a timeout means) live in :class:`~actors.cluster.coordination.QuorumRound`;
this module runs batches: stamps versions, sends each owner its ops (this node's share
to its store, each peer's in a ``ReplicaRequest`` through
:class:`~actors.cluster.replica_flow.ReplicaRequests`), feeds answers back, re-stamps
writes a replica refused as older, repairs stale replicas after a read, hints owners
that missed a write, and fails what is undecided at the request timeout.

A batch answers into :class:`Slots`: a client batch's replies, or one phase of a
read-modify-write (:mod:`actors.cluster.rmw_coordinator`). Invariants: every slot a batch
plans is filled exactly once, at the latest by the timeout (a slot whose answer raised
is answered ``internal`` then); a batch is open from its start until every replica
answered or the timeout fired, and answers for a closed batch are ignored; an answer is
taken only from the node the request went to (``replies_from_wrong_peer``).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from actors.cluster.clock_bound import RefusalLog, bound_results, limit_ms
from actors.cluster.coordination import QuorumRound
from actors.kernel.latency import Histogram
from actors.protocol.kinds import is_write
from actors.cluster.lifecycle import Lifecycle
from actors.cluster.node_io import NodeIO
from actors.cluster.replica_flow import ReplicaRequests
from actors.cluster.task_wire import TaskRefs, wire_ops
from actors.kernel.peer import FromPeer
from actors.protocol.internal import HintRecords
from actors.protocol.messages import Reply, Set
from actors.protocol.peer_messages import ReplicaAck, ReplicaRequest, ReplicaResponse
from actors.protocol.record import Record
from actors.protocol.replica_ops import Apply
from actors.protocol.version import HybridClock
from actors.store.ops import StoreAnswer

__all__ = ["MAX_RESTAMPS", "Coordinator", "Slots"]

logger = logging.getLogger("actorcache.node")

#: A write is re-stamped at most this often when replicas hold newer versions.
MAX_RESTAMPS = 3


class Slots(Protocol):
    """Where a coordinated batch's replies go."""

    requests: Sequence[Any]
    replies: list[Any]

    def fill(self, slot: int, reply: Reply) -> None: ...

    def settle(self) -> None:
        """Slots were filled: pass on what is complete."""
        ...


class _Open(NamedTuple):
    """A batch waiting for replicas, and where its replies go."""

    batch: QuorumRound
    slots: Slots


class Coordinator:
    """Runs quorum rounds. ``config`` is the node's ``NodeConfig``."""

    def __init__(self, io: NodeIO, life: Lifecycle, clock: HybridClock, config: Any, flush_ops: int) -> None:
        self.io = io
        self.life = life
        self.clock = clock
        self.config = config
        self.max_skew_s: float = config.max_clock_skew_s
        self.refusals = RefusalLog(logger, io.node_id, io.trace)
        self.open: dict[int, _Open] = {}
        #: Replica requests to peers (actors.cluster.replica_flow): per peer the current turn's
        #: outbox (sent at the turn's end), each request's route by req, the values in flight.
        self.requests = ReplicaRequests(io.send, io.next_id, self.open.__contains__, flush_ops)
        #: Replication latency per replica (its node id, this node's own store too): from
        #: accepting a writing batch to that replica's answer (applied) arriving here.
        self.replication: dict[str, Histogram] = {}
        self.counters = collections.Counter(
            {
                "read_repairs": 0,
                "unavailable": 0,
                "timeouts": 0,
                "hints_written": 0,
                "restamps": 0,
                "replies_from_wrong_peer": 0,
                "versions_refused": 0,
                # replica response parts refused: out of order (one was lost) or out of range
                "replica_parts_refused": 0,
            }
        )

    # --- planning -----------------------------------------------------------------

    def begin(self) -> QuorumRound:
        return QuorumRound(self.io.next_id(), self.io.now())

    def add(self, qround: QuorumRound, slot: int, request: Any, wall: float, write: bool) -> Reply | None:
        """Plan data request ``request`` (``write``: of a writing kind, as the caller's
        :func:`~actors.protocol.kinds.route_of` said) into ``qround`` at ``slot``; its
        reply when it is decided at once (``unavailable``; an mget or mset of no keys),
        else None."""
        config = self.config
        level = request.consistency or (config.write_consistency if write else config.read_consistency)
        qround.writes |= write
        if not write:
            version = None
        elif type(request) is Set:
            # A run of plain sets of distinct keys shares one version, so each replica gets
            # the run as one item-by-item write (task_wire.wire_ops); a repeated key needs a
            # newer version and starts a new run.
            key = request.key
            run_keys = qround.run_keys
            if qround.run_version is None or key in run_keys:
                run_keys = qround.run_keys = set()
                qround.run_version = self.clock.tick(wall)
            run_keys.add(key)
            # A set is never decided at once unless it is unavailable (it has one task).
            error = qround.plan_set(slot, request, self.life.view, level, wall, qround.run_version)
            if error is not None:
                self.counters["unavailable"] += 1
            return error
        else:
            version, qround.run_version = self.clock.tick(wall), None
        error = qround.plan(slot, request, self.life.view, level, wall, version, config.tombstone_ttl_s)
        if error is not None:
            self.counters["unavailable"] += 1
            return error
        if qround.slot_done(slot):
            return qround.reply(slot, wall)
        return None

    def send_share(self, qround: QuorumRound) -> None:
        """Send this node's share of ``qround`` planned so far to its store now, so a store
        operation planned after it (an ``inspect`` of the key) sees it applied."""
        mine = qround.outgoing.pop(self.io.node_id, None)
        if mine:
            self._send_tasks(qround, {self.io.node_id: mine})

    def start(self, qround: QuorumRound, slots: Slots) -> None:
        """Send ``qround``'s ops and wait for answers (up to the request timeout)."""
        if qround.hints:
            self.hint(tuple(qround.hints))
        if not qround.tasks:
            return
        io = self.io
        if io.tracing:
            for task in qround.tasks:
                if task.write:
                    io.trace("write", key=task.key, version=list(task.op.version), replicas=list(task.sent_to))
        entry = self.open[qround.batch_id] = _Open(qround, slots)
        self._send_tasks(qround, qround.outgoing)
        qround.outgoing = {}
        qround.timer = io.set_timer(self.config.request_timeout_s, lambda: self._on_timeout(entry))

    def run(self, request: Any, slots: Slots) -> Reply | None:
        """Coordinate one request answering into ``slots`` (slot 0); its reply when it is
        decided at once, else None (``slots`` is filled and settled later)."""
        qround = self.begin()
        reply = self.add(qround, 0, request, self.io.wall(), is_write(request))
        self.start(qround, slots)
        return reply

    def _send_tasks(self, qround: QuorumRound, outgoing: dict[str, list[int]]) -> None:
        """One store call for this node's share, one ReplicaRequest per peer."""
        me = self.io.node_id
        addresses = self.life.view.addresses
        tasks = qround.tasks
        last: list[int] | None = None
        for target, planned in outgoing.items():
            # Owners of the same keys get the same ops (every owner, with as many replicas
            # as nodes): built once and shared (ops are read-only once built).
            if planned != last:
                attempts, wire = wire_ops(planned, tasks)
                last = planned
            if target == me:
                self.io.ask_store(tuple(enumerate(wire)), self._local_results(qround.batch_id, attempts))
            else:
                addr = addresses.get(target)
                if addr is not None:
                    self.requests.add(addr, target, qround.batch_id, attempts, wire)

    def _local_results(self, batch_id: int, attempts: list[TaskRefs]) -> Any:
        """The continuation of this node's share of quorum round ``batch_id``."""

        def answer(message: StoreAnswer) -> None:
            entry = self.open.get(batch_id)
            if entry is not None:
                self._on_task_results(entry, self.io.node_id, attempts, [r for _, r in message.results])

        return answer

    # --- answers ------------------------------------------------------------------

    def on_replica_response(self, env: FromPeer, msg: ReplicaResponse) -> None:
        """A replica's answer, or one part of it (``ack``: acknowledge it, so the replica
        sends its next part; see actors.cluster.replica_flow)."""
        requests = self.requests
        route = requests.route(msg.req)
        src = env.src
        if route is not None and src != route.target:  # ids are guessable: only the node we asked may answer
            self.wrong_peer("ReplicaResponse", src, route.target)
            return
        if msg.ack:
            self.io.send(env.addr, ReplicaAck(msg.req, msg.start))
        if route is None:
            return
        results, (refused, furthest) = bound_results(msg.results, limit := limit_ms(self.io.wall(), self.max_skew_s))
        if refused:  # an answer stamped beyond the clock bound is that replica's refusal
            self.counters["versions_refused"] += refused
            self.refusals.note(src, "replica_response", refused, furthest - limit)
            msg = ReplicaResponse(msg.req, results, msg.start, msg.ack)
        if not requests.fits(route, msg):
            # Out of order (a part was lost: nothing after it can be placed) or answering
            # ops the request did not carry: the request's batches time out instead.
            self.counters["replica_parts_refused"] += 1
            logger.warning(
                "%s: refused a replica_response part from %s: ops %d-%d of request %d, which had %d and %d answered",
                self.io.node_id, src, msg.start, msg.start + len(msg.results), msg.req, route.total, route.answered,
            )
            requests.done(msg.req, route)
            return
        open_ = self.open
        for batch_id, attempts, results in route.take(msg.results):  # one segment per quorum round answered
            entry = open_.get(batch_id)
            if entry is not None:
                self._on_task_results(entry, src, attempts, results)
        if route.answered == route.total:
            requests.done(msg.req, route)

    def wrong_peer(self, kind: str, src: str, expected: str) -> None:
        """A reply carrying the id of a request sent to another node: ignored, counted."""
        self.counters["replies_from_wrong_peer"] += 1
        logger.debug("%s: ignored a %s from %s to a request sent to %s", self.io.node_id, kind, src, expected)

    def _on_task_results(self, entry: _Open, source: str, attempts: Sequence[TaskRefs], results: Sequence[Any]) -> None:
        """``source``'s answers ``results`` to ops answering ``attempts`` (see
        :meth:`QuorumRound.on_results`): fill the slots they decide."""
        qround, slots = entry
        if qround.writes:
            histogram = self.replication.get(source)
            if histogram is None:
                histogram = self.replication[source] = Histogram()
            histogram.observe(self.io.now() - qround.started)
        wall = self.io.wall()
        touched = False
        replies = slots.replies
        states = qround.slots
        for task in qround.on_results(source, attempts, results):
            state = states[task.slot]
            if not task.write and task.needed > 1 and state.error is None:
                self._read_repair(qround.repairs(task))
            if (state.remaining == 0 or state.error is not None) and replies[task.slot] is None:  # slot_done
                try:
                    reply = qround.reply(task.slot, wall)
                except Exception as exc:
                    reply = self.io.request_failed("answering", slots.requests[task.slot], exc)
                slots.fill(task.slot, reply)
                touched = True
        if touched:
            slots.settle()
        if qround.conflicts:
            self._restamp(qround)
        if qround.finished():
            self._close(qround)

    def _restamp(self, qround: QuorumRound) -> None:
        """Writes a replica refused as older than what it holds: stamp above it, send again."""
        wall = self.io.wall()
        outgoing: dict[str, list[int]] = {}
        for index in qround.conflicts:
            task = qround.tasks[index]
            if task.conflict is None:
                continue
            if task.attempt >= MAX_RESTAMPS:
                # Concurrent writers keep overtaking each other: let last-write-wins decide.
                task.conflict = None
                continue
            if self.clock.observe(task.conflict, wall) is None:
                # Beyond the clock bound (only this node's own store can answer so: peers'
                # answers were bounded on arrival): stamping above it is refused, LWW decides.
                task.conflict = None
                continue
            task.restamp(self.clock.tick(wall))
            self.counters["restamps"] += 1
            if self.io.tracing:
                self.io.trace("write", key=task.key, version=list(task.op.version), replicas=list(task.sent_to))
            for target in task.sent_to:
                outgoing.setdefault(target, []).append(index)
        qround.conflicts = {}
        self._send_tasks(qround, outgoing)

    def _read_repair(self, repairs: list[tuple[str, Record]]) -> None:
        """Send the newest record to replicas that answered older: nobody waits for it."""
        io = self.io
        me = io.node_id
        for source, record in repairs:
            self.counters["read_repairs"] += 1
            io.trace("read_repair", key=record.key, replica=source)
            if source == me:
                io.ask_store(((0, Apply((record,))),), None)
            else:
                addr = self.life.view.addresses.get(source)
                if addr is not None:
                    io.send(addr, ReplicaRequest(0, (Apply((record,)),), reply=False))

    # --- the end of a batch ---------------------------------------------------------

    def _on_timeout(self, entry: _Open) -> None:
        qround, slots = entry
        try:
            failed = qround.expire()
            for slot in failed:
                self.counters["timeouts"] += 1
                slots.fill(slot, qround.slots[slot].error)  # type: ignore[arg-type]
            self.hint(tuple(qround.unacked()))
        except Exception as exc:
            doing, error = "timing out", exc
        else:
            # Past the timeout every slot of the batch has its answer, even one whose
            # answer raised earlier (a slot done but never filled would otherwise wait forever).
            doing, error = "answering", _Unanswered()
        finally:
            qround.timer = None
            self._close(qround)
        for slot in qround.slots:
            if slots.replies[slot] is None:
                slots.fill(slot, self.io.request_failed(doing, slots.requests[slot], error))
        slots.settle()

    def _close(self, qround: QuorumRound) -> None:
        if qround.timer is not None:
            qround.timer.cancel()
            qround.timer = None
        self.open.pop(qround.batch_id, None)

    def hint(self, items: tuple[tuple[str, Record], ...]) -> None:
        replicator = self.life.replicator
        if items and replicator is not None:
            self.counters["hints_written"] += len(items)
            replicator.tell(HintRecords(items))

    def on_heartbeat(self) -> None:
        self.requests.forget_lost()


class _Unanswered(Exception):
    """A slot of a quorum round was still unanswered at the request timeout."""

    def __init__(self) -> None:
        super().__init__("no answer was recorded for this request by the request timeout")
