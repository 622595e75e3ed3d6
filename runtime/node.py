"""``python -m runtime.node NODE_ID PORT [PEER_ADDR ...]``: run one cache node.

As the Go original's ``go run main.go node1 8081``. Prints one start-up line with the node id
and the bound address (``actorcache node node1 listening on 127.0.0.1:8081``, plus
`` peers=...`` when it joins through contacts); with ``--resp-port`` a second line follows
(``actorcache node node1 resp on 127.0.0.1:6379``: the Redis-protocol port), and with
``--metrics-port`` one more (``actorcache node node1 metrics on 127.0.0.1:9121``:
Prometheus metrics and health probes, docs/operations.md). PORT 0
picks a free port (the line says which). PEER_ADDR arguments are the contacts it joins the
cluster through.

Start-up order: bind the port (not yet accepting), so the advertised address is known
even for port 0; build the peer links and the actors' ``Ctx`` with ``send`` wired to
them; spawn the node's actors; then accept connections.

Start-up warns when ``--max-memory`` is unset and the node listens on anything but a
loopback address: keys and values could then fill the machine's memory. Without
``--cluster-secret-file`` it says that only loopback peers are accepted (in and out):
every peer connection opens with a challenge-response over that secret (docs/protocol.md);
when clients need a password it says that no peer is accepted at all, and a secret
shorter than 16 bytes, or ``--tls-cluster yes`` with client certificates and no secret,
is refused (exit 2): docs/security.md.

SIGINT or SIGTERM: the node leaves the cluster gracefully (hands its partitions off,
announces ``left``; at most ``--leave-timeout`` seconds, a second signal cuts it short),
keeps serving meanwhile, then stops accepting, answers the requests it has already read
and exits with code 0. A lone node has nothing to hand off and stops within 2 s.
Exit codes: 1 when the port cannot be bound, 2 for bad arguments, 70 when an actor died.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
import asyncio
import gc
import logging
import resource
import signal
import sys
import time
from typing import Any

from actors.config import NodeConfig
from actors.kernel.disk import DiskError
from actors.store.ops import SaveSnapshot, StatsQuery, StoreCall
from actors.node.system import NodeRefs, spawn_node
from actors.protocol.consistency import CONSISTENCY_LEVELS
from actors.protocol.peer_codec import encode_hello, encode_peer, node_id_error
from actors.store.eviction import EVICTION_POLICIES
from actors.protocol.internal import Leave, StatsAsk
from actors.protocol.value_depth import MAX_SUPPORTED_VALUE_DEPTH
from runtime.addresses import format_address, is_loopback
from runtime.argtypes import (
    advertise_address,
    byte_size,
    count,
    fraction,
    non_negative_count,
    output_buffer_limit,
    peer_address,
    port,
    positive_number,
    positive_seconds,
    seconds,
)
from runtime.client_auth import add_auth_options, client_acl, protected_mode
from runtime.config_file import effective_options, parse_args_with_config
from runtime.conn_limits import PEER_HELLO_GRACE_S, ClientLimits
from runtime.event_loop import AUTO_UVLOOP, EVENT_LOOPS, event_loop_choice, run_on
from runtime.framing import JSON_CODECS, use_json_codec
from runtime.gc_pacer import GcPacer, tune_collector
from runtime.file_disk import FileDisk
from runtime.host import real_ctx
from runtime.metrics_http import add_metrics_options, start_metrics
from runtime.trace_file import TraceFile
from runtime.logs import LOG_FORMATS, setup_logging
from runtime.loop_scheduler import LoopScheduler
from runtime.peer_trust import (
    LOOPBACK_ONLY_MESSAGE,
    NO_PEERS_MESSAGE,
    PeerTrust,
    advertised_addresses,
    read_secret_file,
)
from runtime.peers import PeerLinks
from runtime.server import CacheServer
from runtime.state_log import StateLog
from runtime.future_reply import FutureReply
from runtime.tls import add_tls_options, tls_settings

__all__ = ["build_parser", "client_limits", "main", "memory_warning", "node_config", "parse_args"]

logger = logging.getLogger("actorcache")

#: Exit code when an actor died of an unhandled error (EX_SOFTWARE).
EXIT_ACTOR_DIED = 70

#: Largest ``--partitions`` accepted (a partition table is gossiped and kept per node).
MAX_PARTITIONS = 1 << 16

_WILDCARD_HOSTS = ("0.0.0.0", "::", "")

#: The NodeConfig fields the command line sets (those whose metadata names a flag).
_CONFIG_OPTIONS = {field.name: field for field in dataclasses.fields(NodeConfig) if "flag" in field.metadata}
#: The connection limits' defaults, which the limit options take.
_LIMITS = ClientLimits()


def _config_option(group: Any, name: str, **kwargs: Any) -> None:
    """Add NodeConfig field ``name``'s option to ``group`` (a parser or an argument group):
    its flag, help and default (in the flag's unit) are the field's, see
    :func:`actors.config.option`; ``kwargs`` add the argparse type, metavar or choices."""
    field = _CONFIG_OPTIONS[name]
    default = field.default * field.metadata["scale"] if field.metadata["scale"] != 1 else field.default
    shown = f"{default:g}" if type(default) is float else default
    group.add_argument(
        field.metadata["flag"], default=default, help=field.metadata["help"].format(default=shown), **kwargs
    )


def _dest(field: dataclasses.Field[Any]) -> str:
    return str(field.metadata["flag"]).removeprefix("--").replace("-", "_")


def _size(n: int) -> str:
    """``n`` bytes as the command line writes sizes: ``64M``, ``256M``, ``512K``."""
    for suffix, shift in (("G", 30), ("M", 20), ("K", 10)):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift}{suffix}"
    return str(n)


def build_parser() -> argparse.ArgumentParser:
    """The node's command line (also the keys of its ``--config`` file: runtime/config_file.py)."""
    parser = argparse.ArgumentParser(
        prog="python -m runtime.node",
        description="Run one actorcache node (JSON lines or msgpack over TCP; peers share the port).",
    )
    parser.add_argument(
        "--config", metavar="FILE",
        help="read options from this TOML file (keys: the flags' names without --, and node-id, port, peers); "
        "options on the command line override it (docs/operations.md)",
    )
    parser.add_argument("node_id", help="this node's id, e.g. node1")
    parser.add_argument("port", type=port, help="TCP port to listen on (0: any free port)")
    parser.add_argument(
        "peers", nargs="*", type=peer_address, metavar="PEER_ADDR",
        help="host:port of nodes to join the cluster through (contacts)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1",
        help="address to bind (0.0.0.0 to serve other machines: their clients then need a password, "
        "--requirepass-file or --aclfile, unless --protected-mode no)",
    )
    parser.add_argument(
        "--resp-port", type=port, metavar="PORT",
        help="also serve the Redis protocol (RESP2/RESP3) on this port (0: any free port); see docs/resp.md",
    )
    parser.add_argument(
        "--advertise", type=advertise_address, metavar="HOST[:PORT]",
        help="address peers reach this node at (default: the bound host and port; needed with --host 0.0.0.0)",
    )
    _config_option(parser, "cleanup_interval_s", type=positive_seconds, metavar="SECONDS")
    _config_option(parser, "cleanup_budget_s", type=positive_seconds, metavar="MS")
    parser.add_argument(
        "--max-request-bytes", type=byte_size, default=1 << 20, metavar="BYTES",
        help="largest request accepted; a larger one is answered too_large and the connection closed (default 1M)",
    )
    parser.add_argument(
        "--proto-max-bulk-len", type=byte_size, default=512 << 20, metavar="BYTES",
        help="largest bulk string (value or key) a RESP client may send, as Redis's proto-max-bulk-len; "
        "the RESP port's request limit is this plus 1M (default 512M; --max-request-bytes is the JSON/msgpack one)",
    )
    parser.add_argument(
        "--event-loop", default="auto", choices=EVENT_LOOPS,
        help="asyncio's event loop or uvloop's, not with TLS (auto: $ACTORCACHE_EVENT_LOOP when set, else "
        f"{'uvloop when installed and no TLS' if AUTO_UVLOOP else 'asyncio'})",
    )
    parser.add_argument(
        "--json-codec", default="auto", choices=JSON_CODECS,
        help="JSON-lines parser and encoder, the same bytes either way "
        "(auto: $ACTORCACHE_JSON_CODEC when set, else orjson when installed)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="default info",
    )
    parser.add_argument(
        "--log-format", default="text", choices=LOG_FORMATS,
        help="text lines, or one JSON object per line (time, level, node, event, fields); state changes are "
        "logged once each, requests never at info (default text; docs/operations.md)",
    )
    parser.add_argument(
        "--trace", type=Path, metavar="FILE",
        help="write trace events (writes, replica applies, membership) as JSON lines, the simulator's schema",
    )
    parser.add_argument(
        "--trace-sample", type=fraction, default=1.0, metavar="FRACTION",
        help="with --trace, keep the write, apply and read_repair events of this share of the keys only, "
        "the same keys on every node (crc32 of the key < FRACTION * 2**32); other events are always kept "
        "(default 1: every write)",
    )
    memory = parser.add_argument_group("memory")
    _config_option(memory, "max_memory", type=byte_size, metavar="BYTES")
    _config_option(memory, "eviction_policy", choices=EVICTION_POLICIES)
    limits = parser.add_argument_group("client limits (Redis's names and defaults where Redis has them)")
    limits.add_argument(
        "--max-clients", type=count, default=_LIMITS.max_clients, metavar="N",
        help="client connections on both ports together; one more gets a max_clients error and is closed. "
        "Peers take no client slot once their hello is accepted, and a connection over the limit may "
        f"still present one within {PEER_HELLO_GRACE_S:g}s (default {_LIMITS.max_clients})",
    )
    limits.add_argument(
        "--client-output-buffer-limit", type=output_buffer_limit,
        default=(_LIMITS.output_hard, _LIMITS.output_soft, _LIMITS.output_soft_s),
        metavar="HARD[ SOFT SECONDS]",
        help="unsent replies that get a client disconnected: over HARD at once, over SOFT for SECONDS "
        "in a row (Redis's normal class); K/M/G suffixes, 0: no limit; give the three values as one "
        "argument, quoted ('64M 16M 60') or with commas (64M,16M,60) "
        f"(default {_size(_LIMITS.output_hard)}, no soft limit)",
    )
    limits.add_argument(
        "--timeout", type=seconds, default=_LIMITS.idle_timeout_s, metavar="SECONDS",
        help="close a client idle this long (no request, nothing outstanding); peers never "
        f"(default {_LIMITS.idle_timeout_s:g}: never)",
    )
    limits.add_argument(
        "--request-read-timeout", type=seconds, default=_LIMITS.request_read_timeout_s, metavar="SECONDS",
        help="close a connection whose partial request (JSON line, msgpack frame, RESP command, peer "
        f"frame) is not complete after this long (default {_LIMITS.request_read_timeout_s:g}; 0: no limit)",
    )
    limits.add_argument(
        "--max-input-buffer-bytes", type=byte_size, default=_LIMITS.max_input_buffer, metavar="BYTES",
        help="partial input all connections may hold together; past it the connection holding the most "
        f"is closed first (default {_size(_LIMITS.max_input_buffer)})",
    )
    _config_option(limits, "max_value_depth", type=count, metavar="N")
    cluster = parser.add_argument_group("cluster")
    _config_option(cluster, "replicas", type=count, metavar="N")
    _config_option(cluster, "partitions", type=count, metavar="N")
    _config_option(cluster, "write_consistency", choices=CONSISTENCY_LEVELS)
    _config_option(cluster, "read_consistency", choices=CONSISTENCY_LEVELS)
    _config_option(cluster, "request_timeout_s", type=positive_seconds, metavar="SECONDS")
    _config_option(cluster, "tombstone_ttl_s", type=seconds, metavar="SECONDS")
    _config_option(cluster, "heartbeat_interval_s", type=positive_seconds, metavar="SECONDS")
    _config_option(cluster, "suspect_phi", type=positive_number, metavar="PHI")
    _config_option(cluster, "down_after_s", type=positive_seconds, metavar="SECONDS")
    _config_option(cluster, "anti_entropy_interval_s", type=positive_seconds, metavar="SECONDS")
    _config_option(cluster, "hint_limit", type=non_negative_count, metavar="N")
    _config_option(cluster, "stream_batch", type=count, metavar="N")
    _config_option(cluster, "leave_timeout_s", type=seconds, metavar="SECONDS")
    _config_option(cluster, "max_clock_skew_s", type=positive_seconds, metavar="SECONDS")
    persist = parser.add_argument_group("persistence (Redis's names; docs/persistence.md)")
    persist.add_argument(
        "--dir", metavar="PATH",
        help="data directory for snapshots and the append-only log; loaded before serving (default: none, memory only)",
    )
    field = _CONFIG_OPTIONS["save"]
    persist.add_argument(
        "--save", nargs="*", action="append", metavar="SECONDS CHANGES", help=field.metadata["help"]
    )
    _config_option(persist, "appendonly", type=_yes_no, metavar="yes|no")
    _config_option(persist, "appendfsync", choices=("always", "everysec", "no"))
    _config_option(persist, "auto_aof_rewrite_percentage", type=non_negative_count, metavar="PERCENT")
    _config_option(persist, "auto_aof_rewrite_min_size", type=byte_size, metavar="BYTES")
    add_tls_options(parser)
    add_auth_options(parser)
    add_metrics_options(parser)
    cluster.add_argument(
        "--peer-compress", choices=("on", "off"), default="on",
        help="offer compression (zstd, else zlib) to peers at hello for frames of 1 KiB and more (default on; "
        "off: this node sends uncompressed, it still reads what peers it accepted compress)",
    )
    cluster.add_argument(
        "--cluster-secret-file", metavar="PATH",
        help="file holding the cluster's shared secret (its bytes, surrounding whitespace stripped; at least 16, "
        "e.g. head -c 32 /dev/urandom | base64); "
        "every peer connection proves it both ways. Without it a node peers with loopback addresses only "
        "(and with none at all when clients need a password)",
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The node's options: ``--config FILE``'s, overridden by the command line's, checked;
    ``args.options`` holds their effective values as text (secrets masked)."""
    parser = build_parser()
    args = parse_args_with_config(parser, argv)
    try:
        args.save = save_rules(args.save) if args.dir is not None else _memory_only(parser, args)
    except ValueError as exc:
        parser.error(f"argument --save: {exc}")
    if args.partitions > MAX_PARTITIONS:
        parser.error(f"argument --partitions: must be at most {MAX_PARTITIONS}")
    if args.max_value_depth > MAX_SUPPORTED_VALUE_DEPTH:
        parser.error(f"argument --max-value-depth: must be at most {MAX_SUPPORTED_VALUE_DEPTH}")
    try:
        args.json_codec = use_json_codec(args.json_codec)
    except ValueError as exc:
        parser.error(str(exc))
    why = node_id_error(args.node_id)
    if why is not None:
        parser.error(f"argument node_id: {why}")
    args.peers = list(dict.fromkeys(args.peers))  # the same contact twice is one contact
    args.cluster_secret = b""
    if args.cluster_secret_file is not None:
        try:
            args.cluster_secret = read_secret_file(args.cluster_secret_file)
        except ValueError as exc:
            parser.error(f"argument --cluster-secret-file: {exc}")
    try:
        args.tls = tls_settings(args)  # (reads the certificate files: a bad one is a usage error)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        args.event_loop = event_loop_choice(args.event_loop, tls=args.tls is not None)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        args.acl = client_acl(args)  # (reads --requirepass-file / --aclfile: a bad one is a usage error)
    except ValueError as exc:
        parser.error(str(exc))
    if args.tls is not None and args.tls.cluster and not args.cluster_secret and args.tls.auth_clients != "no":
        parser.error(
            f"--tls-cluster yes without --cluster-secret-file, with --tls-auth-clients {args.tls.auth_clients}: "
            "a client certificate the CA signs could then claim a node id and be taken for a peer; set "
            "--cluster-secret-file (a peer then needs the secret and a certificate naming it), or "
            "--tls-auth-clients no when the CA signs node certificates only"
        )
    try:
        node_config(args)
    except ValueError as exc:  # a combination NodeConfig refuses
        parser.error(str(exc))
    args.options = effective_options(parser, args)
    return args


def _yes_no(text: str) -> bool:
    if text not in ("yes", "no"):
        raise argparse.ArgumentTypeError("expected yes or no")
    return text == "yes"


def _memory_only(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[tuple[int, int], ...]:
    """No save rules without ``--dir``: nothing is written, so ``CONFIG GET save`` and ``stats``
    say so; asking for snapshots or the log without a directory is a usage error rather than a
    silent no-op."""
    if save_rules(args.save if args.save is not None else [[""]]):
        parser.error("argument --save: needs --dir (without it the node keeps its data in memory only)")
    if args.appendonly:
        parser.error("argument --appendonly: needs --dir (without it the node keeps its data in memory only)")
    return ()


def save_rules(given: list[list[str]] | None) -> tuple[tuple[int, int], ...]:
    """``--save`` as given (each occurrence's words, ``None`` when absent) as
    ``(seconds, changes)`` pairs: Redis's default when absent, none for ``--save ""``."""
    if given is None:
        return _CONFIG_OPTIONS["save"].default  # type: ignore[no-any-return]
    words = [word for group in given for item in group for word in item.split()]
    if len(words) % 2:
        raise ValueError("expected pairs of SECONDS CHANGES")
    try:
        pairs = tuple((int(words[i]), int(words[i + 1])) for i in range(0, len(words), 2))
    except ValueError:
        raise ValueError("SECONDS and CHANGES must be integers") from None
    if any(seconds < 1 or changes < 0 for seconds, changes in pairs):
        raise ValueError("SECONDS must be at least 1 and CHANGES at least 0")
    return pairs


def node_config(args: argparse.Namespace, address: str = "", contacts: tuple[str, ...] | None = None) -> NodeConfig:
    """The :class:`NodeConfig` for parsed arguments (``address``: the advertised one):
    every field with a flag takes its option's value, in the field's unit."""
    values = {}
    for name, field in _CONFIG_OPTIONS.items():
        value = getattr(args, _dest(field))
        scale = field.metadata["scale"]
        values[name] = value if scale == 1 else value / scale
    return NodeConfig(address=address, contacts=tuple(args.peers) if contacts is None else contacts, **values)


def client_limits(args: argparse.Namespace) -> ClientLimits:
    """The server's :class:`ClientLimits` for parsed arguments."""
    hard, soft, soft_s = args.client_output_buffer_limit
    return ClientLimits(
        output_hard=hard,
        output_soft=soft,
        output_soft_s=soft_s,
        max_clients=args.max_clients,
        idle_timeout_s=args.timeout,
        request_read_timeout_s=args.request_read_timeout,
        max_input_buffer=args.max_input_buffer_bytes,
        max_value_depth=args.max_value_depth,
    )


def peer_trust(args: argparse.Namespace) -> PeerTrust:
    """Whom the node peers with: its id, ``--cluster-secret-file``'s secret, whether
    ``--tls-cluster yes`` makes certificates name the peers, and whether clients need a
    password (then, without a secret, no peer is accepted)."""
    tls = getattr(args, "tls", None)
    return PeerTrust(
        node_id=args.node_id,
        secret=args.cluster_secret,
        tls_cluster=bool(tls is not None and tls.cluster),
        closed=getattr(args, "acl", None) is not None,
    )


def memory_warning(host: str, max_memory: int) -> str | None:
    """The start-up warning for a node that can be reached from other machines and has no
    memory bound, or None."""
    if max_memory or is_loopback(host):
        return None
    return (
        f"--max-memory is not set and the node listens on {host or 'all interfaces'}: memory for keys and "
        "values is unbounded, so clients can fill this machine; set a bound, e.g. "
        "--max-memory 1G --eviction-policy allkeys-lru"
    )


def advertised_address(args: argparse.Namespace, host: str, bound_port: int) -> str:
    """``--advertise`` (its port defaulting to the bound one), else the bound address."""
    if args.advertise is not None:
        adv_host, adv_port = args.advertise
        return format_address(adv_host, bound_port if adv_port is None else adv_port)
    if host in _WILDCARD_HOSTS:
        logger.warning(
            "listening on all interfaces without --advertise: peers on other machines cannot "
            "reach 127.0.0.1:%d; pass --advertise HOST", bound_port,
        )
        host = "127.0.0.1"
    return format_address(host, bound_port)


#: Descriptors a node needs besides its clients' (listeners, peer links, files), as Redis
#: reserves 32 beyond maxclients.
_RESERVED_FDS = 64


def _raise_fd_limit(max_clients: int) -> None:
    """Thousands of idle clients need thousands of descriptors: lift the soft limit, and
    warn when it stays below what ``--max-clients`` needs (accepting would fail first)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
        except (ValueError, OSError):
            pass
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < max_clients + _RESERVED_FDS:
        logger.warning(
            "--max-clients %d needs about %d file descriptors but this process may open %d: "
            "connections past that fail to be accepted; raise the limit (ulimit -n) or lower --max-clients",
            max_clients, max_clients + _RESERVED_FDS, soft,
        )


def _dead_actor(refs: NodeRefs) -> Any:
    return next((ref for ref in refs.actors() if not ref.is_alive()), None)


async def _watch_state(refs: NodeRefs, state_log: StateLog, every_s: float = 1.0) -> None:
    """Feed the state log a ``stats`` snapshot every ``every_s``: limits hit, evictions, the
    progress of warming and of the hand-off (runtime/state_log.py)."""
    while True:
        await asyncio.sleep(every_s)
        stats = await _ask_stats(refs)
        if stats is not None:
            try:
                state_log.on_stats(stats, time.monotonic())
            except Exception:  # a bug here must not stop the node: say it, keep watching
                logger.exception("state log failed on a stats snapshot")


async def _leave(refs: NodeRefs, timeout: float, hurry: asyncio.Event) -> None:
    """Ask the node to hand off and announce ``left``; wait for ``LeaveDone`` (bounded)."""
    if not refs.node.is_alive():
        return
    loop = asyncio.get_running_loop()
    reply = FutureReply(loop)
    refs.node.tell(Leave(reply_to=reply))
    deadline = loop.time() + timeout
    hurried = asyncio.ensure_future(hurry.wait())
    try:
        while not reply.future.done() and not hurry.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0 or _dead_actor(refs) is not None:
                break
            await asyncio.wait(
                {reply.future, hurried}, timeout=min(remaining, 0.5), return_when=asyncio.FIRST_COMPLETED
            )
    finally:
        hurried.cancel()
    # (leaving, the hand-off and having left are logged as the node traces them: runtime/state_log.py)
    if reply.future.done():
        return
    if hurry.is_set():
        logger.warning("second signal: stopping without waiting for the handoff")
    else:
        logger.warning("leaving did not finish within %.1fs; stopping anyway", timeout)


async def _loaded(refs: NodeRefs) -> bool:
    """Wait until the store has loaded the data directory (it does so in its first turn,
    before any message): False when it died doing so (a corrupt log)."""
    loop = asyncio.get_running_loop()
    reply = FutureReply(loop)
    refs.store.tell(StoreCall(0, ((0, StatsQuery()),), reply))
    while not reply.future.done():
        if not refs.store.is_alive():
            return False
        await asyncio.wait({reply.future}, timeout=0.1)
    return True


async def _save_before_exit(refs: NodeRefs) -> None:
    """SIGTERM with ``--save`` rules: write a snapshot before leaving (Redis's shutdown save)."""
    loop = asyncio.get_running_loop()
    reply = FutureReply(loop)
    refs.store.tell(StoreCall(0, ((0, SaveSnapshot(False)),), reply))
    try:
        answer = await asyncio.wait_for(reply.future, timeout=120)
    except asyncio.TimeoutError:
        logger.error("the shutdown snapshot did not finish within 120 s")
        return
    result = answer.results[0][1]
    if result is True:
        logger.info("saved a snapshot before exiting")
    else:
        logger.error("the shutdown snapshot failed: %s", getattr(result, "message", result))


async def _ask_stats(refs: NodeRefs) -> dict[str, Any] | None:
    """The node's ``stats`` for the metrics port (None once its actor is gone)."""
    if not refs.node.is_alive():
        return None
    reply = FutureReply(asyncio.get_running_loop())
    refs.node.tell(StatsAsk(reply_to=reply))
    return await reply.future  # type: ignore[no-any-return]


async def serve(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    scheduler = LoopScheduler(loop)
    scheduler.bind_thread()
    trust = peer_trust(args)
    server = CacheServer(
        max_request_bytes=args.max_request_bytes, partitions=args.partitions, limits=client_limits(args), trust=trust,
        acl=args.acl, protected=protected_mode(args, args.acl),
    )
    server.options = getattr(args, "options", {})  # stats' and CONFIG GET's effective settings
    tls = args.tls.server_context() if getattr(args, "tls", None) is not None else None
    try:
        host, bound_port = await server.start(args.host, args.port, start_serving=False, tls=tls)
    except OSError as exc:
        print(f"actorcache {args.node_id}: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    resp_bound: tuple[str, int] | None = None
    if args.resp_port is not None:
        try:
            resp_bound = await server.start_resp(
                args.host,
                args.resp_port,
                node_id=args.node_id,
                start_serving=False,
                max_memory=args.max_memory,
                eviction_policy=args.eviction_policy,
                tls=tls,
                proto_max_bulk_len=args.proto_max_bulk_len,
            )
        except OSError as exc:
            print(
                f"actorcache {args.node_id}: cannot listen on {args.host}:{args.resp_port}: {exc.strerror}",
                file=sys.stderr,
            )
            server.close_listener()
            return 1
    address = advertised_address(args, host, bound_port)
    if server.options:  # the ports bound (port 0: a free one), in place: RESP's info holds the dict
        server.options["port"] = str(bound_port)
        if resp_bound is not None:
            server.options["resp-port"] = str(resp_bound[1])
    contacts = tuple(peer for peer in args.peers if peer != address)  # a shared contact list may name us
    config = node_config(args, address, contacts)
    # Where peers may reach us (a hello's ``to``) besides each connection's own socket
    # name: the advertised address and its host's IPs, resolved once (behind NAT, peers
    # dial the advertised address). Set before serving: every connection sees it.
    trust = server.trust = dataclasses.replace(trust, addresses=await advertised_addresses(loop, address))
    links = PeerLinks(
        encode_hello(args.node_id, address, config.partitions),
        encode_peer,
        secret=trust.secret,
        loopback_only=trust.loopback_only,
        verify=trust.certificate_refusal if trust.tls_cluster else None,
        loop=loop,
        tls=args.tls.peer_context() if tls is not None else None,
        compress=args.peer_compress == "on",
    )
    trace = TraceFile(args.trace, loop, sample=args.trace_sample) if args.trace else None
    disk = None
    if getattr(args, "dir", None):
        try:
            disk = FileDisk(args.dir)
        except DiskError as exc:
            print(f"actorcache {args.node_id}: {exc}", file=sys.stderr)
            server.close_listener()
            return 1
    if disk is not None:
        # Loading allocates millions of objects: the cyclic GC would scan them again and
        # again (it halves the load time at 200k keys); the collector is tuned after.
        gc.disable()
    state_log = StateLog(args.node_id)
    refs = spawn_node(
        real_ctx(
            args.node_id, scheduler, trace=state_log.sink(trace), send=links.send,
            host_stats=lambda: {**server.stats(), "peer_links": links.stats()},
            disk=disk, tracing=trace is not None,
        ),
        config,
    )
    server.attach(refs.node)
    loaded = disk is None or await _loaded(refs)
    gc.enable()
    if not loaded:
        logger.critical("the data directory could not be loaded (see above); not starting")
        await server.shutdown(grace_s=0.0)
        links.close()
        refs.stop()
        disk.close()
        return EXIT_ACTOR_DIED
    await server.start_serving()
    tune_collector()
    gc_pacer = GcPacer(loop)
    gc_pacer.start()
    try:
        metrics = await start_metrics(args, lambda: _ask_stats(refs), lambda: _dead_actor(refs) is None, gc_pacer)
    except OSError as exc:
        print(f"actorcache {args.node_id}: cannot listen on metrics port {args.metrics_port}: {exc.strerror}", file=sys.stderr)
        await server.shutdown(grace_s=0.0)
        gc_pacer.stop()
        links.close()
        refs.stop()
        if disk is not None:
            disk.close()
        return 1
    if metrics is not None and server.options:
        server.options["metrics-port"] = str(metrics[1][1])  # the port bound, as for port and resp-port

    stop = asyncio.Event()
    hurry = asyncio.Event()

    def on_signal() -> None:
        (hurry if stop.is_set() else stop).set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    peers = f" peers={','.join(args.peers)}" if args.peers else ""
    print(f"actorcache node {args.node_id} listening on {host}:{bound_port}{peers}", flush=True)
    if resp_bound is not None:
        print(f"actorcache node {args.node_id} resp on {resp_bound[0]}:{resp_bound[1]}", flush=True)
    if metrics is not None:
        print(f"actorcache node {args.node_id} metrics on {metrics[1][0]}:{metrics[1][1]}", flush=True)
    if address != format_address(host, bound_port):
        logger.info("advertising %s to peers", address)
    warning = memory_warning(args.host, args.max_memory)
    if warning is not None:
        logger.warning("%s", warning)
    if tls is not None:
        logger.info(
            "TLS on the client%s port: client certificates %s, peer links %s", " and RESP" if resp_bound else "",
            {"yes": "required", "optional": "verified when presented", "no": "not asked for"}[args.tls.auth_clients],
            "mutual TLS (--tls-cluster yes)" if args.tls.cluster else "encrypted",
        )
    if trust.no_peers:
        logger.warning("%s", NO_PEERS_MESSAGE)
    elif trust.loopback_only:
        logger.warning("%s", LOOPBACK_ONLY_MESSAGE)
    if server.protected and not is_loopback(args.host):
        logger.warning(
            "protected mode: no password is set for the default user, so clients from non-loopback addresses "
            "are refused; set --requirepass-file or --aclfile (or --protected-mode no on a trusted network)"
        )

    exit_code = 0
    watch = asyncio.ensure_future(_watch_state(refs, state_log))
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=0.5)
        except asyncio.TimeoutError:
            pass
        dead = _dead_actor(refs)
        if dead is not None and not stop.is_set():
            # An actor died of a bug: serving on would hang clients. Exit so a supervisor restarts us.
            logger.critical("actor %s died; exiting", dead.actor_urn)
            exit_code = EXIT_ACTOR_DIED
            break
    if metrics is not None:
        metrics[0].stopping = True  # /ready: 503 from now on, while the node hands off and stops
    if exit_code == 0 and disk is not None and config.save:
        await _save_before_exit(refs)
    if exit_code == 0:
        logger.info("stopping %s", args.node_id)
        await _leave(refs, args.leave_timeout + 1.0, hurry)
        dead = _dead_actor(refs)
        if dead is not None:
            logger.critical("actor %s died while leaving", dead.actor_urn)
            exit_code = EXIT_ACTOR_DIED
        await server.shutdown(grace_s=1.5)
    else:
        await server.shutdown(grace_s=0.2)
    if metrics is not None:
        await metrics[0].close()
    watch.cancel()
    gc_pacer.stop()
    links.close()
    await links.wait_closed(timeout=0.3)
    refs.stop()
    await asyncio.sleep(0)
    if trace is not None:
        trace.close()
    if disk is not None:
        disk.close()
    return exit_code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level, args.log_format, args.node_id)
    _raise_fd_limit(args.max_clients)
    return run_on(args.event_loop, serve(args))


if __name__ == "__main__":
    sys.exit(main())
