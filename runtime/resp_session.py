"""What every Redis command handler works with: the session, the command record, the
handler's result type, and the argument and error helpers.

A handler (:mod:`runtime.resp_keyspace`, :mod:`runtime.resp_server`, ``COMMAND`` in
:mod:`runtime.resp_commands`) turns one command into reply bytes, or into a
:data:`Deferred`: node requests and how to build the reply from the node's replies.
Handlers never raise anything but :class:`CommandError` (the table turns it into the
error reply; anything else is a bug and costs that one reply).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from actors.protocol.messages import ErrorReply, Reply, Request
from runtime.acl import Acl, User
from runtime.resp import error, parse_int

__all__ = [
    "EMPTY_ARRAY",
    "REDIS_VERSION",
    "SYNTAX_ERROR",
    "Builder",
    "Command",
    "CommandError",
    "Deferred",
    "RespServerInfo",
    "Session",
    "int_arg",
    "node_error",
    "text_arg",
    "unknown_command",
    "unknown_subcommand",
    "wrong_arity",
]

#: The Redis version we answer to ``INFO``/``HELLO``: the commands we serve behave as 7.0's.
REDIS_VERSION = "7.0.0"

#: Builds one command's reply from the node's replies: its bytes, or (for a reply of many
#: values) an iterator of its parts, so the connection checks its output buffer limit
#: between values instead of after the whole array exists.
Builder = Callable[[Sequence[Reply], int, int, Any], bytes | Iterator[bytes]]
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
    #: The largest bulk string a RESP client may send (``--proto-max-bulk-len``, Redis's 512 MB).
    proto_max_bulk_len: int = 512 << 20
    max_memory: int = 0
    eviction_policy: str = "noeviction"
    max_clients: int = 10_000
    timeout: float = 0.0
    started: float = field(default_factory=time.monotonic)
    run_id: str = field(default_factory=lambda: secrets.token_hex(20))
    version: str = field(default_factory=_actorcache_version)
    #: Client authentication (``runtime/acl.py``; None: no passwords) and protected mode.
    acl: Acl | None = field(default=None, repr=False)
    protected: bool = False
    #: The connections that sent MONITOR, in that order (``runtime/resp_monitor.py``).
    monitors: dict[Any, None] = field(default_factory=dict, repr=False)
    #: The node's effective settings by flag name, secrets masked (``CONFIG GET``).
    options: dict[str, str] = field(default_factory=dict)

    @property
    def resp_request_limit(self) -> int:
        """The most one RESP command may take on the wire: a bulk string of the largest
        size plus 1 MiB for the rest (headers, the key, options), and never below the
        JSON port's ``--max-request-bytes``."""
        return max(self.max_request_bytes, self.proto_max_bulk_len + (1 << 20))


class Session:
    """Per-connection state commands read and change."""

    __slots__ = (
        "addr", "conn_id", "counters", "created", "hold", "laddr", "lib_name", "lib_ver", "monitor", "name", "proto",
        "quit", "server", "txn", "user",
    )

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
        #: MONITOR was sent: the connection streams every command it sees (runtime/resp_monitor.py).
        self.monitor = False
        self.created = time.monotonic()
        #: The authenticated user (None: not authenticated); only read when the node has passwords.
        self.user: User | None = server.acl.initial_user() if server.acl is not None else None
        #: The server's counters (its connection guard's): ``auth_failures``.
        self.counters: dict[str, int] = {"auth_failures": 0}
        #: Inside MULTI: the queued commands (``runtime.resp_transactions.TxnState``); else None.
        self.txn: Any = None
        #: Holds n bytes of queued arguments in the node's input budget (n < 0 gives them
        #: back); False when it has no room (the connection's ``hold_queued``).
        self.hold: Callable[[int], bool] = _no_budget


def _no_budget(n: int) -> bool:
    return True  # (a session without a connection: in-process tests)


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


SYNTAX_ERROR = b"-ERR syntax error\r\n"
EMPTY_ARRAY = b"*0\r\n"


#: Redis-style error prefix for each node error code: ``-<PREFIX> <what>``.
_ERROR_PREFIX = {
    "unavailable": "UNAVAILABLE nothing was applied: ",
    "timeout": "TIMEOUT may have been applied: ",
    "out_of_memory": "OOM ",
    "internal": "ERR internal error: ",
    "crossslot": "CROSSSLOT ",
    "wrongtype": "WRONGTYPE ",
}


def node_error(reply: Any) -> bytes:
    """The RESP error for a node reply where a command expected something else."""
    if type(reply) is ErrorReply:
        code = str(reply.code)
        return error(_ERROR_PREFIX.get(code, "ERR ") + reply.message)
    return error(f"ERR internal error: unexpected reply {type(reply).__name__}")


# --- arguments and errors ----------------------------------------------------------


def int_arg(raw: bytes) -> int:
    value = parse_int(raw)
    if value is None:
        raise CommandError("ERR value is not an integer or out of range")
    return value


def text_arg(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def wrong_arity(name: str) -> bytes:
    return error(f"ERR wrong number of arguments for '{name}' command")


def unknown_command(argv: list[bytes]) -> bytes:
    """Redis 7.0's wording, byte for byte (each argument quoted, 128 characters in all)."""
    args = ""
    for raw in argv[1:]:
        if len(args) >= 128:
            break
        args += f"'{text_arg(raw)[: 128 - len(args)]}' "
    return error(f"ERR unknown command '{text_arg(argv[0])[:128]}', with args beginning with: {args}")


def unknown_subcommand(sub: bytes, command: str) -> bytes:
    return error(f"ERR unknown subcommand '{text_arg(sub)[:128]}'. Try {command.upper()} HELP.")
