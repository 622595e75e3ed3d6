"""Read-modify-write requests: what they do to a key, given what the key holds.

One pure function, :func:`plan_update`, decides conditional sets (``nx``/``xx``/``get``/
``keep_ttl``/``at``), ``expire``/``persist`` (with Redis 7's ``nx``/``xx``/``gt``/``lt``/``xx+lt``),
``incr``, ``ttl`` and the string operations of :mod:`actors.protocol.string_ops`
(``getdel``, ``getex``, ``append``, ``incrbyfloat``) from the key's current record and
the wall time. What it writes is a new ``(value, deadline)``, or :data:`DELETE` (the
key goes, leaving a tombstone where the cluster keeps them). A deadline already past
at ``wall`` (``SET k v EXAT 1``, ``EXPIRE k -1``) is a delete: the key is gone at once,
as in Redis, never readable for a moment. A single node applies its answer inside one store turn
(:class:`actors.store.actor.Store`, ``Modify``); a cluster applies it at the key's coordinator
between a quorum read and a write, one request per key at a time (``actors.node.actor``).
Either way the semantics are these, once.
"""

from __future__ import annotations

from typing import Any

from actors.protocol.collection import PENDING, TTL_MARK, Coll, coll_kind
from actors.protocol.errors import ErrorCode
from actors.protocol.messages import Ack, CollOp, ErrorReply, Expire, Incr, Reply, Set, Ttl, TtlReply, Value
from actors.protocol.record import Record
from actors.protocol.string_ops import Append, GetDel, GetEx, IncrByFloat, Rename
from actors.protocol.version import ZERO
from actors.store.coll_ops import plan_coll, wrong_type
from actors.store.strings import as_bytes, as_int, incr_by_float

__all__ = ["DELETE", "Write", "plan_rename", "plan_update", "visible"]

_MIN, _MAX = -(1 << 63), (1 << 63) - 1


class _Delete:
    """The type of :data:`DELETE`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DELETE"


#: A read-modify-write that deletes the key.
DELETE = _Delete()
#: What a write does: ``(value, deadline)``, or :data:`DELETE`; None: nothing to write.
Write = tuple[Any, float | None] | _Delete


def visible(record: Record | None, wall: float) -> Record | None:
    """The record if it holds a live value at ``wall``; None for absent, deleted, expired."""
    if record is None or record.purge_at is not None:
        return None
    if record.deadline is not None and record.deadline <= wall:
        return None
    if type(record.value) is Coll and coll_kind(record.value) is None:
        return None  # a hash or set whose every field was deleted: no key
    return record


#: Read-modify-writes of strings only: on a hash or set they answer ``WRONGTYPE``.
_STRING_ONLY = (Incr, GetDel, GetEx, Append, IncrByFloat)


def _store(value: Any, deadline: float | None, wall: float) -> Write:
    """Write ``value`` until ``deadline``; one already past deletes the key instead."""
    if deadline is not None and deadline <= wall:
        return DELETE
    return (value, deadline)


def _expire(request: Expire, live: Record | None, wall: float) -> tuple[Write | None, Reply]:
    rid = request.rid
    if live is None:
        return None, Ack(rid, applied=False)
    # A hash or set: a delta that sets the deadline only (its fields are not rewritten).
    value = Coll({TTL_MARK: (1, PENDING)}, ZERO, PENDING) if type(live.value) is Coll else live.value
    if request.persist:
        if live.deadline is None:
            return None, Ack(rid, applied=False)
        return (value, None), Ack(rid, applied=True)
    deadline = request.at if request.at is not None else wall + request.ttl  # type: ignore[operator]
    cond = request.cond
    if cond is not None:
        current = live.deadline
        if cond == "nx":
            ok = current is None
        elif cond == "xx":
            ok = current is not None
        elif cond == "gt":  # no TTL is an infinite one: never greater
            ok = current is not None and deadline > current
        elif cond == "lt":  # anything is less than infinite
            ok = current is None or deadline < current
        else:  # "xx+lt"
            ok = current is not None and deadline < current
        if not ok:
            return None, Ack(rid, applied=False)
    return _store(value, deadline, wall), Ack(rid, applied=True)


def plan_update(request: Any, current: Record | None, wall: float) -> tuple[Write | None, Reply]:
    """What ``request`` writes (if anything) and answers, given the key's ``current`` record."""
    live = visible(current, wall)
    rid = request.rid
    t = type(request)
    if t is CollOp:
        return plan_coll(request, current, live)
    coll = live is not None and type(live.value) is Coll
    if coll and t in _STRING_ONLY:
        return None, wrong_type(rid)
    if t is Set:
        if coll and request.get:
            return None, wrong_type(rid)
        exists = live is not None
        applied = request.cond is None or (request.cond == "nx") != exists
        write: Write | None = None
        if applied:
            if request.keep_ttl and live is not None:
                deadline = live.deadline
            elif request.at is not None:
                deadline = request.at
            else:
                deadline = wall + request.ttl if request.ttl else None
            write = _store(request.value, deadline, wall)
        if request.get:
            return write, Value(live.value if live is not None else None, exists, rid)
        return write, Ack(rid, applied=applied if request.cond is not None else None)
    if t is Expire:
        return _expire(request, live, wall)
    if t is Incr:
        current_value = as_int(live.value) if live is not None else 0
        if current_value is None:
            return None, ErrorReply(ErrorCode.BAD_REQUEST, "value is not an integer or out of range", rid)
        result = current_value + request.by
        if not _MIN <= result <= _MAX:
            return None, ErrorReply(ErrorCode.BAD_REQUEST, "increment or decrement would overflow", rid)
        return (result, live.deadline if live is not None else None), Value(result, True, rid)
    if t is Ttl:
        if live is None:
            return None, TtlReply(False, None, rid)
        deadline = live.deadline
        return None, TtlReply(True, None if deadline is None else max(0.0, deadline - wall), rid, deadline)
    if t is GetDel:
        if live is None:
            return None, Value(None, False, rid)
        return DELETE, Value(live.value, True, rid)
    if t is GetEx:
        if live is None:
            return None, Value(None, False, rid)
        reply = Value(live.value, True, rid)
        if request.persist:
            return ((live.value, None) if live.deadline is not None else None), reply
        if request.at is not None or request.ttl is not None:
            deadline = request.at if request.at is not None else wall + request.ttl
            return _store(live.value, deadline, wall), reply
        return None, reply
    if t is Append:
        value = as_bytes(live.value) + as_bytes(request.value) if live is not None else as_bytes(request.value)
        return (value, live.deadline if live is not None else None), Value(len(value), True, rid)
    if t is IncrByFloat:
        text, error = incr_by_float(live.value if live is not None else None, request.by)
        if text is None:
            return None, ErrorReply(ErrorCode.BAD_REQUEST, error or "value is not a valid float", rid)
        return (text, live.deadline if live is not None else None), Value(text, True, rid)
    raise TypeError(f"not an update: {type(request).__name__}")


def plan_rename(
    request: Rename, source: Record | None, target: Record | None, wall: float
) -> tuple[dict[str, Write], Reply]:
    """What RENAME/RENAMENX writes (per key) and answers, given both keys' records: the
    source's value and deadline move to the target, the source goes; a missing source is
    Redis's ``no such key``; a key renamed to itself changes nothing (RENAMENX: 0)."""
    rid = request.rid
    live = visible(source, wall)
    if live is None:
        return {}, ErrorReply(ErrorCode.BAD_REQUEST, "no such key", rid)
    if request.new_key == request.key:
        return {}, Ack(rid, applied=not request.nx)
    if request.nx and visible(target, wall) is not None:
        return {}, Ack(rid, applied=False)
    value = live.value
    if type(value) is Coll:
        # A hash or set moves as a write of its live fields, replacing all the target held.
        floor = target.version if target is not None else ZERO
        fields = {name: (item, PENDING) for name, (item, _) in sorted(value.items.items()) if item is not None}
        value = Coll(fields, floor, PENDING)
    return {request.new_key: (value, live.deadline), request.key: DELETE}, Ack(rid, applied=True)
