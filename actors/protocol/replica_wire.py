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
from actors.protocol.collection import PENDING, PREFIXES, Coll
from actors.protocol.errors import BadRequestError, ErrorCode
from actors.protocol.messages import ErrorReply
from actors.protocol.peer_messages import Push, ReplicaRequest, ReplicaResponse
from actors.protocol.record import Record
from actors.protocol.replica_ops import Apply, Fetch, ItemResults, Remove, Write
from actors.protocol.version import MAX_LOGICAL, MAX_WALL_MS, ZERO, Version

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


#: The most fields or members one hash or set may carry in a peer frame.
MAX_COLL_ITEMS = 1 << 20
#: The tag of a record or written item whose value is a hash or set (:func:`wire_coll`).
COLL_TAG = "c"


def wire_coll(coll: Coll) -> list[Any]:
    """A hash's or set's state as ``[floor, ttl_version, [[name, value, wall_ms, logical,
    node_id], ...]]``, names in order; a pending version (a delta's) is null, and a
    pending item ``[name, value]``; a field tombstone's value is null."""
    items = []
    for name in sorted(coll.items):
        value, version = coll.items[name]
        items.append([name, value] if version == PENDING else [name, value, *version])
    floor = None if coll.floor == PENDING else wire_version(coll.floor)
    ttl = None if coll.ttl_version == PENDING else wire_version(coll.ttl_version)
    return [floor, ttl, items]


def decode_coll(obj: Any) -> Coll:
    """:func:`wire_coll`'s inverse; a peer's bytes, so every part is checked."""
    if type(obj) is not list or len(obj) != 3 or type(obj[2]) is not list:
        raise BadRequestError("a hash or set travels as [floor, ttl_version, items]")
    floor_obj, ttl_obj, raw = obj
    if len(raw) > MAX_COLL_ITEMS:
        raise BadRequestError(f"a hash or set carries at most {MAX_COLL_ITEMS} fields or members")
    items: dict[str, tuple[Any, Version]] = {}
    for item in raw:
        if type(item) is not list or len(item) not in (2, 5):
            raise BadRequestError("a field travels as [name, value] or [name, value, wall_ms, logical, node_id]")
        name, value = item[0], item[1]
        if type(name) is not str or not name or name[0] not in PREFIXES or name in items:
            raise BadRequestError("a field's name is a distinct string starting with h, s or t")
        vt = type(value)
        if value is not None and vt is not str and vt is not bytes and vt is not int:
            raise BadRequestError("a field's value is a string, binary, an integer or null")
        items[name] = (value, PENDING if len(item) == 2 else decode_version(item[2:]))
    floor = PENDING if floor_obj is None else decode_version(floor_obj)
    ttl = PENDING if ttl_obj is None else decode_version(ttl_obj)
    if ttl != PENDING and ttl != ZERO and not any(v == PENDING or v >= ttl for _, v in items.values()):
        raise BadRequestError("a hash's or set's deadline version is above all of its fields")
    return Coll(items, floor, ttl)


def _within(coll: Coll, version: Version) -> Coll:
    """``coll``, whose every version must be at most ``version`` (its record's or its
    write's): the clock bound checks that one version, so no field may hide a newer one."""
    if coll.floor != PENDING and coll.floor > version or coll.ttl_version != PENDING and coll.ttl_version > version:
        raise BadRequestError("a hash's or set's version is above its record's")
    for _, v in coll.items.values():
        if v != PENDING and v > version:
            raise BadRequestError("a field's version is above its record's")
    return coll


def _rec(r: Record | None) -> list[Any] | None:
    if r is None:
        return None
    if type(r.value) is Coll:
        return [r.key, wire_coll(r.value), r.deadline, wire_version(r.version), r.purge_at, COLL_TAG]
    return [r.key, r.value, r.deadline, wire_version(r.version), r.purge_at]


def _time(obj: Any) -> float | None:
    """A deadline or purge time: a number of epoch seconds, or null."""
    if obj is not None and type(obj) is not float and type(obj) is not int:
        raise BadRequestError("a deadline or purge time must be a number or null")
    return obj  # type: ignore[no-any-return]


def decode_record(obj: Any) -> Record | None:
    if obj is None:
        return None
    if len(obj) == 6:
        key, value, deadline, version, purge_at, tag = obj
        if tag != COLL_TAG or purge_at is not None:
            raise BadRequestError("a tagged record is a live hash or set")
        decoded = decode_version(version)
        return Record(key, _within(decode_coll(value), decoded), _time(deadline), decoded, None)
    key, value, deadline, version, purge_at = obj
    return Record(key, value, _time(deadline), decode_version(version), _time(purge_at))


def _op(op: Any) -> list[Any]:
    t = type(op)
    if t is Fetch:
        return ["fetch", list(op.keys)]
    if t is Write:
        items = [
            (key, wire_coll(value), deadline, COLL_TAG) if type(value) is Coll else (key, value, deadline)
            for key, value, deadline in op.items
        ]
        return ["write", items, wire_version(op.version), op.replicas]  # tuples pack as arrays
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
        if type(op) is not Write or not (op.each or (len(op.items) == 1 and type(op.items[0][1]) is not Coll)):
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


def _item(key: Any, value: Any, deadline: Any, *tag: Any) -> tuple[str, Any, float | None]:
    """One written item, its key and deadline checked (a tagged item: a hash or set delta)."""
    if tag:
        if tag != (COLL_TAG,):
            raise BadRequestError("a written item is [key, value, deadline] or a tagged hash or set")
        value = decode_coll(value)
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
        items = tuple(_item(*item) for item in obj[1])
        version = decode_version(obj[2])
        for _, value, _ in items:
            if type(value) is Coll:
                _within(value, version)
        return Write(items, version, replicas)
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
