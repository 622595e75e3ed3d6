"""``host:port`` text: the one place that parses and writes node addresses.

Every address a user types (``PEER_ADDR``, ``--advertise``, ``--node``, ``Client(...)``),
every address a node advertises and every socket name written to a log goes through here,
so IPv6 is handled the same way everywhere:

- an IPv6 host is written in brackets, ``[::1]:8081``; a bare ``::1:8081`` is refused
  (its port is ambiguous), ``[127.0.0.1]:80`` is accepted (brackets are allowed for any host);
- an address without a port means :data:`DEFAULT_PORT` (the README's ``make run``);
- :func:`format_address` is canonical (lower-case host, ``localhost`` as ``127.0.0.1``),
  so every node writes the same peer the same way: addresses are compared as text;
  :func:`join_host_port` writes a host as it is (for logs and the client's repr).

Invariant: ``parse_address(format_address(h, p)) == (canonical h, p)`` for every host
without ``[]`` and every port 1..65535 (tests/test_addresses.py).
"""

from __future__ import annotations

import ipaddress
from typing import Any

__all__ = [
    "DEFAULT_PORT",
    "format_address",
    "is_loopback",
    "join_host_port",
    "parse_address",
    "sockaddr_text",
    "split_address",
]

#: The port an address without one refers to.
DEFAULT_PORT = 8081


def split_address(text: str, what: str = "node address") -> tuple[str, int | None]:
    """``"host:port"``, ``"[v6]:port"``, ``"host"`` or ``"[v6]"`` as ``(host, port)``,
    the port None when the text names none. ``what`` names the address in errors
    (``bad node address 'x': ...``). Raises ValueError for anything else."""
    stripped = text.strip()
    if stripped.startswith("["):
        end = stripped.find("]")
        if end < 0:
            raise ValueError(f"bad {what} {text!r}: missing ']'")
        host, rest = stripped[1:end], stripped[end + 1 :]
        if not rest:
            return _host(host, text, what), None
        if not rest.startswith(":"):
            raise ValueError(f"bad {what} {text!r}: expected ':port' after ']'")
        port_text = rest[1:]
    else:
        host, sep, port_text = stripped.rpartition(":")
        if not sep:
            return _host(stripped, text, what), None
        if ":" in host:
            raise ValueError(f"bad {what} {text!r}: write IPv6 addresses as [addr]:port")
    _host(host, text, what)
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"bad {what} {text!r}: port {port_text!r} is not a number") from None
    return host, _check_port(port, text, what)


def parse_address(address: str | tuple[str, int], what: str = "node address") -> tuple[str, int]:
    """``"host:port"``, ``"[v6]:port"``, ``"host"`` (port :data:`DEFAULT_PORT`) or a
    ``(host, port)`` tuple, as ``(host, port)``; ValueError for anything else."""
    if isinstance(address, tuple):
        host, port = address
        return str(host), _check_port(port, address, what)
    host, port = split_address(address, what)
    return host, DEFAULT_PORT if port is None else port


def format_address(host: str, port: int) -> str:
    """The canonical ``host:port`` nodes use for each other: lower-case host,
    ``localhost`` as ``127.0.0.1``, IPv6 in brackets."""
    host = host.strip().lower()
    if host == "localhost":
        host = "127.0.0.1"
    return join_host_port(host, port)


def join_host_port(host: str, port: int) -> str:
    """``host:port`` with ``host`` as given, in brackets if it is IPv6."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def sockaddr_text(name: Any) -> str:
    """A socket name (``getpeername``/``getsockname``: ``(host, port, ...)``) as
    ``host:port``; ``"?"`` when there is none (a closed or non-IP socket)."""
    if isinstance(name, tuple) and len(name) >= 2:
        return join_host_port(str(name[0]), name[1])
    return "?"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (bracketed or not) is a loopback address or ``localhost``; a host
    name is not (it may resolve to anything)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host(host: str, text: str, what: str) -> str:
    if not host:
        raise ValueError(f"bad {what} {text!r}: missing host")
    return host


def _check_port(port: Any, address: Any, what: str) -> int:
    if type(port) is not int or not 1 <= port <= 65535:
        raise ValueError(f"bad {what} {address!r}: port must be 1..65535")
    return port
