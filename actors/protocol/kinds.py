"""Every request type a node serves, one row each: how it looks on the wire and how a node routes it.

h11 keeps every rule of its state machine in tables; this module does the same for request
kinds, so what a ``get`` or an ``incr`` *is* lives in one place instead of in if-chains
spread over the codec, the node and the cluster. A row (:class:`Kind`) says:

- ``decoders``: its wire names (``"type"``), each with the function that turns a wire
  object into the request (``expire`` and ``persist`` are both :class:`Expire`); none
  for the node's internal requests, which no client may send;
- ``encode``: the wire object of a request (clients, forwarding, round-trip tests);
- ``route``: what a node does with it (:class:`Route`), and ``rmw_if``: a predicate under
  which a request's options make it a read-modify-write instead (a ``set`` with
  ``nx``/``xx``/``get``/``keepttl``);
- ``keys``: the keys it touches; ``items``: for a write of values, its
  ``(key, value, deadline)`` items at a wall time (deadlines are absolute: ``wall + ttl``);
- ``values``: whether it carries values, whose nesting depth the decoder checks;
- ``category``: the ACL category a user needs to send it (``read``, ``write``, ``admin``,
  Redis's ``@read``/``@write``/``@admin``; see ``runtime/acl.py``), or None for what any
  connection may send (``ping``, ``auth``).

How each kind becomes a store operation on a single node, and how the store's result
becomes its reply, is the table's other half, one layer up where the store's operations
are known: :mod:`actors.store.plan`. A new request type is its message class
(:mod:`actors.protocol.messages`), one row here, one in ``actors.store.plan`` unless the
node answers it itself, and its handler.

Invariants: decoders raise a typed :class:`~actors.protocol.errors.CacheError` for
anything malformed and never recurse over a value (:mod:`actors.protocol.value_depth`);
unknown fields are ignored (the Go original's clients send ``node_id`` on ``set``); the order of the
rows is the order wire names are listed in errors (``REQUEST_TYPES``).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from actors.protocol.consistency import CONSISTENCY_LEVELS
from actors.protocol.errors import BadRequestError
from actors.protocol.internal import ReadRecord, WriteRecord
from actors.protocol.messages import (
    Auth,
    CollOp,
    Delete,
    Expire,
    Get,
    Incr,
    Inspect,
    Join,
    Locate,
    MGet,
    MSet,
    Ping,
    RemoveNode,
    Set,
    Save,
    Stats,
    Ttl,
)
from actors.protocol.string_ops import Append, GetDel, GetEx, IncrByFloat, Rename
from actors.protocol.value_depth import DEFAULT_MAX_VALUE_DEPTH, depth_error, exceeds_depth
from actors.protocol import txn_kinds
from actors.protocol.txn_messages import Flush, Multi, Scan, Watch

__all__ = [
    "ADMIN",
    "CATEGORIES",
    "KINDS",
    "READ",
    "WRITE",
    "Item",
    "Kind",
    "Route",
    "is_data_request",
    "is_update",
    "is_write",
    "route_of",
    "wire_name",
]

#: The ACL categories a request kind may need (Redis's ``@read``, ``@write``, ``@admin``).
READ, WRITE, ADMIN = "read", "write", "admin"
CATEGORIES = (READ, WRITE, ADMIN)

#: A decoder: ``(wire object, rid)``, plus ``max_depth`` for kinds that carry values.
Decoder = Callable[..., Any]
#: ``(key, value, deadline)``: one value a write stores; deadline in epoch seconds or None.
Item = tuple[str, Any, "float | None"]


class Route(enum.Enum):
    """What a node does with a request."""

    #: The node answers it itself, from its own state (ping, join, locate, remove_node).
    NODE = "node"
    #: This node's store answers it, never coordinated (stats, inspect: this node's own view).
    LOCAL = "local"
    #: A read of keys, coordinated across their owners at a consistency level.
    READ = "read"
    #: A write of keys, versioned by the coordinator and sent to every owner.
    WRITE = "write"
    #: A read-modify-write, run by the key's coordinator one at a time per key.
    UPDATE = "update"


@dataclass(frozen=True, slots=True)
class Kind:
    """One request type's row (see the module docstring for the columns)."""

    type: type
    route: Route
    decoders: Mapping[str, Decoder]
    encode: Callable[[Any], dict[str, Any]] | None
    keys: Callable[[Any], tuple[str, ...]]
    items: Callable[[Any, float], tuple[Item, ...]] | None = None
    rmw_if: Callable[[Any], bool] | None = None
    values: bool = False
    category: str | None = None


# --- fields -----------------------------------------------------------------------------------


def _key(obj: dict[str, Any], field: str = "key") -> str:
    key = obj.get(field)
    if type(key) is not str:
        if key is None:
            raise BadRequestError(f"missing field {field!r}")
        raise BadRequestError(f"field {field!r} must be a string, not {type(key).__name__}")
    if not key:
        raise BadRequestError(f"field {field!r} must not be empty")
    return txn_kinds.check_key(key)


def _ttl(obj: dict[str, Any]) -> float | None:
    ttl = obj.get("ttl")
    if ttl is None:
        return None
    t = type(ttl)
    if t is not int and t is not float:
        raise BadRequestError(f"field 'ttl' must be a number of seconds, not {t.__name__}")
    if not math.isfinite(ttl) or ttl < 0:
        raise BadRequestError("field 'ttl' must be a finite number >= 0 (0 or null: no expiry)")
    return ttl or None


def _at(obj: dict[str, Any]) -> float | None:
    """An absolute deadline in epoch seconds (any finite number: one already past means
    the key is gone at once, as Redis's EXAT/PXAT in the past)."""
    at = obj.get("at")
    if at is None:
        return None
    if type(at) is not int and type(at) is not float or not math.isfinite(at):
        raise BadRequestError("field 'at' must be a finite number of epoch seconds")
    return float(at)


def _consistency(obj: dict[str, Any]) -> str | None:
    level = obj.get("consistency")
    if level is None or level in CONSISTENCY_LEVELS:
        return level
    raise BadRequestError(f"field 'consistency' must be one of {', '.join(CONSISTENCY_LEVELS)}")


def _deadline(wall: float, ttl: float | None) -> float | None:
    return wall + ttl if ttl else None


def _one_key(request: Any) -> tuple[str, ...]:
    return (request.key,)


def _no_keys(request: Any) -> tuple[str, ...]:
    return ()


# --- get, set, delete, mget, mset -------------------------------------------------------------


def _get(obj: dict[str, Any], rid: Any) -> Get:
    return Get(_key(obj), rid, _consistency(obj))


def _set(obj: dict[str, Any], rid: Any, max_depth: int = DEFAULT_MAX_VALUE_DEPTH) -> Set:
    key = _key(obj)
    if "value" not in obj:
        raise BadRequestError("missing field 'value'")
    value = obj["value"]
    vt = type(value)
    if (vt is list or vt is dict or vt is tuple) and exceeds_depth(value, max_depth):
        raise depth_error(max_depth)
    if len(obj) == (3 if rid is None else 4) and (rid is None or "id" in obj):
        return Set(key, value, None, rid)  # the common case: type, key, value (and id) only
    nx, xx = obj.get("nx"), obj.get("xx")
    for name, flag in (("nx", nx), ("xx", xx), ("get", obj.get("get")), ("keepttl", obj.get("keepttl"))):
        if flag is not None and type(flag) is not bool:
            raise BadRequestError(f"field {name!r} must be true or false")
    if nx and xx:
        raise BadRequestError("'nx' and 'xx' exclude each other")
    keep_ttl = bool(obj.get("keepttl"))
    ttl = _ttl(obj)
    at = _at(obj)
    if keep_ttl and (ttl is not None or at is not None):
        raise BadRequestError("'keepttl' excludes 'ttl' and 'at'")
    if ttl is not None and at is not None:
        raise BadRequestError("'ttl' and 'at' exclude each other")
    cond = "nx" if nx else "xx" if xx else None
    return Set(key, value, ttl, rid, _consistency(obj), cond, bool(obj.get("get")), keep_ttl, at)


def _encode_set(request: Set) -> dict[str, Any]:
    out = {"type": "set", "key": request.key, "value": request.value}
    if request.ttl is not None:
        out["ttl"] = request.ttl
    if request.cond is not None:
        out[request.cond] = True
    if request.get:
        out["get"] = True
    if request.keep_ttl:
        out["keepttl"] = True
    if request.at is not None:
        out["at"] = request.at
    return out


def _delete(obj: dict[str, Any], rid: Any) -> Delete:
    return Delete(_key(obj), rid, _consistency(obj))


def _mget(obj: dict[str, Any], rid: Any) -> MGet:
    return MGet(txn_kinds.key_list(obj), rid, _consistency(obj))


def _mset(obj: dict[str, Any], rid: Any, max_depth: int = DEFAULT_MAX_VALUE_DEPTH) -> MSet:
    entries = obj.get("entries")
    if type(entries) is not dict:
        raise BadRequestError("field 'entries' must be an object of key -> value")
    for key, value in entries.items():
        if type(key) is not str or not key:
            raise BadRequestError("every key in 'entries' must be a non-empty string")
        txn_kinds.check_key(key)
        if exceeds_depth(value, max_depth):
            raise depth_error(max_depth)
    return MSet(tuple(entries.items()), _ttl(obj), rid, _consistency(obj))


def _encode_mset(request: MSet) -> dict[str, Any]:
    out = {"type": "mset", "entries": dict(request.entries)}
    if request.ttl is not None:
        out["ttl"] = request.ttl
    return out


# --- expire, persist, incr --------------------------------------------------------------------


#: Redis 7's EXPIRE options: only without a TTL, only with one, only later, only earlier,
#: and XX with LT (only with a TTL, and only earlier; XX with GT is GT).
EXPIRE_CONDITIONS = ("nx", "xx", "gt", "lt", "xx+lt")


def _expire(obj: dict[str, Any], rid: Any) -> Expire:
    at = _at(obj)
    ttl = _ttl(obj) if at is None else None
    if ttl is None and at is None:
        raise BadRequestError("field 'ttl' must be a number of seconds > 0, or 'at' a deadline (use 'persist' to remove a TTL)")
    cond = obj.get("cond")
    if cond is not None and cond not in EXPIRE_CONDITIONS:
        raise BadRequestError(f"field 'cond' must be one of {', '.join(EXPIRE_CONDITIONS)}")
    return Expire(_key(obj), ttl, rid, _consistency(obj), at, cond)


def _persist(obj: dict[str, Any], rid: Any) -> Expire:
    return Expire(_key(obj), None, rid, _consistency(obj))


def _encode_expire(request: Expire) -> dict[str, Any]:
    if request.persist:
        return {"type": "persist", "key": request.key}
    out: dict[str, Any] = {"type": "expire", "key": request.key}
    if request.at is not None:
        out["at"] = request.at
    else:
        out["ttl"] = request.ttl
    if request.cond is not None:
        out["cond"] = request.cond
    return out


def _incr(obj: dict[str, Any], rid: Any) -> Incr:
    by = obj.get("by", 1)
    if type(by) is not int or not -(1 << 63) <= by < (1 << 63):
        raise BadRequestError("field 'by' must be a 64-bit integer")
    return Incr(_key(obj), by, rid, _consistency(obj))


# --- getdel, getex, append, incrbyfloat (actors.protocol.string_ops) --------------------------


def _getex(obj: dict[str, Any], rid: Any) -> GetEx:
    at = _at(obj)
    ttl = _ttl(obj)
    persist = obj.get("persist")
    if persist is not None and type(persist) is not bool:
        raise BadRequestError("field 'persist' must be true or false")
    if sum((ttl is not None, at is not None, bool(persist))) > 1:
        raise BadRequestError("'ttl', 'at' and 'persist' exclude each other")
    return GetEx(_key(obj), ttl, at, bool(persist), rid, _consistency(obj))


def _encode_getex(request: GetEx) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "getex", "key": request.key}
    if request.ttl is not None:
        out["ttl"] = request.ttl
    if request.at is not None:
        out["at"] = request.at
    if request.persist:
        out["persist"] = True
    return out


def _append(obj: dict[str, Any], rid: Any) -> Append:
    value = obj.get("value")
    if type(value) is not str and type(value) is not bytes:
        raise BadRequestError("field 'value' must be a string (or binary, over msgpack)")
    return Append(_key(obj), value, rid, _consistency(obj))


def _incrbyfloat(obj: dict[str, Any], rid: Any) -> IncrByFloat:
    by = obj.get("by")
    t = type(by)
    if t is int or (t is float and math.isfinite(by)):
        by = repr(by)
    elif t is not str:
        raise BadRequestError("field 'by' must be a finite number or its decimal text")
    return IncrByFloat(_key(obj), by, rid, _consistency(obj))


def _rename(obj: dict[str, Any], rid: Any) -> Rename:
    nx = obj.get("nx", False)
    if type(nx) is not bool:
        raise BadRequestError("field 'nx' must be true or false")
    return Rename(_key(obj), _key(obj, "new_key"), nx, rid, _consistency(obj))


def _encode_rename(request: Rename) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "rename", "key": request.key, "new_key": request.new_key}
    if request.nx:
        out["nx"] = True
    return out


# --- auth -------------------------------------------------------------------------------------


def _auth(obj: dict[str, Any], rid: Any) -> Auth:
    user, password = obj.get("user"), obj.get("password")
    if user is not None and (type(user) is not str or not user):
        raise BadRequestError("field 'user' must be a non-empty string (or absent: the default user)")
    if type(password) is not str and type(password) is not bytes:
        raise BadRequestError("field 'password' must be a string (or binary, over msgpack)")
    return Auth(user, password, rid)


def _encode_auth(request: Auth) -> dict[str, Any]:
    out = {"type": "auth", "password": request.password}
    if request.user is not None:
        out["user"] = request.user
    return out


# --- hashes and sets ---------------------------------------------------------------------------

#: Wire name -> ``(least, most, shape)`` of its ``args``: ``n`` names, ``nv`` name/value
#: pairs, ``ni`` a name and a 64-bit integer, ``scan`` a cursor (every item comes back at
#: once, cursor 0: a client filters by pattern itself; RESP's ``MATCH`` is applied there).
COLL_ARGS: dict[str, tuple[int, int | None, str]] = {
    "hset": (2, None, "nv"), "hget": (1, 1, "n"), "hmget": (1, None, "n"), "hgetall": (0, 0, "n"),
    "hdel": (1, None, "n"), "hexists": (1, 1, "n"), "hlen": (0, 0, "n"), "hkeys": (0, 0, "n"),
    "hvals": (0, 0, "n"), "hincrby": (2, 2, "ni"), "hscan": (1, 1, "scan"),
    "sadd": (1, None, "n"), "srem": (1, None, "n"), "smembers": (0, 0, "n"), "sismember": (1, 1, "n"),
    "scard": (0, 0, "n"), "sscan": (1, 1, "scan"), "keytype": (0, 0, "n"),
}


def coll_args(cmd: str, args: Any) -> tuple[Any, ...]:
    """``args`` of hash or set command ``cmd`` checked: names are strings, a hash's values
    strings, binary or integers, ``hincrby``'s increment and a scan's cursor integers."""
    least, most, shape = COLL_ARGS[cmd]
    if type(args) is not list and type(args) is not tuple:
        raise BadRequestError(f"field 'args' of {cmd} must be a list")
    n = len(args)
    if n < least or (most is not None and n > most) or (shape == "nv" and n % 2):
        raise BadRequestError(f"wrong number of arguments for {cmd}")
    for i, arg in enumerate(args):
        if shape == "nv" and i % 2:
            if type(arg) is not str and type(arg) is not bytes and type(arg) is not int:
                raise BadRequestError(f"{cmd}'s values must be strings, binary or integers")
        elif (shape == "ni" and i == 1) or (shape == "scan" and i == 0):
            if type(arg) is not int or not -(1 << 63) <= arg < (1 << 63) or (shape == "scan" and arg < 0):
                raise BadRequestError(f"{cmd}'s {'cursor' if shape == 'scan' else 'increment'} must be a 64-bit integer")
        elif type(arg) is not str:
            raise BadRequestError(f"{cmd}'s field and member names must be strings")
    return tuple(args)


def _coll_decoder(cmd: str) -> Decoder:
    def decode(obj: dict[str, Any], rid: Any) -> CollOp:
        return CollOp(_key(obj), cmd, coll_args(cmd, obj.get("args", [])), rid, _consistency(obj))

    return decode


def _encode_coll(request: CollOp) -> dict[str, Any]:
    return {"type": request.cmd, "key": request.key, "args": list(request.args)}


# --- the table ----------------------------------------------------------------------------------

_ROWS = (
    Kind(
        Get, Route.READ, {"get": _get}, lambda r: {"type": "get", "key": r.key}, _one_key, category=READ,
    ),
    Kind(
        Set, Route.WRITE, {"set": _set}, _encode_set, _one_key,
        items=lambda r, wall: ((r.key, r.value, _deadline(wall, r.ttl)),),
        rmw_if=lambda r: r.conditional,
        values=True,
        category=WRITE,
    ),
    Kind(
        Delete, Route.WRITE, {"delete": _delete}, lambda r: {"type": "delete", "key": r.key}, _one_key,
        category=WRITE,
    ),
    Kind(
        MGet, Route.READ, {"mget": _mget}, lambda r: {"type": "mget", "keys": list(r.keys)}, lambda r: r.keys,
        category=READ,
    ),
    Kind(
        MSet, Route.WRITE, {"mset": _mset}, _encode_mset, lambda r: tuple(key for key, _ in r.entries),
        items=lambda r, wall: tuple((key, value, _deadline(wall, r.ttl)) for key, value in r.entries),
        values=True,
        category=WRITE,
    ),
    Kind(Ping, Route.NODE, {"ping": lambda obj, rid: Ping(rid)}, lambda r: {"type": "ping"}, _no_keys),
    Kind(
        Stats, Route.LOCAL, {"stats": lambda obj, rid: Stats(rid)}, lambda r: {"type": "stats"}, _no_keys,
        category=ADMIN,
    ),
    Kind(
        Save, Route.LOCAL, {"save": lambda obj, rid: Save(obj.get("background") is True, rid)},
        lambda r: {"type": "save", "background": r.background}, _no_keys, category=ADMIN,
    ),
    Kind(
        Join, Route.NODE, {"join": lambda obj, rid: Join(_key(obj, "node_id"), rid)},
        lambda r: {"type": "join", "node_id": r.node_id}, _no_keys, category=ADMIN,
    ),
    Kind(
        Locate, Route.NODE, {"locate": lambda obj, rid: Locate(_key(obj), rid)},
        lambda r: {"type": "locate", "key": r.key}, _one_key, category=READ,
    ),
    Kind(
        Inspect, Route.LOCAL, {"inspect": lambda obj, rid: Inspect(_key(obj), rid)},
        lambda r: {"type": "inspect", "key": r.key}, _one_key, category=ADMIN,
    ),
    Kind(
        RemoveNode, Route.NODE, {"remove_node": lambda obj, rid: RemoveNode(_key(obj, "node_id"), rid)},
        lambda r: {"type": "remove_node", "node_id": r.node_id}, _no_keys, category=ADMIN,
    ),
    Kind(Expire, Route.UPDATE, {"expire": _expire, "persist": _persist}, _encode_expire, _one_key, category=WRITE),
    Kind(
        Ttl, Route.READ, {"ttl": lambda obj, rid: Ttl(_key(obj), rid, _consistency(obj))},
        lambda r: {"type": "ttl", "key": r.key}, _one_key, category=READ,
    ),
    Kind(
        Incr, Route.UPDATE, {"incr": _incr}, lambda r: {"type": "incr", "key": r.key, "by": r.by}, _one_key,
        category=WRITE,
    ),
    Kind(
        GetDel, Route.UPDATE, {"getdel": lambda obj, rid: GetDel(_key(obj), rid, _consistency(obj))},
        lambda r: {"type": "getdel", "key": r.key}, _one_key, category=WRITE,
    ),
    Kind(GetEx, Route.UPDATE, {"getex": _getex}, _encode_getex, _one_key, category=WRITE),
    Kind(
        Append, Route.UPDATE, {"append": _append}, lambda r: {"type": "append", "key": r.key, "value": r.value},
        _one_key, category=WRITE,
    ),
    Kind(
        IncrByFloat, Route.UPDATE, {"incrbyfloat": _incrbyfloat},
        lambda r: {"type": "incrbyfloat", "key": r.key, "by": r.by}, _one_key, category=WRITE,
    ),
    Kind(Rename, Route.UPDATE, {"rename": _rename}, _encode_rename, lambda r: (r.key, r.new_key), category=WRITE),
    # Answered by the connection when the node has passwords, else by the node (see Auth).
    Kind(Auth, Route.NODE, {"auth": _auth}, _encode_auth, _no_keys),
    # Transactions (run at their partition's coordinator, like read-modify-writes; a
    # multi's own requests are checked one by one), watches (the node keeps them per
    # connection), flush and scan: actors.protocol.txn_kinds.
    Kind(
        Multi, Route.UPDATE, {"multi": txn_kinds.decode_multi}, txn_kinds.encode_multi, lambda r: r.keys,
        values=True,
    ),
    Kind(
        Watch, Route.NODE, {"watch": txn_kinds.decode_watch, "unwatch": txn_kinds.decode_unwatch},
        lambda r: {"type": "watch", "keys": list(r.keys)} if r.keys else {"type": "unwatch"}, lambda r: r.keys,
        category=READ,
    ),
    Kind(Flush, Route.LOCAL, {"flush": txn_kinds.decode_flush}, lambda r: {"type": "flush"}, _no_keys, category=ADMIN),
    Kind(Scan, Route.LOCAL, {"scan": txn_kinds.decode_scan}, txn_kinds.encode_scan, _no_keys, category=READ),
    # Hashes and sets: read-modify-writes at the key's coordinator (actors/store/coll_ops.py).
    Kind(
        CollOp, Route.UPDATE, {cmd: _coll_decoder(cmd) for cmd in COLL_ARGS}, _encode_coll, _one_key,
        category=WRITE,
    ),
    # The read-modify-write coordinator's own requests: routed as data, never on the wire.
    Kind(ReadRecord, Route.READ, {}, None, _one_key),
    Kind(
        WriteRecord, Route.WRITE, {}, None, _one_key,
        items=lambda r, wall: ((r.key, r.value, r.deadline),),
    ),
)

#: Request type -> its row.
KINDS: dict[type, Kind] = {kind.type: kind for kind in _ROWS}


#: Request type -> its first wire name (``expire`` for both ``expire`` and ``persist``).
_WIRE_NAMES: dict[type, str] = {kind.type: next(iter(kind.decoders), kind.type.__name__.lower()) for kind in _ROWS}


def wire_name(request: Any) -> str:
    """The wire name of ``request``'s kind, for messages (``persist`` for a persist)."""
    if type(request) is Expire and request.persist:
        return "persist"
    if type(request) is CollOp:
        return request.cmd
    return _WIRE_NAMES.get(type(request), type(request).__name__.lower())


def route_of(request: Any) -> Route | None:
    """What a node does with ``request``; None for what is not a request (an ``ErrorReply``)."""
    kind = KINDS.get(type(request))
    if kind is None:
        return None
    if kind.rmw_if is not None and kind.rmw_if(request):
        return Route.UPDATE
    return kind.route


def is_data_request(request: Any) -> bool:
    """Coordinated across the owners of its keys (read-modify-writes are not: see rmw)."""
    route = route_of(request)
    return route is Route.READ or route is Route.WRITE


def is_write(request: Any) -> bool:
    """A request of a writing kind (a conditional ``set`` too: see :func:`is_update`)."""
    kind = KINDS.get(type(request))
    return kind is not None and kind.route is Route.WRITE


def is_update(request: Any) -> bool:
    """A read-modify-write, run at the key's coordinator one at a time per key."""
    return route_of(request) is Route.UPDATE
