"""The Redis string and expiry commands beyond GET/MSET/INCR: SET's options, SETEX,
PSETEX, SETNX, GETSET, GETDEL, GETEX, GETRANGE, APPEND, STRLEN, INCRBYFLOAT, RENAME, RENAMENX, TYPE, TOUCH, UNLINK, TIME,
EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT with NX/XX/GT/LT, EXPIRETIME/PEXPIRETIME.

Like :mod:`runtime.resp_keyspace`, each handler turns a command into node requests (the
ones the JSON protocol decodes to: ``Set``, ``Expire``, and the string read-modify-writes
of :mod:`actors.protocol.string_ops`) and a builder of the Redis reply.

Expire times follow Redis 7.0 to the letter (``getExpireMillisecondsOrReply`` and
``expireGenericCommand``): times are integer milliseconds on this node's clock;
a relative time that would overflow int64 milliseconds when the current time is added
is refused (``invalid expire time in '<cmd>' command``); SET/SETEX/GETEX refuse 0 and
negative times, EXPIRE takes them (the key goes). A relative SET time travels as a
``ttl`` (the coordinator adds its own clock); an absolute one (EXAT/PXAT, EXPIRE's
computed deadline) as ``at``, so a time already past deletes the key at once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from actors.protocol.messages import Ack, CollOp, Expire, Get, Reply, Set, Ttl, TtlReply, Value
from actors.protocol.string_ops import Append, GetDel, GetEx, IncrByFloat, Rename
from actors.store.strings import as_bytes
from runtime.resp import array, bulk, error, integer, null, parse_int
from runtime.resp_keyspace import _b_applied, _b_value, _key, cmd_exists, value_bulk
from runtime.resp_session import SYNTAX_ERROR, Deferred, Session, int_arg, node_error

__all__ = [
    "cmd_append", "cmd_expire", "cmd_expireat", "cmd_expiretime", "cmd_getdel", "cmd_getex", "cmd_getrange",
    "cmd_getset", "cmd_pexpireat", "cmd_incrbyfloat", "cmd_pexpire",
    "cmd_pexpiretime", "cmd_psetex", "cmd_rename", "cmd_renamenx", "cmd_set", "cmd_setex", "cmd_setnx", "cmd_strlen", "cmd_time", "cmd_touch",
    "cmd_type",
]

_INT64_MAX = (1 << 63) - 1
#: C's LLONG_MIN / 1000 and LLONG_MAX / 1000 (division truncates toward zero in C).
_MIN_SECONDS, _MAX_SECONDS = -(_INT64_MAX // 1000), _INT64_MAX // 1000
_NOT_INT = b"-ERR value is not an integer or out of range\r\n"
_ZERO = b":0\r\n"
_ONE = b":1\r\n"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _invalid_expire(name: str) -> bytes:
    return error(f"ERR invalid expire time in '{name}' command")


class _Expiry:
    """A SET/GETEX expire time: relative ``ttl`` seconds, or an absolute deadline ``at``."""

    __slots__ = ("at", "ttl")

    def __init__(self, ttl: float | None, at: float | None) -> None:
        self.ttl = ttl
        self.at = at


def _expiry(unit: bytes, amount: bytes, name: str) -> _Expiry | bytes:
    """Redis's ``getExpireMillisecondsOrReply``: the expire time, or the error reply."""
    number = parse_int(amount)
    if number is None:
        return _NOT_INT
    seconds = unit in (b"EX", b"EXAT")
    if number <= 0 or (seconds and number > _INT64_MAX // 1000):
        return _invalid_expire(name)
    ms = number * 1000 if seconds else number
    if unit in (b"EX", b"PX"):
        if ms + _now_ms() > _INT64_MAX:  # Redis's int64 sum would wrap
            return _invalid_expire(name)
        return _Expiry(ms / 1000, None)
    return _Expiry(None, ms / 1000)


_UNITS = (b"EX", b"PX", b"EXAT", b"PXAT")


def _string_options(argv: list[bytes], start: int, set_command: bool) -> tuple[dict[str, Any], bytes, bytes] | bytes:
    """Redis's ``parseExtendedStringArgumentsOrReply`` for SET (NX, XX, GET, KEEPTTL and
    a unit) or GETEX (a unit or PERSIST): ``(flags, unit, amount)``, or a syntax error."""
    flags: dict[str, Any] = {}
    unit = amount = b""
    n = len(argv)
    i = start
    while i < n:
        opt = argv[i].upper()
        has_next = i + 1 < n
        if set_command and opt == b"NX" and "xx" not in flags:
            flags["nx"] = True
        elif set_command and opt == b"XX" and "nx" not in flags:
            flags["xx"] = True
        elif set_command and opt == b"GET":
            flags["get"] = True
        elif set_command and opt == b"KEEPTTL" and not unit:
            flags["keepttl"] = True
        elif not set_command and opt == b"PERSIST" and not unit:
            flags["persist"] = True
        elif opt in _UNITS and has_next and unit in (b"", opt) and "keepttl" not in flags and "persist" not in flags:
            unit = opt
            amount = argv[i + 1]
            i += 1
        else:
            return SYNTAX_ERROR
        i += 1
    return flags, unit, amount


# --- SET and its relatives ----------------------------------------------------------------


def _b_set(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    reply = replies[i]
    t = type(reply)
    if t is Ack:
        return null(proto) if reply.applied is False else b"+OK\r\n"
    if t is Value:  # SET ... GET: the previous value
        return value_bulk(reply.value) if reply.found else null(proto)
    return node_error(reply)


def _set(key: str, value: bytes, flags: dict[str, Any], expiry: _Expiry | None) -> Deferred:
    cond = "nx" if flags.get("nx") else "xx" if flags.get("xx") else None
    ttl = expiry.ttl if expiry is not None else None
    at = expiry.at if expiry is not None else None
    request = Set(key, value, ttl, cond=cond, get=bool(flags.get("get")), keep_ttl=bool(flags.get("keepttl")), at=at)
    return (request,), _b_set, None


def cmd_set(argv: list[bytes], s: Session) -> bytes | Deferred:
    key = _key(argv[1])
    if len(argv) == 3:
        return (Set(key, argv[2]),), _b_set, None
    parsed = _string_options(argv, 3, True)
    if type(parsed) is bytes:
        return parsed
    flags, unit, amount = parsed  # type: ignore[misc]
    expiry = None
    if unit:
        expiry = _expiry(unit, amount, "set")
        if type(expiry) is bytes:
            return expiry
    return _set(key, argv[2], flags, expiry)  # type: ignore[arg-type]


def _setex(argv: list[bytes], unit: bytes, name: str) -> bytes | Deferred:
    key = _key(argv[1])
    expiry = _expiry(unit, argv[2], name)
    if type(expiry) is bytes:
        return expiry
    return _set(key, argv[3], {}, expiry)  # type: ignore[arg-type]


def cmd_setex(argv: list[bytes], s: Session) -> bytes | Deferred:
    return _setex(argv, b"EX", "setex")


def cmd_psetex(argv: list[bytes], s: Session) -> bytes | Deferred:
    return _setex(argv, b"PX", "psetex")


def _b_applied_int(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    reply = replies[i]
    if type(reply) is Ack:
        return _ZERO if reply.applied is False else _ONE
    return node_error(reply)


def cmd_getset(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (Set(_key(argv[1]), argv[2], get=True),), _b_set, None


def cmd_setnx(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (Set(_key(argv[1]), argv[2], cond="nx"),), _b_applied_int, None


# --- GETDEL, GETEX, APPEND, STRLEN, INCRBYFLOAT, TYPE, TOUCH --------------------------------


def cmd_getdel(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (GetDel(_key(argv[1])),), _b_value, None


def cmd_getex(argv: list[bytes], s: Session) -> bytes | Deferred:
    key = _key(argv[1])
    parsed = _string_options(argv, 2, False)
    if type(parsed) is bytes:
        return parsed
    flags, unit, amount = parsed  # type: ignore[misc]
    if unit:
        expiry = _expiry(unit, amount, "getex")
        if type(expiry) is bytes:
            # Redis looks the key up before it checks the time: nil for a missing key.
            return (Get(key),), _b_error_if_found, expiry
        return (GetEx(key, expiry.ttl, expiry.at),), _b_value, None  # type: ignore[union-attr]
    if flags.get("persist"):
        return (GetEx(key, persist=True),), _b_value, None
    return (Get(key),), _b_value, None


def _b_error_if_found(replies: Sequence[Reply], i: int, proto: int, refusal: bytes) -> bytes:
    reply = replies[i]
    if type(reply) is not Value:
        return node_error(reply)
    return refusal if reply.found else null(proto)


def _b_int_value(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    reply = replies[i]
    if type(reply) is Value and type(reply.value) is int:
        return integer(reply.value)
    return node_error(reply)


def cmd_append(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (Append(_key(argv[1]), argv[2]),), _b_int_value, None


def _b_strlen(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    reply = replies[i]
    if type(reply) is not Value:
        return node_error(reply)
    if not reply.found:
        return _ZERO
    encoded = value_bulk(reply.value)  # "$<len>\r\n...": the length is in the header
    return integer(int(encoded[1 : encoded.index(b"\r")]))


def cmd_strlen(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (Get(_key(argv[1])),), _b_strlen, None


_EMPTY_BULK = b"$0\r\n\r\n"


def _b_getrange(replies: Sequence[Reply], i: int, proto: int, bounds: tuple[int, int]) -> bytes:
    """Redis 7.0's ``getrangeCommand`` on the value's bytes (negative indexes from the end)."""
    reply = replies[i]
    if type(reply) is not Value:
        return node_error(reply)
    if not reply.found:
        return _EMPTY_BULK
    data = as_bytes(reply.value)
    start, end = bounds
    size = len(data)
    if start < 0 and end < 0 and start > end:
        return _EMPTY_BULK
    if start < 0:
        start = max(size + start, 0)
    if end < 0:
        end = max(size + end, 0)
    end = min(end, size - 1)
    if start > end or size == 0:
        return _EMPTY_BULK
    return bulk(data[start : end + 1])


def cmd_getrange(argv: list[bytes], s: Session) -> bytes | Deferred:
    bounds = (int_arg(argv[2]), int_arg(argv[3]))
    return (Get(_key(argv[1])),), _b_getrange, bounds


def _b_float(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    reply = replies[i]
    if type(reply) is Value and reply.found:
        return value_bulk(reply.value)
    return node_error(reply)


def cmd_incrbyfloat(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (IncrByFloat(_key(argv[1]), argv[2].decode("latin-1")),), _b_float, None


def _b_type(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    reply = replies[i]
    if type(reply) is not Value:
        return node_error(reply)
    return b"+%s\r\n" % reply.value.encode()


def cmd_type(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (CollOp(_key(argv[1]), "keytype"),), _b_type, None


def cmd_touch(argv: list[bytes], s: Session) -> bytes | Deferred:
    return cmd_exists(argv, s)  # (TOUCH counts what EXISTS counts: keys of every type)


def _b_renamed(replies: Sequence[Reply], i: int, proto: int, nx: bool) -> bytes:
    reply = replies[i]
    if type(reply) is not Ack:
        return node_error(reply)  # ERR no such key; CROSSSLOT in a cluster
    if nx:
        return _ONE if reply.applied else _ZERO
    return b"+OK\r\n"


def cmd_rename(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (Rename(_key(argv[1]), _key(argv[2])),), _b_renamed, False


def cmd_renamenx(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (Rename(_key(argv[1]), _key(argv[2]), nx=True),), _b_renamed, True


def cmd_time(argv: list[bytes], s: Session) -> bytes | Deferred:
    now_us = time.time_ns() // 1000
    return array([bulk(b"%d" % (now_us // 1_000_000)), bulk(b"%d" % (now_us % 1_000_000))])


# --- EXPIRE, PEXPIRE, EXPIRETIME, PEXPIRETIME -----------------------------------------------

_EXPIRE_FLAGS = {b"NX": "nx", b"XX": "xx", b"GT": "gt", b"LT": "lt"}


def _expire(argv: list[bytes], seconds: bool, name: str, absolute: bool = False) -> bytes | Deferred:
    """Redis 7.0's ``expireGenericCommand``: options first, then the time, then its overflow."""
    flags: set[str] = set()
    for raw in argv[3:]:
        flag = _EXPIRE_FLAGS.get(raw.upper())
        if flag is None:
            return error(f"ERR Unsupported option {raw.decode('utf-8', 'replace')}")
        flags.add(flag)
    if "nx" in flags and len(flags) > 1:
        return error("ERR NX and XX, GT or LT options at the same time are not compatible")
    if "gt" in flags and "lt" in flags:
        return error("ERR GT and LT options at the same time are not compatible")
    key = _key(argv[1])
    when = int_arg(argv[2])
    if seconds:
        if when > _MAX_SECONDS or when < _MIN_SECONDS:
            return _invalid_expire(name)
        when *= 1000
    now = 0 if absolute else _now_ms()  # Redis's basetime
    if when > _INT64_MAX - now:
        return _invalid_expire(name)
    # XX with GT is GT (GT already needs a TTL); XX with LT is its own condition.
    if "gt" in flags:
        cond: str | None = "gt"
    elif "lt" in flags:
        cond = "xx+lt" if "xx" in flags else "lt"
    else:
        cond = next(iter(flags), None)
    if cond is None and when > 0 and not absolute:
        return (Expire(key, when / 1000),), _b_applied, None
    return (Expire(key, None, at=(when + now) / 1000, cond=cond),), _b_applied, None


def cmd_expire(argv: list[bytes], s: Session) -> bytes | Deferred:
    return _expire(argv, True, "expire")


def cmd_pexpire(argv: list[bytes], s: Session) -> bytes | Deferred:
    return _expire(argv, False, "pexpire")


def cmd_expireat(argv: list[bytes], s: Session) -> bytes | Deferred:
    return _expire(argv, True, "expireat", absolute=True)


def cmd_pexpireat(argv: list[bytes], s: Session) -> bytes | Deferred:
    return _expire(argv, False, "pexpireat", absolute=True)


def _b_expiretime(replies: Sequence[Reply], i: int, proto: int, millis: bool) -> bytes:
    reply = replies[i]
    if type(reply) is not TtlReply:
        return node_error(reply)
    if not reply.found:
        return integer(-2)
    if reply.deadline is None:
        return integer(-1)
    # Deadlines are float seconds: one near int64's end (PEXPIREAT k 9223372036854775807)
    # rounds past it; no reply may (hiredis and redis-cli cannot read it).
    ms = min(round(reply.deadline * 1000), _INT64_MAX)
    return integer(ms if millis else ms // 1000)


def cmd_expiretime(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (Ttl(_key(argv[1])),), _b_expiretime, False


def cmd_pexpiretime(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (Ttl(_key(argv[1])),), _b_expiretime, True
