"""The Redis commands a node serves over RESP: the command table and its dispatch.

Each command is a handler that turns one command (a list of byte strings, the name
first) into either

- **bytes**: the reply itself, for what the connection answers without the node
  (``ECHO``, ``COMMAND``, ``CONFIG GET``, ``CLIENT ...``, ``SELECT``, ``HELLO``, argument
  and syntax errors), or
- a :data:`~runtime.resp_session.Deferred` ``(requests, build, arg)``: node requests
  (``Get``, ``Set``, ..., exactly the messages the JSON protocol decodes to, so cluster
  semantics, TTLs and errors are the same) and how to build the reply from the node's
  replies to them: ``build(replies, i, proto, arg)`` reads ``replies[i : i + len(requests)]``.

The handlers live by concept: the data commands in :mod:`runtime.resp_keyspace`, the
server and connection commands in :mod:`runtime.resp_server`, what they share (session,
argument and error helpers) in :mod:`runtime.resp_session`; ``COMMAND``, which describes
the table, lives here with it. The connection (:mod:`runtime.resp_connection`) batches
requests and assembles replies in command order. Error replies from the node map to
Redis-style errors by code (see :func:`~runtime.resp_session.node_error` and ``docs/resp.md``).
"""

from __future__ import annotations

import logging

from actors.protocol.kinds import ADMIN, READ, WRITE
from runtime.acl import NOAUTH_MESSAGE, NOPERM_KEY_MESSAGE, noperm_command_message
from runtime.resp import NIL3, array, bulk, error, integer, map_reply, simple
from runtime.resp_keyspace import (
    cmd_dbsize,
    cmd_decr,
    cmd_decrby,
    cmd_del,
    cmd_echo,
    cmd_exists,
    cmd_get,
    cmd_incr,
    cmd_incrby,
    cmd_mget,
    cmd_mset,
    cmd_persist,
    cmd_ping,
    cmd_pttl,
    cmd_ttl,
)
from runtime.resp_strings import (
    cmd_append,
    cmd_expire,
    cmd_expireat,
    cmd_expiretime,
    cmd_getdel,
    cmd_getex,
    cmd_getrange,
    cmd_getset,
    cmd_incrbyfloat,
    cmd_pexpire,
    cmd_pexpireat,
    cmd_pexpiretime,
    cmd_psetex,
    cmd_rename,
    cmd_renamenx,
    cmd_set,
    cmd_setex,
    cmd_setnx,
    cmd_strlen,
    cmd_time,
    cmd_touch,
    cmd_type,
)
from runtime.resp_monitor import cmd_monitor
from runtime.resp_persist import cmd_bgsave, cmd_lastsave, cmd_save
from runtime.resp_scan import cmd_flushall, cmd_flushdb, cmd_keys, cmd_scan
from runtime.resp_transactions import (
    TXN_CONTROL, cmd_discard, cmd_exec, cmd_multi, cmd_unwatch, cmd_watch, flag_error, queue_command,
)
from runtime.resp_colls import COLL_COMMANDS
from runtime.resp_server import cmd_auth, cmd_client, cmd_config, cmd_hello, cmd_info, cmd_quit, cmd_select
from runtime.resp_session import (
    EMPTY_ARRAY,
    Command,
    CommandError,
    Deferred,
    Session,
    unknown_command,
    unknown_subcommand,
    wrong_arity,
)

__all__ = ["CATEGORIES", "COMMANDS", "dispatch", "dispatch_authenticated", "monitored"]

logger = logging.getLogger("actorcache.resp")


# --- COMMAND: what the table says about itself -------------------------------------------


def _command_info(cmd: Command) -> bytes:
    first, last, step = cmd.keys
    return array([
        bulk(cmd.name.encode()),
        integer(cmd.arity),
        array([simple(flag) for flag in cmd.flags]),
        integer(first),
        integer(last),
        integer(step),
        array([simple("@" + category)] if (category := CATEGORIES.get(cmd.name)) else []),  # ACL categories
        EMPTY_ARRAY,  # tips
        EMPTY_ARRAY,  # key specs
        EMPTY_ARRAY,  # subcommands
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
    # runtime/resp_strings.py
    Command("unlink", -2, cmd_del, (_W, _F), (1, -1, 1)),
    Command("setex", 4, cmd_setex, (_W,), (1, 1, 1)),
    Command("psetex", 4, cmd_psetex, (_W,), (1, 1, 1)),
    Command("setnx", 3, cmd_setnx, (_W, _F), (1, 1, 1)),
    Command("getdel", 2, cmd_getdel, (_W, _F), (1, 1, 1)),
    Command("getset", 3, cmd_getset, (_W,), (1, 1, 1)),
    Command("getrange", 4, cmd_getrange, (_R,), (1, 1, 1)),
    Command("expireat", -3, cmd_expireat, (_W, _F), (1, 1, 1)),
    Command("pexpireat", -3, cmd_pexpireat, (_W, _F), (1, 1, 1)),
    Command("getex", -2, cmd_getex, (_W, _F), (1, 1, 1)),
    Command("append", 3, cmd_append, (_W,), (1, 1, 1)),
    Command("strlen", 2, cmd_strlen, (_R, _F), (1, 1, 1)),
    Command("incrbyfloat", 3, cmd_incrbyfloat, (_W, _F), (1, 1, 1)),
    Command("type", 2, cmd_type, (_R, _F), (1, 1, 1)),
    Command("rename", 3, cmd_rename, (_W,), (1, 2, 1)),
    Command("renamenx", 3, cmd_renamenx, (_W, _F), (1, 2, 1)),
    Command("touch", -2, cmd_touch, (_R, _F), (1, -1, 1)),
    Command("expiretime", 2, cmd_expiretime, (_R, _F), (1, 1, 1)),
    Command("pexpiretime", 2, cmd_pexpiretime, (_R, _F), (1, 1, 1)),
    Command("time", 1, cmd_time, (_F,)),
    Command("monitor", 1, cmd_monitor, ()),
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
    Command("save", 1, cmd_save, ()),
    Command("bgsave", -1, cmd_bgsave, ()),
    Command("lastsave", 1, cmd_lastsave, (_F,)),
    Command("command", -1, cmd_command, ()),
    # transactions, flush, iteration: runtime/resp_transactions.py, runtime/resp_scan.py
    Command("multi", 1, cmd_multi, (_F,)),
    Command("exec", 1, cmd_exec, ()),
    Command("discard", 1, cmd_discard, (_F,)),
    Command("watch", -2, cmd_watch, (_F,), (1, -1, 1)),
    Command("unwatch", 1, cmd_unwatch, (_F,)),
    Command("flushdb", -1, cmd_flushdb, (_W,)),
    Command("flushall", -1, cmd_flushall, (_W,)),
    Command("scan", -2, cmd_scan, (_R,)),
    Command("keys", 2, cmd_keys, (_R,)),
]
_TABLE += [  # hashes and sets: runtime/resp_colls.py
    Command(name, arity, handler, (_R if ro else _W, *((_F,) if fast else ())), (1, 1, 1))
    for name, arity, handler, ro, fast in COLL_COMMANDS
]
_UNIQUE = tuple(_TABLE)

#: Commands by name, upper and lower case (other spellings are upper-cased first).
COMMANDS: dict[bytes, Command] = {}
for _cmd in _TABLE:
    COMMANDS[_cmd.name.upper().encode()] = _cmd
    COMMANDS[_cmd.name.encode()] = _cmd


#: The ACL category a command needs (``runtime/acl.py``): a write command's is @write, a
#: read-only one's @read, INFO's and CONFIG's @admin (as in Redis: @dangerous, @admin);
#: the connection commands (PING, ECHO, SELECT, CLIENT, COMMAND, HELLO, AUTH, QUIT) none.
CATEGORIES: dict[str, str | None] = {
    cmd.name: WRITE if _W in cmd.flags else READ if _R in cmd.flags else None for cmd in _TABLE
}
CATEGORIES.update(
    info=ADMIN, config=ADMIN, monitor=ADMIN, flushdb=ADMIN, flushall=ADMIN, watch=READ, save=ADMIN, bgsave=ADMIN, lastsave=ADMIN
)
#: What a monitoring connection may not run (Redis refuses its read and write commands:
#: a monitor is a replica to Redis, ``-ERR Replica can't interact with the keyspace``).
_KEYSPACE = frozenset(
    name for name, category in CATEGORIES.items() if category in (READ, WRITE) and name != "watch"
) | {"flushdb", "flushall"}
_REPLICA_KEYSPACE = error("ERR Replica can't interact with the keyspace")
#: What a connection may send before it authenticates (Redis's no-auth commands).
_BEFORE_AUTH = frozenset(("auth", "hello", "quit"))
_NOAUTH = error("NOAUTH " + NOAUTH_MESSAGE)
_NOPERM_KEY = error("NOPERM " + NOPERM_KEY_MESSAGE)


def monitored(argv: list[bytes]) -> bool:
    """Whether MONITOR shows ``argv``: a known command with a right argument count (Redis
    feeds monitors only what it runs), and not an @admin one (Redis hides admin commands
    such as CONFIG and MONITOR itself from monitors)."""
    cmd = _command(argv)
    return type(cmd) is not bytes and CATEGORIES.get(cmd.name) != ADMIN  # type: ignore[union-attr]


def _command(argv: list[bytes]) -> Command | bytes:
    """The command ``argv`` names, or the error for an unknown one or a wrong argument count."""
    cmd = COMMANDS.get(argv[0])
    if cmd is None:
        cmd = COMMANDS.get(argv[0].upper())
        if cmd is None:
            return unknown_command(argv)
    arity = cmd.arity
    n = len(argv)
    if (arity > 0 and n != arity) or n < -arity:
        return wrong_arity(cmd.name)
    return cmd


def dispatch(argv: list[bytes], s: Session) -> bytes | Deferred:
    """The reply to one command, or the node requests it needs. Never raises for any
    input (a handler bug answers ``-ERR internal error`` for that command)."""
    cmd = _command(argv)
    if type(cmd) is bytes:
        return cmd if s.txn is None else flag_error(s, cmd)
    return _run(cmd, argv, s)


def dispatch_authenticated(argv: list[bytes], s: Session) -> bytes | Deferred:
    """:func:`dispatch` on a node with passwords: before ``AUTH`` (or ``HELLO ... AUTH``)
    only AUTH, HELLO and QUIT run (``-NOAUTH``); after it, a command outside the user's
    categories or keys is refused (``-NOPERM``), in Redis 7.0's words and order (unknown
    command and argument count first)."""
    cmd = _command(argv)
    if type(cmd) is bytes:
        return cmd if s.txn is None else flag_error(s, cmd)
    user = s.user
    if user is None:
        if cmd.name not in _BEFORE_AUTH:
            return _NOAUTH
    elif not user.all_permitted:
        category = CATEGORIES.get(cmd.name)
        if category is not None:
            if category not in user.categories:
                return flag_error(s, error("NOPERM " + noperm_command_message(cmd.name)))
            if user.patterns is not None:
                first, last, step = cmd.keys
                if first:
                    end = len(argv) if last < 0 else min(last + 1, len(argv))
                    for raw in argv[first:end:step]:
                        if not user.may_access(raw.decode("utf-8", "surrogateescape")):
                            return flag_error(s, _NOPERM_KEY)
    return _run(cmd, argv, s)


def _run(cmd: Command, argv: list[bytes], s: Session) -> bytes | Deferred:
    if s.monitor and cmd.name in _KEYSPACE:
        return flag_error(s, _REPLICA_KEYSPACE)
    if s.txn is not None and cmd.name not in TXN_CONTROL:  # inside MULTI: queued for EXEC
        try:
            return queue_command(cmd.name, cmd.handler, argv, s)
        except Exception as exc:  # noqa: BLE001 - as below
            logger.exception("queueing command %r failed", argv[:1])
            return flag_error(s, error(f"ERR internal error: {exc!r}"))
    try:
        return cmd.handler(argv, s)
    except CommandError as exc:
        return error(exc.message)
    except Exception as exc:  # noqa: BLE001 - a bug costs one reply, never the connection
        logger.exception("command %r failed", argv[:1])
        return error(f"ERR internal error: {exc!r}")
