"""The Redis data commands (GET, DEL, EXISTS, MGET, MSET, TTL, INCR, ..., PING, ECHO,
DBSIZE) as node requests, and the builders of their replies (SET, EXPIRE and the other
string and expiry commands are in :mod:`runtime.resp_strings`).

Each handler turns one command into the node requests the JSON protocol decodes to
(``Get``, ``Set``, ...: cluster semantics, TTLs and errors are the same) and a builder
that makes the Redis reply from the node's replies. Keys are decoded from bytes as UTF-8
with ``surrogateescape``, so any byte string is a key and comes back as the same bytes;
values are stored as the bytes sent, and a value a JSON/msgpack client stored is answered
as its JSON text (:func:`value_bulk`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from actors.protocol.messages import (
    Ack,
    CollOp,
    Delete,
    Expire,
    Get,
    Incr,
    MGet,
    MSet,
    Ping,
    Pong,
    Reply,
    Ttl,
    TtlReply,
    Value,
    Values,
)
from actors.protocol.txn_messages import Scan, ScanReply
from runtime.reply_encoding import to_jsonable
from runtime.resp import NIL2, NIL3, OK, PONG, array, bulk, error, integer, null
from runtime.resp_session import CommandError, Deferred, Session, int_arg, node_error, wrong_arity

__all__ = [
    "cmd_dbsize", "cmd_decr", "cmd_decrby", "cmd_del", "cmd_echo", "cmd_exists", "cmd_get",
    "cmd_incr", "cmd_incrby", "cmd_mget", "cmd_mset", "cmd_persist", "cmd_ping", "cmd_pttl",
    "cmd_ttl", "value_bulk",
]

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1

_NOT_INT = b"-ERR value is not an integer or out of range\r\n"
_ZERO = b":0\r\n"
_ONE = b":1\r\n"


def _json_text(value: Any) -> bytes:
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        text = json.dumps(to_jsonable(value), ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "surrogatepass")


def value_bulk(value: Any) -> bytes:
    """A stored value as a bulk string: bytes as they are, text as UTF-8, an integer in
    decimal, anything else (written by a JSON/msgpack client) as its JSON text."""
    t = type(value)
    if t is bytes:
        return b"$%d\r\n%b\r\n" % (len(value), value)
    if t is str:
        data = value.encode("utf-8", "surrogatepass")
    elif t is int:
        data = b"%d" % value
    else:
        data = _json_text(value)
    return b"$%d\r\n%b\r\n" % (len(data), data)


def _b_value(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    reply = replies[i]
    if type(reply) is Value:
        if reply.found:
            return value_bulk(reply.value)
        return NIL3 if proto == 3 else NIL2
    return node_error(reply)


def _b_ok(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    reply = replies[i]
    return OK if type(reply) is Ack else node_error(reply)


def _b_pong(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    reply = replies[i]
    return PONG if type(reply) is Pong else node_error(reply)


def _b_deleted(replies: Sequence[Reply], i: int, proto: int, count: int) -> bytes:
    deleted = 0
    for reply in replies[i : i + count]:
        if type(reply) is not Ack:
            return node_error(reply)
        deleted += bool(reply.deleted)
    return integer(deleted)


def _b_applied(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    reply = replies[i]
    if type(reply) is Ack:
        return _ONE if reply.applied or reply.deleted else _ZERO
    return node_error(reply)


def _b_integer_value(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    reply = replies[i]
    if type(reply) is Value and type(reply.value) is int:
        return integer(reply.value)
    return node_error(reply)


#: An MGET of more keys than this is rendered value by value (see ``Builder``).
_EAGER_VALUES = 16


def _b_values(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes | Iterator[bytes]:
    reply = replies[i]
    if type(reply) is not Values:
        return node_error(reply)
    nil = null(proto)
    items = reply.items
    if len(items) <= _EAGER_VALUES:
        return array([value_bulk(value) if found else nil for _key, value, found in items])
    return _values_parts(items, nil)


def _values_parts(items: Sequence[tuple[Any, Any, bool]], nil: bytes) -> Iterator[bytes]:
    yield b"*%d\r\n" % len(items)
    for _key, value, found in items:
        yield value_bulk(value) if found else nil


def _b_ttl(replies: Sequence[Reply], i: int, proto: int, millis: bool) -> bytes:
    reply = replies[i]
    if type(reply) is not TtlReply:
        return node_error(reply)
    if not reply.found:
        return integer(-2)
    if reply.ttl is None:
        return integer(-1)
    # A TTL a JSON client gave (any finite number of seconds) may pass int64 milliseconds;
    # no reply may (hiredis and redis-cli cannot read it): int64's max, Redis's own limit.
    ms = min(max(0, round(reply.ttl * 1000)), _INT64_MAX)
    return integer(ms if millis else (ms + 500) // 1000)


def _b_dbsize(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    reply = replies[i]
    if type(reply) is not ScanReply or reply.total is None:
        return node_error(reply)
    return integer(reply.total)


def _key(raw: bytes) -> str:
    if not raw:
        raise CommandError("ERR empty keys are not supported")
    if raw[:7] == b"\x00flush{":  # a cluster flush marker's (actors.store.flush_marks)
        raise CommandError("ERR keys starting with '\\x00flush{' are reserved")
    return raw.decode("utf-8", "surrogateescape")


# --- data commands ----------------------------------------------------------------------


def cmd_get(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (Get(_key(argv[1])),), _b_value, None


def cmd_del(argv: list[bytes], s: Session) -> bytes | Deferred:
    keys = [_key(raw) for raw in argv[1:]]
    return tuple(Delete(key) for key in keys), _b_deleted, len(keys)


def _b_exists_any(replies: Sequence[Reply], i: int, proto: int, n: int) -> bytes:
    count = 0
    for reply in replies[i : i + n]:
        if type(reply) is not Value:
            return node_error(reply)
        count += reply.value != "none"
    return integer(count)


def cmd_exists(argv: list[bytes], s: Session) -> bytes | Deferred:
    """Counts keys of every type (a hash or set too: an ``mget`` finds strings only), a
    key named twice twice, as Redis."""
    return tuple(CollOp(_key(raw), "keytype") for raw in argv[1:]), _b_exists_any, len(argv) - 1


def cmd_mget(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (MGet(tuple(_key(raw) for raw in argv[1:])),), _b_values, None


def cmd_mset(argv: list[bytes], s: Session) -> bytes | Deferred:
    if len(argv) % 2 != 1:
        return wrong_arity("mset")
    # A key named twice keeps its last value, as in Redis (a dict keeps the first
    # position and the last value; one MSet stores each key once).
    entries = tuple({_key(argv[i]): argv[i + 1] for i in range(1, len(argv), 2)}.items())
    return (MSet(entries),), _b_ok, None


def cmd_persist(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (Expire(_key(argv[1]), None),), _b_applied, None


def cmd_ttl(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (Ttl(_key(argv[1])),), _b_ttl, False


def cmd_pttl(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (Ttl(_key(argv[1])),), _b_ttl, True


def _incr(key: bytes, by: int) -> Deferred:
    return (Incr(_key(key), by),), _b_integer_value, None


def cmd_incr(argv: list[bytes], s: Session) -> bytes | Deferred:
    return _incr(argv[1], 1)


def cmd_decr(argv: list[bytes], s: Session) -> bytes | Deferred:
    return _incr(argv[1], -1)


def cmd_incrby(argv: list[bytes], s: Session) -> bytes | Deferred:
    return _incr(argv[1], int_arg(argv[2]))


def cmd_decrby(argv: list[bytes], s: Session) -> bytes | Deferred:
    by = int_arg(argv[2])
    if by == _INT64_MIN:
        return error("ERR decrement would overflow")
    return _incr(argv[1], -by)


def cmd_ping(argv: list[bytes], s: Session) -> bytes | Deferred:
    if len(argv) > 2:
        return wrong_arity("ping")
    if len(argv) == 2:
        return bulk(argv[1])
    return (Ping(),), _b_pong, None


def cmd_echo(argv: list[bytes], s: Session) -> bytes | Deferred:
    return bulk(argv[1])


def cmd_dbsize(argv: list[bytes], s: Session) -> bytes | Deferred:
    # Every key of the cluster (a count per partition from its owners); one node's count when alone.
    return (Scan(0, None, 1 << 62, count_only=True),), _b_dbsize, None
