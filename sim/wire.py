"""What a simulated link carries: a system's message objects as they are, or its frames.

:class:`sim.network.SimNetwork` hands every message and every handshake frame to its
:class:`Wire` at the sender and reads it back at the receiver through the connection's
:class:`Stream`. The network keeps the timing, faults and handshake state; the wire decides
what crosses a link:

- :class:`Objects` (the default, and what a system without a codec gets, e.g.
  ``examples/counter``): the objects themselves, nothing encoded, nothing counted;
- a system's byte wire (the cache's is :class:`sim.peer_wire.PeerWire`, built from the
  runtime's own encoder, frame limit, decoder and checks): each message is encoded at the
  sender, where what cannot be encoded (or is over the frame limit) raises
  :class:`Unsendable` and is dropped; each frame is decoded at the receiver, where a frame
  it cannot read raises :class:`BadFrame` and the connection is closed, as a real node
  closes a peer connection on a bad frame. The network counts every payload that is
  ``bytes`` on its link.

This module is part of the framework: it imports nothing of the cache.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["BadFrame", "Objects", "Stream", "Unsendable", "Wire", "WireError"]


class WireError(Exception):
    """A payload a wire refused; ``message`` says why (never the payload)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unsendable(WireError):
    """The sender cannot put this message on the wire (a real link counts it
    ``unencodable`` and drops it)."""


class BadFrame(WireError):
    """The receiver cannot read a frame: it closes the connection, and nothing more of it
    is read."""


class Stream(Protocol):
    """One connection's receiving end at the acceptor, fed its frames in order."""

    def hello(self, payload: Any) -> tuple[str, dict[str, Any]]:
        """The node id the hello claims and the hello itself; raises :class:`BadFrame`."""
        ...

    def auth(self, payload: Any) -> Any:
        """The frame where ``auth`` is due, for ``Acceptor.on_auth``; raises :class:`BadFrame`."""
        ...

    def frame(self, payload: Any) -> Any:
        """The message of one frame after ``auth``; raises :class:`BadFrame`."""
        ...


class Wire(Protocol):
    """How a system's messages and the handshake's frames cross a simulated link."""

    def hello(self, node: str) -> dict[str, Any]:
        """The system's fields of the hello ``node`` opens its connections with."""
        ...

    def encode(self, src: str, msg: Any) -> Any:
        """What ``src`` puts on the wire for ``msg``; raises :class:`Unsendable`."""
        ...

    def handshake(self, src: str, frame: dict[str, Any]) -> Any:
        """A connector's handshake frame (hello, auth) as ``src`` writes it."""
        ...

    def challenge(self, frame: dict[str, Any]) -> Any:
        """The acceptor's challenge as it writes it."""
        ...

    def read_challenge(self, payload: Any) -> Any:
        """The acceptor's answer as the connector reads it; raises :class:`BadFrame`."""
        ...

    def accept(self, dst: str) -> Stream:
        """A new connection's receiving end at ``dst``."""
        ...

    def compressed(self, payload: Any) -> bool:
        """Whether ``payload`` (from :meth:`encode`) is a compressed frame: the network
        counts those bytes per link too."""
        ...


class _ObjectStream:
    __slots__ = ()

    def hello(self, payload: Any) -> tuple[str, dict[str, Any]]:
        return payload["node_id"], payload

    def auth(self, payload: Any) -> Any:
        return payload

    def frame(self, payload: Any) -> Any:
        return payload


class Objects:
    """Objects cross as they are: no encoding, no frame limit, no bytes counted."""

    _stream = _ObjectStream()

    def hello(self, node: str) -> dict[str, Any]:
        return {"type": "hello"}

    def encode(self, src: str, msg: Any) -> Any:
        return msg

    def handshake(self, src: str, frame: dict[str, Any]) -> Any:
        return frame

    def challenge(self, frame: dict[str, Any]) -> Any:
        return frame

    def read_challenge(self, payload: Any) -> Any:
        return payload

    def accept(self, dst: str) -> Stream:
        return self._stream

    def compressed(self, payload: Any) -> bool:
        return False
