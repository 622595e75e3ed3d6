"""The Redis server and connection commands: INFO, SELECT, QUIT, AUTH, HELLO, CLIENT,
CONFIG.

All but INFO are answered by the connection without the node, from the
:class:`~runtime.resp_session.Session` and :class:`~runtime.resp_session.RespServerInfo`;
INFO asks the node for its ``stats`` and renders Redis's sections from them
(:func:`info_text`), so ``redis-cli``, client libraries and monitoring tools that read
INFO find the fields they expect.
"""

from __future__ import annotations

import fnmatch
import os
import platform
import resource
import sys
import time
from collections.abc import Sequence
from typing import Any

from actors.protocol.messages import Reply, Stats, StatsReply
from runtime.acl import WRONGPASS_MESSAGE
from runtime.resp import OK, bulk, error, integer, map_reply, null, parse_int
from runtime.resp_session import (
    EMPTY_ARRAY,
    REDIS_VERSION,
    SYNTAX_ERROR,
    Deferred,
    Session,
    int_arg,
    node_error,
    text_arg,
    unknown_subcommand,
    wrong_arity,
)

__all__ = ["cmd_auth", "cmd_client", "cmd_config", "cmd_hello", "cmd_info", "cmd_quit", "cmd_select", "info_text"]

# --- INFO -------------------------------------------------------------------------------

_DEFAULT_SECTIONS = (
    "server", "clients", "memory", "persistence", "stats", "replication", "cpu", "cluster", "keyspace", "actorcache",
)


def cmd_info(argv: list[bytes], s: Session) -> bytes | Deferred:
    wanted: list[str] = []
    for raw in argv[1:]:
        name = text_arg(raw).lower()
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
                ("rdb_changes_since_last_save", stats.get("rdb_changes_since_last_save", 0)),
                ("rdb_bgsave_in_progress", stats.get("rdb_bgsave_in_progress", 0)),
                ("rdb_last_save_time", stats.get("rdb_last_save_time", 0)),
                ("rdb_last_bgsave_status", stats.get("rdb_last_bgsave_status", "ok")),
                # Ours: the current or last snapshot's first turn (listing the keys: Redis's
                # fork, also in latest_fork_usec) and longest slice, on the event loop.
                ("rdb_start_usec", stats.get("rdb_start_usec", 0)),
                ("rdb_slice_max_usec", stats.get("rdb_slice_max_usec", 0)),
                ("aof_enabled", stats.get("aof_enabled", 0)),
                ("aof_current_size", stats.get("aof_current_size", 0)),
            ])
        elif name == "stats":
            section("Stats", [
                ("total_connections_received", stats.get("connections_total", 0)),
                ("total_commands_processed", stats.get("requests", 0)),
                ("total_net_input_bytes", stats.get("bytes_received", 0)),
                ("total_net_output_bytes", stats.get("bytes_sent", 0)),
                ("rejected_connections", stats.get("rejected_connections", 0)),
                ("acl_access_denied_auth", stats.get("auth_failures", 0)),
                ("total_error_replies", stats.get("errors", 0)),
                ("keyspace_hits", stats.get("hits", 0)),
                ("keyspace_misses", stats.get("misses", 0)),
                ("expired_keys", stats.get("expirations", 0)),
                ("evicted_keys", stats.get("evicted", 0)),
                ("latest_fork_usec", stats.get("rdb_start_usec", 0)),
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
    return "\r\n".join(out) + "\r\n" if out else ""  # INFO nosuch: empty, as Redis


def _b_info(replies: Sequence[Reply], i: int, proto: int, arg: tuple[Sequence[str], Session]) -> bytes:
    reply = replies[i]
    if type(reply) is not StatsReply:
        return node_error(reply)
    sections, session = arg
    return bulk(info_text(reply.stats, sections, session).encode("utf-8", "replace"))


# --- connection and server commands -----------------------------------------------------


def cmd_select(argv: list[bytes], s: Session) -> bytes | Deferred:
    db = int_arg(argv[1])
    if db != 0:
        return error("ERR DB index is out of range")
    return OK


def cmd_quit(argv: list[bytes], s: Session) -> bytes | Deferred:
    s.quit = True
    return OK


_WRONGPASS = error("WRONGPASS " + WRONGPASS_MESSAGE)


def _authenticate(s: Session, name: bytes | None, password: bytes) -> bytes | None:
    """Authenticate the connection as ``name`` (None: default): None when done, else the
    error to answer. With no passwords on the node, as Redis with no password set: the
    default user takes any password when named (``AUTH default x``), another user is a
    wrong password."""
    user_name = None if name is None else name.decode("utf-8", "surrogateescape")
    acl = s.server.acl
    if acl is None:
        return None if user_name in (None, "default") else _WRONGPASS
    user = acl.authenticate(user_name, password)
    if user is None:
        s.counters["auth_failures"] += 1
        return _WRONGPASS
    s.user = user
    return None


def cmd_auth(argv: list[bytes], s: Session) -> bytes | Deferred:
    if len(argv) > 3:
        return SYNTAX_ERROR
    if len(argv) == 2 and s.server.acl is None:
        return error(
            "ERR AUTH <password> called without any password configured for the default user. "
            "Are you sure your configuration is correct?"
        )
    refused = _authenticate(s, argv[1] if len(argv) == 3 else None, argv[-1])
    return OK if refused is None else refused


def _hello_map(s: Session) -> bytes:
    proto = s.proto
    return map_reply([
        (bulk(b"server"), bulk(b"redis")),
        (bulk(b"version"), bulk(REDIS_VERSION.encode())),
        (bulk(b"proto"), integer(proto)),
        (bulk(b"id"), integer(s.conn_id)),
        (bulk(b"mode"), bulk(b"standalone")),
        (bulk(b"role"), bulk(b"master")),
        (bulk(b"modules"), EMPTY_ARRAY),
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
    auth: tuple[bytes, bytes] | None = None
    while i < len(argv):
        opt = argv[i].upper()
        if opt == b"AUTH" and i + 2 < len(argv):
            auth = (argv[i + 1], argv[i + 2])
            i += 3
        elif opt == b"SETNAME" and i + 1 < len(argv):
            name = argv[i + 1]
            if not _valid_name(name):
                return error("ERR Client names cannot contain spaces, newlines or special characters.")
            i += 2
        else:
            return error(f"ERR Syntax error in HELLO option '{text_arg(argv[i])}'")
    if auth is not None:
        refused = _authenticate(s, *auth)
        if refused is not None:
            return refused
    if s.server.acl is not None and s.user is None:
        return _HELLO_NOAUTH
    s.proto = proto
    if name is not None:
        s.name = name
    return _hello_map(s)


#: Redis 7.0's answer to HELLO without AUTH on a connection that must authenticate.
_HELLO_NOAUTH = error(
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH "
    "<user> <pass> option can be used to authenticate the client and select the RESP protocol "
    "version at the same time"
)


def _valid_name(name: bytes) -> bool:
    return all(33 <= c <= 126 for c in name)


def _user_name(s: Session) -> str:
    return s.user.name if s.user is not None else "default"


def _client_line(s: Session) -> bytes:
    age = int(time.monotonic() - s.created)
    return (
        f"id={s.conn_id} addr={s.addr} laddr={s.laddr} fd=-1 name={text_arg(s.name)} age={age} idle=0 "
        f"flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 obl=0 "
        f"oll=0 omem=0 tot-mem=0 events=r cmd=client|info user={_user_name(s)} redir=-1 resp={s.proto} "
        f"lib-name={text_arg(s.lib_name)} lib-ver={text_arg(s.lib_ver)}\n"
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
            return error(f"ERR Unrecognized option '{text_arg(argv[2])}'")
        return OK
    return unknown_subcommand(argv[1], "client")


def _config(s: Session) -> dict[str, bytes]:
    """What ``CONFIG GET`` answers: Redis's names for what tools ask (redis-benchmark:
    ``save``, ``appendonly``), and the node's effective settings by flag name
    (``max-memory``, ``replicas``, ...; secrets masked), which win a name both have
    (``save``, ``appendonly``, ``appendfsync``, ``timeout``) except ``port``: that stays
    the RESP port, as Redis's is."""
    server = s.server
    redis = {
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
        "proto-max-bulk-len": str(server.proto_max_bulk_len).encode(),
        "protected-mode": b"yes" if server.protected else b"no",
    }
    options = {
        name: value.encode("utf-8", "surrogateescape") for name, value in server.options.items() if name != "port"
    }
    return {**redis, **options}


def cmd_config(argv: list[bytes], s: Session) -> bytes | Deferred:
    sub = argv[1].upper()
    if sub == b"GET":
        if len(argv) < 3:
            return wrong_arity("config|get")
        config = _config(s)
        found: dict[str, bytes] = {}
        for raw in argv[2:]:
            pattern = text_arg(raw).lower()
            for name, value in config.items():
                if fnmatch.fnmatchcase(name, pattern):
                    found[name] = value
        return map_reply([(bulk(k.encode()), bulk(v)) for k, v in found.items()], s.proto)
    if sub == b"SET":
        return error("ERR CONFIG SET is not supported: actorcache is configured by its command-line options")
    return unknown_subcommand(argv[1], "config")
