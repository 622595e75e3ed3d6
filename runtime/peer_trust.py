"""Whom a node peers with: the cluster secret, the loopback rule, fresh nonces.

The handshake itself is sans-IO (:mod:`actors.kernel.peer_auth`); this module is the
runtime's policy around it, shared by both ends of a real peer connection (the acceptor
in :mod:`runtime.connection`, the connector in :mod:`runtime.peers`):

- the secret is the key of every proof (``--cluster-secret-file``); with none, the key is
  empty, the proofs prove nothing, and so a node peers with loopback addresses only, in
  and out (:meth:`PeerTrust.refusal`), unless ``--tls-cluster yes`` lets the certificate
  name the node;
- under ``--tls-cluster yes`` the node id a handshake names must also be one of the names
  of the certificate the other end presented (:meth:`PeerTrust.certificate_refusal`),
  checked on both sides: the secret proves membership, the certificate the identity;
- a node that asks its clients for passwords (``closed``) and has no secret accepts no
  peers at all, loopback included: a local user must not get past the password by
  peering with the empty key (:data:`NO_PEERS_MESSAGE`);
- a secret is at least :data:`MIN_SECRET_BYTES` long: the challenge lets any stranger test
  guesses of it offline, so it must be too long to guess;
- nonces come from ``os.urandom`` here, never from the actors (which draw nothing);
- a hello names the address its connection reached (``to``, :func:`reached_address` of
  the connector's socket peer address) and both proofs cover it; the acceptor takes only
  the address the connection arrived at (its socket name: exact without NAT), the node's
  advertised address and that host's IPs with the advertised port (resolved once at
  start-up, :func:`advertised_addresses`: behind NAT peers dial the advertised address),
  so a handshake relayed by a stranger a node dialled is refused;
- the secret never appears in a ``repr``, a log line or an exception: it is a field that
  ``repr`` skips, and every refusal message is written without it;
- refusals are logged without letting strangers fill the memory or the log: what a peer
  claims is shown cut short (:func:`~actors.kernel.failures.brief`), the memory of what
  was logged is an LRU of :data:`REFUSAL_MEMORY` short keys, and past
  :data:`REFUSAL_LOG_BURST` WARNING lines in :data:`REFUSAL_LOG_INTERVAL_S` the rest go
  to DEBUG (distinct invented ids cannot flood it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import os
import socket
import time
from collections import OrderedDict
from typing import Any

from actors.kernel.failures import brief
from actors.kernel.peer_auth import NONCE_BYTES, Acceptor
from runtime.addresses import format_address, is_loopback, parse_address
from runtime.tls import certificate_names

__all__ = [
    "LOOPBACK_ONLY_MESSAGE",
    "MIN_SECRET_BYTES",
    "NO_PEERS_MESSAGE",
    "REFUSAL_LOG_BURST",
    "REFUSAL_LOG_INTERVAL_S",
    "REFUSAL_MEMORY",
    "PeerTrust",
    "RefusalLog",
    "advertised_addresses",
    "new_nonce",
    "reached_address",
    "read_secret_file",
]

#: A refusal of the same claimed peer for the same reason is logged at WARNING once per
#: this many seconds (a stranger retrying every second must not flood the log).
REFUSAL_LOG_INTERVAL_S = 60.0
#: At most this many refusals are logged at WARNING per interval, whoever they claim to be.
REFUSAL_LOG_BURST = 20
#: How many (claimed peer, reason) pairs the refusal log remembers (least recent dropped).
REFUSAL_MEMORY = 1024
#: The shortest cluster secret accepted: the acceptor's challenge lets a stranger test
#: guesses offline, so a secret must be long and random.
MIN_SECRET_BYTES = 16

#: Why a node without a cluster secret refuses a non-loopback peer (in and out).
LOOPBACK_ONLY_MESSAGE = (
    "no cluster secret is configured, so this node peers with loopback addresses only; "
    "give every node the same --cluster-secret-file"
)

#: Why a node that needs client passwords but has no cluster secret refuses every peer.
NO_PEERS_MESSAGE = (
    "clients need a password here (--requirepass, --requirepass-file or --aclfile) but no cluster "
    "secret is configured, so this node accepts no peers, loopback included (a peer must need the "
    "secret as a client needs the password); give every node the same --cluster-secret-file"
)


def new_nonce() -> bytes:
    """A fresh handshake nonce (one per connection, each side its own)."""
    return os.urandom(NONCE_BYTES)


def reached_address(name: Any) -> str | None:
    """A socket address (``getpeername``/``getsockname``: ``(host, port, ...)``) as the
    canonical ``host:port`` a hello's ``to`` carries (:func:`format_address`; an
    IPv4-mapped IPv6 host as its IPv4 form, an IPv6 zone dropped, since each machine
    names its interfaces its own way); None when there is none."""
    if not (isinstance(name, tuple) and len(name) >= 2 and type(name[1]) is int):
        return None
    host = str(name[0]).partition("%")[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        host = str(mapped if mapped is not None else ip)
    return format_address(host, name[1])


async def advertised_addresses(
    loop: asyncio.AbstractEventLoop, address: str, timeout: float = 5.0
) -> frozenset[str]:
    """The addresses peers may dial to reach a node advertising ``address``: itself and
    its host's IPs (resolved now, once) with its port. A name that does not resolve (in
    ``timeout`` seconds) adds nothing: then peers reach the node at its socket's own name."""
    host, port = parse_address(address)
    found = {address}
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM), timeout
        )
    except (OSError, asyncio.TimeoutError):
        return frozenset(found)
    for info in infos:
        reached = reached_address(info[4][:2])
        if reached is not None:
            found.add(reached)
    return frozenset(found)


def read_secret_file(path: str) -> bytes:
    """The cluster secret: the file's bytes, surrounding whitespace stripped. Raises
    ValueError (saying why, never what the file holds) when unreadable or empty."""
    try:
        with open(path, "rb") as f:
            secret = f.read().strip()
    except OSError as exc:
        raise ValueError(f"cannot read the cluster secret file {path}: {exc.strerror or exc}") from None
    if not secret:
        raise ValueError(f"the cluster secret file {path} is empty")
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"the cluster secret in {path} is shorter than {MIN_SECRET_BYTES} bytes (a stranger can test guesses "
            "of it offline); make one with: head -c 32 /dev/urandom | base64"
        )
    return secret


class RefusalLog:
    """Logs refused peers without being flooded: a (claimed peer, reason) pair at WARNING
    once per :data:`REFUSAL_LOG_INTERVAL_S`, at most :data:`REFUSAL_LOG_BURST` WARNING
    lines per interval in all, the rest at DEBUG. Remembers at most
    :data:`REFUSAL_MEMORY` pairs, each cut to a short key."""

    __slots__ = ("_burst", "_last", "_window")

    def __init__(self) -> None:
        self._last: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._window = float("-inf")  # when the current interval began
        self._burst = 0  # WARNING lines in it

    def level(self, peer: str, reason: str, now: float) -> int:
        """The level to log this refusal at (and remember that it was)."""
        key = (peer[:64], reason[:64])
        last = self._last.get(key)
        if last is not None and now - last < REFUSAL_LOG_INTERVAL_S:
            return logging.DEBUG
        if now - self._window >= REFUSAL_LOG_INTERVAL_S:
            self._window, self._burst = now, 0
        if self._burst >= REFUSAL_LOG_BURST:
            return logging.DEBUG
        self._burst += 1
        self._last[key] = now
        self._last.move_to_end(key)
        if len(self._last) > REFUSAL_MEMORY:
            self._last.popitem(last=False)
        return logging.WARNING


@dataclasses.dataclass(frozen=True)
class PeerTrust:
    """One node's peer policy: its id, its cluster secret (b"": none), whether mutual
    TLS names the peers (``--tls-cluster yes``), and whether clients need a password
    (``closed``: then without a secret no peer at all is accepted). ``addresses``: where
    peers may reach the node besides a connection's own socket name (the advertised
    address and its resolved IPs, :func:`advertised_addresses`)."""

    node_id: str = "node"
    secret: bytes = dataclasses.field(default=b"", repr=False)
    tls_cluster: bool = False
    closed: bool = False
    addresses: frozenset[str] = frozenset()
    _log: RefusalLog = dataclasses.field(default_factory=RefusalLog, repr=False, compare=False)

    @property
    def no_peers(self) -> bool:
        """Clients need a password but peers would need nothing: accept no peer."""
        return self.closed and not self.secret

    @property
    def loopback_only(self) -> bool:
        """Without a secret or certificates nothing proves who a peer is: loopback only."""
        return not self.secret and not self.tls_cluster

    def refusal(self, host: str | None) -> str | None:
        """Why a peer at IP ``host`` may not be peered with, or None when it may."""
        if self.no_peers:
            return NO_PEERS_MESSAGE
        if self.loopback_only and not (host and is_loopback(host)):
            return LOOPBACK_ONLY_MESSAGE
        return None

    def certificate_refusal(self, transport: asyncio.BaseTransport | None, peer_id: str) -> str | None:
        """Under ``--tls-cluster yes``: why the peer ``peer_id`` at the other end of
        ``transport`` is refused (its verified certificate does not name it), or None."""
        if not self.tls_cluster:
            return None
        names = certificate_names(transport)
        if peer_id in names:
            return None
        named = ", ".join(brief(n) for n in names[:5]) if names else "nothing (no verified certificate)"
        return f"the peer's TLS certificate names {named}, not {brief(peer_id)} (--tls-cluster yes)"

    def log_refusal(self, logger: logging.Logger, peer: str, reason: str, fmt: str, *args: object) -> None:
        """Log a refused peer (``peer``: what it claims, or its address) at the level
        :class:`RefusalLog` chooses; ``args`` a peer supplied must come cut short (brief)."""
        logger.log(self._log.level(peer, reason, time.monotonic()), fmt, *args)

    def acceptor(self, sockname: Any = None) -> Acceptor:
        """The handshake's accepting side for one inbound connection whose socket name
        (the address the connector reached) is ``sockname``."""
        reached = reached_address(sockname)
        reachable = self.addresses if reached is None else self.addresses | {reached}
        return Acceptor(self.secret, self.node_id, new_nonce(), reachable)
