"""``python -m runtime.cli [--node HOST:PORT] [--consistency LEVEL] COMMAND ...``: talk to a node from the shell.

Data commands: ``get KEY``, ``set KEY VALUE [--ttl S] [--raw]``, ``delete KEY``,
``mget KEY...``, ``mset KEY VALUE [KEY VALUE ...] [--ttl S] [--raw]``; each takes
``--consistency one|quorum|all`` (before or after the command; default: the node's
``--read-consistency``/``--write-consistency``). Node and cluster commands: ``ping``,
``stats``, ``members``, ``locate KEY``, ``inspect KEY``, ``remove-node NODE_ID``, ``top``.

Values on the command line are parsed as JSON when they parse (``42`` is a number,
``'{"a":1}'`` an object, ``'"42"'`` the string "42"), else stored as the literal string;
``--raw`` always stores the literal string. ``NaN``/``Infinity`` are not JSON here (the
node rejects them), so they are stored as strings.

Output is made for scripts. ``get`` prints the value (a string as is, anything else as
JSON) and, like ``grep``, exits 1 on a miss with nothing on stdout and "(miss)" on
stderr; ``delete`` and ``mget`` follow the same rule (1 when a key was not there).

Cluster commands: ``locate`` prints ``partition: N`` and ``owners: ID ...`` (best
first); ``inspect`` prints the asked node's own copy as one JSON object (``found``,
``tombstone``, ``value``, ``version`` as ``[wall_ms, logical, node_id]``, ``deadline``,
``purge_at``) and exits 1 unless that is a live value ("(miss)" on stderr and nothing on
stdout when the node holds nothing, "(tombstone)" when it holds a tombstone);
``members`` prints one line per member: id, address, status, state, incarnation;
``top`` is a live view of the whole cluster (``--interval``, ``--count``; runtime/top.py);
``remove-node`` prints ``removed ID`` (the node refuses, exit 3, unless it sees that
member down). ``locate`` and ``members`` take ``--json`` for machine-readable output.

TLS (a node started with ``--tls-cert-file``): ``--tls`` with ``--cacert CA.pem`` (the CA
that signed the node's certificate) and, when the node asks for client certificates
(``--tls-auth-clients``), ``--cert`` and ``--key``: redis-cli's names.

A node with passwords (``--requirepass``, ``--aclfile``) takes ``--password`` (or the
environment variable ``ACTORCACHE_PASSWORD``, as redis-cli's ``REDISCLI_AUTH``: it stays out
of the process list) and ``--user NAME``; a wrong one exits 3 (``wrongpass``).

Exit codes: 0 success, 1 miss, 2 usage error, 3 the node answered with an error
(including ``unavailable`` and a node-side ``timeout``), 4 the node could not be reached
or did not answer in time.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
from typing import Any, TextIO

from actors.protocol.errors import CacheError
from runtime.addresses import DEFAULT_PORT, parse_address
from runtime.argtypes import count, positive_seconds, seconds
from runtime.client import (
    CONSISTENCY_LEVELS,
    Client,
    ClientTimeoutError,
    ConnectionLostError,
    Inspection,
    ProtocolError,
)
from runtime.top import Top

__all__ = [
    "EXIT_CONNECTION",
    "EXIT_MISS",
    "EXIT_OK",
    "EXIT_SERVER_ERROR",
    "EXIT_USAGE",
    "main",
    "parse_value",
]

#: The environment variable a password may come from instead of --password (as REDISCLI_AUTH).
PASSWORD_ENV = "ACTORCACHE_PASSWORD"

EXIT_OK = 0
EXIT_MISS = 1
EXIT_USAGE = 2
EXIT_SERVER_ERROR = 3
EXIT_CONNECTION = 4


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_value(text: str, raw: bool = False) -> Any:
    """A command-line value: JSON if it parses (and ``raw`` is off), else the string."""
    if raw:
        return text
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return text


def _node_address(text: str) -> str:
    try:
        parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


class _Parser(argparse.ArgumentParser):
    """Raises instead of exiting, so :func:`main` returns its exit code."""

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if message:
            sys.stderr.write(message)
        raise _Exit(status)


class _Exit(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


_EPILOG = """\
exit codes:
  0  success
  1  miss: get/delete found no key, mget not every key, inspect no live value on the node
  2  usage error (unknown command, bad argument, --consistency not one/quorum/all)
  3  the node answered with an error (bad_request, unavailable, timeout, ...)
  4  the node could not be reached or did not answer within --timeout
"""

_CONSISTENCY_HELP = (
    "consistency level of the data commands (get, set, delete, mget, mset): "
    "one, quorum or all (default: the node's --read-consistency/--write-consistency)"
)


def _add_consistency(parser: argparse.ArgumentParser, default: Any, help: str = _CONSISTENCY_HELP) -> None:
    parser.add_argument(
        "--consistency", choices=CONSISTENCY_LEVELS, default=default, metavar="{" + ",".join(CONSISTENCY_LEVELS) + "}",
        help=help,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m runtime.cli",
        description="Talk to an actorcache node.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--node", type=_node_address, default=f"localhost:{DEFAULT_PORT}", metavar="HOST:PORT",
        help=f"the node to talk to (default localhost:{DEFAULT_PORT}; IPv6 as [::1]:{DEFAULT_PORT})",
    )
    parser.add_argument(
        "--timeout", type=positive_seconds, default=5.0, metavar="SECONDS",
        help="give up connecting or waiting for a reply after this long (default 5)",
    )
    _add_consistency(parser, None)
    auth = parser.add_argument_group("authentication (redis-cli's names)")
    auth.add_argument(
        "--password", "--pass", "-a", dest="password", metavar="PASSWORD",
        help=f"authenticate with this password (default: ${PASSWORD_ENV}, which keeps it out of the process list)",
    )
    auth.add_argument("--user", metavar="NAME", help="authenticate as this ACL user (default: default)")
    tls = parser.add_argument_group("TLS (redis-cli's names)")
    tls.add_argument("--tls", action="store_true", help="connect with TLS")
    # (dest names of their own: the data commands' KEY is args.key)
    tls.add_argument(
        "--cacert", dest="tls_cacert", metavar="FILE",
        help="CA certificate(s) to verify the node with (default: the system's)",
    )
    tls.add_argument(
        "--cert", dest="tls_cert", metavar="FILE", help="client certificate, for a node with --tls-auth-clients"
    )
    tls.add_argument("--key", dest="tls_key", metavar="FILE", help="private key of --cert")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def data_command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        # Also accepted after the command; SUPPRESS keeps the global value when absent.
        _add_consistency(p, argparse.SUPPRESS, "this request's consistency level (same as the global option)")
        return p

    p = data_command("get", "print a key's value; exit 1 if missing")
    p.add_argument("key")
    p.add_argument("--json", action="store_true", help="print strings JSON-encoded too")

    p = data_command("set", "store a value")
    p.add_argument("key")
    p.add_argument("value")
    p.add_argument("--ttl", type=seconds, default=None, metavar="SECONDS", help="expire after this long")
    p.add_argument("--raw", action="store_true", help="store VALUE as a string, never as JSON")

    p = data_command("delete", "remove a key; exit 1 if it did not exist")
    p.add_argument("key")

    p = data_command("mget", "print the found keys as one JSON object; exit 1 if any is missing")
    p.add_argument("keys", nargs="+", metavar="KEY")

    p = data_command("mset", "store several values in one request")
    p.add_argument("pairs", nargs="+", metavar="KEY VALUE")
    p.add_argument("--ttl", type=seconds, default=None, metavar="SECONDS", help="expire after this long")
    p.add_argument("--raw", action="store_true", help="store every VALUE as a string, never as JSON")

    sub.add_parser("ping", help="print the round-trip time")
    sub.add_parser("stats", help="print the node's counters as JSON")

    p = sub.add_parser("members", help="list the cluster's members as the node sees them")
    p.add_argument("--json", action="store_true", help="print stats' cluster.members as JSON")

    p = sub.add_parser("locate", help="print a key's partition and owners, best first")
    p.add_argument("key")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("inspect", help="print the node's own copy of a key as JSON; exit 1 unless a live value")
    p.add_argument("key")

    p = sub.add_parser("remove-node", help="declare a down member gone for good (its partitions move)")
    p.add_argument("node_id", metavar="NODE_ID")

    p = sub.add_parser("top", help="a live view of the cluster: one row per member (Ctrl-C ends it)")
    p.add_argument(
        "--interval", type=positive_seconds, default=1.0, metavar="SECONDS", help="seconds between refreshes (default 1)"
    )
    p.add_argument("--count", type=count, default=None, metavar="N", help="stop after N refreshes (default: never)")
    return parser


def _dump(value: Any, **kwargs: Any) -> str:
    return json.dumps(value, ensure_ascii=False, **kwargs)


def _members(stats: dict[str, Any]) -> dict[str, dict[str, Any]]:
    cluster = stats.get("cluster")
    members = cluster.get("members") if isinstance(cluster, dict) else None
    if not isinstance(members, dict):
        raise ProtocolError("stats have no cluster.members")
    return members


_MEMBER_COLUMNS = ("addr", "status", "state", "incarnation")


def _members_table(members: dict[str, dict[str, Any]]) -> str:
    """One aligned line per member, sorted by id, under a header."""
    rows = [("NODE", "ADDRESS", "STATUS", "STATE", "INCARNATION")]
    for node_id in sorted(members):
        row = members[node_id] if isinstance(members[node_id], dict) else {}
        rows.append((node_id, *(str(row.get(col, "-")) for col in _MEMBER_COLUMNS)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1] + "\n" for row in rows
    )


def _inspection_json(copy: Inspection) -> dict[str, Any]:
    return {
        "key": copy.key,
        "found": copy.found,
        "tombstone": copy.tombstone,
        "value": copy.value,
        "version": list(copy.version),
        "deadline": copy.deadline,
        "purge_at": copy.purge_at,
    }


def _run(args: argparse.Namespace, client: Client, out: TextIO, err: TextIO) -> int:
    command = args.command
    if command == "get":
        found, value = client.get_entry(args.key)
        if not found:
            err.write("(miss)\n")
            return EXIT_MISS
        out.write((value if type(value) is str and not args.json else _dump(value)) + "\n")
    elif command == "set":
        client.set(args.key, parse_value(args.value, args.raw), ttl=args.ttl)
        out.write("OK\n")
    elif command == "delete":
        if not client.delete(args.key):
            err.write("(miss)\n")
            return EXIT_MISS
        out.write("deleted\n")
    elif command == "mget":
        found = client.mget(args.keys)
        out.write(_dump(found) + "\n")
        missing = [key for key in dict.fromkeys(args.keys) if key not in found]
        if missing:
            err.write("".join(f"(miss) {key}\n" for key in missing))
            return EXIT_MISS
    elif command == "mset":
        client.mset(dict(zip(args.pairs[::2], (parse_value(v, args.raw) for v in args.pairs[1::2]))), ttl=args.ttl)
        out.write("OK\n")
    elif command == "ping":
        out.write(f"pong {client.ping() * 1000:.3f} ms\n")
    elif command == "stats":
        out.write(_dump(client.stats(), indent=2) + "\n")
    elif command == "members":
        members = _members(client.stats())
        if args.json:
            out.write(_dump(members, indent=2) + "\n")
        else:
            out.write(_members_table(members))
    elif command == "locate":
        where = client.locate(args.key)
        if args.json:
            out.write(_dump({"key": where.key, "partition": where.partition, "owners": list(where.owners)}) + "\n")
        else:
            out.write(f"partition: {where.partition}\nowners: {' '.join(where.owners)}\n")
    elif command == "inspect":
        copy = client.inspect(args.key)
        if copy is None:
            err.write("(miss)\n")
            return EXIT_MISS
        out.write(_dump(_inspection_json(copy)) + "\n")
        if copy.tombstone:
            err.write("(tombstone)\n")
            return EXIT_MISS
    elif command == "remove-node":
        client.remove_node(args.node_id)
        out.write(f"removed {args.node_id}\n")
    else:  # pragma: no cover - argparse only accepts the commands above
        raise AssertionError(command)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (see the module docstring)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "mset" and len(args.pairs) % 2:
            parser.error("mset takes KEY VALUE pairs: got an odd number of arguments")
    except _Exit as exc:
        return exc.status
    out, err = sys.stdout, sys.stderr
    try:
        password = args.password if args.password is not None else os.environ.get(PASSWORD_ENV) or None
        if args.user is not None and password is None:
            err.write(f"error: --user needs --password (or ${PASSWORD_ENV})\n")
            return EXIT_USAGE
        # top asks every member in turn: a stopped one may hold a refresh up by one interval, not --timeout.
        timeout = min(args.timeout, max(1.0, args.interval)) if args.command == "top" else args.timeout

        def connect(node: str) -> Client:
            return Client(
                node, timeout=timeout, connect_timeout=timeout, consistency=args.consistency,
                tls=args.tls, cafile=args.tls_cacert, certfile=args.tls_cert, keyfile=args.tls_key,
                password=password, user=args.user,
            )

        client = connect(args.node)
    except ValueError as exc:
        err.write("error: --cacert, --cert and --key need --tls\n" if not args.tls else f"error: {exc}\n")
        return EXIT_USAGE
    except (OSError, ssl.SSLError) as exc:  # an unreadable or bad --cacert/--cert/--key
        err.write(f"error: cannot load the TLS files: {getattr(exc, 'reason', None) or exc}\n")
        return EXIT_USAGE
    if args.command == "top":
        client.close()
        try:
            Top(args.node, connect).run(out, args.interval, args.count, tty=out.isatty())
        except KeyboardInterrupt:
            pass
        return EXIT_OK
    try:
        with client:
            return _run(args, client, out, err)
    except (ConnectionLostError, ClientTimeoutError) as exc:
        err.write(f"error: {exc.message}\n")
        return EXIT_CONNECTION
    except ProtocolError as exc:
        err.write(f"error: bad reply from {args.node}: {exc.message}\n")
        return EXIT_SERVER_ERROR
    except CacheError as exc:
        code = exc.code.value
        message = exc.message.removeprefix(f"{code}: ")  # some node messages repeat the code
        err.write(f"error: {code}: {message}\n")
        return EXIT_SERVER_ERROR
    except BrokenPipeError:
        # stdout closed early (``| head``): not our failure. Point stdout at /dev/null so
        # the interpreter's final flush does not complain about the same pipe again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
