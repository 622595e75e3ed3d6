"""Wire dicts <-> messages: the one place that knows the protocol's field names.

Framing (JSON lines, msgpack) turns bytes into dicts in ``runtime/``; this module turns
those dicts into typed requests and typed replies back into dicts, identically for both
framings. See ``docs/protocol.md`` for the shapes. Each request kind's own decoder and
encoder are in its row of :mod:`actors.protocol.kinds`; this module dispatches to them.

Rules: unknown fields are ignored (the Go original's clients send ``node_id`` on ``set``); an optional
``"id"`` is echoed in the reply; anything malformed raises a typed
:class:`~actors.protocol.errors.CacheError` with a message that says what was wrong. A value
(``set``'s, each of ``mset``'s) nested deeper than ``max_depth`` containers is malformed
(:mod:`actors.protocol.value_depth`): nothing deeper ever reaches the store or a peer.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from actors.kernel.failures import brief, log_failure
from actors.protocol.errors import BadRequestError, CacheError, ErrorCode, InternalError, UnauthorizedError, UnknownTypeError
from actors.protocol.kinds import KINDS
from actors.protocol.messages import (
    Ack,
    ErrorReply,
    Get,
    InspectReply,
    LocateReply,
    Pong,
    Reply,
    Request,
    Set,
    StatsReply,
    TtlReply,
    Value,
    Values,
)
from actors.protocol.peer_codec import PEER_TYPES
from actors.protocol.record import Record
from actors.protocol.txn_messages import Multi, MultiReply, ScanReply
from actors.protocol.collection import HASH, SET, Coll, view
from actors.protocol.replica_wire import decode_coll, wire_coll
from actors.protocol.value_depth import DEFAULT_MAX_VALUE_DEPTH
from actors.protocol.version import Version

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


#: Wire name -> decoder, from the kinds table, in its order.
_DECODERS: dict[str, Callable[..., Request]] = {
    wire: decode for kind in KINDS.values() for wire, decode in kind.decoders.items()
}
#: The decoders of kinds that carry values: they also get ``max_depth``.
_CARRY_VALUES = frozenset(decode for kind in KINDS.values() if kind.values for decode in kind.decoders.values())

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
    if decoder in _CARRY_VALUES:
        return decoder(obj, obj.get("id"), max_depth)
    return decoder(obj, obj.get("id"))


def error_reply(exc: CacheError, obj: Any = None) -> ErrorReply:
    """The reply for a request that failed, echoing its id when there is one."""
    rid = obj.get("id") if type(obj) is dict else None
    return ErrorReply(exc.code, exc.message, rid)


def request_or_error(obj: Any, max_depth: int = DEFAULT_MAX_VALUE_DEPTH, plain: bool = False) -> Any:
    """:func:`decode_request`, or the error reply for a request that cannot be decoded.

    Never raises: a decoder bug costs that request an ``internal`` reply (logged once),
    never the connection or the host's callback.

    The two commonest shapes, a plain get (``type``, ``key``) and a plain set (``type``,
    ``key``, ``value`` not a container), each with an optional ``id``, are built here
    without the kinds table's dispatch (a quarter of decoding a pipelined set): the same
    request its decoder makes. A key that could be refused (empty, or starting with the
    reserved ``\\x00``) and anything else take the general path. With ``plain``, those
    without an id come as plain items instead (:mod:`actors.protocol.edge`: the key, or
    ``(key, value, None)``), for a host that sends them so.
    """
    if type(obj) is dict:
        rid = obj.get("id")
        n = len(obj) if rid is None else len(obj) - 1
        if n <= 3:
            key = obj.get("key")
            if type(key) is str and key and key[0] != "\x00":
                kind = obj.get("type")
                if n == 2:
                    if kind == "get":
                        return key if plain and rid is None else Get(key, rid)
                elif n == 3 and kind == "set" and "value" in obj:
                    value = obj["value"]
                    vt = type(value)
                    if vt is not list and vt is not dict and vt is not tuple:
                        return (key, value, None) if plain and rid is None else Set(key, value, None, rid)
    try:
        return decode_request(obj, max_depth)
    except CacheError as exc:
        return error_reply(exc, obj)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log_failure(_logger, "decoding a request", exc)
        return error_reply(InternalError(f"internal error decoding this request ({type(exc).__name__})"), obj)


def encode_request(request: Request) -> dict[str, Any]:
    """The wire object for a request (used by clients and round-trip tests)."""
    kind = KINDS.get(type(request))
    if kind is None or kind.encode is None:
        raise TypeError(f"not a request: {type(request).__name__}")
    out = kind.encode(request)
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
            if type(record.value) is Coll:  # a hash or set: as a client sees it, and its whole state
                kind, items = view(record.value)
                out["value"] = {"type": {HASH: "hash", SET: "set"}.get(kind or "", "none"), "items": items}
                out["collection"] = wire_coll(record.value)
            out["deadline"] = record.deadline
            out["version"] = list(record.version)
            out["purge_at"] = record.purge_at
        if reply.replicas:
            out["replicas"] = list(reply.replicas)
    elif t is MultiReply:
        # aborted (a watched key changed): "replies" null, as EXEC answers nil
        out = {"type": "multi", "success": True, "replies": None if reply.replies is None else [encode_reply(r) for r in reply.replies]}
    elif t is ScanReply:
        out = {"type": "scan", "success": True, "cursor": reply.cursor, "keys": list(reply.keys)}
        if reply.total is not None:
            out["total"] = reply.total
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
                decode_coll(obj["collection"]) if "collection" in obj else obj.get("value"),
                obj.get("deadline"),
                Version(wall_ms, logical, node_id),
                obj.get("purge_at"),
            )
        return InspectReply(str(obj.get("key")), record, rid, tuple(obj.get("replicas") or ()))
    if kind == "multi":
        raw = obj.get("replies")
        if raw is None:
            return MultiReply(None, rid)
        subs = request.requests if type(request) is Multi else ()
        return MultiReply(tuple(decode_reply(r, subs[i] if i < len(subs) else None) for i, r in enumerate(raw)), rid)
    if kind == "scan":
        total = obj.get("total")
        return ScanReply(int(obj.get("cursor", 0)), tuple(obj.get("keys") or ()), rid, None if total is None else int(total))
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
