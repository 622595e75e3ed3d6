"""The ops one replica gets for a quorum round, and its answers back to the batch's tasks.

A quorum round plans one :class:`~actors.cluster.coordination.KeyTask` per key and
request; what travels to a replica is fewer, bigger ops. Each op sent carries the
:data:`TaskRef` (or, for an item-by-item write, the tuple of them) of the tasks it
answers, so its result goes back to exactly those tasks, at the attempt (re-stamp) it
was sent for: an answer about a version a write no longer has is ignored by the batch.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from actors.protocol.replica_ops import ItemResults, Write

__all__ = ["TaskRef", "TaskRefs", "task_results", "wire_ops"]


#: Which task of a quorum round an op answers, and at which of its attempts:
#: ``(task index, attempt)``, always unpacked by name. A plain tuple, not a NamedTuple:
#: three are made per quorum write, and a NamedTuple's Python-level constructor cost the
#: cluster path measurable CPU (bench/ab_nodes.py).
TaskRef: TypeAlias = tuple[int, int]
#: What one op answers: one task, or (an item-by-item write) a tuple of them.
TaskRefs: TypeAlias = TaskRef | tuple[TaskRef, ...]


def wire_ops(planned: list[int], tasks: list[Any]) -> tuple[list[TaskRefs], list[Any]]:
    """The ops for one target (``planned``: indices of the tasks whose ``op`` it gets, in
    order), and for each op the :data:`TaskRefs` it answers.

    Consecutive single-key writes sharing one version object (a run of plain sets, or an
    mset's keys) become one ``Write`` with ``each`` per owner set: one op and one wire item
    for many keys, yet one answer per key, so each key is still acked, refused or
    re-stamped on its own. Such an op's entry is a plain tuple of :class:`TaskRef`.
    """
    attempts: list[TaskRefs] = []
    wire: list[Any] = []
    run: list[int] = []  # task indices of the current run

    def close() -> None:
        # One op per owner set: owners come in each partition's own order. The keys of a
        # run are distinct (the coordinator starts a new version at a repeated key; an
        # mset's repeated key has one owner set), so regrouping them reorders nothing
        # that matters.
        by_owners: dict[tuple[str, ...], list[int]] = {}
        for index in run:
            replicas = tasks[index].op.replicas
            group = by_owners.get(replicas)
            if group is None:
                by_owners[replicas] = [index]
            else:
                group.append(index)
        for owners, group in by_owners.items():
            if len(group) == 1:
                index = group[0]
                task = tasks[index]
                attempts.append((index, task.attempt))
                wire.append(task.op)
            else:
                members = [tasks[index] for index in group]
                attempts.append(tuple((index, task.attempt) for index, task in zip(group, members)))
                wire.append(Write(tuple(task.op.items[0] for task in members), members[0].op.version, owners, True))
        run.clear()

    run_version = None
    for index in planned:
        op = tasks[index].op
        if type(op) is Write and len(op.items) == 1 and not op.each:
            if run and op.version is not run_version:
                close()
            if not run:
                run_version = op.version
            run.append(index)
            continue
        close()
        attempts.append((index, tasks[index].attempt))
        wire.append(op)
    close()
    return attempts, wire


def task_results(attempts: list[TaskRefs], results: Any) -> list[tuple[int, int, Any]]:
    """``(task index, attempt, result)`` for each task, from one result per op: an
    item-by-item write's ``ItemResults`` answer its tasks one each; any other answer to
    it (an error) answers all of them."""
    out: list[tuple[int, int, Any]] = []
    for entry, result in zip(attempts, results):
        first = entry[0]
        if type(first) is tuple:  # the tasks of one item-by-item write
            if type(result) is ItemResults:
                out.extend((index, attempt, r) for (index, attempt), r in zip(entry, result))
            else:
                out.extend((index, attempt, result) for index, attempt in entry)
        else:
            index, attempt = entry
            out.append((index, attempt, result))
    return out
