"""Wire dicts <-> messages: the one place that knows the protocol's field names.

Framing (JSON lines, msgpack) turns bytes into dicts in ``runtime/``; this module turns
those dicts into typed requests and typed replies back into dicts, identically for both
framings. See ``docs/protocol.md`` for the shapes.

Rules: unknown fields are ignored (seed clients send ``node_id`` on ``set``); an optional
``"id"`` is echoed in the reply; anything malformed raises a typed
:class:`~actors.protocol.errors.CacheError` with a message that says what was wrong. A value
(``set``'s, each of ``mset``'s) nested deeper than ``max_depth`` containers is malformed
(:mod:`actors.protocol.value_depth`): nothing deeper ever reaches the store or a peer.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable

from actors.protocol.errors import BadRequestError, CacheError, ErrorCode, InternalError, UnauthorizedError, UnknownTypeError
from actors.kernel.failures import brief, log_failure
from actors.protocol.consistency import CONSISTENCY_LEVELS
from actors.protocol.peer_codec import PEER_TYPES
from actors.protocol.record import Record
from actors.protocol.version import Version
from actors.protocol.value_depth import DEFAULT_MAX_VALUE_DEPTH, depth_error, exceeds_depth
from actors.protocol.messages import (
    Ack,
    Delete,
    ErrorReply,
    Expire,
    Get,
    Incr,
    Inspect,
    InspectReply,
    Join,
    Locate,
    LocateReply,
    RemoveNode,
    MGet,
    MSet,
    Ping,
    Pong,
    Reply,
    Request,
    Set,
    Stats,
    StatsReply,
    Ttl,
    TtlReply,
    Value,
    Values,
)

__all__ = [
    "REQUEST_TYPES",
    "decode_reply",
    "decode_request",
    "encode_reply",
    "encode_request",
    "error_reply",
    "request_or_error",
]

_logger = logging.getLogger("actorcache.codec")


def _key(obj: dict[str, Any], field: str = "key") -> str:
    key = obj.get(field)
    if type(key) is not str:
        if key is None:
            raise BadRequestError(f"missing field {field!r}")
        raise BadRequestError(f"field {field!r} must be a string, not {type(key).__name__}")
    if not key:
        raise BadRequestError(f"field {field!r} must not be empty")
    return key


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


def _consistency(obj: dict[str, Any]) -> str | None:
    level = obj.get("consistency")
    if level is None or level in CONSISTENCY_LEVELS:
        return level
    raise BadRequestError(f"field 'consistency' must be one of {', '.join(CONSISTENCY_LEVELS)}")


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
    if keep_ttl and ttl is not None:
        raise BadRequestError("'keepttl' and 'ttl' exclude each other")
    cond = "nx" if nx else "xx" if xx else None
    return Set(key, value, ttl, rid, _consistency(obj), cond, bool(obj.get("get")), keep_ttl)


def _expire(obj: dict[str, Any], rid: Any) -> Expire:
    ttl = _ttl(obj)
    if ttl is None:
        raise BadRequestError("field 'ttl' must be a number of seconds > 0 (use 'persist' to remove a TTL)")
    return Expire(_key(obj), ttl, rid, _consistency(obj))


def _incr(obj: dict[str, Any], rid: Any) -> Incr:
    by = obj.get("by", 1)
    if type(by) is not int or not -(1 << 63) <= by < (1 << 63):
        raise BadRequestError("field 'by' must be a 64-bit integer")
    return Incr(_key(obj), by, rid, _consistency(obj))


def _delete(obj: dict[str, Any], rid: Any) -> Delete:
    return Delete(_key(obj), rid, _consistency(obj))


def _mget(obj: dict[str, Any], rid: Any) -> MGet:
    keys = obj.get("keys")
    if type(keys) is not list:
        raise BadRequestError("field 'keys' must be a list of strings")
    for key in keys:
        if type(key) is not str or not key:
            raise BadRequestError("every key in 'keys' must be a non-empty string")
    return MGet(tuple(keys), rid, _consistency(obj))


def _mset(obj: dict[str, Any], rid: Any, max_depth: int = DEFAULT_MAX_VALUE_DEPTH) -> MSet:
    entries = obj.get("entries")
    if type(entries) is not dict:
        raise BadRequestError("field 'entries' must be an object of key -> value")
    for key, value in entries.items():
        if type(key) is not str or not key:
            raise BadRequestError("every key in 'entries' must be a non-empty string")
        if exceeds_depth(value, max_depth):
            raise depth_error(max_depth)
    return MSet(tuple(entries.items()), _ttl(obj), rid, _consistency(obj))


def _join(obj: dict[str, Any], rid: Any) -> Join:
    return Join(_key(obj, "node_id"), rid)


_DECODERS: dict[str, Callable[[dict[str, Any], Any], Request]] = {
    "get": _get,
    "set": _set,
    "delete": _delete,
    "mget": _mget,
    "mset": _mset,
    "ping": lambda obj, rid: Ping(rid),
    "stats": lambda obj, rid: Stats(rid),
    "join": _join,
    "locate": lambda obj, rid: Locate(_key(obj), rid),
    "inspect": lambda obj, rid: Inspect(_key(obj), rid),
    "remove_node": lambda obj, rid: RemoveNode(_key(obj, "node_id"), rid),
    "expire": _expire,
    "persist": lambda obj, rid: Expire(_key(obj), None, rid, _consistency(obj)),
    "ttl": lambda obj, rid: Ttl(_key(obj), rid, _consistency(obj)),
    "incr": _incr,
}

#: The request types a client may send.
REQUEST_TYPES: tuple[str, ...] = tuple(_DECODERS)


def decode_request(obj: Any, max_depth: int = DEFAULT_MAX_VALUE_DEPTH) -> Request:
    """A typed request from a decoded wire object; raises a typed CacheError.

    ``max_depth``: the deepest value a ``set`` or ``mset`` may carry (``--max-value-depth``).
    """
    if type(obj) is not dict:
        raise BadRequestError(f"a request must be an object, not {_json_type(obj)}")
    kind = obj.get("type")
    decoder = _DECODERS.get(kind) if type(kind) is str else None
    if decoder is None:
        if kind is None:
            raise BadRequestError("missing field 'type'")
        if type(kind) is not str:
            raise BadRequestError("field 'type' must be a string")
        if kind in PEER_TYPES:
            raise UnauthorizedError(f"{kind!r} is a peer message; peer connections start with 'hello'")
        raise UnknownTypeError(f"unknown request type {kind!r}; known: {', '.join(REQUEST_TYPES)}")
    if decoder is _set or decoder is _mset:  # the requests that carry values
        return decoder(obj, obj.get("id"), max_depth)  # type: ignore[call-arg]
    return decoder(obj, obj.get("id"))


def error_reply(exc: CacheError, obj: Any = None) -> ErrorReply:
    """The reply for a request that failed, echoing its id when there is one."""
    rid = obj.get("id") if type(obj) is dict else None
    return ErrorReply(exc.code, exc.message, rid)


def request_or_error(obj: Any, max_depth: int = DEFAULT_MAX_VALUE_DEPTH) -> Request | ErrorReply:
    """:func:`decode_request`, or the error reply for a request that cannot be decoded.

    Never raises: a decoder bug costs that request an ``internal`` reply (logged once),
    never the connection or the host's callback.
    """
    try:
        return decode_request(obj, max_depth)
    except CacheError as exc:
        return error_reply(exc, obj)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log_failure(_logger, "decoding a request", exc)
        return error_reply(InternalError(f"internal error decoding this request ({type(exc).__name__})"), obj)


def encode_request(request: Request) -> dict[str, Any]:
    """The wire object for a request (used by clients and round-trip tests)."""
    t = type(request)
    if t is Get:
        out: dict[str, Any] = {"type": "get", "key": request.key}
    elif t is Set:
        out = {"type": "set", "key": request.key, "value": request.value}
        if request.ttl is not None:
            out["ttl"] = request.ttl
        if request.cond is not None:
            out[request.cond] = True
        if request.get:
            out["get"] = True
        if request.keep_ttl:
            out["keepttl"] = True
    elif t is Delete:
        out = {"type": "delete", "key": request.key}
    elif t is MGet:
        out = {"type": "mget", "keys": list(request.keys)}
    elif t is MSet:
        out = {"type": "mset", "entries": dict(request.entries)}
        if request.ttl is not None:
            out["ttl"] = request.ttl
    elif t is Ping:
        out = {"type": "ping"}
    elif t is Stats:
        out = {"type": "stats"}
    elif t is Join:
        out = {"type": "join", "node_id": request.node_id}
    elif t is Locate:
        out = {"type": "locate", "key": request.key}
    elif t is Inspect:
        out = {"type": "inspect", "key": request.key}
    elif t is RemoveNode:
        out = {"type": "remove_node", "node_id": request.node_id}
    elif t is Expire:
        out = {"type": "expire", "key": request.key, "ttl": request.ttl} if request.ttl else {"type": "persist", "key": request.key}
    elif t is Ttl:
        out = {"type": "ttl", "key": request.key}
    elif t is Incr:
        out = {"type": "incr", "key": request.key, "by": request.by}
    else:
        raise TypeError(f"not a request: {type(request).__name__}")
    if getattr(request, "consistency", None) is not None:
        out["consistency"] = request.consistency
    if request.rid is not None:
        out["id"] = request.rid
    return out


def encode_reply(reply: Reply) -> dict[str, Any]:
    """The wire object for a reply. Field order is fixed: it is what clients see."""
    t = type(reply)
    if t is Value:
        out: dict[str, Any] = {"type": "response", "value": reply.value, "success": reply.found}
    elif t is Ack:
        out = {"type": "ack", "success": True}
        if reply.deleted is not None:
            out["deleted"] = reply.deleted
        if reply.applied is not None:
            out["applied"] = reply.applied
    elif t is Values:
        out = {
            "type": "response",
            "success": True,
            "values": [{"key": k, "value": v, "found": f} for k, v, f in reply.items],
        }
    elif t is ErrorReply:
        out = {"type": "error", "success": False, "error": reply.code.value, "message": reply.message}
    elif t is Pong:
        out = {"type": "pong", "success": True}
    elif t is StatsReply:
        out = {"type": "stats", "success": True, "stats": reply.stats}
    elif t is TtlReply:
        out = {"type": "ttl", "success": True, "found": reply.found, "ttl": reply.ttl}
    elif t is LocateReply:
        out = {
            "type": "locate",
            "success": True,
            "key": reply.key,
            "partition": reply.partition,
            "owners": list(reply.owners),
        }
    elif t is InspectReply:
        record = reply.record
        out = {"type": "inspect", "success": True, "key": reply.key, "found": False, "tombstone": False}
        if record is not None:
            out["found"] = record.purge_at is None
            out["tombstone"] = record.purge_at is not None
            out["value"] = record.value
            out["deadline"] = record.deadline
            out["version"] = list(record.version)
            out["purge_at"] = record.purge_at
        if reply.replicas:
            out["replicas"] = list(reply.replicas)
    else:
        raise TypeError(f"not a reply: {type(reply).__name__}")
    if reply.rid is not None:
        out["id"] = reply.rid
    return out


def decode_reply(obj: Any, request: Request | None = None) -> Reply:
    """A typed reply from a wire object (client side).

    ``request`` disambiguates the two ``response`` shapes (get vs mget); without it the
    presence of ``values`` decides.
    """
    if type(obj) is not dict:
        raise BadRequestError(f"a reply must be an object, not {_json_type(obj)}")
    kind = obj.get("type")
    rid = obj.get("id")
    if kind == "response":
        if "values" in obj and not isinstance(request, Get):
            return Values(
                tuple((item["key"], item.get("value"), bool(item.get("found"))) for item in obj["values"]),
                rid,
            )
        return Value(obj.get("value"), bool(obj.get("success")), rid)
    if kind == "ack":
        return Ack(rid, obj.get("deleted"), obj.get("applied"))
    if kind == "ttl":
        return TtlReply(bool(obj.get("found")), obj.get("ttl"), rid)
    if kind == "error":
        try:
            code = ErrorCode(obj.get("error"))
        except ValueError:
            code = ErrorCode.INTERNAL
        return ErrorReply(code, str(obj.get("message", "")), rid)
    if kind == "pong":
        return Pong(rid)
    if kind == "stats":
        return StatsReply(dict(obj.get("stats") or {}), rid)
    if kind == "locate":
        return LocateReply(str(obj.get("key")), int(obj.get("partition", -1)), tuple(obj.get("owners") or ()), rid)
    if kind == "inspect":
        record = None
        if obj.get("version") is not None:
            wall_ms, logical, node_id = obj["version"]
            record = Record(
                str(obj.get("key")),
                obj.get("value"),
                obj.get("deadline"),
                Version(wall_ms, logical, node_id),
                obj.get("purge_at"),
            )
        return InspectReply(str(obj.get("key")), record, rid, tuple(obj.get("replicas") or ()))
    raise BadRequestError(f"unknown reply type {brief(kind)}")


def _json_type(obj: Any) -> str:
    return {
        list: "an array",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
        type(None): "null",
        bytes: "binary",
    }.get(type(obj), type(obj).__name__)
