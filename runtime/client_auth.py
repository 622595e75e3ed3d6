"""Client authentication at the connections: each connection's auth state, protected mode,
and the node's options that configure both (the users themselves are :mod:`runtime.acl`).

- :class:`AuthGate` is one JSON-lines or msgpack connection's state: it answers that
  connection's ``auth`` requests itself and replaces each request its user may not send
  by a ``noauth`` / ``noperm`` error, in place, so replies keep pipeline order (the node
  sees an already-answered item, as for a decode error). RESP does the same per command in
  :func:`runtime.resp_commands.dispatch_authenticated`.
- Protected mode (Redis's): when the default user needs no password, a client from a
  non-loopback address gets one ``denied`` error and is closed
  (:func:`refused_by_protected_mode`); peers on the shared port are judged by their
  handshake instead.

Invariants (why): with no passwords a connection has no gate (nothing is checked per
request); with them, a connection whose user may send everything pays one attribute test
per read plus a type test per item (to find ``auth``). A failed ``auth`` leaves the
connection as it was (as Redis) and is counted; no password reaches a log line.
"""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path
from typing import Any

from actors.protocol.errors import ErrorCode
from actors.protocol.messages import Ack, Auth, ErrorReply, Ping
from runtime.acl import NOAUTH_MESSAGE, WRONGPASS_MESSAGE, Acl, AclFileError, User

__all__ = [
    "DENIED_MESSAGE",
    "AuthGate",
    "add_auth_options",
    "client_acl",
    "protected_mode",
    "refused_by_protected_mode",
]

#: Protected mode's one reply (Redis's DENIED text, adapted to this node's options).
DENIED_MESSAGE = (
    "actorcache is running in protected mode because protected mode is enabled and no password is set "
    "for the default user. In this mode connections are only accepted from the loopback interface. "
    "If you want to connect from external computers you may adopt one of the following solutions: "
    "1) Set up an authentication password for the default user: restart the node with "
    "--requirepass-file PATH (or --requirepass PASSWORD), or give it users with --aclfile PATH. "
    "2) If you started the node just for testing, restart it with the '--protected-mode no' option, "
    "however MAKE SURE the node is not publicly accessible from the internet if you do so. "
    "NOTE: You only need to do one of the above things in order for the node to start accepting "
    "connections from the outside."
)


def add_auth_options(parser: argparse.ArgumentParser) -> None:
    """``--requirepass``, ``--requirepass-file``, ``--aclfile``, ``--protected-mode``."""
    group = parser.add_argument_group("client authentication (Redis's option names; docs/protocol.md, docs/resp.md)")
    group.add_argument(
        "--requirepass", metavar="PASSWORD",
        help="clients must authenticate with this password (auth request, AUTH); visible to other "
        "local users in the process list: prefer --requirepass-file",
    )
    group.add_argument(
        "--requirepass-file", metavar="PATH",
        help="as --requirepass, the password being this file's first line",
    )
    group.add_argument(
        "--aclfile", metavar="PATH",
        help="users, passwords and permissions, one 'user NAME on >PASSWORD ~PATTERN +@read +@write +@admin' "
        "line each (a subset of Redis's ACL syntax, see runtime/acl.py); the default user is off unless named",
    )
    group.add_argument(
        "--protected-mode", choices=("yes", "no"), default="yes",
        help="with no password for the default user, refuse clients from non-loopback addresses "
        "(one 'denied' error, then close) (default yes)",
    )


def client_acl(args: argparse.Namespace) -> Acl | None:
    """The node's users from its options (None: no passwords); ValueError for a usage error."""
    options = (
        ("--requirepass", args.requirepass), ("--requirepass-file", args.requirepass_file), ("--aclfile", args.aclfile)
    )
    given = [flag for flag, value in options if value is not None]
    if len(given) > 1:
        raise ValueError(f"{' and '.join(given)} exclude each other")
    if args.requirepass is not None:
        return Acl.requirepass(args.requirepass) if args.requirepass else None  # "": none, as Redis
    if args.requirepass_file is not None:
        try:
            lines = Path(args.requirepass_file).read_bytes().splitlines()
        except OSError as exc:
            raise ValueError(
                f"argument --requirepass-file: cannot read {args.requirepass_file}: {exc.strerror}"
            ) from None
        password = lines[0].strip() if lines else b""
        if not password:
            raise ValueError(f"argument --requirepass-file: {args.requirepass_file} holds no password")
        return Acl.requirepass(password)
    if args.aclfile is not None:
        try:
            return Acl.from_file(args.aclfile)
        except OSError as exc:
            raise ValueError(f"argument --aclfile: cannot read {args.aclfile}: {exc.strerror}") from None
        except AclFileError as exc:
            raise ValueError(f"argument --aclfile: {exc}") from None
    return None


def protected_mode(args: argparse.Namespace, acl: Acl | None) -> bool:
    """Whether protected mode applies: on (the default) and the default user needs no password."""
    return args.protected_mode == "yes" and (acl is None or acl.default_open)


def refused_by_protected_mode(transport: Any) -> bool:
    """Whether protected mode refuses this connection: it came from an address that is
    not loopback (an IPv4 address mapped into IPv6 counts as itself)."""
    peer = transport.get_extra_info("peername") if transport is not None else None
    if not isinstance(peer, tuple) or not peer or not isinstance(peer[0], str):
        return False  # not an IP connection (a Unix socket): local
    try:
        ip = ipaddress.ip_address(peer[0].split("%", 1)[0])
    except ValueError:
        return True
    mapped = getattr(ip, "ipv4_mapped", None)
    return not (mapped or ip).is_loopback


class AuthGate:
    """One JSON-lines or msgpack connection's authentication state: answers its ``auth``
    requests and replaces what its user may not send by an error, in pipeline order."""

    __slots__ = ("acl", "counters", "user")

    def __init__(self, acl: Acl, counters: dict[str, int] | None = None) -> None:
        self.acl = acl
        self.user: User | None = acl.initial_user()
        #: The server's counters (``auth_failures`` counts refused ``auth`` requests).
        self.counters = counters if counters is not None else {"auth_failures": 0}

    def admit(self, items: list[Any]) -> list[Any]:
        """``items`` (decoded requests and decode errors) as the node may see them: each
        ``auth`` replaced by its answer, each request the connection may not send by its
        error, the rest unchanged."""
        user = self.user
        if user is not None and user.all_permitted:
            for item in items:
                if type(item) is Auth:
                    break
            else:
                return items
        return [self._admit(item) for item in items]

    def _admit(self, item: Any) -> Any:
        t = type(item)
        if t is Auth:
            user = self.acl.authenticate(item.user, item.password)
            if user is None:
                self.counters["auth_failures"] += 1
                return ErrorReply(ErrorCode.WRONGPASS, WRONGPASS_MESSAGE, item.rid)
            self.user = user
            return Ack(item.rid)
        if t is ErrorReply or t is Ping:
            return item
        user = self.user
        if user is None:
            return ErrorReply(ErrorCode.NOAUTH, NOAUTH_MESSAGE, getattr(item, "rid", None))
        if user.all_permitted:
            return item
        return user.refusal(item) or item
