"""The peer handshake: a mutual challenge-response that opens every peer connection.

Sans-IO (as h11): two plain objects fed the frames they receive and answering the frames
to send. The hosts run them: the real runtime on each TCP peer connection, the simulator
on each simulated link, so every sweep exercises peer start-up as a real node does.

The exchange, on a connection from the connector A to the acceptor B::

    A -> B  hello      {...the system's hello fields, "node_id": A, "nonce": Na, "to": T}
    B -> A  challenge  {"node_id": B, "nonce": Nb, "proof": HMAC(K, "acceptor" Na Nb A B T)}
    A -> B  auth       {"proof": HMAC(K, "connector" Na Nb A B T)}   then A's frames

``K`` is the cluster secret (the empty key when none is configured: then the exchange
proves nothing, and the runtime allows only loopback peers or certificate identities).
Why it holds:

- each side proves it holds ``K`` over a nonce the *other* side just drew, so a recorded
  handshake replays to nothing: the acceptor's fresh ``Nb`` makes an old ``auth`` proof
  wrong, and the connector's fresh ``Na`` makes an old ``challenge`` wrong;
- both node ids are inside both proofs, so a proof cannot be moved to another identity,
  and the role word keeps the acceptor's proof from serving as the connector's
  (a reflection attack);
- ``T`` is the address A's connection actually reached (the host gives it: the socket's
  peer address, the simulator's destination), and the acceptor refuses a hello whose
  ``T`` is none of the addresses it may be reached at. So a stranger that A dials cannot
  relay A's handshake to B and then speak on the connection B authenticated as A's: A's
  hello names the stranger's address, which B refuses, and a hello rewritten to name B's
  makes B's proof (over B's ``T``) wrong for A, which then sends no ``auth``;
- fields are length-prefixed before hashing, so no two different field tuples hash alike;
- proofs are compared in constant time (:func:`hmac.compare_digest`).

The acceptor decodes no frame after the hello until :meth:`Acceptor.on_auth` succeeded;
from then on the connection speaks for ``A`` alone (``FromPeer.src``). Nonces come from
the host (the operating system's random source on a real node, the seeded RNG in the
simulator): this module draws nothing and reads no clock.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection
from typing import Any

from actors.kernel.failures import brief

__all__ = [
    "AUTH",
    "CHALLENGE",
    "MAX_TO_CHARS",
    "NONCE_BYTES",
    "Acceptor",
    "Connector",
    "PeerAuthError",
    "hello_nonce",
]

CHALLENGE = "challenge"
AUTH = "auth"
#: Bytes of a nonce; each side draws a fresh one per connection.
NONCE_BYTES = 32
_PROOF_BYTES = hashlib.sha256().digest_size
_DOMAIN = b"actorcache peer handshake 1"
#: The longest ``to`` a hello may carry (a DNS name, IPv6 brackets, a port).
MAX_TO_CHARS = 270


class PeerAuthError(Exception):
    """A handshake frame failed: malformed, or its proof is wrong. The message says why
    and never holds the secret or a proof."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _field(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _proof(secret: bytes, role: bytes, na: bytes, nb: bytes, a: str, b: str, to: str) -> bytes:
    message = b"".join(
        (
            _field(_DOMAIN), _field(role), _field(na), _field(nb),
            _field(a.encode()), _field(b.encode()), _field(to.encode()),
        )
    )
    return hmac.new(secret, message, hashlib.sha256).digest()


def _nonce(obj: Any, what: str) -> bytes:
    nonce = obj.get("nonce") if type(obj) is dict else None
    if type(nonce) is not bytes or len(nonce) != NONCE_BYTES:
        raise PeerAuthError(f"{what} needs a {NONCE_BYTES}-byte nonce")
    return nonce


def _proof_of(obj: Any, what: str) -> bytes:
    proof = obj.get("proof") if type(obj) is dict else None
    if type(proof) is not bytes or len(proof) != _PROOF_BYTES:
        raise PeerAuthError(f"{what} needs a {_PROOF_BYTES}-byte proof")
    return proof


def hello_nonce(hello: Any) -> bytes:
    """The connector's nonce carried by a hello; raises PeerAuthError when absent or malformed."""
    return _nonce(hello, "hello")


def _to_of(hello: Any) -> str:
    to = hello.get("to") if type(hello) is dict else None
    if type(to) is not str or not 0 < len(to) <= MAX_TO_CHARS or not to.isprintable():
        raise PeerAuthError(f"hello needs a 'to' (the address it dialled) of 1 to {MAX_TO_CHARS} printable characters")
    return to


def _check_nonce(nonce: bytes) -> bytes:
    if type(nonce) is not bytes or len(nonce) != NONCE_BYTES:
        raise ValueError(f"a nonce is {NONCE_BYTES} random bytes")
    return nonce


class Connector:
    """The side that opened the connection (A): sends ``hello``, answers the challenge.

    ``to``: the address this connection reached (the host's socket peer address, as
    ``host:port``; the destination node in the simulator), bound into both proofs.
    """

    __slots__ = ("_hello", "_nonce", "_secret", "node_id", "peer_id", "to")

    def __init__(self, secret: bytes, node_id: str, nonce: bytes, hello: dict[str, Any], to: str) -> None:
        self._secret = secret
        self.node_id = node_id
        self._nonce = _check_nonce(nonce)
        self._hello = hello
        self.to = to
        #: The acceptor's node id, once its challenge proved it.
        self.peer_id: str | None = None

    def hello(self) -> dict[str, Any]:
        """The first frame: the system's hello plus this connection's nonce and ``to``."""
        return {**self._hello, "node_id": self.node_id, "nonce": self._nonce, "to": self.to}

    def on_challenge(self, obj: Any, expect: str | None = None) -> dict[str, Any]:
        """Check the acceptor's challenge and answer the ``auth`` frame.

        ``expect``: the node id this connector meant to reach, when it knows it (an
        address taken from the membership table); a different one is refused.
        """
        if type(obj) is not dict or obj.get("type") != CHALLENGE:
            raise PeerAuthError("expected the peer's challenge")
        peer_id = obj.get("node_id")
        if type(peer_id) is not str or not peer_id:
            raise PeerAuthError("challenge needs a string node_id")
        nb = _nonce(obj, "challenge")
        proof = _proof_of(obj, "challenge")
        want = _proof(self._secret, b"acceptor", self._nonce, nb, self.node_id, peer_id, self.to)
        if not hmac.compare_digest(proof, want):
            raise PeerAuthError(
                f"{brief(peer_id)} does not hold this cluster's secret (wrong challenge proof; or our hello "
                f"for {brief(self.to)} was relayed to it)"
            )
        if expect is not None and peer_id != expect:
            raise PeerAuthError(f"expected node {brief(expect)} at this address, found {brief(peer_id)}")
        self.peer_id = peer_id
        return {"type": AUTH, "proof": _proof(self._secret, b"connector", self._nonce, nb, self.node_id, peer_id, self.to)}


class Acceptor:
    """The side that accepted the connection (B): challenges the hello, checks ``auth``.

    ``reachable``: the addresses this connection may have been reached at (the host's
    socket address, the node's advertised address and what it resolves to); a hello whose
    ``to`` is none of them is refused (it was dialled elsewhere and relayed here).
    """

    __slots__ = ("_na", "_nonce", "_reachable", "_secret", "_to", "node_id", "peer_id")

    def __init__(self, secret: bytes, node_id: str, nonce: bytes, reachable: Collection[str]) -> None:
        self._secret = secret
        self.node_id = node_id
        self._nonce = _check_nonce(nonce)
        self._reachable = reachable
        self._na = b""
        self._to = ""
        #: The connector's node id as its hello claims it; proven only once on_auth returns.
        self.peer_id: str | None = None

    def on_hello(self, peer_id: str, hello: Any) -> dict[str, Any]:
        """The ``challenge`` answering a hello from ``peer_id`` (already decoded by the
        system, which checks its own fields); raises PeerAuthError without a nonce."""
        if self.peer_id is not None:
            raise PeerAuthError("a second hello on one connection")
        if not peer_id:
            raise PeerAuthError("hello needs a node_id")
        na = hello_nonce(hello)
        to = _to_of(hello)
        if to not in self._reachable:
            raise PeerAuthError(
                f"the hello was sent to {brief(to)}, which is not an address of this node (a relayed handshake?)"
            )
        self._na, self._to = na, to
        self.peer_id = peer_id
        return {
            "type": CHALLENGE,
            "node_id": self.node_id,
            "nonce": self._nonce,
            "proof": _proof(self._secret, b"acceptor", na, self._nonce, peer_id, self.node_id, to),
        }

    def on_auth(self, obj: Any) -> str:
        """Check the connector's proof; returns its now authenticated node id."""
        peer_id = self.peer_id
        if peer_id is None:
            raise PeerAuthError("auth before hello")
        if type(obj) is not dict or obj.get("type") != AUTH:
            raise PeerAuthError("expected auth after the challenge")
        proof = _proof_of(obj, "auth")
        want = _proof(self._secret, b"connector", self._na, self._nonce, peer_id, self.node_id, self._to)
        if not hmac.compare_digest(proof, want):
            raise PeerAuthError(f"{brief(peer_id)} does not hold this cluster's secret (wrong auth proof)")
        return peer_id
