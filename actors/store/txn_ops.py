"""Store operations of transactions, flush and scan, and what they do to a keyspace.

- :class:`Transact`: a transaction's operations applied one after another in one store
  turn, so nothing else runs between them (a single node's MULTI/EXEC): first its watch
  check (any watched key holding a version newer than its stamp aborts it: the result is
  ``MultiReply(None)``), then each operation through :data:`actors.store.apply.APPLY`;
  the result is the tuple of their results. An operation that raises answers ``internal``
  for itself; the ones before it stay applied (as in Redis, EXEC does not roll back).
- :class:`FlushAll`: forget every key; the result is how many values went.
- :class:`ScanKeys`: one scan step (:func:`actors.store.scan.scan_step`); the result is
  ``(next cursor, keys)``.

They are registered in :data:`actors.store.apply.APPLY` by :data:`TXN_APPLY`.
"""

from __future__ import annotations

from typing import Any

from actors.protocol.errors import ErrorCode
from actors.protocol.messages import ErrorReply, message
from actors.protocol.txn_messages import MultiReply
from actors.protocol.version import Version
from actors.store.keyspace import Keyspace
from actors.store.scan import scan_step

__all__ = ["TXN_APPLY", "FlushAll", "ScanKeys", "Transact"]


@message
class Transact:
    """Apply ``ops`` in order in one turn unless a ``watch`` key holds a version newer than its stamp."""

    ops: tuple[Any, ...]
    watch: tuple[tuple[str, Version | None], ...] = ()
    #: ``watch`` holds versions read when watched (any other version aborts), not stamps.
    exact: bool = False


@message
class FlushAll:
    """Forget every value and tombstone."""


@message
class ScanKeys:
    """A scan step; ``partitions``: visit at most this many partitions (0: any number);
    ``count_only``: the result's keys are replaced by how many there are."""

    cursor: int
    count: int
    match: str | None = None
    partitions: int = 0
    count_only: bool = False
    #: Only keys of this Redis type (SCAN's TYPE); None: any.
    kind: str | None = None


def changed_since(keyspace: Keyspace, watch: tuple[tuple[str, Version | None], ...], exact: bool = False) -> bool:
    """Whether any watched key holds a version newer than the stamp taken when it was
    watched (``exact``: another version than the one read then)."""
    for key, stamp in watch:
        newest = keyspace.newest_version(key)
        if exact:
            if newest != stamp:
                return True
        elif stamp is not None and newest is not None and newest > stamp:
            return True
    return False


def transact(keyspace: Keyspace, op: Transact, wall: float, trace: Any = None) -> Any:
    from actors.store.apply import APPLY  # (apply registers this module's table)

    if changed_since(keyspace, op.watch, op.exact):
        return MultiReply(None)
    results: list[Any] = []
    for sub in op.ops:
        try:
            function = APPLY.get(type(sub))
            if function is None or function is transact:
                raise TypeError(f"not a store operation inside a transaction: {type(sub).__name__}")
            result = function(keyspace, sub, wall, trace)
        except Exception as exc:  # noqa: BLE001 - one operation's failure is its own answer
            result = ErrorReply(ErrorCode.INTERNAL, f"internal error applying {type(sub).__name__} ({type(exc).__name__})")
        if type(result) is Version:  # the key holds a newer version (streamed from a peer ahead of our clock)
            result = ErrorReply(ErrorCode.UNAVAILABLE, "unavailable: the key holds a newer version than this transaction's; not applied")
        results.append(result)
    return tuple(results)


def flush_all(keyspace: Keyspace, op: FlushAll, wall: float, trace: Any = None) -> int:
    return keyspace.clear()


def scan_keys(keyspace: Keyspace, op: ScanKeys, wall: float, trace: Any = None) -> tuple[int, Any]:
    if op.count_only and op.match is None and op.kind is None and op.cursor <= 1 and op.partitions == 0:
        return 0, len(keyspace)  # DBSIZE on one node: O(1), and counts what has expired unseen, as Redis
    cursor, keys = scan_step(keyspace, op.cursor, op.count, op.match, wall, op.partitions, op.kind)
    return (cursor, len(keys)) if op.count_only else (cursor, keys)


TXN_APPLY = {Transact: transact, FlushAll: flush_all, ScanKeys: scan_keys}
