"""Read-modify-write requests in a cluster: run at the key's coordinator, or forwarded to it.

A plain object the ``Node`` actor drives through :class:`~actors.cluster.node_io.NodeIO`.
A read-modify-write (conditional ``set``, ``expire``/``persist``, ``incr``, the string
operations of :mod:`actors.protocol.string_ops`) runs at its
key's *coordinator*: the first owner, in placement order, that serves reads. Any other
node forwards it there (``Forward``) and relays the answer (``ForwardReply``, accepted
only from the node it was forwarded to), or answers ``timeout`` after twice the request
timeout (indefinite: it may have been applied).

At the coordinator a job is two phases run through the quorum coordinator
(:class:`~actors.cluster.coordinator.Coordinator`): a ``ReadRecord`` at the request's
consistency (default quorum), then, if :func:`~actors.store.rmw.plan_update` says so, a
``WriteRecord`` of the new value. Each phase answers into a one-slot :class:`_Phase`,
which continues the job directly: no connection of its own, no message to itself.

Invariants: jobs of one key run one at a time, in arrival order (a key's queue), so no
two read-modify-writes of a key interleave their read and write; every job ends with
exactly one answer, also when a phase raises; a phase decided at once (``unavailable``)
continues in a loop, never by recursion, so a long queue cannot overflow the stack.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from typing import Any, Callable, NamedTuple

from actors.cluster.coordinator import Coordinator
from actors.cluster.lifecycle import Lifecycle
from actors.cluster.node_io import NodeIO
from actors.cluster.value_limit import too_large, written_bytes
from actors.kernel.failures import log_failure
from actors.kernel.peer import FromPeer
from actors.kernel.scheduler import Cancellable
from actors.protocol.codec import decode_reply, decode_request, encode_reply, encode_request
from actors.protocol.errors import CacheError, ErrorCode
from actors.protocol.messages import ErrorReply, Reply
from actors.protocol.internal import ReadRecord, RecordReply, WriteRecord
from actors.protocol.peer_messages import Forward, ForwardReply
from actors.protocol.version import HybridClock
from actors.store.partitions import partition_of
from actors.cluster.txn_plan import plan_transaction
from actors.protocol.kinds import is_data_request, is_update, is_write, wire_name
from actors.protocol.string_ops import Rename
from actors.protocol.txn_messages import Multi, MultiReply, Scan
from actors.store.rmw import DELETE, plan_update

__all__ = ["RmwCoordinator"]

logger = logging.getLogger("actorcache.node")

Done = Callable[[Reply], None]


class _Forwarded(NamedTuple):
    """A request forwarded to its key's coordinator, waiting for the answer."""

    request: Any
    done: Done
    timer: Cancellable
    coordinator: str


class _Job:
    """One read-modify-write at this node, its key's coordinator."""

    __slots__ = ("done", "final", "request", "writing")

    def __init__(self, request: Any, done: Done) -> None:
        self.request = request
        self.done = done
        #: The reply once the write is acknowledged (plan_update's answer).
        self.final: Reply | None = None
        self.writing = False


class _Phase:
    """The one slot a job's read or write answers into: continues the job when filled."""

    __slots__ = ("job", "owner", "replies", "requests", "resumed")

    def __init__(self, owner: RmwCoordinator, job: _Job, requests: tuple[Any, ...]) -> None:
        self.owner = owner
        self.job = job
        self.requests = requests
        self.replies: list[Reply | None] = [None] * len(requests)
        self.resumed = False

    def fill(self, slot: int, reply: Reply) -> None:
        self.replies[slot] = reply

    def take(self) -> Any:
        """The phase's reply if every slot is answered and nobody took it yet, else None:
        the one reply of a one-request phase, the tuple of replies of a longer one."""
        if self.resumed or any(reply is None for reply in self.replies):
            return None
        self.resumed = True
        return self.replies[0] if len(self.replies) == 1 else tuple(self.replies)

    def settle(self) -> None:
        reply = self.take()  # once, though a batch may settle again
        if reply is not None:
            self.owner._resume(self.job, reply)


class RmwCoordinator:
    """Read-modify-writes of this node's clients and of peers that forward them."""

    def __init__(self, io: NodeIO, life: Lifecycle, coordinator: Coordinator, clock: HybridClock, config: Any) -> None:
        self.io = io
        self.life = life
        self.coordinator = coordinator
        self.clock = clock
        self.config = config
        #: Jobs waiting per partition (a transaction may touch several keys of one).
        self._queues: dict[int, collections.deque[_Job]] = {}
        self._forwarded: dict[int, _Forwarded] = {}
        #: Serves a scan step a peer forwarded (actors.cluster.scan_coordinator); set by the node.
        self.serve_scan: Callable[[Any, Done], None] | None = None

    # --- entry points ---------------------------------------------------------------

    def update(self, request: Any, done: Done) -> None:
        """Run ``request`` at the key's coordinator: here, or forwarded to it."""
        if type(request) is Rename:
            # Two keys: a one-request transaction (their partition's coordinator, or CROSSSLOT).
            rid = request.rid
            self.update(Multi((request,), rid), lambda reply: done(_only_reply(reply, rid)))
            return
        view = self.life.view
        if type(request) is Multi:
            refusal = self._multi_refusal(request)
            if refusal is not None:
                done(refusal)
                return
            if request.key is None:  # touches no key: nothing to coordinate
                done(MultiReply(tuple(ErrorReply(ErrorCode.BAD_REQUEST, "not a data request", None) for _ in request.requests), request.rid))
                return
        owners = view.placement.owners(partition_of(request.key, self.config.partitions))
        coordinator = next((m for m in owners if view.serves_reads(m)), None)
        if coordinator is None:
            self.coordinator.counters["unavailable"] += 1
            done(ErrorReply(ErrorCode.UNAVAILABLE, f"unavailable: no owner of {request.key!r} is reachable; nothing was applied", request.rid))
        elif coordinator == self.io.node_id:
            self._submit(request, done)
        else:
            self.forward(request, coordinator, done)

    def forward(self, request: Any, coordinator: str, done: Done) -> None:
        """Send ``request`` to ``coordinator`` (a member) and relay its answer to ``done``
        (``timeout`` after twice the request timeout)."""
        fid = self.io.next_id()
        timer = self.io.set_timer(2 * self.config.request_timeout_s, lambda: self._forward_timed_out(fid))
        self._forwarded[fid] = _Forwarded(request, done, timer, coordinator)
        self.io.send(self.life.view.addresses[coordinator], Forward(fid, encode_request(request)))

    def _multi_refusal(self, multi: Multi) -> ErrorReply | None:
        """Why a transaction cannot run here: its keys span partitions (CROSSSLOT, as Redis
        Cluster answers), or it holds what a cluster transaction cannot (flush, scan)."""
        partitions = self.config.partitions
        if len({partition_of(key, partitions) for key in multi.keys}) > 1:
            return ErrorReply(ErrorCode.CROSSSLOT, "Keys in request don't hash to the same slot", multi.rid)
        for sub in multi.requests:
            if not is_data_request(sub) and not is_update(sub):
                return ErrorReply(
                    ErrorCode.BAD_REQUEST,
                    f"{wire_name(sub)} inside a transaction is served on a single node only; nothing was applied",
                    multi.rid,
                )
        return None

    def on_forward(self, env: FromPeer, msg: Forward) -> None:
        """A peer forwarded a read-modify-write to us, its key's coordinator."""
        send = self.io.send

        def answer(reply: Reply) -> None:
            send(env.addr, ForwardReply(msg.fid, encode_reply(reply)))

        try:
            request = decode_request(msg.request, self.config.max_value_depth)
        except CacheError as exc:
            answer(ErrorReply(exc.code, exc.message))
            return
        if type(request) is Scan and self.serve_scan is not None:  # one partition's keys, from an owner
            self.serve_scan(request, answer)
            return
        if not is_update(request):
            answer(ErrorReply(ErrorCode.BAD_REQUEST, "only read-modify-write requests are forwarded", request.rid))
            return
        if type(request) is Multi:
            refusal = self._multi_refusal(request)
            if refusal is not None or request.key is None:
                answer(refusal or ErrorReply(ErrorCode.BAD_REQUEST, "a forwarded transaction touches no key", request.rid))
                return
        if self.life.clock_off is not None:  # this node's clock is off its peers': it stamps nothing
            answer(ErrorReply(ErrorCode.UNAVAILABLE, "unavailable: the key's coordinator's clock is off its peers'", request.rid))
            return
        self._submit(request, answer)

    def on_forward_reply(self, src: str, msg: ForwardReply) -> None:
        entry = self._forwarded.get(msg.fid)
        if entry is None:
            return
        if src != entry.coordinator:  # only the coordinator we forwarded to may answer
            self.coordinator.wrong_peer("ForwardReply", src, entry.coordinator)
            return
        del self._forwarded[msg.fid]
        entry.timer.cancel()
        request = entry.request
        try:
            reply = decode_reply(msg.reply, request)
        except Exception:  # CacheError, or a shape decode_reply did not foresee (a peer's bytes)
            reply = ErrorReply(ErrorCode.INTERNAL, "the key's coordinator sent a malformed reply", request.rid)
        entry.done(dataclasses.replace(reply, rid=request.rid))

    def _forward_timed_out(self, fid: int) -> None:
        entry = self._forwarded.pop(fid, None)
        if entry is not None:
            self.coordinator.counters["timeouts"] += 1
            entry.done(ErrorReply(ErrorCode.TIMEOUT, "the key's coordinator did not answer; it may have been applied", entry.request.rid))

    # --- jobs at the coordinator ------------------------------------------------------

    def _submit(self, request: Any, done: Done) -> None:
        """Queue ``request`` behind earlier ones for its key's partition: one job at a time
        per partition, so a transaction's keys are not changed by another job between
        its read and its write."""
        part = partition_of(request.key, self.config.partitions)
        queue = self._queues.setdefault(part, collections.deque())
        queue.append(_Job(request, done))
        if len(queue) == 1:
            self._run_queue(part)

    def _run_queue(self, key: int) -> None:
        """Start the jobs at the head of ``key``'s queue until one waits for replicas.

        A job leaves the queue after its answer is delivered, so a job submitted while
        it is delivered (by whoever ``done`` wakes) queues behind, never starts a second run.
        """
        queue = self._queues[key]
        while queue:
            job = queue[0]
            final = self._advance(job, self._ask(job, *self._reads(job.request)))
            if final is None:
                return  # waiting: _resume goes on
            self._deliver(job, final)
            queue.popleft()
        del self._queues[key]

    def _reads(self, request: Any) -> tuple[Any, ...]:
        """A job's read phase: its key's record (every key's, for a transaction)."""
        if type(request) is Multi:
            return tuple(ReadRecord(key, None, "quorum") for key in request.keys)
        return (ReadRecord(request.key, None, request.consistency or "quorum"),)

    def _ask(self, job: _Job, *requests: Any) -> Any:
        """Run one phase of ``requests`` at once; its reply (a tuple of replies for
        several) if decided at once, else None (the phase resumes the job)."""
        try:
            phase = _Phase(self, job, requests)
            if len(requests) == 1:
                return self.coordinator.run(requests[0], phase)
            coordinator = self.coordinator
            qround = coordinator.begin()
            wall = self.io.wall()
            for slot, request in enumerate(requests):
                reply = coordinator.add(qround, slot, request, wall, is_write(request))
                if reply is not None:
                    phase.fill(slot, reply)
            coordinator.start(qround, phase)
            return phase.take()
        except Exception as exc:
            return self.io.request_failed("planning", job.request, exc)

    def _step(self, job: _Job, reply: Reply | None) -> Reply | None:
        """Go on from a phase's reply: the job's final reply, or None while it waits."""
        while reply is not None:
            if type(job.request) is Multi:
                return self._multi_step(job, reply)
            if type(reply) is ErrorReply:
                return reply
            if job.writing:
                return job.final  # the write was acknowledged
            if type(reply) is not RecordReply:
                raise TypeError(f"a read-modify-write read answered {type(reply).__name__}")
            wall = self.io.wall()
            if reply.record is not None and self.clock.observe(reply.record.version, wall) is None:
                return ErrorReply(ErrorCode.UNAVAILABLE, "unavailable: the key's version is beyond the max clock skew", job.request.rid)
            try:
                write, final = plan_update(job.request, reply.record, wall)
            except Exception as exc:
                return self.io.request_failed("planning", job.request, exc)
            if write is None:
                return final
            request = job.request
            if write is not DELETE and not self.life.view.solo:  # the record must fit a peer frame
                size = written_bytes(None if reply.record is None else reply.record.value, write[0])
                if size > self.config.max_cluster_value_bytes:
                    return too_large(size, self.config.max_cluster_value_bytes, request.rid)
            job.final, job.writing = final, True
            if write is DELETE:
                record = WriteRecord(request.key, None, None, None, request.consistency, delete=True)
            else:
                record = WriteRecord(request.key, write[0], write[1], None, request.consistency)
            reply = self._ask(job, record)
        return None

    def _multi_step(self, job: _Job, replies: Any) -> Reply | None:
        """A transaction's phase answered (``replies``: one per request of the phase):
        after its reads, plan it (:mod:`actors.cluster.txn_plan`) and send its writes;
        after its writes, its reply. A failed read: nothing was written, the error is the
        answer; a failed write: the error, saying the writes may be partly applied."""
        multi = job.request
        if type(replies) is not tuple:
            replies = (replies,)
        failed = next((r for r in replies if type(r) is ErrorReply), None)
        if job.writing:
            if failed is None:
                return job.final
            return ErrorReply(ErrorCode.TIMEOUT, f"the transaction's writes may be partly applied: {failed.message}", multi.rid)
        if failed is not None:
            return failed
        wall = self.io.wall()
        records = {}
        for key, reply in zip(multi.keys, replies):
            record = reply.record
            if record is not None and self.clock.observe(record.version, wall) is None:
                return ErrorReply(ErrorCode.UNAVAILABLE, "unavailable: a key's version is beyond the max clock skew", multi.rid)
            records[key] = record
        writes, final = plan_transaction(
            multi, records, wall, self.clock.tick, self.config.partitions, self.config.tombstone_ttl_s
        )
        if not writes:
            return final
        if not self.life.view.solo:  # the transaction's writes travel together: they must fit a peer frame
            size = sum(written_bytes(_value_of(records.get(w.key)), getattr(w, "value", None)) for w in writes)
            if size > self.config.max_cluster_value_bytes:
                return too_large(size, self.config.max_cluster_value_bytes, multi.rid)
        job.final, job.writing = final, True
        answer = self._ask(job, *writes)
        return None if answer is None else self._multi_step(job, answer)

    def _advance(self, job: _Job, reply: Reply | None) -> Reply | None:
        try:
            return self._step(job, reply)
        except Exception as exc:  # the job must end (and its key's queue move on) whatever raised
            return self.io.request_failed("running", job.request, exc)

    def _resume(self, job: _Job, reply: Reply) -> None:
        """A phase that waited for replicas was answered."""
        final = self._advance(job, reply)
        if final is None:
            return
        key = partition_of(job.request.key, self.config.partitions)
        queue = self._queues[key]
        self._deliver(job, final)
        queue.popleft()
        if queue:
            self._run_queue(key)
        else:
            del self._queues[key]

    def _deliver(self, job: _Job, reply: Reply) -> None:
        try:
            job.done(dataclasses.replace(reply, rid=job.request.rid))
        except Exception as exc:
            log_failure(logger, f"{self.io.node_id} answering {type(job.request).__name__}", exc)


def _value_of(record: Any) -> Any:
    return None if record is None else record.value


def _only_reply(reply: Reply, rid: Any) -> Reply:
    """The reply of a one-request transaction's request (an error of the whole as it is)."""
    if type(reply) is MultiReply and reply.replies:
        return dataclasses.replace(reply.replies[0], rid=rid)
    return reply
