"""The ``Store`` actor: sole owner of a node's :class:`~actors.store.keyspace.Keyspace`.

It applies :class:`~actors.store.ops.StoreBatch` operations in order (a
:class:`~actors.store.ops.StoreBatches` is several of them, answered at once), and runs
the active-expiry cycles the janitor asks for. It never decides deadlines or versions
(the coordinating node does), so replicas apply exactly what they are told.

An exception while applying one operation answers that operation ``internal`` (and is
logged once with the operation's type, never its keys or values, and counted in
``internal_errors``); the store goes on with the next one. An expiry cycle that raises
still answers the janitor, so active expiry never stalls.
"""

from __future__ import annotations

import logging
from typing import Any

from pykka import ActorDeadError

from actors.kernel.ctx import Ctx
from actors.kernel.failures import log_failure
from actors.kernel.scheduled import ScheduledActor
from actors.protocol.errors import ErrorCode
from actors.protocol.messages import ErrorReply
from actors.protocol.replica_ops import Apply, Fetch, ItemResults, Remove, Write
from actors.protocol.version import Version
from actors.store.eviction import make_evictor
from actors.store.expiry import run_expire_cycle
from actors.store.keyspace import Keyspace, entry_replicas
from actors.store.ops import (
    Describe,
    DigestQuery,
    DropPartitions,
    ExpireCycle,
    ExpireCycleDone,
    KeepTombstones,
    ListingQuery,
    Modify,
    Read,
    StatsQuery,
    StoreBatch,
    StoreBatches,
    StoreOp,
    StoreResults,
    StoreResultsList,
)
from actors.store.partitions import DEFAULT_PARTITIONS
from actors.store.rmw import plan_update

__all__ = ["Store"]

logger = logging.getLogger("actorcache.store")


class Store(ScheduledActor):
    survive_failures = True  # see ScheduledActor.survive_failures

    def __init__(
        self,
        ctx: Ctx,
        partitions: int = DEFAULT_PARTITIONS,
        max_memory: int = 0,
        eviction_policy: str = "noeviction",
    ) -> None:
        super().__init__(ctx)
        self.keyspace = Keyspace(partitions, max_memory=max_memory, evictor=make_evictor(eviction_policy, ctx.rng))
        self.eviction_policy = eviction_policy
        self.expire_cycles = 0
        self.expire_budget_hits = 0
        #: Operations answered ``internal`` because applying them raised.
        self.internal_errors = 0

    def on_receive(self, message: Any) -> Any:
        if type(message) is StoreBatches:
            wall = self.ctx.wall()
            answers = tuple(StoreResults(batch.batch, self._apply_all(batch.ops, wall)) for batch in message.batches)
            try:
                message.reply_to.tell(StoreResultsList(answers))
            except ActorDeadError:
                pass  # the asker stopped meanwhile (node shutdown): nobody wants the answer
        elif type(message) is StoreBatch:
            results = self._apply_all(message.ops, self.ctx.wall())
            try:
                message.reply_to.tell(StoreResults(message.batch, results))
            except ActorDeadError:
                pass  # the asker stopped meanwhile (node shutdown): nobody wants the answer
        elif type(message) is ExpireCycle:
            message.reply_to.tell(self._expire_cycle(message))
        elif type(message) is KeepTombstones:
            self.keyspace.tombstone_ttl = message.ttl_s
        else:
            return super().on_receive(message)
        return None

    def _apply_all(self, ops: tuple[tuple[int, StoreOp], ...], wall: float) -> tuple[tuple[int, Any], ...]:
        """``(slot, result)`` for each op, in order; an op that raises is answered ``internal``
        and the next one is applied as if nothing happened."""
        apply = self._apply
        results = []
        append = results.append
        for slot, op in ops:
            try:
                append((slot, apply(op, wall)))
            except Exception as exc:
                append((slot, self._failed(op, exc)))
        return tuple(results)

    def _failed(self, op: Any, exc: Exception) -> ErrorReply:
        self.internal_errors += 1
        what = type(op).__name__
        if type(op) is Modify:
            what = f"Modify({type(op.request).__name__})"
        log_failure(logger, f"{self} applying {what}", exc)
        return ErrorReply(ErrorCode.INTERNAL, f"internal error applying {what} ({type(exc).__name__}); it may be partly applied")

    def _expire_cycle(self, message: ExpireCycle) -> ExpireCycleDone:
        """One active-expiry cycle; one that raises still answers (nothing done), so the
        janitor schedules the next one instead of waiting forever."""
        try:
            result = run_expire_cycle(
                self.keyspace,
                wall=self.ctx.wall(),
                now=self.ctx.now,
                rng=self.ctx.rng,
                budget_s=message.budget_s,
                sample_size=message.sample_size,
            )
            self.keyspace.purge_tombstones(self.ctx.wall())
        except Exception as exc:
            self.internal_errors += 1
            log_failure(logger, f"{self} running an expiry cycle", exc)
            return ExpireCycleDone(0, 0, 0, False, self.keyspace.volatile_count)
        self.expire_cycles += 1
        self.expire_budget_hits += result.hit_budget
        return result

    def _apply(self, op: StoreOp, wall: float) -> Any:
        keyspace = self.keyspace
        t = type(op)
        if t is Read:
            return tuple(keyspace.get(key, wall) for key in op.keys)
        if t is Write:
            if op.each:
                return self._write_each(op, wall)
            if keyspace.max_memory and not keyspace.make_room(wall):
                return self._out_of_memory()
            version = op.version
            applied = 0
            conflict = None
            tracing = self.ctx.tracing
            replicas = op.replicas  # shared per writer and owner set by the keyspace's meta table
            for key, value, deadline in op.items:
                if keyspace.set(key, value, deadline, version, replicas):
                    applied += 1
                    if tracing:
                        self.ctx.trace("apply", key=key, version=list(version))
                else:
                    conflict = _newer(conflict, keyspace.newest_version(key), version)
            return applied if conflict is None else conflict
        if t is Remove:
            version, purge_at = op.version, op.purge_at
            deleted = 0
            conflict = None
            for key in op.keys:
                newest = keyspace.newest_version(key)
                if newest is not None and newest > version:
                    conflict = _newer(conflict, newest, version)
                    continue
                deleted += keyspace.delete(key, wall, version, purge_at)
                if self.ctx.tracing:
                    self.ctx.trace("apply", key=key, version=list(version), delete=True)
            return deleted if conflict is None else conflict
        if t is Fetch:
            records = tuple(keyspace.record(key, wall) for key in op.keys)
            for record in records if op.count else ():
                if record is None or record.purge_at is not None:
                    keyspace.misses += 1
                else:
                    keyspace.hits += 1
            return records
        if t is Modify:
            request = op.request
            write, reply = plan_update(request, keyspace.record(request.key, wall), wall)
            if write is not None and keyspace.max_memory and not keyspace.make_room(wall):
                return self._out_of_memory()
            if write is not None and not keyspace.set(request.key, write[0], write[1], op.version, op.replicas):
                return keyspace.newest_version(request.key)  # stored version is newer: the node re-stamps
            return reply
        if t is Describe:
            out = []
            for key in op.keys:
                entry = keyspace.entry(key, wall)
                out.append((keyspace.record(key, wall), entry_replicas(entry) if entry is not None else ()))
            return tuple(out)
        if t is Apply:
            applied = 0
            tracing = self.ctx.tracing
            for record in op.records:
                if keyspace.apply(record, wall):
                    applied += 1
                    if tracing:
                        self.ctx.trace("apply", key=record.key, version=list(record.version), via="repair")
            return applied
        if t is DigestQuery:
            return tuple((p, keyspace.digest(p)) for p in op.partitions)
        if t is ListingQuery:
            return tuple((p, keyspace.listing(p)) for p in op.partitions)
        if t is DropPartitions:
            return sum(keyspace.drop_partition(p) for p in op.partitions)
        if t is StatsQuery:
            return self.stats(wall)
        raise TypeError(f"unknown store operation {type(op).__name__}")

    def _write_each(self, op: Write, wall: float) -> ItemResults:
        """A coordinator's run of single-key writes: each item applied, and answered, as
        if it had come alone (its own memory check, its own conflict)."""
        keyspace = self.keyspace
        version = op.version
        tracing = self.ctx.tracing
        replicas = op.replicas
        bounded = keyspace.max_memory
        each: list[Any] = []
        for key, value, deadline in op.items:
            if bounded and not keyspace.make_room(wall):
                each.append(self._out_of_memory())
            elif keyspace.set(key, value, deadline, version, replicas):
                each.append(1)
                if tracing:
                    self.ctx.trace("apply", key=key, version=list(version))
            else:
                newer = _newer(None, keyspace.newest_version(key), version)
                each.append(1 if newer is None else newer)
        return ItemResults(each)

    def _out_of_memory(self) -> ErrorReply:
        ks = self.keyspace
        return ErrorReply(
            ErrorCode.OUT_OF_MEMORY,
            f"out of memory: {ks.used_bytes} of --max-memory {ks.max_memory} bytes used and policy "
            f"{self.eviction_policy} evicts nothing here; deletes still work",
        )

    def stats(self, wall: float) -> dict[str, Any]:
        ks = self.keyspace
        return {
            "keys": len(ks),
            "tombstones": ks.tombstone_count,
            "keys_with_ttl": ks.volatile_count,
            "memory_bytes": ks.used_bytes,
            "max_memory": ks.max_memory,
            "eviction_policy": self.eviction_policy,
            "evicted": ks.evicted,
            "repairs_skipped_full": ks.repairs_skipped_full,
            "hits": ks.hits,
            "misses": ks.misses,
            "sets": ks.sets,
            "deletes": ks.deletes,
            "expired_lazy": ks.expired_lazy,
            "expired_active": ks.expired_active,
            "expirations": ks.expired_lazy + ks.expired_active,
            "expire_cycles": self.expire_cycles,
            "expire_budget_hits": self.expire_budget_hits,
            "internal_errors": self.internal_errors,
        }


def _newer(conflict: Version | None, newest: Version | None, version: Version) -> Version | None:
    """The highest version seen that beats ``version`` (a write that must be re-stamped)."""
    if newest is None or newest <= version:
        return conflict
    return newest if conflict is None or newest > conflict else conflict
