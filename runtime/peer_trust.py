"""Whom a node peers with: the cluster secret, the loopback rule, fresh nonces.

The handshake itself is sans-IO (:mod:`actors.kernel.peer_auth`); this module is the
runtime's policy around it, shared by both ends of a real peer connection (the acceptor
in :mod:`runtime.connection`, the connector in :mod:`runtime.peers`):

- the secret is the key of every proof (``--cluster-secret-file``); with none, the key is
  empty, the proofs prove nothing, and so a node peers with loopback addresses only, in
  and out (:meth:`PeerTrust.refusal`), unless ``--tls-cluster yes`` lets the certificate
  name the node;
- nonces come from ``os.urandom`` here, never from the actors (which draw nothing);
- the secret never appears in a ``repr``, a log line or an exception: it is a field that
  ``repr`` skips, and every refusal message is written without it.
"""

from __future__ import annotations

import dataclasses
import os

from actors.kernel.peer_auth import NONCE_BYTES, Acceptor
from runtime.addresses import is_loopback

__all__ = ["LOOPBACK_ONLY_MESSAGE", "PeerTrust", "new_nonce", "read_secret_file"]

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

    @property
    def loopback_only(self) -> bool:
        """Without a secret or certificates nothing proves who a peer is: loopback only."""
        return not self.secret and not self.tls_cluster

    def refusal(self, host: str | None) -> str | None:
        """Why a peer at IP ``host`` may not be peered with, or None when it may."""
        if self.loopback_only and not (host and is_loopback(host)):
            return LOOPBACK_ONLY_MESSAGE
        return None

    def acceptor(self) -> Acceptor:
        """The handshake's accepting side for one inbound connection."""
        return Acceptor(self.secret, self.node_id, new_nonce())
