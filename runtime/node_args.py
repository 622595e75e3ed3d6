"""The node's command line: the ``argparse`` parser and the checks after parsing.

:func:`build_parser` declares every option (NodeConfig's fields through
:func:`_config_option`, so a field's flag, help and default are written once, in
``actors.config``); :func:`parse_args` merges ``--config FILE`` under the command line,
then refuses what is malformed or contradictory with a usage error (exit 2) before
anything starts: save rules, limits, the node id, secret and certificate files, TLS and
ACL combinations, and whatever :class:`~actors.config.NodeConfig` itself refuses. Split
out of ``runtime.node`` (which re-exports :func:`build_parser`, :func:`parse_args` and
:func:`save_rules`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from actors.protocol.consistency import CONSISTENCY_LEVELS
from actors.protocol.peer_codec import node_id_error
from actors.store.eviction import EVICTION_POLICIES
from actors.protocol.value_depth import MAX_SUPPORTED_VALUE_DEPTH
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
from runtime.client_auth import add_auth_options, client_acl
from runtime.config_file import effective_options, parse_args_with_config
from runtime.conn_limits import PEER_HELLO_GRACE_S, ClientLimits
from runtime.event_loop import AUTO_UVLOOP, EVENT_LOOPS, event_loop_choice
from runtime.framing import JSON_CODECS, use_json_codec
from runtime.metrics_http import add_metrics_options
from runtime.logs import LOG_FORMATS
from runtime.peer_compress import DEFAULT_MODE, MODES
from runtime.peer_trust import read_secret_file
from runtime.tls import add_tls_options, tls_settings
from runtime.node_options import _CONFIG_OPTIONS, node_config

__all__ = ["MAX_PARTITIONS", "build_parser", "parse_args", "save_rules"]

#: Largest ``--partitions`` accepted (a partition table is gossiped and kept per node).
MAX_PARTITIONS = 1 << 16

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
    _config_option(memory, "max_cluster_value_bytes", type=byte_size, metavar="BYTES")
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
        help="partial input (and RESP transactions' queued arguments) all connections may hold together; past it "
        "the connection holding the most "
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
        "--peer-compress", choices=MODES, default=DEFAULT_MODE,
        help="offer compression (zstd, else zlib) to peers at hello for frames of 1 KiB and more: auto (the default) "
        "on every link but those to a loopback address, on every link, or off (this node sends uncompressed; it "
        "still reads what peers it accepted compress). On a fast LAN whose nodes are CPU-bound, off is better; "
        "see docs/operations.md",
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
