"""The Redis hash and set commands (HSET ... HSCAN, SADD ... SSCAN) as node requests.

Each command becomes one :class:`~actors.protocol.messages.CollOp` (what the JSON
protocol's ``hset``, ``sadd``, ... decode to), run at the key's coordinator as a
read-modify-write (:mod:`actors.store.coll_ops`), and a builder that makes Redis 7.0's
reply from the node's :class:`~actors.protocol.messages.Value`. Arguments are checked
here, in Redis's order (argument count, then numbers and options, then the key's type at
the node). Field and member names are decoded as keys are (UTF-8 with
``surrogateescape``: any bytes, answered as the same bytes); values are stored as sent.

Replies that list names list them sorted (Redis's order is its hash table's, which no
client may rely on); ``HSCAN``/``SSCAN`` answer everything in one call with cursor 0, as
Redis does for a small hash or set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actors.protocol.messages import CollOp, Reply, Value
from runtime.resp import array, bulk, integer, null
from runtime.resp_keyspace import _key, value_bulk
from runtime.acl import glob_matcher
from runtime.resp import parse_int
from runtime.resp_session import CommandError, Deferred, Session, int_arg, node_error, wrong_arity

_SYNTAX = "ERR syntax error"

__all__ = ["COLL_COMMANDS"]


def _name(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _name_bulk(name: str) -> bytes:
    return bulk(name.encode("utf-8", "surrogateescape"))


def _item(value: Any, proto: int) -> bytes:
    return null(proto) if value is None else value_bulk(value)


# --- builders: the node's Value -> Redis's reply -------------------------------------------


def _value(replies: Sequence[Reply], i: int) -> Any:
    reply = replies[i]
    if type(reply) is not Value:
        raise _NodeError(node_error(reply))
    return reply.value


class _NodeError(Exception):
    def __init__(self, reply: bytes) -> None:
        self.reply = reply


def _built(build: Any) -> Any:
    def builder(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
        try:
            return build(_value(replies, i), proto)  # type: ignore[no-any-return]
        except _NodeError as exc:
            return exc.reply

    return builder


_b_int = _built(lambda v, proto: integer(v))
_b_bulk = _built(lambda v, proto: _item(v, proto))
_b_values = _built(lambda v, proto: array([_item(x, proto) for x in v]))
_b_names = _built(lambda v, proto: array([_name_bulk(x) for x in v]))
_b_ok = _built(lambda v, proto: b"+OK\r\n")


def _members(names: list[str], proto: int) -> bytes:
    body = [_name_bulk(x) for x in names]
    return (b"~%d\r\n" % len(body) + b"".join(body)) if proto == 3 else array(body)


def _pairs(flat: list[Any], proto: int) -> bytes:
    body = b"".join(_name_bulk(flat[j]) + value_bulk(flat[j + 1]) for j in range(0, len(flat), 2))
    if proto == 3:
        return b"%%%d\r\n" % (len(flat) // 2) + body
    return b"*%d\r\n" % len(flat) + body


def _scan_reply(pairs: bool, pattern: str | None) -> Any:
    match = glob_matcher(pattern) if pattern is not None else None

    def build(v: list[Any], proto: int) -> bytes:
        cursor, items = v
        body = []
        step = 2 if pairs else 1
        for j in range(0, len(items), step):
            name = items[j]
            if match is None or match(name):
                body.append(_name_bulk(name))
                if pairs:
                    body.append(value_bulk(items[j + 1]))
        return array([bulk(b"%d" % cursor), array(body)])

    return _built(build)


_b_members = _built(_members)
_b_pairs = _built(_pairs)


# --- handlers -------------------------------------------------------------------------------


def _op(argv: list[bytes], cmd: str, args: tuple[Any, ...], build: Any) -> Deferred:
    return (CollOp(_key(argv[1]), cmd, args),), build, None


def cmd_hset(argv: list[bytes], s: Session) -> bytes | Deferred:
    if len(argv) % 2:
        return wrong_arity(_name(argv[0]).lower())
    args = tuple(_name(a) if i % 2 == 0 else a for i, a in enumerate(argv[2:]))
    return _op(argv, "hset", args, _b_int)


def cmd_hmset(argv: list[bytes], s: Session) -> bytes | Deferred:
    if len(argv) % 2:
        return wrong_arity("hmset")
    args = tuple(_name(a) if i % 2 == 0 else a for i, a in enumerate(argv[2:]))
    return _op(argv, "hset", args, _b_ok)


def _names(argv: list[bytes], cmd: str, build: Any) -> Deferred:
    return _op(argv, cmd, tuple(_name(a) for a in argv[2:]), build)


def cmd_hincrby(argv: list[bytes], s: Session) -> bytes | Deferred:
    return _op(argv, "hincrby", (_name(argv[2]), int_arg(argv[3])), _b_int)


def _scan_args(argv: list[bytes]) -> str | None:
    """``cursor [MATCH pattern] [COUNT count]``, checked as Redis checks them: the pattern."""
    cursor = parse_int(argv[2])
    if cursor is None:
        raise CommandError("ERR invalid cursor")
    pattern = None
    i = 3
    while i < len(argv):
        option = argv[i].upper()
        if i + 1 >= len(argv):
            raise CommandError(_SYNTAX)
        if option == b"MATCH":
            pattern = _name(argv[i + 1])
        elif option == b"COUNT":
            if int_arg(argv[i + 1]) < 1:
                raise CommandError(_SYNTAX)
        else:
            raise CommandError(_SYNTAX)
        i += 2
    return pattern


def cmd_hscan(argv: list[bytes], s: Session) -> bytes | Deferred:
    return _op(argv, "hscan", (0,), _scan_reply(True, _scan_args(argv)))


def cmd_sscan(argv: list[bytes], s: Session) -> bytes | Deferred:
    return _op(argv, "sscan", (0,), _scan_reply(False, _scan_args(argv)))


def _named(cmd: str, build: Any) -> Any:
    def handler(argv: list[bytes], s: Session) -> bytes | Deferred:
        return _names(argv, cmd, build)

    handler.__name__ = f"cmd_{cmd}"
    return handler


#: ``(name, arity, handler, read-only, fast)`` of every hash and set command, for the table
#: in :mod:`runtime.resp_commands` (arity as Redis's ``COMMAND`` gives it).
COLL_COMMANDS: tuple[tuple[str, int, Any, bool, bool], ...] = (
    ("hset", -4, cmd_hset, False, True),
    ("hmset", -4, cmd_hmset, False, True),
    ("hget", 3, _named("hget", _b_bulk), True, True),
    ("hmget", -3, _named("hmget", _b_values), True, True),
    ("hgetall", 2, _named("hgetall", _b_pairs), True, False),
    ("hdel", -3, _named("hdel", _b_int), False, True),
    ("hexists", 3, _named("hexists", _b_int), True, True),
    ("hlen", 2, _named("hlen", _b_int), True, True),
    ("hkeys", 2, _named("hkeys", _b_names), True, False),
    ("hvals", 2, _named("hvals", _b_values), True, False),
    ("hincrby", 4, cmd_hincrby, False, True),
    ("hscan", -3, cmd_hscan, True, False),
    ("sadd", -3, _named("sadd", _b_int), False, True),
    ("srem", -3, _named("srem", _b_int), False, True),
    ("smembers", 2, _named("smembers", _b_members), True, False),
    ("sismember", 3, _named("sismember", _b_int), True, True),
    ("scard", 2, _named("scard", _b_int), True, True),
    ("sscan", -3, cmd_sscan, True, False),
)
