"""``python -m runtime.cli [--node HOST:PORT] COMMAND ...``: talk to a node from the shell.

Commands: ``get KEY``, ``set KEY VALUE [--ttl S] [--raw]``, ``delete KEY``,
``mget KEY...``, ``mset KEY VALUE [KEY VALUE ...] [--ttl S] [--raw]``, ``ping``, ``stats``.

Values on the command line are parsed as JSON when they parse (``42`` is a number,
``'{"a":1}'`` an object, ``'"42"'`` the string "42"), else stored as the literal string;
``--raw`` always stores the literal string. ``NaN``/``Infinity`` are not JSON here (the
node rejects them), so they are stored as strings.

Output is made for scripts. ``get`` prints the value (a string as is, anything else as
JSON) and, like ``grep``, exits 1 on a miss with nothing on stdout and "(miss)" on
stderr; ``delete`` and ``mget`` follow the same rule (1 when a key was not there).

Exit codes: 0 success, 1 miss, 2 usage error, 3 the node answered with an error,
4 the node could not be reached or did not answer in time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, TextIO

from actors.errors import CacheError
from runtime.argtypes import positive_seconds, seconds
from runtime.client import (
    DEFAULT_PORT,
    Client,
    ClientTimeoutError,
    ConnectionLostError,
    ProtocolError,
    parse_address,
)

__all__ = [
    "EXIT_CONNECTION",
    "EXIT_MISS",
    "EXIT_OK",
    "EXIT_SERVER_ERROR",
    "EXIT_USAGE",
    "main",
    "parse_value",
]

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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m runtime.cli",
        description="Talk to an actorcache node.",
        epilog="exit codes: 0 ok, 1 miss, 2 usage, 3 error reply from the node, 4 node unreachable or timed out",
    )
    parser.add_argument(
        "--node", type=_node_address, default=f"localhost:{DEFAULT_PORT}", metavar="HOST:PORT",
        help=f"the node to talk to (default localhost:{DEFAULT_PORT}; IPv6 as [::1]:{DEFAULT_PORT})",
    )
    parser.add_argument(
        "--timeout", type=positive_seconds, default=5.0, metavar="SECONDS",
        help="give up connecting or waiting for a reply after this long (default 5)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("get", help="print a key's value; exit 1 if missing")
    p.add_argument("key")
    p.add_argument("--json", action="store_true", help="print strings JSON-encoded too")

    p = sub.add_parser("set", help="store a value")
    p.add_argument("key")
    p.add_argument("value")
    p.add_argument("--ttl", type=seconds, default=None, metavar="SECONDS", help="expire after this long")
    p.add_argument("--raw", action="store_true", help="store VALUE as a string, never as JSON")

    p = sub.add_parser("delete", help="remove a key; exit 1 if it did not exist")
    p.add_argument("key")

    p = sub.add_parser("mget", help="print the found keys as one JSON object; exit 1 if any is missing")
    p.add_argument("keys", nargs="+", metavar="KEY")

    p = sub.add_parser("mset", help="store several values in one request")
    p.add_argument("pairs", nargs="+", metavar="KEY VALUE")
    p.add_argument("--ttl", type=seconds, default=None, metavar="SECONDS", help="expire after this long")
    p.add_argument("--raw", action="store_true", help="store every VALUE as a string, never as JSON")

    sub.add_parser("ping", help="print the round-trip time")
    sub.add_parser("stats", help="print the node's counters as JSON")
    return parser


def _dump(value: Any, **kwargs: Any) -> str:
    return json.dumps(value, ensure_ascii=False, **kwargs)


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
        with Client(args.node, timeout=args.timeout, connect_timeout=args.timeout) as client:
            return _run(args, client, out, err)
    except (ConnectionLostError, ClientTimeoutError) as exc:
        err.write(f"error: {exc.message}\n")
        return EXIT_CONNECTION
    except ProtocolError as exc:
        err.write(f"error: bad reply from {args.node}: {exc.message}\n")
        return EXIT_SERVER_ERROR
    except CacheError as exc:
        err.write(f"error: {exc.code.value}: {exc.message}\n")
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
