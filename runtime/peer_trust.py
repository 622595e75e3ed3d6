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
- nonces come from ``os.urandom`` here, never from the actors (which draw nothing);
- the secret never appears in a ``repr``, a log line or an exception: it is a field that
  ``repr`` skips, and every refusal message is written without it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time

from actors.kernel.peer_auth import NONCE_BYTES, Acceptor
from runtime.addresses import is_loopback
from runtime.tls import certificate_names

__all__ = ["LOOPBACK_ONLY_MESSAGE", "REFUSAL_LOG_INTERVAL_S", "PeerTrust", "new_nonce", "read_secret_file"]

#: A refusal of the same claimed peer for the same reason is logged at WARNING once per
#: this many seconds (a stranger retrying every second must not flood the log).
REFUSAL_LOG_INTERVAL_S = 60.0

#: Why a node without a cluster secret refuses a non-loopback peer (in and out).
LOOPBACK_ONLY_MESSAGE = (
    "no cluster secret is configured, so this node peers with loopback addresses only; "
    "give every node the same --cluster-secret-file"
)


def new_nonce() -> bytes:
    """A fresh handshake nonce (one per connection, each side its own)."""
    return os.urandom(NONCE_BYTES)


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
    return secret


@dataclasses.dataclass(frozen=True)
class PeerTrust:
    """One node's peer policy: its id, its cluster secret (b"": none), and whether mutual
    TLS names the peers (``--tls-cluster yes``)."""

    node_id: str = "node"
    secret: bytes = dataclasses.field(default=b"", repr=False)
    tls_cluster: bool = False
    #: (claimed peer, reason) -> when its refusal was last logged at WARNING.
    _logged: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def loopback_only(self) -> bool:
        """Without a secret or certificates nothing proves who a peer is: loopback only."""
        return not self.secret and not self.tls_cluster

    def refusal(self, host: str | None) -> str | None:
        """Why a peer at IP ``host`` may not be peered with, or None when it may."""
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
        named = ", ".join(repr(n) for n in names[:5]) if names else "nothing (no verified certificate)"
        return f"the peer's TLS certificate names {named}, not {peer_id!r} (--tls-cluster yes)"

    def log_refusal(self, logger: logging.Logger, peer: str, reason: str, fmt: str, *args: object) -> None:
        """Log a refused peer: at WARNING the first time in :data:`REFUSAL_LOG_INTERVAL_S`
        for this claimed ``peer`` and ``reason``, else at DEBUG (once per outage)."""
        now = time.monotonic()
        key = (peer, reason)
        last = self._logged.get(key)
        level = logging.WARNING if last is None or now - last >= REFUSAL_LOG_INTERVAL_S else logging.DEBUG
        if level == logging.WARNING:
            if len(self._logged) >= 1024:  # strangers may invent ids: keep it bounded
                self._logged.clear()
            self._logged[key] = now
        logger.log(level, fmt, *args)

    def acceptor(self) -> Acceptor:
        """The handshake's accepting side for one inbound connection."""
        return Acceptor(self.secret, self.node_id, new_nonce())
