"""Peer messages <-> wire objects (msgpack maps on a peer connection).

The peer protocol shares the client port: a connection whose first frame is ``hello``
is a peer connection and carries only the types below; a client connection carrying any
of them is refused (see ``docs/protocol.md``). Records travel as arrays
``[key, value, deadline, [wall_ms, logical, node_id], purge_at]``.

A peer's frame is checked as a client's request is: keys are non-empty strings, ids are
strings (never coerced with ``str()``, which would walk a nested value), and every value
a frame carries (written items, records, forwarded requests and replies) is no deeper
than ``max_depth`` (:mod:`actors.protocol.value_depth`). Nothing here recurses over a value.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from actors.protocol.errors import BadRequestError, ErrorCode
from actors.kernel.failures import brief, describe
from actors.protocol.messages import ErrorReply
from actors.protocol.replica_ops import ItemResults, Remove, Write
from actors.protocol.replica_ops import Apply, Fetch
from actors.protocol.peer_messages import (
    Forward,
    ForwardReply,
    Gossip,
    Member,
    PeerMessage,
    Pull,
    Push,
    PushAck,
    ReplicaAck,
    ReplicaRequest,
    ReplicaResponse,
    SyncListing,
    SyncRequest,
)
from actors.protocol.record import Record
from actors.protocol.value_depth import DEFAULT_MAX_VALUE_DEPTH, depth_error, exceeds_depth
from actors.protocol.version import Version

__all__ = ["HELLO", "PEER_TYPES", "decode_hello", "decode_peer", "encode_hello", "encode_peer"]

HELLO = "hello"
#: Version of the peer protocol; a peer speaking another is refused at ``hello``.
PROTOCOL_VERSION = 4  # 2: replica_request's compact "w" op and writers table; 3: "ws" and per-item
# results; 4: replica_response parts (``start``, ``ack``), replica_ack, push ``covered``


def encode_hello(node_id: str, addr: str, partitions: int) -> dict[str, Any]:
    return {"type": HELLO, "node_id": node_id, "addr": addr, "partitions": partitions, "proto": PROTOCOL_VERSION}


def decode_hello(obj: Any) -> tuple[str, str, int]:
    """``(node_id, addr, partitions)`` of a hello; raises BadRequestError when malformed."""
    if type(obj) is not dict or obj.get("type") != HELLO:
        raise BadRequestError("a peer connection must start with hello")
    node_id, addr, partitions = obj.get("node_id"), obj.get("addr"), obj.get("partitions")
    if type(node_id) is not str or not node_id or type(addr) is not str or type(partitions) is not int:
        raise BadRequestError("hello needs string node_id and addr and an integer partitions")
    if obj.get("proto") != PROTOCOL_VERSION:
        raise BadRequestError(f"peer protocol {brief(obj.get('proto'))} is not {PROTOCOL_VERSION}")
    return node_id, addr, partitions


def _v(v: Version) -> list[Any]:
    return [v.wall_ms, v.logical, v.node_id]


def _text(obj: Any) -> str:
    """A string field of a peer frame (an id, an address, a status)."""
    if type(obj) is not str:
        raise BadRequestError(f"a peer message carries {type(obj).__name__} where a string belongs")
    return obj


def _version(obj: Any) -> Version:
    wall_ms, logical, node_id = obj
    # Interned: every stored entry keeps its writer's id, one string per node, not per key.
    return Version(int(wall_ms), int(logical), sys.intern(_text(node_id)))


def _rec(r: Record | None) -> list[Any] | None:
    if r is None:
        return None
    return [r.key, r.value, r.deadline, _v(r.version), r.purge_at]


def _time(obj: Any) -> float | None:
    """A deadline or purge time: a number of epoch seconds, or null."""
    if obj is not None and type(obj) is not float and type(obj) is not int:
        raise BadRequestError("a deadline or purge time must be a number or null")
    return obj  # type: ignore[no-any-return]


def _record(obj: Any) -> Record | None:
    if obj is None:
        return None
    key, value, deadline, version, purge_at = obj
    return Record(key, value, _time(deadline), _version(version), _time(purge_at))


def _op(op: Any) -> list[Any]:
    t = type(op)
    if t is Fetch:
        return ["fetch", list(op.keys)]
    if t is Write:
        return ["write", [list(item) for item in op.items], _v(op.version), list(op.replicas)]
    if t is Remove:
        return ["remove", list(op.keys), _v(op.version), op.purge_at]
    if t is Apply:
        return ["apply", [_rec(r) for r in op.records]]
    raise TypeError(f"not a replica op: {type(op).__name__}")


#: Builds a Version without NamedTuple's Python-level ``__new__`` (one frame per op saved).
_new_tuple = tuple.__new__


def _encode_replica_request(m: ReplicaRequest) -> dict[str, Any]:
    """Single-key writes (what coordinators send) travel as ``["w", key, value, deadline,
    wall_ms, logical, writer]``, ``writer`` indexing the message's ``writers`` table of
    ``[node_id, [replica, ...]]``: an eighth of the wire objects of a ``write`` op."""
    writers: dict[tuple[str, tuple[str, ...]], int] = {}
    ops: list[Any] = []
    append = ops.append
    for op in m.ops:
        if type(op) is not Write or not (op.each or len(op.items) == 1):
            append(_op(op))
            continue
        wall_ms, logical, node_id = op.version
        ref = writers.get((node_id, op.replicas))
        if ref is None:
            ref = writers[(node_id, op.replicas)] = len(writers)
        if op.each:
            append(["ws", [list(item) for item in op.items], wall_ms, logical, ref])
        else:
            key, value, deadline = op.items[0]
            append(["w", key, value, deadline, wall_ms, logical, ref])
    out: dict[str, Any] = {"type": "replica_request", "req": m.req, "ops": ops}
    if not m.reply:
        out["noreply"] = True
    if writers:
        out["writers"] = [[node_id, list(replicas)] for node_id, replicas in writers]
    return out


def _decode_replica_request(o: dict[str, Any]) -> ReplicaRequest:
    writers = [
        (sys.intern(_text(node_id)), tuple(sys.intern(_text(r)) for r in replicas)) for node_id, replicas in o.get("writers", ())
    ]
    ops: list[Any] = []
    append = ops.append
    for obj in o["ops"]:
        kind = obj[0]
        if kind == "w":
            _, key, value, deadline, wall_ms, logical, ref = obj
            version, replicas = _writer_version(writers, wall_ms, logical, ref)
            append(Write((_item(key, value, deadline),), version, replicas))
        elif kind == "ws":
            _, items, wall_ms, logical, ref = obj
            version, replicas = _writer_version(writers, wall_ms, logical, ref)
            checked = tuple(_item(key, value, deadline) for key, value, deadline in items)
            if not checked:
                raise BadRequestError("a ws op needs at least one item")
            append(Write(checked, version, replicas, True))
        else:
            append(_decode_op(obj))
    return ReplicaRequest(int(o["req"]), tuple(ops), o.get("noreply") is not True)


def _writer_version(
    writers: list[tuple[str, tuple[str, ...]]], wall_ms: Any, logical: Any, ref: Any
) -> tuple[Version, tuple[str, ...]]:
    """The version and owners of a ``w``/``ws`` op, its writer taken from the table."""
    if type(wall_ms) is not int or type(logical) is not int or type(ref) is not int or ref < 0:
        raise BadRequestError("a w or ws op needs integers wall_ms, logical and writer")
    node_id, replicas = writers[ref]
    return _new_tuple(Version, (wall_ms, logical, node_id)), replicas


def _item(key: Any, value: Any, deadline: Any) -> tuple[str, Any, float | None]:
    """One written item, its key and deadline checked."""
    if type(key) is not str or not key:
        raise BadRequestError("peer message ReplicaRequest carries a key that is not a non-empty string")
    if deadline is not None and type(deadline) is not float and type(deadline) is not int:
        raise BadRequestError("a written item needs a numeric or null deadline")
    return key, value, deadline


def _decode_op(obj: list[Any]) -> Any:
    kind = obj[0]
    if kind == "fetch":
        return Fetch(tuple(obj[1]))
    if kind == "write":
        replicas = tuple(_text(r) for r in obj[3]) if len(obj) > 3 else ()
        items = tuple(_item(k, v, d) for k, v, d in obj[1])
        return Write(items, _version(obj[2]), replicas)
    if kind == "remove":
        return Remove(tuple(obj[1]), _version(obj[2]), _time(obj[3]))
    if kind == "apply":
        return Apply(tuple(_record(r) for r in obj[1]))  # type: ignore[misc]
    raise BadRequestError(f"unknown replica op {brief(kind)}")


def _result(result: Any) -> Any:
    if type(result) is ItemResults:
        return {"each": [_item_result(r) for r in result]}  # ints, conflicts and errors
    return _item_result(result)


def _item_result(result: Any) -> Any:
    """One op's answer, or one item's answer of an item-by-item write (never nested)."""
    if type(result) is Version:
        return {"conflict": _v(result)}
    if type(result) is ErrorReply:
        return {"error": result.code.value, "message": result.message}
    if type(result) is tuple:
        return [_rec(r) for r in result]
    return result


def _decode_item(obj: Any) -> Any:
    """One answer of an item-by-item write: 1, a conflict or an error (never another
    ``each``: answers do not nest, so decoding them never recurses)."""
    if type(obj) is int:
        return obj
    if type(obj) is dict and "each" not in obj:
        if "error" in obj:
            return ErrorReply(ErrorCode(obj["error"]), str(obj.get("message", "")))
        if "conflict" in obj:
            return _version(obj["conflict"])
    raise BadRequestError("an item's answer must be an integer, a conflict or an error")


def _decode_result(obj: Any) -> Any:
    if type(obj) is list:
        return tuple(_record(r) for r in obj)
    if type(obj) is dict:
        if "each" in obj:
            return ItemResults(_decode_item(r) for r in obj["each"])
        if "error" in obj:
            return ErrorReply(ErrorCode(obj["error"]), str(obj.get("message", "")))
        return _version(obj["conflict"])
    return obj


def _encode_replica_response(m: ReplicaResponse) -> dict[str, Any]:
    out = {"type": "replica_response", "req": m.req, "results": [_result(r) for r in m.results]}
    if m.start or m.ack:  # a part of a split answer (a whole answer travels as before)
        out["start"] = m.start
        out["ack"] = m.ack
    return out


def _decode_replica_response(o: dict[str, Any]) -> ReplicaResponse:
    """A response, or one part of one: ``start`` (default 0) a non-negative integer,
    ``ack`` (default false) a boolean, and a part (``ack`` set) answers at least one op.
    Whether ``start`` fits the request is the coordinator's check (it knows the ops)."""
    results = tuple(_decode_result(r) for r in o["results"])
    start = _index(o.get("start", 0))
    ack = o.get("ack", False)
    if type(ack) is not bool:
        raise BadRequestError("replica_response's ack must be a boolean")
    if ack and not results:
        raise BadRequestError("a replica_response part must answer at least one op")
    return ReplicaResponse(int(o["req"]), results, start, ack)


def _encode_push(m: Push) -> dict[str, Any]:
    out = {"type": "push", "sid": m.sid, "records": [_rec(r) for r in m.records], "ack": m.ack, "reply": m.reply}
    if m.covered is not None:
        out["covered"] = m.covered
    return out


def _decode_push(o: dict[str, Any]) -> Push:
    """``covered`` (absent: every pulled key) only on a reply, and at least 1: an answer
    that covers no key would have its puller ask again forever."""
    reply = bool(o.get("reply"))
    covered = o.get("covered")
    if covered is not None:
        if not reply:
            raise BadRequestError("only a push that answers a pull has covered")
        if type(covered) is not int or covered < 1:
            raise BadRequestError(f"push's covered must be a positive integer, not {brief(covered)}")
    return Push(int(o["sid"]), tuple(_record(r) for r in o["records"]), bool(o.get("ack")), reply, covered)  # type: ignore[misc]


def _index(obj: Any) -> int:
    """An op index: a non-negative integer (not a boolean, not a float)."""
    if type(obj) is not int or obj < 0:
        raise BadRequestError(f"an op index must be a non-negative integer, not {brief(obj)}")
    return obj


_ENCODERS: dict[type, Callable[[Any], dict[str, Any]]] = {
    Gossip: lambda m: {
        "type": "gossip",
        "members": [list(member) for member in m.members],
        "reply": m.reply,
        "partitions": m.partitions,
    },
    ReplicaRequest: _encode_replica_request,
    ReplicaResponse: _encode_replica_response,
    ReplicaAck: lambda m: {"type": "replica_ack", "req": m.req, "start": m.start},
    SyncRequest: lambda m: {"type": "sync_request", "sid": m.sid, "digests": [list(d) for d in m.digests]},
    SyncListing: lambda m: {
        "type": "sync_listing",
        "sid": m.sid,
        "listings": [[p, [[k, _v(v)] for k, v in items]] for p, items in m.listings],
    },
    Pull: lambda m: {"type": "pull", "sid": m.sid, "keys": list(m.keys)},
    Push: _encode_push,
    PushAck: lambda m: {"type": "push_ack", "sid": m.sid, "applied": m.applied},
    Forward: lambda m: {"type": "forward", "fid": m.fid, "request": m.request},
    ForwardReply: lambda m: {"type": "forward_reply", "fid": m.fid, "reply": m.reply},
}

_DECODERS: dict[str, Callable[[dict[str, Any]], PeerMessage]] = {
    "gossip": lambda o: Gossip(
        tuple(Member(_text(n), _text(a), int(i), _text(s)) for n, a, i, s in o["members"]),
        bool(o.get("reply")),
        int(o.get("partitions", 256)),
    ),
    "replica_request": _decode_replica_request,
    "replica_response": _decode_replica_response,
    "replica_ack": lambda o: ReplicaAck(int(o["req"]), _index(o["start"])),
    "sync_request": lambda o: SyncRequest(int(o["sid"]), tuple((int(p), int(d)) for p, d in o["digests"])),
    "sync_listing": lambda o: SyncListing(
        int(o["sid"]),
        tuple((int(p), tuple((k, _version(v)) for k, v in items)) for p, items in o["listings"]),
    ),
    "pull": lambda o: Pull(int(o["sid"]), tuple(o["keys"])),
    "push": _decode_push,
    "push_ack": lambda o: PushAck(int(o["sid"]), int(o["applied"])),
    "forward": lambda o: Forward(int(o["fid"]), _map(o["request"])),
    "forward_reply": lambda o: ForwardReply(int(o["fid"]), _map(o["reply"])),
}


def _map(obj: Any) -> dict[str, Any]:
    if type(obj) is not dict:
        raise BadRequestError("forwarded requests and replies are maps")
    return obj

#: Message types only a peer connection may carry (``hello`` opens one).
PEER_TYPES: frozenset[str] = frozenset(_DECODERS) | {HELLO}


def encode_peer(msg: PeerMessage) -> dict[str, Any]:
    return _ENCODERS[type(msg)](msg)


def decode_peer(obj: Any, max_depth: int = DEFAULT_MAX_VALUE_DEPTH) -> PeerMessage:
    """A peer message from a wire object; raises BadRequestError when malformed.

    ``max_depth``: the deepest value the frame may carry (``--max-value-depth``).
    """
    if type(obj) is not dict:
        raise BadRequestError("a peer message must be a map")
    kind = obj.get("type")
    decoder = _DECODERS.get(kind) if type(kind) is str else None
    if decoder is None:
        raise BadRequestError(f"unknown peer message type {brief(kind)}")
    try:
        msg = decoder(obj)
    except BadRequestError:
        raise
    except Exception as exc:  # any shape error in a peer's frame is that peer's fault
        raise BadRequestError(f"malformed peer message {kind!r}: {describe(exc)}") from None
    _check_keys(msg)
    _check_values(msg, max_depth)
    return msg


def _keys_ok(keys: Any) -> bool:
    return all(type(k) is str and k for k in keys)


def _check_keys(msg: PeerMessage) -> None:
    """Keys reach hashing and the keyspace: a peer must send non-empty strings only."""
    t = type(msg)
    ok = True
    if t is Pull:
        ok = _keys_ok(msg.keys)
    elif t is Push:
        ok = _keys_ok(r.key for r in msg.records)
    elif t is SyncListing:
        ok = all(_keys_ok(k for k, _ in items) for _, items in msg.listings)
    elif t is ReplicaRequest:
        for op in msg.ops:  # a Write's keys were checked item by item as it was decoded (_item)
            ot = type(op)
            if ot is Fetch or ot is Remove:
                ok = ok and _keys_ok(op.keys)
            elif ot is Apply:
                ok = ok and _keys_ok(r.key for r in op.records)
    elif t is ReplicaResponse:
        for result in msg.results:
            if type(result) is tuple:
                ok = ok and _keys_ok(r.key for r in result if r is not None)
    if not ok:
        raise BadRequestError(f"peer message {t.__name__} carries a key that is not a non-empty string")


def _too_deep(value: Any, limit: int) -> bool:
    """:func:`exceeds_depth`, with a scalar (most values) settled by a type check inline."""
    t = type(value)
    return (t is list or t is dict or t is tuple) and exceeds_depth(value, limit)


def _records_too_deep(records: Any, limit: int) -> bool:
    for r in records:
        if r is not None and _too_deep(r.value, limit):
            return True
    return False


def _wire_too_deep(obj: dict[str, Any], limit: int) -> bool:
    """Whether a forwarded request or reply (a client wire object) carries a value deeper
    than ``limit``: ``value``, each of ``entries`` and each item of ``values``."""
    if exceeds_depth(obj.get("value"), limit):
        return True
    entries = obj.get("entries")
    if type(entries) is dict and any(exceeds_depth(v, limit) for v in entries.values()):
        return True
    values = obj.get("values")
    if type(values) is list:
        return any(type(item) is dict and exceeds_depth(item.get("value"), limit) for item in values)
    return False


def _check_values(msg: PeerMessage, limit: int) -> None:
    """Every value a peer frame carries is refused past ``limit`` levels, as a client's is."""
    t = type(msg)
    deep = False
    if t is ReplicaRequest:
        for op in msg.ops:
            ot = type(op)
            if ot is Write:
                for item in op.items:
                    value = item[1]
                    vt = type(value)
                    if (vt is list or vt is dict or vt is tuple) and exceeds_depth(value, limit):
                        deep = True
                        break
            elif ot is Apply:
                deep = _records_too_deep(op.records, limit)
            if deep:
                break
    elif t is ReplicaResponse:
        deep = any(type(result) is tuple and _records_too_deep(result, limit) for result in msg.results)
    elif t is Push:
        deep = _records_too_deep(msg.records, limit)
    elif t is Forward:
        deep = _wire_too_deep(msg.request, limit)
    elif t is ForwardReply:
        deep = _wire_too_deep(msg.reply, limit)
    if deep:
        raise depth_error(limit)
