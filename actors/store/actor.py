"""The ``Store`` actor: sole owner of a node's :class:`~actors.store.keyspace.Keyspace`.

It applies the operations of a :class:`~actors.store.ops.StoreCall` in order (a
:class:`~actors.store.ops.StoreCalls` is several of them, answered at once) through the
table of pure functions in :mod:`actors.store.apply`, and runs the active-expiry cycles
the janitor asks for. It never decides deadlines or versions (the coordinating node
does), so replicas apply exactly what they are told.

With a data directory (``ctx.disk``) it also owns the node's
:class:`~actors.persist.manager.Persistence`: it loads the snapshot and log in its first
turn (before any message), writes each turn's changes to the log in ``on_turn_end``
before that turn's answers go out (with ``--appendonly yes`` answers are held until then:
an answered write is in the log, and with ``appendfsync always`` fsynced), and writes
snapshots a slice per turn between client batches.

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
from actors.kernel.disk import DiskError
from actors.kernel.failures import log_failure
from actors.kernel.scheduled import ScheduledActor
from actors.protocol.errors import ErrorCode
from actors.protocol.messages import ErrorReply
from actors.store.apply import APPLY, OpFunction
from actors.store.eviction import make_evictor
from actors.store.expiry import run_expire_cycle
from actors.store.keyspace import Keyspace
from actors.persist.manager import PersistConfig, Persistence, SaveRefused
from actors.protocol.internal import PersistTick, SaveInstalled, SaveSlice
from actors.store.ops import (
    ExpireCycle,
    ExpireCycleDone,
    KeepTombstones,
    SaveSnapshot,
    Modify,
    StatsQuery,
    StoreCall,
    StoreCalls,
    StoreOp,
    StoreAnswer,
    StoreAnswers,
)
from actors.store.partitions import DEFAULT_PARTITIONS

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
        persist: PersistConfig | None = None,
    ) -> None:
        super().__init__(ctx)
        self.keyspace = Keyspace(partitions, max_memory=max_memory, evictor=make_evictor(eviction_policy, ctx.rng))
        self.eviction_policy = eviction_policy
        self.expire_cycles = 0
        self.expire_budget_hits = 0
        #: Operations answered ``internal`` because applying them raised.
        self.internal_errors = 0
        #: :data:`~actors.store.apply.APPLY`, plus the one operation answered from this actor's
        #: own counters as well as the keyspace's.
        self._table: dict[type, OpFunction] = {
            **APPLY,
            StatsQuery: lambda keyspace, op, wall, trace: self.stats(wall),
            SaveSnapshot: lambda keyspace, op, wall, trace: self._save(op, wall),
        }
        self.persistence: Persistence | None = None
        if persist is not None and ctx.disk is not None:
            self.persistence = Persistence(ctx.disk, persist, self.keyspace, ctx.node_id)
        #: Answers of this turn, held until its log block is written (``--appendonly yes``).
        self._held: list[tuple[Any, Any]] | None = [] if self.persistence is not None and persist.appendonly else None  # type: ignore[union-attr]
        self._slicing = False
        #: The node's copy is complete (told by the replicator): its disk may be marked current.
        self._ready = False

    def on_start(self) -> None:
        persistence = self.persistence
        if persistence is None:
            return
        # Raises LogCorrupt for a log damaged before its end: the actor dies, the node exits.
        said = persistence.load(self.keyspace, self.ctx.wall())
        logger.info("%s loaded from disk: %s (%d keys)", self.ctx.node_id, said, len(self.keyspace))
        self.ctx.call_later(1.0, self.actor_ref, PersistTick())

    def _answer(self, reply_to: Any, answer: Any) -> None:
        held = self._held
        if held is not None:
            held.append((reply_to, answer))
            return
        try:
            reply_to.tell(answer)
        except ActorDeadError:
            pass  # the asker stopped meanwhile (node shutdown): nobody wants the answer

    def on_turn_end(self) -> None:
        held = self._held
        if held is None:
            return
        persistence = self.persistence
        if persistence is not None:
            try:
                persistence.end_turn(self.keyspace, self.ctx.wall(), self.ctx.now())
            except DiskError as exc:
                # Answering would claim durability we do not have: stop (the node exits, as
                # Redis does when it cannot write its log), and answer nothing.
                logger.critical("cannot write the append-only log: %s; stopping", exc)
                held.clear()
                self.actor_ref.stop(block=False)
                return
        answers = held[:]
        held.clear()
        for reply_to, answer in answers:
            try:
                reply_to.tell(answer)
            except ActorDeadError:
                pass

    def on_receive(self, message: Any) -> Any:
        if type(message) is StoreCalls:
            wall = self.ctx.wall()
            answers = tuple(StoreAnswer(batch.batch, self._apply_all(batch.ops, wall)) for batch in message.batches)
            self._answer(message.reply_to, StoreAnswers(answers))
        elif type(message) is StoreCall:
            results = self._apply_all(message.ops, self.ctx.wall())
            self._answer(message.reply_to, StoreAnswer(message.batch, results))
        elif type(message) is ExpireCycle:
            message.reply_to.tell(self._expire_cycle(message))
        elif type(message) is KeepTombstones:
            self.keyspace.tombstone_ttl = message.ttl_s
            self._ready = message.ready
        elif type(message) is SaveSlice:
            self._save_slice()
        elif type(message) is SaveInstalled:
            if self.persistence is not None:
                self.persistence.install_done(message.error, self.ctx.wall())
        elif type(message) is PersistTick:
            self._persist_tick()
        else:
            return super().on_receive(message)
        return None

    def _apply_all(self, ops: tuple[tuple[int, StoreOp], ...], wall: float) -> tuple[tuple[int, Any], ...]:
        """``(slot, result)`` for each op, in order; an op that raises is answered ``internal``
        and the next one is applied as if nothing happened."""
        table = self._table
        keyspace = self.keyspace
        trace = self.ctx.trace if self.ctx.tracing else None
        results = []
        append = results.append
        for slot, op in ops:
            try:
                function = table.get(type(op))
                if function is None:
                    raise TypeError(f"unknown store operation {type(op).__name__}")
                append((slot, function(keyspace, op, wall, trace)))
            except Exception as exc:
                append((slot, self._failed(op, exc)))
        return tuple(results)

    # --- snapshots ------------------------------------------------------------------

    def _save(self, op: SaveSnapshot, wall: float) -> Any:
        """SAVE (every slice now, answered once installed) or BGSAVE (slices between
        turns, answered once started). Either is refused while a snapshot is being written,
        as Redis refuses both, except the save at SIGTERM (``take_over``), which abandons
        the background one: it must not fail for it."""
        persistence = self.persistence
        if persistence is None:
            return ErrorReply(ErrorCode.BAD_REQUEST, "persistence is off: start the node with --dir to save")
        if op.take_over:
            persistence.abandon_save()
        try:
            self._start_save(persistence, wall)
        except SaveRefused as exc:
            return ErrorReply(ErrorCode.UNAVAILABLE, str(exc))
        except DiskError as exc:
            return ErrorReply(ErrorCode.INTERNAL, f"cannot save: {exc}")
        if op.background:
            self._schedule_slice(0.0)
            return True
        if not persistence.save_now(self.ctx.now, wall):
            return ErrorReply(ErrorCode.INTERNAL, "the snapshot could not be written (see the node's log)")
        return True

    def _start_save(self, persistence: Persistence, wall: float) -> None:
        """``Persistence.start_save``, timed (``rdb_start_usec``: listing the keys)."""
        began = self.ctx.now()
        persistence.start_save(self.keyspace, wall, began)
        persistence.start_took_s = self.ctx.now() - began

    def _schedule_slice(self, delay: float) -> None:
        if not self._slicing:
            self._slicing = True
            self.ctx.call_later(delay, self.actor_ref, SaveSlice())

    def _save_slice(self) -> None:
        self._slicing = False
        persistence = self.persistence
        if persistence is None or persistence.capture is None:
            return
        config = persistence.config
        began = self.ctx.now()
        done = persistence.save_slice(self.ctx.now, config.slice_budget_s, self.ctx.wall(), self._installed)
        took = self.ctx.now() - began
        persistence.slice_max_s = max(persistence.slice_max_s, took)
        if not done:
            # As long a pause as the slice took, at least slice_pause_s: at most half the node's time.
            self._schedule_slice(max(config.slice_pause_s, took))

    def _installed(self, error: DiskError | None) -> None:
        """Called by the disk, on the host's thread, when a background install finished."""
        try:
            self.actor_ref.tell(SaveInstalled(error))
        except ActorDeadError:
            pass  # the store stopped meanwhile (node shutdown)

    def _persist_tick(self) -> None:
        persistence = self.persistence
        assert persistence is not None
        self.ctx.call_later(1.0, self.actor_ref, PersistTick())
        wall = self.ctx.wall()
        try:
            persistence.mark_alive(self.keyspace, wall, self._ready)
        except DiskError as exc:
            logger.warning("cannot write the alive mark: %s", exc)
        why = persistence.due(wall)
        if why is not None:
            logger.info("%s: background save (%s)", self.ctx.node_id, why)
            try:
                self._start_save(persistence, wall)
            except (SaveRefused, DiskError) as exc:
                logger.warning("background save not started: %s", exc)
                return
            self._schedule_slice(0.0)

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
            **(self.persistence.stats() if self.persistence is not None else {}),
        }

