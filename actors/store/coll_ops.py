"""Hash and set commands: what each one answers and writes, given what the key holds.

One pure function, :func:`plan_coll`, as :func:`actors.store.rmw.plan_update` is for
strings (which calls it): a single node applies its answer in one store turn, a cluster
at the key's coordinator between a quorum read and a write. What it writes is a *delta*
(:class:`~actors.protocol.collection.Coll` with pending versions) holding only the
fields or members the command changed, so two coordinators that change different
fields of one key concurrently both keep theirs when replicas merge
(:mod:`actors.protocol.collection`).

Replies follow redis-server 7.0: ``WRONGTYPE`` for a key of another type, ``HINCRBY``'s
``hash value is not an integer`` and overflow texts; a result is a :class:`Value` whose
value is an int, a value or None, or a list (``HGETALL``: ``[field, value, ...]``;
``HSCAN``/``SSCAN``: ``[cursor, [items]]``, every item in one call, cursor 0, as Redis does
for a small hash or set). Lists of names are sorted (Redis's order is its hash table's).
"""

from __future__ import annotations

import re
from typing import Any, Callable

from actors.protocol.collection import HASH, MEMBER, PENDING, SET, Coll, coll_kind, type_name, view
from actors.protocol.errors import ErrorCode
from actors.protocol.messages import CollOp, ErrorReply, Reply, Value
from actors.protocol.record import Record
from actors.protocol.version import ZERO

__all__ = ["COMMANDS", "WRONGTYPE", "plan_coll", "wrong_type"]

#: Redis 7.0's text (after the ``WRONGTYPE`` prefix).
WRONGTYPE = "Operation against a key holding the wrong kind of value"

_INT = re.compile(r"-?(0|[1-9][0-9]*)\Z")
_MIN, _MAX = -(1 << 63), (1 << 63) - 1

#: ``(fields or members as the client sees them, args) -> (changes, result)``; a change
#: maps a name to its new value, or None to delete it.
Step = Callable[[dict[str, Any], tuple[Any, ...]], "tuple[dict[str, Any], Any]"]


def wrong_type(rid: Any = None) -> ErrorReply:
    return ErrorReply(ErrorCode.WRONG_TYPE, WRONGTYPE, rid)


class _Refused(Exception):
    """A command's own error (``HINCRBY`` of a non-integer): its reply, nothing written."""


# --- hashes -------------------------------------------------------------------------------


def _hset(fields: dict[str, Any], args: tuple[Any, ...]) -> tuple[dict[str, Any], Any]:
    changes: dict[str, Any] = {}
    for i in range(0, len(args), 2):
        changes[args[i]] = args[i + 1]  # a repeated field: the last value, as Redis
    return changes, sum(1 for name in changes if name not in fields)


def _hdel(fields: dict[str, Any], args: tuple[Any, ...]) -> tuple[dict[str, Any], Any]:
    changes = {name: None for name in args if name in fields}
    return changes, len(changes)


def _hincrby(fields: dict[str, Any], args: tuple[Any, ...]) -> tuple[dict[str, Any], Any]:
    name, by = args
    old = fields.get(name)
    current = 0 if old is None else _as_int(old)
    if current is None:
        raise _Refused("hash value is not an integer")
    result = current + by
    if not _MIN <= result <= _MAX:
        raise _Refused("increment or decrement would overflow")
    return {name: str(result).encode() if type(old) is bytes or old is None else str(result)}, result


def _as_int(value: Any) -> int | None:
    if type(value) is int:
        return value
    if type(value) is bytes:
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    if type(value) is str and len(value) <= 20 and _INT.match(value):
        number = int(value)
        return number if _MIN <= number <= _MAX else None
    return None


def _flat(fields: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for name, value in fields.items():
        out.append(name)
        out.append(value)
    return out


def _scan(fields: dict[str, Any], args: tuple[Any, ...], pairs: bool) -> list[Any]:
    """Every item in one call (cursor 0) whatever the cursor (``MATCH`` is the RESP
    layer's: its glob is Redis's, ``runtime.acl``)."""
    items: list[Any] = []
    for name in fields:
        items.append(name)
        if pairs:
            items.append(fields[name])
    return [0, items]


_HASH_STEPS: dict[str, Step | Callable[[dict[str, Any], tuple[Any, ...]], Any]] = {
    "hset": _hset,
    "hdel": _hdel,
    "hincrby": _hincrby,
}
_HASH_READS: dict[str, Callable[[dict[str, Any], tuple[Any, ...]], Any]] = {
    "hget": lambda f, a: f.get(a[0]),
    "hmget": lambda f, a: [f.get(name) for name in a],
    "hgetall": lambda f, a: _flat(f),
    "hexists": lambda f, a: int(a[0] in f),
    "hlen": lambda f, a: len(f),
    "hkeys": lambda f, a: list(f),
    "hvals": lambda f, a: list(f.values()),
    "hscan": lambda f, a: _scan(f, a, True),
}

# --- sets ---------------------------------------------------------------------------------


def _sadd(members: dict[str, Any], args: tuple[Any, ...]) -> tuple[dict[str, Any], Any]:
    changes = {name: MEMBER for name in args if name not in members}
    return changes, len(changes)


def _srem(members: dict[str, Any], args: tuple[Any, ...]) -> tuple[dict[str, Any], Any]:
    changes = {name: None for name in args if name in members}
    return changes, len(changes)


_SET_STEPS: dict[str, Step | Callable[[dict[str, Any], tuple[Any, ...]], Any]] = {"sadd": _sadd, "srem": _srem}
_SET_READS: dict[str, Callable[[dict[str, Any], tuple[Any, ...]], Any]] = {
    "smembers": lambda m, a: list(m),
    "sismember": lambda m, a: int(a[0] in m),
    "scard": lambda m, a: len(m),
    "sscan": lambda m, a: _scan(m, a, False),
}

#: Command -> ``(kind, writes)``: every hash and set command a node serves (and ``keytype``,
#: Redis's ``TYPE``, which reads any key: :func:`plan_coll`).
COMMANDS: dict[str, tuple[str, bool]] = {
    **{name: (HASH, True) for name in _HASH_STEPS},
    **{name: (HASH, False) for name in _HASH_READS},
    **{name: (SET, True) for name in _SET_STEPS},
    **{name: (SET, False) for name in _SET_READS},
}


def plan_coll(request: CollOp, current: Record | None, live: Record | None) -> tuple[tuple[Any, float | None] | None, Reply]:
    """What ``request`` writes (a delta and the deadline it sets, or None) and answers,
    given the key's ``current`` record and ``live`` (``current`` if visible now, else None)."""
    rid = request.rid
    if request.cmd == "keytype":  # Redis's TYPE, of any key
        return None, Value((type_name(live.value) if live is not None else None) or "none", True, rid)
    kind, writes = COMMANDS[request.cmd]
    if live is not None and type(live.value) is not Coll:
        return None, wrong_type(rid)
    have, items = view(live.value) if live is not None else (None, {})
    if have is not None and have != kind:
        return None, wrong_type(rid)
    if not writes:
        reads = _HASH_READS if kind == HASH else _SET_READS
        return None, Value(reads[request.cmd](items, request.args), True, rid)
    steps = _HASH_STEPS if kind == HASH else _SET_STEPS
    try:
        changes, result = steps[request.cmd](items, request.args)
    except _Refused as exc:
        return None, ErrorReply(ErrorCode.BAD_REQUEST, str(exc), rid)
    if not changes:
        return None, Value(result, True, rid)
    delta_items = {kind + name: (changes[name], PENDING) for name in sorted(changes)}
    if have is not None:
        # The key exists: a field write, with no say in its deadline.
        return (Coll(delta_items), None), Value(result, True, rid)
    # A new key (absent, deleted, expired or emptied): no deadline, as of this write; what
    # it held before and has expired is erased by this write (its floor), no more, so
    # two coordinators that create the key concurrently both keep their fields.
    floor = current.version if current is not None and current.purge_at is None and live is None else ZERO
    return (Coll(delta_items, floor, PENDING), None), Value(result, True, rid)
