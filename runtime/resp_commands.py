"""The Redis commands a node serves over RESP, mapped onto the node's own messages.

Each command is a handler that turns one command (a list of byte strings, the name
first) into either

- **bytes**: the reply itself, for what the connection answers without the node
  (``ECHO``, ``COMMAND``, ``CONFIG GET``, ``CLIENT ...``, ``SELECT``, ``HELLO``, argument
  and syntax errors), or
- a :data:`Deferred` ``(requests, build, arg)``: node requests (``Get``, ``Set``, ...,
  exactly the messages the JSON protocol decodes to, so cluster semantics, TTLs and
  errors are the same) and how to build the reply from the node's replies to them:
  ``build(replies, i, proto, arg)`` reads ``replies[i : i + len(requests)]``.

The connection (:mod:`runtime.resp_connection`) batches requests and assembles replies
in command order. Keys are decoded from bytes as UTF-8 with ``surrogateescape`` so any
byte string is a key and comes back as the same bytes; values are stored as the bytes
sent. Error replies from the node map to Redis-style errors by code (see
:func:`node_error` and ``docs/resp.md``).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import platform
import resource
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from actors.protocol.messages import (
    Ack,
    Delete,
    ErrorReply,
    Expire,
    Get,
    Incr,
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
from runtime.framing import to_jsonable
from runtime.resp import NIL2, NIL3, OK, PONG, array, bulk, error, integer, map_reply, null, parse_int, simple

__all__ = [
    "COMMANDS",
    "REDIS_VERSION",
    "Command",
    "Deferred",
    "RespServerInfo",
    "Session",
    "dispatch",
    "node_error",
    "value_bulk",
]

logger = logging.getLogger("actorcache.resp")

#: The Redis version we answer to ``INFO``/``HELLO``: the commands we serve behave as 7.0's.
REDIS_VERSION = "7.0.0"

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1

#: Builds one command's reply from the node's replies: its bytes, or (for a reply of many
#: values) an iterator of its parts, so the connection checks its output buffer limit
#: between values instead of after the whole array exists.
Builder = Callable[[Sequence[Reply], int, int, Any], "bytes | Iterator[bytes]"]
#: ``(node requests, builder, builder argument)``
Deferred = tuple[tuple[Request, ...], Builder, Any]


def _actorcache_version() -> str:
    try:
        from importlib.metadata import version

        return version("actorcache")
    except Exception:  # noqa: BLE001 - not installed (running from a checkout)
        return "0.1.0"


@dataclass
class RespServerInfo:
    """What ``INFO``, ``HELLO`` and ``CONFIG GET`` tell about this server."""

    node_id: str = "node1"
    host: str = "127.0.0.1"
    port: int = 0
    max_request_bytes: int = 1 << 20
    max_memory: int = 0
    eviction_policy: str = "noeviction"
    max_clients: int = 10_000
    timeout: float = 0.0
    started: float = field(default_factory=time.monotonic)
    run_id: str = field(default_factory=lambda: secrets.token_hex(20))
    version: str = field(default_factory=_actorcache_version)


class Session:
    """Per-connection state commands read and change."""

    __slots__ = ("addr", "conn_id", "created", "laddr", "lib_name", "lib_ver", "name", "proto", "quit", "server")

    def __init__(self, conn_id: int, server: RespServerInfo, addr: str = "?", laddr: str = "?") -> None:
        self.conn_id = conn_id
        self.server = server
        self.addr = addr
        self.laddr = laddr
        self.proto = 2
        self.name = b""
        self.lib_name = b""
        self.lib_ver = b""
        self.quit = False
        self.created = time.monotonic()


class CommandError(Exception):
    """Raised by a handler: answer this error reply (``ERR ...``) for the command."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # lower case, as Redis names commands in errors
    arity: int  # Redis's: n exactly n arguments (name included), -n at least n
    handler: Callable[[list[bytes], Session], bytes | Deferred]
    flags: tuple[str, ...] = ()
    keys: tuple[int, int, int] = (0, 0, 0)  # first key, last key, step (COMMAND's figures)


# --- replies ----------------------------------------------------------------------------

_SYNTAX = b"-ERR syntax error\r\n"
_NOT_INT = b"-ERR value is not an integer or out of range\r\n"
_ZERO = b":0\r\n"
_ONE = b":1\r\n"
_EMPTY_ARRAY = b"*0\r\n"


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


#: Redis-style error prefix for each node error code: ``-<PREFIX> <what>``.
_ERROR_PREFIX = {
    "unavailable": "UNAVAILABLE nothing was applied: ",
    "timeout": "TIMEOUT may have been applied: ",
    "out_of_memory": "OOM ",
    "internal": "ERR internal error: ",
}


def node_error(reply: Any) -> bytes:
    """The RESP error for a node reply where a command expected something else."""
    if type(reply) is ErrorReply:
        code = str(reply.code)
        return error(_ERROR_PREFIX.get(code, "ERR ") + reply.message)
    return error(f"ERR internal error: unexpected reply {type(reply).__name__}")


def _b_value(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    reply = replies[i]
    if type(reply) is Value:
        if reply.found:
            return value_bulk(reply.value)
        return NIL3 if proto == 3 else NIL2
    return node_error(reply)


def _b_set(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    reply = replies[i]
    t = type(reply)
    if t is Ack:
        return (NIL3 if proto == 3 else NIL2) if reply.applied is False else OK
    if t is Value:  # SET ... GET: the previous value
        return value_bulk(reply.value) if reply.found else null(proto)
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


def _b_exists(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    reply = replies[i]
    if type(reply) is not Values:
        return node_error(reply)
    return integer(sum(1 for _key, _value, found in reply.items if found))


def _b_ttl(replies: Sequence[Reply], i: int, proto: int, millis: bool) -> bytes:
    reply = replies[i]
    if type(reply) is not TtlReply:
        return node_error(reply)
    if not reply.found:
        return integer(-2)
    if reply.ttl is None:
        return integer(-1)
    ms = max(0, round(reply.ttl * 1000))
    return integer(ms if millis else (ms + 500) // 1000)


def _b_dbsize(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    reply = replies[i]
    if type(reply) is not StatsReply:
        return node_error(reply)
    return integer(int(reply.stats.get("keys", 0)))


# --- helpers ----------------------------------------------------------------------------


def _key(raw: bytes) -> str:
    if not raw:
        raise CommandError("ERR empty keys are not supported")
    return raw.decode("utf-8", "surrogateescape")


def _int_arg(raw: bytes) -> int:
    value = parse_int(raw)
    if value is None:
        raise CommandError("ERR value is not an integer or out of range")
    return value


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def wrong_arity(name: str) -> bytes:
    return error(f"ERR wrong number of arguments for '{name}' command")


def unknown_command(argv: list[bytes]) -> bytes:
    """Redis 7.0's wording, byte for byte (each argument quoted, 128 characters in all)."""
    args = ""
    for raw in argv[1:]:
        if len(args) >= 128:
            break
        args += f"'{_text(raw)[: 128 - len(args)]}' "
    return error(f"ERR unknown command '{_text(argv[0])[:128]}', with args beginning with: {args}")


def unknown_subcommand(sub: bytes, command: str) -> bytes:
    return error(f"ERR unknown subcommand '{_text(sub)[:128]}'. Try {command.upper()} HELP.")


# --- data commands ----------------------------------------------------------------------


def cmd_get(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (Get(_key(argv[1])),), _b_value, None


_EXPIRE_UNITS = {b"EX": 1.0, b"PX": 0.001, b"EXAT": 1.0, b"PXAT": 0.001}


def cmd_set(argv: list[bytes], s: Session) -> bytes | Deferred:
    key = _key(argv[1])
    value = argv[2]
    n = len(argv)
    if n == 3:
        return (Set(key, value),), _b_ok, None
    cond: str | None = None
    get = keep_ttl = False
    unit: bytes | None = None
    amount = b""
    i = 3
    while i < n:
        opt = argv[i].upper()
        if opt == b"NX" and cond != "xx":
            cond = "nx"
        elif opt == b"XX" and cond != "nx":
            cond = "xx"
        elif opt == b"GET":
            get = True
        elif opt == b"KEEPTTL" and unit is None:
            keep_ttl = True
        elif opt in _EXPIRE_UNITS and not keep_ttl and unit in (None, opt) and i + 1 < n:
            unit = opt
            amount = argv[i + 1]
            i += 1
        else:
            return _SYNTAX
        i += 1
    ttl: float | None = None
    if unit is not None:
        number = _int_arg(amount)
        if number <= 0 or (_EXPIRE_UNITS[unit] == 1.0 and number > _INT64_MAX // 1000):
            return error("ERR invalid expire time in 'set' command")
        ttl = number * _EXPIRE_UNITS[unit]
        if unit in (b"EXAT", b"PXAT"):
            # An absolute deadline: already past means set-and-expire, as in Redis.
            ttl = max(ttl - time.time(), 0.001)
    request = Set(key, value, ttl, cond=cond, get=get, keep_ttl=keep_ttl)
    return (request,), _b_set, None


def cmd_del(argv: list[bytes], s: Session) -> bytes | Deferred:
    keys = [_key(raw) for raw in argv[1:]]
    return tuple(Delete(key) for key in keys), _b_deleted, len(keys)


def cmd_exists(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (MGet(tuple(_key(raw) for raw in argv[1:])),), _b_exists, None


def cmd_mget(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (MGet(tuple(_key(raw) for raw in argv[1:])),), _b_values, None


def cmd_mset(argv: list[bytes], s: Session) -> bytes | Deferred:
    if len(argv) % 2 != 1:
        return wrong_arity("mset")
    entries = tuple((_key(argv[i]), argv[i + 1]) for i in range(1, len(argv), 2))
    return (MSet(entries),), _b_ok, None


def _expire(argv: list[bytes], scale: float, name: str) -> bytes | Deferred:
    key = _key(argv[1])
    amount = _int_arg(argv[2])
    if len(argv) > 3:
        opt = argv[3].upper()
        if opt in (b"NX", b"XX", b"GT", b"LT"):
            return error(f"ERR {name.upper()} options NX, XX, GT and LT are not supported")
        return error(f"ERR Unsupported option {_text(argv[3])}")
    if scale == 1.0 and not _INT64_MIN // 1000 <= amount <= _INT64_MAX // 1000:
        return error(f"ERR invalid expire time in '{name}' command")
    if amount <= 0:
        # A deadline already past: the key goes, as in Redis (1 if it existed).
        return (Delete(key),), _b_applied, None
    return (Expire(key, amount * scale),), _b_applied, None


def cmd_expire(argv: list[bytes], s: Session) -> bytes | Deferred:
    return _expire(argv, 1.0, "expire")


def cmd_pexpire(argv: list[bytes], s: Session) -> bytes | Deferred:
    return _expire(argv, 0.001, "pexpire")


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
    return _incr(argv[1], _int_arg(argv[2]))


def cmd_decrby(argv: list[bytes], s: Session) -> bytes | Deferred:
    by = _int_arg(argv[2])
    if by == _INT64_MIN:
        return error("ERR decrement would overflow")
    return _incr(argv[1], -by)


def cmd_ping(argv: list[bytes], s: Session) -> bytes | Deferred:
    if len(argv) == 2:
        return bulk(argv[1])
    return (Ping(),), _b_pong, None


def cmd_echo(argv: list[bytes], s: Session) -> bytes | Deferred:
    return bulk(argv[1])


def cmd_dbsize(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (Stats(),), _b_dbsize, None


# --- INFO -------------------------------------------------------------------------------

_DEFAULT_SECTIONS = (
    "server", "clients", "memory", "persistence", "stats", "replication", "cpu", "cluster", "keyspace", "actorcache",
)


def cmd_info(argv: list[bytes], s: Session) -> bytes | Deferred:
    wanted: list[str] = []
    for raw in argv[1:]:
        name = _text(raw).lower()
        if name in ("all", "everything", "default"):
            wanted.extend(_DEFAULT_SECTIONS)
        elif name in _DEFAULT_SECTIONS:
            wanted.append(name)
    if len(argv) == 1:
        wanted = list(_DEFAULT_SECTIONS)
    return (Stats(),), _b_info, (tuple(dict.fromkeys(wanted)), s)


def _human(n: float) -> str:
    """Redis's bytesToHuman."""
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{int(n)}B"


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _scalar(value: Any) -> str | None:
    if type(value) is bool:
        return "1" if value else "0"
    if type(value) in (int, float, str):
        return str(value)
    return None


def info_text(stats: dict[str, Any], sections: Sequence[str], session: Session) -> str:
    """The ``INFO`` reply for node ``stats``, in Redis's format (``# Section`` then
    ``field:value`` lines, CRLF-separated)."""
    server = session.server
    cluster = stats.get("cluster") or {}
    uptime = int(stats.get("uptime_s", time.monotonic() - server.started))
    out: list[str] = []

    def section(title: str, fields: list[tuple[str, Any]]) -> None:
        if out:
            out.append("")
        out.append(f"# {title}")
        out.extend(f"{k}:{v}" for k, v in fields)

    for name in sections:
        if name == "server":
            section("Server", [
                ("redis_version", REDIS_VERSION),
                ("redis_mode", "standalone"),
                ("os", f"{platform.system()} {platform.release()} {platform.machine()}"),
                ("arch_bits", 64 if sys.maxsize > 2**32 else 32),
                ("multiplexing_api", "asyncio"),
                ("process_id", os.getpid()),
                ("run_id", server.run_id),
                ("tcp_port", server.port),
                ("uptime_in_seconds", uptime),
                ("uptime_in_days", uptime // 86400),
                ("executable", sys.executable),
                ("actorcache_version", server.version),
                ("actorcache_node_id", server.node_id),
                ("python_version", platform.python_version()),
            ])
        elif name == "clients":
            section("Clients", [
                ("connected_clients", stats.get("connections", 0)),
                ("maxclients", server.max_clients),
                ("blocked_clients", 0),
            ])
        elif name == "memory":
            used = int(stats.get("memory_bytes", 0))
            rss = _rss_bytes()
            maxmemory = int(stats.get("max_memory", 0) or 0)
            section("Memory", [
                ("used_memory", used),
                ("used_memory_human", _human(used)),
                ("used_memory_rss", rss),
                ("used_memory_rss_human", _human(rss)),
                ("maxmemory", maxmemory),
                ("maxmemory_human", _human(maxmemory)),
                ("maxmemory_policy", stats.get("eviction_policy", "noeviction")),
                ("mem_allocator", "pymalloc"),
            ])
        elif name == "persistence":
            section("Persistence", [
                ("loading", 0),
                ("rdb_changes_since_last_save", 0),
                ("rdb_bgsave_in_progress", 0),
                ("aof_enabled", 0),
            ])
        elif name == "stats":
            section("Stats", [
                ("total_connections_received", stats.get("connections_total", 0)),
                ("total_commands_processed", stats.get("requests", 0)),
                ("rejected_connections", stats.get("rejected_connections", 0)),
                ("total_error_replies", stats.get("errors", 0)),
                ("keyspace_hits", stats.get("hits", 0)),
                ("keyspace_misses", stats.get("misses", 0)),
                ("expired_keys", stats.get("expirations", 0)),
                ("evicted_keys", stats.get("evicted", 0)),
                # Redis 7's names; our input limit is a budget over all connections.
                ("client_query_buffer_limit_disconnections", stats.get("input_buffer_kills", 0)),
                ("client_output_buffer_limit_disconnections", stats.get("client_output_buffer_kills", 0)),
            ])
        elif name == "replication":
            section("Replication", [("role", "master"), ("connected_slaves", 0)])
        elif name == "cpu":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            section("CPU", [("used_cpu_sys", f"{usage.ru_stime:.6f}"), ("used_cpu_user", f"{usage.ru_utime:.6f}")])
        elif name == "cluster":
            members = cluster.get("members") or {}
            fields: list[tuple[str, Any]] = [
                ("cluster_enabled", 0),  # no Redis Cluster protocol: any node serves any key
                ("cluster_members", len(members)),
                ("cluster_members_alive", sum(1 for m in members.values() if m.get("state") in ("self", "alive"))),
                ("cluster_members_ready", sum(1 for m in members.values() if m.get("status") == "ready")),
            ]
            for key, value in cluster.items():
                text = _scalar(value)
                if text is not None:
                    fields.append((f"cluster_{key}", text))
            section("Cluster", fields)
        elif name == "keyspace":
            keys = int(stats.get("keys", 0))
            fields = [("db0", f"keys={keys},expires={int(stats.get('keys_with_ttl', 0))},avg_ttl=0")] if keys else []
            section("Keyspace", fields)
        elif name == "actorcache":
            section("Actorcache", [
                (key, text) for key, value in stats.items() if (text := _scalar(value)) is not None
            ])
    return "\r\n".join(out) + "\r\n"


def _b_info(replies: Sequence[Reply], i: int, proto: int, arg: tuple[Sequence[str], Session]) -> bytes:
    reply = replies[i]
    if type(reply) is not StatsReply:
        return node_error(reply)
    sections, session = arg
    return bulk(info_text(reply.stats, sections, session).encode("utf-8", "replace"))


# --- connection and server commands -----------------------------------------------------


def cmd_select(argv: list[bytes], s: Session) -> bytes | Deferred:
    db = _int_arg(argv[1])
    if db != 0:
        return error("ERR DB index is out of range")
    return OK


def cmd_quit(argv: list[bytes], s: Session) -> bytes | Deferred:
    s.quit = True
    return OK


def cmd_auth(argv: list[bytes], s: Session) -> bytes | Deferred:
    if len(argv) == 2:
        return error(
            "ERR AUTH <password> called without any password configured for the default user. "
            "Are you sure your configuration is correct?"
        )
    if len(argv) == 3:
        return OK  # the default user has no password: any password is accepted
    return _SYNTAX


def _hello_map(s: Session) -> bytes:
    proto = s.proto
    return map_reply([
        (bulk(b"server"), bulk(b"redis")),
        (bulk(b"version"), bulk(REDIS_VERSION.encode())),
        (bulk(b"proto"), integer(proto)),
        (bulk(b"id"), integer(s.conn_id)),
        (bulk(b"mode"), bulk(b"standalone")),
        (bulk(b"role"), bulk(b"master")),
        (bulk(b"modules"), _EMPTY_ARRAY),
    ], proto)


def cmd_hello(argv: list[bytes], s: Session) -> bytes | Deferred:
    proto = s.proto
    i = 1
    if len(argv) > 1:
        ver = parse_int(argv[1])
        if ver is None:
            return error("ERR Protocol version is not an integer or out of range")
        if ver not in (2, 3):
            return error("NOPROTO unsupported protocol version")
        proto = ver
        i = 2
    name: bytes | None = None
    while i < len(argv):
        opt = argv[i].upper()
        if opt == b"AUTH" and i + 2 < len(argv):
            i += 3  # no users or passwords here: the default user takes any
        elif opt == b"SETNAME" and i + 1 < len(argv):
            name = argv[i + 1]
            if not _valid_name(name):
                return error("ERR Client names cannot contain spaces, newlines or special characters.")
            i += 2
        else:
            return error(f"ERR Syntax error in HELLO option '{_text(argv[i])}'")
    s.proto = proto
    if name is not None:
        s.name = name
    return _hello_map(s)


def _valid_name(name: bytes) -> bool:
    return all(33 <= c <= 126 for c in name)


def _client_line(s: Session) -> bytes:
    age = int(time.monotonic() - s.created)
    return (
        f"id={s.conn_id} addr={s.addr} laddr={s.laddr} fd=-1 name={_text(s.name)} age={age} idle=0 "
        f"flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 obl=0 "
        f"oll=0 omem=0 tot-mem=0 events=r cmd=client|info user=default redir=-1 resp={s.proto} "
        f"lib-name={_text(s.lib_name)} lib-ver={_text(s.lib_ver)}\n"
    ).encode("utf-8", "replace")


def cmd_client(argv: list[bytes], s: Session) -> bytes | Deferred:
    sub = argv[1].upper()
    n = len(argv)
    if sub == b"SETNAME":
        if n != 3:
            return wrong_arity("client|setname")
        if not _valid_name(argv[2]):
            return error("ERR Client names cannot contain spaces, newlines or special characters.")
        s.name = argv[2]
        return OK
    if sub == b"GETNAME":
        if n != 2:
            return wrong_arity("client|getname")
        return bulk(s.name) if s.name else null(s.proto)
    if sub == b"ID":
        if n != 2:
            return wrong_arity("client|id")
        return integer(s.conn_id)
    if sub == b"INFO":
        if n != 2:
            return wrong_arity("client|info")
        return bulk(_client_line(s))
    if sub == b"LIST":
        return bulk(_client_line(s))  # only this connection: others are not ours to show
    if sub == b"SETINFO":
        if n != 4:
            return wrong_arity("client|setinfo")
        attr = argv[2].upper()
        if attr == b"LIB-NAME":
            s.lib_name = argv[3]
        elif attr == b"LIB-VER":
            s.lib_ver = argv[3]
        else:
            return error(f"ERR Unrecognized option '{_text(argv[2])}'")
        return OK
    return unknown_subcommand(argv[1], "client")


#: What ``CONFIG GET`` answers (redis-benchmark asks for ``save`` and ``appendonly``).
def _config(s: Session) -> dict[str, bytes]:
    server = s.server
    return {
        "save": b"",
        "appendonly": b"no",
        "appendfsync": b"no",
        "databases": b"1",
        "maxmemory": str(server.max_memory).encode(),
        "maxmemory-policy": server.eviction_policy.encode(),
        "maxclients": str(server.max_clients).encode(),
        "port": str(server.port).encode(),
        "bind": server.host.encode(),
        "timeout": b"%d" % int(server.timeout),
        "tcp-keepalive": b"0",
        "cluster-enabled": b"no",
        "proto-max-bulk-len": str(server.max_request_bytes).encode(),
        "protected-mode": b"no",
    }


def cmd_config(argv: list[bytes], s: Session) -> bytes | Deferred:
    sub = argv[1].upper()
    if sub == b"GET":
        if len(argv) < 3:
            return wrong_arity("config|get")
        config = _config(s)
        found: dict[str, bytes] = {}
        for raw in argv[2:]:
            pattern = _text(raw).lower()
            for name, value in config.items():
                if fnmatch.fnmatchcase(name, pattern):
                    found[name] = value
        return map_reply([(bulk(k.encode()), bulk(v)) for k, v in found.items()], s.proto)
    if sub == b"SET":
        return error("ERR CONFIG SET is not supported: actorcache is configured by its command-line options")
    return unknown_subcommand(argv[1], "config")


def _command_info(cmd: Command) -> bytes:
    first, last, step = cmd.keys
    return array([
        bulk(cmd.name.encode()),
        integer(cmd.arity),
        array([simple(flag) for flag in cmd.flags]),
        integer(first),
        integer(last),
        integer(step),
        _EMPTY_ARRAY,  # ACL categories
        _EMPTY_ARRAY,  # tips
        _EMPTY_ARRAY,  # key specs
        _EMPTY_ARRAY,  # subcommands
    ])


def cmd_command(argv: list[bytes], s: Session) -> bytes | Deferred:
    if len(argv) == 1:
        return array([_command_info(cmd) for cmd in _UNIQUE])
    sub = argv[1].upper()
    if sub == b"COUNT":
        return integer(len(_UNIQUE))
    if sub == b"DOCS":
        return map_reply([], s.proto)  # no docs: redis-cli shows no hints
    if sub == b"LIST":
        return array([bulk(cmd.name.encode()) for cmd in _UNIQUE])
    if sub == b"INFO":
        names = argv[2:] or [cmd.name.encode() for cmd in _UNIQUE]
        nil = b"*-1\r\n" if s.proto == 2 else NIL3
        return array([_command_info(c) if (c := COMMANDS.get(raw.upper())) else nil for raw in names])
    return unknown_subcommand(argv[1], "command")


# --- the table --------------------------------------------------------------------------

_W, _R, _F = "write", "readonly", "fast"
_TABLE: list[Command] = [
    Command("get", 2, cmd_get, (_R, _F), (1, 1, 1)),
    Command("set", -3, cmd_set, (_W,), (1, 1, 1)),
    Command("del", -2, cmd_del, (_W,), (1, -1, 1)),
    Command("exists", -2, cmd_exists, (_R, _F), (1, -1, 1)),
    Command("mget", -2, cmd_mget, (_R, _F), (1, -1, 1)),
    Command("mset", -3, cmd_mset, (_W,), (1, -1, 2)),
    Command("expire", -3, cmd_expire, (_W, _F), (1, 1, 1)),
    Command("pexpire", -3, cmd_pexpire, (_W, _F), (1, 1, 1)),
    Command("persist", 2, cmd_persist, (_W, _F), (1, 1, 1)),
    Command("ttl", 2, cmd_ttl, (_R, _F), (1, 1, 1)),
    Command("pttl", 2, cmd_pttl, (_R, _F), (1, 1, 1)),
    Command("incr", 2, cmd_incr, (_W, _F), (1, 1, 1)),
    Command("decr", 2, cmd_decr, (_W, _F), (1, 1, 1)),
    Command("incrby", 3, cmd_incrby, (_W, _F), (1, 1, 1)),
    Command("decrby", 3, cmd_decrby, (_W, _F), (1, 1, 1)),
    Command("ping", -1, cmd_ping, (_F,)),
    Command("echo", 2, cmd_echo, (_F,)),
    Command("dbsize", 1, cmd_dbsize, (_R, _F)),
    Command("info", -1, cmd_info, ()),
    Command("select", 2, cmd_select, (_F,)),
    Command("quit", -1, cmd_quit, (_F,)),
    Command("auth", -2, cmd_auth, (_F,)),
    Command("hello", -1, cmd_hello, (_F,)),
    Command("client", -2, cmd_client, ()),
    Command("config", -2, cmd_config, ()),
    Command("command", -1, cmd_command, ()),
]
_UNIQUE = tuple(_TABLE)

#: Commands by name, upper and lower case (other spellings are upper-cased first).
COMMANDS: dict[bytes, Command] = {}
for _cmd in _TABLE:
    COMMANDS[_cmd.name.upper().encode()] = _cmd
    COMMANDS[_cmd.name.encode()] = _cmd


def dispatch(argv: list[bytes], s: Session) -> bytes | Deferred:
    """The reply to one command, or the node requests it needs. Never raises for any
    input (a handler bug answers ``-ERR internal error`` for that command)."""
    cmd = COMMANDS.get(argv[0])
    if cmd is None:
        cmd = COMMANDS.get(argv[0].upper())
        if cmd is None:
            return unknown_command(argv)
    arity = cmd.arity
    n = len(argv)
    if (arity > 0 and n != arity) or n < -arity:
        return wrong_arity(cmd.name)
    try:
        return cmd.handler(argv, s)
    except CommandError as exc:
        return error(exc.message)
    except Exception as exc:  # noqa: BLE001 - a bug costs one reply, never the connection
        logger.exception("command %r failed", argv[:1])
        return error(f"ERR internal error: {exc!r}")
