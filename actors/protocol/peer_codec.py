"""Peer messages <-> wire objects (msgpack maps on a peer connection).

The peer protocol shares the client port: a connection whose first frame is ``hello``
is a peer connection and carries only the types below; a client connection carrying any
of them is refused (see ``docs/protocol.md``). Replication's bulk (versions, records,
replica ops, pushes) has its wire forms in :mod:`actors.protocol.replica_wire`.

A peer's frame is checked as a client's request is: keys are non-empty strings, ids are
strings (never coerced with ``str()``, which would walk a nested value), and every value
a frame carries (written items, records, forwarded requests and replies) is no deeper
than ``max_depth`` (:mod:`actors.protocol.value_depth`). Nothing here recurses over a value.

A hello comes from a stranger (nothing is authenticated yet), and the node keeps and logs
what it claims: its ``node_id`` is 1 to :data:`MAX_NODE_ID_CHARS` printable characters and
its ``addr`` a ``host:port`` of at most :data:`MAX_ADDR_CHARS`, or the hello is refused
(with a message that does not repeat them).
"""

from __future__ import annotations

from typing import Any, Callable

from actors.kernel.failures import brief, describe
from actors.protocol.errors import BadRequestError
from actors.protocol.replica_ops import Apply, Fetch, Remove, Write
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
from actors.protocol.replica_wire import (
    decode_push,
    decode_replica_request,
    decode_replica_response,
    decode_version,
    encode_push,
    encode_replica_request,
    encode_replica_response,
    op_index,
    text,
    wire_version,
)
from actors.protocol.value_depth import DEFAULT_MAX_VALUE_DEPTH, depth_error, exceeds_depth
from actors.protocol.version import MAX_WALL_MS

__all__ = [
    "HELLO",
    "MAX_ADDR_CHARS",
    "MAX_NODE_ID_CHARS",
    "PEER_TYPES",
    "decode_hello",
    "decode_peer",
    "encode_hello",
    "encode_peer",
    "node_id_error",
]

HELLO = "hello"
#: Version of the peer protocol; a peer speaking another is refused at ``hello``.
PROTOCOL_VERSION = 6  # 2: replica_request's compact "w" op and writers table; 3: "ws" and per-item
# results; 4: replica_response parts (``start``, ``ack``), replica_ack, push ``covered``; 5: the
# handshake (hello carries a ``nonce``, then challenge and auth: actors/kernel/peer_auth.py); 6: hashes and
# sets (records and written items tagged "c": actors/protocol/replica_wire.py)


def encode_hello(node_id: str, addr: str, partitions: int) -> dict[str, Any]:
    return {"type": HELLO, "node_id": node_id, "addr": addr, "partitions": partitions, "proto": PROTOCOL_VERSION}


#: The longest node id (a DNS name's length): ids are kept, gossiped and logged.
MAX_NODE_ID_CHARS = 255
#: The longest advertised ``host:port`` (a DNS name, IPv6 brackets, a port).
MAX_ADDR_CHARS = 270


def node_id_error(node_id: Any) -> str | None:
    """Why ``node_id`` is no valid node id (the message does not repeat it), or None."""
    if type(node_id) is not str or not 0 < len(node_id) <= MAX_NODE_ID_CHARS or not node_id.isprintable():
        return f"a node id is 1 to {MAX_NODE_ID_CHARS} printable characters"
    return None


def _addr_ok(addr: str) -> bool:
    host, colon, port = addr.rpartition(":")
    return (
        len(addr) <= MAX_ADDR_CHARS
        and bool(host and colon)
        and addr.isprintable()
        and not any(c.isspace() for c in addr)
        and port.isascii()
        and port.isdigit()
        and len(port) <= 5
        and int(port) <= 65535
    )


def decode_hello(obj: Any) -> tuple[str, str, int]:
    """``(node_id, addr, partitions)`` of a hello; raises BadRequestError when malformed."""
    if type(obj) is not dict or obj.get("type") != HELLO:
        raise BadRequestError("a peer connection must start with hello")
    node_id, addr, partitions = obj.get("node_id"), obj.get("addr"), obj.get("partitions")
    if type(node_id) is not str or not node_id or type(addr) is not str or type(partitions) is not int:
        raise BadRequestError("hello needs string node_id and addr and an integer partitions")
    if obj.get("proto") != PROTOCOL_VERSION:
        raise BadRequestError(f"peer protocol {brief(obj.get('proto'))} is not {PROTOCOL_VERSION}")
    why = node_id_error(node_id)
    if why is not None:
        raise BadRequestError(f"hello's node_id: {why}")
    if not _addr_ok(addr):
        raise BadRequestError(f"hello's addr must be a host:port of at most {MAX_ADDR_CHARS} printable characters")
    return node_id, addr, partitions


_ENCODERS: dict[type, Callable[[Any], dict[str, Any]]] = {
    Gossip: lambda m: {
        "type": "gossip",
        "members": [list(member) for member in m.members],
        "reply": m.reply,
        "partitions": m.partitions,
        "wall_ms": m.wall_ms,
        **({"echo_ms": m.echo_ms, "held_ms": m.held_ms} if m.echo_ms else {}),
    },
    ReplicaRequest: encode_replica_request,
    ReplicaResponse: encode_replica_response,
    ReplicaAck: lambda m: {"type": "replica_ack", "req": m.req, "start": m.start},
    SyncRequest: lambda m: _encode_sync_request(m),
    SyncListing: lambda m: _encode_sync_listing(m),
    Pull: lambda m: {"type": "pull", "sid": m.sid, "keys": list(m.keys)},
    Push: encode_push,
    PushAck: lambda m: {"type": "push_ack", "sid": m.sid, "applied": m.applied},
    Forward: lambda m: {"type": "forward", "fid": m.fid, "request": m.request},
    ForwardReply: lambda m: {"type": "forward_reply", "fid": m.fid, "reply": m.reply},
}

_DECODERS: dict[str, Callable[[dict[str, Any]], PeerMessage]] = {
    "gossip": lambda o: Gossip(
        tuple(Member(text(n), text(a), _clock_int(i, "a member's incarnation"), text(s)) for n, a, i, s in o["members"]),
        bool(o.get("reply")),
        int(o.get("partitions", 256)),
        _clock_int(o.get("wall_ms", 0), "gossip's wall_ms"),
        _clock_int(o.get("echo_ms", 0), "gossip's echo_ms"),
        _clock_int(o.get("held_ms", 0), "gossip's held_ms"),
    ),
    "replica_request": decode_replica_request,
    "replica_response": decode_replica_response,
    "replica_ack": lambda o: ReplicaAck(int(o["req"]), op_index(o["start"])),
    "sync_request": lambda o: SyncRequest(
        int(o["sid"]), tuple((int(p), int(d)) for p, d in o["digests"]), _sub(o.get("sub", 0)), _want(o.get("want", ()))
    ),
    "sync_listing": lambda o: SyncListing(
        int(o["sid"]),
        tuple((int(p), tuple((k, decode_version(v)) for k, v in items)) for p, items in o["listings"]),
        _buckets(o.get("buckets", ())),
    ),
    "pull": lambda o: Pull(int(o["sid"]), tuple(o["keys"])),
    "push": decode_push,
    "push_ack": lambda o: PushAck(int(o["sid"]), int(o["applied"])),
    "forward": lambda o: Forward(int(o["fid"]), _map(o["request"])),
    "forward_reply": lambda o: ForwardReply(int(o["fid"]), _map(o["reply"])),
}


#: The most sub-buckets per partition a peer may name (``sync_request``'s ``sub``), and so
#: the longest sub-bucket digest string (8 bytes each) and want list per partition.
MAX_SUB_BUCKETS = 4096
#: The most partitions one ``want`` or ``buckets`` list may name (each at most once).
MAX_SYNC_PARTITIONS = 65536


def _encode_sync_request(m: SyncRequest) -> dict[str, Any]:
    # The sub-bucket fields go on the wire only when set: an older peer reads the rest.
    out: dict[str, Any] = {"type": "sync_request", "sid": m.sid, "digests": [list(d) for d in m.digests]}
    if m.sub:
        out["sub"] = m.sub
    if m.want:
        out["want"] = [[p, list(buckets)] for p, buckets in m.want]
    return out


def _encode_sync_listing(m: SyncListing) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "sync_listing",
        "sid": m.sid,
        "listings": [[p, [[k, wire_version(v)] for k, v in items]] for p, items in m.listings],
    }
    if m.buckets:
        out["buckets"] = [[p, digests] for p, digests in m.buckets]
    return out


def _sub(obj: Any) -> int:
    if type(obj) is not int or not 0 <= obj <= MAX_SUB_BUCKETS:
        raise BadRequestError(f"sync_request's sub must be an integer from 0 to {MAX_SUB_BUCKETS}")
    return obj


def _index(obj: Any, limit: int, what: str) -> int:
    if type(obj) is not int or not 0 <= obj < limit:
        raise BadRequestError(f"{what} must be an integer from 0 to {limit - 1}")
    return obj


def _want(obj: Any) -> tuple[tuple[int, tuple[int, ...]], ...]:
    """``sync_request``'s want: distinct partitions, each with distinct sub-bucket numbers."""
    if type(obj) not in (list, tuple) or len(obj) > MAX_SYNC_PARTITIONS:
        raise BadRequestError(f"sync_request's want must be a list of at most {MAX_SYNC_PARTITIONS} partitions")
    out = []
    for p, buckets in obj:
        if type(buckets) is not list or len(buckets) > MAX_SUB_BUCKETS:
            raise BadRequestError(f"sync_request's want names at most {MAX_SUB_BUCKETS} sub-buckets a partition")
        wanted = tuple(_index(b, MAX_SUB_BUCKETS, "a wanted sub-bucket") for b in buckets)
        if len(set(wanted)) != len(wanted):
            raise BadRequestError("sync_request's want names a sub-bucket twice")
        out.append((_index(p, MAX_SYNC_PARTITIONS, "a wanted partition"), wanted))
    if len({p for p, _ in out}) != len(out):
        raise BadRequestError("sync_request's want names a partition twice")
    return tuple(out)


def _buckets(obj: Any) -> tuple[tuple[int, bytes], ...]:
    """``sync_listing``'s sub-bucket digests: distinct partitions, whole 8-byte digests."""
    if type(obj) not in (list, tuple) or len(obj) > MAX_SYNC_PARTITIONS:
        raise BadRequestError(f"sync_listing's buckets must be a list of at most {MAX_SYNC_PARTITIONS} partitions")
    out = []
    for p, digests in obj:
        if type(digests) is not bytes or len(digests) % 8 or len(digests) > 8 * MAX_SUB_BUCKETS:
            raise BadRequestError(f"sync_listing's sub-bucket digests are 8 bytes each, at most {MAX_SUB_BUCKETS}")
        out.append((_index(p, MAX_SYNC_PARTITIONS, "a listed partition"), digests))
    if len({p for p, _ in out}) != len(out):
        raise BadRequestError("sync_listing names a partition's sub-buckets twice")
    return tuple(out)


def _clock_int(obj: Any, what: str) -> int:
    """A gossiped incarnation or wall clock (ms): an int within int64 (one past an
    incarnation, its refutation, must still encode)."""
    if type(obj) is not int or not 0 <= obj < MAX_WALL_MS:
        raise BadRequestError(f"{what} must be an integer from 0 to {MAX_WALL_MS - 1}, not {brief(obj)}")
    return obj


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
