"""Coordinating one client batch across a key's owners: plain objects, no actor.

:class:`~actors.cluster.coordinator.Coordinator` feeds a :class:`QuorumRound` replica results
and timeouts; the batch answers which slots are decided and what to send next (read
repairs, hints). Rules:

- **writes** go to every owner of the key (plus pending owners during a leave) and are
  acknowledged after ``needed`` acks. If fewer owners are reachable than needed, the
  request fails ``unavailable`` at once and *nothing is sent anywhere* (definite). If
  acks are still missing at the request timeout it fails ``timeout`` (indefinite: some
  owners may have applied it). Owners known down get a hint instead of a send, and so
  does every owner that had not acked when the timeout fired.
- **reads** at ``one`` ask one reachable owner that serves reads (this node when it is
  one, else the first in placement order); at ``quorum``/``all`` they ask every such
  owner and answer from the first ``needed`` replies (so an owner that died a moment
  ago, not yet detected, costs nothing), returning the newest version, tombstones
  included (a newer delete beats an older value). Replicas among those replies that
  answered something older get the newest record back (read repair).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from actors.protocol.consistency import required_acks
from actors.protocol.errors import ErrorCode
from actors.cluster.membership import ClusterView
from actors.protocol.messages import Ack, Delete, ErrorReply, Get, MGet, MSet, Reply, Request, Set, Ttl, Value, Values
from actors.protocol.internal import ReadRecord, RecordReply, WriteRecord
from actors.protocol.replica_ops import ItemResults, Remove, Write
from actors.store.rmw import plan_update, visible
from actors.store.coll_ops import wrong_type
from actors.store.plan import string_value
from actors.protocol.collection import Coll, coll_kind, merge_records
from actors.protocol.replica_ops import Fetch
from actors.store.partitions import partition_of
from actors.protocol.record import Record
from actors.protocol.version import Version

__all__ = ["QuorumRound", "KeyTask", "newest"]


def newest(records: list[Record | None]) -> Record | None:
    """The newest record, or where a hash or set is among them the join of them all
    (replicas may each hold fields the others miss: :mod:`actors.protocol.collection`)."""
    best: Record | None = None
    for record in records:
        if record is not None and (best is None or record.version > best.version):
            best = record
    if best is not None and any(r is not None and type(r.value) is Coll for r in records):
        merged: Record | None = None
        for record in records:
            merged = merge_records(merged, record)
        return merged
    return best


#: The answers of a write task: none (reads keep theirs; writes count acks). Read-only.
_NO_RESULTS: Mapping[str, Record | None] = MappingProxyType({})


class KeyTask:
    """One key of one request at its replicas."""

    __slots__ = (
        "acks",
        "attempt",
        "conflict",
        "deleted",
        "done",
        "key",
        "needed",
        "op",
        "refusals",
        "results",
        "sent_to",
        "slot",
        "write",
    )

    def __init__(self, slot: int, key: str, write: bool, needed: int, op: Any) -> None:
        self.slot = slot
        self.key = key
        self.write = write
        self.needed = needed
        self.op = op
        self.sent_to: tuple[str, ...] = ()
        self.acks: list[str] = []
        #: A read's answers by replica (a write has none: it shares one empty mapping).
        self.results: Mapping[str, Record | None] = _NO_RESULTS if write else {}
        self.deleted = False
        self.done = False
        #: Replicas that refused (rare: a tuple, grown when one does, no list per task).
        self.refusals: tuple[str, ...] = ()
        #: Re-stamps after a replica held a newer version (see QuorumRound.restamp).
        self.attempt = 0
        self.conflict: Version | None = None

    def restamp(self, version: Version) -> None:
        """Give the write a new version (above a conflict) and forget acks of the old one."""
        op = self.op
        if type(op) is Write:
            self.op = Write(op.items, version, op.replicas)
        else:
            self.op = Remove(op.keys, version, op.purge_at)
        self.acks = []
        self.conflict = None
        self.attempt += 1

    @property
    def record(self) -> Record | None:
        """For writes: the record hints carry to owners that miss it (built when needed)."""
        op = self.op
        if type(op) is Write:
            key, value, deadline = op.items[0]
            return Record(key, value, deadline, op.version)
        if type(op) is Remove:
            return Record(op.keys[0], None, None, op.version, op.purge_at)
        return None


class SoleTask(KeyTask):
    """A slot's only task that is also its :class:`SlotState` (a plain ``Set``: one key):
    one object per set instead of a task, a slot state and its list of tasks."""

    __slots__ = ("error", "remaining", "request")

    def __init__(self, slot: int, key: str, needed: int, op: Any, request: Request) -> None:
        super().__init__(slot, key, True, needed, op)
        self.request = request
        self.remaining = 1
        self.error: ErrorReply | None = None

    @property
    def tasks(self) -> tuple[KeyTask, ...]:
        """As :attr:`SlotState.tasks`: this task alone."""
        return (self,)


class SlotState:
    __slots__ = ("error", "remaining", "request", "tasks")

    def __init__(self, request: Request, tasks: list[KeyTask]) -> None:
        self.request = request
        self.tasks = tasks
        self.remaining = len(tasks)
        self.error: ErrorReply | None = None


class QuorumRound:
    """The cluster-side state of one coordinated batch (its replies go to a
    :class:`~actors.cluster.coordinator.Slots`)."""

    def __init__(self, batch_id: int, started: float = 0.0) -> None:
        self.batch_id = batch_id
        #: When the coordinator accepted the batch (its clock), and whether it writes:
        #: each replica's answer to a writing round is one replication-latency observation.
        self.started = started
        self.writes = False
        self.tasks: list[KeyTask] = []
        #: slot -> its state: a SlotState, or a plain set's SoleTask (the same fields).
        self.slots: dict[int, SlotState | SoleTask] = {}
        #: target node id -> indices of the tasks whose ops it gets (each task's ``op``)
        self.outgoing: dict[str, list[int]] = {}
        #: (target, record) pairs for owners known down when the write was sent.
        self.hints: list[tuple[str, Record]] = []
        self.timer: Any = None
        #: Indices of write tasks a replica refused as older than what it holds.
        self.conflicts: dict[int, None] = {}
        #: The version of the current run of plain sets, and their keys (see
        #: ``actors.cluster.coordinator.Coordinator.add``).
        self.run_version: Version | None = None
        self.run_keys: set[str] = set()

    # --- planning -----------------------------------------------------------------

    def plan(
        self,
        slot: int,
        request: Request,
        view: ClusterView,
        level: str,
        wall: float,
        version: Version | None,
        tombstone_ttl: float,
    ) -> ErrorReply | None:
        """Add one data request; an ErrorReply (unavailable) when it cannot be attempted."""
        t = type(request)
        if t is Get or t is MGet or t is Ttl or t is ReadRecord:
            keys = request.keys if t is MGet else (request.key,)
            routes = []
            for key in dict.fromkeys(keys):
                partition = partition_of(key, view.placement.partitions)
                owners = view.read_owners(partition)
                needed = required_acks(level, len(owners))
                readers = [m for m in owners if view.serves_reads(m)]
                if view.self_id in readers:
                    readers.remove(view.self_id)
                    readers.insert(0, view.self_id)
                if len(readers) < needed or needed == 0:
                    return _unavailable(request, f"{len(readers)} of {needed} owners of {key!r} can serve reads")
                routes.append((key, readers[:1] if needed == 1 else readers, needed))
            tasks = []
            for key, readers, needed in routes:
                task = KeyTask(slot, key, False, needed, Fetch((key,)))
                tasks.append(task)
                self._send(task, readers)
            self.slots[slot] = SlotState(request, tasks)
            return None

        assert version is not None
        if t is Set:
            return self.plan_set(slot, request, view, level, wall, version)
        if t is MSet:
            deadline = wall + request.ttl if request.ttl else None
            items = [(key, value, deadline) for key, value in request.entries]
        elif t is WriteRecord:
            items = [(request.key, request.value, request.deadline)]
        else:
            assert t is Delete
            items = [(request.key, None, None)]
        purge_at = wall + tombstone_ttl
        routes = []
        for key, value, deadline in items:
            live, down, needed, owners = view.key_write_plan(key, level)
            if len(live) < needed or needed == 0:
                return _unavailable(request, f"{len(live)} of {needed} owners of {key!r} are reachable")
            routes.append((key, value, deadline, live, down, needed, owners))
        tasks = []
        removing = t is Delete or (t is WriteRecord and request.delete)
        for key, value, deadline, live, down, needed, owners in routes:
            if removing:
                op: Any = Remove((key,), version, purge_at)
            else:
                op = Write(((key, value, deadline),), version, owners)
            task = KeyTask(slot, key, True, needed, op)
            tasks.append(task)
            self._send(task, live)
            if down:
                record = task.record
                self.hints.extend((m, record) for m in down)
        self.slots[slot] = SlotState(request, tasks)
        return None

    def plan_set(self, slot: int, request: Set, view: ClusterView, level: str, wall: float, version: Version) -> ErrorReply | None:
        """:meth:`plan` of a plain ``Set`` (the most common write), without the general
        path's lists: one task, one ``Write`` of one item."""
        key = request.key
        live, down, needed, owners = view.key_write_plan(key, level)
        if len(live) < needed or needed == 0:
            return _unavailable(request, f"{len(live)} of {needed} owners of {key!r} are reachable")
        ttl = request.ttl
        op = Write(((key, request.value, wall + ttl if ttl else None),), version, owners)
        task = SoleTask(slot, key, needed, op, request)
        # _send, inline: the task's index and op to each live owner (``live`` is a tuple).
        tasks = self.tasks
        entry = len(tasks)
        tasks.append(task)
        task.sent_to = live
        outgoing = self.outgoing
        for target in live:
            queued = outgoing.get(target)
            if queued is None:
                outgoing[target] = [entry]
            else:
                queued.append(entry)
        if down:
            record = task.record
            self.hints.extend((m, record) for m in down)
        self.slots[slot] = task  # its own slot state
        return None

    def _send(self, task: KeyTask, targets: Sequence[str]) -> None:
        index = len(self.tasks)
        self.tasks.append(task)
        task.sent_to = tuple(targets)
        outgoing = self.outgoing
        entry = index
        for target in targets:
            queued = outgoing.get(target)
            if queued is None:
                outgoing[target] = [entry]
            else:
                queued.append(entry)

    # --- results ------------------------------------------------------------------

    def on_result(self, index: int, source: str, result: Any, attempt: int = 0) -> KeyTask | None:
        """Record one replica's answer; returns the task if this answer completed it.

        A write a replica refused because it holds a newer version (a ``Version`` result)
        is not an ack: the task is queued in ``conflicts`` for the node to re-stamp above
        that version and send again, so a write that starts after another one's ack wins
        even when the coordinators' clocks disagree.
        """
        task = self.tasks[index]
        if attempt != task.attempt:
            return None  # an answer about a version this write no longer has
        if type(result) is ErrorReply:  # the replica refused (out of memory, clock bound)
            return self._refused(task, source, result)
        if task.write:
            if type(result) is Version:
                if task.done:
                    # Acked already: by quorum intersection the newer version is a later
                    # (or concurrent) write, which rightly wins. Re-stamping would undo it.
                    # That replica has heard us and needs no hint: count it as answered, so
                    # the batch can finish now instead of timing out into useless hints.
                    if source not in task.acks:
                        task.acks.append(source)
                    return None
                if task.conflict is None or result > task.conflict:
                    task.conflict = result
                self.conflicts[index] = None
                return None
            if source in task.acks:
                return None
            task.acks.append(source)
            if type(task.op) is Remove and result:
                task.deleted = True
            complete = len(task.acks) >= task.needed
        else:
            results = task.results
            if source in results:
                return None
            results[source] = result[0] if result else None  # type: ignore[index]  # a read's dict
            complete = len(results) >= task.needed
        if complete and not task.done:
            task.done = True
            slot = self.slots[task.slot]
            slot.remaining -= 1
            return task
        return None

    def on_results(self, source: str, attempts: Sequence[Any], results: Sequence[Any]) -> list[KeyTask]:
        """:meth:`on_result` for one answer of ``source`` to a run of ops: ``attempts[i]``
        (a :data:`~actors.cluster.task_wire.TaskRefs`) says which tasks ``results[i]``
        answers. Returns the tasks these answers completed, in order.

        The same rules as :meth:`on_result`, answer by answer; a plain ack of a write
        (an int, at the task's current attempt) is counted here inline: per answer, that
        saves the per-key result tuples and a method call (most answers are such acks)."""
        done: list[KeyTask] = []
        tasks = self.tasks
        slots = self.slots
        on_result = self.on_result
        for refs, result in zip(attempts, results):
            if type(refs[0]) is tuple:  # the tasks of one item-by-item write
                pairs: Any = zip(refs, result) if type(result) is ItemResults else ((ref, result) for ref in refs)
            else:
                pairs = ((refs, result),)
            for (index, attempt), r in pairs:
                task = tasks[index]
                if type(r) is int and task.write and attempt == task.attempt and type(task.op) is Write:
                    acks = task.acks
                    if source in acks:
                        continue
                    acks.append(source)
                    if len(acks) >= task.needed and not task.done:
                        task.done = True
                        slots[task.slot].remaining -= 1
                        done.append(task)
                    continue
                task = on_result(index, source, r, attempt)
                if task is not None:
                    done.append(task)
        return done

    def _refused(self, task: KeyTask, source: str, error: ErrorReply) -> KeyTask | None:
        if source in task.acks or source in task.refusals or source in task.results:
            return None
        task.refusals = (*task.refusals, source)
        state = self.slots[task.slot]
        if task.done or state.error is not None or len(task.sent_to) - len(task.refusals) >= task.needed:
            return None
        task.done = True
        state.remaining -= 1
        if task.write:
            applied = "; no owner stored it" if not task.acks else f"; {len(task.acks)} owner(s) stored it"
        else:
            applied = ""
        state.error = ErrorReply(error.code, f"{error.message} (refused by {len(task.refusals)} owner(s){applied})", state.request.rid)
        return task

    def slot_done(self, slot: int) -> bool:
        state = self.slots[slot]
        return state.remaining == 0 or state.error is not None

    def finished(self) -> bool:
        """Every task heard from every replica it was sent to (nothing left to wait for)."""
        if self.conflicts:
            return False
        for task in self.tasks:
            heard = (len(task.acks) if task.write else len(task.results)) + len(task.refusals)
            if heard < len(task.sent_to):
                return False
        return True

    def reply(self, slot: int, wall: float) -> Reply:
        state = self.slots[slot]
        request = state.request
        rid = request.rid
        if state.error is not None:
            return state.error
        t = type(request)
        if t is Set:  # the most common answer
            return Ack(rid)
        if t is Get:
            value, found = _value(newest(list(state.tasks[0].results.values())), wall)
            if type(value) is Coll:
                return wrong_type(rid) if coll_kind(value) is not None else Value(None, False, rid)
            return Value(value, found, rid)
        if t is MGet:
            by_key = {task.key: string_value(*_value(newest(list(task.results.values())), wall)) for task in state.tasks}
            return Values(tuple((key, *by_key[key]) for key in request.keys), rid)
        if t is Ttl:
            return plan_update(request, newest(list(state.tasks[0].results.values())), wall)[1]
        if t is ReadRecord:
            return RecordReply(newest(list(state.tasks[0].results.values())), rid)
        if t is Delete:
            return Ack(rid, deleted=state.tasks[0].deleted)
        return Ack(rid)

    def repairs(self, task: KeyTask) -> list[tuple[str, Record]]:
        """Replicas of a completed read that answered older than the newest, with the fix."""
        best = newest(list(task.results.values()))
        if best is None:
            return []
        if type(best.value) is Coll:  # a join: every replica that holds less than it
            return [(source, best) for source, record in task.results.items() if record != best]
        return [
            (source, best)
            for source, record in task.results.items()
            if record is None or record.version < best.version
        ]

    def expire(self) -> list[int]:
        """The request timeout fired: fail every undecided slot; returns their numbers."""
        failed = []
        for slot, state in self.slots.items():
            if state.remaining and state.error is None:
                kind = "write" if state.tasks[0].write else "read"
                state.error = ErrorReply(
                    ErrorCode.TIMEOUT,
                    f"{kind} timed out waiting for replicas"
                    + ("; it may have been applied" if kind == "write" else ""),
                    state.request.rid,
                )
                failed.append(slot)
        return failed

    def unacked(self) -> list[tuple[str, Record]]:
        """(owner, record) for every write an owner had not acked: hints at the timeout."""
        out = []
        for task in self.tasks:
            if task.write and task.record is not None:
                out.extend((m, task.record) for m in task.sent_to if m not in task.acks and m not in task.refusals)
        return out


def _value(record: Record | None, wall: float) -> tuple[Any, bool]:
    """``(value, found)`` as a client sees ``record`` at ``wall``."""
    live = visible(record, wall)
    return (None, False) if live is None else (live.value, True)


def _unavailable(request: Request, why: str) -> ErrorReply:
    return ErrorReply(ErrorCode.UNAVAILABLE, f"unavailable: {why}; nothing was applied", request.rid)
