"""Read-modify-write requests: what they do to a key, given what the key holds.

One pure function, :func:`plan_update`, decides conditional sets (``nx``/``xx``/``get``/
``keep_ttl``), ``expire``/``persist``, ``incr`` and ``ttl`` from the key's current
record and the wall time. A single node applies its answer inside one store turn
(:class:`actors.store.actor.Store`, ``Modify``); a cluster applies it at the key's coordinator
between a quorum read and a write, one request per key at a time (``actors.node.actor``).
Either way the semantics are these, once.
"""

from __future__ import annotations

import re
from typing import Any

from actors.protocol.errors import ErrorCode
from actors.protocol.messages import Ack, ErrorReply, Expire, Incr, Reply, Set, Ttl, TtlReply, Value
from actors.protocol.record import Record

__all__ = ["plan_update", "visible"]

_INT = re.compile(rb"-?(0|[1-9][0-9]*)\Z")
_MIN, _MAX = -(1 << 63), (1 << 63) - 1

#: What a write does: ``(value, deadline)``; None: nothing to write.
Write = tuple[Any, float | None]


def visible(record: Record | None, wall: float) -> Record | None:
    """The record if it holds a live value at ``wall``; None for absent, deleted, expired."""
    if record is None or record.purge_at is not None:
        return None
    if record.deadline is not None and record.deadline <= wall:
        return None
    return record


def _as_int(value: Any) -> int | None:
    if type(value) is int:
        return value
    if type(value) is str:
        if not value.isascii():  # digits are ASCII; a lone surrogate would not even encode
            return None
        value = value.encode("ascii")
    if type(value) is bytes and len(value) <= 20 and _INT.match(value):
        return int(value)
    return None


def plan_update(request: Any, current: Record | None, wall: float) -> tuple[Write | None, Reply]:
    """What ``request`` writes (if anything) and answers, given the key's ``current`` record."""
    live = visible(current, wall)
    rid = request.rid
    t = type(request)
    if t is Set:
        exists = live is not None
        applied = request.cond is None or (request.cond == "nx") != exists
        write: Write | None = None
        if applied:
            if request.keep_ttl and live is not None:
                deadline = live.deadline
            else:
                deadline = wall + request.ttl if request.ttl else None
            write = (request.value, deadline)
        if request.get:
            return write, Value(live.value if live is not None else None, exists, rid)
        return write, Ack(rid, applied=applied if request.cond is not None else None)
    if t is Expire:
        if live is None:
            return None, Ack(rid, applied=False)
        if request.ttl is None:
            if live.deadline is None:
                return None, Ack(rid, applied=False)
            return (live.value, None), Ack(rid, applied=True)
        return (live.value, wall + request.ttl), Ack(rid, applied=True)
    if t is Incr:
        current_value = _as_int(live.value) if live is not None else 0
        if current_value is None:
            return None, ErrorReply(ErrorCode.BAD_REQUEST, "value is not an integer or out of range", rid)
        result = current_value + request.by
        if not _MIN <= result <= _MAX:
            return None, ErrorReply(ErrorCode.BAD_REQUEST, "increment or decrement would overflow", rid)
        return (result, live.deadline if live is not None else None), Value(result, True, rid)
    if t is Ttl:
        if live is None:
            return None, TtlReply(False, None, rid)
        return None, TtlReply(True, None if live.deadline is None else max(0.0, live.deadline - wall), rid)
    raise TypeError(f"not an update: {type(request).__name__}")
