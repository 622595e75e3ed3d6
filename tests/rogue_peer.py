"""A peer connection driven by hand: for tests that speak the peer protocol to a real node.

:class:`RoguePeer` opens a TCP connection to a node's port, runs the connector's side of
the handshake (:class:`actors.kernel.peer_auth.Connector`: hello with a nonce, the
node's challenge checked, auth) and then sends whatever peer frames the test chooses:
cache messages (encoded with :func:`actors.protocol.peer_codec.encode_peer`), raw maps,
or raw bytes. With the cluster's secret it is a *rogue* member (it holds the key and
may say anything a member may: gossip rows, versions, replies); with another secret, or
none against a secured node, it is a *stranger*, and :meth:`RoguePeer.open` tells how
the node refused it (:class:`Refused`).

Only the connector's side is here: a node never answers on a peer connection after the
handshake, so replies to what a rogue sends go to the address its hello names (a test
that wants them listens there, or reads the effects through the client port).

Every read has a deadline; every socket is closed by ``close`` / the ``with`` block.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import msgpack

from actors.kernel.peer_auth import NONCE_BYTES, Connector, PeerAuthError
from actors.protocol.peer_codec import encode_hello, encode_peer
from actors.protocol.peer_messages import PeerMessage
from runtime.peer_trust import reached_address

#: The cluster secret the tests' secured nodes are started with (the ``secret_file`` fixture).
SECRET = b"correct horse battery staple"

__all__ = ["Refused", "RoguePeer", "read_frame"]


class Refused(Exception):
    """The node refused the hello or the auth: ``reply`` is its one error frame (None when
    it closed without one), ``why`` its message."""

    def __init__(self, reply: Any, why: str) -> None:
        super().__init__(why)
        self.reply = reply
        self.why = why


def read_frame(sock: socket.socket, unpacker: msgpack.Unpacker, timeout: float = 5.0) -> Any:
    """The next msgpack frame from ``sock``; None when the node closed first."""
    deadline = time.monotonic() + timeout
    while True:
        for obj in unpacker:
            return obj
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no frame within {timeout:g}s")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        unpacker.feed(chunk)


class RoguePeer:
    """One hand-driven peer connection to ``port`` (on ``host``) as node ``node_id``
    advertising ``addr`` (its hello's ``to``: the address dialled, unless ``to`` says
    otherwise); see the module docstring. ``RoguePeer.open(...)`` connects and
    runs the handshake; :attr:`node` is the node id the challenge proved."""

    def __init__(
        self,
        port: int,
        node_id: str = "rogue",
        addr: str = "127.0.0.1:1",
        *,
        secret: bytes = b"",
        partitions: int = 256,
        host: str = "127.0.0.1",
        hello: dict[str, Any] | None = None,
        source: str | None = None,
        to: str | None = None,
    ) -> None:
        self.node_id = node_id
        self.sock = socket.create_connection((host, port), timeout=5, source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._unpacker = msgpack.Unpacker(raw=False)
        fields = hello if hello is not None else encode_hello(node_id, addr, partitions)
        # ``to``: the address dialled, as a node's link names it (a test may name another).
        to = to if to is not None else reached_address(self.sock.getpeername()) or "?"
        self.connector = Connector(secret, node_id, os.urandom(NONCE_BYTES), fields, to)
        #: The node id the node's challenge proved (None until the handshake completed).
        self.node: str | None = None

    @classmethod
    def open(cls, port: int, node_id: str = "rogue", addr: str = "127.0.0.1:1", **kwargs: Any) -> RoguePeer:
        """Connect and complete the handshake; raises :class:`Refused` when the node
        refuses it (the socket is then closed)."""
        peer = cls(port, node_id, addr, **kwargs)
        try:
            peer.handshake()
        except BaseException:
            peer.close()
            raise
        return peer

    def handshake(self, then: bytes = b"") -> None:
        """hello, the node's challenge, auth (with ``then`` pipelined right behind it)."""
        self.send_raw(msgpack.packb(self.connector.hello(), use_bin_type=True))
        challenge = read_frame(self.sock, self._unpacker)
        if type(challenge) is not dict or challenge.get("type") != "challenge":
            why = challenge.get("message", "") if type(challenge) is dict else "closed without a reply"
            raise Refused(challenge, str(why))
        try:
            auth = self.connector.on_challenge(challenge)
        except PeerAuthError as exc:
            raise Refused(challenge, exc.message) from None
        self.node = self.connector.peer_id
        self.send_raw(msgpack.packb(auth, use_bin_type=True) + then)

    def forged_auth(self, proof: bytes = bytes(32)) -> Any:
        """After a hello: answer the challenge with a proof made up (a stranger's best
        guess) and return what the node says (its error frame; None if it just closed)."""
        self.send_raw(msgpack.packb(self.connector.hello(), use_bin_type=True))
        challenge = read_frame(self.sock, self._unpacker)
        if type(challenge) is not dict or challenge.get("type") != "challenge":
            return challenge
        self.send_raw(msgpack.packb({"type": "auth", "proof": proof}, use_bin_type=True))
        return read_frame(self.sock, self._unpacker)

    def send(self, *msgs: PeerMessage | dict[str, Any]) -> None:
        """Send peer messages (cache messages are encoded; maps go as they are)."""
        self.send_raw(b"".join(msgpack.packb(m if type(m) is dict else encode_peer(m), use_bin_type=True) for m in msgs))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def closed_by_node(self, timeout: float = 5.0) -> Any:
        """Wait until the node closes the connection; what it wrote meanwhile (None: nothing)."""
        try:
            return read_frame(self.sock, self._unpacker, timeout)
        except ConnectionError:
            return None

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RoguePeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
