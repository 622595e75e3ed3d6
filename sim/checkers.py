"""Invariant checkers: each reads the history and the settled final state, and returns
violations. Every guarantee ``docs/consistency.md`` claims has one here, and every one
of them is shown able to fail in ``tests/test_sim_checkers.py`` (``strangers``, a
stranger that holds the secret after all, in ``tests/test_sim_peer_auth.py``; the disk's:
a lying fsync for ``lost-writes``, unchecked block checksums for ``corrupt-reads``, in
``tests/test_sim_disk.py``).

``final`` maps each key to ``{owner: Record | None}``: what every owner holds after the
heal-and-settle phase, read locally from each owner (never through a quorum read).
Values are unique per write, so a value names the write that produced it. Keys starting
with ``t`` are the workload's TTL range; TTL checks own them and the others skip them.
Keys starting with ``h`` and ``s`` are its hashes and sets, which ``lost-fields`` owns.
A transaction's requests are ordinary gets and sets in the history (tied by ``Op.txn``),
so every plain-key checker counts them; ``txn-atomicity`` and ``scan-complete`` check
what only transactions and scans promise.

The checkers keep their own reference of the rules they check (which version wins, how
many answers a consistency level needs) instead of importing the node's code: a checker
that shares the checked code's bug cannot see it. ``tests/test_sim_checkers.py`` checks
that the references and the node's code agree on random inputs, so a divergence is caught
there rather than hidden here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from actors.protocol.record import Record
from sim.history import FAIL, OK, History, Op

__all__ = ["CHECKERS", "FLUSH_KEY", "SCAN_KEY", "CheckContext", "Violation", "acks_needed", "fields_of", "run_checkers", "winner"]


@dataclass(frozen=True)
class Violation:
    checker: str
    key: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"checker": self.checker, "key": self.key, "message": self.message}


@dataclass
class CheckContext:
    history: History
    final: dict[str, dict[str, Record | None]]
    replicas: int
    write_default: str
    read_default: str
    #: Largest difference between two nodes' clocks during the run, in seconds.
    skew_bound: float
    #: Whether replicas of every key agreed by the end of the settle phase.
    converged: bool = True
    convergence_s: float | None = None
    #: Nodes without the cluster secret that tried to get in (the ``stranger`` fault), each
    #: running node's member ids at the end, the values the strangers wrote, and how many
    #: messages to or from a stranger the network delivered.
    strangers: frozenset[str] = frozenset()
    members: dict[str, tuple[str, ...]] = field(default_factory=dict)
    forged_values: frozenset[Any] = frozenset()
    stranger_deliveries: int = 0
    #: Intervals of time whose acknowledged writes a disk fault may lose as documented (a
    #: power loss under ``appendfsync everysec``/``no``, a corrupted file moved aside or
    #: cut); with one replica only (:meth:`sim.runner.Runner.disk_risk`). Empty with
    #: ``appendfsync always``: every acknowledged write must survive every crash.
    at_risk: tuple[tuple[float, float], ...] = ()
    #: Running nodes still warming (serving no reads) when the settle phase ended.
    warming: tuple[str, ...] = ()
    #: Nodes down at the end because they refused to start (:attr:`sim.runner.Runner.down`:
    #: a log corrupt before its end stops the load). ``final`` leaves them out: their data
    #: is on their disk, unread. A key none of whose owners answered is not judged lost.
    down: frozenset[str] = frozenset()


def _durable(ctx: CheckContext, op: Op, by: float = math.inf) -> bool:
    """Whether ``op`` still counts at time ``by``: it is not at risk from a fault (an
    interval's end) that came before ``by``. At risk: sent before the fault and
    acknowledged after the interval's start (an ack on its way when the fault hit counts:
    the write was on the disk before it)."""
    done = op.completed if op.completed is not None else math.inf
    return not any(op.invoked <= end and done >= start and end <= by for start, end in ctx.at_risk)


def _end(op: Op) -> float:
    """When an op's effect is certainly over: its completion, or never for indefinite ones."""
    return op.completed if op.outcome == OK and op.completed is not None else math.inf


def _unanswered(ctx: CheckContext, key: str) -> bool:
    """Whether every owner of ``key`` is down (refused to start): what it holds is unknown,
    neither lost nor kept. Only with nodes down, so an empty ``final`` entry still counts
    as "gone" otherwise."""
    return bool(ctx.down) and not ctx.final.get(key)


def _writes_by_value(history: History) -> dict[Any, Op]:
    return {op.value: op for op in history.ops if op.kind == "set"}


def winner(records: list[Record | None]) -> Record | None:
    """The record last-write-wins keeps: the highest version, tombstones included (a
    newer delete beats an older value). A version orders by its HLC wall milliseconds,
    then its logical counter, then the writer's node id (the tie-break every replica
    agrees on); of equal versions the first is kept. None when no owner has one."""
    best: Record | None = None
    for record in records:
        if record is None:
            continue
        if best is None or _order(record) > _order(best):
            best = record
    return best


def _order(record: Record) -> tuple[int, int, str]:
    v = record.version
    return (v.wall_ms, v.logical, v.node_id)


def acks_needed(level: str, owners: int) -> int:
    """Answers ``level`` needs from ``owners`` replicas: one (none of none), a strict
    majority, or all of them."""
    table = {"one": min(1, owners), "quorum": owners // 2 + 1 if owners else 0, "all": owners}
    return table[level]


def _final_record(owners: dict[str, Record | None]) -> Record | None:
    return winner(list(owners.values()))


def _plain_keys(ctx: CheckContext) -> dict[str, list[Op]]:
    """Each plain key's ops, in history order, with every flush among them (a flush is a
    delete of every key: ``FLUSH_KEY`` names it in the history)."""
    by_key = ctx.history.by_key()
    flushes = by_key.pop(FLUSH_KEY, [])
    by_key.pop(SCAN_KEY, None)
    out = {k: ops for k, ops in by_key.items() if k[:1] not in ("t", "h", "s")}
    if flushes:
        out = {k: sorted(ops + flushes, key=lambda op: op.id) for k, ops in out.items()}
    return out


#: The history key of a flush (FLUSHDB): it deletes every key.
FLUSH_KEY = "*"
#: The history key of a full scan (its value: every key it returned).
SCAN_KEY = "@scan"
_DELETES = ("delete", "flush")


def check_lost_writes(ctx: CheckContext) -> list[Violation]:
    """No acknowledged set is lost: the final value is that write or one not before it."""
    out = []
    writes = _writes_by_value(ctx.history)
    for key, ops in _plain_keys(ctx).items():
        acked_sets = [op for op in ops if op.kind == "set" and op.outcome == OK and _durable(ctx, op)]
        if not acked_sets or _unanswered(ctx, key):
            continue
        final = _final_record(ctx.final.get(key, {}))
        if final is not None and final.purge_at is None:
            source = writes.get(final.value)
            if source is None:
                out.append(Violation("lost-writes", key, f"final value {final.value!r} was never written"))
                continue
            later = [w for w in acked_sets if w.invoked > _end(source)]
            if later:
                w = later[-1]
                out.append(
                    Violation(
                        "lost-writes",
                        key,
                        f"acked set {w.value!r} (op {w.id}, t={w.invoked:.3f}) lost: final value "
                        f"{final.value!r} is from op {source.id}, done at t={_end(source):.3f}",
                    )
                )
        else:
            deletes = [op for op in ops if op.kind in _DELETES and op.outcome != FAIL]
            for w in acked_sets:
                if not any(_end(d) >= w.invoked for d in deletes):
                    out.append(
                        Violation(
                            "lost-writes",
                            key,
                            f"acked set {w.value!r} (op {w.id}) lost: the key is gone and no delete "
                            "could have come after it",
                        )
                    )
                    break
    return out


def check_resurrection(ctx: CheckContext) -> list[Violation]:
    """No deleted key comes back: an acked delete (or flush, a delete of every key) beats
    every write finished before it."""
    out = []
    writes = _writes_by_value(ctx.history)
    for key, ops in _plain_keys(ctx).items():
        final = _final_record(ctx.final.get(key, {}))
        if final is None or final.purge_at is not None:
            continue
        source = writes.get(final.value)
        if source is None:
            continue
        for d in ops:
            if d.kind in _DELETES and d.outcome == OK and d.invoked > _end(source) and _durable(ctx, d):
                out.append(
                    Violation(
                        "resurrection",
                        key,
                        f"value {final.value!r} (op {source.id}) survives acked {d.kind} op {d.id} "
                        f"invoked after it (t={d.invoked:.3f})",
                    )
                )
                break
    return out


def check_corrupt_reads(ctx: CheckContext) -> list[Violation]:
    """No damaged data is served: every value a read returned, and every value an owner
    holds at the end, is one a client wrote to that very key (values are unique per
    write, so a flipped bit on a disk shows as a value nobody wrote, or another key's)."""
    out = []
    writes = _writes_by_value(ctx.history)
    for op in ctx.history.ops:
        if op.kind != "get" or op.outcome != OK or not op.found:
            continue
        source = writes.get(op.value)
        if source is None or source.key != op.key:
            out.append(Violation("corrupt-reads", op.key, f"read op {op.id} served {op.value!r}, which no client wrote to {op.key!r}"))
    for key, owners in sorted(ctx.final.items()):
        if key[:1] in ("h", "s"):
            continue
        for owner, record in sorted(owners.items()):
            if record is None or record.purge_at is not None:
                continue
            source = writes.get(record.value)
            if source is None or source.key != key:
                out.append(Violation("corrupt-reads", key, f"{owner} holds {record.value!r}, which no client wrote to {key!r}"))
    return out


def check_convergence(ctx: CheckContext) -> list[Violation]:
    """After heal and settle, every owner of every key holds the same version."""
    out = []
    for key, owners in sorted(ctx.final.items()):
        versions = {_agreed(r) for r in owners.values()}
        if len(versions) > 1:
            detail = ", ".join(f"{o}={'-' if r is None else r.version}" for o, r in sorted(owners.items()))
            out.append(Violation("convergence", key, f"replicas disagree after settle: {detail}"))
    return out


def _agreed(record: Record | None) -> Any:
    """What owners must agree on: the version; for a hash or set also its fields, whose
    newest version alone does not tell two replicas' fields apart."""
    if record is None:
        return None
    value = record.value
    return (record.version, repr(value)) if hasattr(value, "floor") else record.version


# --- hashes and sets ------------------------------------------------------------------------


def fields_of(records: list[Record | None], prefix: str) -> dict[str, Any]:
    """The fields (``prefix`` "h") or members ("s") a client sees once the owners' copies
    are merged: the checker's own reference of the merge rule (``docs/consistency.md``).
    Every field keeps its newest version; a whole-key write or delete (a plain value, a
    tombstone, a hash's ``floor``) erases every field at or below its version; a field
    whose newest version is a tombstone (value None) is gone."""
    floor = (0, 0, "")
    newest: dict[str, tuple[tuple[int, int, str], Any]] = {}
    for record in records:
        if record is None:
            continue
        value = record.value
        if record.purge_at is not None or not hasattr(value, "floor"):
            floor = max(floor, tuple(record.version))  # type: ignore[assignment]
            continue
        floor = max(floor, tuple(value.floor))
        for name, (item, version) in value.items.items():
            v = tuple(version)
            if name not in newest or v > newest[name][0]:
                newest[name] = (v, item)  # type: ignore[assignment]
    return {
        name[1:]: item
        for name, (version, item) in sorted(newest.items())
        if item is not None and version > floor and name[:1] == prefix
    }


def check_lost_fields(ctx: CheckContext) -> list[Violation]:
    """No acknowledged field write is lost: after settle, an acked ``HSET`` of a field is
    what the field holds, unless a write or delete of that field (or a delete of the key)
    could have come after it; an acked ``SADD`` of a member (unique in the run) is there
    unless an ``SREM`` of it or a delete of the key could have come after it. Concurrent
    writes to different fields of one key both survive, whichever coordinators ran them."""
    out = []
    by_key = ctx.history.by_key()
    flushes = by_key.get(FLUSH_KEY, [])  # a flush deletes every key
    for key, ops in sorted(by_key.items()):
        prefix = key[:1]
        if prefix not in ("h", "s") or _unanswered(ctx, key):
            continue
        final = fields_of(list(ctx.final.get(key, {}).values()), prefix)
        deletes = [op for op in ops + flushes if op.kind in _DELETES and op.outcome != FAIL]
        if prefix == "h":
            writes = {op.value: op for op in ops if op.kind == "hset"}
            for w in ops:
                if w.kind != "hset" or w.outcome != OK:
                    continue
                got = final.get(w.field)
                if got == w.value:
                    continue
                later = [d for d in deletes if _end(d) >= w.invoked]
                if got is None:
                    later += [d for d in ops if d.kind == "hdel" and d.field == w.field and d.outcome != FAIL and _end(d) >= w.invoked]
                    why = "the field is gone"
                else:
                    source = writes.get(got)
                    if source is None:
                        out.append(Violation("lost-fields", key, f"field {w.field!r} holds {got!r}, never written"))
                        continue
                    if _end(source) >= w.invoked:
                        continue
                    why = f"the field holds {got!r} (op {source.id}, done at t={_end(source):.3f})"
                if not later:
                    out.append(Violation("lost-fields", key, f"acked hset {w.field!r}={w.value!r} (op {w.id}, t={w.invoked:.3f}) lost: {why}"))
        else:
            for w in ops:
                if w.kind != "sadd" or w.outcome != OK or w.value in final:
                    continue
                later = [d for d in deletes if _end(d) >= w.invoked]
                later += [d for d in ops if d.kind == "srem" and d.value == w.value and d.outcome != FAIL and _end(d) >= w.invoked]
                if not later:
                    out.append(Violation("lost-fields", key, f"acked sadd {w.value!r} (op {w.id}, t={w.invoked:.3f}) lost"))
    return out


def check_ttl(ctx: CheckContext) -> list[Violation]:
    """Nothing is served after its TTL deadline, beyond the clock-skew bound."""
    out = []
    writes = _writes_by_value(ctx.history)
    slack = ctx.skew_bound + 0.002  # the deadline is stamped between invoke and ack
    for op in ctx.history.ops:
        if op.kind != "get" or op.outcome != OK or not op.found:
            continue
        source = writes.get(op.value)
        if source is None or source.ttl is None or source.outcome != OK or source.completed is None:
            continue  # an unacknowledged set may have been applied (and stamped) any time later
        deadline = source.completed + source.ttl
        if op.invoked > deadline + slack:
            out.append(
                Violation(
                    "ttl",
                    op.key,
                    f"read op {op.id} at t={op.invoked:.3f} returned {op.value!r} whose TTL ended by "
                    f"t={deadline:.3f} (+{slack:.3f} s skew bound)",
                )
            )
    return out


def _level(level: str, default: str) -> str:
    return default if level == "default" else level


def check_quorum_reads(ctx: CheckContext) -> list[Violation]:
    """With R + W > N, a read invoked after a write's ack sees it or something newer."""
    out = []
    n = ctx.replicas
    writes = _writes_by_value(ctx.history)
    for key, ops in _plain_keys(ctx).items():
        acked = [op for op in ops if op.is_write and op.outcome == OK]
        if not acked:
            continue
        deletes = [op for op in ops if op.kind in _DELETES and op.outcome != FAIL]
        for r in ops:
            if r.kind != "get" or r.outcome != OK:
                continue
            r_acks = acks_needed(_level(r.consistency, ctx.read_default), n)
            before = [
                w
                for w in acked
                if w.completed is not None
                and w.completed < r.invoked
                and _durable(ctx, w, r.invoked)
                and r_acks + acks_needed(_level(w.consistency, ctx.write_default), n) > n
            ]
            if not before:
                continue
            if r.found:
                source = writes.get(r.value)
                if source is None:
                    out.append(Violation("quorum-reads", key, f"read op {r.id} returned unknown {r.value!r}"))
                    continue
                stale = [w for w in before if w.invoked > _end(source)]
                if stale:
                    w = stale[-1]
                    out.append(
                        Violation(
                            "quorum-reads",
                            key,
                            f"read op {r.id} (t={r.invoked:.3f}) returned {r.value!r} (op {source.id}) "
                            f"although op {w.id} ({w.kind} {w.value!r}) was acked at t={w.completed:.3f}",
                        )
                    )
            else:
                sets = [w for w in before if w.kind == "set"]
                for w in sets:
                    if not any(_end(d) >= w.invoked for d in deletes):
                        out.append(
                            Violation(
                                "quorum-reads",
                                key,
                                f"read op {r.id} (t={r.invoked:.3f}) missed {w.value!r} (op {w.id}) acked at "
                                f"t={w.completed:.3f}, with no delete after it",
                            )
                        )
                        break
    return out


def _could_follow(ctx: CheckContext, w: Op, ops: list[Op], by: float) -> bool:
    """Whether a delete or flush among ``ops`` could have taken effect after write ``w``
    and before time ``by``: not a definite failure, invoked by then, not finished before
    ``w`` was sent."""
    return any(d.kind in _DELETES and d.outcome != FAIL and d.invoked <= by and _end(d) >= w.invoked for d in ops)


def check_txn_atomicity(ctx: CheckContext) -> list[Violation]:
    """An acknowledged transaction that set several keys is seen all or nothing by a
    later transaction that read them all (at quorum, at the partition's coordinator): if
    the reader saw the writer's value on one key, then on each other key it saw the
    writer's value, or a write that could come after it (not finished before the writer
    was sent), or no value where a delete or flush could come after it. Transactions
    that failed or timed out are not checked: ``docs/consistency.md`` says a timed-out
    transaction's keys may be seen partly written."""
    out: list[Violation] = []
    writes = _writes_by_value(ctx.history)
    txns: dict[int, list[Op]] = {}
    for op in ctx.history.ops:
        if op.txn is not None:
            txns.setdefault(op.txn, []).append(op)
    keys = _plain_keys(ctx)
    for reads in txns.values():
        if reads[0].kind != "get" or any(r.outcome != OK for r in reads):
            continue
        seen = {r.key: r for r in reads}
        for txn in sorted({writes[r.value].txn for r in reads if r.found and r.value in writes} - {None}):
            wops = txns[txn]  # type: ignore[index]
            if any(w.outcome != OK or not _durable(ctx, w, reads[0].invoked) for w in wops):
                continue
            for w in wops:
                r = seen.get(w.key)
                if r is None or (r.found and r.value == w.value):
                    continue
                if r.found:
                    source = writes.get(r.value)
                    if source is None or _end(source) >= w.invoked:
                        continue  # (an unknown value is corrupt-reads' to report)
                    why = f"{r.value!r} (op {source.id}, done at t={_end(source):.3f}, before it)"
                elif _could_follow(ctx, w, keys.get(w.key, []), r.completed or math.inf):
                    continue
                else:
                    why = "nothing, and no delete or flush could come after it"
                out.append(
                    Violation(
                        "txn-atomicity",
                        w.key,
                        f"read transaction {r.txn} (t={r.invoked:.3f}) saw part of acked transaction {txn} "
                        f"(t={w.invoked:.3f}): {w.key!r} holds {why} instead of {w.value!r}",
                    )
                )
                break
    return out


def check_scan_complete(ctx: CheckContext) -> list[Violation]:
    """A full scan (cursor 0 to 0) returns every plain key whose acknowledged set was
    done before the scan began, when that set's level and the scan's read quorum overlap
    (W + R > N) and no delete or flush of the key could have come after the set and
    before the scan ended (TTL keys, hashes and sets are not checked: expiry and field
    deletes make presence a matter of timing)."""
    out: list[Violation] = []
    scans = [op for op in ctx.history.ops if op.kind == "scan" and op.outcome == OK]
    if not scans:
        return out
    n = ctx.replicas
    keys = _plain_keys(ctx)
    for s in scans:
        got = set(s.value or ())
        end = s.completed if s.completed is not None else math.inf
        for key, ops in keys.items():
            if key in got:
                continue
            for w in ops:
                if (
                    w.kind == "set"
                    and w.outcome == OK
                    and w.completed is not None
                    and w.completed < s.invoked
                    and _durable(ctx, w, end)
                    and acks_needed("quorum", n) + acks_needed(_level(w.consistency, ctx.write_default), n) > n
                    and not _could_follow(ctx, w, ops, end)
                ):
                    out.append(
                        Violation(
                            "scan-complete",
                            key,
                            f"scan op {s.id} (t={s.invoked:.3f}..{end:.3f}) missed {key!r}, set by op {w.id} "
                            f"acked at t={w.completed:.3f} with no delete or flush after it",
                        )
                    )
                    break
    return out


def check_strangers(ctx: CheckContext) -> list[Violation]:
    """A node without the cluster secret gets nothing in: no message of its (or to it) is
    delivered, no node counts it as a member, and no record holds a value it wrote or a
    version it stamped."""
    if not ctx.strangers:
        return []
    out = []
    if ctx.stranger_deliveries:
        out.append(Violation("strangers", "*", f"{ctx.stranger_deliveries} messages to or from a stranger delivered"))
    for node, members in sorted(ctx.members.items()):
        joined = sorted(set(members) & ctx.strangers)
        if joined:
            out.append(Violation("strangers", "*", f"{node} counts stranger(s) {joined} as members"))
    for key, owners in sorted(ctx.final.items()):
        for owner, record in sorted(owners.items()):
            if record is None:
                continue
            if record.version.node_id in ctx.strangers or _is_forged(record.value, ctx.forged_values):
                out.append(Violation("strangers", key, f"{owner} holds {record.value!r} at {record.version}, from a stranger"))
    return out


def _is_forged(value: Any, forged: frozenset[Any]) -> bool:
    try:
        return value in forged
    except TypeError:  # an unhashable value is none of the strangers' strings
        return False


def check_convergence_bound(ctx: CheckContext) -> list[Violation]:
    """Replicas agree, and every node warmed (a node stuck warming serves no reads, so
    the cluster has not recovered even where its copies agree), within the settle bound."""
    out = [Violation("convergence", node, f"{node} was still warming when the settle phase ended") for node in ctx.warming]
    if not ctx.converged:
        out.append(Violation("convergence", "*", "replicas had not converged when the settle phase ended"))
    return out


CHECKERS: dict[str, Callable[[CheckContext], list[Violation]]] = {
    "lost-writes": check_lost_writes,
    "resurrection": check_resurrection,
    "convergence": check_convergence,
    "ttl": check_ttl,
    "quorum-reads": check_quorum_reads,
    "strangers": check_strangers,
    "lost-fields": check_lost_fields,
    "corrupt-reads": check_corrupt_reads,
    "txn-atomicity": check_txn_atomicity,
    "scan-complete": check_scan_complete,
}


def run_checkers(ctx: CheckContext, names: list[str] | None = None) -> list[Violation]:
    out: list[Violation] = []
    for name, checker in CHECKERS.items():
        if names is None or name in names:
            out.extend(checker(ctx))
    if names is None or "convergence" in names:
        out.extend(check_convergence_bound(ctx))
    return out
