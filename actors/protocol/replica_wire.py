"""Wire forms of what replication carries: versions, records, replica ops and their
results, and the three messages made of them (``replica_request``, ``replica_response``,
``push``).

Split from :mod:`actors.protocol.peer_codec` (which owns the message table, ``hello`` and
the frame-wide checks) because these are the protocol's bulk: every written value and
every streamed record passes through here. Records travel as arrays
``[key, value, deadline, [wall_ms, logical, node_id], purge_at]``.

Invariants: decoders raise :class:`~actors.protocol.errors.BadRequestError` on anything
malformed (a peer's bytes are as hostile as a client's), check keys item by item as they
decode, never coerce an id with ``str()`` (which would walk a nested value) and never
recurse over a value; a version's ints fit a clock (``_version_ints``).
"""

from __future__ import annotations

import sys
from typing import Any

from actors.kernel.failures import brief
from actors.protocol.errors import BadRequestError, ErrorCode
from actors.protocol.messages import ErrorReply
from actors.protocol.peer_messages import Push, ReplicaRequest, ReplicaResponse
from actors.protocol.record import Record
from actors.protocol.replica_ops import Apply, Fetch, ItemResults, Remove, Write
from actors.protocol.version import MAX_LOGICAL, MAX_WALL_MS, Version

__all__ = [
    "decode_push",
    "decode_record",
    "decode_replica_request",
    "decode_replica_response",
    "decode_version",
    "encode_push",
    "encode_replica_request",
    "encode_replica_response",
    "op_index",
    "text",
    "wire_version",
]


def wire_version(v: Version) -> list[Any]:
    return [v.wall_ms, v.logical, v.node_id]


def text(obj: Any) -> str:
    """A string field of a peer frame (an id, an address, a status)."""
    if type(obj) is not str:
        raise BadRequestError(f"a peer message carries {type(obj).__name__} where a string belongs")
    return obj


def _version_ints(wall_ms: Any, logical: Any) -> None:
    """A version's clock fields are ints a clock can hold: ``wall_ms`` within int64 and
    ``logical`` within :data:`~actors.protocol.version.MAX_LOGICAL` (a forged
    ``[2**64-1, 2**64-1]`` would leave an observing clock unencodable)."""
    if type(wall_ms) is not int or type(logical) is not int:
        raise BadRequestError("a version's wall_ms and logical must be integers")
    if not 0 <= wall_ms <= MAX_WALL_MS or not 0 <= logical <= MAX_LOGICAL:
        raise BadRequestError(
            f"a version must have 0 <= wall_ms <= {MAX_WALL_MS} and 0 <= logical <= {MAX_LOGICAL}, "
            f"not [{brief(wall_ms)}, {brief(logical)}]"
        )


def decode_version(obj: Any) -> Version:
    wall_ms, logical, node_id = obj
    _version_ints(wall_ms, logical)
    # Interned: every stored entry keeps its writer's id, one string per node, not per key.
    return Version(wall_ms, logical, sys.intern(text(node_id)))


def _rec(r: Record | None) -> list[Any] | None:
    if r is None:
        return None
    return [r.key, r.value, r.deadline, wire_version(r.version), r.purge_at]


def _time(obj: Any) -> float | None:
    """A deadline or purge time: a number of epoch seconds, or null."""
    if obj is not None and type(obj) is not float and type(obj) is not int:
        raise BadRequestError("a deadline or purge time must be a number or null")
    return obj  # type: ignore[no-any-return]


def decode_record(obj: Any) -> Record | None:
    if obj is None:
        return None
    key, value, deadline, version, purge_at = obj
    return Record(key, value, _time(deadline), decode_version(version), _time(purge_at))


def _op(op: Any) -> list[Any]:
    t = type(op)
    if t is Fetch:
        return ["fetch", list(op.keys)]
    if t is Write:
        return ["write", op.items, wire_version(op.version), op.replicas]  # tuples pack as arrays
    if t is Remove:
        return ["remove", list(op.keys), wire_version(op.version), op.purge_at]
    if t is Apply:
        return ["apply", [_rec(r) for r in op.records]]
    raise TypeError(f"not a replica op: {type(op).__name__}")


#: Builds a Version without NamedTuple's Python-level ``__new__`` (one frame per op saved).
_new_tuple = tuple.__new__


def encode_replica_request(m: ReplicaRequest) -> dict[str, Any]:
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
            # The items tuple as it is: msgpack packs a tuple as the array a list makes
            # (the same bytes), without a list per item.
            append(["ws", op.items, wall_ms, logical, ref])
        else:
            key, value, deadline = op.items[0]
            append(["w", key, value, deadline, wall_ms, logical, ref])
    out: dict[str, Any] = {"type": "replica_request", "req": m.req, "ops": ops}
    if not m.reply:
        out["noreply"] = True
    if writers:
        out["writers"] = [[node_id, list(replicas)] for node_id, replicas in writers]
    return out


def decode_replica_request(o: dict[str, Any]) -> ReplicaRequest:
    writers = [
        (sys.intern(text(node_id)), tuple(sys.intern(text(r)) for r in replicas)) for node_id, replicas in o.get("writers", ())
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
            checked = []
            for key, value, deadline in items:  # _item's checks, inline: a ws op carries many
                if type(key) is not str or not key:
                    raise BadRequestError("peer message ReplicaRequest carries a key that is not a non-empty string")
                if deadline is not None and type(deadline) is not float and type(deadline) is not int:
                    raise BadRequestError("a written item needs a numeric or null deadline")
                checked.append((key, value, deadline))
            if not checked:
                raise BadRequestError("a ws op needs at least one item")
            append(Write(tuple(checked), version, replicas, True))
        else:
            append(_decode_op(obj))
    return ReplicaRequest(int(o["req"]), tuple(ops), o.get("noreply") is not True)


def _writer_version(
    writers: list[tuple[str, tuple[str, ...]]], wall_ms: Any, logical: Any, ref: Any
) -> tuple[Version, tuple[str, ...]]:
    """The version and owners of a ``w``/``ws`` op, its writer taken from the table."""
    if type(wall_ms) is not int or type(logical) is not int or type(ref) is not int or ref < 0:
        raise BadRequestError("a w or ws op needs integers wall_ms, logical and writer")
    _version_ints(wall_ms, logical)
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
        replicas = tuple(text(r) for r in obj[3]) if len(obj) > 3 else ()
        items = tuple(_item(k, v, d) for k, v, d in obj[1])
        return Write(items, decode_version(obj[2]), replicas)
    if kind == "remove":
        return Remove(tuple(obj[1]), decode_version(obj[2]), _time(obj[3]))
    if kind == "apply":
        return Apply(tuple(decode_record(r) for r in obj[1]))  # type: ignore[misc]
    raise BadRequestError(f"unknown replica op {brief(kind)}")


def _result(result: Any) -> Any:
    if type(result) is ItemResults:
        each = list(result)  # ints (most answers) as they are; conflicts and errors encoded
        for i, r in enumerate(each):
            if type(r) is not int:
                each[i] = _item_result(r)
        return {"each": each}
    return _item_result(result)


def _item_result(result: Any) -> Any:
    """One op's answer, or one item's answer of an item-by-item write (never nested)."""
    if type(result) is Version:
        return {"conflict": wire_version(result)}
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
            return decode_version(obj["conflict"])
    raise BadRequestError("an item's answer must be an integer, a conflict or an error")


def _decode_result(obj: Any) -> Any:
    if type(obj) is list:
        return tuple(decode_record(r) for r in obj)
    if type(obj) is dict:
        if "each" in obj:
            each = obj["each"]
            if type(each) is not list:
                raise BadRequestError("an item-by-item answer's each must be an array")
            # Ints (acks, most answers) as they are, checked by type; anything else decoded.
            return ItemResults(r if type(r) is int else _decode_item(r) for r in each)
        if "error" in obj:
            return ErrorReply(ErrorCode(obj["error"]), str(obj.get("message", "")))
        return decode_version(obj["conflict"])
    return obj


def encode_replica_response(m: ReplicaResponse) -> dict[str, Any]:
    out = {"type": "replica_response", "req": m.req, "results": [_result(r) for r in m.results]}
    if m.start or m.ack:  # a part of a split answer (a whole answer travels as before)
        out["start"] = m.start
        out["ack"] = m.ack
    return out


def decode_replica_response(o: dict[str, Any]) -> ReplicaResponse:
    """A response, or one part of one: ``start`` (default 0) a non-negative integer,
    ``ack`` (default false) a boolean, and a part (``ack`` set) answers at least one op.
    Whether ``start`` fits the request is the coordinator's check (it knows the ops)."""
    results = tuple(_decode_result(r) for r in o["results"])
    start = op_index(o.get("start", 0))
    ack = o.get("ack", False)
    if type(ack) is not bool:
        raise BadRequestError("replica_response's ack must be a boolean")
    if ack and not results:
        raise BadRequestError("a replica_response part must answer at least one op")
    return ReplicaResponse(int(o["req"]), results, start, ack)


def encode_push(m: Push) -> dict[str, Any]:
    out = {"type": "push", "sid": m.sid, "records": [_rec(r) for r in m.records], "ack": m.ack, "reply": m.reply}
    if m.covered is not None:
        out["covered"] = m.covered
    return out


def decode_push(o: dict[str, Any]) -> Push:
    """``covered`` (absent: every pulled key) only on a reply, and at least 1: an answer
    that covers no key would have its puller ask again forever."""
    reply = bool(o.get("reply"))
    covered = o.get("covered")
    if covered is not None:
        if not reply:
            raise BadRequestError("only a push that answers a pull has covered")
        if type(covered) is not int or covered < 1:
            raise BadRequestError(f"push's covered must be a positive integer, not {brief(covered)}")
    return Push(int(o["sid"]), tuple(decode_record(r) for r in o["records"]), bool(o.get("ack")), reply, covered)  # type: ignore[misc]


def op_index(obj: Any) -> int:
    """An op index: a non-negative integer (not a boolean, not a float)."""
    if type(obj) is not int or obj < 0:
        raise BadRequestError(f"an op index must be a non-negative integer, not {brief(obj)}")
    return obj
